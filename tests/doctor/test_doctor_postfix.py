"""The doctor against a real Postfix submission service (STARTTLS before AUTH, Dovecot SASL).

Issue 16, point 5: run without a password, the doctor used to send MAIL/RCPT
without logging in, read Postfix's "554 5.7.1 … Access denied" as a refusal to
relay, and conclude that the server "offers no way to log in" — while its own
greeting step had seen AUTH. A run that skipped the login must not judge
relaying; a 5.7.1 before AUTH, when AUTH is offered, means "log in first".
"""

from __future__ import annotations

import pytest
from doctorkit import EMAIL, PASSWORD, diagnose, expect, make_account, rendered
from postfixkit import PostfixSubmission

from deskmail.doctor import Code, Report, Server, Status, Step
from deskmail.model import Security

pytestmark = pytest.mark.servers


def outgoing(report: Report) -> dict[Step, tuple[Status, Code, str]]:
    return {f.step: (f.status, f.code, f.text) for f in report.findings if f.server is Server.OUTGOING}


def no_contradiction(report: Report) -> None:
    """No finding says the server cannot log in when the greeting saw AUTH."""
    steps = outgoing(report)
    assert "AUTH" in steps[Step.GREETING][2] or "PLAIN" in steps[Step.GREETING][2], rendered(report)
    for f in report.findings:
        assert "offers no way to log in" not in f.text, rendered(report)
        assert "no AUTH" not in f.text, rendered(report)


@pytest.mark.parametrize("which", ["port", "sender_port"])
def test_no_password_does_not_blame_the_server(postfix: PostfixSubmission, closed_port: int, which: str) -> None:
    account = make_account(outgoing=(getattr(postfix, which), Security.STARTTLS), ca_file=postfix.ca_file,
                           unused_port=closed_port)
    log_before = len(postfix.log)
    report = diagnose(account, password=None)
    steps = outgoing(report)
    assert steps[Step.TLS][0] is Status.OK and steps[Step.GREETING][0] is Status.OK, rendered(report)
    assert steps[Step.LOGIN][:2] == (Status.SKIPPED, Code.NOT_CHECKED)
    status, code, text = steps[Step.SEND]
    assert (status, code) == (Status.SKIPPED, Code.NOT_CHECKED), rendered(report)
    assert "no password" in text
    assert report.find(Code.RELAY_DENIED) is None and report.find(Code.AUTH_NOT_ENABLED) is None
    no_contradiction(report)
    assert "reject:" not in postfix.log[log_before:]  # no MAIL/RCPT was tried without the login


@pytest.mark.parametrize("which", ["port", "sender_port"])
def test_with_the_password_sending_works(postfix: PostfixSubmission, closed_port: int, which: str) -> None:
    account = make_account(outgoing=(getattr(postfix, which), Security.STARTTLS), ca_file=postfix.ca_file,
                           unused_port=closed_port)
    report = diagnose(account, PASSWORD)
    steps = outgoing(report)
    assert steps[Step.LOGIN][:2] == (Status.OK, Code.OK), rendered(report)
    assert steps[Step.SEND][:2] == (Status.OK, Code.OK), rendered(report)
    assert "accepts mail for outside addresses" in steps[Step.SEND][2]


def test_wrong_password_on_postfix(postfix: PostfixSubmission, closed_port: int) -> None:
    account = make_account(outgoing=(postfix.port, Security.STARTTLS), ca_file=postfix.ca_file,
                           unused_port=closed_port)
    report = diagnose(account, "not-the-password")
    finding = expect(report, Code.AUTH_FAILED, text="5.7.8 Error: authentication failed")
    assert finding.server is Server.OUTGOING
    assert outgoing(report)[Step.SEND][1] is Code.NOT_CHECKED


def test_access_denied_before_auth_means_log_in_first(postfix: PostfixSubmission, closed_port: int) -> None:
    # The account is set not to log in; Postfix answers RCPT with 554 5.7.1 … Access denied.
    account = make_account(outgoing=(postfix.port, Security.STARTTLS), ca_file=postfix.ca_file,
                           auth_required=False, unused_port=closed_port)
    report = diagnose(account, PASSWORD)
    finding = expect(report, Code.RELAY_DENIED, text="5.7.1", cause="does not log in",
                     remedy="My outgoing server (SMTP) requires authentication")
    assert "Access denied" in finding.text
    no_contradiction(report)


def test_not_logged_in_at_mail_means_log_in_first(postfix: PostfixSubmission, closed_port: int) -> None:
    # Sender login maps: MAIL gets 553 5.7.1 … Sender address rejected: not logged in.
    account = make_account(outgoing=(postfix.sender_port, Security.STARTTLS), ca_file=postfix.ca_file,
                           auth_required=False, unused_port=closed_port)
    report = diagnose(account, PASSWORD)
    finding = expect(report, Code.AUTH_NOT_ENABLED, text="not logged in",
                     remedy="turn on 'My outgoing server (SMTP) requires authentication'")
    assert finding.step is Step.LOGIN and finding.data["server_said"].startswith("5.7.1")
    no_contradiction(report)
    assert f"553 5.7.1 <{EMAIL}>: Sender address rejected: not logged in" in postfix.log

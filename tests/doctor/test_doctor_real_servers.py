"""The doctor against the real sandbox servers (Dovecot + the aiosmtpd submission server).

The green run is the reference: a correctly configured account must come out
``ok`` with a measured round trip. The fault cases here are the ones a real
server produces better than a script: Dovecot's own LOGINDISABLED, its own
wording of a failed login, and its behaviour when a client gets the TLS mode
wrong.
"""

from __future__ import annotations

import pytest
from doctorkit import diagnose, expect, rendered

from deskmail.doctor import Code, Server, Status, Step, Timeouts
from deskmail.model import Account, Protocol, Security, ServerSettings
from deskmail.sandbox import MailUser, Sandbox

pytestmark = pytest.mark.servers

REAL = Timeouts(dns=2, connect=2, sniff=0.5, greeting=3, tls=3, command=5, alternative=1,
                round_trip=15, poll_interval=0.25, total=60)


def sandbox_account(
    sb: Sandbox,
    user: MailUser,
    *,
    incoming: tuple[Protocol, int, Security] | None = None,
    outgoing: tuple[int, Security] | None = None,
    host: str | None = None,
    username: str | None = None,
    auth_required: bool = True,
    allow_plaintext_password: bool = False,
) -> Account:
    protocol, in_port, in_security = incoming or (Protocol.IMAP, sb.imaps_port, Security.SSL)
    out_port, out_security = outgoing or (sb.submission_port, Security.STARTTLS)
    login = username or user.email
    return Account(
        name="sandbox",
        email=user.email,
        display_name="Sandbox User",
        incoming=ServerSettings(protocol, host or sb.host, in_port, in_security, login),
        outgoing=ServerSettings(Protocol.SMTP, sb.host, out_port, out_security, login,
                                auth_required=auth_required),
        ca_file=str(sb.ca_file),
        allow_plaintext_password=allow_plaintext_password,
    )


def test_full_green_run_imap_and_submission(sandbox: Sandbox, mail_user: MailUser) -> None:
    account = sandbox_account(sandbox, mail_user)
    report = diagnose(account, mail_user.password, round_trip=True, timeouts=REAL)
    assert report.ok, rendered(report)
    assert report.summary() == "Incoming works. Outgoing works."
    essential = [f for f in report.findings if f.step is not Step.SETTINGS]
    assert all(f.status is Status.OK for f in essential), rendered(report)
    round_trip = report.findings[-1]
    assert round_trip.step is Step.ROUND_TRIP and round_trip.code is Code.OK
    assert 0 <= round_trip.data["delay_ms"] < 15000
    tls = [f for f in report.findings if f.step is Step.TLS]
    assert all(f.data["tls_version"] in ("TLSv1.2", "TLSv1.3") for f in tls)


def test_full_green_run_pop3s_and_smtps(sandbox: Sandbox, mail_user: MailUser) -> None:
    account = sandbox_account(
        sandbox, mail_user,
        incoming=(Protocol.POP3, sandbox.pop3s_port, Security.SSL),
        outgoing=(sandbox.smtps_port, Security.SSL),
    )
    report = diagnose(account, mail_user.password, round_trip=True, timeouts=REAL)
    assert report.ok, rendered(report)
    assert report.findings[-1].code is Code.OK


def test_starttls_ports_work(sandbox: Sandbox, mail_user: MailUser) -> None:
    account = sandbox_account(sandbox, mail_user, incoming=(Protocol.IMAP, sandbox.imap_port, Security.STARTTLS))
    report = diagnose(account, mail_user.password, timeouts=REAL)
    assert report.ok, rendered(report)


def test_wrong_password_on_dovecot(sandbox: Sandbox, mail_user: MailUser) -> None:
    account = sandbox_account(sandbox, mail_user)
    report = diagnose(account, mail_user.password + "-wrong", timeouts=REAL)
    finding = expect(report, Code.AUTH_FAILED, cause="password", remedy="re-enter the password")
    assert finding.server is Server.INCOMING
    assert "AUTHENTICATIONFAILED" in finding.data["server_said"]
    outgoing = next(f for f in report.for_server(Server.OUTGOING) if f.step is Step.LOGIN)
    assert outgoing.code is Code.AUTH_FAILED


def test_logindisabled_on_dovecot(sandbox: Sandbox, mail_user: MailUser) -> None:
    account = sandbox_account(
        sandbox, mail_user, host=sandbox.insecure_host,
        incoming=(Protocol.IMAP, sandbox.imap_port, Security.NONE), allow_plaintext_password=True,
    )
    report = diagnose(account, mail_user.password, timeouts=REAL)
    finding = expect(report, Code.PLAINTEXT_LOGIN_DISABLED, text="LOGINDISABLED",
                     remedy="change the encryption to STARTTLS")
    assert finding.data["security"] == "starttls"


def test_local_part_user_name_on_dovecot(sandbox: Sandbox, mail_user: MailUser) -> None:
    local = mail_user.email.partition("@")[0]
    account = sandbox_account(sandbox, mail_user, username=local)
    report = diagnose(account, mail_user.password, timeouts=REAL)
    finding = expect(report, Code.USERNAME_FORM, remedy=mail_user.email)
    assert finding.data["username"] == mail_user.email


def test_tls_mode_mixups_on_dovecot(sandbox: Sandbox, mail_user: MailUser) -> None:
    ssl_on_plain = sandbox_account(sandbox, mail_user, incoming=(Protocol.IMAP, sandbox.imap_port, Security.SSL))
    report = diagnose(ssl_on_plain, mail_user.password, timeouts=REAL)
    assert expect(report, Code.TLS_MODE_MISMATCH).data["security"] == "starttls"
    starttls_on_ssl = sandbox_account(
        sandbox, mail_user, incoming=(Protocol.IMAP, sandbox.imaps_port, Security.STARTTLS)
    )
    report = diagnose(starttls_on_ssl, mail_user.password, timeouts=REAL)
    assert expect(report, Code.TLS_MODE_MISMATCH).data["security"] == "ssl"


def test_submission_without_auth(sandbox: Sandbox, mail_user: MailUser) -> None:
    account = sandbox_account(sandbox, mail_user, auth_required=False)
    report = diagnose(account, mail_user.password, timeouts=REAL)
    expect(report, Code.AUTH_NOT_ENABLED, remedy="requires authentication")

"""Providers that accept only OAuth2 (Microsoft consumer accounts): the doctor says so, never
"wrong password" — with a password that is refused, and without any password at all."""

from __future__ import annotations

from collections.abc import Callable

from doctorkit import Certs, FakeServer, ImapScript, SmtpScript, diagnose, expect, make_account, rendered

from deskmail.doctor import Code, Server, Status, Step
from deskmail.model import Security

Serve = Callable[..., FakeServer]
HOTMAIL = "alice@hotmail.de"


def test_refused_password_at_an_oauth_only_provider(serve: Serve, certs: Certs) -> None:
    # The server's words are a plain "authentication failed"; the provider database knows better.
    imap = serve(ImapScript(), tls=certs.good)
    smtp = serve(SmtpScript(tls=certs.good))
    account = make_account(incoming=(imap.port, Security.SSL), outgoing=(smtp.port, Security.STARTTLS),
                           ca_file=certs.ca_file, email=HOTMAIL, username=HOTMAIL)
    report = diagnose(account, "any-password")
    finding = expect(report, Code.OAUTH_REQUIRED, remedy="OAuth")
    assert finding.step is Step.LOGIN
    assert report.find(Code.AUTH_FAILED) is None, rendered(report)
    assert "wrong" not in rendered(report).lower()


def test_no_password_at_an_oauth_only_provider(serve: Serve, certs: Certs) -> None:
    imap = serve(ImapScript(), tls=certs.good)
    smtp = serve(SmtpScript(tls=certs.good))
    account = make_account(incoming=(imap.port, Security.SSL), outgoing=(smtp.port, Security.STARTTLS),
                           ca_file=certs.ca_file, email=HOTMAIL, username=HOTMAIL)
    report = diagnose(account, password=None)
    logins = [f for f in report.findings if f.step is Step.LOGIN]
    assert [(f.server, f.status, f.code) for f in logins] == [
        (Server.INCOMING, Status.WARNING, Code.OAUTH_REQUIRED),
        (Server.OUTGOING, Status.WARNING, Code.OAUTH_REQUIRED),
    ], rendered(report)
    assert "Outlook.com accepts only OAuth" in logins[0].text
    send = next(f for f in report.findings if f.step is Step.SEND)
    assert (send.status, send.code) == (Status.SKIPPED, Code.NOT_CHECKED)
    assert not any(line.upper().startswith(("MAIL", "RCPT", "AUTH")) for line in smtp.received)

"""One test per fault, injected for real on 127.0.0.1, against the doctor's public API.

Each test asserts the machine code, that the cause and remedy name the right
thing, and (through ``diagnose``) that the password is in neither the JSON
nor the rendered text.
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Callable

import pytest
from doctorkit import (
    EMAIL,
    FAST,
    PASSWORD,
    Certs,
    FakeServer,
    ImapScript,
    Mailbox,
    NxDomainServer,
    Pop3Script,
    SmtpScript,
    diagnose,
    expect,
    make_account,
    rendered,
    silent,
)

from deskmail.doctor import Code, DnsResolver, ProviderHint, Recommendation, Server, Status, Step
from deskmail.model import Protocol, Security

Serve = Callable[..., FakeServer]


def working_pair(serve: Serve, certs: Certs, mailbox: Mailbox | None = None) -> tuple[FakeServer, FakeServer]:
    """An IMAPS server and an SMTP submission server (STARTTLS) that both work."""
    mailbox = mailbox or Mailbox()
    imap = serve(ImapScript(mailbox=mailbox), tls=certs.good)
    smtp = serve(SmtpScript(tls=certs.good, mailbox=mailbox))
    return imap, smtp


# --------------------------------------------------------------------------- the green path


def test_everything_works_with_send_and_round_trip(serve: Serve, certs: Certs) -> None:
    imap, smtp = working_pair(serve, certs)
    account = make_account(
        incoming=(imap.port, Security.SSL), outgoing=(smtp.port, Security.STARTTLS), ca_file=certs.ca_file
    )
    report = diagnose(account, round_trip=True)
    assert report.ok, report.summary()
    assert report.summary() == "Incoming works. Outgoing works."
    steps = [(f.server, f.step) for f in report.findings if f.step is not Step.SETTINGS]
    assert steps == [
        (Server.INCOMING, Step.DNS), (Server.INCOMING, Step.TCP), (Server.INCOMING, Step.TLS),
        (Server.INCOMING, Step.GREETING), (Server.INCOMING, Step.LOGIN),
        (Server.OUTGOING, Step.DNS), (Server.OUTGOING, Step.TCP), (Server.OUTGOING, Step.TLS),
        (Server.OUTGOING, Step.GREETING), (Server.OUTGOING, Step.LOGIN), (Server.OUTGOING, Step.SEND),
        (Server.OUTGOING, Step.ROUND_TRIP),
    ]
    assert all(f.status is Status.OK for f in report.findings if f.step is not Step.SETTINGS)
    round_trip = report.findings[-1]
    assert round_trip.step is Step.ROUND_TRIP and round_trip.data["delay_ms"] >= 0
    assert all(f.duration_ms >= 0 for f in report.findings)
    # The password went only over TLS: the servers saw it after STARTTLS.
    assert any("LOGIN" in line for line in imap.received)


def test_pop3_with_stls_works(serve: Serve, certs: Certs) -> None:
    pop = serve(Pop3Script(tls=certs.good))
    account = make_account(incoming=(pop.port, Security.STARTTLS), incoming_protocol=Protocol.POP3,
                           ca_file=certs.ca_file)
    report = diagnose(account)
    assert report.status(Server.INCOMING) is Status.OK, rendered(report)
    assert report.server_ok(Server.INCOMING)


# --------------------------------------------------------------------------- DNS and TCP


def test_dead_name_is_dns_not_found_with_provider_suggestion(dns_server: Callable[..., NxDomainServer]) -> None:
    dns = dns_server()
    account = make_account(host="imap.spectrum.nte", email="bob@spectrum.net", username="bob@spectrum.net")
    report = diagnose(account, resolver=dns.resolver())
    finding = expect(report, Code.DNS_NOT_FOUND, cause="misspelled", remedy="imap.spectrum.net",
                     text="imap.spectrum.nte")
    assert finding.server is Server.INCOMING
    assert finding.data["suggested_host"] == "imap.spectrum.net"
    assert "imap.spectrum.nte" in dns.queries
    # Nothing after DNS was attempted; the checklist says so.
    tail = [f for f in report.for_server(Server.INCOMING) if f.step in (Step.TCP, Step.LOGIN)]
    assert [f.code for f in tail] == [Code.NOT_CHECKED, Code.NOT_CHECKED]
    assert not report.ok


def test_name_served_by_test_dns_resolves(serve: Serve, certs: Certs,
                                          dns_server: Callable[..., NxDomainServer]) -> None:
    imap = serve(ImapScript(), tls=certs.good)
    dns = dns_server({"localhost": "127.0.0.1"})
    account = make_account(host="localhost", incoming=(imap.port, Security.SSL), ca_file=certs.ca_file)
    report = diagnose(account, resolver=dns.resolver())
    assert report.for_server(Server.INCOMING)[0].text == "localhost resolves to 127.0.0.1"
    assert report.server_ok(Server.INCOMING), rendered(report)


def test_closed_port_is_connection_refused(closed_port: int) -> None:
    account = make_account(incoming=(closed_port, Security.SSL), unused_port=closed_port)
    report = diagnose(account)
    finding = expect(report, Code.CONNECTION_REFUSED, cause="no mail service listens", remedy="firewall",
                     text=f"port {closed_port}")
    assert finding.step is Step.TCP
    assert report.summary().startswith("Incoming fails: 127.0.0.1 refused the connection")


def test_blackholed_port_is_connection_timeout(blackholed_port: int, closed_port: int) -> None:
    account = make_account(outgoing=(blackholed_port, Security.STARTTLS), unused_port=closed_port)
    report = diagnose(account)
    finding = expect(report, Code.CONNECTION_TIMEOUT, cause="firewall, antivirus",
                     remedy=f"port {blackholed_port}", text=f"port {blackholed_port}")
    assert finding.server is Server.OUTGOING
    assert 900 <= finding.duration_ms < 3000


def test_port_that_accepts_but_never_speaks(serve: Serve, closed_port: int) -> None:
    quiet = serve(silent)
    account = make_account(incoming=(quiet.port, Security.STARTTLS), unused_port=closed_port)
    report = diagnose(account)
    finding = expect(report, Code.NO_RESPONSE, cause="not a mail service", remedy="port number",
                     text="sent no greeting")
    assert finding.step is Step.GREETING


def test_port_that_never_speaks_tls(serve: Serve, closed_port: int) -> None:
    quiet = serve(silent)
    account = make_account(incoming=(quiet.port, Security.SSL), unused_port=closed_port)
    report = diagnose(account)
    finding = expect(report, Code.NO_RESPONSE, text="did not complete a TLS handshake", remedy="try")
    assert finding.step is Step.TLS


def test_587_blocked_but_465_open(serve: Serve, certs: Certs, blackholed_port: int) -> None:
    imap = serve(ImapScript(), tls=certs.good)
    smtps = serve(SmtpScript(), tls=certs.good)  # implicit TLS, the "465"
    account = make_account(incoming=(imap.port, Security.SSL), outgoing=(blackholed_port, Security.STARTTLS),
                           ca_file=certs.ca_file)
    alternatives = {Protocol.SMTP: [(blackholed_port, Security.STARTTLS), (smtps.port, Security.SSL)]}
    report = diagnose(account, alternatives=alternatives)
    expect(report, Code.CONNECTION_TIMEOUT)
    finding = expect(report, Code.PORT_BLOCKED, cause="blocks port", remedy=f"port to {smtps.port}",
                     text=f"port {smtps.port} with SSL/TLS works")
    assert finding.data["port"] == smtps.port and finding.data["security"] == "ssl"
    assert finding.data["blocked_port"] == blackholed_port
    # The rest of the checks ran on the working alternative: the password works there.
    login = next(f for f in report.for_server(Server.OUTGOING) if f.step is Step.LOGIN)
    assert login.status is Status.OK and f"port {smtps.port}" in login.text
    assert report.summary().startswith(f"Incoming works. Outgoing fails: port {blackholed_port} is blocked")
    assert not report.ok


# --------------------------------------------------------------------------- TLS


def test_ssl_chosen_on_starttls_port(serve: Serve, certs: Certs, closed_port: int) -> None:
    imap = serve(ImapScript(tls=certs.good))  # plain greeting, STARTTLS offered
    account = make_account(incoming=(imap.port, Security.SSL), ca_file=certs.ca_file, unused_port=closed_port)
    report = diagnose(account)
    finding = expect(report, Code.TLS_MODE_MISMATCH, text="plain-text greeting", cause="does not match the port",
                     remedy="change the encryption to STARTTLS")
    assert finding.data == {"port": imap.port, "security": "starttls"}
    assert not any("LOGIN" in line for line in imap.received)


def test_starttls_chosen_on_ssl_port(serve: Serve, certs: Certs, closed_port: int) -> None:
    smtps = serve(SmtpScript(), tls=certs.good)
    account = make_account(outgoing=(smtps.port, Security.STARTTLS), ca_file=certs.ca_file,
                           unused_port=closed_port)
    report = diagnose(account)
    finding = expect(report, Code.TLS_MODE_MISMATCH, text="expects SSL/TLS from the first byte",
                     cause="does not match the port", remedy="change the encryption to SSL/TLS")
    assert finding.server is Server.OUTGOING
    assert finding.data == {"port": smtps.port, "security": "ssl"}


def test_expired_certificate(serve: Serve, certs: Certs, closed_port: int) -> None:
    imap = serve(ImapScript(), tls=certs.expired)
    account = make_account(incoming=(imap.port, Security.SSL), ca_file=certs.ca_file, unused_port=closed_port)
    report = diagnose(account)
    expect(report, Code.CERTIFICATE_EXPIRED, text="has expired on", cause="date and time",
           remedy="renew")
    assert not any("LOGIN" in line for line in imap.received)


def test_certificate_for_another_name(serve: Serve, certs: Certs, closed_port: int) -> None:
    imap = serve(ImapScript(), tls=certs.wrong_name)
    account = make_account(incoming=(imap.port, Security.SSL), ca_file=certs.ca_file, unused_port=closed_port)
    report = diagnose(account)
    finding = expect(report, Code.CERTIFICATE_HOSTNAME_MISMATCH, text="valid for mail.other-provider.test",
                     cause="server name", remedy="exact server name")
    assert finding.data["suggested_host"] == "mail.other-provider.test"


def test_self_signed_certificate(serve: Serve, certs: Certs, closed_port: int) -> None:
    imap = serve(ImapScript(), tls=certs.self_signed)
    account = make_account(incoming=(imap.port, Security.SSL), ca_file=certs.ca_file, unused_port=closed_port)
    report = diagnose(account)
    expect(report, Code.CERTIFICATE_SELF_SIGNED, text="self-signed", cause="impersonating",
           remedy="ca_file")
    assert not any("LOGIN" in line for line in imap.received)


def test_certificate_from_antivirus_ca(serve: Serve, certs: Certs, closed_port: int) -> None:
    imap = serve(ImapScript(), tls=certs.antivirus)
    account = make_account(incoming=(imap.port, Security.SSL), ca_file=certs.ca_file, unused_port=closed_port)
    report = diagnose(account)
    finding = expect(report, Code.TLS_INTERCEPTION, text="Avast is intercepting", cause="antivirus",
                     remedy="turn off scanning of encrypted mail")
    assert finding.status is Status.FAILED
    assert finding.data["product"] == "Avast"
    assert "Avast Web/Mail Shield Root" in finding.data["issuer"]
    assert not any("LOGIN" in line for line in imap.received)


def test_trusted_antivirus_ca_is_a_warning(serve: Serve, certs: Certs, closed_port: int) -> None:
    # On Windows the antivirus puts its root in the system store: the handshake succeeds.
    imap = serve(ImapScript(), tls=certs.antivirus)
    account = make_account(incoming=(imap.port, Security.SSL), ca_file=certs.antivirus_ca_file,
                           unused_port=closed_port)
    report = diagnose(account)
    finding = expect(report, Code.TLS_INTERCEPTION, text="Avast is inspecting", remedy="Mail Shield")
    assert finding.status is Status.WARNING
    assert report.server_ok(Server.INCOMING)


def test_untrusted_issuer_for_known_provider_is_interception(serve: Serve, certs: Certs,
                                                             closed_port: int) -> None:
    imap = serve(ImapScript(), tls=certs.good)  # signed by a CA the account does not trust
    provider = ProviderHint("Spectrum", (Recommendation(Protocol.IMAP, "127.0.0.1", imap.port, Security.SSL),))
    account = make_account(incoming=(imap.port, Security.SSL), unused_port=closed_port)
    report = diagnose(account, provider=provider)
    finding = expect(report, Code.TLS_INTERCEPTION, text="public certificate authority",
                     cause="antivirus", remedy="antivirus")
    assert "Spectrum's servers use certificates from a public authority" in finding.text


def test_untrusted_certificate(serve: Serve, certs: Certs, closed_port: int) -> None:
    imap = serve(ImapScript(), tls=certs.good)
    account = make_account(incoming=(imap.port, Security.SSL), unused_port=closed_port)  # no ca_file
    report = diagnose(account)
    expect(report, Code.CERTIFICATE_UNTRUSTED, text="deskmail doctor test CA", remedy="ca_file")


def test_server_only_speaking_old_tls(serve: Serve, certs: Certs, closed_port: int) -> None:
    imap = serve(ImapScript(), tls=certs.legacy_tls)
    account = make_account(incoming=(imap.port, Security.SSL), ca_file=certs.ca_file, unused_port=closed_port)
    report = diagnose(account)
    expect(report, Code.TLS_VERSION, text="requires TLS 1.2", cause="outdated", remedy="TLS 1.2")


# --------------------------------------------------------------------------- greeting and capabilities


def test_server_without_starttls(serve: Serve, certs: Certs, closed_port: int) -> None:
    imap = serve(ImapScript(starttls=False, tls=certs.good))
    account = make_account(incoming=(imap.port, Security.STARTTLS), ca_file=certs.ca_file,
                           unused_port=closed_port)
    report = diagnose(account)
    finding = expect(report, Code.STARTTLS_MISSING, text="does not offer STARTTLS", cause="downgrade attack",
                     remedy="did not send your password")
    assert finding.step is Step.GREETING
    assert not any("LOGIN" in line.upper() for line in imap.received)


def test_starttls_refused(serve: Serve, certs: Certs, closed_port: int) -> None:
    smtp_script = SmtpScript(tls=certs.good)
    smtp = serve(smtp_script)
    smtp_script.tls = None  # advertises nothing and refuses: a stripped STARTTLS
    account = make_account(outgoing=(smtp.port, Security.STARTTLS), ca_file=certs.ca_file,
                           unused_port=closed_port)
    report = diagnose(account)
    expect(report, Code.STARTTLS_MISSING, remedy="never switch to 'no encryption'")
    assert not any(line.upper().startswith(("AUTH", "MAIL")) for line in smtp.received)


def test_starttls_response_injection(serve: Serve, certs: Certs, closed_port: int) -> None:
    imap = serve(ImapScript(tls=certs.good, inject_after_starttls=b"D999 OK LOGIN completed\r\n* 1 EXISTS\r\n"))
    account = make_account(incoming=(imap.port, Security.STARTTLS), ca_file=certs.ca_file,
                           unused_port=closed_port)
    report = diagnose(account)
    expect(report, Code.STARTTLS_INJECTION, cause="man-in-the-middle", remedy="SSL/TLS")
    assert not any("LOGIN" in line.upper() for line in imap.received)


def test_logindisabled_without_encryption(serve: Serve, certs: Certs, closed_port: int) -> None:
    imap = serve(ImapScript(tls=certs.good, login_disabled_before_tls=True))
    account = make_account(incoming=(imap.port, Security.NONE), allow_plaintext_password=True,
                           unused_port=closed_port)
    report = diagnose(account)
    finding = expect(report, Code.PLAINTEXT_LOGIN_DISABLED, text="LOGINDISABLED", cause="no encryption",
                     remedy="change the encryption to STARTTLS")
    assert finding.data["security"] == "starttls"
    assert not any("LOGIN " in line.upper() for line in imap.received)


def test_no_password_in_clear_without_explicit_permission(serve: Serve, closed_port: int) -> None:
    imap = serve(ImapScript(starttls=False))
    account = make_account(incoming=(imap.port, Security.NONE), unused_port=closed_port)
    report = diagnose(account)
    expect(report, Code.ENCRYPTION_OFF)
    expect(report, Code.PLAINTEXT_REFUSED, text="did not send your password", remedy="STARTTLS or SSL/TLS")
    assert not any("LOGIN " in line.upper() for line in imap.received)


def test_plaintext_password_when_explicitly_allowed(serve: Serve, closed_port: int) -> None:
    imap = serve(ImapScript(starttls=False))
    account = make_account(incoming=(imap.port, Security.NONE), allow_plaintext_password=True,
                           unused_port=closed_port)
    report = diagnose(account)
    assert expect(report, Code.ENCRYPTION_OFF).status is Status.WARNING
    assert next(f for f in report.for_server(Server.INCOMING) if f.step is Step.LOGIN).status is Status.OK


# --------------------------------------------------------------------------- login


def test_wrong_password(serve: Serve, certs: Certs, closed_port: int) -> None:
    imap = serve(ImapScript(), tls=certs.good)
    account = make_account(incoming=(imap.port, Security.SSL), ca_file=certs.ca_file, unused_port=closed_port)
    report = diagnose(account, password="not-the-password-7")
    assert_secret_absent = "not-the-password-7"
    finding = expect(report, Code.AUTH_FAILED, text="AUTHENTICATIONFAILED", cause="password",
                     remedy="re-enter the password")
    assert assert_secret_absent not in report.to_json() + rendered(report)
    assert finding.data["server_said"] == "[AUTHENTICATIONFAILED] Authentication failed."


def test_smtp_demands_app_password(serve: Serve, certs: Certs, closed_port: int) -> None:
    google = (
        "534-5.7.9 Application-specific password required. Learn more at",
        "534 5.7.9 https://support.google.com/mail/?p=InvalidSecondFactor d2-20020a05600c34c200b0040e4a7a7ca0sm1",
    )
    smtp = serve(SmtpScript(auth_failure=google), tls=certs.good)
    account = make_account(outgoing=(smtp.port, Security.SSL), ca_file=certs.ca_file, unused_port=closed_port)
    report = diagnose(account, password="my-normal-password-1")
    finding = expect(report, Code.APP_PASSWORD_REQUIRED, text="Application-specific password required",
                     cause="two-step verification", remedy="create an app password")
    assert finding.server is Server.OUTGOING


@pytest.mark.parametrize(
    ("server_says", "code", "remedy"),
    [
        ("NO [ALERT] Your account is not enabled for IMAP use.", Code.ACCOUNT_DISABLED, "enable IMAP"),
        ("NO [ALERT] Too many simultaneous connections. (Failure)", Code.TOO_MANY_CONNECTIONS, "wait"),
        ("NO AUTHENTICATE failed: basic authentication is disabled", Code.OAUTH_REQUIRED, "OAuth"),
        ("NO [ALERT] Application-specific password required: https://x (Failure)",
         Code.APP_PASSWORD_REQUIRED, "app password"),
    ],
)
def test_login_refusals_are_told_apart(serve: Serve, certs: Certs, closed_port: int, server_says: str,
                                       code: Code, remedy: str) -> None:
    imap = serve(ImapScript(login_failure=server_says), tls=certs.good)
    account = make_account(incoming=(imap.port, Security.SSL), ca_file=certs.ca_file, unused_port=closed_port)
    report = diagnose(account, password="whatever-pw-2")
    expect(report, code, remedy=remedy)


def test_username_given_as_local_part(serve: Serve, certs: Certs, closed_port: int) -> None:
    imap = serve(ImapScript(), tls=certs.good)  # knows only the full address
    account = make_account(incoming=(imap.port, Security.SSL), ca_file=certs.ca_file, username="alice",
                           unused_port=closed_port)
    report = diagnose(account)
    finding = expect(report, Code.USERNAME_FORM, text=f"accepted “{EMAIL}”", cause="full email address",
                     remedy=f"user name to {EMAIL}")
    assert finding.data["username"] == EMAIL
    assert finding.status is Status.FAILED


def test_pop3_wrong_password(serve: Serve, certs: Certs, closed_port: int) -> None:
    pop = serve(Pop3Script(), tls=certs.good)
    account = make_account(incoming=(pop.port, Security.SSL), incoming_protocol=Protocol.POP3,
                           ca_file=certs.ca_file, unused_port=closed_port)
    report = diagnose(account, password="wrong-pop-password")
    expect(report, Code.AUTH_FAILED, text="[AUTH] Authentication failed")


# --------------------------------------------------------------------------- sending


def test_relay_refused_without_auth(serve: Serve, certs: Certs, closed_port: int) -> None:
    smtp = serve(SmtpScript(tls=certs.good, require_auth=False))
    account = make_account(outgoing=(smtp.port, Security.STARTTLS), ca_file=certs.ca_file, auth_required=False,
                           unused_port=closed_port)
    report = diagnose(account)
    finding = expect(report, Code.RELAY_DENIED, text="Relay access denied", cause="does not log in",
                     remedy="My outgoing server (SMTP) requires authentication")
    assert finding.step is Step.SEND
    assert not any(line.upper().startswith("DATA") for line in smtp.received)


def test_server_requires_auth_but_account_does_not_log_in(serve: Serve, certs: Certs, closed_port: int) -> None:
    smtp = serve(SmtpScript(tls=certs.good, require_auth=True))
    account = make_account(outgoing=(smtp.port, Security.STARTTLS), ca_file=certs.ca_file, auth_required=False,
                           unused_port=closed_port)
    report = diagnose(account)
    finding = expect(report, Code.AUTH_NOT_ENABLED, text="requires a login",
                     remedy="turn on 'My outgoing server (SMTP) requires authentication'")
    assert finding.step is Step.LOGIN


def test_settings_differ_from_provider(serve: Serve, certs: Certs) -> None:
    imap, smtp = working_pair(serve, certs)
    provider = ProviderHint(
        "Spectrum",
        (
            Recommendation(Protocol.IMAP, "127.0.0.1", imap.port, Security.SSL),
            Recommendation(Protocol.SMTP, "127.0.0.1", 587, Security.STARTTLS),
        ),
    )
    account = make_account(incoming=(imap.port, Security.SSL), outgoing=(smtp.port, Security.STARTTLS),
                           ca_file=certs.ca_file)
    report = diagnose(account, provider=provider)
    finding = expect(report, Code.SETTINGS_DIFFER, remedy="port 587, STARTTLS")
    assert finding.text == (
        f"Spectrum recommends port 587 with STARTTLS for outgoing mail; this account uses port {smtp.port} "
        "with STARTTLS"
    )
    assert finding.status is Status.WARNING
    assert report.ok  # a difference is advice, not a failure
    incoming_review = next(f for f in report.for_server(Server.INCOMING) if f.step is Step.SETTINGS)
    assert incoming_review.status is Status.OK


def test_total_time_is_bounded(blackholed_port: int) -> None:
    tight = FAST.__class__(**{**FAST.__dict__, "total": 1.5})
    account = make_account(incoming=(blackholed_port, Security.SSL), outgoing=(blackholed_port, Security.SSL))
    report = diagnose(account, timeouts=tight)
    assert report.duration_ms < 4000
    assert report.find(Code.TIME_LIMIT) is not None


def test_password_never_printed(serve: Serve, certs: Certs, closed_port: int) -> None:
    # A server that echoes the credentials back in its refusal must not leak them either: the
    # doctor keeps that answer's response code and drops its words (nothing is masked afterwards).
    echo = f"NO [AUTHENTICATIONFAILED] bad credentials for {EMAIL} / {PASSWORD}"
    imap = serve(ImapScript(login_failure=echo, users={}), tls=certs.good)
    account = make_account(incoming=(imap.port, Security.SSL), ca_file=certs.ca_file, unused_port=closed_port)
    report = diagnose(account)
    finding = expect(report, Code.AUTH_FAILED)
    assert "[AUTHENTICATIONFAILED]" in finding.text and "repeats the credentials; not shown" in finding.text
    assert PASSWORD not in report.to_json() and "****" not in report.to_json()


def test_preauth_before_starttls_is_refused(serve: Serve, certs: Certs, closed_port: int) -> None:
    imap = serve(ImapScript(greeting="* PREAUTH IMAP4rev1 logged in", tls=certs.good))
    account = make_account(incoming=(imap.port, Security.STARTTLS), ca_file=certs.ca_file,
                           unused_port=closed_port)
    report = diagnose(account)
    expect(report, Code.STARTTLS_MISSING, text="PREAUTH", cause="downgrade")
    assert not any(line.split(" ")[1:2] in (["SELECT"], ["EXAMINE"], ["LIST"], ["LOGIN"])
                   for line in imap.received)


@pytest.mark.parametrize(
    ("greeting", "code"),
    [
        ("* BYE Too many connections from your IP address", Code.TOO_MANY_CONNECTIONS),
        ("* BYE Server shutting down", Code.GREETING_REFUSED),
        ("+OK POP3 ready", Code.PROTOCOL_ERROR),
    ],
)
def test_bad_greetings(serve: Serve, certs: Certs, closed_port: int, greeting: str, code: Code) -> None:
    imap = serve(ImapScript(greeting=greeting), tls=certs.good)
    account = make_account(incoming=(imap.port, Security.SSL), ca_file=certs.ca_file, unused_port=closed_port)
    report = diagnose(account)
    finding = expect(report, code)
    assert finding.step is Step.GREETING


def test_smtp_port_configured_for_imap(serve: Serve, certs: Certs, closed_port: int) -> None:
    imap = serve(ImapScript(), tls=certs.good)
    account = make_account(outgoing=(imap.port, Security.SSL), ca_file=certs.ca_file, unused_port=closed_port)
    report = diagnose(account)
    expect(report, Code.PROTOCOL_ERROR, text="is an IMAP server", remedy="SMTP port")


def test_smtp_greeting_refusal(serve: Serve, certs: Certs, closed_port: int) -> None:
    smtp = serve(SmtpScript(greeting="554 5.7.1 Service unavailable; client host blocked using zen.spamhaus.org"),
                 tls=certs.good)
    account = make_account(outgoing=(smtp.port, Security.SSL), ca_file=certs.ca_file, unused_port=closed_port)
    report = diagnose(account)
    expect(report, Code.GREETING_REFUSED, text="spamhaus", remedy="587 with STARTTLS")


def test_plain_text_refusal_is_marked_unverified(serve: Serve, closed_port: int) -> None:
    phish = "* BYE [ALERT] Your password expired, enter it at http://phish.example"
    imap = serve(ImapScript(greeting=phish))
    account = make_account(incoming=(imap.port, Security.STARTTLS), unused_port=closed_port)
    report = diagnose(account)
    finding = expect(report, Code.GREETING_REFUSED)
    assert "may not come from the real server" in finding.text


# --------------------------------------------------------------------------- the remaining codes


def test_name_without_address(dns_server: Callable[..., NxDomainServer], closed_port: int) -> None:
    dns = dns_server({"example.org": ""})
    account = make_account(host="example.org", unused_port=closed_port)
    report = diagnose(account, resolver=dns.resolver())
    expect(report, Code.DNS_NO_ADDRESS, cause="domain name, not a server name")


def test_dns_server_not_answering(closed_port: int) -> None:
    dead = DnsResolver(nameservers=("127.0.0.1",), port=closed_port, use_system_fallback=False)
    account = make_account(host="imap.example.org", unused_port=closed_port)
    report = diagnose(account, resolver=dead)
    expect(report, Code.DNS_FAILED, cause="offline", remedy="log in there")


def test_network_unreachable(closed_port: int) -> None:
    # The loopback broadcast address: connect() fails with ENETUNREACH, no packet leaves the host.
    account = make_account(host="127.255.255.255", unused_port=closed_port)
    report = diagnose(account)
    expect(report, Code.NETWORK_UNREACHABLE, cause="offline", remedy="network connection")


def test_no_alternative_port_works(closed_port: int, blackholed_port: int) -> None:
    account = make_account(incoming=(closed_port, Security.SSL), unused_port=closed_port)
    report = diagnose(account, alternatives={Protocol.IMAP: [(blackholed_port, Security.STARTTLS)]})
    finding = expect(report, Code.NO_PORT_REACHABLE, text=f"tried {blackholed_port}", remedy="hotspot")
    assert finding.data["tried"] == [{"port": blackholed_port, "result": "timed out"}]


def test_tls_handshake_failure(serve: Serve, certs: Certs, closed_port: int) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    certs.ca.issue_cert("127.0.0.1").configure_cert(context)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-ECDSA-NULL-SHA:@SECLEVEL=0")  # nothing a sane client offers
    imap = serve(ImapScript(), tls=context)
    account = make_account(incoming=(imap.port, Security.SSL), ca_file=certs.ca_file, unused_port=closed_port)
    report = diagnose(account)
    expect(report, Code.TLS_HANDSHAKE_FAILED, cause="no TLS settings in common")


def test_certificate_expiring_soon(serve: Serve, certs: Certs, closed_port: int) -> None:
    now = dt.datetime.now(dt.UTC)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    certs.ca.issue_cert("127.0.0.1", not_before=now - dt.timedelta(days=80),
                        not_after=now + dt.timedelta(days=5)).configure_cert(context)
    imap = serve(ImapScript(), tls=context)
    account = make_account(incoming=(imap.port, Security.SSL), ca_file=certs.ca_file, unused_port=closed_port)
    report = diagnose(account)
    finding = expect(report, Code.CERTIFICATE_EXPIRING, text="expires on")
    assert finding.status is Status.WARNING and report.server_ok(Server.INCOMING)


def test_smtp_only_offers_oauth(serve: Serve, certs: Certs, closed_port: int) -> None:
    smtp = serve(SmtpScript(auth="XOAUTH2 OAUTHBEARER"), tls=certs.good)
    account = make_account(outgoing=(smtp.port, Security.SSL), ca_file=certs.ca_file, unused_port=closed_port)
    report = diagnose(account)
    expect(report, Code.OAUTH_REQUIRED, text="only accepts OAuth", remedy="OAuth")
    assert not any(line.upper().startswith("AUTH") for line in smtp.received)


def test_smtp_offers_no_auth_but_relays(serve: Serve, certs: Certs, closed_port: int) -> None:
    smtp = serve(SmtpScript(auth="", require_auth=False, relay_without_auth=True), tls=certs.good)
    account = make_account(outgoing=(smtp.port, Security.SSL), ca_file=certs.ca_file, unused_port=closed_port)
    report = diagnose(account)
    finding = expect(report, Code.AUTH_NOT_OFFERED, cause="without a login")
    assert finding.status is Status.WARNING
    assert report.server_ok(Server.OUTGOING)


def test_test_message_refused(serve: Serve, certs: Certs, closed_port: int) -> None:
    smtp = serve(SmtpScript(data_reply="554 5.7.1 Message rejected as spam"), tls=certs.good)
    account = make_account(outgoing=(smtp.port, Security.SSL), ca_file=certs.ca_file, unused_port=closed_port)
    report = diagnose(account, send_test=True)
    expect(report, Code.SEND_REFUSED, text="rejected as spam")


def test_round_trip_timeout(serve: Serve, certs: Certs) -> None:
    imap = serve(ImapScript(), tls=certs.good)  # its own, empty mailbox: the message never shows up
    smtp = serve(SmtpScript(), tls=certs.good)
    account = make_account(incoming=(imap.port, Security.SSL), outgoing=(smtp.port, Security.SSL),
                           ca_file=certs.ca_file)
    quick = FAST.__class__(**{**FAST.__dict__, "round_trip": 0.6})
    report = diagnose(account, round_trip=True, timeouts=quick)
    finding = expect(report, Code.ROUND_TRIP_TIMEOUT, remedy="spam folder")
    assert finding.status is Status.WARNING
    assert report.ok  # sending and receiving both work; delivery is just slow or filtered


def test_doctor_bug_is_reported_not_raised(closed_port: int) -> None:
    class BrokenResolver:
        def resolve(self, host: str, timeout: float) -> list[str]:
            raise RuntimeError("resolver exploded")

    account = make_account(host="imap.example.org", unused_port=closed_port)
    report = diagnose(account, resolver=BrokenResolver())
    finding = expect(report, Code.INTERNAL_ERROR, text="resolver exploded", remedy="report")
    assert finding.step is Step.DNS


def test_unknown_provider_is_not_compared(closed_port: int) -> None:
    report = diagnose(make_account(unused_port=closed_port))
    finding = expect(report, Code.PROVIDER_UNKNOWN, text="example.org")
    assert finding.status is Status.SKIPPED

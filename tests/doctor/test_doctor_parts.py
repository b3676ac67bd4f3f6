"""The doctor's pure parts: report aggregation, classification, certificates, DNS, rendering, docs."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from doctorkit import NxDomainServer, rendered
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from deskmail.cli.doctor_render import DoctorPrinter
from deskmail.doctor import MEANINGS, Code, DnsResolver, Finding, Report, Server, Status, Step
from deskmail.doctor.certinfo import parse_certificate
from deskmail.doctor.checks import username_alternatives
from deskmail.doctor.classify import classify_login_failure, smtp_needs_auth, smtp_relay_refusal
from deskmail.doctor.interception import interceptor_name
from deskmail.doctor.providers import provider_hint
from deskmail.doctor.resolve import DnsFailure
from deskmail.model import Protocol, Security

DOCS = Path(__file__).resolve().parents[2] / "docs" / "doctor.md"


def finding(server: Server, step: Step, status: Status = Status.OK, code: Code = Code.OK, text: str = "x",
            **kw: object) -> Finding:
    return Finding(server=server, step=step, status=status, code=code, text=text, **kw)  # type: ignore[arg-type]


def full_chain(server: Server) -> list[Finding]:
    steps = [Step.DNS, Step.TCP, Step.TLS, Step.GREETING, Step.LOGIN]
    if server is Server.OUTGOING:
        steps.append(Step.SEND)
    return [finding(server, step) for step in steps]


# --------------------------------------------------------------------------- report


def test_report_ok_needs_every_essential_step_of_both_servers() -> None:
    good = Report("a", tuple(full_chain(Server.INCOMING) + full_chain(Server.OUTGOING)))
    assert good.ok and good.summary() == "Incoming works. Outgoing works."
    no_login = Report("a", (*full_chain(Server.INCOMING)[:-1],
                            finding(Server.INCOMING, Step.LOGIN, Status.SKIPPED, Code.NOT_CHECKED,
                                    "Not checked: no password was given"),
                            *full_chain(Server.OUTGOING)))
    assert not no_login.ok
    assert no_login.summary().startswith("Incoming was not fully checked: no password was given.")
    only_incoming = Report("a", tuple(full_chain(Server.INCOMING)))
    assert not only_incoming.ok and "Outgoing was not checked" in only_incoming.summary()


def test_warnings_and_settings_do_not_break_ok() -> None:
    findings = [*full_chain(Server.INCOMING), *full_chain(Server.OUTGOING),
                finding(Server.OUTGOING, Step.SETTINGS, Status.WARNING, Code.SETTINGS_DIFFER, "Differs")]
    findings[2] = finding(Server.INCOMING, Step.TLS, Status.WARNING, Code.TLS_INTERCEPTION, "Avast inspects")
    report = Report("a", tuple(findings))
    assert report.ok
    assert report.status(Server.INCOMING) is Status.WARNING
    assert report.status(Server.OUTGOING) is Status.WARNING
    assert report.summary() == (
        "Incoming works, with a warning: avast inspects. Outgoing works, with a warning: differs."
    )


def test_summary_names_the_failure_and_its_remedy() -> None:
    outgoing = full_chain(Server.OUTGOING)
    outgoing[1] = finding(Server.OUTGOING, Step.TCP, Status.FAILED, Code.CONNECTION_TIMEOUT,
                          "No answer on port 587", remedy="Allow port 587")
    outgoing.insert(2, finding(Server.OUTGOING, Step.PORTS, Status.FAILED, Code.PORT_BLOCKED,
                               "Port 587 is blocked, but port 465 with SSL/TLS works",
                               remedy="Change the outgoing server port to 465"))
    report = Report("a", tuple(full_chain(Server.INCOMING) + outgoing))
    assert report.summary() == (
        "Incoming works. Outgoing fails: port 587 is blocked, but port 465 with SSL/TLS works; "
        "change the outgoing server port to 465."
    )


def test_json_is_complete_and_stable() -> None:
    report = Report("acct", (finding(Server.INCOMING, Step.TCP, Status.FAILED, Code.CONNECTION_REFUSED,
                                     "Refused", cause="c", remedy="r", duration_ms=12, data={"port": 993}),))
    data = json.loads(report.to_json())
    assert data["account"] == "acct" and data["ok"] is False
    assert data["incoming"] == "failed" and data["outgoing"] == "ok"
    assert data["findings"] == [{
        "server": "incoming", "step": "tcp", "status": "failed", "code": "connection_refused",
        "text": "Refused", "cause": "c", "remedy": "r", "duration_ms": 12, "data": {"port": 993},
    }]


def test_findings_keep_every_word_as_written() -> None:
    # Secrets are kept out by structure (the wire), so nothing masks words afterwards: a password
    # such as "false" or "e" can no longer turn "false" into "****" or break the JSON.
    f = finding(Server.INCOMING, Step.LOGIN, Status.FAILED, Code.AUTH_FAILED, "the server said false, e-mail",
                cause="password", data={"server_said": ["false"], "ok": False})
    assert f.text == "the server said false, e-mail" and f.cause == "password"
    data = json.loads(json.dumps(f.to_dict()))
    assert data["data"] == {"server_said": ["false"], "ok": False}


def test_every_code_is_explained_in_meanings_and_docs() -> None:
    from deskmail.codes import DOCTOR_CODES

    docs = DOCS.read_text()
    documented = set(re.findall(r"^\| `([a-z0-9_]+)` \| (?:ok|failed|warning|skipped)", docs, re.MULTILINE))
    codes = {code.value for code in DOCTOR_CODES}
    assert set(MEANINGS) == set(Code)
    assert codes == documented, f"undocumented: {codes - documented}; stale: {documented - codes}"
    engine_codes = set(re.findall(r"^\| `([a-z0-9_]+)` \| [A-Z]\w+ \|", (DOCS.parent / "errors.md").read_text(),
                                  re.MULTILINE))
    assert engine_codes == {c.value for c in Code} - codes


# --------------------------------------------------------------------------- rendering


def test_printer_streams_lines_and_summary() -> None:
    out = io.StringIO()
    printer = DoctorPrinter(Console(file=out, width=160, color_system=None))
    findings = [*full_chain(Server.INCOMING)]
    findings.append(finding(Server.OUTGOING, Step.TCP, Status.FAILED, Code.CONNECTION_REFUSED,
                            "Refused on port 587", cause="Nothing listens", remedy="Check the port"))
    for f in findings:
        printer(f)
    printer.summary(Report("a", tuple(findings), duration_ms=1500))
    text = out.getvalue()
    assert "Incoming server" in text and "Outgoing server" in text
    assert "✘ connection  Refused on port 587" in text
    assert "Likely cause: Nothing listens." in text and "What to do: Check the port." in text
    assert "[connection_refused]" in text
    assert "Outgoing fails: refused on port 587; check the port." in " ".join(text.split())
    assert "Checked in 1.5 s." in text


def test_render_report_can_hide_skipped() -> None:
    report = Report("a", (finding(Server.INCOMING, Step.LOGIN, Status.SKIPPED, Code.NOT_CHECKED, "Skipped me"),))
    assert "Skipped me" in rendered(report)


# --------------------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("5.7.9 Application-specific password required. Learn more at https://support.google.com/mail/"
         "?p=InvalidSecondFactor", Code.APP_PASSWORD_REQUIRED),
        ("[ALERT] Application-specific password required: https://support.google.com/accounts/answer/185833",
         Code.APP_PASSWORD_REQUIRED),
        ("5.7.14 Please log in via your web browser and then try again", Code.APP_PASSWORD_REQUIRED),
        ("Authentication unsuccessful, basic authentication is disabled", Code.OAUTH_REQUIRED),
        ("5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant",
         Code.OAUTH_REQUIRED),
        ("[ALERT] Your account is not enabled for IMAP use.", Code.ACCOUNT_DISABLED),
        ("User is authenticated but not connected.", Code.ACCOUNT_DISABLED),
        ("Maximum number of connections from user+IP exceeded (mail_max_userip_connections=10)",
         Code.TOO_MANY_CONNECTIONS),
        ("[IN-USE] Mailbox is locked by another POP3 session", Code.TOO_MANY_CONNECTIONS),
        ("[AUTHENTICATIONFAILED] Authentication failed.", Code.AUTH_FAILED),
        ("5.7.139 Authentication unsuccessful, the user credentials were incorrect.", Code.AUTH_FAILED),
        ("[AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.",
         Code.PLAINTEXT_LOGIN_DISABLED),
        ("[PRIVACYREQUIRED] Plaintext authentication disallowed", Code.PLAINTEXT_LOGIN_DISABLED),
    ],
)
def test_login_failure_texts(text: str, code: Code) -> None:
    assert classify_login_failure(text) is code


def test_smtp_refusals() -> None:
    assert smtp_needs_auth(530, "5.7.0 Authentication required")
    assert smtp_needs_auth(550, "5.7.0 Authentication is required to send")
    assert not smtp_needs_auth(554, "5.7.1 <x@gmail.com>: Relay access denied")
    assert smtp_relay_refusal(554, "5.7.1 <x@gmail.com>: Relay access denied")
    assert smtp_relay_refusal(550, "5.7.1 Unable to relay")
    assert not smtp_relay_refusal(550, "5.1.1 User unknown")


@pytest.mark.parametrize(
    ("username", "email", "expected"),
    [
        ("alice", "alice@example.org", ["alice@example.org"]),
        ("alice@example.org", "alice@example.org", ["alice"]),
        ("bob", "alice@example.org", ["bob@example.org"]),
        ("", "alice@example.org", []),
    ],
)
def test_username_alternatives(username: str, email: str, expected: list[str]) -> None:
    assert username_alternatives(username, email) == expected


# --------------------------------------------------------------------------- certificates


def _der(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode())


def test_certinfo_agrees_with_cryptography() -> None:
    ca = trustme.CA(organization_name="Kaspersky Anti-Virus Personal Root")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    leaf = ca.issue_cert("mail.example.net", "127.0.0.1", "::1", common_name="mail.example.net",
                         not_before=now - dt.timedelta(days=1), not_after=now + dt.timedelta(days=3))
    pem = leaf.cert_chain_pems[0].bytes()
    ours = parse_certificate(_der(pem))
    theirs = x509.load_pem_x509_certificate(pem)
    assert ours.not_after == theirs.not_valid_after_utc
    assert ours.not_before == theirs.not_valid_before_utc
    assert ours.dns_names == ("mail.example.net",)
    assert ours.ip_addresses == ("127.0.0.1", "::1")
    assert ours.subject_cn == "mail.example.net"
    assert ours.issuer_org == "Kaspersky Anti-Virus Personal Root"
    assert not ours.self_issued
    assert parse_certificate(_der(ca.cert_pem.bytes())).self_issued
    assert interceptor_name(ours) == "Kaspersky"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_certinfo_never_crashes_on_garbage(data: bytes) -> None:
    try:
        parse_certificate(data)
    except ValueError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=2000), st.binary(min_size=1, max_size=8))
def test_certinfo_never_crashes_on_damaged_certificates(position: int, junk: bytes) -> None:
    der = _der(trustme.CA().cert_pem.bytes())
    position %= len(der)
    damaged = der[:position] + junk + der[position + len(junk):]
    try:
        parse_certificate(damaged)
    except ValueError:
        pass


@pytest.mark.parametrize(
    ("issuer", "product"),
    [
        ("Avast Web/Mail Shield Root", "Avast"),
        ("AVG Web/Mail Shield Root", "AVG"),
        ("ESET SSL Filter CA", "ESET"),
        ("Bitdefender Personal CA.Net-Defender", "Bitdefender"),
        ("Zscaler Root CA", "Zscaler"),
        ("FortiGate CA", "Fortinet FortiGate"),
        ("Let's Encrypt", None),
        ("Sectigo RSA Domain Validation Secure Server CA", None),
        ("DigiCert Global G2 TLS RSA SHA256 2020 CA1", None),
        ("Preset Certificates Inc", None),  # "eset" inside a word is not ESET
    ],
)
def test_interceptor_names(issuer: str, product: str | None) -> None:
    ca = trustme.CA(organization_name=issuer)
    info = parse_certificate(_der(ca.issue_cert("x.example").cert_chain_pems[0].bytes()))
    assert interceptor_name(info) == product


# --------------------------------------------------------------------------- DNS and providers


def test_dns_resolver_answers(dns_server: Callable[..., NxDomainServer]) -> None:
    server = dns_server({"mail.test.example": "127.0.0.9"})
    resolver = server.resolver()
    assert resolver.resolve("mail.test.example", 1.0) == ["127.0.0.9"]
    assert resolver.resolve("192.0.2.7", 1.0) == ["192.0.2.7"]  # literals are not looked up
    with pytest.raises(DnsFailure) as nx:
        resolver.resolve("nope.test.example", 1.0)
    assert nx.value.kind == "not_found"


def test_dns_resolver_without_answering_server(closed_port: int) -> None:
    resolver = DnsResolver(nameservers=("127.0.0.1",), port=closed_port, use_system_fallback=False)
    with pytest.raises(DnsFailure) as failure:
        resolver.resolve("mail.test.example", 0.5)
    assert failure.value.kind == "failed"


def test_provider_hint_for_the_founding_provider() -> None:
    hint = provider_hint("bob@spectrum.net")
    assert hint is not None and hint.name.startswith("Spectrum")
    smtp = hint.for_protocol(Protocol.SMTP)[0]
    assert (smtp.host, smtp.port, smtp.security) == ("smtp.spectrum.net", 587, Security.STARTTLS)
    imap = hint.for_protocol(Protocol.IMAP)[0]
    assert (imap.host, imap.port, imap.security) == ("imap.spectrum.net", 993, Security.SSL)
    assert provider_hint("someone@nowhere-provider.invalid") is None

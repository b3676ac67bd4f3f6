"""What every part of the doctor shares: timeouts, the run's state, targets, diagnoses.

A :class:`Diagnosis` is a check's non-ok outcome on its way to becoming a
:class:`~deskmail.doctor.report.Finding`; raising it ends a server's chain.
A :class:`Target` is a concrete endpoint (the configured one, or a working
alternative port). :class:`Run` holds what one ``run_doctor`` call shares: the
account, the password, the deadline and the ``on_step`` stream.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from deskmail.doctor.providers import ProviderHint
from deskmail.doctor.report import Code, Finding, Server, Status, Step
from deskmail.doctor.resolve import Resolver
from deskmail.doctor.wire import Capabilities, ImapSession, Pop3Session, SmtpSession, Wire
from deskmail.model import Account, Protocol, Security
from deskmail.net.tls import client_context
from deskmail.secrets import Secret

Alternatives = Mapping[Protocol, Sequence[tuple[int, Security]]]

# Tried, in this order, when the configured port cannot be reached. Port 25 is
# last: ISPs block it for home connections and it is meant for server-to-server mail.
DEFAULT_ALTERNATIVES: dict[Protocol, tuple[tuple[int, Security], ...]] = {
    Protocol.SMTP: ((587, Security.STARTTLS), (465, Security.SSL), (25, Security.STARTTLS)),
    Protocol.IMAP: ((993, Security.SSL), (143, Security.STARTTLS)),
    Protocol.POP3: ((995, Security.SSL), (110, Security.STARTTLS)),
}

# ssl.SSLError reasons that mean "we could not agree on a TLS version".
VERSION_REASONS = {
    "UNSUPPORTED_PROTOCOL",
    "TLSV1_ALERT_PROTOCOL_VERSION",
    "NO_PROTOCOLS_AVAILABLE",
    "WRONG_SSL_VERSION",
    "VERSION_TOO_LOW",
}
# How each protocol's greeting starts (ok, or a refusal): tells a plain-text
# greeting from silence or TLS bytes, and an IMAP port from an SMTP one.
GREETING_PREFIXES = {
    Protocol.IMAP: ("* OK", "* PREAUTH", "* BYE"),
    Protocol.POP3: ("+OK", "-ERR"),
    Protocol.SMTP: ("220", "421", "554"),
}
EXPIRY_WARNING_DAYS = 14


@dataclass(frozen=True)
class Timeouts:
    """Seconds. Each wait is also cut short by ``total``, the whole run's budget."""

    dns: float = 5.0
    connect: float = 8.0
    sniff: float = 2.0  # wait for a greeting before suspecting an SSL/TLS-only port
    greeting: float = 15.0  # total wait for a greeting (Postfix postscreen delays ~6 s)
    tls: float = 10.0
    command: float = 15.0
    alternative: float = 4.0  # connect timeout per alternative port
    round_trip: float = 60.0
    poll_interval: float = 2.0
    total: float = 180.0


class Diagnosis(Exception):
    """A check's non-ok outcome; becomes a finding."""

    def __init__(
        self,
        step: Step,
        code: Code,
        text: str,
        cause: str = "",
        remedy: str = "",
        *,
        status: Status = Status.FAILED,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(text)
        self.step = step
        self.code = code
        self.text = text
        self.cause = cause
        self.remedy = remedy
        self.status = status
        self.data = dict(data or {})


@dataclass(frozen=True)
class Target:
    """A concrete endpoint: the configured one, or a working alternative."""

    protocol: Protocol
    host: str
    address: str
    port: int
    security: Security

    @property
    def where(self) -> str:
        return f"{self.host} port {self.port}"


@dataclass
class Session:
    """An established connection, ready for login."""

    wire: Wire
    client: ImapSession | Pop3Session | SmtpSession
    caps: Capabilities
    target: Target
    logged_in: bool = False
    username: str = ""

    def close(self) -> None:
        try:
            self.client.logout()
        finally:
            self.wire.close()


@dataclass
class Run:
    """Shared state of one doctor run."""

    account: Account
    password: Secret | None
    timeouts: Timeouts
    resolver: Resolver
    alternatives: Alternatives
    provider: ProviderHint | None
    on_step: Callable[[Finding], None] | None
    deadline: float
    findings: list[Finding] = field(default_factory=list)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def limit(self, seconds: float) -> float:
        return max(0.0, min(seconds, self.remaining()))

    def emit(self, finding: Finding) -> Finding:
        self.findings.append(finding)
        if self.on_step is not None:
            self.on_step(finding)
        return finding


def elapsed_ms(started: float) -> int:  # started: a time.monotonic() value
    return int((time.monotonic() - started) * 1000)


def seconds(value: float) -> str:
    return f"{value:g} s"


def security_phrase(security: Security) -> str:
    return "without encryption" if security is Security.NONE else f"with {security.label}"


def server_words(server: Server) -> str:
    return "incoming" if server is Server.INCOMING else "outgoing"


def inspection_context(ca_file: str) -> ssl.SSLContext:
    """A context that accepts any certificate, ONLY to look at it or detect TLS.

    Derived from client_context() so the protocol policy stays the same. Nothing
    is ever sent over a connection made with it except the STARTTLS dialogue.
    """
    context = client_context(ca_file or None)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def legacy_context() -> ssl.SSLContext:
    """Detects servers stuck on TLS 1.0/1.1, to name the version; never carries data."""
    context = inspection_context("")
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    try:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    return context


def client_for(protocol: Protocol, wire: Wire, timeout: float) -> ImapSession | Pop3Session | SmtpSession:
    if protocol is Protocol.IMAP:
        return ImapSession(wire, timeout)
    if protocol is Protocol.POP3:
        return Pop3Session(wire, timeout)
    return SmtpSession(wire, timeout)


def lower_first(text: str) -> str:
    """"No answer from …" → "no answer from …" mid-sentence; "SSL/TLS …" stays as it is."""
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        return text[0].lower() + text[1:]
    return text

"""The checks for one server, in order, each ending in exactly one finding.

Theory of operation
-------------------
A server is checked as a chain: DNS → TCP → (ports) → TLS → greeting →
login → (send) → settings. A link that fails raises :class:`Diagnosis`; the
chain stops there, the failure becomes a finding, and every essential step not
reached is reported as ``not_checked``, so the GUI's checklist is always
complete and the first failure is always the root cause.

Two places deliberately look *past* a failure, because that is where the
useful answer is:

* the configured port cannot be reached → the standard alternatives are tried
  (:meth:`ServerCheck._ports`), and when one works the remaining checks run on
  it, so the report can say "port 587 is blocked, 465 with SSL/TLS works and
  your password is accepted there";
* a TLS failure → a second, *unverified* connection is opened only to read
  the certificate (who issued it, for which names, until when) or the plain
  greeting (mode mix-ups). That connection never carries credentials.

Credentials are sent only on a verified TLS connection, or in clear when the
account says security "none" *and* ``allow_plaintext_password``; the wire
enforces this a second time (:meth:`Wire.send_secret`).
"""

from __future__ import annotations

import errno
import secrets as random_tokens
import ssl
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from deskmail.doctor.classify import (
    classify_login_failure,
    mentions_too_many_connections,
    smtp_needs_auth,
    smtp_relay_refusal,
)
from deskmail.doctor.context import (
    DEFAULT_ALTERNATIVES,
    GREETING_PREFIXES,
    Diagnosis,
    Run,
    Session,
    Target,
    client_for,
    elapsed_ms,
    lower_first,
    seconds,
    security_phrase,
    server_words,
)
from deskmail.doctor.report import Code, Finding, Server, Status, Step
from deskmail.doctor.resolve import DnsFailure, ip_literal
from deskmail.doctor.tlsinspect import Inspector
from deskmail.doctor.wire import (
    Capabilities,
    ImapSession,
    PlaintextSecret,
    Pop3Session,
    Reply,
    SmtpSession,
    Wire,
    WireClosed,
    WireError,
    WireInjection,
    WireTimeout,
    display,
)
from deskmail.model import Protocol, Security, ServerSettings, email_domain
from deskmail.net.tls import client_context

_ESSENTIAL = {
    Server.INCOMING: (Step.DNS, Step.TCP, Step.TLS, Step.GREETING, Step.LOGIN),
    Server.OUTGOING: (Step.DNS, Step.TCP, Step.TLS, Step.GREETING, Step.LOGIN, Step.SEND),
}

_OUTSIDE_DOMAINS = ("gmail.com", "outlook.com")


def username_alternatives(username: str, email: str) -> list[str]:
    """The other usual form of a login name: full address ⇄ local part."""
    if "@" in username:
        local = username.partition("@")[0]
        return [local] if local else []
    if username and "@" in email:
        local, _, domain = email.partition("@")
        return [email if local.lower() == username.lower() else f"{username}@{domain}"]
    return []


class ServerCheck:
    """Runs the chain for one server (incoming or outgoing)."""

    def __init__(self, run: Run, server: Server, settings: ServerSettings, *, send_test: bool = False) -> None:
        self.run = run
        self.send_test = send_test
        self.test_message_id = ""
        self.sent_at = 0.0
        self.server = server
        self.settings = settings
        self.protocol = settings.protocol
        self.inspector = Inspector(run, settings)
        self.timeouts = run.timeouts
        self.account = run.account
        self.done: set[Step] = set()
        self.last_failure: Finding | None = None  # the latest failure explains what was not reached
        self.session: Session | None = None
        self.working: Target | None = None  # where login (or relaying) works
        self.working_username = settings.username
        self.login_skipped = ""  # why the login step was not tried (no password, OAuth); "" when it was

    # -- plumbing -------------------------------------------------------------

    def emit(
        self,
        step: Step,
        status: Status,
        code: Code,
        text: str,
        cause: str = "",
        remedy: str = "",
        *,
        started: float,
        data: Mapping[str, Any] | None = None,
    ) -> Finding:
        finding = self.run.emit(
            Finding(
                server=self.server,
                step=step,
                status=status,
                code=code,
                text=text,
                cause=cause,
                remedy=remedy,
                duration_ms=elapsed_ms(started),
                data=dict(data or {}),
            )
        )
        self.done.add(step)
        if status is Status.FAILED or code is Code.TIME_LIMIT:
            self.last_failure = finding
        return finding

    def emit_diagnosis(self, diagnosis: Diagnosis, started: float) -> Finding:
        return self.emit(
            diagnosis.step,
            diagnosis.status,
            diagnosis.code,
            diagnosis.text,
            diagnosis.cause,
            diagnosis.remedy,
            started=started,
            data=diagnosis.data,
        )

    def _time_limit(self, step: Step) -> Diagnosis:
        return Diagnosis(
            step,
            Code.TIME_LIMIT,
            f"Not checked: the doctor's time limit of {seconds(self.timeouts.total)} was reached",
            status=Status.SKIPPED,
        )

    def _budget(self, step: Step) -> None:
        if self.run.remaining() <= 0:
            raise self._time_limit(step)

    @property
    def allow_plaintext(self) -> bool:
        return self.settings.security is Security.NONE and self.account.allow_plaintext_password

    # -- the chain ------------------------------------------------------------

    def run_chain(self) -> None:
        started = time.monotonic()
        try:
            addresses = self._dns()
            started = time.monotonic()
            wire, target = self._tcp_and_ports(addresses)
            started = time.monotonic()
            self.session = self.establish(target, wire, report=True)
            started = time.monotonic()
            self._login()
            if self.server is Server.OUTGOING:
                started = time.monotonic()
                self._relay_and_send()
        except Diagnosis as diagnosis:
            self.emit_diagnosis(diagnosis, started)
        except _AlreadyReported:
            pass
        except Exception as exc:  # the doctor must report, never crash
            step = next((s for s in _ESSENTIAL[self.server] if s not in self.done), Step.SETTINGS)
            self.emit(
                step,
                Status.FAILED,
                Code.INTERNAL_ERROR,
                f"The doctor failed while checking the {server_words(self.server)} server "
                f"({type(exc).__name__}: {exc})",
                "a bug in deskmail's doctor",
                "please report this message to the deskmail developers",
                started=started,
            )
        self._not_reached()

    def close(self) -> None:
        if self.session is not None:
            try:
                self.session.close()
            except (WireError, OSError):
                pass
            self.session = None

    def _not_reached(self) -> None:
        last = self.last_failure
        for step in _ESSENTIAL[self.server]:
            if step in self.done:
                continue
            if last is not None and last.code is Code.TIME_LIMIT:
                self.emit(step, Status.SKIPPED, Code.TIME_LIMIT, last.text, started=time.monotonic())
                continue
            reason = last.text.rstrip(".") if last else "an earlier step did not pass"
            self.emit(
                step,
                Status.SKIPPED,
                Code.NOT_CHECKED,
                f"Not checked because {lower_first(reason)}",
                started=time.monotonic(),
            )

    # -- DNS ------------------------------------------------------------------

    def _dns(self) -> list[str]:
        started = time.monotonic()
        self._budget(Step.DNS)
        host = self.settings.host
        if ip_literal(host) is not None:
            self.emit(Step.DNS, Status.OK, Code.OK, f"{host} is an IP address; no name lookup needed",
                      started=started, data={"addresses": [ip_literal(host)]})
            return [ip_literal(host) or host]
        try:
            addresses = self.run.resolver.resolve(host, self.run.limit(self.timeouts.dns))
        except DnsFailure as failure:
            raise self._dns_diagnosis(failure) from None
        self.emit(
            Step.DNS,
            Status.OK,
            Code.OK,
            f"{host} resolves to {', '.join(addresses[:4])}",
            started=started,
            data={"addresses": addresses},
        )
        return addresses

    def _suggested_host(self) -> tuple[str, str] | None:
        provider = self.run.provider
        if provider is None:
            return None
        for rec in provider.for_protocol(self.protocol):
            if rec.host.lower() != self.settings.host.lower():
                return rec.host, provider.name
        return None

    def _dns_diagnosis(self, failure: DnsFailure) -> Diagnosis:
        host = self.settings.host
        suggestion = self._suggested_host()
        hint = (
            f"{suggestion[1]}'s {server_words(self.server)} server is {suggestion[0]}: "
            f"use that name"
            if suggestion
            else "check the spelling of the server name against your provider's help pages"
        )
        data = {"suggested_host": suggestion[0]} if suggestion else {}
        if failure.kind == "not_found":
            return Diagnosis(
                Step.DNS,
                Code.DNS_NOT_FOUND,
                f"The server name {host} does not exist (the DNS answered NXDOMAIN)",
                "the name is misspelled, or the provider has retired it",
                hint,
                data=data,
            )
        if failure.kind == "no_address":
            return Diagnosis(
                Step.DNS,
                Code.DNS_NO_ADDRESS,
                f"The name {host} exists but has no IPv4 or IPv6 address",
                "this is a domain name, not a server name (e.g. example.net instead of mail.example.net)",
                hint,
                data=data,
            )
        return Diagnosis(
            Step.DNS,
            Code.DNS_FAILED,
            f"The name {host} could not be looked up: {failure.detail}",
            "this computer is offline, a captive portal (hotel, train Wi-Fi) wants you to log in, "
            "or the DNS server is not answering",
            "check that other web sites open; if a login page appears, log in there, then try again",
        )

    # -- TCP and alternative ports -----------------------------------------------

    def _connect(self, addresses: Sequence[str], port: int, timeout: float) -> tuple[Wire, str]:
        """Connect to the first address that answers; raise the most telling OSError."""
        failures: list[OSError] = []
        for address in addresses[:4]:
            try:
                return Wire.connect(address, port, self.settings.host, self.run.limit(timeout)), address
            except OSError as exc:
                failures.append(exc)
        ranked = sorted(failures, key=_connect_error_rank)
        raise ranked[0] if ranked else OSError(errno.EHOSTUNREACH, "no address to connect to")

    def _tcp_and_ports(self, addresses: list[str]) -> tuple[Wire, Target]:
        started = time.monotonic()
        self._budget(Step.TCP)
        port = self.settings.port
        cut_short = self.run.remaining() < self.timeouts.connect
        try:
            wire, address = self._connect(addresses, port, self.timeouts.connect)
        except OSError as exc:
            if isinstance(exc, TimeoutError) and cut_short:
                # The run's budget ran out, not the server's patience: do not blame the network.
                raise self._time_limit(Step.TCP) from None
            diagnosis = self._connect_diagnosis(exc, port)
            self.emit_diagnosis(diagnosis, started)
            alternative = self._ports(addresses, diagnosis.code)
            if alternative is None:
                raise _AlreadyReported() from None
            return alternative
        self.emit(
            Step.TCP,
            Status.OK,
            Code.OK,
            f"Connected to {self.settings.host}"
            + (f" ({address})" if address != self.settings.host else "")
            + f" port {port}",
            started=started,
            data={"address": address, "port": port},
        )
        return wire, Target(self.protocol, self.settings.host, address, port, self.settings.security)

    def _connect_diagnosis(self, exc: OSError, port: int) -> Diagnosis:
        host = self.settings.host
        if isinstance(exc, ConnectionRefusedError):
            return Diagnosis(
                Step.TCP,
                Code.CONNECTION_REFUSED,
                f"{host} refused the connection on port {port}",
                f"no mail service listens on port {port} of this server (wrong port or wrong server), "
                "or a firewall rejects the connection",
                f"check the port number in your provider's settings; if it is right, allow outgoing "
                f"TCP connections to {host} port {port} in your firewall or antivirus",
                data={"port": port},
            )
        if isinstance(exc, TimeoutError):
            return Diagnosis(
                Step.TCP,
                Code.CONNECTION_TIMEOUT,
                f"No answer from {host} on port {port} within {seconds(self.timeouts.connect)}",
                f"a firewall, antivirus or the network (your internet provider, a hotel or office "
                f"network) silently drops connections to port {port}",
                f"allow outgoing TCP connections to {host} port {port} for deskmail in your firewall "
                "or antivirus; on a work or public network, ask its administrator, or try another port",
                data={"port": port},
            )
        if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            return Diagnosis(
                Step.TCP,
                Code.NETWORK_UNREACHABLE,
                f"{host} cannot be reached from this computer ({exc.strerror or exc})",
                "this computer is offline, a VPN is misconfigured, or the server only has an IPv6 "
                "address and this network has no IPv6",
                "check the network connection (and the VPN, if one is on), then try again",
                data={"port": port},
            )
        return Diagnosis(
            Step.TCP,
            Code.CONNECTION_REFUSED,
            f"Connecting to {host} port {port} failed ({exc.strerror or exc})",
            "the connection was rejected by the network",
            f"allow outgoing TCP connections to {host} port {port} in your firewall or antivirus",
            data={"port": port},
        )

    def _ports(self, addresses: list[str], failure: Code) -> tuple[Wire, Target] | None:
        started = time.monotonic()
        port = self.settings.port
        host = self.settings.host
        tried: list[dict[str, Any]] = []
        for alt_port, alt_security in self.run.alternatives.get(self.protocol, ()):
            if alt_port == port or self.run.remaining() <= 0:
                continue
            try:
                wire, address = self._connect(addresses, alt_port, self.timeouts.alternative)
            except OSError as exc:
                tried.append({"port": alt_port, "result": _connect_error_word(exc)})
                continue
            wire.close()
            mode = self.inspector.detect_mode(address, alt_port, alt_security)
            tried.append({"port": alt_port, "result": mode.value if mode else "no mail service"})
            if mode is None or mode is Security.NONE:
                continue  # never recommend a port that only works without encryption
            try:
                fresh = Wire.connect(address, alt_port, host, self.run.limit(self.timeouts.connect))
            except OSError:
                continue
            how = "blocked" if failure is Code.CONNECTION_TIMEOUT else "closed"
            what = lower_first(_connect_error_word_for(failure))
            self.emit(
                Step.PORTS,
                Status.FAILED,
                Code.PORT_BLOCKED,
                f"Port {port} is {how} ({what}), but port {alt_port} with {mode.label} works",
                f"the network, a firewall or antivirus blocks port {port}; some internet providers "
                "block mail ports to fight spam",
                f"change the {server_words(self.server)} server port to {alt_port} and the encryption "
                f"to {mode.label}, or allow port {port} in your firewall",
                started=started,
                data={"blocked_port": port, "port": alt_port, "security": mode.value, "tried": tried},
            )
            return fresh, Target(self.protocol, host, address, alt_port, mode)
        if tried or self.run.alternatives.get(self.protocol):
            ports = ", ".join(str(t["port"]) for t in tried) or "none"
            self.emit(
                Step.PORTS,
                Status.FAILED,
                Code.NO_PORT_REACHABLE,
                f"No other standard {self.protocol.value.upper()} port of {host} works either "
                f"(tried {ports})",
                "the whole server is unreachable from this network (firewall, antivirus, captive "
                "portal, VPN) or the server is down",
                "check the server name; try from another network (a phone hotspot) to tell a local "
                "block from a server outage",
                started=started,
                data={"tried": tried},
            )
        return None

    # -- TLS and greeting -----------------------------------------------------------

    def establish(self, target: Target, wire: Wire | None, *, report: bool) -> Session:
        """Greeting, capabilities and TLS as the settings say; raise Diagnosis on failure."""
        if wire is None:
            try:
                wire = Wire.connect(target.address, target.port, target.host, self.run.limit(self.timeouts.connect))
            except OSError as exc:
                raise self._connect_diagnosis(exc, target.port) from None
        try:
            return self._establish_on(target, wire, report=report)
        except BaseException:
            wire.close()
            raise

    def _start_tls(self, target: Target, wire: Wire) -> None:
        self._budget(Step.TLS)
        context = client_context(self.account.ca_file or None)
        try:
            wire.start_tls(context, self.run.limit(self.timeouts.tls))
        except ssl.SSLCertVerificationError as exc:
            raise self.inspector.certificate_diagnosis(target, exc) from None
        except WireInjection as exc:
            raise Diagnosis(
                Step.TLS,
                Code.STARTTLS_INJECTION,
                f"{target.where} sent extra data right after agreeing to STARTTLS ({exc})",
                "something between this computer and the server is trying to slip commands into "
                "the connection before it is encrypted (a man-in-the-middle attack), or the server "
                "is broken",
                "do not use this network for mail; use SSL/TLS on the provider's SSL port (993, 995 "
                "or 465) instead, which cannot be tampered with this way",
            ) from None
        except WireTimeout:
            raise Diagnosis(
                Step.TLS,
                Code.NO_RESPONSE,
                f"{target.where} accepted the connection but did not complete a TLS handshake "
                f"within {seconds(self.timeouts.tls)}",
                "the server is overloaded, or something on the way (firewall, antivirus) holds "
                "encrypted connections",
                "try again later; if it persists, try another network or port",
            ) from None
        except (ssl.SSLError, WireClosed, OSError) as exc:
            raise self.inspector.tls_error_diagnosis(target, exc) from None

    def _establish_on(self, target: Target, wire: Wire, *, report: bool) -> Session:
        host_port = target.where
        tls_started = time.monotonic()
        client = client_for(self.protocol, wire, self.run.limit(self.timeouts.command))
        tls_finding: Diagnosis | None = None
        tls_ms = 0
        if target.security is Security.SSL:
            self._start_tls(target, wire)
            tls_finding = self.inspector.tls_success(target, wire)
            tls_ms = elapsed_ms(tls_started)
        greeting_started = time.monotonic()
        self._budget(Step.GREETING)
        if target.security is not Security.SSL:
            self._await_plain_greeting(target, wire)
        try:
            greeting = client.greeting(self.run.limit(self.timeouts.greeting))
        except WireTimeout:
            raise self._no_greeting(target) from None
        except WireClosed as exc:
            raise Diagnosis(
                Step.GREETING,
                Code.GREETING_REFUSED,
                f"{host_port} closed the connection without a greeting ({exc})",
                "the server refuses connections from this address or is overloaded",
                "try again later; if it persists, contact the provider",
            ) from None
        if not greeting.ok:
            raise self._greeting_refused(target, greeting, encrypted=wire.encrypted)
        preauth = greeting.text.upper().startswith("* PREAUTH")
        try:
            caps = client.capabilities()
            if target.security is Security.STARTTLS:
                if preauth or not caps.starttls:
                    raise self._starttls_missing(target, "preauth" if preauth else "missing", "")
                reply = client.starttls()
                if not reply.ok:
                    raise self._starttls_missing(target, "refused", reply.text)
                tls_started = time.monotonic()
                self._start_tls(target, wire)
                tls_finding = self.inspector.tls_success(target, wire)
                tls_ms = elapsed_ms(tls_started)
                caps = client.capabilities()
        except WireTimeout:
            raise Diagnosis(
                Step.GREETING,
                Code.NO_RESPONSE,
                f"{host_port} greeted but then stopped answering",
                "the server is overloaded or the connection is being interfered with",
                "try again later",
            ) from None
        except WireClosed as exc:
            raise Diagnosis(
                Step.GREETING,
                Code.PROTOCOL_ERROR,
                f"{host_port} closed the connection while telling its capabilities ({exc})",
                "the server or something on the way (firewall, antivirus) ended the conversation",
                "try again later; if it persists, check antivirus mail scanning",
            ) from None
        if target.security is Security.NONE:
            tls_finding = self._encryption_off(target, caps)
            if report:
                self._emit_tls(tls_finding, tls_ms)
                tls_finding = None
            if self.protocol is Protocol.IMAP and caps.login_disabled:
                raise self._plaintext_disabled(target, caps)
            if (
                self.protocol is Protocol.SMTP
                and caps.starttls
                and not caps.auth_advertised
                and self.settings.auth_required
            ):
                raise self._plaintext_disabled(target, caps)
        if report and tls_finding is not None:
            self._emit_tls(tls_finding, tls_ms)
        session = Session(wire, client, caps, target)
        if report:
            mechanisms = sorted(caps.auth_mechanisms)
            offers = []
            if target.security is Security.STARTTLS:
                offers.append("STARTTLS")
            if mechanisms:
                offers.append("login methods " + ", ".join(mechanisms))
            words = f"; it offers {' and '.join(offers)}" if offers else ""
            self.emit(
                Step.GREETING,
                Status.OK,
                Code.OK,
                f"The {client.protocol_name} server at {host_port} greeted{words}",
                started=greeting_started,
                data={
                    "auth_mechanisms": mechanisms,
                    "starttls": caps.starttls,
                    "login_disabled": caps.login_disabled,
                },
            )
        return session

    def _emit_tls(self, finding: Diagnosis, duration_ms: int) -> None:
        self.emit(
            Step.TLS,
            finding.status,
            finding.code,
            finding.text,
            finding.cause,
            finding.remedy,
            started=time.monotonic() - duration_ms / 1000,
            data=finding.data,
        )

    def _await_plain_greeting(self, target: Target, wire: Wire) -> None:
        """Before reading a plain greeting: detect an SSL/TLS-only port (mode mix-up)."""
        first = wire.sniff(self.run.limit(self.timeouts.sniff))
        if first[:1] in (b"\x15", b"\x16") and first[1:2] == b"\x03":
            raise self.inspector.mode_mismatch_expected_ssl(target, "it answered with TLS records")
        if first:
            return
        if self.inspector.speaks_tls(target.address, target.port):
            raise self.inspector.mode_mismatch_expected_ssl(
                target, f"no greeting came within {seconds(self.timeouts.sniff)}, and the port answered "
                "a TLS handshake"
            )
        rest = max(0.0, self.timeouts.greeting - self.timeouts.sniff)
        if not wire.sniff(self.run.limit(rest)):
            raise self._no_greeting(target)

    def _no_greeting(self, target: Target) -> Diagnosis:
        return Diagnosis(
            Step.GREETING,
            Code.NO_RESPONSE,
            f"{target.where} accepts connections but sent no greeting within "
            f"{seconds(self.timeouts.greeting)}",
            "the port is not a mail service (a wrong port number), the server is hung, or a firewall "
            "or antivirus holds the connection open without passing data",
            f"check the port number ({self._standard_ports_text()}); if it is right, check the "
            "antivirus's mail protection, or try again later",
        )

    def _standard_ports_text(self) -> str:
        ports = DEFAULT_ALTERNATIVES[self.protocol]
        return ", ".join(f"{port} with {security.label}" for port, security in ports)

    def _greeting_refused(self, target: Target, greeting: Reply, *, encrypted: bool) -> Diagnosis:
        said = display(greeting.text)
        if not encrypted:
            # Anyone on the path can write a plain-text greeting ("[ALERT] your password
            # expired, log in at http://phish…"): quote it, but say it is unverified.
            said += " (sent before encryption, so it may not come from the real server)"
        first = greeting.lines[0] if greeting.lines else greeting.text
        if not first.startswith(GREETING_PREFIXES[self.protocol]):
            other = next(
                (p for p, prefixes in GREETING_PREFIXES.items() if p is not self.protocol
                 and first.startswith(prefixes)),
                None,
            )
            wanted = self.protocol.value.upper()
            what = f"an {other.value.upper()} server" if other is Protocol.IMAP else (
                f"a {other.value.upper()} server" if other is not None else f"not a {wanted} server")
            return Diagnosis(
                Step.GREETING,
                Code.PROTOCOL_ERROR,
                f"{target.where} is {what}: it greeted with “{display(first, 60)}”",
                f"the port number belongs to another service; {wanted} uses {self._standard_ports_text()}",
                f"change the {server_words(self.server)} server port to a {wanted} port",
                data={"protocol": other.value if other is not None else ""},
            )
        if mentions_too_many_connections(greeting.text):
            return Diagnosis(
                Step.GREETING,
                Code.TOO_MANY_CONNECTIONS,
                f"{target.where} refused the connection: “{said}”",
                "too many connections are open to this account or from this address (other mail "
                "programs, phones, a stuck program)",
                "close other mail programs or wait a few minutes, then try again",
            )
        return Diagnosis(
            Step.GREETING,
            Code.GREETING_REFUSED,
            f"{target.where} refused the connection: “{said}”",
            "the server does not accept mail connections from this network (for example a "
            "residential address on port 25), or it is temporarily unavailable",
            "use the provider's submission port (587 with STARTTLS or 465 with SSL/TLS) for outgoing "
            "mail; otherwise try again later" if self.protocol is Protocol.SMTP else "try again later",
        )

    def _starttls_missing(self, target: Target, how: str, said: str) -> Diagnosis:
        seen = {
            "preauth": "the server claimed the session was already logged in before encryption "
            "(PREAUTH), so it can no longer be encrypted",
            "missing": "the server does not offer STARTTLS",
            "refused": f"the server refused STARTTLS (“{display(said)}”)",
        }[how]
        return Diagnosis(
            Step.GREETING,
            Code.STARTTLS_MISSING,
            f"{target.where}: {seen}, so the connection cannot be encrypted",
            "the server is misconfigured, or something on the network removes encryption to read your "
            "password (a downgrade attack)",
            "deskmail did not send your password. Use SSL/TLS on the provider's SSL port "
            f"({', '.join(str(p) for p, s in DEFAULT_ALTERNATIVES[self.protocol] if s is Security.SSL)}) "
            "if it has one, or try from another network; never switch to 'no encryption' to make it work",
        )

    def _encryption_off(self, target: Target, caps: Capabilities) -> Diagnosis:
        offer = " The server offers STARTTLS." if caps.starttls else ""
        return Diagnosis(
            Step.TLS,
            Code.ENCRYPTION_OFF,
            f"The account connects to {target.where} without encryption.{offer}",
            "the account's security setting is 'no encryption': anyone on the network can read "
            "your mail" + (" and your password" if self.account.allow_plaintext_password else ""),
            "change the encryption to STARTTLS" if caps.starttls
            else "ask the provider for an encrypted port (SSL/TLS or STARTTLS)",
            status=Status.WARNING,
            data={"security": Security.STARTTLS.value} if caps.starttls else {},
        )

    def _plaintext_disabled(self, target: Target, caps: Capabilities, step: Step = Step.GREETING) -> Diagnosis:
        what = {
            Step.GREETING: "LOGINDISABLED" if self.protocol is Protocol.IMAP else "no login before STARTTLS",
            Step.LOGIN: "it refused the login because the connection is not encrypted",
        }[step]
        return Diagnosis(
            step,
            Code.PLAINTEXT_LOGIN_DISABLED,
            f"{target.where} does not allow logging in without encryption ({what})",
            "the account is set to 'no encryption', and the server (rightly) refuses passwords sent "
            "in clear",
            "change the encryption to STARTTLS" + (" (the server offers it)" if caps.starttls else
                                                   " or SSL/TLS"),
            data={"security": Security.STARTTLS.value} if caps.starttls else {},
        )

    # -- login ----------------------------------------------------------------------

    def login_reply(self, session: Session, username: str) -> Reply:
        password = self.run.password.reveal() if self.run.password is not None else ""
        client = session.client
        try:
            if isinstance(client, SmtpSession):
                return client.login(username, password, session.caps.auth_mechanisms,
                                    allow_plaintext=self.allow_plaintext)
            return client.login(username, password, allow_plaintext=self.allow_plaintext)
        except PlaintextSecret:
            raise self._plaintext_refused(session.target) from None
        except WireTimeout:
            raise Diagnosis(
                Step.LOGIN,
                Code.NO_RESPONSE,
                f"{session.target.where} did not answer the login within {seconds(self.timeouts.command)}",
                "the server is overloaded, or its password check is hanging",
                "try again later",
            ) from None
        except WireClosed as exc:
            return Reply(ok=False, text=f"connection closed during login ({exc})")

    def _plaintext_refused(self, target: Target) -> Diagnosis:
        return Diagnosis(
            Step.LOGIN,
            Code.PLAINTEXT_REFUSED,
            f"deskmail did not send your password to {target.where}, because the connection is not "
            "encrypted",
            "the account is set to 'no encryption', and sending a password in clear lets anyone on "
            "the network read it",
            "change the encryption to STARTTLS or SSL/TLS; only if the server offers neither, allow "
            "unencrypted passwords explicitly for this account",
        )

    def _login(self) -> None:
        started = time.monotonic()
        self._budget(Step.LOGIN)
        session = self.session
        assert session is not None
        target = session.target
        if self.settings.auth == "oauth2":
            self.login_skipped = "the account signs in with OAuth"
            self.emit(Step.LOGIN, Status.SKIPPED, Code.NOT_CHECKED,
                      "Not checked: the account signs in with OAuth, which the doctor cannot test without "
                      "the browser sign-in", started=started)
            return
        if self.server is Server.OUTGOING and not self.settings.auth_required:
            return  # decided by the relay check: _relay_and_send reports the login step
        provider = self.run.provider
        if self.run.password is None:
            self.login_skipped = "no password was given"
            if provider is not None and provider.oauth_only:
                # Say it now: the user is about to look for a password that can never work.
                self.emit(Step.LOGIN, Status.WARNING, Code.OAUTH_REQUIRED,
                          f"Not checked: no password was given; {provider.name} accepts only OAuth sign-in "
                          "(through the browser) from mail programs, so no password will work here",
                          f"{provider.name} has turned off password logins for mail programs",
                          "set the account to sign in with OAuth (browser sign-in)", started=started)
            else:
                self.emit(Step.LOGIN, Status.SKIPPED, Code.NOT_CHECKED,
                          "Not checked: no password was given", started=started)
            return
        if not session.wire.encrypted and not self.allow_plaintext:
            raise self._plaintext_refused(target)
        if isinstance(session.client, SmtpSession):
            mechanisms = session.caps.auth_mechanisms
            if not session.caps.auth_advertised:
                self.emit(
                    Step.LOGIN,
                    Status.WARNING,
                    Code.AUTH_NOT_OFFERED,
                    f"The account logs in to {target.where}, but the server offers no login (no AUTH)",
                    "the server accepts mail from your network without a login, or this is not the "
                    "provider's submission server",
                    "check the outgoing server settings; the sending check below shows whether mail "
                    "is accepted",
                    started=started,
                )
                return
            if not mechanisms & {"PLAIN", "LOGIN"} and mechanisms & {"XOAUTH2", "OAUTHBEARER"}:
                raise Diagnosis(
                    Step.LOGIN,
                    Code.OAUTH_REQUIRED,
                    f"{target.where} only accepts OAuth sign-in ({', '.join(sorted(mechanisms))}), not "
                    "passwords",
                    "the provider has turned off password logins for mail programs",
                    "set the account to sign in with OAuth (browser sign-in)",
                    data={"auth_mechanisms": sorted(mechanisms)},
                )
        reply = self.login_reply(session, self.settings.username)
        if reply.ok:
            session.logged_in = True
            session.username = self.settings.username
            self.working = target
            self._login_ok(session, started)
            return
        code = classify_login_failure(reply.text)
        if code is Code.AUTH_FAILED:
            switched = self._try_other_username(target)
            if switched is not None:
                other, other_session = switched
                self.close()
                self.session = other_session
                self.working = target
                self.working_username = other
                form = "the full email address" if "@" in other else "only the part before the @"
                raise Diagnosis(
                    Step.LOGIN,
                    Code.USERNAME_FORM,
                    f"{target.where} refused the user name “{self.settings.username}” but accepted "
                    f"“{other}” with the same password",
                    f"this server expects {form} as the user name",
                    f"change the {server_words(self.server)} user name to {other}",
                    data={"username": other},
                )
        raise self._login_diagnosis(target, reply, code)

    def _login_ok(self, session: Session, started: float) -> None:
        extra = ""
        count: int | None = None
        if isinstance(session.client, ImapSession | Pop3Session):
            try:
                count = session.client.mailbox_count()
            except WireError:
                count = None
            if count is not None:
                extra = f"; the inbox has {count} message{'s' if count != 1 else ''}"
        self.emit(
            Step.LOGIN,
            Status.OK,
            Code.OK,
            f"Logged in to {session.target.where} as {session.username}{extra}",
            started=started,
            data={"username": session.username, "messages": count},
        )

    def _try_other_username(self, target: Target) -> tuple[str, Session] | None:
        for other in username_alternatives(self.settings.username, self.account.email):
            if self.run.remaining() <= 0:
                return None
            try:
                session = self.establish(target, None, report=False)
            except Diagnosis:
                return None
            try:
                reply = self.login_reply(session, other)
            except Diagnosis:
                session.wire.close()
                return None
            if reply.ok:
                session.logged_in = True
                session.username = other
                return other, session
            session.close()
        return None

    def _login_diagnosis(self, target: Target, reply: Reply, code: Code) -> Diagnosis:
        said = display(reply.text)
        provider = self.run.provider
        name = provider.name if provider else "your provider"
        data: dict[str, Any] = {"server_said": said}
        if code is Code.AUTH_FAILED and provider is not None and provider.oauth_only:
            code = Code.OAUTH_REQUIRED
        if code is Code.APP_PASSWORD_REQUIRED:
            return Diagnosis(
                Step.LOGIN,
                Code.APP_PASSWORD_REQUIRED,
                f"{target.where} refused the password and asks for an app password: “{said}”",
                f"two-step verification is on for this account, and {name} does not accept the normal "
                "password from mail programs",
                f"create an app password in {name}'s account security settings and enter it in deskmail "
                "instead of your normal password",
                data=data,
            )
        if code is Code.OAUTH_REQUIRED:
            return Diagnosis(
                Step.LOGIN,
                Code.OAUTH_REQUIRED,
                f"{target.where} does not accept passwords: “{said}”",
                f"{name} has turned off password logins for mail programs and requires OAuth "
                "(sign-in through the browser)",
                "set the account to sign in with OAuth; for a work account, the administrator may "
                "have to allow it",
                data=data,
            )
        if code is Code.ACCOUNT_DISABLED:
            return Diagnosis(
                Step.LOGIN,
                Code.ACCOUNT_DISABLED,
                f"{target.where} refused the login: “{said}”",
                f"the account, or {self.protocol.value.upper()} access for it, is disabled or locked "
                f"at {name}",
                f"sign in to {name}'s web mail: enable {self.protocol.value.upper()} access in the "
                "settings, or follow the instructions to unlock the account",
                data=data,
            )
        if code is Code.TOO_MANY_CONNECTIONS:
            return Diagnosis(
                Step.LOGIN,
                Code.TOO_MANY_CONNECTIONS,
                f"{target.where} refused the login: “{said}”",
                "too many connections or login attempts for this account (other mail programs, "
                "phones, or repeated failed logins)",
                "close other mail programs or wait 15 minutes, then try again",
                data=data,
            )
        if code is Code.PLAINTEXT_LOGIN_DISABLED:
            return self._plaintext_disabled(target, Capabilities(), Step.LOGIN)
        app_hint = (
            f"; if two-step verification is on, {name} needs an app password instead of your normal one"
            if provider is not None and provider.app_password
            else ""
        )
        return Diagnosis(
            Step.LOGIN,
            Code.AUTH_FAILED,
            f"{target.where} rejected the user name or password: “{said}”",
            "the password (or the user name "
            f"“{self.settings.username}”) is wrong" + app_hint,
            "re-enter the password (check Caps Lock and the keyboard layout); sign in to the web mail "
            "with the same password to confirm it",
            data=data,
        )

    # -- sending ----------------------------------------------------------------------

    def _relay_and_send(self) -> None:
        """Relaying permission (MAIL/RCPT to an outside address, then RSET), and the test message."""
        started = time.monotonic()
        self._budget(Step.SEND)
        session = self.session
        assert session is not None
        client = session.client
        assert isinstance(client, SmtpSession)
        target = session.target
        if self.login_skipped and self.settings.auth_required and not session.logged_in:
            # Without the login the account makes, a refusal would only say "log in first":
            # it would blame the server for what this run left out.
            self.emit(
                Step.SEND,
                Status.SKIPPED,
                Code.NOT_CHECKED,
                f"Not checked: {self.login_skipped}; whether {target.where} accepts mail for outside "
                "addresses can only be checked after the login",
                started=started,
            )
            return
        email = self.account.email
        domain = email_domain(email)
        outside = f"postmaster@{next(d for d in _OUTSIDE_DOMAINS if d != domain)}"
        try:
            mail = client.command(f"MAIL FROM:<{email}>")
            rcpt = client.command(f"RCPT TO:<{outside}>") if mail.ok else mail
            client.command("RSET")
        except WireError as exc:
            raise Diagnosis(
                Step.SEND,
                Code.PROTOCOL_ERROR,
                f"{target.where} stopped answering during the sending check ({exc})",
                "the server or something on the way ended the conversation",
                "try again later",
            ) from None
        unauthenticated = not session.logged_in
        auth_offered = session.caps.auth_advertised
        if not rcpt.ok:
            said = display(rcpt.text)
            if unauthenticated and (
                smtp_needs_auth(rcpt.code, rcpt.text)
                # Postfix before AUTH: "553 5.7.1 Sender address rejected: not logged in" at MAIL.
                or (auth_offered and not mail.ok and smtp_relay_refusal(mail.code, mail.text))
            ):
                raise Diagnosis(
                    Step.LOGIN,
                    Code.AUTH_NOT_ENABLED,
                    f"{target.where} requires a login before sending (“{rcpt.code} {said}”), but the "
                    "account is set not to log in",
                    "'My outgoing server (SMTP) requires authentication' is off for this account",
                    "turn on 'My outgoing server (SMTP) requires authentication', using the same user name "
                    "and password as for incoming mail",
                    data={"server_said": said, "auth_required": True},
                )
            if smtp_relay_refusal(rcpt.code, rcpt.text):
                if unauthenticated and auth_offered:
                    raise Diagnosis(
                        Step.SEND,
                        Code.RELAY_DENIED,
                        f"{target.where} refuses to send to outside addresses without a login: "
                        f"“{rcpt.code} {said}”",
                        "the account does not log in to the outgoing server, so the server treats you "
                        "as a stranger and will not relay mail ('relaying denied')",
                        "turn on 'My outgoing server (SMTP) requires authentication' and use the same "
                        "user name and password as for incoming mail",
                        data={"server_said": said, "auth_required": True},
                    )
                if unauthenticated:
                    raise Diagnosis(
                        Step.SEND,
                        Code.RELAY_DENIED,
                        f"{target.where} refuses to send to outside addresses (“{rcpt.code} {said}”) and "
                        "offers no way to log in",
                        "this is not the provider's submission server, or the port is meant for "
                        "server-to-server mail (25)",
                        "use the provider's submission server and port (587 with STARTTLS or 465 with "
                        "SSL/TLS)",
                        data={"server_said": said},
                    )
                raise Diagnosis(
                    Step.SEND,
                    Code.RELAY_DENIED,
                    f"{target.where} refuses to send to outside addresses even after login: "
                    f"“{rcpt.code} {said}”",
                    f"the server does not accept {email} as a sender for this login, or it is not the "
                    "provider's outgoing server",
                    "use the outgoing server your provider names for this address, and check that the "
                    "email address in the account is exactly the one of this mailbox",
                    data={"server_said": said},
                )
            if not mail.ok:
                raise Diagnosis(
                    Step.SEND,
                    Code.SEND_REFUSED,
                    f"{target.where} refused the sender address {email}: “{mail.code} {said}”",
                    "the email address in the account does not belong to this login or server",
                    "check the account's email address",
                    data={"server_said": said},
                )
            relay_note = (
                f"; relaying could not be checked (the test recipient was refused: “{rcpt.code} {said}”)"
            )
        else:
            relay_note = ""
        if unauthenticated:
            self.emit(
                Step.LOGIN,
                Status.OK,
                Code.OK,
                f"The account does not log in to {target.where}, and the server accepts mail without a "
                "login from this network",
                started=started,
            )
        if self.send_test:
            self._send_test(session, started, relay_note)
            return
        self.working = target
        self.emit(
            Step.SEND,
            Status.OK if not relay_note else Status.WARNING,
            Code.OK if not relay_note else Code.SEND_REFUSED,
            f"{target.where} accepts mail for outside addresses from {email}{relay_note}"
            + (" (checked without sending anything)" if not relay_note else ""),
            started=started,
        )

    def _send_test(self, session: Session, started: float, relay_note: str) -> None:
        client = session.client
        assert isinstance(client, SmtpSession)
        email = self.account.email
        token = random_tokens.token_hex(8)
        message_id = f"<doctor.{token}@deskmail.invalid>"
        message = (
            f"From: {self.account.display_name or email} <{email}>\r\n"
            f"To: <{email}>\r\n"
            f"Subject: deskmail connection test\r\n"
            f"Date: {format_datetime(datetime.now(UTC))}\r\n"
            f"Message-ID: {message_id}\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "\r\n"
            "deskmail's connection doctor sent this message to check that sending works.\r\n"
            "You can delete it.\r\n"
        ).encode()
        try:
            reply = client.send_message(email, email, message)
        except WireError as exc:
            raise Diagnosis(
                Step.SEND,
                Code.SEND_REFUSED,
                f"The connection to {session.target.where} broke while sending the test message ({exc})",
                "the server or something on the way (antivirus scanning outgoing mail) ended the "
                "conversation",
                "try again; if it persists, turn off antivirus scanning of outgoing mail",
            ) from None
        if not reply.ok:
            said = display(reply.text)
            raise Diagnosis(
                Step.SEND,
                Code.SEND_REFUSED,
                f"{session.target.where} refused the test message to {email}: “{reply.code} {said}”",
                "the server does not accept this message (sender or recipient refused, or a policy)",
                "check the account's email address; the server's words above say more",
                data={"server_said": said},
            )
        self.test_message_id = message_id
        self.sent_at = time.monotonic()
        self.working = session.target
        self.emit(
            Step.SEND,
            Status.WARNING if relay_note else Status.OK,
            Code.SEND_REFUSED if relay_note else Code.OK,
            f"{session.target.where} accepted a test message to {email} (“{reply.code} {display(reply.text)}”)"
            + relay_note,
            started=started,
            data={"message_id": message_id},
        )

    # -- settings review -----------------------------------------------------------

    def review_settings(self) -> None:
        started = time.monotonic()
        provider = self.run.provider
        settings = self.settings
        if provider is None:
            self.emit(Step.SETTINGS, Status.SKIPPED, Code.PROVIDER_UNKNOWN,
                      f"The provider of {email_domain(self.account.email)} is not in deskmail's database, "
                      "so the settings were not compared with recommended ones", started=started)
            return
        recommended = provider.for_protocol(settings.protocol)
        if not recommended:
            other = [r for r in provider.recommended if r.protocol is not Protocol.SMTP]
            if self.server is Server.INCOMING and other:
                rec = other[0]
                self.emit(
                    Step.SETTINGS, Status.WARNING, Code.SETTINGS_DIFFER,
                    f"{provider.name} recommends {rec.protocol.value.upper()} ({rec.describe()}) for "
                    f"incoming mail; this account uses {settings.protocol.value.upper()}",
                    remedy=f"switch to {rec.protocol.value.upper()}: {rec.describe()}",
                    started=started, data=_rec_data(rec),
                )
            else:
                self.emit(Step.SETTINGS, Status.SKIPPED, Code.NOT_CHECKED,
                          f"{provider.name} has no recommended {settings.protocol.value.upper()} settings",
                          started=started)
            return
        for rec in recommended:
            if (
                rec.host.lower() == settings.host.lower()
                and rec.port == settings.port
                and rec.security is settings.security
                and (settings.protocol is not Protocol.SMTP or rec.auth_required == settings.auth_required)
            ):
                self.emit(Step.SETTINGS, Status.OK, Code.OK,
                          f"The {server_words(self.server)} settings match {provider.name}'s recommended "
                          "settings", started=started)
                return
        rec = recommended[0]
        mine = [f"port {settings.port} {security_phrase(settings.security)}"]
        theirs = [f"port {rec.port} {security_phrase(rec.security)}"]
        if rec.host.lower() != settings.host.lower():
            mine.insert(0, settings.host)
            theirs.insert(0, rec.host)
        text = (
            f"{provider.name} recommends {' '.join(theirs)} for {server_words(self.server)} mail; "
            f"this account uses {' '.join(mine)}"
        )
        remedy = f"change the {server_words(self.server)} server to {rec.host}, port {rec.port}, {rec.security.label}"
        if settings.protocol is Protocol.SMTP and rec.auth_required and not settings.auth_required:
            text += ", and does not log in"
            remedy += ", and turn on 'My outgoing server (SMTP) requires authentication'"
        self.emit(
            Step.SETTINGS, Status.WARNING, Code.SETTINGS_DIFFER, text,
            f"the account was set up by hand or with old settings; {provider.name}'s current settings "
            "are more likely to keep working",
            remedy, started=started, data=_rec_data(rec),
        )


class _AlreadyReported(Exception):
    """The failure has been emitted already; just stop the chain."""


def _rec_data(rec: Any) -> dict[str, Any]:
    return {"host": rec.host, "port": rec.port, "security": rec.security.value, "protocol": rec.protocol.value}




def _connect_error_rank(exc: OSError) -> int:
    """Which failure explains most: refused (the server is there) > timeout > unreachable."""
    if isinstance(exc, ConnectionRefusedError):
        return 0
    if isinstance(exc, TimeoutError):
        return 1
    return 2


def _connect_error_word(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return "unreachable"


def _connect_error_word_for(code: Code) -> str:
    return {
        Code.CONNECTION_REFUSED: "connection refused",
        Code.CONNECTION_TIMEOUT: "no answer",
        Code.NETWORK_UNREACHABLE: "network unreachable",
    }.get(code, "cannot connect")

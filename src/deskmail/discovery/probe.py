"""Probing: knock on the likely servers of a domain and listen, never logging in.

Targets are the usual names (``imap.``, ``mail.``, ``pop.``, ``pop3.``,
``smtp.``, the bare domain) × the standard ports, implicit TLS first
(RFC 8314): IMAP 993/143, POP3 995/110, SMTP 465/587. Names without an
address are dropped first; the rest are probed concurrently.

One probe, and why it works this way:

1. Connect, then wait ``greeting_timeout`` for the server to speak.
   IMAP, POP3 and SMTP servers greet first in plain text; a server that
   expects TLS from the first byte says nothing. **The TLS mode is detected,
   not assumed from the port** — this is how Spectrum's implicit TLS on port
   587 (mobile.charter.net) is found, where a port table would say STARTTLS.
2. Silence → TLS handshake on the same connection (certificate verified by
   deskmail's TLS policy), then read the greeting over TLS: security "ssl".
   If the handshake fails for a reason other than the certificate, the server
   may just be slow to greet: reconnect once and wait longer for plain text.
3. A plain greeting → CAPABILITY / CAPA / EHLO. If STARTTLS (STLS) is
   offered, complete the upgrade and ask again (AUTH mechanisms are often
   only listed after it): security "starttls". No STARTTLS: security "none".
4. LOGOUT / QUIT. Commands sent, ever: CAPABILITY, STARTTLS, LOGOUT (IMAP);
   CAPA, STLS, QUIT (POP3); EHLO, STARTTLS, QUIT (SMTP). **No password, user
   name or AUTH command is ever sent.**

Certificates: when the chain is trusted but the name does not match (a
hosting company's server reached under the customer's name), the probe
reconnects with host-name checking off *only to read the certificate's
names* and offers the name it is valid for as the candidate host. Untrusted
chains are skipped with the reason.

Everything found this way is a guess: candidates are low confidence and
``needs_confirmation``.
"""

from __future__ import annotations

import functools
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from deskmail.discovery.candidates import Candidate, Confidence, Origin, Skipped
from deskmail.discovery.options import run_all
from deskmail.discovery.transport import Network, StepFailed
from deskmail.model import Protocol, Security, ServerSettings
from deskmail.protocol import core

_MAX_LINE = 8 * 1024
_T = TypeVar("_T")
_MAX_BYTES = 64 * 1024
_SECURITY_RANK = {Security.SSL: 0, Security.STARTTLS: 1, Security.NONE: 2}
_PROTOCOL_RANK = {Protocol.IMAP: 0, Protocol.POP3: 1, Protocol.SMTP: 2}


@dataclass(frozen=True)
class ProbeTarget:
    protocol: Protocol
    host: str
    port: int
    order: int = 0  # position in the preference order of targets


@dataclass(frozen=True)
class ProbeFinding:
    protocol: Protocol
    host: str  # the name to put in the settings (the certificate's, if it differs)
    probed_host: str
    port: int
    security: Security
    capabilities: tuple[str, ...] = ()
    auth_mechanisms: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    order: int = 0


@dataclass
class _Dialog:
    security: Security = Security.NONE
    capabilities: list[str] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)
    cert_names: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class _NameMismatch(Exception):
    pass


class _NotTLS(Exception):
    pass


def targets(domain: str, net: Network) -> list[ProbeTarget]:
    out: list[ProbeTarget] = []
    for protocol in (Protocol.IMAP, Protocol.POP3, Protocol.SMTP):
        for prefix in net.options.probe_hosts.get(protocol, ()):
            host = f"{prefix}.{domain}" if prefix else domain
            for port in net.options.probe_ports.get(protocol, ()):
                out.append(ProbeTarget(protocol, host, port, len(out)))
    return out


def discover(net: Network, email: str, domain: str) -> tuple[list[Candidate], list[Skipped]]:
    all_targets = targets(domain, net)
    hosts = list(dict.fromkeys(t.host for t in all_targets))
    resolved = run_all({h: functools.partial(net.addresses, h) for h in hosts}, net.deadline)
    skipped: list[Skipped] = []
    live: set[str] = set()
    for h in hosts:
        out = resolved[h]
        if out.value:
            live.add(h)
        elif out.done and out.error is None:
            skipped.append(Skipped(Origin.PROBE, h, "no such host"))
        elif out.error is not None:
            skipped.append(Skipped(Origin.PROBE, h, str(out.error)))
        else:
            skipped.append(Skipped(Origin.PROBE, h, "no address before the deadline"))
    chosen = [t for t in all_targets if t.host in live]
    outcomes = run_all({f"{t.host}:{t.port}": functools.partial(probe, net, t) for t in chosen}, net.deadline)
    findings: list[ProbeFinding] = []
    for t in chosen:
        out2 = outcomes[f"{t.host}:{t.port}"]
        what = f"{t.protocol.value.upper()} {t.host}:{t.port}"
        if out2.value is not None:
            findings.append(out2.value)
        elif isinstance(out2.error, StepFailed):
            skipped.append(Skipped(Origin.PROBE, what, str(out2.error)))
        elif out2.error is not None:
            skipped.append(Skipped(Origin.PROBE, what, f"probe failed: {out2.error!r}"))
        else:
            skipped.append(Skipped(Origin.PROBE, what, "no answer before the deadline"))
    cands, more = candidates(findings, email, domain)
    return cands, skipped + more


def candidates(findings: list[ProbeFinding], email: str, domain: str) -> tuple[list[Candidate], list[Skipped]]:
    """Pure: findings → candidates (best IMAP and best POP3, each with the best SMTP)."""

    def order(f: ProbeFinding) -> tuple[int, int, int]:
        return (_PROTOCOL_RANK[f.protocol], _SECURITY_RANK[f.security], f.order)

    incoming = sorted((f for f in findings if f.protocol is not Protocol.SMTP), key=order)
    outgoing = sorted((f for f in findings if f.protocol is Protocol.SMTP), key=order)
    if not incoming or not outgoing:
        if findings:
            side = "outgoing (SMTP)" if incoming else "incoming (IMAP/POP3)"
            return [], [Skipped(Origin.PROBE, domain, f"servers answered, but no {side} server")]
        return [], []
    picks: list[tuple[ProbeFinding, ProbeFinding]] = []
    for protocol in (Protocol.IMAP, Protocol.POP3):
        best = next((f for f in incoming if f.protocol is protocol), None)
        if best is not None:
            picks.append((best, outgoing[0]))
    alt = next((o for o in outgoing[1:] if (o.host, o.port) != (outgoing[0].host, outgoing[0].port)), None)
    if alt is not None:
        picks.insert(1, (incoming[0], alt))
    out: list[Candidate] = []
    skipped: list[Skipped] = []
    for inc, smtp in picks:
        try:
            i = ServerSettings(inc.protocol, inc.host, inc.port, inc.security, email)
            o = ServerSettings(
                Protocol.SMTP,
                smtp.host,
                smtp.port,
                smtp.security,
                email,
                auth_required=bool(smtp.auth_mechanisms) or smtp.security is Security.NONE,
            )
        except ValueError as exc:
            skipped.append(Skipped(Origin.PROBE, inc.host, str(exc)))
            continue
        notes = [
            f"deskmail connected to {inc.host}:{inc.port} and {smtp.host}:{smtp.port} and read their "
            "greetings; your password has not been tried. Confirm these are your provider's servers"
        ]
        notes.extend(inc.notes)
        notes.extend(n for n in smtp.notes if n not in notes)
        out.append(
            Candidate(i, o, Origin.PROBE, Origin.PROBE.label(), Confidence.LOW, tuple(notes), needs_confirmation=True)
        )
    return out, skipped


# ------------------------------------------------------------------ one probe


def probe(net: Network, target: ProbeTarget) -> ProbeFinding:
    """Detect security mode and capabilities of one server. Raises :class:`StepFailed`."""
    try:
        d = _dialog(net, target, net.tls_context(), net.options.greeting_timeout, allow_silence=True)
        host = target.host
    except _NotTLS:
        # Silent at first, then not TLS: a slow greeter. Wait longer for plain text.
        d = _dialog(net, target, net.tls_context(), net.options.read_timeout, allow_silence=False)
        host = target.host
    except _NameMismatch:
        d = _dialog(net, target, net.names_context(), net.options.greeting_timeout, allow_silence=True)
        host = _pick_name(d.cert_names, target.host)
        d.notes.append(
            f"The certificate of {target.host}:{target.port} is issued for {host}, not {target.host}; "
            f"deskmail offers {host} instead"
        )
    what = f"{target.protocol.value.upper()} {target.host}:{target.port}"
    if d.security is Security.NONE:
        d.notes.append(f"{what} offers no encryption: deskmail will not send a password there unless you allow it")
    if target.protocol is Protocol.SMTP and not d.auth:
        d.notes.append(f"{what} did not offer authentication (AUTH)")
    if target.protocol is Protocol.IMAP and "LOGINDISABLED" in d.capabilities:
        d.notes.append(f"{what} refuses password log-in on this connection (LOGINDISABLED)")
    return ProbeFinding(
        protocol=target.protocol,
        host=host,
        probed_host=target.host,
        port=target.port,
        security=d.security,
        capabilities=tuple(d.capabilities),
        auth_mechanisms=tuple(d.auth),
        notes=tuple(d.notes),
        order=target.order,
    )


def _pick_name(names: list[str], probed: str) -> str:
    usable = [n.lower() for n in names if n and not n.startswith("*.")]
    if not usable:
        raise StepFailed(f"the certificate is not valid for {probed} (it names only {', '.join(names) or 'nothing'})")
    label = probed.split(".", 1)[0]
    for n in usable:
        if n.split(".", 1)[0] == label:
            return n
    return usable[0]


def _dialog(net: Network, t: ProbeTarget, ctx: ssl.SSLContext, greeting_wait: float, *, allow_silence: bool) -> _Dialog:
    sock = net.connect(t.host, t.port)
    conv = _Conversation(sock, net, t)
    d = _Dialog()
    try:
        if conv.wait_for_data(greeting_wait):
            _greeting(conv, t.protocol)
            caps = _capabilities(conv, t.protocol, d)
            if _offers_starttls(t.protocol, caps):
                _starttls_command(conv, t.protocol)
                conv = _Conversation(_handshake(conv.sock, ctx, t, d, silent=False), net, t)
                d.capabilities.clear()
                d.auth.clear()
                _capabilities(conv, t.protocol, d)
                d.security = Security.STARTTLS
            else:
                d.security = Security.NONE
        elif allow_silence:
            conv = _Conversation(_handshake(conv.sock, ctx, t, d, silent=True), net, t)
            _greeting(conv, t.protocol)
            _capabilities(conv, t.protocol, d)
            d.security = Security.SSL
        else:
            raise StepFailed("the server neither greeted nor spoke TLS")
        conv.goodbye()
        return d
    finally:
        conv.close()


def _handshake(sock: socket.socket, ctx: ssl.SSLContext, t: ProbeTarget, d: _Dialog, *, silent: bool) -> ssl.SSLSocket:
    where = f"{t.host}:{t.port}"
    try:
        tls = ctx.wrap_socket(sock, server_hostname=t.host)
    except ssl.SSLCertVerificationError as exc:
        if exc.verify_code == 62 or "hostname mismatch" in str(exc.verify_message):
            raise _NameMismatch() from None
        raise StepFailed(f"the certificate of {where} is not trusted ({exc.verify_message})") from None
    except TimeoutError:
        raise StepFailed(f"{where} did not answer the TLS handshake") from None
    except (ssl.SSLError, ConnectionError) as exc:
        if silent:
            raise _NotTLS() from None
        raise StepFailed(f"TLS with {where} failed ({exc})") from None
    except OSError as exc:
        raise StepFailed(f"TLS with {where} failed ({exc})") from None
    if not ctx.check_hostname:
        d.cert_names = _certificate_names(tls.getpeercert() or {})
    return tls


def _certificate_names(cert: dict[str, Any]) -> list[str]:
    """DNS names of a verified peer certificate: subjectAltName, else the subject's CN."""
    names = [str(entry[1]) for entry in cert.get("subjectAltName", ()) if entry[0] == "DNS"]
    if not names:
        names = [str(attr[1]) for rdn in cert.get("subject", ()) for attr in rdn if attr[0] == "commonName"]
    return names


def _greeting(conv: _Conversation, protocol: Protocol) -> None:
    if protocol is Protocol.IMAP:
        line = conv.line()
        if core.imap_greeting(line.encode()).usable:
            return
        raise StepFailed(_unexpected("IMAP", line))
    if protocol is Protocol.POP3:
        line = conv.line()
        if core.pop3_ok(line):
            return
        raise StepFailed(_unexpected("POP3", line))
    reply = conv.smtp_reply()
    if not core.smtp_greeting_ok(reply):
        raise StepFailed(_unexpected("SMTP", f"{reply.code} {reply.texts[0] if reply.texts else ''}"))


def _unexpected(kind: str, line: str) -> str:
    shown = line if len(line) <= 80 else line[:77] + "..."
    return f"not an {kind} greeting: {shown!r}" if shown else f"no {kind} greeting"


def _capabilities(conv: _Conversation, protocol: Protocol, d: _Dialog) -> list[str]:
    if protocol is Protocol.IMAP:
        conv.send("A1 CAPABILITY")
        names: set[str] = set()
        while True:
            raw = conv.line().encode()
            status = core.imap_tagged(raw, b"A1")
            if status is not None:
                if not status.ok:
                    raise StepFailed(f"CAPABILITY failed: {raw[:80].decode('utf-8', 'replace')!r}")
                break
            if raw.startswith(b"* ") and (found := core.imap_capabilities(raw)) is not None:
                d.capabilities.extend(c for c in sorted(found) if c not in names)
                names |= found
        caps = core.imap_server_caps(d.capabilities)
    elif protocol is Protocol.POP3:
        conv.send("CAPA")
        lines: list[str] = []
        if core.pop3_ok(conv.line()):
            while (line := core.pop3_unstuff(conv.line())) is not None:
                lines.append(line)
        caps = core.pop3_server_caps(lines)
        d.capabilities.extend(caps.names)
    else:
        conv.send(f"EHLO {conv.ehlo_name()}")
        caps = core.smtp_server_caps(conv.smtp_reply())
        d.capabilities.extend(caps.names)
    d.auth.extend(a for a in caps.auth_mechanisms if a not in d.auth)
    return d.capabilities


def _offers_starttls(protocol: Protocol, caps: list[str]) -> bool:
    if protocol is Protocol.POP3:
        return core.pop3_server_caps(caps).starttls
    return core.imap_server_caps(caps).starttls  # SMTP's keyword is the same: STARTTLS


def _starttls_command(conv: _Conversation, protocol: Protocol) -> None:
    if protocol is Protocol.IMAP:
        conv.send("A2 STARTTLS")
        while (status := core.imap_tagged(conv.line().encode(), b"A2")) is None:
            pass
        accepted, said = status.ok, status.line.decode("utf-8", "replace")
        refused = f"STARTTLS was refused: {said[:80]!r}"
    elif protocol is Protocol.POP3:
        conv.send("STLS")
        said = conv.line()
        accepted, refused = core.pop3_ok(said), f"STLS was refused: {said[:80]!r}"
    else:
        conv.send("STARTTLS")
        reply = conv.smtp_reply()
        accepted = core.smtp_starttls_ok(reply)
        refused = f"STARTTLS was refused: {reply.code} {(reply.texts[0] if reply.texts else '')[:80]!r}"
    outcome = core.starttls_outcome(accepted, conv.buffered())
    if outcome == core.STARTTLS_REFUSED:
        raise StepFailed(refused)
    if outcome == core.STARTTLS_INJECTED:
        # RFC 3207 §6 / CVE-2011-0411 class: bytes after the STARTTLS reply
        # would be read as if they had come over TLS.
        raise StepFailed(
            "the server sent data right after agreeing to STARTTLS (refused: possible command injection)"
        )


class _Conversation:
    """Line-oriented reading with a byte budget and deadline-bounded timeouts."""

    def __init__(self, sock: socket.socket, net: Network, target: ProbeTarget) -> None:
        self.sock = sock
        self.net = net
        self.target = target
        self.buf = core.LineBuffer(_MAX_LINE)
        self.smtp = core.SmtpReplyReader(self.buf)
        self.total = 0
        self.protocol = target.protocol

    def buffered(self) -> int:
        return self.buf.buffered()

    def wait_for_data(self, wait: float) -> bool:
        """True when the server spoke within ``wait`` seconds, False on silence."""
        try:
            self.sock.settimeout(self.net.timeout(wait, "the greeting"))
            chunk = self.sock.recv(4096)
        except TimeoutError:
            return False
        except OSError as exc:
            raise StepFailed(f"the connection failed ({exc})") from None
        if not chunk:
            raise StepFailed("the server closed the connection without a greeting")
        self._add(chunk)
        return True

    def _receive(self, take: Callable[[], _T | None]) -> _T:
        while True:
            try:
                got = take()
            except core.FramingError:
                raise StepFailed("the server sent an over-long line") from None
            if got is not None:
                return got
            try:
                self.sock.settimeout(self.net.timeout(self.net.options.read_timeout, "the server's reply"))
                chunk = self.sock.recv(4096)
            except TimeoutError:
                raise StepFailed("the server stopped answering") from None
            except OSError as exc:
                raise StepFailed(f"the connection failed ({exc})") from None
            if not chunk:
                raise StepFailed("the server closed the connection")
            self._add(chunk)

    def line(self) -> str:
        return core.text(self._receive(self.buf.line))

    def smtp_reply(self) -> core.SmtpReply:
        """One (possibly multi-line) SMTP reply."""
        reply = self._receive(self.smtp.next)
        if not reply.wellformed:
            bad = next(x for x in reply.lines if not (x[:3].isdigit() and (len(x) == 3 or x[3] in " -")))
            raise StepFailed(f"not an SMTP reply: {bad[:80]!r}")
        return reply

    def send(self, command: str) -> None:
        try:
            self.sock.settimeout(self.net.timeout(self.net.options.read_timeout, "sending a command"))
            self.sock.sendall(command.encode("ascii") + b"\r\n")
        except OSError as exc:
            raise StepFailed(f"the connection failed ({exc})") from None

    def ehlo_name(self) -> str:
        try:
            return core.ehlo_name(str(self.sock.getsockname()[0]))
        except OSError:
            return "[127.0.0.1]"

    def goodbye(self) -> None:
        """LOGOUT / QUIT, and a short wait for the reply so the server sees a clean close."""
        command = {Protocol.IMAP: "A9 LOGOUT", Protocol.POP3: "QUIT", Protocol.SMTP: "QUIT"}[self.protocol]
        try:
            self.send(command)
            for _ in range(3):
                self.sock.settimeout(self.net.timeout(0.3, "the goodbye"))
                if not self.sock.recv(4096):
                    break
        except (StepFailed, OSError):
            pass

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def _add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self.total > _MAX_BYTES:
            raise StepFailed("the server sent far more than a greeting")
        self.buf.feed(chunk)

"""Just enough IMAP, POP3 and SMTP over a raw socket to diagnose a server.

Why not imaplib/poplib/smtplib: the doctor has to see what those libraries
hide or turn into one generic exception — a plain-text greeting arriving on a
port configured for SSL/TLS, silence on a port configured for STARTTLS, bytes
injected between a STARTTLS reply and the handshake, the exact server text of
a refused login (the only place "Application-specific password required"
appears). Each conversation here is a few commands long, and every wait is
bounded by a timeout the caller passes in.

Security rules that hold for every session in this module:

* TLS contexts come from :func:`deskmail.net.tls.client_context` only (the
  caller passes one in); ``start_tls`` refuses to proceed when the server sent
  anything after its STARTTLS reply (response injection, CVE-2020-14954 class).
* Credentials are sent by :meth:`Wire.send_secret`, which refuses unless the
  wire is encrypted or the caller explicitly allowed clear text. The bytes and
  their shown form come from :mod:`deskmail.protocol.core`; the protocol log
  (``--debug``) records the shown form, ``****`` where the secret is.
* A server's direct answer to credentials is kept without its text when it
  repeats them (:func:`deskmail.protocol.core.repeats_secret`), so no finding
  can carry a password back out.

What greetings, capabilities, tagged replies and STARTTLS answers mean is
decided by :mod:`deskmail.protocol.core`; this module moves the bytes, with
a deadline on every wait.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from deskmail.net.log import protocol_log
from deskmail.protocol import core

MAX_LINE = 64 * 1024  # a greeting/reply line longer than this is not a mail server
MAX_LITERAL = 1024 * 1024
_T = TypeVar("_T")


class WireError(Exception):
    """Base of the errors the wire reports; the checks translate them into findings."""


class WireTimeout(WireError, TimeoutError):
    pass


class WireClosed(WireError, ConnectionError):
    pass


class WireInjection(WireError):
    """Bytes arrived after the STARTTLS reply, before the TLS handshake."""


class PlaintextSecret(WireError):
    """A secret was about to be sent over an unencrypted connection."""


class Wire:
    """One TCP connection (possibly upgraded to TLS) with a bounded line reader.

    What is sent and received goes to the protocol log (``--debug``), credentials
    in their shown form only.
    """

    def __init__(self, sock: socket.socket, host: str, port: int) -> None:
        self._sock: socket.socket = sock
        self.buffer = core.LineBuffer(MAX_LINE)
        self.host = host
        self.port = port
        self.tls_version = ""
        self.peer_cert_der: bytes | None = None
        self._guard: tuple[str, tuple[str, ...]] | None = None  # the secret just sent, and its user names

    @classmethod
    def connect(cls, address: str, port: int, host: str, timeout: float) -> Wire:
        """Connect to ``address`` (an IP); ``host`` is the name used for TLS checks."""
        sock = socket.create_connection((address, port), timeout=max(timeout, 0.01))
        protocol_log.debug("-- doctor: connected to %s:%d (%s)", host, port, address)
        return cls(sock, host, port)

    @property
    def encrypted(self) -> bool:
        return isinstance(self._sock, ssl.SSLSocket)

    def local_address(self) -> str:
        try:
            return str(self._sock.getsockname()[0])
        except OSError:
            return "127.0.0.1"

    # -- reading ----------------------------------------------------------------

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WireTimeout("no answer in time")
        self._sock.settimeout(remaining)
        try:
            chunk = self._sock.recv(16384)
        except TimeoutError as exc:
            raise WireTimeout("no answer in time") from exc
        except ssl.SSLError as exc:
            raise WireClosed(f"TLS error while reading: {exc}") from exc
        except OSError as exc:
            raise WireClosed(f"connection lost: {exc}") from exc
        if not chunk:
            raise WireClosed("the server closed the connection")
        self.buffer.feed(chunk)

    def receive(self, take: Callable[[], _T | None], timeout: float) -> _T:
        """Read until ``take()`` (a reader of :attr:`buffer`) has a whole response."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                got = take()
            except core.FramingError as exc:
                raise WireClosed(f"the server sent {exc}") from None
            if got is not None:
                return got
            self._fill(deadline)

    def read_line(self, timeout: float) -> str:
        line = core.text(self.receive(self.buffer.line, timeout))
        self.log_received(line)
        return line

    def log_received(self, line: str) -> None:
        if not protocol_log.enabled:
            return
        if self._guard is not None and core.repeats_secret(line, self._guard[0], *self._guard[1]):
            line = "(the server's answer repeats the credentials; not shown)"
        protocol_log.debug("S: %s", line[:1000])

    def sniff(self, timeout: float) -> bytes:
        """Whatever the server sends within ``timeout`` (b"" if it stays silent)."""
        if not self.buffer.buffered():
            try:
                self._fill(time.monotonic() + timeout)
            except WireTimeout:
                return b""
        return self.buffer.peek()

    # -- writing ----------------------------------------------------------------

    def send(self, data: bytes, *, shown: str | None = None) -> None:
        protocol_log.debug("C: %s", shown if shown is not None else data.decode("utf-8", "replace").rstrip())
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise WireClosed(f"connection lost while sending: {exc}") from exc

    def send_line(self, line: str) -> None:
        self.send(line.encode("utf-8") + b"\r\n")

    def send_secret(self, segment: core.Segment, secret: str, usernames: tuple[str, ...], *,
                    allow_plaintext: bool) -> None:
        """Send a segment carrying a credential; until :meth:`forget_secret`, answers repeating it are hidden."""
        if not self.encrypted and not allow_plaintext:
            raise PlaintextSecret("refusing to send a password over an unencrypted connection")
        self._guard = (secret, usernames)
        self.send(segment.data, shown=segment.shown)

    def forget_secret(self) -> None:
        self._guard = None

    # -- TLS --------------------------------------------------------------------

    def start_tls(self, context: ssl.SSLContext, timeout: float) -> None:
        """Upgrade to TLS. Raises ssl.SSLError / WireTimeout / WireInjection."""
        if core.starttls_outcome(True, self.buffer.buffered()) == core.STARTTLS_INJECTED:
            # Anything the server sent after its "go ahead" and before the
            # handshake was written by whoever is in the middle (or is a
            # broken server); acting on it is the STARTTLS injection bug.
            raise WireInjection(f"{self.buffer.buffered()} unexpected bytes after the STARTTLS reply")
        server_hostname = self.host.strip("[]")
        tls_sock = context.wrap_socket(self._sock, server_hostname=server_hostname, do_handshake_on_connect=False)
        tls_sock.settimeout(max(timeout, 0.01))
        try:
            tls_sock.do_handshake()
        except TimeoutError as exc:
            raise WireTimeout("the TLS handshake did not finish in time") from exc
        self._sock = tls_sock
        self.tls_version = tls_sock.version() or ""
        self.peer_cert_der = tls_sock.getpeercert(binary_form=True)
        protocol_log.debug("-- TLS established (%s)", self.tls_version)

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass


# -- shared reply types ---------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A server's answer to one command, protocol-neutral."""

    ok: bool
    text: str  # the server's words (all lines joined), for matching and display
    code: int = 0  # SMTP reply code; 0 for IMAP/POP3
    lines: tuple[str, ...] = ()


@dataclass
class Capabilities:
    starttls: bool = False
    login_disabled: bool = False  # IMAP LOGINDISABLED
    auth_mechanisms: set[str] = field(default_factory=set)
    auth_advertised: bool = False  # SMTP: an AUTH line was present at all
    raw: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, caps: core.ServerCaps, raw: list[str]) -> Capabilities:
        return cls(starttls=caps.starttls, login_disabled=caps.login_disabled,
                   auth_mechanisms=set(caps.auth_mechanisms), auth_advertised=caps.auth_advertised, raw=raw)


def display(text: str, limit: int = 160) -> str:
    """Server text made safe to show: printable, one line, bounded."""
    cleaned = re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _login_answer(reply: Reply, secret: str, usernames: tuple[str, ...]) -> Reply:
    """The answer to credentials, without its words if it repeats them (it ends up in findings)."""
    if not any(core.repeats_secret(t, secret, *usernames) for t in (reply.text, *reply.lines)):
        return reply
    # Its response code ([AUTHENTICATIONFAILED], 5.7.8 ...) still tells what went wrong.
    code = re.match(r"\s*(\[[A-Z0-9.-]+\]|\d\.\d{1,3}\.\d{1,3})", reply.text)
    kept = code.group(1) + " " if code and not core.repeats_secret(code.group(1), secret, *usernames) else ""
    return Reply(ok=reply.ok, text=kept + "(the server's answer repeats the credentials; not shown)", code=reply.code)


def _send_segments(session: ImapSession | Pop3Session | SmtpSession, segments: list[core.Segment],
                   secret: str, usernames: tuple[str, ...], *, allow_plaintext: bool,
                   go_ahead: Callable[[], Reply | None]) -> Reply | None:
    """Send a credential exchange; a refused go-ahead ends it with that reply (None: all sent)."""
    wire = session.wire
    if not wire.encrypted and not allow_plaintext:
        raise PlaintextSecret("refusing to send a password over an unencrypted connection")
    for segment in segments:
        if segment.after_go_ahead and (refused := go_ahead()) is not None:
            return refused
        wire.send_secret(segment, secret, usernames, allow_plaintext=allow_plaintext)
    return None


# -- IMAP -----------------------------------------------------------------------


def imap_quote(value: str) -> str | None:
    """A quoted IMAP string, or None when only a literal can carry the value."""
    return core.imap_quote(value) if core.imap_quotable(value) else None


class ImapSession:
    protocol_name = "IMAP"

    def __init__(self, wire: Wire, timeout: float) -> None:
        self.wire = wire
        self.timeout = timeout
        self._tags = core.ImapTags("D", 3)
        self._reader = core.ImapResponseReader(wire.buffer, max_literal=MAX_LITERAL)

    def greeting(self, timeout: float) -> Reply:
        line = self.wire.read_line(timeout)
        greeting = core.imap_greeting(line.encode())
        return Reply(ok=greeting.usable, text=line, lines=(line,))

    def _read_response_line(self, timeout: float | None = None) -> str:
        """One whole response; a literal ({n}) is inlined (the doctor only reads short ones)."""
        response = self.wire.receive(self._reader.next, self.timeout if timeout is None else timeout)
        line = response.text
        self.wire.log_received(line)
        return line

    def _collect(self, tag: str) -> Reply:
        untagged: list[str] = []
        while True:
            line = self._read_response_line()
            status = core.imap_tagged(line.encode(), tag.encode())
            if status is not None:
                return Reply(ok=status.ok, text=line[len(tag) + 1:].partition(" ")[2], lines=(*untagged, line))
            if core.imap_greeting(line.encode()).kind == core.IMAP_BYE:
                untagged.append(line)
                # The server is hanging up; the tagged reply may never come.
                return Reply(ok=False, text=line[2:], lines=tuple(untagged))
            untagged.append(line)

    def command(self, command: str) -> Reply:
        tag = self._tags.next().decode()
        self.wire.send_line(f"{tag} {command}")
        return self._collect(tag)

    def capabilities(self) -> Capabilities:
        reply = self.command("CAPABILITY")
        names: set[str] = set()
        for line in reply.lines:
            found = core.imap_capabilities(line.encode())
            if found is not None:
                names |= found
        return Capabilities.of(core.imap_server_caps(sorted(names)), list(reply.lines))

    def starttls(self) -> Reply:
        return self.command("STARTTLS")

    def login(self, username: str, password: str, *, allow_plaintext: bool) -> Reply:
        tag = self._tags.next()
        users = (username,)

        def go_ahead() -> Reply | None:
            line = self._read_response_line()
            return None if line.startswith("+") else self._finish(tag.decode(), line)

        try:
            refused = _send_segments(self, core.imap_login(tag, username, password), password, users,
                                     allow_plaintext=allow_plaintext, go_ahead=go_ahead)
            reply = refused if refused is not None else self._collect(tag.decode())
        finally:
            self.wire.forget_secret()
        return _login_answer(reply, password, users)

    def _finish(self, tag: str, first: str) -> Reply:
        """The rest of a command's answer when ``first`` (already read) was not a go-ahead."""
        status = core.imap_tagged(first.encode(), tag.encode())
        if status is not None:
            return Reply(ok=status.ok, text=first[len(tag) + 1:].partition(" ")[2], lines=(first,))
        rest = self._collect(tag)
        return Reply(ok=rest.ok, text=rest.text, lines=(first, *rest.lines))

    def mailbox_count(self) -> int | None:
        reply = self.command("EXAMINE INBOX")
        if not reply.ok:
            return None
        for line in reply.lines:
            match = re.match(r"\* (\d+) EXISTS", line, re.IGNORECASE)
            if match:
                return int(match.group(1))
        return None

    def quota(self) -> list[tuple[str, int, int]]:
        """The inbox's quota (RFC 9208 GETQUOTAROOT): (resource, used, limit) triples; [] without QUOTA."""
        reply = self.command("GETQUOTAROOT INBOX")
        if not reply.ok:
            return []
        usage: list[tuple[str, int, int]] = []
        for line in reply.lines:
            if not line.upper().startswith("* QUOTA "):
                continue
            inside = line[line.find("(") + 1 : line.rfind(")")] if "(" in line else ""
            words = inside.split()
            for i in range(0, len(words) - 2, 3):
                if words[i + 1].isdigit() and words[i + 2].isdigit():
                    usage.append((words[i].upper(), int(words[i + 1]), int(words[i + 2])))
        return usage

    def find_header(self, name: str, value: str) -> bool:
        """Whether INBOX holds a message whose header ``name`` contains ``value``."""
        if not self.command("EXAMINE INBOX").ok:
            return False
        reply = self.command(f"UID SEARCH HEADER {name} {imap_quote(value) or chr(34) + chr(34)}")
        return any(line.upper().startswith("* SEARCH") and len(line.split()) > 2 for line in reply.lines)

    def logout(self) -> None:
        try:
            self.command("LOGOUT")
        except WireError:
            pass


# -- POP3 -----------------------------------------------------------------------


class Pop3Session:
    protocol_name = "POP3"

    def __init__(self, wire: Wire, timeout: float) -> None:
        self.wire = wire
        self.timeout = timeout

    def greeting(self, timeout: float) -> Reply:
        line = self.wire.read_line(timeout)
        return Reply(ok=core.pop3_ok(line), text=line, lines=(line,))

    def _reply(self) -> Reply:
        line = self.wire.read_line(self.timeout)
        return Reply(ok=core.pop3_ok(line), text=core.pop3_status_text(line), lines=(line,))

    def _multiline(self) -> list[str]:
        lines: list[str] = []
        while (line := core.pop3_unstuff(self.wire.read_line(self.timeout))) is not None:
            lines.append(line)
        return lines

    def command(self, command: str) -> Reply:
        self.wire.send_line(command)
        return self._reply()

    def capabilities(self) -> Capabilities:
        reply = self.command("CAPA")
        if not reply.ok:
            return Capabilities()
        lines = self._multiline()
        return Capabilities.of(core.pop3_server_caps(lines), lines)

    def starttls(self) -> Reply:
        return self.command("STLS")

    def login(self, username: str, password: str, *, allow_plaintext: bool) -> Reply:
        reply = self.command(f"USER {username}")
        if not reply.ok:
            return reply
        users = (username,)
        try:
            _send_segments(self, core.pop3_pass(password), password, users,
                           allow_plaintext=allow_plaintext, go_ahead=lambda: None)
            reply = self._reply()
        finally:
            self.wire.forget_secret()
        return _login_answer(reply, password, users)

    def mailbox_count(self) -> int | None:
        reply = self.command("STAT")
        parts = reply.text.split()
        return int(parts[0]) if reply.ok and parts and parts[0].isdigit() else None

    def find_header(self, name: str, value: str) -> bool:
        """Whether one of the newest 30 messages has header ``name`` containing ``value``."""
        count = self.mailbox_count() or 0
        prefix = name.lower() + ":"
        for number in range(count, max(count - 30, 0), -1):
            reply = self.command(f"TOP {number} 0")
            if not reply.ok:
                continue
            for line in self._multiline():
                if line.lower().startswith(prefix) and value in line:
                    return True
        return False

    def logout(self) -> None:
        try:
            self.command("QUIT")
        except WireError:
            pass


# -- SMTP -----------------------------------------------------------------------


class SmtpSession:
    protocol_name = "SMTP"

    def __init__(self, wire: Wire, timeout: float) -> None:
        self.wire = wire
        self.timeout = timeout
        self._reader = core.SmtpReplyReader(wire.buffer)

    def _reply(self, timeout: float | None = None) -> Reply:
        reply = self.wire.receive(self._reader.next, self.timeout if timeout is None else timeout)
        for line in reply.lines:
            self.wire.log_received(line)
        return Reply(ok=reply.positive, text=reply.text, code=reply.code, lines=reply.lines)

    def greeting(self, timeout: float) -> Reply:
        reply = self._reply(timeout)
        return Reply(ok=reply.code == 220, text=reply.text, code=reply.code, lines=reply.lines)

    def command(self, command: str) -> Reply:
        self.wire.send_line(command)
        return self._reply()

    def capabilities(self) -> Capabilities:
        helo_name = core.ehlo_name(self.wire.local_address())
        reply = self.command(f"EHLO {helo_name}")
        if not reply.ok:
            # An ESMTP-less server: no STARTTLS, no AUTH. HELO keeps the session usable.
            self.command(f"HELO {helo_name}")
            return Capabilities(raw=list(reply.lines))
        caps = core.smtp_server_caps(core.smtp_reply(reply.lines))
        return Capabilities.of(caps, list(reply.lines))

    def starttls(self) -> Reply:
        reply = self.command("STARTTLS")
        return Reply(ok=reply.code == 220, text=reply.text, code=reply.code, lines=reply.lines)

    def login(
        self, username: str, password: str, mechanisms: set[str], *, allow_plaintext: bool
    ) -> Reply:
        users = (username,)

        def go_ahead() -> Reply | None:
            reply = self._reply()
            return None if reply.code == 334 else reply

        try:
            refused = _send_segments(self, core.smtp_auth(username, password, mechanisms), password, users,
                                     allow_plaintext=allow_plaintext, go_ahead=go_ahead)
            reply = refused if refused is not None else self._reply()
        finally:
            self.wire.forget_secret()
        return _login_answer(reply, password, users)

    def send_message(self, sender: str, recipient: str, message: bytes) -> Reply:
        for command in (f"MAIL FROM:<{sender}>", f"RCPT TO:<{recipient}>", "DATA"):
            reply = self.command(command)
            if not reply.ok:
                return reply
        lines = message.replace(b"\r\n", b"\n").split(b"\n")
        body = b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)
        self.wire.send(body + b"\r\n.\r\n", shown="<message>")
        return self._reply()

    def logout(self) -> None:
        try:
            self.command("QUIT")
        except WireError:
            pass


MailSession = ImapSession | Pop3Session | SmtpSession

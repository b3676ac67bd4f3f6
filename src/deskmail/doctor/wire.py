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
  wire is encrypted or the caller explicitly allowed clear text. The transcript
  records ``****`` instead of the secret.
"""

from __future__ import annotations

import base64
import re
import socket
import ssl
import time
from dataclasses import dataclass, field

MAX_LINE = 64 * 1024  # a greeting/reply line longer than this is not a mail server
MAX_LITERAL = 1024 * 1024


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
    """One TCP connection (possibly upgraded to TLS) with a bounded line reader."""

    def __init__(self, sock: socket.socket, host: str, port: int) -> None:
        self._sock: socket.socket = sock
        self._buf = bytearray()
        self.host = host
        self.port = port
        self.tls_version = ""
        self.peer_cert_der: bytes | None = None
        self.transcript: list[str] = []

    @classmethod
    def connect(cls, address: str, port: int, host: str, timeout: float) -> Wire:
        """Connect to ``address`` (an IP); ``host`` is the name used for TLS checks."""
        sock = socket.create_connection((address, port), timeout=max(timeout, 0.01))
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
        self._buf += chunk

    def read_line(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            idx = self._buf.find(b"\n")
            if idx >= 0:
                raw = bytes(self._buf[: idx + 1])
                del self._buf[: idx + 1]
                line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
                self.transcript.append("S: " + line)
                return line
            if len(self._buf) > MAX_LINE:
                raise WireClosed("the server sent a line longer than 64 KB")
            self._fill(deadline)

    def read_exact(self, count: int, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while len(self._buf) < count:
            self._fill(deadline)
        data = bytes(self._buf[:count])
        del self._buf[:count]
        return data

    def sniff(self, timeout: float) -> bytes:
        """Whatever the server sends within ``timeout`` (b"" if it stays silent)."""
        if not self._buf:
            try:
                self._fill(time.monotonic() + timeout)
            except WireTimeout:
                return b""
        return bytes(self._buf)

    # -- writing ----------------------------------------------------------------

    def send(self, data: bytes, *, shown: str | None = None) -> None:
        self.transcript.append("C: " + (shown if shown is not None else data.decode("utf-8", "replace").rstrip()))
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise WireClosed(f"connection lost while sending: {exc}") from exc

    def send_line(self, line: str) -> None:
        self.send(line.encode("utf-8") + b"\r\n")

    def send_secret(self, data: bytes, shown: str, *, allow_plaintext: bool) -> None:
        """Send bytes containing a credential; ``shown`` is what the transcript records."""
        if not self.encrypted and not allow_plaintext:
            raise PlaintextSecret("refusing to send a password over an unencrypted connection")
        self.send(data, shown=shown)

    # -- TLS --------------------------------------------------------------------

    def start_tls(self, context: ssl.SSLContext, timeout: float) -> None:
        """Upgrade to TLS. Raises ssl.SSLError / WireTimeout / WireInjection."""
        if self._buf:
            # Anything the server sent after its "go ahead" and before the
            # handshake was written by whoever is in the middle (or is a
            # broken server); acting on it is the STARTTLS injection bug.
            raise WireInjection(f"{len(self._buf)} unexpected bytes after the STARTTLS reply")
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
        self.transcript.append(f"-- TLS established ({self.tls_version})")

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


def display(text: str, limit: int = 160) -> str:
    """Server text made safe to show: printable, one line, bounded."""
    cleaned = re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


# -- IMAP -----------------------------------------------------------------------


def imap_quote(value: str) -> str | None:
    """A quoted IMAP string, or None when only a literal can carry the value."""
    if any(ord(c) < 0x20 or ord(c) > 0x7E for c in value):
        return None
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ImapSession:
    protocol_name = "IMAP"

    def __init__(self, wire: Wire, timeout: float) -> None:
        self.wire = wire
        self.timeout = timeout
        self._tag = 0

    def greeting(self, timeout: float) -> Reply:
        line = self.wire.read_line(timeout)
        upper = line.upper()
        return Reply(ok=upper.startswith(("* OK", "* PREAUTH")), text=line, lines=(line,))

    def _read_response_line(self) -> str:
        line = self.wire.read_line(self.timeout)
        # A literal ({n}) continues the response after n raw bytes.
        while (match := re.search(r"\{(\d+)\}$", line)) is not None:
            size = int(match.group(1))
            if size > MAX_LITERAL:
                raise WireClosed("the server announced an oversized literal")
            literal = self.wire.read_exact(size, self.timeout)
            line = line + literal.decode("utf-8", "replace") + self.wire.read_line(self.timeout)
        return line

    def _next_tag(self) -> str:
        self._tag += 1
        return f"D{self._tag:03d}"

    def _collect(self, tag: str) -> Reply:
        untagged: list[str] = []
        while True:
            line = self._read_response_line()
            if line.startswith(tag + " "):
                rest = line[len(tag) + 1 :]
                status, _, text = rest.partition(" ")
                return Reply(ok=status.upper() == "OK", text=text, lines=(*untagged, line))
            if line.upper().startswith("* BYE"):
                untagged.append(line)
                # The server is hanging up; the tagged reply may never come.
                return Reply(ok=False, text=line[2:], lines=tuple(untagged))
            untagged.append(line)

    def command(self, command: str) -> Reply:
        tag = self._next_tag()
        self.wire.send_line(f"{tag} {command}")
        return self._collect(tag)

    def capabilities(self) -> Capabilities:
        reply = self.command("CAPABILITY")
        caps = Capabilities(raw=list(reply.lines))
        for line in reply.lines:
            if line.upper().startswith("* CAPABILITY"):
                for atom in line.split()[2:]:
                    upper = atom.upper()
                    if upper == "STARTTLS":
                        caps.starttls = True
                    elif upper == "LOGINDISABLED":
                        caps.login_disabled = True
                    elif upper.startswith("AUTH="):
                        caps.auth_mechanisms.add(upper[5:])
        caps.auth_advertised = bool(caps.auth_mechanisms)
        return caps

    def starttls(self) -> Reply:
        return self.command("STARTTLS")

    def login(self, username: str, password: str, *, allow_plaintext: bool) -> Reply:
        tag = self._next_tag()
        quoted_user = imap_quote(username)
        quoted_pass = imap_quote(password)
        if quoted_user is not None and quoted_pass is not None:
            self.wire.send_secret(
                f"{tag} LOGIN {quoted_user} {quoted_pass}\r\n".encode(),
                f"{tag} LOGIN {quoted_user} ****",
                allow_plaintext=allow_plaintext,
            )
            return self._collect(tag)
        # Non-ASCII or control characters: synchronising literals (RFC 3501 §4.3).
        user_bytes = username.encode("utf-8")
        pass_bytes = password.encode("utf-8")
        if not self.wire.encrypted and not allow_plaintext:
            raise PlaintextSecret("refusing to send a password over an unencrypted connection")
        self.wire.send(f"{tag} LOGIN {{{len(user_bytes)}}}\r\n".encode())
        if not self.wire.read_line(self.timeout).startswith("+"):
            return self._collect(tag)
        self.wire.send(user_bytes + f" {{{len(pass_bytes)}}}\r\n".encode())
        if not self.wire.read_line(self.timeout).startswith("+"):
            return self._collect(tag)
        self.wire.send_secret(pass_bytes + b"\r\n", "****", allow_plaintext=allow_plaintext)
        return self._collect(tag)

    def mailbox_count(self) -> int | None:
        reply = self.command("EXAMINE INBOX")
        if not reply.ok:
            return None
        for line in reply.lines:
            match = re.match(r"\* (\d+) EXISTS", line, re.IGNORECASE)
            if match:
                return int(match.group(1))
        return None

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
        return Reply(ok=line.startswith("+OK"), text=line, lines=(line,))

    def _reply(self) -> Reply:
        line = self.wire.read_line(self.timeout)
        ok = line.startswith("+OK")
        text = line[3:].strip() if ok else line[4:].strip()
        return Reply(ok=ok, text=text, lines=(line,))

    def _multiline(self) -> list[str]:
        lines: list[str] = []
        while True:
            line = self.wire.read_line(self.timeout)
            if line == ".":
                return lines
            lines.append(line[1:] if line.startswith("..") else line)

    def command(self, command: str) -> Reply:
        self.wire.send_line(command)
        return self._reply()

    def capabilities(self) -> Capabilities:
        reply = self.command("CAPA")
        caps = Capabilities()
        if not reply.ok:
            return caps
        for line in self._multiline():
            caps.raw.append(line)
            words = line.upper().split()
            if not words:
                continue
            if words[0] == "STLS":
                caps.starttls = True
            elif words[0] == "SASL":
                caps.auth_mechanisms.update(words[1:])
                caps.auth_advertised = True
        return caps

    def starttls(self) -> Reply:
        return self.command("STLS")

    def login(self, username: str, password: str, *, allow_plaintext: bool) -> Reply:
        reply = self.command(f"USER {username}")
        if not reply.ok:
            return reply
        self.wire.send_secret(f"PASS {password}\r\n".encode(), "PASS ****", allow_plaintext=allow_plaintext)
        return self._reply()

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

    def _reply(self, timeout: float | None = None) -> Reply:
        lines: list[str] = []
        while True:
            line = self.wire.read_line(self.timeout if timeout is None else timeout)
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                break
            if len(lines) > 500:
                raise WireClosed("the server sent a reply of more than 500 lines")
        first = lines[0]
        code = int(first[:3]) if first[:3].isdigit() else 0
        text = " ".join(line[4:] for line in lines).strip()
        return Reply(ok=200 <= code < 400, text=text, code=code, lines=tuple(lines))

    def greeting(self, timeout: float) -> Reply:
        reply = self._reply(timeout)
        return Reply(ok=reply.code == 220, text=reply.text, code=reply.code, lines=reply.lines)

    def command(self, command: str) -> Reply:
        self.wire.send_line(command)
        return self._reply()

    def capabilities(self) -> Capabilities:
        local = self.wire.local_address()
        helo_name = f"[IPv6:{local}]" if ":" in local else f"[{local}]"
        reply = self.command(f"EHLO {helo_name}")
        caps = Capabilities(raw=list(reply.lines))
        if not reply.ok:
            # An ESMTP-less server: no STARTTLS, no AUTH. HELO keeps the session usable.
            self.command(f"HELO {helo_name}")
            return caps
        for line in reply.lines[1:]:
            words = line[4:].upper().replace("=", " ").split()
            if not words:
                continue
            if words[0] == "STARTTLS":
                caps.starttls = True
            elif words[0] == "AUTH":
                caps.auth_advertised = True
                caps.auth_mechanisms.update(words[1:])
        return caps

    def starttls(self) -> Reply:
        reply = self.command("STARTTLS")
        return Reply(ok=reply.code == 220, text=reply.text, code=reply.code, lines=reply.lines)

    def login(
        self, username: str, password: str, mechanisms: set[str], *, allow_plaintext: bool
    ) -> Reply:
        if "PLAIN" in mechanisms or "LOGIN" not in mechanisms:
            blob = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
            self.wire.send_secret(
                f"AUTH PLAIN {blob}\r\n".encode(), "AUTH PLAIN ****", allow_plaintext=allow_plaintext
            )
            return self._reply()
        reply = self.command("AUTH LOGIN")
        if reply.code != 334:
            return reply
        reply = self.command(base64.b64encode(username.encode()).decode())
        if reply.code != 334:
            return reply
        self.wire.send_secret(
            base64.b64encode(password.encode()) + b"\r\n", "****", allow_plaintext=allow_plaintext
        )
        return self._reply()

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

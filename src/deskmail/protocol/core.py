"""The mail protocols' session logic without I/O: bytes in, decisions and bytes out.

IMAP, POP3 and SMTP sessions are opened in three places with different needs: the
account's own sessions (:mod:`deskmail.protocol.imap`, ``smtp``, ``pop3``), the doctor
(:mod:`deskmail.doctor.wire`, which must see every byte and time every wait) and
discovery's probe (:mod:`deskmail.discovery.probe`, which never logs in). What a
greeting means, which capabilities a server offers, whether a tagged reply is OK,
whether STARTTLS may proceed and what a login looks like on the wire (and in the
log) is decided here, once; the adapters only move bytes and turn outcomes into
their own errors or findings.

Nothing here reads a socket or writes a log. Received bytes go into a
:class:`LineBuffer`; readers (:class:`ImapResponseReader`, :class:`SmtpReplyReader`)
take complete responses out of it and return ``None`` while one is incomplete, so
a response split across any number of reads, with literals across chunk
boundaries, is assembled the same way. The buffer's fill level is what the
STARTTLS injection rule looks at.

Credentials are sent as :class:`Segment` values: the bytes for the wire and the
form a transcript shows (``****`` where the secret is). An adapter logs ``shown``
and never the data, so no log line ever has to be cleaned up afterwards.

"""

from __future__ import annotations

import re
from binascii import b2a_base64  # a builtin module: base64 itself would add to every sync's start-up
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Protocol

    class Sink(Protocol):
        def write(self, data: bytes, /) -> int: ...


def _b64encode(data: bytes) -> bytes:
    return b2a_base64(data, newline=False)


class FramingError(Exception):
    """The peer's bytes break the protocol's framing (a line or literal beyond the limits)."""


# -- bytes to lines -----------------------------------------------------------------


class LineBuffer:
    """Received bytes, handed out as CRLF/LF-terminated lines or counted runs.

    ``max_line``: a line still unterminated beyond this many bytes is hostile or
    not the protocol (raises :class:`FramingError` instead of growing forever).
    """

    __slots__ = ("_buf", "max_line")

    def __init__(self, max_line: int = 64 * 1024) -> None:
        self._buf = bytearray()
        self.max_line = max_line

    def feed(self, data: bytes) -> None:
        self._buf += data

    def buffered(self) -> int:
        """How many received bytes are not taken yet."""
        return len(self._buf)

    def peek(self) -> bytes:
        return bytes(self._buf)

    def line(self) -> bytes | None:
        """The next complete line with its line ending, or None until one has arrived."""
        i = self._buf.find(b"\n")
        if i < 0:
            if len(self._buf) > self.max_line:
                raise FramingError(f"a line longer than {self.max_line} bytes")
            return None
        if i >= self.max_line:
            raise FramingError(f"a line longer than {self.max_line} bytes")
        out = bytes(self._buf[: i + 1])
        del self._buf[: i + 1]
        return out

    def take(self, count: int) -> bytes:
        """Up to ``count`` buffered bytes (fewer when fewer have arrived)."""
        out = bytes(self._buf[:count])
        del self._buf[:count]
        return out


def text(raw: bytes) -> str:
    """A received line as text without its line ending (undecodable bytes replaced)."""
    return raw.rstrip(b"\r\n").decode("utf-8", "replace")


# -- credentials on the wire ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Segment:
    """Bytes to send and what a transcript shows of them (``****`` for a secret).

    ``after_go_ahead``: send only after the server's continuation (``+``) answer; a
    different answer ends the exchange (the rest is not sent).
    """

    data: bytes = field(repr=False)  # never in a repr: it may be a password
    shown: str
    _: KW_ONLY
    after_go_ahead: bool = False


def secret_forms(secret: str, *usernames: str) -> tuple[str, ...]:
    """The forms in which ``secret`` travels: as is, base64, and the AUTH PLAIN blobs with ``usernames``."""
    if not secret:
        return ()
    forms = [secret, _b64encode(secret.encode()).decode()]
    for user in usernames:
        forms.append(_b64encode(f"\0{user}\0{secret}".encode()).decode())
        forms.append(_b64encode(f"{user}\0{user}\0{secret}".encode()).decode())
    return tuple(forms)


# Patterns are compiled on first use (re caches them): compiling at import would cost every sync's
# start-up about a millisecond per pattern, and most of them serve only the doctor or the log.
_TOKEN_SPLIT = r"[\s\"'()<>\[\]{},;:=]+"


def repeats_secret(answer: str, secret: str, *usernames: str) -> bool:
    """Whether a server's answer to credentials repeats them (some servers echo a refused command).

    Compared word by word, not as a substring: a one-letter or dictionary-word
    password is "in" almost any sentence, but the server's words are rarely exactly it.
    Only the direct answer to a credential exchange needs this; adapters then show
    that answer without its text.
    """
    forms = set(secret_forms(secret, *usernames))
    if not forms:
        return False
    words = set(re.split(_TOKEN_SPLIT, answer))
    return bool(words & forms) or any(len(f) >= 8 and f in answer for f in forms)


# -- capabilities, protocol-neutral -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerCaps:
    """What a server offered: its capability keywords and the security-relevant facts.

    ``auth_advertised``: an AUTH (SMTP) / SASL (POP3) / AUTH= (IMAP) entry was present at all.
    """

    names: tuple[str, ...] = ()
    auth_mechanisms: tuple[str, ...] = ()
    _: KW_ONLY
    starttls: bool = False
    login_disabled: bool = False
    auth_advertised: bool = False

    def __post_init__(self) -> None:
        # A mechanism listed twice (AUTH and AUTH= lines) counts once, in the server's order.
        object.__setattr__(self, "auth_mechanisms", tuple(dict.fromkeys(self.auth_mechanisms)))


STARTTLS_OK, STARTTLS_REFUSED, STARTTLS_INJECTED = "ok", "refused", "injected"


def starttls_outcome(accepted: bool, buffered: int) -> str:
    """May the TLS handshake start? ``buffered``: bytes already received after the go-ahead.

    Bytes that arrive in clear together with the go-ahead were written by someone in
    the middle (or a broken server); reading them as if they had come over TLS is
    the STARTTLS response-injection bug (CVE-2011-0411 class), so they end the session.
    """
    if not accepted:
        return STARTTLS_REFUSED
    return STARTTLS_INJECTED if buffered else STARTTLS_OK


# -- IMAP ---------------------------------------------------------------------------

IMAP_OK, IMAP_PREAUTH, IMAP_BYE = "OK", "PREAUTH", "BYE"

_IMAP_LITERAL = rb"\{(\d+)\+?\}\r?\n$"


@dataclass(frozen=True, slots=True)
class ImapGreeting:
    """The first line of an IMAP session: OK, PREAUTH (already logged in), BYE or junk ("")."""

    kind: str
    capabilities: frozenset[str] | None  # from an OK [CAPABILITY ...] code, else None
    line: bytes

    @property
    def usable(self) -> bool:
        return self.kind in (IMAP_OK, IMAP_PREAUTH)


def imap_greeting(line: bytes) -> ImapGreeting:
    words = line.split(None, 2)
    kind = words[1].upper().decode("ascii", "replace") if len(words) > 1 and words[0] == b"*" else ""
    if kind not in (IMAP_OK, IMAP_PREAUTH, IMAP_BYE):
        kind = ""
    return ImapGreeting(kind, imap_capabilities(line) if kind else None, line)


def imap_capabilities(line: bytes) -> frozenset[str] | None:
    """Capabilities named by a ``* CAPABILITY`` response or an ``[CAPABILITY ...]`` code; None if neither."""
    words = line.split(None, 2)
    if len(words) >= 2 and words[0] == b"*" and words[1].upper() == b"CAPABILITY":
        names = words[2] if len(words) > 2 else b""
    else:
        start = line.upper().find(b"[CAPABILITY ")
        end = line.find(b"]", start)
        if start < 0 or end < 0:
            return None
        names = line[start + 12:end]
    return frozenset(names.decode("ascii", "replace").upper().split())


def imap_server_caps(capabilities: Iterable[str]) -> ServerCaps:
    names = [c.upper() for c in capabilities]
    auth = [c[5:] for c in names if c.startswith("AUTH=")]
    return ServerCaps(tuple(names), tuple(auth), starttls="STARTTLS" in names, login_disabled="LOGINDISABLED" in names,
                      auth_advertised=bool(auth))


@dataclass(frozen=True, slots=True)
class ImapStatus:
    """A tagged completion: ``status`` OK / NO / BAD ("" when missing), the text after it."""

    tag: bytes
    status: str
    text: str
    line: bytes

    @property
    def ok(self) -> bool:
        return self.status == "OK"

    @property
    def capabilities(self) -> frozenset[str] | None:
        return imap_capabilities(self.line)


def imap_tagged(line: bytes, tag: bytes) -> ImapStatus | None:
    """The completion of the command tagged ``tag``, or None if ``line`` is something else."""
    if not line.startswith(tag + b" "):
        return None
    status, _, rest = line[len(tag) + 1:].partition(b" ")
    return ImapStatus(tag, status.strip().upper().decode("ascii", "replace"), text(rest), line)


class ImapTags:
    """Command tags: ``D1``, ``D2``, ... (``width`` pads the number: ``D001``)."""

    __slots__ = ("prefix", "width", "count")

    def __init__(self, prefix: str = "D", width: int = 0) -> None:
        self.prefix = prefix
        self.width = width
        self.count = 0

    def next(self) -> bytes:
        self.count += 1
        return f"{self.prefix}{self.count:0{self.width}d}".encode()


def imap_quotable(value: str) -> bool:
    """Whether ``value`` fits an IMAP quoted string (printable 7-bit only)."""
    return all(0x20 <= ord(c) <= 0x7E for c in value)


def imap_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def imap_login(tag: bytes, username: str, password: str) -> list[Segment]:
    """LOGIN as quoted strings, or as synchronising literals for 8-bit or control characters (RFC 3501 §4.3)."""
    t = tag.decode()
    if imap_quotable(username) and imap_quotable(password):
        user = imap_quote(username)
        return [Segment(f"{t} LOGIN {user} {imap_quote(password)}\r\n".encode(), f"{t} LOGIN {user} ****")]
    user_b, pass_b = username.encode("utf-8"), password.encode("utf-8")
    return [
        Segment(b"%s LOGIN {%d}\r\n" % (tag, len(user_b)), f"{t} LOGIN {{{len(user_b)}}}"),
        Segment(user_b + b" {%d}\r\n" % len(pass_b), f"{username} {{{len(pass_b)}}}", after_go_ahead=True),
        Segment(pass_b + b"\r\n", "****", after_go_ahead=True),
    ]


@dataclass(frozen=True, slots=True)
class ImapResponse:
    """One whole response: its lines joined (line endings dropped) with in-memory literals inline.

    ``literals``: each literal's bytes, or its size when it went to a sink.
    """

    raw: bytes
    literals: list[bytes | int]

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8", "replace")

    @property
    def tag(self) -> bytes:
        return self.raw.split(b" ", 1)[0]

    @property
    def untagged(self) -> bool:
        return self.raw.startswith(b"* ")



class ImapResponseReader:
    """Whole IMAP responses out of a :class:`LineBuffer`, literals included (RFC 3501 §4.3).

    ``literal_sink(head, size)`` is asked when a literal starts (``head``: the response
    so far); a sink it returns receives the literal's bytes as they arrive, chunk by
    chunk, and nothing is held in memory. Without a sink the literal is kept, up to
    ``max_literal`` bytes. :meth:`next` returns None while the response is incomplete:
    feed the buffer more bytes and call it again.
    """

    def __init__(self, buffer: LineBuffer, *, max_literal: int = 1024 * 1024,
                 literal_sink: Callable[[bytes, int], Sink | None] | None = None) -> None:
        self.buffer = buffer
        self.max_literal = max_literal
        self.literal_sink = literal_sink
        self._parts: list[bytes] = []
        self._literals: list[bytes | int] = []
        self._remaining = 0
        self._sink: Sink | None = None
        self._held = bytearray()

    def next(self) -> ImapResponse | None:
        while True:
            if self._remaining:
                chunk = self.buffer.take(self._remaining)
                if not chunk:
                    return None
                self._remaining -= len(chunk)
                if self._sink is not None:
                    self._sink.write(chunk)
                else:
                    self._held += chunk
                if self._remaining:
                    return None
                if self._sink is None:
                    self._parts.append(bytes(self._held))
                    self._literals.append(bytes(self._held))
                self._sink = None
                self._held = bytearray()
                continue
            line = self.buffer.line()
            if line is None:
                return None
            m = re.search(_IMAP_LITERAL, line)
            self._parts.append(line.rstrip(b"\r\n"))
            if m is None:
                response = ImapResponse(b"".join(self._parts), self._literals)
                self._parts, self._literals = [], []
                return response
            size = int(m.group(1))
            sink = self.literal_sink(b"".join(self._parts), size) if self.literal_sink is not None else None
            if sink is None and size > self.max_literal:
                raise FramingError(f"a {size}-byte literal, over the {self.max_literal}-byte limit")
            self._remaining = size
            self._sink = sink if size else None
            if sink is not None:
                self._literals.append(size)
            elif not size:  # {0}: nothing to read, the response goes on with the next line
                self._parts.append(b"")
                self._literals.append(b"")


# -- SMTP ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SmtpReply:
    """One SMTP reply (RFC 5321 §4.2): the code and each line's text after the code.

    ``wellformed`` is False when a line did not start with three digits and a space
    or hyphen; ``code`` is then what the first line's digits say, or 0.
    """

    code: int
    texts: tuple[str, ...]
    lines: tuple[str, ...]
    wellformed: bool

    @property
    def text(self) -> str:
        return " ".join(self.texts).strip()

    @property
    def positive(self) -> bool:
        return 200 <= self.code < 400


class SmtpReplyReader:
    """Whole (multi-line) SMTP replies out of a :class:`LineBuffer`; None while incomplete."""

    def __init__(self, buffer: LineBuffer, *, max_lines: int = 500) -> None:
        self.buffer = buffer
        self.max_lines = max_lines
        self._lines: list[str] = []

    def next(self) -> SmtpReply | None:
        while (raw := self.buffer.line()) is not None:
            line = text(raw)
            self._lines.append(line)
            if len(line) >= 4 and line[3] == "-":
                if len(self._lines) > self.max_lines:
                    raise FramingError(f"a reply of more than {self.max_lines} lines")
                continue
            lines, self._lines = tuple(self._lines), []
            return smtp_reply(lines)
        return None


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def smtp_reply(lines: tuple[str, ...]) -> SmtpReply:
    first = lines[0] if lines else ""
    # ASCII digits only: "¹".isdigit() is true, and int() refuses it.
    code = int(first[:3]) if _digits(first[:3]) else 0
    wellformed = bool(lines) and all(
        len(x) >= 3 and _digits(x[:3]) and (len(x) == 3 or x[3] in " -") for x in lines)
    return SmtpReply(code, tuple(x[4:] for x in lines), lines, wellformed)


def smtp_greeting_ok(reply: SmtpReply) -> bool:
    return reply.code == 220


def smtp_starttls_ok(reply: SmtpReply) -> bool:
    return reply.code == 220


def ehlo_name(local_address: str) -> str:
    """The EHLO argument without a meaningful host name: an address literal (RFC 5321 §4.1.4)."""
    return f"[IPv6:{local_address}]" if ":" in local_address else f"[{local_address}]"


def smtp_server_caps(reply: SmtpReply) -> ServerCaps:
    """What an EHLO reply offers (its first line is the greeting, not a keyword)."""
    if reply.code != 250:
        return ServerCaps()
    names: list[str] = []
    auth: list[str] = []
    advertised = False
    for line in reply.texts[1:]:
        words = line.upper().split()
        if not words:
            continue
        if words[0].startswith("AUTH="):  # the pre-RFC 4954 form some servers still send
            words = ["AUTH", words[0][5:], *words[1:]]
        names.append(words[0])
        if words[0] == "AUTH":
            advertised = True
            auth.extend(w for w in words[1:] if w)
    return ServerCaps(tuple(names), tuple(auth), starttls="STARTTLS" in names, auth_advertised=advertised)


def smtp_auth_plain(username: str, password: str) -> list[Segment]:
    blob = _b64encode(f"\0{username}\0{password}".encode())
    return [Segment(b"AUTH PLAIN " + blob + b"\r\n", "AUTH PLAIN ****")]


def smtp_auth_login(username: str, password: str) -> list[Segment]:
    """AUTH LOGIN: the user name and the password each after a 334 go-ahead."""
    user = _b64encode(username.encode())
    return [Segment(b"AUTH LOGIN\r\n", "AUTH LOGIN"),
            Segment(user + b"\r\n", user.decode(), after_go_ahead=True),
            Segment(_b64encode(password.encode()) + b"\r\n", "****", after_go_ahead=True)]


def smtp_auth(username: str, password: str, mechanisms: Iterable[str]) -> list[Segment]:
    """PLAIN when offered (or nothing better is known), else LOGIN."""
    offered = set(mechanisms)
    if "PLAIN" in offered or "LOGIN" not in offered:
        return smtp_auth_plain(username, password)
    return smtp_auth_login(username, password)


# -- POP3 ---------------------------------------------------------------------------


def pop3_ok(line: bytes | str) -> bool:
    """A POP3 status line's verdict: ``+OK`` (anything else, ``-ERR`` included, is a refusal)."""
    return (line.encode() if isinstance(line, str) else line).startswith(b"+OK")


def pop3_status_text(line: str) -> str:
    return line[3:].strip() if pop3_ok(line) else line[4:].strip()


def pop3_server_caps(capa_lines: Iterable[str]) -> ServerCaps:
    """What the lines of a CAPA answer (RFC 2449) offer; STLS is POP3's STARTTLS."""
    names: list[str] = []
    auth: list[str] = []
    advertised = False
    for line in capa_lines:
        words = line.upper().split()
        if not words:
            continue
        names.append(words[0])
        if words[0] == "SASL":
            advertised = True
            auth.extend(words[1:])
    return ServerCaps(tuple(names), tuple(auth), starttls="STLS" in names, auth_advertised=advertised)


def pop3_unstuff(line: str) -> str | None:
    """One line of a multi-line answer without its dot-stuffing; None for the final ``.``."""
    if line == ".":
        return None
    return line[1:] if line.startswith("..") else line


def pop3_pass(password: str) -> list[Segment]:
    return [Segment(f"PASS {password}\r\n".encode(), "PASS ****")]

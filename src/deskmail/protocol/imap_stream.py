"""Streaming IMAP responses, written by hand.

Why not imapclient/imaplib here: imaplib reads every literal of a response
into memory and keeps the whole response until the command completes (a
``UID FETCH 1:*`` of a 300 MB mailbox peaked at 300 MB), and neither library
can SELECT with QRESYNC parameters. This module reads responses line by line
from the connection's buffered socket file, writes ``BODY[]`` literals
straight into a file as they arrive, and hands back the small items (UID,
FLAGS, MODSEQ, RFC822.SIZE, header fields). Memory stays bounded by
``MAX_LINE`` and ``MAX_SMALL_LITERAL`` whatever the mailbox or message size.

The parser works on one "cursor" over the current line; when it meets a
literal marker ``{n}`` at the end of a line it reads exactly n bytes (to a
sink or into memory) and continues with the next line, as RFC 3501 §4.3
describes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from deskmail.errors import ProtocolError

MAX_LINE = 1024 * 1024  # a response line longer than this is hostile (F-31)
MAX_SMALL_LITERAL = 4 * 1024 * 1024  # non-body literals (header fields, quoted names)
MAX_BODY = 2 * 1024 * 1024 * 1024  # refuse absurd literal sizes before reading them
CHUNK = 256 * 1024

_LITERAL_AT_END = re.compile(rb"\{(\d+)\+?\}\r?\n$")

if TYPE_CHECKING:
    from typing import Protocol

    class Sink(Protocol):
        def write(self, data: bytes, /) -> int: ...


    class LineReader(Protocol):
        def readline(self, limit: int = -1, /) -> bytes: ...

        def read(self, size: int, /) -> bytes: ...


    class _Socket(Protocol):
        def recv(self, size: int, /) -> bytes: ...
else:
    Sink = LineReader = _Socket = object  # structural types matter to the type checker only


class SocketReader:
    """A socket's bytes, read by lines or by counts, with a buffer whose fill level is known.

    Why not ``socket.makefile()``: its BufferedReader drops a half-read line when a
    read times out, and cannot say whether bytes are waiting in it. IDLE needs
    the second (wait on the socket only when nothing is buffered), and STARTTLS
    needs it too: bytes already buffered when encryption starts were sent in
    clear by someone, so they are refused, never read as if encrypted.
    """

    RECV = 64 * 1024

    def __init__(self, sock: _Socket) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def _more(self) -> bool:
        data = self._sock.recv(self.RECV)
        if not data:
            return False
        rest = self._buf[self._pos:]
        self._buf = rest + data if rest else data
        self._pos = 0
        return True

    def readline(self, limit: int = -1, /) -> bytes:
        scan = self._pos
        while True:
            i = self._buf.find(b"\n", scan)
            if i >= 0:
                end = i + 1
                break
            if 0 <= limit <= len(self._buf) - self._pos:
                end = self._pos + limit
                break
            scan = len(self._buf) - self._pos  # where the unsearched part starts after _more()
            if not self._more():
                end = len(self._buf)
                break
        if limit >= 0:
            end = min(end, self._pos + limit)
        line = self._buf[self._pos:end]
        self._pos = end
        return line

    def read(self, size: int, /) -> bytes:
        if self._pos < len(self._buf):
            out = self._buf[self._pos:self._pos + size]
            self._pos += len(out)
            return out
        # Never ask for more than RECV: a TLS read returns one record (<= 16 KiB) however much is
        # asked, but CPython allocates the whole size first and shrinks it after. A 256 KiB ask is
        # above glibc's mmap threshold: mmap + mremap + munmap and fresh zero pages for every record.
        return self._sock.recv(min(size, self.RECV))


@dataclass(slots=True)
class FetchItem:
    """One message's FETCH data, filled in as the response is parsed; ``body_size`` is set when BODY[]
    went to a sink."""

    seq: int
    uid: int = 0
    flags: tuple[str, ...] | None = None
    size: int = 0
    modseq: int = 0
    body_size: int = -1
    small: dict[str, bytes] = field(default_factory=dict)


class Untagged:
    """Other responses seen while a command ran (EXISTS, EXPUNGE, VANISHED ...)."""

    __slots__ = ("exists", "expunged", "vanished", "other", "tagged", "data")

    def __init__(self) -> None:
        self.exists: int | None = None
        self.expunged: list[int] = []  # sequence numbers
        self.vanished: list[int] = []  # UIDs (QRESYNC)
        self.other: list[bytes] = []
        self.tagged = b""  # the completion line (carries COPYUID / APPENDUID codes)
        self.data: list[tuple[bytes, list[object]]] = []  # parsed kinds the caller asked for


def parse_uid_set(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        if not part:
            continue
        lo, _, hi = part.partition(":")
        a = int(lo)
        b = int(hi) if hi else a
        if a > b:
            a, b = b, a
        if b - a > 10_000_000:
            raise ProtocolError(f"The server sent an absurd UID range {part}")
        out.extend(range(a, b + 1))
    return out


def compress_uids(uids: list[int]) -> str:
    """``[1,2,3,7]`` -> ``"1:3,7"``: keeps commands short for large sets."""
    if not uids:
        return ""
    uids = sorted(set(uids))
    parts: list[str] = []
    start = prev = uids[0]
    for u in uids[1:]:
        if u == prev + 1:
            prev = u
            continue
        parts.append(f"{start}:{prev}" if prev != start else str(start))
        start = prev = u
    parts.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(parts)


class _Cursor:
    """The current response line plus the ability to pull literals and further lines."""

    def __init__(self, reader: LineReader, first: bytes) -> None:
        self.reader = reader
        self.line = first
        self.pos = 0

    def read_line(self) -> None:
        self.line = read_line(self.reader)
        self.pos = 0

    def skip_spaces(self) -> None:
        while self.pos < len(self.line) and self.line[self.pos] == 0x20:
            self.pos += 1

    def peek(self) -> int:
        return self.line[self.pos] if self.pos < len(self.line) else -1

    def expect(self, ch: bytes) -> None:
        self.skip_spaces()
        if self.line[self.pos:self.pos + 1] != ch:
            raise ProtocolError(f"Unexpected IMAP response near {self.line[self.pos:self.pos + 40]!r}")
        self.pos += 1

    def atom(self) -> bytes:
        """An atom; a section like BODY[HEADER.FIELDS (X Y)]<0> is read as one atom."""
        self.skip_spaces()
        start = self.pos
        depth = 0
        while self.pos < len(self.line):
            c = self.line[self.pos]
            if c == 0x5B:  # [
                depth += 1
            elif c == 0x5D:  # ]
                depth -= 1
            elif depth == 0 and c in b" ()\r\n":
                break
            self.pos += 1
        return self.line[start:self.pos]

    def literal_size(self) -> int | None:
        m = _LITERAL_AT_END.match(self.line, self.pos)
        if not m:
            return None
        size = int(m.group(1))
        if size > MAX_BODY:
            raise ProtocolError(f"The server announced a {size}-byte literal; refusing it")
        return size

    def read_literal(self, size: int, sink: Sink | None) -> bytes:
        """Read ``size`` bytes (into ``sink`` if given), then load the line after the literal."""
        buf = bytearray()
        remaining = size
        while remaining:
            chunk = self.reader.read(min(CHUNK, remaining))
            if not chunk:
                raise ConnectionResetError("connection closed inside a literal")
            remaining -= len(chunk)
            if sink is not None:
                sink.write(chunk)
            else:
                buf += chunk
        self.read_line()
        return bytes(buf)

    def value(self, sink: Sink | None = None) -> object:
        """number | NIL | "quoted" | (list) | {literal}; a literal goes to ``sink`` if given."""
        self.skip_spaces()
        c = self.peek()
        if c == 0x28:  # (
            self.pos += 1
            items: list[object] = []
            while True:
                self.skip_spaces()
                if self.peek() == 0x29:
                    self.pos += 1
                    return items
                if self.peek() == -1 or self.peek() in (0x0D, 0x0A):
                    raise ProtocolError("IMAP list not closed before the end of the line")
                items.append(self.value())
        if c == 0x22:  # "
            self.pos += 1
            out = bytearray()
            while self.pos < len(self.line):
                ch = self.line[self.pos]
                self.pos += 1
                if ch == 0x5C and self.pos < len(self.line):  # backslash escape
                    out.append(self.line[self.pos])
                    self.pos += 1
                elif ch == 0x22:
                    return bytes(out)
                else:
                    out.append(ch)
            raise ProtocolError("IMAP quoted string not closed")
        if c == 0x7B:  # {
            size = self.literal_size()
            if size is None:
                raise ProtocolError(f"Malformed IMAP literal near {self.line[self.pos:self.pos + 20]!r}")
            if sink is None and size > MAX_SMALL_LITERAL:
                raise ProtocolError(f"Refusing to hold a {size}-byte literal in memory")
            data = self.read_literal(size, sink)
            return size if sink is not None else data
        word = self.atom()
        if word.upper() == b"NIL":
            return None
        return word


def read_line(reader: LineReader) -> bytes:
    line = reader.readline(MAX_LINE + 1)
    if not line:
        raise ConnectionResetError("the server closed the connection")
    if len(line) > MAX_LINE and not line.endswith(b"\n"):
        raise ProtocolError("The server sent a response line over 1 MB; giving up on this connection")
    return line


def _flags(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(
        f.decode("ascii", "replace") for f in value if isinstance(f, bytes) and f.lower() != b"\\recent"
    )


def _parse_fetch(cur: _Cursor, seq: int, body_sink: Callable[[FetchItem], Sink | None]) -> FetchItem:
    item = FetchItem(seq=seq)
    cur.expect(b"(")
    while True:
        cur.skip_spaces()
        if cur.peek() == 0x29:  # )
            cur.pos += 1
            return item
        if cur.peek() in (-1, 0x0D, 0x0A):
            raise ProtocolError("FETCH response ended before its closing parenthesis")
        key = cur.atom().upper()
        if not key:
            raise ProtocolError(f"Malformed FETCH response near {cur.line[cur.pos:cur.pos + 40]!r}")
        if key == b"BODY[]" or (key.startswith(b"BODY[]<") or key == b"RFC822"):
            sink = body_sink(item)
            cur.skip_spaces()
            if cur.peek() == 0x7B and sink is not None:
                size = cur.value(sink)
                item.body_size = int(size) if isinstance(size, int) else 0
            else:
                data = cur.value()
                if isinstance(data, bytes) and sink is not None:
                    sink.write(data)
                    item.body_size = len(data)
                else:
                    item.body_size = 0 if data is None else -1
            continue
        value = cur.value()
        if key == b"UID" and isinstance(value, bytes):
            item.uid = int(value)
        elif key == b"FLAGS":
            item.flags = _flags(value)
        elif key == b"RFC822.SIZE" and isinstance(value, bytes):
            item.size = int(value)
        elif key == b"MODSEQ" and isinstance(value, list) and value and isinstance(value[0], bytes):
            item.modseq = int(value[0])
        elif isinstance(value, bytes):
            item.small[key.decode("ascii", "replace")] = value


def read_responses(
    reader: LineReader,
    tag: bytes,
    body_sink: Callable[[FetchItem], Sink | None] = lambda _item: None,
    untagged: Untagged | None = None,
    *,
    parse: frozenset[bytes] = frozenset(),
    check: bool = True,
) -> Iterator[FetchItem]:
    """Yield FETCH items until the tagged completion of ``tag``; raise on NO/BAD unless not ``check``.

    ``body_sink(item)`` is asked for a sink when a BODY[] literal starts (the
    items before it on the line, usually UID and FLAGS, are already filled in).
    Untagged responses whose kind is in ``parse`` (e.g. ``b"LIST"``) are parsed
    whole, literals included, into ``untagged.data``.
    """
    seen = untagged if untagged is not None else Untagged()
    while True:
        line = read_line(reader)
        if line.startswith(tag + b" "):
            seen.tagged = line
            status = (line[len(tag) + 1:].split(None, 1) or [b""])[0].upper()
            if status != b"OK" and check:
                raise ProtocolError(
                    f"The IMAP server refused the command: {line.decode('utf-8', 'replace').strip()}",
                    "the folder changed or the server does not support the request",
                    "sync again; if it keeps failing, the protocol log (debug mode) shows the exchange",
                )
            return
        if not line.startswith(b"* "):
            if line.startswith(b"+"):
                raise ProtocolError("Unexpected continuation request from the IMAP server")
            seen.other.append(line[:200])
            continue
        cur = _Cursor(reader, line)
        cur.pos = 2
        first = cur.atom()
        if first.isdigit():
            kind = cur.atom().upper()
            if kind == b"FETCH":
                yield _parse_fetch(cur, int(first), body_sink)
            elif kind == b"EXISTS":
                seen.exists = int(first)
            elif kind == b"EXPUNGE":
                seen.expunged.append(int(first))
            continue
        if first.upper() == b"VANISHED":
            cur.skip_spaces()
            if cur.peek() == 0x28:
                cur.value()  # (EARLIER)
            seen.vanished.extend(parse_uid_set(cur.atom().decode("ascii", "replace")))
            continue
        if first.upper() in parse:
            seen.data.append((first.upper(), _rest_values(cur)))
            continue
        # Anything else (OK [HIGHESTMODSEQ ...], FLAGS ...) is kept for the caller as a line.
        size = cur.literal_size() if line.rstrip().endswith(b"}") else None
        seen.other.append(line[:1000])
        if size is not None:
            cur.pos = len(cur.line)  # skip an unexpected literal without holding it
            _skip_literal(reader, size)


def _rest_values(cur: _Cursor) -> list[object]:
    values: list[object] = []
    while True:
        cur.skip_spaces()
        if cur.peek() in (-1, 0x0D, 0x0A):
            return values
        before = (cur.line, cur.pos)
        values.append(cur.value())
        if (cur.line, cur.pos) == before:
            raise ProtocolError(f"Malformed IMAP response near {cur.line[cur.pos:cur.pos + 40]!r}")


def _skip_literal(reader: LineReader, size: int) -> None:
    remaining = size
    while remaining:
        chunk = reader.read(min(CHUNK, remaining))
        if not chunk:
            raise ConnectionResetError("connection closed inside a literal")
        remaining -= len(chunk)
    read_line(reader)

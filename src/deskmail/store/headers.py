"""The five header fields the index keeps, read straight from a message's header block.

Written by hand because the email package (parser, policy, header, utils) costs
~8 ms to import and ~50 µs a message to parse, on the path of every sync that
brings new mail, for five fields. The rules are the RFCs': RFC 5322 unfolding,
RFC 2047 encoded words (B and Q, whitespace between adjacent encoded words
dropped), and dates through the email package's own ``parsedate_tz`` (from
``email._parseaddr``, which imports nothing heavy). Broken input never raises:
undecodable bytes become U+FFFD, an unreadable date becomes "".
"""

from __future__ import annotations

import binascii
import re

# header name -> index column
WANTED = {b"date": "date", b"from": "sender", b"to": "recipients", b"subject": "subject",
          b"message-id": "message_id"}

_ENCODED_WORD = re.compile(rb"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")


def header_fields(head: bytes) -> dict[str, str]:
    """The wanted fields of a header block (first occurrence of each), unfolded and decoded."""
    raw: dict[str, bytes] = {}
    current: str | None = None
    parts: list[bytes] = []

    def flush() -> None:
        if current is not None:
            raw[current] = b"".join(parts)

    for line in head.split(b"\n"):
        line = line.removesuffix(b"\r")
        if not line:
            break  # the empty line ends the header block
        if line[:1] in (b" ", b"\t"):
            if current is not None:
                parts.append(line)  # a folded line: unfolding keeps its leading white space
            continue
        flush()
        colon = line.find(b":")
        key = line[:colon].strip().lower() if colon > 0 else b""
        column = WANTED.get(key)
        current = column if column is not None and column not in raw else None
        parts = [line[colon + 1:]]
    flush()
    out = {column: decode_words(value) for column, value in raw.items()}
    out["date"] = iso_date(out.get("date", ""))
    return out


def decode_words(value: bytes) -> str:
    """RFC 2047 encoded words decoded; raw 8-bit bytes read as UTF-8; line breaks made spaces."""
    pieces: list[str] = []
    pos = 0
    last_was_word = False
    for m in _ENCODED_WORD.finditer(value):
        between = value[pos:m.start()]
        if not (last_was_word and between.strip(b" \t\r\n") == b""):
            pieces.append(between.decode("utf-8", "replace"))
        pieces.append(_decode_word(m.group(1), m.group(2), m.group(3)))
        pos = m.end()
        last_was_word = True
    pieces.append(value[pos:].decode("utf-8", "replace"))
    return "".join(pieces).replace("\r", "").replace("\n", " ").strip()


def _decode_word(charset: bytes, encoding: bytes, text: bytes) -> str:
    name = charset.decode("ascii", "replace").partition("*")[0]  # RFC 2231 language suffix
    try:
        if encoding in (b"b", b"B"):
            data = binascii.a2b_base64(text + b"=" * (-len(text) % 4), strict_mode=True)
        else:
            data = binascii.a2b_qp(text, header=True)
    except binascii.Error:
        return (b"=?" + charset + b"?" + encoding + b"?" + text + b"?=").decode("ascii", "replace")
    try:
        return data.decode(name, "replace")
    except LookupError:  # an unknown charset: UTF-8 is the likeliest truth today
        return data.decode("utf-8", "replace")


def iso_date(value: str) -> str:
    """An RFC 5322 date as ISO 8601 (what ``parsedate_to_datetime(...).isoformat()`` gives), or ""."""
    if not value:
        return ""
    import datetime

    # email.utils.parsedate_tz is this function; importing it from its home skips email.utils' imports.
    from email._parseaddr import parsedate_tz  # type: ignore[import-not-found]

    try:
        parsed: tuple[int, ...] | None = parsedate_tz(value)
        if parsed is None:
            return ""
        y, mo, d, h, mi, sec = parsed[:6]
        offset = parsed[9]
        tz = None if offset is None else datetime.timezone(datetime.timedelta(seconds=offset))
        return datetime.datetime(y, mo, d, h, mi, sec, tzinfo=tz).isoformat()
    except (TypeError, ValueError, IndexError, OverflowError):
        return ""

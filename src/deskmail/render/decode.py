"""Decoders that never fail: charsets, RFC 2047 encoded words, RFC 2231 parameters, transfer encodings.

Every function here takes whatever a message contains and returns the best honest text; bad input
degrades to replacement characters or the raw text, never to an exception. The stdlib's own helpers
(``email.utils.decode_params``, ``Message.get_params``, the ``policy.default`` header classes) raise on
some malformed input (see the "Known traps" in docs/reading.md), hence these small, total versions.
"""

from __future__ import annotations

import binascii
import codecs
import re
import unicodedata
from urllib.parse import unquote_to_bytes

# Encodings that are not a charset a message could really be written in: decoding with them would
# interpret backslashes or produce nonsense, so such a label counts as unknown.
_NOT_CHARSETS = frozenset({"unicode_escape", "raw_unicode_escape", "idna", "punycode", "undefined", "uu_codec",
                           "uu", "base64", "quopri", "hex", "zlib", "bz2", "rot_13", "base64_codec",
                           "quopri_codec", "hex_codec", "zlib_codec", "bz2_codec", "mbcs", "oem"})
# Labels that mean "some 8-bit charset, nobody said which".
_UNKNOWN = frozenset({"unknown-8bit", "x-unknown", "unknown", "x-user-defined", "default", "8bit", "binary"})


def charset_name(label: str | None) -> str | None:
    """The codec a charset label names (``None`` if there is no such text codec)."""
    if not label:
        return None
    label = label.strip().strip("\"'").strip().lower()
    if not label or label in _UNKNOWN or len(label) > 64:
        return None
    try:
        name = codecs.lookup(label).name
    except (LookupError, ValueError, TypeError):
        return None
    return None if name.replace("-", "_") in _NOT_CHARSETS else name


def _windows_1252(data: bytes) -> str:
    """windows-1252 as browsers read it: the five bytes it leaves undefined map to the C1 controls."""
    return data.decode("cp1252", "surrogateescape").encode("utf-8", "surrogateescape").decode(
        "utf-8", "surrogateescape").translate(_C1_FROM_SURROGATES)


_C1_FROM_SURROGATES = {0xDC00 + b: b for b in (0x81, 0x8D, 0x8F, 0x90, 0x9D)}


def decode_text(data: bytes, label: str | None) -> tuple[str, bool]:
    """``data`` as text under the declared charset ``label``; True if a fallback had to be taken.

    The chain: ISO-8859-1 read as windows-1252, as browsers do; a known charset strictly; US-ASCII that
    is not ASCII, an unknown label or none retried as UTF-8, then as windows-1252 (which takes any byte);
    a known charset that failed, retried as UTF-8, then decoded with replacement characters. Never
    blank for non-empty data.
    """
    name = charset_name(label)
    if name in ("latin_1", "iso8859-1", "cp1252"):
        return _windows_1252(data), False
    if name in (None, "ascii"):
        try:
            return data.decode("ascii"), False
        except UnicodeDecodeError:
            pass
        try:
            return data.decode("utf-8"), False
        except UnicodeDecodeError:
            return _windows_1252(data), True
    try:
        return data.decode(name), False
    except (UnicodeError, LookupError, ValueError, TypeError):
        pass
    try:
        return data.decode("utf-8"), True
    except UnicodeDecodeError:
        pass
    try:
        return data.decode(name, "replace"), True
    except (UnicodeError, LookupError, ValueError, TypeError):
        return _windows_1252(data), True


def normalize_newlines(text: str) -> str:
    """CRLF, bare CR and LF all become LF; NUL becomes U+FFFD (it ends strings in C code further on)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "\ufffd")


# --- transfer encodings -----------------------------------------------------------------------------

_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_JUNK = bytes(sorted(set(range(256)) - set(_B64_ALPHABET)))


def b64decode(data: bytes) -> bytes:
    """Base64 with garbage: every character outside the alphabet (padding included) skipped, a stray
    last character dropped, the padding supplied."""
    clean = data.translate(None, _B64_JUNK)
    clean = clean[: len(clean) - (len(clean) % 4 == 1)]
    return binascii.a2b_base64(clean + b"=" * (-len(clean) % 4))


def b64size(data: bytes) -> int:
    """How many bytes :func:`b64decode` returns, counted on the encoded text (nothing decoded)."""
    n = len(data.translate(None, _B64_JUNK))
    n -= n % 4 == 1
    return n // 4 * 3 + max(0, n % 4 - 1)


def qpdecode(data: bytes) -> bytes:
    """Quoted-printable; a ``=`` not followed by two hex digits stays as it is (what readers do)."""
    return binascii.a2b_qp(data)


def transfer_decode(payload: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding == "base64":
        return b64decode(payload)
    if encoding == "quoted-printable":
        return qpdecode(payload)
    if encoding in ("x-uuencode", "uuencode", "x-uue", "uue"):
        return _uudecode(payload)
    return payload


def _uudecode(payload: bytes) -> bytes:
    out = bytearray()
    for line in payload.splitlines():
        if line.startswith((b"begin ", b"end")) or not line.strip():
            continue
        try:
            out += binascii.a2b_uu(line)
        except binascii.Error:
            continue
    return bytes(out)


# --- headers: RFC 2047 encoded words ----------------------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,64})\?([bBqQ])\?([^?]*?)\?=")
_SPACE_BETWEEN = re.compile(r"\s+")
_B64_WORD = re.compile(r"[A-Za-z0-9+/]*={0,3}")


def _word_bytes(kind: str, text: str) -> bytes:
    raw = text.encode("utf-8", "surrogateescape")
    if kind in "bB":
        return b64decode(raw)
    return binascii.a2b_qp(raw.replace(b"_", b" "), header=True)


def raw_header_text(value: str) -> str:
    """A header value as parsed (8-bit bytes kept as surrogates) turned into text: raw UTF-8 as UTF-8,
    anything else as windows-1252."""
    if not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value
    return decode_text(value.encode("ascii", "surrogateescape"), None)[0]


def decode_header(value: str) -> str:
    """A header value with its encoded words decoded, unfolded; raw 8-bit text read as UTF-8 or
    windows-1252. Tolerant like mail readers: encoded words inside other text, adjacent words of one
    charset joined before decoding (a character split across two words survives), bad base64 and
    unknown charsets decoded as well as they can be."""
    value = re.sub(r"\r?\n(?=[ \t])|\r(?=[ \t])", "", value)
    value = value.replace("\r", " ").replace("\n", " ")
    if "=?" not in value:
        return raw_header_text(value)
    out: list[str] = []
    pending: list[tuple[str, bytes]] = []  # adjacent encoded words, decoded together per charset

    def flush() -> None:
        for label, data in _merge(pending):
            out.append(decode_text(data, label)[0])
        pending.clear()

    pos = 0
    for m in _ENCODED_WORD.finditer(value):
        between = value[pos:m.start()]
        if between and not (pending and _SPACE_BETWEEN.fullmatch(between)):
            flush()
            out.append(raw_header_text(between))
        if m.group(2) in "bB" and not _B64_WORD.fullmatch(m.group(3)):
            continue  # not base64 at all: left as it is written (decoding would only make noise)
        label = m.group(1).split("*", 1)[0]  # RFC 2231 language suffix: charset*lang
        pending.append((label, _word_bytes(m.group(2), m.group(3))))
        pos = m.end()
    flush()
    out.append(raw_header_text(value[pos:]))
    return "".join(out)


def _merge(words: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    merged: list[tuple[str, bytes]] = []
    for label, data in words:
        if merged and merged[-1][0].lower() == label.lower():
            merged[-1] = (label, merged[-1][1] + data)
        else:
            merged.append((label, data))
    return merged


# --- structured header parameters (RFC 2045 + RFC 2231) ---------------------------------------------

_PARAM = re.compile(r"""\s*([^\s=;"]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"?|[^;]*))?\s*;?""", re.S)


def split_header(value: str) -> tuple[str, list[tuple[str, str, bool]]]:
    """``text/plain; a="b"; c=d`` → ``("text/plain", [(name, value, was_quoted), ...])``, tolerant."""
    value = re.sub(r"\r?\n[ \t]*", " ", value)
    main, _, rest = value.partition(";")
    params: list[tuple[str, str, bool]] = []
    pos = 0
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if not m or m.end() == pos:
            pos += 1
            continue
        pos = m.end()
        raw = (m.group(2) or "").strip()
        quoted = raw.startswith('"')
        if quoted:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1] if raw.endswith('"') and len(raw) > 1 else raw[1:])
        params.append((m.group(1).lower(), raw, quoted))
    return main.strip(), params


def header_params(value: str) -> dict[str, str]:
    """Parameters by name, decoded: RFC 2231 (``name*``, ``name*0*``… with charset and continuations)
    preferred over the plain form, RFC 2047 words inside quoted values (what many mailers send) decoded."""
    _, params = split_header(value)
    plain: dict[str, str] = {}
    extended: dict[str, dict[int, tuple[str, bool]]] = {}
    for name, raw, quoted in params:
        m = re.fullmatch(r"([^*]+)\*(?:(\d{1,3})\*?)?", name)
        if m is None:
            if "*" in name:
                continue  # "name*x": nothing a reader can use
            plain.setdefault(name, decode_header(raw) if quoted or "=?" in raw else raw_header_text(raw))
            continue
        base, number = m.group(1), m.group(2)
        if not raw:
            continue  # "name*" with nothing after it (an IndexError in the stdlib)
        # An unnumbered "name*" counts only where no numbered pieces exist.
        extended.setdefault(base, {}).setdefault(int(number) if number is not None else -1,
                                                 (raw, name.endswith("*")))
    result = dict(plain)
    for base, pieces in extended.items():
        if len(pieces) > 1:
            pieces.pop(-1, None)
        text = _rfc2231(pieces)
        if text:
            result[base] = text
    return result


def _rfc2231(pieces: dict[int, tuple[str, bool]]) -> str:
    label: str | None = None
    data = bytearray()
    for index in sorted(pieces):
        raw, encoded = pieces[index]
        if encoded and index == min(pieces) and raw.count("'") >= 2:
            label, _lang, raw = raw.split("'", 2)
        piece = raw.encode("utf-8", "surrogateescape")
        data += unquote_to_bytes(piece) if encoded else piece
    return decode_text(bytes(data), label)[0]


def clean_name(text: str) -> str:
    """NFC, surrounding space trimmed: how a decoded name is compared and shown."""
    return unicodedata.normalize("NFC", text).strip()

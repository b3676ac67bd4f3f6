"""What the search index keeps of a message: its text parts' words and its attachments' names.

Runs on every message a sync stores, so it is a small byte-level MIME walk, not the renderer
(``deskmail.render`` builds a whole sanitized view: several times slower per message, and more
than a word index needs). It reads only ``text/plain`` parts (``text/html`` ones, tags dropped,
when a message has no plain text), decodes transfer encoding and charset, and keeps at most
:data:`BODY_CAP` characters. Broken input never raises: what cannot be decoded is skipped or
becomes U+FFFD, and nesting and part counts are bounded.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass

from deskmail.store.headers import decode_words

BODY_CAP = 64 * 1024  # characters of body text indexed per message
MAX_DEPTH = 20
MAX_PARTS = 200

_PARAM = re.compile(rb';\s*([A-Za-z0-9_.*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')
_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.I | re.S)
_BLANK = re.compile(rb"\r?\n\r?\n")
# The snippet markers (store.search): no indexed text may contain them.
MARK_START, MARK_END = "\ue000", "\ue001"
_STRIP = str.maketrans({"\x00": " ", MARK_START: " ", MARK_END: " "})


@dataclass(frozen=True, slots=True)
class Indexed:
    """What the full-text index holds of one message besides its envelope."""

    to: str
    cc: str
    body: str
    filenames: str  # one per line
    in_reply_to: str = ""  # raw header values (ASCII): the thread keys come from them (.threads)
    references: str = ""


def _headers(block: bytes) -> dict[bytes, bytes]:
    """Lower-cased name -> raw unfolded value (first occurrence) of a header block."""
    out: dict[bytes, bytes] = {}
    name = b""
    for line in block.split(b"\n"):
        line = line.removesuffix(b"\r")
        if line[:1] in (b" ", b"\t"):
            if name and name in out:
                out[name] += line
            continue
        colon = line.find(b":")
        if colon <= 0:
            name = b""
            continue
        name = line[:colon].strip().lower()
        if name in out:
            name = b""  # only the first occurrence counts
        else:
            out[name] = line[colon + 1:].strip()
    return out


def _split(raw: bytes) -> tuple[bytes, bytes]:
    """(header block, body) of a message or part."""
    if raw.startswith((b"\r\n", b"\n")):
        return b"", raw.lstrip(b"\r\n")
    m = _BLANK.search(raw)
    return (raw[:m.start()], raw[m.end():]) if m else (raw, b"")


def _params(value: bytes) -> tuple[str, dict[str, str]]:
    """A Content-Type/-Disposition value: its lower-cased main value and its parameters (RFC 2231 joined)."""
    main = value.split(b";", 1)[0].strip().lower().decode("ascii", "replace")
    params: dict[str, str] = {}
    extended: dict[str, list[tuple[int, str]]] = {}
    for m in _PARAM.finditer(value):
        key = m.group(1).lower().decode("ascii", "replace")
        val = m.group(2)
        if val.startswith(b'"'):
            val = re.sub(rb"\\(.)", rb"\1", val[1:-1])
        if "*" in key:  # RFC 2231: name*=utf-8''x%20y, name*0*=..., name*1=...
            base, _, rest = key.partition("*")
            index = int(rest.strip("*") or 0) if rest.strip("*").isdigit() else 0
            text = val.decode("latin-1")
            if rest.endswith("*") or rest == "":
                if index == 0 and text.count("'") >= 2:
                    charset, _lang, text = text.split("'", 2)
                    extended.setdefault(base + "\0charset", []).append((0, charset or "utf-8"))
                text = re.sub(r"%([0-9A-Fa-f]{2})", lambda h: chr(int(h.group(1), 16)), text)
            extended.setdefault(base, []).append((index, text))
        else:
            params.setdefault(key, decode_words(val))
    for base, pieces in extended.items():
        if base.endswith("\0charset"):
            continue
        charset = extended.get(base + "\0charset", [(0, "utf-8")])[0][1]
        joined = "".join(text for _i, text in sorted(pieces)).encode("latin-1", "replace")
        params[base] = _decode(joined, charset)
    return main, params


def _decode(data: bytes, charset: str) -> str:
    try:
        return data.decode(charset or "utf-8", "replace")
    except (LookupError, ValueError):
        return data.decode("utf-8", "replace")


def _payload(body: bytes, encoding: bytes) -> bytes:
    enc = encoding.strip().lower()
    try:
        if enc == b"base64":
            try:
                return binascii.a2b_base64(body)  # skips line breaks and other non-alphabet bytes
            except binascii.Error:  # bad padding (a cut or broken part): decode the whole quads
                clean = re.sub(rb"[^A-Za-z0-9+/]", b"", body)
                return binascii.a2b_base64(clean[: len(clean) // 4 * 4])
        if enc == b"quoted-printable":
            return binascii.a2b_qp(body)
    except binascii.Error:
        return b""
    return body


def extract(raw: bytes, *, cap: int = BODY_CAP) -> Indexed:
    """The searchable text of a whole message (or of a header block alone: an empty body)."""
    head, body = _split(raw)
    top = _headers(head)
    plain: list[str] = []
    html: list[str] = []
    names: list[str] = []
    budget = [MAX_PARTS]
    _walk(top, body, 0, plain, html, names, budget, cap)
    text = "\n".join(plain) if plain else _TAG.sub(" ", "\n".join(html))
    if not plain and html:
        from html import unescape  # (here: a query, which imports this module too, never needs it)

        text = unescape(text)
    return Indexed(
        to=_clean(decode_words(top.get(b"to", b""))),
        cc=_clean(decode_words(top.get(b"cc", b""))),
        body=_clean(text[:cap]),
        filenames="\n".join(_clean(n) for n in names),
        in_reply_to=top.get(b"in-reply-to", b"").decode("ascii", "replace"),
        references=top.get(b"references", b"").decode("ascii", "replace"),
    )


def _clean(text: str) -> str:
    return text.translate(_STRIP) if ("\x00" in text or MARK_START in text or MARK_END in text) else text


def _walk(headers: dict[bytes, bytes], body: bytes, depth: int, plain: list[str], html: list[str],
          names: list[str], budget: list[int], cap: int) -> None:
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_DEPTH:
        return
    ctype, cparams = _params(headers.get(b"content-type", b"text/plain"))
    disposition, dparams = _params(headers.get(b"content-disposition", b""))
    filename = dparams.get("filename") or cparams.get("name") or ""
    if filename:
        names.append(filename)
    if ctype.startswith("multipart/"):
        boundary = cparams.get("boundary", "").encode("utf-8", "replace")
        if not boundary:
            return
        delimiter = b"--" + boundary
        pieces = body.split(delimiter)
        for piece in pieces[1:]:
            if piece.startswith(b"--"):
                break  # the closing delimiter
            part_head, part_body = _split(piece.split(b"\n", 1)[1] if b"\n" in piece else b"")
            _walk(_headers(part_head), part_body, depth + 1, plain, html, names, budget, cap)
        return
    if ctype == "message/rfc822":
        inner_head, inner_body = _split(_payload(body, headers.get(b"content-transfer-encoding", b"")))
        _walk(_headers(inner_head), inner_body, depth + 1, plain, html, names, budget, cap)
        return
    if disposition == "attachment" or filename:
        return
    if ctype in ("text/plain", "text", "") or ctype == "text/html":
        if sum(map(len, plain)) >= cap:
            return
        data = _payload(body[: cap * 4], headers.get(b"content-transfer-encoding", b""))
        text = _decode(data, cparams.get("charset", "utf-8"))
        (html if ctype == "text/html" else plain).append(text)

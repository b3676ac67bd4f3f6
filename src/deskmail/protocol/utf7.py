"""IMAP's modified UTF-7 for folder names (RFC 3501 §5.1.3).

Written here because the library codecs live inside packages whose import
costs more than a whole no-change sync may spend (see protocol/imap.py).
Printable ASCII stands for itself, ``&`` is ``&-``, and every other run of
characters is UTF-16BE in base64 with ``,`` for ``/`` and no padding,
between ``&`` and ``-``.
"""

from __future__ import annotations

import base64
import binascii


def encode(name: str) -> bytes:
    out = bytearray()
    run: list[str] = []

    def flush() -> None:
        if run:
            packed = base64.b64encode("".join(run).encode("utf-16-be")).rstrip(b"=").replace(b"/", b",")
            out.extend(b"&" + packed + b"-")
            run.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.extend(b"&-" if ch == "&" else ch.encode("ascii"))
        else:
            run.append(ch)
    flush()
    return bytes(out)


def decode(raw: bytes) -> str:
    """Decode a folder name; bytes that are not valid modified UTF-7 are read as UTF-8.

    Some servers send raw UTF-8 names (RFC 6855); a broken shift sequence is
    kept as text rather than failing the whole folder list.
    """
    out: list[str] = []
    i = 0
    while i < len(raw):
        amp = raw.find(b"&", i)
        if amp < 0:
            out.append(raw[i:].decode("utf-8", "replace"))
            break
        out.append(raw[i:amp].decode("utf-8", "replace"))
        end = raw.find(b"-", amp + 1)
        if end < 0:
            out.append(raw[amp:].decode("utf-8", "replace"))
            break
        chunk = raw[amp + 1:end]
        if not chunk:
            out.append("&")
        else:
            try:
                padded = chunk.replace(b",", b"/") + b"=" * (-len(chunk) % 4)
                utf16 = base64.b64decode(padded, validate=True)
                if len(utf16) % 2:
                    raise ValueError("odd UTF-16 length")
                out.append(utf16.decode("utf-16-be"))
            except (binascii.Error, ValueError):
                out.append(raw[amp:end + 1].decode("utf-8", "replace"))
        i = end + 1
    return "".join(out)

"""Attachment file names that can never escape the folder they are saved into, and saving without
overwriting anything.

A name from a message is hostile input: ``../../.bashrc``, ``C:\\Windows\\x``, ``\\\\?\\UNC\\host\\x``,
``CON``, a right-to-left override that shows ``exe.txt`` for ``txt.exe``, 4,000 characters. What is
left after :func:`safe_filename` is one plain path component on every platform.
"""

from __future__ import annotations

import mimetypes
import os
import re
import unicodedata
from pathlib import Path

MAX_BYTES = 180  # below every file system's 255-byte limit, with room for " (123)"
_EXTENSION = re.compile(r"(?:\.[A-Za-z0-9]{1,4})?\.[^.\s]{1,16}\Z")

# Controls (C0, DEL, C1), bidi marks, overrides and isolates, zero-width characters, BOM, and the
# line/paragraph separators: none belongs in a file name, several disguise one.
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]")
_ILLEGAL = re.compile(r'[<>:"/\\|?*]')  # Windows forbids these; "/" and "\\" separate paths anywhere
_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{p}{n}" for p in ("COM", "LPT") for n in [*"123456789", "¹", "²", "³"]]
)


def extension_for(content_type: str) -> str:
    """``.pdf`` for ``application/pdf``; ``.bin`` when the type says nothing."""
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype.startswith(("message/", "multipart/")):
        return ".eml"
    ext = mimetypes.guess_extension(ctype, strict=False)
    return ext if ext and re.fullmatch(r"\.[A-Za-z0-9]{1,8}", ext) else ".bin"


def _truncate_utf8(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    return text if len(data) <= limit else data[:limit].decode("utf-8", "ignore")


def safe_filename(name: str | None, content_type: str = "application/octet-stream", index: int = 1) -> str:
    """One safe path component for a name a message gave (or ``attachment-N.ext`` when none is left)."""
    text = unicodedata.normalize("NFC", name or "")
    text = _INVISIBLE.sub("", text)
    # The last component of any path syntax: POSIX, DOS, UNC, \\?\ (every separator became "/").
    text = text.replace("\\", "/").rstrip("/ ").rsplit("/", 1)[-1]
    text = _ILLEGAL.sub("_", text)
    text = re.sub(r"\s+", " ", text).strip(" .")  # no leading dot (hidden files), no trailing dot or space
    if not text:
        return f"attachment-{index}{extension_for(content_type)}"
    # The extension kept through truncation: the last suffix, or the last two when short (".tar.gz").
    m = _EXTENSION.search(text)
    stem, suffix = (text[: m.start()], m.group()) if m and m.start() > 0 else (text, "")
    if stem.split(".", 1)[0].rstrip(" ").upper() in _RESERVED:
        stem = "_" + stem
    stem = _truncate_utf8(stem, MAX_BYTES - len(suffix.encode("utf-8"))).rstrip(" .")
    return (stem or f"attachment-{index}") + suffix


def numbered(name: str, n: int) -> str:
    """``report (2).pdf`` for the second file of one name."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return f"{name} ({n})"
    return f"{stem} ({n}).{ext}"


def create_exclusive(directory: Path, name: str, data: bytes) -> Path:
    """Write ``data`` into a new file ``directory/name`` (numbered on collision); never overwrites, never
    follows a link planted under the name, never writes outside ``directory``."""
    base = directory.resolve()
    for n in range(1, 10_000):
        candidate = name if n == 1 else numbered(name, n)
        path = base / candidate
        if path.parent != base:  # cannot happen with safe_filename's output; a last guard
            raise ValueError(f"unsafe file name {candidate!r}")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
                         | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except FileExistsError:
            continue
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path
    raise FileExistsError(f"{name}: 9,999 files of that name exist already")

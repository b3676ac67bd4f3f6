"""Turning a message's raw bytes into something safe to read; listing and saving its attachments.

Pure and I/O-free apart from :func:`save_attachments` (which writes only into the folder it is given):
the caller passes bytes, nothing is fetched from the network. No input makes these calls raise
except :func:`save_attachments`'s own errors (an unknown attachment number, a folder that cannot be
written): a malformed message degrades to the best honest display with a warning. docs/reading.md
says what is sanitized and blocked, and why.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from email.utils import getaddresses
from pathlib import Path

from deskmail.codes import Code
from deskmail.errors import NotFoundError, UsageError
from deskmail.render import mime
from deskmail.render.decode import decode_header
from deskmail.render.files import create_exclusive, safe_filename
from deskmail.render.html import links, sanitize, suspicious_links, text_as_html
from deskmail.render.model import (
    AttachmentInfo,
    CalendarEvent,
    Rendered,
    RenderWarning,
    SuspiciousLink,
)

__all__ = ["AttachmentInfo", "CalendarEvent", "RenderWarning", "Rendered", "SuspiciousLink", "attachments",
           "render", "safe_filename", "save_attachments", "sender_address", "sender_of"]


def sender_address(raw_from: str) -> str:
    """The address of a From header, lower-cased; "" when none can be read. Read from the header as
    written first: a display name's encoded words may decode to text that looks like an address."""
    for value in (raw_from, decode_header(raw_from)):
        try:
            pairs = getaddresses([value.replace("\r", " ").replace("\n", " ")])
        except Exception:  # the stdlib address parser on hostile punctuation
            continue
        for _name, address in pairs:
            if "@" in address and "=?" not in address:
                return address.strip().lower()
    m = re.search(r"[^\s<>\"'@,;:]+@[^\s<>\"'@,;:]+", raw_from)
    return m.group().lower() if m else ""


def sender_of(raw: bytes) -> str:
    """The From address of a raw message (headers only are read), lower-cased; "" if none."""
    try:
        from email.parser import BytesHeaderParser
        from email.policy import compat32

        return sender_address(mime.header(BytesHeaderParser(policy=compat32).parsebytes(raw), "From"))
    except Exception:
        return ""


def render(raw: bytes, *, prefer_html: bool = True, allow_remote: bool = False) -> Rendered:
    """Read ``raw`` (a whole message as stored) for display. Never raises for any input."""
    try:
        return _render(raw, prefer_html=prefer_html, allow_remote=allow_remote)
    except Exception as exc:  # a bug or a stdlib trap not yet known: the raw text, honestly labelled
        text = raw.decode("utf-8", "replace").replace("\r\n", "\n").replace("\x00", "\ufffd")
        note = RenderWarning("malformed", f"The message could not be read ({type(exc).__name__}); "
                                          "it is shown as raw text.")
        return Rendered(headers={}, sender="", body=((False, text),), html=text_as_html(text), is_html=False,
                        inline_images={}, blocked_remote=0, remote_allowed=allow_remote, attachments=(),
                        warnings=(note,))


def _render(raw: bytes, *, prefer_html: bool, allow_remote: bool) -> Rendered:
    msg, warnings = mime.parse(raw)
    headers = mime.headers(msg)
    found = mime.walk(msg, prefer_html)
    html_parts: list[str] = []
    body: list[tuple[bool, str]] = []
    blocked = 0
    referenced: set[str] = set()
    is_html = False
    inline = frozenset(found.images)
    for segment in found.segments:
        if segment.kind == "html":
            is_html = True
            safe = sanitize(segment.content, allow_remote=allow_remote, inline=inline)
            blocked += safe.blocked_remote
            referenced |= safe.cids
            html_parts.append(safe.html)
            body.append((True, safe.html))
        elif segment.kind == "message":
            html_parts.append(f"<hr>{text_as_html(segment.content)}")
            body.append((False, segment.content + "\n"))
        else:
            html_parts.append(text_as_html(segment.content))
            body.append((False, segment.content))
    html = "\n".join(html_parts)
    found_links = links(html)
    suspects = suspicious_links(found_links)
    for s in suspects[:5]:
        found.warn("suspicious_link", f"A link shows {s.text!r} but leads to {s.href!r}.")
    images = {}
    for cid in sorted(referenced):
        part = found.images[cid]
        images[cid] = (mime.content_type(part), mime.decoded(part))
    return Rendered(
        headers=headers,
        sender=sender_address(mime.header(msg, "From")),
        body=tuple(body),
        html=html,
        is_html=is_html,
        inline_images=images,
        blocked_remote=blocked,
        remote_allowed=allow_remote,
        attachments=tuple(info for info, _ in found.attachments),
        warnings=tuple(warnings + found.warnings),
        suspicious_links=tuple(suspects),
        events=tuple(found.events),
        links=tuple((t, h) for t, h in found_links if h and not h.startswith("cid:")),
    )


def attachments(raw: bytes) -> list[AttachmentInfo]:
    """The message's attachments (the same list, in the same order, as :attr:`Rendered.attachments`)."""
    try:
        return [info for info, _ in mime.walk(mime.parse(raw)[0], True).attachments]
    except Exception:
        return []


def save_attachments(raw: bytes, directory: Path, *, which: Sequence[int] | None = None) -> list[Path]:
    """Write the attachments numbered ``which`` (all when None) into ``directory`` under safe, new names
    (never overwriting, never outside ``directory``); returns the files written, in order."""
    found = mime.walk(mime.parse(raw)[0], True).attachments
    by_index = {info.index: (info, part) for info, part in found}
    wanted = list(by_index) if which is None else list(dict.fromkeys(which))
    missing = [n for n in wanted if n not in by_index]
    if missing:
        have = f"it has {len(found)}" if found else "it has none"
        raise NotFoundError(f"The message has no attachment number {missing[0]}", have,
                            "use a number from the attachment list", code=Code.NO_SUCH_ATTACHMENT)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"Cannot create the folder {directory}", exc.strerror or str(exc),
                         "choose a folder you can write to", code=Code.SAVE_FAILED) from None
    written: list[Path] = []
    for n in wanted:
        info, part = by_index[n]
        if info.content_type.startswith("message/"):
            data = mime.message_bytes(part)
        elif mime.children(part):  # a multipart nested too deeply to open: saved whole, as MIME text
            data = mime.part_bytes(part)
        else:
            data = mime.decoded(part)
        try:
            written.append(create_exclusive(directory, info.safe_name, data))
        except OSError as exc:
            raise UsageError(f"Cannot save {info.safe_name!r} into {directory}", exc.strerror or str(exc),
                             "choose a folder you can write to, with space left", code=Code.SAVE_FAILED) from None
    return written

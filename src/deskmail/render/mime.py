"""A message's MIME tree read defensively: which parts are the body, which are attachments.

The stdlib parser runs with ``compat32`` (it records defects instead of raising, and keeps raw 8-bit
header bytes); headers, parameters and payloads are then decoded by :mod:`deskmail.render.decode`, whose
functions cannot raise. Depth and part counts are bounded, so hostile nesting costs nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser
from email.policy import compat32

from deskmail.render import calendar
from deskmail.render.decode import (
    b64size,
    clean_name,
    decode_header,
    decode_text,
    header_params,
    normalize_newlines,
    split_header,
    transfer_decode,
)
from deskmail.render.files import safe_filename
from deskmail.render.model import AttachmentInfo, CalendarEvent, RenderWarning

MAX_DEPTH = 40  # nesting levels read; deeper parts are listed, not opened
MAX_PARTS = 2000  # parts looked at; a message with more is read in part
SHOWN_HEADERS = ("From", "To", "Cc", "Reply-To", "Date", "Subject", "Message-ID")
_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")


def parse(raw: bytes) -> tuple[Message, list[RenderWarning]]:
    """The message tree; a message the parser cannot take apart is read as headers + one text body."""
    try:
        return BytesParser(policy=compat32).parsebytes(raw), []
    except Exception:  # the stdlib parser on hostile input (RecursionError, TypeError in params…)
        pass
    note = RenderWarning("malformed", "The message's structure could not be read; it is shown as plain text.")
    head, sep, body = raw.partition(b"\r\n\r\n") if b"\r\n\r\n" in raw else raw.partition(b"\n\n")
    try:
        msg = BytesHeaderParser(policy=compat32).parsebytes(head + sep)
    except Exception:
        msg = Message(policy=compat32)
        body = raw
    for name in ("Content-Type", "Content-Transfer-Encoding"):
        del msg[name]
    msg["Content-Type"] = "text/plain"
    msg.set_payload(body.decode("ascii", "surrogateescape"))
    return msg, [note]


def header(part: Message, name: str) -> str:
    """The first ``name`` header as parsed (raw 8-bit bytes kept as surrogates), "" if none."""
    lower = name.lower()
    for key, value in part.raw_items():
        if key.lower() == lower:
            return value if isinstance(value, str) else str(value)
    return ""


def content_type(part: Message) -> str:
    value = split_header(header(part, "Content-Type"))[0].lower()
    if _TYPE.fullmatch(value):
        return value
    parent_default = part.get_default_type()
    return parent_default if parent_default in ("text/plain", "message/rfc822") else "text/plain"


def disposition(part: Message) -> str:
    return split_header(header(part, "Content-Disposition"))[0].lower()


def content_id(part: Message) -> str:
    return header(part, "Content-ID").strip().strip("<>").strip()


def filename(part: Message) -> str:
    """The part's name: Content-Disposition ``filename`` (RFC 2231 form first), else Content-Type ``name``."""
    name = header_params(header(part, "Content-Disposition")).get("filename") or header_params(
        header(part, "Content-Type")).get("name") or ""
    return clean_name(name)


def _payload_bytes(part: Message) -> bytes:
    # Not get_payload(): for 8-bit text it decodes with the declared charset ("replace") and reads the
    # parameters with the stdlib's parser, which raises on some malformed ones.
    payload = getattr(part, "_payload", None)
    if isinstance(payload, bytes):
        return payload
    if not isinstance(payload, str):
        return b""
    try:
        return payload.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return payload.encode("utf-8", "surrogateescape")


def children(part: Message) -> list[Message]:
    """The sub-parts of a multipart (or the message inside a message/rfc822 part); [] for a leaf."""
    payload = getattr(part, "_payload", None)
    return [c for c in payload if isinstance(c, Message)] if isinstance(payload, list) else []


def decoded(part: Message) -> bytes:
    """The part's content with its transfer encoding undone (garbage tolerated)."""
    return transfer_decode(_payload_bytes(part), header(part, "Content-Transfer-Encoding"))


def decoded_size(part: Message) -> int:
    raw = _payload_bytes(part)
    encoding = header(part, "Content-Transfer-Encoding").strip().lower()
    if encoding == "base64":
        return b64size(raw)
    if encoding in ("quoted-printable", "x-uuencode", "uuencode", "x-uue", "uue"):
        return len(transfer_decode(raw, encoding))
    return len(raw)


def text_of(part: Message) -> tuple[str, bool]:
    """The part as text (its charset, the fallback chain); True if a fallback was needed."""
    charset = header_params(header(part, "Content-Type")).get("charset")
    text, fallback = decode_text(decoded(part), charset)
    text = normalize_newlines(text)
    if content_type(part) == "text/plain" and header_params(header(part, "Content-Type")).get(
            "format", "").lower() == "flowed":
        text = unflow(text, header_params(header(part, "Content-Type")).get("delsp", "").lower() == "yes")
    return text, fallback


def unflow(text: str, delsp: bool) -> str:
    """RFC 3676 format=flowed: soft line breaks (a trailing space) joined, space-stuffing removed."""
    out: list[str] = []
    para = ""
    for line in text.split("\n"):
        if line.startswith(" "):
            line = line[1:]
        if line.endswith(" ") and line != "-- ":
            para += line[:-1] if delsp else line
            continue
        out.append(para + line)
        para = ""
    if para:
        out.append(para)
    return "\n".join(out)


def headers(msg: Message) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value in msg.raw_items():
        canonical = next((h for h in SHOWN_HEADERS if h.lower() == key.lower()), None)
        if canonical and canonical not in found and isinstance(value, str):
            # One line: a CR or LF decoded out of an encoded word must not start a fake header line.
            found[canonical] = re.sub(r"[\r\n]+", " ", decode_header(value)).strip()
    return found


# --- the walk -----------------------------------------------------------------------------------------

@dataclass(slots=True)
class Segment:
    kind: str  # "text", "html" or "message" (an embedded message's header lines)
    content: str


@dataclass(slots=True)
class Found:
    """What the walk found: the body in reading order, the attachments, the images ``cid:`` may name."""

    segments: list[Segment] = field(default_factory=list)
    attachments: list[tuple[AttachmentInfo, Message]] = field(default_factory=list)
    images: dict[str, Message] = field(default_factory=dict)
    events: list[CalendarEvent] = field(default_factory=list)
    warnings: list[RenderWarning] = field(default_factory=list)
    parts: int = 0

    def warn(self, kind: str, text: str) -> None:
        if all(w.text != text for w in self.warnings):
            self.warnings.append(RenderWarning(kind, text))


def walk(msg: Message, prefer_html: bool) -> Found:
    found = Found()
    _visit(msg, 0, prefer_html, found)
    return found


def _attach(found: Found, part: Message, ctype: str, note: str = "", name: str | None = None) -> None:
    index = len(found.attachments) + 1
    shown = filename(part) if name is None else name
    if ctype in ("message/rfc822", "message/global"):
        size = _message_size(part)
        if not shown:
            inner = children(part)
            subject = decode_header(header(inner[0], "Subject")) if inner else ""
            shown = clean_name(f"{subject[:80]}.eml") if subject.strip() else ""
    else:
        size = decoded_size(part)
    info = AttachmentInfo(index=index, filename=shown, safe_name=safe_filename(shown, ctype, index),
                          content_type=ctype, size=size, disposition=disposition(part),
                          content_id=content_id(part), note=note)
    found.attachments.append((info, part))


def message_bytes(part: Message) -> bytes:
    """An attached message (a message/rfc822 part) as bytes."""
    inner = children(part)
    return part_bytes(inner[0]) if inner else decoded(part)


def part_bytes(part: Message) -> bytes:
    """A part written out again as MIME text (its headers as received), without recursion: the stdlib's
    generator raises RecursionError on deep nesting."""
    out: list[bytes] = []
    stack: list[Message | bytes] = [part]
    while stack:
        item = stack.pop()
        if isinstance(item, bytes):
            out.append(item)
            continue
        out.extend(f"{k}: {v}\r\n".encode("utf-8", "surrogateescape") for k, v in item.raw_items())
        out.append(b"\r\n")
        kids = children(item)
        boundary = header_params(header(item, "Content-Type")).get("boundary", "")
        if not kids:
            out.append(_payload_bytes(item))
        elif not boundary or not item.is_multipart() or content_type(item).startswith("message/"):
            stack.extend(reversed(kids))  # message/rfc822: the message itself follows the headers
        else:
            pieces: list[Message | bytes] = []
            if item.preamble:
                pieces.append(item.preamble.encode("utf-8", "surrogateescape") + b"\r\n")
            for kid in kids:
                pieces += [f"--{boundary}\r\n".encode("utf-8", "surrogateescape"), kid, b"\r\n"]
            pieces.append(f"--{boundary}--\r\n".encode("utf-8", "surrogateescape"))
            if item.epilogue:
                pieces.append(item.epilogue.encode("utf-8", "surrogateescape"))
            stack.extend(reversed(pieces))
    return b"".join(out)


def _message_size(part: Message) -> int:
    return len(message_bytes(part))


def _is_attachment(part: Message, ctype: str) -> bool:
    disp = disposition(part)
    return disp == "attachment" or (disp != "inline" and bool(filename(part)) and not ctype.startswith("multipart/"))


def _visit(part: Message, depth: int, prefer_html: bool, found: Found) -> None:
    found.parts += 1
    if found.parts > MAX_PARTS:
        found.warn("truncated", f"The message has more than {MAX_PARTS} parts; only the first are shown.")
        return
    ctype = content_type(part)
    if depth > MAX_DEPTH:
        found.warn("malformed", f"Parts nested more than {MAX_DEPTH} levels deep are listed, not opened.")
        _attach(found, part, ctype, note="nested too deeply to open")
        return
    if ctype.startswith("multipart/"):
        parts = children(part)
        if not part.is_multipart():
            found.warn("malformed", "A multipart section has no usable boundary; it is shown as plain text.")
            text, _ = text_of(part)
            if text.strip():
                found.segments.append(Segment("text", text))
            return
        if ctype == "multipart/alternative":
            _alternative(parts, depth, prefer_html, found)
        elif ctype == "multipart/related":
            _related(part, parts, depth, prefer_html, found)
        else:
            for child in parts:
                _visit(child, depth + 1, prefer_html, found)
        return
    if ctype in ("message/rfc822", "message/global"):
        _attach(found, part, ctype)
        inner = children(part)
        if disposition(part) != "attachment" and inner:
            shown = headers(inner[0])
            lines = [f"{k}: {shown[k]}" for k in ("From", "Date", "Subject", "To") if k in shown]
            found.segments.append(Segment("message", "\n".join(["---------- Attached message ----------", *lines])))
            _visit(inner[0], depth + 1, prefer_html, found)
        return
    cid = content_id(part)
    if cid and ctype.startswith("image/"):
        found.images.setdefault(cid, part)
    if ctype == "text/calendar":
        text, _ = text_of(part)
        events = calendar.summarize(text)
        found.events.extend(events)
        if events:
            found.segments.append(Segment("text", "\n\n".join(calendar.describe(e) for e in events)))
        _attach(found, part, ctype, name=filename(part) or "invite.ics")
        return
    if _is_attachment(part, ctype) or ctype not in ("text/plain", "text/html", "text/enriched", "text/richtext"):
        if ctype.startswith("image/") and disposition(part) == "inline" and cid:
            return  # an inline image the HTML shows (multipart/related written as mixed)
        _attach(found, part, ctype)
        return
    text, fallback = text_of(part)
    if fallback:
        found.warn("charset", "Some text was not in the character set the message declares; it was read as "
                              "UTF-8 or windows-1252.")
    found.segments.append(Segment("html" if ctype == "text/html" else "text", text))
    if filename(part):  # a named text shown inline (notes.txt): also listed, so that it can be saved
        _attach(found, part, ctype)


def _rank(part: Message, prefer_html: bool) -> int:
    ctype = content_type(part)
    html = ctype == "text/html" or (ctype in ("multipart/related", "multipart/mixed") and _has_html(part))
    if html:
        return 3 if prefer_html else 2
    if ctype == "text/plain":
        return 2 if prefer_html else 3
    if ctype.startswith(("multipart/", "text/")) and ctype != "text/calendar":
        return 1
    return 0


def _has_html(part: Message, depth: int = 0) -> bool:
    return depth <= 3 and any(content_type(c) == "text/html" or _has_html(c, depth + 1)
                              for c in children(part)[:50])


def _alternative(options: list[Message], depth: int, prefer_html: bool, found: Found) -> None:
    usable = [c for c in options if disposition(c) != "attachment"]
    best: Message | None = None
    best_rank = 0
    for child in usable:  # the last of equal rank wins: RFC 2046 orders alternatives plainest first
        rank = _rank(child, prefer_html)
        if rank and rank >= best_rank:
            best, best_rank = child, rank
    if best is not None:
        _visit(best, depth + 1, prefer_html, found)
    for child in options:
        if child is not best and content_type(child) == "text/calendar":
            _visit(child, depth + 1, prefer_html, found)  # Outlook's invitations: the event is an alternative
    if best is None and options:
        found.warn("malformed", "None of the message's alternatives can be shown; they are listed as attachments.")
        for child in options:
            _attach(found, child, content_type(child), note="alternative that cannot be shown")


def _related(part: Message, parts: list[Message], depth: int, prefer_html: bool, found: Found) -> None:
    if not parts:
        return
    start = header_params(header(part, "Content-Type")).get("start", "").strip().strip("<>")
    root = next((c for c in parts if start and content_id(c) == start), parts[0])
    _visit(root, depth + 1, prefer_html, found)
    for child in parts:
        if child is root:
            continue
        cid = content_id(child)
        if cid and content_type(child).startswith("image/"):
            found.images.setdefault(cid, child)
        if not cid or disposition(child) == "attachment":
            _visit(child, depth + 1, prefer_html, found)

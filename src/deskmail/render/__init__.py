"""Turning a stored message into something to read (text body, attachment list).

HTML-only mail is shown as text extracted with the stdlib HTML parser: no
script runs and nothing remote is loaded (the GUI's sanitizing renderer comes
later). Attachment names are reduced to a safe base name, so saving one can
never write outside the chosen folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_binary_file
from email.message import EmailMessage, Message
from email.policy import default
from html.parser import HTMLParser
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class AttachmentInfo:
    filename: str
    content_type: str
    size: int


@dataclass(frozen=True)
class Reading:
    headers: dict[str, str]
    text: str
    attachments: list[AttachmentInfo]

    def to_dict(self) -> dict[str, Any]:
        return {
            "headers": self.headers,
            "text": self.text,
            "attachments": [a.__dict__ for a in self.attachments],
        }


_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")


def safe_filename(name: str | None, fallback: str = "attachment") -> str:
    """A name that stays inside any folder it is joined to."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE.sub("_", base).strip(" .")
    return base[:200] or fallback


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head"):
            self._skip += 1
        elif tag in ("br", "p", "div", "tr", "li", "h1", "h2", "h3"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    p = _TextExtractor()
    p.feed(html)
    p.close()
    return re.sub(r"\n{3,}", "\n\n", "".join(p.parts)).strip() + "\n"


def _content(part: Message) -> str:
    try:
        value = part.get_content()  # type: ignore[attr-defined]
    except (LookupError, ValueError, AssertionError, KeyError):
        payload = part.get_payload(decode=True)
        value = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload or "")
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def read_message(path: Path) -> Reading:
    with open(path, "rb") as fh:
        msg = message_from_binary_file(fh, policy=default)
    headers = {k: str(msg.get(k, "")) for k in ("From", "To", "Cc", "Date", "Subject", "Message-ID") if msg.get(k)}
    text = ""
    if isinstance(msg, EmailMessage):
        try:
            body = msg.get_body(preferencelist=("plain", "html"))
        except (KeyError, LookupError):
            body = None
        if body is not None:
            text = _content(body)
            if body.get_content_type() == "text/html":
                text = html_to_text(text)
    attachments = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        disposition = part.get_content_disposition()
        filename = part.get_filename()
        if disposition == "attachment" or (filename and disposition != "inline"):
            payload = part.get_payload(decode=True)
            attachments.append(
                AttachmentInfo(
                    filename=safe_filename(filename),
                    content_type=part.get_content_type(),
                    size=len(payload) if isinstance(payload, bytes) else 0,
                )
            )
    return Reading(headers=headers, text=text, attachments=attachments)

"""What the renderer returns: plain values, no I/O, safe to hand to any front-end."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import unquote


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    index: int  # 1-based, the number `save_attachments(which=...)` takes
    filename: str  # the name the message gives, decoded (shown to a person; never used as a path)
    safe_name: str  # the name it is saved under (before collision numbering)
    content_type: str
    size: int  # decoded bytes (counted, not decoded into memory, for base64)
    disposition: str = ""  # "attachment", "inline" or ""
    content_id: str = ""
    note: str = ""  # why a part that would be read is listed instead (malformed, too deep, unknown type…)


@dataclass(frozen=True, slots=True)
class SuspiciousLink:
    text: str  # what the link shows
    href: str  # where it really goes


@dataclass(frozen=True, slots=True)
class CalendarEvent:
    method: str  # REQUEST, CANCEL, REPLY…
    summary: str
    start: str
    end: str
    location: str
    organizer: str


@dataclass(frozen=True, slots=True)
class RenderWarning:
    kind: str  # "malformed", "charset", "suspicious_link", "truncated"
    text: str


@dataclass(frozen=True, slots=True)
class Rendered:
    """One message made safe to show.

    ``html`` is sanitized (no script, handler, form, frame, object, meta refresh, harmful CSS); remote
    images are removed unless they were allowed, ``cid:`` images stay as ``cid:`` URLs the caller
    resolves with :meth:`image`. :attr:`text` is for terminals (from the HTML when there is only HTML,
    link targets shown). Nothing here was fetched from the network.
    """

    headers: dict[str, str]
    sender: str  # the From address, lower-cased ("" if none could be read): the key of the allow list
    body: tuple[tuple[bool, str], ...]  # what is shown, part by part: (sanitized HTML?, content)
    html: str
    is_html: bool  # the body came from an HTML part (else ``html`` is the text, escaped)
    inline_images: dict[str, tuple[str, bytes]]  # content-id → (type, bytes)
    blocked_remote: int  # remote images withheld (what "load remote content" would bring)
    remote_allowed: bool
    attachments: tuple[AttachmentInfo, ...]
    warnings: tuple[RenderWarning, ...]
    suspicious_links: tuple[SuspiciousLink, ...] = ()
    events: tuple[CalendarEvent, ...] = ()
    links: tuple[tuple[str, str], ...] = field(default=())  # (text, href) of the body's links
    _text: list[str] = field(default_factory=list, repr=False, compare=False)  # :attr:`text`, once made

    @property
    def text(self) -> str:
        """The body as terminal text, made on first use: converting HTML to text (inscriptis, with lxml)
        is most of the time and ~5 MB of the memory of reading an HTML message, and a window showing the
        HTML never needs it."""
        if not self._text:
            from deskmail.render.html import html_to_text

            parts = [html_to_text(content) if is_html else content for is_html, content in self.body]
            self._text.append("\n".join(t if t.endswith("\n") else t + "\n" for t in parts if t))
        return self._text[0]

    def image(self, url: str) -> tuple[str, bytes] | None:
        """The inline image a ``cid:`` URL of :attr:`html` names (what a QTextBrowser asks for)."""
        if not url.lower().startswith("cid:"):
            return None
        return self.inline_images.get(unquote(url[4:]).strip("<>"))

    def to_dict(self) -> dict[str, Any]:
        """Everything but the image bytes (their sizes instead), for JSON."""
        return {
            "headers": self.headers,
            "sender": self.sender,
            "text": self.text,
            "html": self.html,
            "is_html": self.is_html,
            "inline_images": {cid: {"content_type": t, "size": len(b)} for cid, (t, b) in self.inline_images.items()},
            "blocked_remote": self.blocked_remote,
            "remote_allowed": self.remote_allowed,
            "attachments": [asdict(a) for a in self.attachments],
            "warnings": [asdict(w) for w in self.warnings],
            "suspicious_links": [asdict(s) for s in self.suspicious_links],
            "events": [asdict(e) for e in self.events],
            "links": [{"text": t, "href": h} for t, h in self.links],
        }

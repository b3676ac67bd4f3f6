"""HTML made safe to show, remote content held back, HTML turned into terminal text.

Sanitizing is nh3 (Python binding of the Rust crate ammonia, an html5ever parser: it reads broken
markup the way browsers do and writes a clean tree back). What stays is an allow list: formatting,
tables, lists, links (http, https, mailto), images (``cid:`` from the message, small ``data:`` images,
remote ones only when allowed), and inline CSS limited to harmless properties with no ``url()``.
Everything else — scripts, event handlers, ``javascript:``, forms, frames, objects, ``<meta>``
refresh, ``<link>`` prefetch, ``<style>`` blocks, ``<base>`` — is removed.

Text for terminals comes from inscriptis (layout-aware: tables stay tables, lists stay lists, CSS
``display`` honoured; Apache-2.0, where html2text is GPL-3.0), links shown as ``[text](target)``.
"""

from __future__ import annotations

import html as htmllib
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

import nh3

from deskmail.render.model import SuspiciousLink

_TAGS = (nh3.ALLOWED_TAGS | {"font", "tfoot", "img", "span", "div", "center"}) - {"area", "map"}
_ATTRIBUTES: dict[str, set[str]] = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "*": {"style", "title", "dir", "lang", "align", "class"},
    "a": {"href", "hreflang", "name"},
    "img": {"src", "alt", "width", "height", "align", "border"},
    "font": {"color", "face", "size"},
    "table": {"align", "width", "border", "cellpadding", "cellspacing", "bgcolor", "summary"},
    "td": {"align", "valign", "width", "height", "bgcolor", "colspan", "rowspan", "nowrap"},
    "th": {"align", "valign", "width", "height", "bgcolor", "colspan", "rowspan", "nowrap", "scope"},
    "tr": {"align", "valign", "bgcolor"},
}
# Dropped with everything inside them: content that was never meant to be read as text.
_CLEAN_CONTENT = {"script", "style", "title", "iframe", "object", "embed", "applet", "template", "frameset",
                  "noembed", "noframes", "noscript", "select", "textarea", "head", "svg", "math"}
# Inline CSS properties kept: how text and boxes look. Not kept: anything that can load (background,
# list-style, content, cursor, border-image…) or lay a box over the reader's window (position, z-index).
_CSS = {
    "color", "background-color", "font", "font-family", "font-size", "font-style", "font-weight",
    "font-variant", "text-align", "text-decoration", "text-indent", "text-transform", "letter-spacing",
    "word-spacing", "line-height", "white-space", "vertical-align", "direction", "display",
    "width", "height", "max-width", "min-width", "max-height", "min-height",
    "margin", "margin-top", "margin-right", "margin-bottom", "margin-left",
    "padding", "padding-top", "padding-right", "padding-bottom", "padding-left",
    "border", "border-top", "border-right", "border-bottom", "border-left", "border-color", "border-style",
    "border-width", "border-collapse", "border-spacing", "border-radius", "list-style-type", "table-layout",
}
_CSS_DANGER = re.compile(r"url\s*\(|image-set|image\s*\(|expression\s*\(|@import|javascript:|behavior|binding|\\",
                         re.I)
_DATA_IMAGE = re.compile(r"data:image/(png|gif|jpeg|jpg|webp|bmp);base64,[A-Za-z0-9+/=\s]*\Z", re.I)
_MAX_DEPTH = 200  # html5ever slows quadratically with depth; lxml (inscriptis) gives up past 255


@dataclass(frozen=True, slots=True)
class SafeHtml:
    html: str
    blocked_remote: int
    cids: frozenset[str]  # the content-ids the HTML refers to


def _is_remote(url: str) -> bool:
    u = url.strip().lower()
    return u.startswith(("http:", "https:", "//", "ftp:")) or (":" not in u.split("/", 1)[0] and "." in u)


def sanitize(source: str, *, allow_remote: bool, inline: frozenset[str] = frozenset()) -> SafeHtml:
    """``source`` as safe HTML; ``inline``: the content-ids the message carries (other ``cid:`` refs go)."""
    blocked = 0
    cids: set[str] = set()

    def keep(tag: str, attr: str, value: str) -> str | None:
        nonlocal blocked
        if attr == "style":
            kept = [d for d in value.split(";") if d.strip() and not _CSS_DANGER.search(d)]
            return ";".join(kept) or None
        if attr == "href":  # links go to web pages or addresses, nothing else (data: pages, file:, …)
            return value if value.strip().lower().startswith(("http:", "https:", "mailto:")) else None
        if tag == "img" and attr == "src":
            v = value.strip()
            if v.lower().startswith("cid:"):
                cid = unquote(v[4:]).strip().strip("<>")
                if cid in inline:
                    cids.add(cid)
                    return "cid:" + cid
                return None
            if _DATA_IMAGE.match(v):
                return v
            if _is_remote(v):
                if allow_remote and v.lower().startswith(("http:", "https:")):
                    return v
                blocked += 1
            return None
        return value

    cleaned = nh3.clean(
        _cap_depth(source).replace("\x00", "\ufffd"),
        tags=set(_TAGS), clean_content_tags=_CLEAN_CONTENT, attributes=_ATTRIBUTES, attribute_filter=keep,
        url_schemes={"http", "https", "mailto", "cid", "data"}, filter_style_properties=_CSS,
        link_rel="noopener noreferrer nofollow", strip_comments=True, url_relative="deny",
    )
    return SafeHtml(_IMG_WITHOUT_SOURCE.sub(_alt_text, cleaned), blocked, frozenset(cids))


_IMG_WITHOUT_SOURCE = re.compile(r"<img(?![^>]*\ssrc=)[^>]*>")
_ALT = re.compile(r'\salt="([^"]*)"')


def _alt_text(m: re.Match[str]) -> str:
    """An image left without a source (blocked, or from nowhere) shows its alt text, not a broken-image box."""
    alt = _ALT.search(m.group())
    text = htmllib.unescape(alt.group(1)).strip() if alt else ""
    return f"<span>[{htmllib.escape(text)}]</span>" if text else ""


_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)[^>]*?(/?)>")
_VOID_OR_OPTIONAL = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr",
    "p", "li", "dt", "dd", "tr", "td", "th", "option", "tbody", "thead", "tfoot", "colgroup", "rp", "rt"})


def _cap_depth(source: str) -> str:
    """Tags nested deeper than :data:`_MAX_DEPTH` dropped (their text kept): hostile nesting would
    otherwise cost minutes in the parser."""
    if source.count("<") <= _MAX_DEPTH:
        return source
    out: list[str] = []
    depth = max_seen = pos = 0
    for m in _TAG.finditer(source):
        name = m.group(2).lower()
        if name in _VOID_OR_OPTIONAL or m.group(3):
            continue
        closing = bool(m.group(1))
        too_deep = depth >= _MAX_DEPTH if not closing else depth > _MAX_DEPTH
        depth = max(0, depth - 1) if closing else depth + 1
        max_seen = max(max_seen, depth)
        if too_deep:
            out.append(source[pos:m.start()])
            pos = m.end()
    if max_seen <= _MAX_DEPTH:
        return source
    out.append(source[pos:])
    return "".join(out)


_URL = re.compile(r"\bhttps?://[^\s<>\"'\x00-\x1f\x7f]+[^\s<>\"'.,;:!?)\]}\x00-\x1f\x7f]", re.I)


def text_as_html(text: str) -> str:
    """Plain text for an HTML view: escaped, line breaks kept, web addresses made links."""
    out: list[str] = []
    pos = 0
    for m in _URL.finditer(text):
        url = htmllib.escape(m.group())
        out += [htmllib.escape(text[pos:m.start()]), f'<a href="{url}" rel="noopener noreferrer nofollow">{url}</a>']
        pos = m.end()
    out.append(htmllib.escape(text[pos:]))
    return f'<div style="white-space: pre-wrap">{"".join(out)}</div>'


# --- links ----------------------------------------------------------------------------------------

class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._close()
            self._href = dict(attrs).get("href") or None
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._close()

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def _close(self) -> None:
        if self._href is not None:
            self.links.append((" ".join("".join(self._text).split()), self._href))
        self._href = None

    def close(self) -> None:
        super().close()
        self._close()


def links(safe_html: str) -> list[tuple[str, str]]:
    parser = _Links()
    parser.feed(safe_html)
    parser.close()
    return parser.links


_SHOWN_URL = re.compile(r"(?:https?://)?((?:[\w-]+\.)+[a-z\u00a1-\uffff]{2,}|\[[0-9a-f:.]+\])(?::\d+)?(?:[/?#]\S*)?\Z",
                        re.I)
_SHOWN_ADDRESS = re.compile(r"(?:mailto:)?([^\s@<>]+@[^\s@<>]+\.[^\s@<>]+)\Z", re.I)


def _host(host: str) -> str:
    host = host.strip().rstrip(".").lower()
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        pass
    return host[4:] if host.startswith("www.") else host


def _related(a: str, b: str) -> bool:
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def suspicious(text: str, href: str) -> bool:
    """The link shows one host (or address) and goes to another."""
    text = text.strip().strip("<>()[]\"'").rstrip(".,;:")
    address = _SHOWN_ADDRESS.match(text)
    target = href.strip()
    if address:
        if not target.lower().startswith("mailto:"):
            return True  # shows an address, opens a web page
        real = unquote(target[7:]).split("?", 1)[0].strip().lower()
        return real != address.group(1).lower()
    shown = _SHOWN_URL.match(text)
    if not shown:
        return False
    if target.lower().startswith("mailto:"):
        return True
    try:
        real = urlsplit(target).hostname or ""
    except ValueError:
        return True
    return not real or not _related(_host(shown.group(1)), _host(real))


def suspicious_links(found: list[tuple[str, str]]) -> list[SuspiciousLink]:
    return [SuspiciousLink(text, href) for text, href in found if text and suspicious(text, href)]


# --- HTML to text ---------------------------------------------------------------------------------

class _PlainText(HTMLParser):
    """The fallback when inscriptis cannot read the HTML: text with line breaks at blocks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "table", "blockquote"):
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(safe_html: str) -> str:
    """Terminal text of already sanitized HTML; links as ``[text](target)`` (just the text when the
    target says the same), images as ``[alt]``."""
    text = ""
    try:
        from inscriptis import get_text
        from inscriptis.model.config import ParserConfig

        text = get_text(safe_html, ParserConfig(display_links=True, display_images=True))
    except Exception:  # inscriptis/lxml on hostile markup: fall back, never fail a read
        text = ""
    if not text.strip():
        parser = _PlainText()
        parser.feed(safe_html)
        parser.close()
        text = "".join(parser.parts)
    text = re.sub(r"\[([^\]\n]*)\]\((?:mailto:)?\1/?\)", r"\1", text)  # "[a@b](mailto:a@b)" says it twice
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"

"""The remote images a sanitized HTML body still names (after a person allowed remote content)."""

from __future__ import annotations

from html.parser import HTMLParser


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            src = dict(attrs).get("src") or ""
            if src.lower().startswith(("http://", "https://")):
                self.urls.append(src)


def remote_image_urls(html: str) -> list[str]:
    parser = _Images()
    parser.feed(html)
    parser.close()
    return list(dict.fromkeys(parser.urls))

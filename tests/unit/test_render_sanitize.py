"""Sanitized HTML: nothing runs, nothing loads unless allowed, deceptive links are named."""

from __future__ import annotations

import pytest

from deskmail.render import render
from deskmail.render.html import suspicious
from hostile_mail import CORPUS

FORBIDDEN = ["<script", "onload", "onclick", "javascript", "<form", "<input", "<iframe", "<object", "<embed",
             "<meta", "refresh", "<link", "prefetch", "<style", "<base", "<svg", "expression", "url(", "position",
             "background=", "poster", "evil.example/\"", "css.example", "import.example", "bodybg", "tablebg",
             "style.example", "inline.example", "\x00"]


def test_hostile_html_keeps_only_safe_markup() -> None:
    r = render(CORPUS["hostile-html"])
    lowered = r.html.lower()
    for needle in FORBIDDEN:
        assert needle not in lowered, needle
    assert '<p style="color:red;font-weight:bold">' in r.html  # harmless CSS kept
    assert "Visible text" in r.html and "Visible text" in r.text


def test_remote_images_are_blocked_counted_and_loaded_only_when_allowed() -> None:
    blocked = render(CORPUS["hostile-html"])
    assert blocked.blocked_remote == 2 and not blocked.remote_allowed  # the pixel and the photo
    for host in ("pixel.example", "protocol-relative.example", "img.example", "noscript.example", "svg.example"):
        assert host not in blocked.html
    allowed = render(CORPUS["hostile-html"], allow_remote=True)
    assert allowed.blocked_remote == 0 and allowed.remote_allowed
    assert "protocol-relative" not in allowed.html  # "//host/x": a relative URL, never loaded
    assert 'src="https://img.example/photo.jpg"' in allowed.html
    assert 'src="https://pixel.example/open.gif?id=42"' in allowed.html
    for host in ("css.example", "style.example", "inline.example", "prefetch.example", "noscript.example"):
        assert host not in allowed.html  # CSS and prefetch never load, allowed or not


def test_deceptive_links_are_flagged() -> None:
    r = render(CORPUS["hostile-html"])
    assert {(s.text, s.href) for s in r.suspicious_links} == {
        ("https://bank.example/login", "https://attacker.example/login"),
        ("support@bank.example", "mailto:attacker@evil.example")}
    assert [w.kind for w in r.warnings] == ["suspicious_link", "suspicious_link"]


@pytest.mark.parametrize(("text", "href", "flagged"), [
    ("https://bank.example/", "https://bank.example/x", False),
    ("www.bank.example", "https://bank.example/", False),
    ("bank.example", "https://login.bank.example/", False),
    ("paypal.com", "https://paypal.com.evil.example/", True),
    ("https://paypal.com", "https://xn--pypal-4ve.com/", True),
    ("Click here", "https://anything.example/", False),
    ("a@b.example", "mailto:A@B.example", False),
    ("a@b.example", "mailto:c@d.example", True),
    ("a@b.example", "https://b.example/", True),
    ("bank.example", "mailto:x@bank.example", True),
    ("bank.example", "http://[::1", True),
])
def test_suspicious_link_rule(text: str, href: str, flagged: bool) -> None:
    assert suspicious(text, href) is flagged


def test_data_images_only_when_they_are_plain_images() -> None:
    raw = (b"Content-Type: text/html\r\n\r\n<img src='data:image/png;base64,iVBORw0KGgo='>"
           b"<img src='data:image/svg+xml;base64,PHN2Zz48L3N2Zz4='><img src='data:text/html,<script>'>")
    html = render(raw).html
    assert html.count("data:") == 1 and "data:image/png" in html


def test_plain_text_is_escaped_in_the_html_view() -> None:
    r = render(b"Content-Type: text/plain\r\n\r\n<script>alert(1)</script> & <b>")
    assert "<script>" not in r.html and "&lt;script&gt;" in r.html and not r.is_html


def test_links_only_to_web_pages_and_addresses() -> None:
    raw = (b"Content-Type: text/html\r\n\r\n<a href='data:text/html,<script>alert(1)</script>'>d</a>"
           b"<a href='file:///etc/passwd'>f</a><a href='/relative'>r</a><a href='vbscript:x'>v</a>"
           b"<a href='https://ok.example/'>ok</a><a href='mailto:a@example.test'>m</a><img src='relative.png'>")
    r = render(raw)
    assert r.links == (("ok", "https://ok.example/"), ("m", "mailto:a@example.test"))
    for gone in ("data:", "file:", "/relative", "vbscript", "relative.png"):
        assert gone not in r.html


def test_web_addresses_in_plain_text_become_links() -> None:
    r = render(b"Content-Type: text/plain\r\n\r\nSee https://example.test/a?b=1&c=\"2\". Or (http://x.test/).")
    assert '<a href="https://example.test/a?b=1&amp;c=" rel="noopener noreferrer nofollow">' in r.html
    assert '<a href="http://x.test/" rel="noopener noreferrer nofollow">http://x.test/</a>).' in r.html
    assert r.links == (("https://example.test/a?b=1&c=", "https://example.test/a?b=1&c="),
                       ("http://x.test/", "http://x.test/"))


def test_a_blocked_image_shows_its_alt_text_and_a_pixel_nothing() -> None:
    raw = (b"Content-Type: text/html\r\n\r\n<img src='https://x.example/a.png' alt='&lt;b&gt;Logo'>"
           b"<img src='https://t.example/p.gif' width=1 height=1>")
    r = render(raw)
    assert r.html == "<span>[&lt;b&gt;Logo]</span>" and r.blocked_remote == 2
    assert render(raw, allow_remote=True).html.count("<img") == 2

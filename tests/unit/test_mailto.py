"""mailto: links (RFC 6068) to drafts: what a link may propose, and nothing more."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deskmail.errors import UsageError
from deskmail.outbox.mailto import parse_mailto


def test_recipients_subject_body() -> None:
    d = parse_mailto("mailto:ada@harbour.example,bob@example.net?cc=carol@example.net&subject=Hello%20there"
                     "&body=Line%201%0D%0ALine%202&bcc=me@example.org")
    assert d.to == ("ada@harbour.example", "bob@example.net") and d.cc == ("carol@example.net",)
    assert d.bcc == ("me@example.org",) and d.subject == "Hello there" and d.body == "Line 1\nLine 2"


def test_a_link_cannot_attach_files_or_set_headers() -> None:
    d = parse_mailto("mailto:a@example.org?attach=/etc/passwd&from=evil@example.org&X-Evil=1"
                     "&subject=a%0D%0ABcc:%20x@example.org")
    assert d.attachments == () and d.subject == "a  Bcc: x@example.org" and d.bcc == ()


def test_not_a_mailto_link() -> None:
    with pytest.raises(UsageError):
        parse_mailto("https://example.org")


@given(st.text(max_size=200))
def test_any_link_gives_a_draft_without_line_breaks_in_the_subject(tail: str) -> None:
    d = parse_mailto("mailto:" + tail)
    assert "\n" not in d.subject and "\r" not in d.subject

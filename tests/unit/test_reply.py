"""Replies and forwards: addressing, "Re:" once, threading headers, quoting; hostile headers never raise."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from deskmail.model import Account, Protocol, Security, ServerSettings
from deskmail.outbox.compose import build_message
from deskmail.outbox.reply import forward_draft, reply_draft, reply_subject

ME = Account("me", "me@example.org", "Me", ServerSettings(Protocol.IMAP, "imap.example.org", 993, Security.SSL, "me"),
             ServerSettings(Protocol.SMTP, "smtp.example.org", 587, Security.STARTTLS, "me"))

ORIGINAL = (b"From: Ada Keeper <ada@harbour.example>\r\n"
            b"To: me@example.org, Bob <bob@example.net>\r\n"
            b"Cc: ME <ME@example.org>, carol@example.net\r\n"
            b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= and figures\r\n"
            b"Date: Tue, 01 Dec 2026 10:30:00 +0000\r\n"
            b"Message-ID: <m2@harbour.example>\r\n"
            b"References: <m0@harbour.example> <m1@example.org>\r\n\r\nbody\r\n")


def test_reply_goes_to_the_sender_threaded_and_quoted() -> None:
    d = reply_draft(ME, ORIGINAL, "Hello,\n\nthe figures.\n")
    assert d.to == ("Ada Keeper <ada@harbour.example>",) and d.cc == ()
    assert d.subject == "Re: Grüße and figures"
    assert d.in_reply_to == "<m2@harbour.example>"
    assert tuple(d.references) == ("<m0@harbour.example>", "<m1@example.org>", "<m2@harbour.example>")
    assert "On Tue, 01 Dec 2026 at 10:30, Ada Keeper wrote:\n> Hello,\n>\n> the figures." in d.body
    msg, rcpt = build_message(ME, d)
    assert msg["In-Reply-To"] == "<m2@harbour.example>" and "<m1@example.org>" in msg["References"]
    assert rcpt == ["ada@harbour.example"]


def test_reply_all_leaves_out_my_own_addresses_and_respects_reply_to() -> None:
    d = reply_draft(ME, ORIGINAL, "x", reply_all=True)
    assert d.to == ("Ada Keeper <ada@harbour.example>",)
    assert d.cc == ("Bob <bob@example.net>", "carol@example.net")  # not me, in any case of letters
    with_reply_to = ORIGINAL.replace(b"Date:", b"Reply-To: list@lists.example\r\nDate:")
    assert reply_draft(ME, with_reply_to, "x").to == ("list@lists.example",)


def test_re_and_fwd_are_added_once() -> None:
    assert reply_subject("Re: hi") == "Re: hi" and reply_subject("AW: hi") == "AW: hi"
    assert reply_subject("Re[2]: hi") == "Re[2]: hi" and reply_subject("hi") == "Re: hi"
    d = forward_draft(ME, ORIGINAL.replace(b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=", b"Subject: Fwd:"), "the text")
    assert d.subject == "Fwd: and figures" and d.to == ()
    assert "From: Ada Keeper <ada@harbour.example>" in d.body and "the text" in d.body


@settings(max_examples=300)
@given(st.binary(max_size=400), st.text(max_size=200))
def test_any_header_bytes_give_a_draft(header: bytes, text: str) -> None:
    raw = b"From: " + header + b"\r\nSubject: " + header[::-1] + b"\r\nReferences: " + header + b"\r\n\r\n"
    d = reply_draft(ME, raw, text, reply_all=True)
    assert isinstance(d.subject, str) and all("me@example.org" not in a.lower() for a in d.to + d.cc)
    forward_draft(ME, raw, text)

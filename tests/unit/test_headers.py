"""The index's own header reader against the email package, which it replaces on the sync path."""

from __future__ import annotations

import datetime
from email.header import Header
from email.utils import format_datetime, parsedate_to_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deskmail.store.headers import decode_words, header_fields, iso_date

HEAD = (b"Return-Path: <x@example.test>\r\n"
        b"Received: from a by b;\r\n\tMon, 02 Jan 2023 10:00:00 +0000\r\n"
        b"From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <jm@example.test>\r\n"
        b"To: a@example.test,\r\n b@example.test\r\n"
        b"Subject: =?utf-8?b?w4RwZmVs?= =?utf-8?q?_und_Birnen?= (fresh)\r\n"
        b"Date: Mon, 2 Jan 2023 10:00 -0500\r\n"
        b"Message-ID: <abc@example.test>\r\n"
        b"Subject: a second subject is ignored\r\n"
        b"\r\n"
        b"To: not a header, the body\r\n")


def test_fields_of_a_typical_header_block() -> None:
    assert header_fields(HEAD) == {
        "sender": "Jürgen Müller <jm@example.test>",
        "recipients": "a@example.test, b@example.test",
        "subject": "Äpfel und Birnen (fresh)",
        "date": "2023-01-02T10:00:00-05:00",
        "message_id": "<abc@example.test>",
    }


def test_bare_lf_raw_utf8_and_missing_fields() -> None:
    fields = header_fields("Subject: Grüße\nFrom: x\n\nbody".encode())
    assert fields == {"subject": "Grüße", "sender": "x", "date": ""}
    assert header_fields(b"") == {"date": ""}
    assert header_fields(b"From garbage line without colon\nSubject: ok\n\n")["subject"] == "ok"


@pytest.mark.parametrize(("raw", "text"), [
    (b"=?iso-8859-1?q?caf=E9?=", "café"),
    (b"=?utf-8?b?w6k?=", "é"),  # unpadded base64
    (b"=?x-unknown?q?abc?=", "abc"),
    (b"=?utf-8*de?q?Gr=C3=BC=C3=9Fe?=", "Grüße"),  # RFC 2231 language suffix
    (b"a =?utf-8?q?b?= c", "a b c"),
    (b"=?utf-8?b?!!!?=", "=?utf-8?b?!!!?="),  # broken base64 stays as it was
])
def test_encoded_words(raw: bytes, text: str) -> None:
    assert decode_words(raw) == text


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=200))
def test_round_trip_through_the_email_packages_encoder(subject: str) -> None:
    folded = Header(subject, "utf-8").encode().encode("ascii")
    got = header_fields(b"Subject: " + folded + b"\r\n\r\n").get("subject", "")
    assert got == subject.strip()


@given(st.datetimes(min_value=datetime.datetime(1971, 1, 1), max_value=datetime.datetime(2090, 1, 1)),
       st.integers(min_value=-14 * 60, max_value=14 * 60))
def test_dates_match_the_email_package(when: datetime.datetime, offset_minutes: int) -> None:
    aware = when.replace(microsecond=0, tzinfo=datetime.timezone(datetime.timedelta(minutes=offset_minutes)))
    text = format_datetime(aware)
    assert iso_date(text) == parsedate_to_datetime(text).isoformat()


@pytest.mark.parametrize("text", ["", "yesterday", "Mon, 32 Foo 2023 99:99:99 +0000", "Tue, 1 Jan 99999 00:00 GMT"])
def test_unreadable_dates_are_empty(text: str) -> None:
    assert iso_date(text) == ""


@given(st.binary(max_size=2000))
def test_never_raises(head: bytes) -> None:
    assert isinstance(header_fields(head), dict)

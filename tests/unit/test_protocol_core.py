"""deskmail.protocol.core fed with byte strings: split reads, literals across chunks, odd greetings."""

from __future__ import annotations

import base64
import io
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deskmail.protocol import core


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def _imap_responses(data: bytes, cuts: list[int], **kwargs: object) -> list[core.ImapResponse]:
    buf = core.LineBuffer(1024)
    reader = core.ImapResponseReader(buf, **kwargs)  # type: ignore[arg-type]
    out = []
    for chunk in _chunks(data, cuts):
        buf.feed(chunk)
        while (r := reader.next()) is not None:
            out.append(r)
    assert buf.buffered() == 0
    return out


# --- lines ---------------------------------------------------------------------------


def test_line_buffer_hands_out_whole_lines_only() -> None:
    buf = core.LineBuffer(16)
    buf.feed(b"* OK he")
    assert buf.line() is None
    buf.feed(b"llo\r\nA1 OK\r")
    assert buf.line() == b"* OK hello\r\n"
    assert buf.line() is None and buf.buffered() == 6
    buf.feed(b"\n")
    assert buf.line() == b"A1 OK\r\n"


def test_line_buffer_refuses_endless_lines() -> None:
    buf = core.LineBuffer(8)
    buf.feed(b"x" * 9)
    with pytest.raises(core.FramingError):
        buf.line()


@given(st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=8),
       st.lists(st.integers(min_value=0, max_value=400), max_size=10))
def test_line_buffer_any_split_gives_the_same_lines(lines: list[bytes], cuts: list[int]) -> None:
    data = b"".join(line + b"\r\n" for line in lines)
    buf = core.LineBuffer(64)
    got = []
    for chunk in _chunks(data, cuts):
        buf.feed(chunk)
        while (line := buf.line()) is not None:
            got.append(line)
    assert got == [line + b"\r\n" for line in lines]


# --- IMAP ----------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "kind", "caps"), [
    (b"* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] Dovecot ready.\r\n", "OK",
     {"IMAP4REV1", "STARTTLS", "AUTH=PLAIN"}),
    (b"* ok hello\r\n", "OK", None),
    (b"* PREAUTH [CAPABILITY IMAP4rev1] logged in\r\n", "PREAUTH", {"IMAP4REV1"}),
    (b"* BYE Too many connections\r\n", "BYE", None),
    (b"+OK POP3 ready\r\n", "", None),
    (b"220 smtp.example.com ESMTP\r\n", "", None),
    (b"* OKAY\r\n", "", None),
    (b"", "", None),
    (b"\xff\xfe* OK\r\n", "", None),
])
def test_imap_greetings(line: bytes, kind: str, caps: set[str] | None) -> None:
    greeting = core.imap_greeting(line)
    assert greeting.kind == kind
    assert greeting.usable is (kind in ("OK", "PREAUTH"))
    assert (set(greeting.capabilities) if greeting.capabilities is not None else None) == caps


@given(st.binary(max_size=200))
def test_imap_greeting_never_raises(line: bytes) -> None:
    greeting = core.imap_greeting(line)
    assert greeting.kind in ("", "OK", "PREAUTH", "BYE")


def test_imap_capabilities_from_all_three_places() -> None:
    assert core.imap_capabilities(b"* CAPABILITY IMAP4rev1 LOGINDISABLED\r\n") == {"IMAP4REV1", "LOGINDISABLED"}
    assert core.imap_capabilities(b"D3 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n") == {"IMAP4REV1", "IDLE"}
    assert core.imap_capabilities(b"* OK [CAPABILITY X] hi\r\n") == {"X"}
    assert core.imap_capabilities(b"D3 OK done\r\n") is None
    caps = core.imap_server_caps(["IMAP4rev1", "STARTTLS", "LOGINDISABLED", "AUTH=PLAIN", "AUTH=XOAUTH2"])
    assert caps.starttls and caps.login_disabled and caps.auth_advertised
    assert caps.auth_mechanisms == ("PLAIN", "XOAUTH2")


def test_imap_tagged_status() -> None:
    ok = core.imap_tagged(b"D7 OK [CAPABILITY IMAP4rev1] Logged in\r\n", b"D7")
    assert ok is not None and ok.ok and ok.text == "[CAPABILITY IMAP4rev1] Logged in"
    assert ok.capabilities == {"IMAP4REV1"}
    no = core.imap_tagged(b"D7 no [AUTHENTICATIONFAILED] bad\r\n", b"D7")
    assert no is not None and no.status == "NO" and not no.ok
    assert core.imap_tagged(b"D70 OK\r\n", b"D7") is None  # another command's tag
    assert core.imap_tagged(b"* OK\r\n", b"D7") is None
    bare = core.imap_tagged(b"D7\r\n", b"D7")
    assert bare is None


def test_tags() -> None:
    tags = core.ImapTags("D", 3)
    assert [tags.next(), tags.next()] == [b"D001", b"D002"]
    assert core.ImapTags().next() == b"D1"


def test_starttls_outcomes() -> None:
    assert core.starttls_outcome(True, 0) == core.STARTTLS_OK
    assert core.starttls_outcome(True, 1) == core.STARTTLS_INJECTED
    assert core.starttls_outcome(False, 5) == core.STARTTLS_REFUSED


def test_imap_responses_with_a_literal_split_everywhere() -> None:
    data = (b"* 1 FETCH (UID 7 BODY[HEADER.FIELDS (SUBJECT)] {15}\r\nSubject: hi\r\n\r\n)\r\n"
            b"* SEARCH 1 2\r\nD1 OK done\r\n")
    for cut in range(len(data) + 1):
        for cut2 in range(cut, len(data) + 1, 7):
            got = _imap_responses(data, [cut, cut2])
            assert [r.raw for r in got] == [
                b"* 1 FETCH (UID 7 BODY[HEADER.FIELDS (SUBJECT)] {15}Subject: hi\r\n\r\n)",
                b"* SEARCH 1 2",
                b"D1 OK done",
            ]
            assert got[0].literals == [b"Subject: hi\r\n\r\n"]
            assert got[2].tag == b"D1" and got[0].untagged


@given(st.binary(max_size=3000), st.lists(st.integers(min_value=0, max_value=4000), max_size=12))
def test_imap_literal_to_a_sink_arrives_whole_whatever_the_chunks(body: bytes, cuts: list[int]) -> None:
    data = b"* 3 FETCH (UID 9 BODY[] {%d}\r\n%s)\r\nD4 OK\r\n" % (len(body), body)
    sinks: list[io.BytesIO] = []

    def sink(head: bytes, size: int) -> io.BytesIO:
        assert head.endswith(b"{%d}" % size) and size == len(body)
        sinks.append(io.BytesIO())
        return sinks[-1]

    got = _imap_responses(data, cuts, literal_sink=sink, max_literal=0)
    assert [r.raw for r in got] == [b"* 3 FETCH (UID 9 BODY[] {%d})" % len(body), b"D4 OK"]
    assert got[0].literals == [len(body)]
    assert len(sinks) == 1 and sinks[0].getvalue() == body


def test_imap_literal_limits_and_zero_length() -> None:
    got = _imap_responses(b"* LIST () \"/\" {0}\r\n\r\nD1 OK\r\n", [3])
    assert got[0].literals == [b""] and got[1].raw == b"D1 OK"
    buf = core.LineBuffer()
    buf.feed(b"* X {2000}\r\n")
    with pytest.raises(core.FramingError):
        core.ImapResponseReader(buf, max_literal=1000).next()


def test_imap_login_forms() -> None:
    [quoted] = core.imap_login(b"D2", "alice@example.com", 'pa"ss')
    assert quoted.data == b'D2 LOGIN "alice@example.com" "pa\\"ss"\r\n'
    assert quoted.shown == 'D2 LOGIN "alice@example.com" ****'
    literal = core.imap_login(b"D3", "jörg", "pässwörd")
    assert [s.data for s in literal] == [b"D3 LOGIN {5}\r\n", "jörg".encode() + b" {10}\r\n",
                                         "pässwörd".encode() + b"\r\n"]
    assert [s.after_go_ahead for s in literal] == [False, True, True]
    assert literal[-1].shown == "****" and "pässwörd" not in repr(literal)
    control = core.imap_login(b"D4", "bob", "a\tb")  # not quotable: a literal carries it
    assert len(control) == 3


def _all_segments(user: str, password: str) -> list[core.Segment]:
    return [*core.imap_login(b"D1", user, password), *core.smtp_auth_plain(user, password),
            *core.smtp_auth_login(user, password), *core.pop3_pass(password)]


@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30))
def test_what_a_transcript_shows_does_not_depend_on_the_password(user: str, password: str) -> None:
    # Every shown form is the same for another password of the same byte length: nothing of it is shown.
    other = "x" * len(password.encode())
    if core.imap_quotable(password) != core.imap_quotable(other):
        other = "\t" * len(password.encode())  # keep the same IMAP form (quoted vs. literal)
        other = other[: len(password.encode())] if core.imap_quotable(password) else "\x01" * len(password.encode())
    shown = [s.shown for s in _all_segments(user, password)]
    assert shown == [s.shown for s in _all_segments(user, other)]


# --- SMTP ----------------------------------------------------------------------------


def test_smtp_multiline_reply_split_anywhere() -> None:
    data = (b"250-smtp.example.com Hello\r\n250-SIZE 35882577\r\n250-AUTH=LOGIN\r\n"
            b"250-AUTH PLAIN LOGIN XOAUTH2\r\n250-STARTTLS\r\n250 8BITMIME\r\n")
    for cut in range(len(data) + 1):
        buf = core.LineBuffer()
        reader = core.SmtpReplyReader(buf)
        buf.feed(data[:cut])
        first = reader.next()
        buf.feed(data[cut:])
        reply = first or reader.next()
        assert reply is not None and reply.code == 250 and reply.wellformed and len(reply.lines) == 6
    caps = core.smtp_server_caps(reply)
    assert caps.starttls and caps.auth_advertised
    assert caps.auth_mechanisms == ("LOGIN", "PLAIN", "XOAUTH2")
    assert caps.names[:2] == ("SIZE", "AUTH")


def test_smtp_odd_replies() -> None:
    assert not core.smtp_greeting_ok(core.smtp_reply(("554 no service",)))
    assert core.smtp_greeting_ok(core.smtp_reply(("220 ready",)))
    junk = core.smtp_reply(("* OK IMAP4rev1",))
    assert junk.code == 0 and not junk.wellformed
    assert core.smtp_server_caps(core.smtp_reply(("502 what?",))).names == ()
    assert core.ehlo_name("::1") == "[IPv6:::1]" and core.ehlo_name("10.0.0.1") == "[10.0.0.1]"
    buf = core.LineBuffer()
    buf.feed(b"250-x\r\n" * 5)
    with pytest.raises(core.FramingError):
        core.SmtpReplyReader(buf, max_lines=3).next()


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\r\n"), max_size=40), min_size=1, max_size=6))
def test_smtp_reply_never_raises(lines: list[str]) -> None:
    reply = core.smtp_reply(tuple(lines))
    core.smtp_server_caps(reply)
    assert isinstance(reply.text, str)


def test_smtp_auth_choice() -> None:
    [plain] = core.smtp_auth("u", "pw", {"PLAIN", "LOGIN"})
    assert plain.data == b"AUTH PLAIN " + base64.b64encode(b"\0u\0pw") + b"\r\n" and plain.shown == "AUTH PLAIN ****"
    login = core.smtp_auth("u", "pw", {"LOGIN"})
    assert [s.shown for s in login] == ["AUTH LOGIN", base64.b64encode(b"u").decode(), "****"]
    assert login[2].data == base64.b64encode(b"pw") + b"\r\n"


# --- POP3 ----------------------------------------------------------------------------


def test_pop3_status_and_capa() -> None:
    assert core.pop3_ok(b"+OK ready\r\n") and core.pop3_ok("+OK")
    assert not core.pop3_ok("-ERR [IN-USE] locked") and not core.pop3_ok("* OK IMAP")
    assert core.pop3_status_text("-ERR [AUTH] no") == "[AUTH] no"
    caps = core.pop3_server_caps(["TOP", "UIDL", "SASL PLAIN LOGIN", "STLS", "", "PIPELINING"])
    assert caps.starttls and caps.auth_advertised and caps.auth_mechanisms == ("PLAIN", "LOGIN")
    assert core.pop3_unstuff(".") is None and core.pop3_unstuff("..x") == ".x"
    [pass_] = core.pop3_pass("e")
    assert pass_.data == b"PASS e\r\n" and pass_.shown == "PASS ****"


# --- echoes of credentials ---------------------------------------------------------------


@pytest.mark.parametrize("password", ["e", "a", "password", "false", "imap", "true"])
def test_ordinary_words_are_not_taken_for_an_echo(password: str) -> None:
    assert not core.repeats_secret("NO [AUTHENTICATIONFAILED] Authentication failed.", password, "alice")
    assert not core.repeats_secret('{"ok": false, "imap": true, "password": "wrong"}', password * 2, "alice")
    assert core.repeats_secret(f'BAD Error in IMAP command LOGIN "alice" "{password}"', password, "alice")
    blob = base64.b64encode(f"\0alice\0{password}".encode()).decode()
    assert core.repeats_secret(f"500 unrecognized: AUTH PLAIN {blob}", password, "alice")

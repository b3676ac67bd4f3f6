"""The editor's template (cli/compose_cmd.py) and the header checks it relies on in outbox/compose.py: pure logic."""

from __future__ import annotations

import email
import re
from email.policy import default
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deskmail.cli.compose_cmd import format_template, parse_template
from deskmail.codes import Code
from deskmail.errors import UsageError
from deskmail.model import Account, Protocol, Security, ServerSettings
from deskmail.outbox.compose import Draft, build_message, wire_bytes

ME = Account("me", "me@example.test", "Me Myself",
             incoming=ServerSettings(Protocol.IMAP, "imap.example.test", 993, Security.SSL, "me"),
             outgoing=ServerSettings(Protocol.SMTP, "smtp.example.test", 587, Security.STARTTLS, "me"))
CRLF_WORD = "=?utf-8?b?eA0KQmNjOiB2aWN0aW1AZXZpbC5leGFtcGxl?="  # "x\r\nBcc: victim@evil.example"


def _error(text: str, base: Path = Path("/")) -> UsageError:
    with pytest.raises(UsageError) as caught:
        parse_template(text, base)
    assert caught.value.code == Code.BAD_TEMPLATE
    return caught.value


def test_template_shows_decoded_names_and_reads_back(tmp_path: Path) -> None:
    (tmp_path / "plan.pdf").write_bytes(b"%PDF")
    draft = Draft(to=("=?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <j@m\u00fcnchen.example>", '"Smith, Ann" <ann@x.example>'),
                  cc=("bob@y.example",), subject="Grüße ✓", body="Hallo,\n\n> quoted\n",
                  attachments=(tmp_path / "plan.pdf",))
    text = format_template("Me Myself <me@example.test>", draft)
    assert text.splitlines()[:7] == [
        "From: Me Myself <me@example.test>", 'To: Jürgen Müller <j@münchen.example>, "Smith, Ann" <ann@x.example>',
        "Cc: bob@y.example", "Bcc:", "Subject: Grüße ✓", f"Attach: {tmp_path / 'plan.pdf'}", ""]
    back = parse_template(text, tmp_path)
    assert back.sender == "me@example.test" and back.sender_name == "Me Myself"
    assert back.to == ('Jürgen Müller <j@münchen.example>, "Smith, Ann" <ann@x.example>',)
    assert (back.cc, back.bcc, back.subject) == (("bob@y.example",), (), "Grüße ✓")
    assert back.attachments == (tmp_path / "plan.pdf",) and back.body == "Hallo,\n\n> quoted\n"
    msg, rcpt = build_message(ME, Draft(to=back.to, cc=back.cc, subject=back.subject, body=back.body))
    assert rcpt == ["j@münchen.example", "ann@x.example", "bob@y.example"]
    assert str(msg["Subject"]) == "Grüße ✓"


def test_a_hostile_subject_or_name_stays_on_its_line() -> None:
    draft = Draft(to=(f"{CRLF_WORD} <a@b.example>",), subject="Re: x\r\nBcc: victim@evil.example\u2028y")
    text = format_template("me@example.test", draft)
    lines = text.split("\n")
    assert lines[4] == "Subject: Re: x  Bcc: victim@evil.example y"
    assert not any(line.startswith("Bcc: v") for line in lines)
    back = parse_template(text, Path("/"))
    assert back.bcc == () and back.subject == "Re: x  Bcc: victim@evil.example y"


def test_errors_name_the_line() -> None:
    e = _error("From: me@example.test\nTo: a@b.example\nSbject: hello\n\nbody\n")
    assert e.what.startswith("Line 3 of the message, 'Sbject: hello': deskmail does not know the header 'Sbject'")
    assert "From, To, Cc, Bcc, Subject and Attach" in e.remedy
    e = _error("To: a@b.example\nHello there, no blank line\n")
    assert "Line 2" in e.what and "blank line" in e.remedy
    assert "Line 1" in _error(" indented\n\nbody").what
    e = _error("To: a@b.example\nSubject: one\nSubject: two\n\n")
    assert "Line 3" in e.what and "the first is line 2" in e.what
    assert "not a list of e-mail addresses" in _error("To: not an address\n\nx").what
    assert "no file" in _error("To: a@b.example\nAttach: missing.txt\n\nx", Path("/nonexistent")).what
    assert "one address" in _error("From: a@b.example, c@d.example\n\nx").what
    assert "one address" in _error("From: Just A Name\n\nx").what
    assert "is a folder, not a file" in _error("To: a@b.example\nAttach: /tmp\n\nx").what


@pytest.mark.parametrize("line", ["Subject: a\rBcc: victim@evil.example", f"Subject: {CRLF_WORD}",
                                  f"To: {CRLF_WORD} <a@b.example>", "Cc: x <a@b.example>\x00",
                                  "Subject: a\x1b[31mred"])
def test_line_breaks_and_controls_in_a_header_are_refused(line: str) -> None:
    e = _error(f"To: a@b.example\n{line}\n\nbody\n")
    assert "Line 2" in e.what and ("control character" in e.what or "line break" in e.what)


def test_folded_headers_crlf_files_and_relative_attachments(tmp_path: Path) -> None:
    (tmp_path / "a b.txt").write_text("x")
    back = parse_template("\ufeffto: a@b.example,\r\n  c@d.example\r\nSUBJECT: long\r\n\tsubject\r\n"
                          'Attach: "a b.txt"\r\n\r\nline 1\r\nline 2\r\n', tmp_path)
    assert back.to == ("a@b.example, c@d.example",) and back.subject == "long subject"
    assert back.attachments == (tmp_path / "a b.txt",) and back.body == "line 1\nline 2\n"
    assert parse_template("To: a@b.example\n", tmp_path).body == ""  # no text at all


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(subject=_text, name=_text, body=_text)
def test_any_subject_name_and_body_give_a_template_that_reads_back(subject: str, name: str, body: str) -> None:
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    text = format_template("me@example.test", Draft(to=(f'"{quoted}" <a@b.example>',), subject=subject,
                                                    body=body))
    back = parse_template(text, Path("/"))
    # one line, whatever the subject held: its printable characters kept, in order
    assert not re.search("[\x00-\x1f\x7f-\x9f\u2028\u2029]", back.subject)
    assert back.subject.split() == re.sub("[\x00-\x1f\x7f-\x9f\u2028\u2029]", " ", subject).split()
    lines = re.sub("\r\n?", "\n", body)
    assert back.body == lines + ("" if lines.endswith("\n") else "\n")
    msg, rcpt = build_message(ME, Draft(to=back.to, subject=back.subject, body=back.body))
    assert rcpt == ["a@b.example"]
    assert email.message_from_bytes(wire_bytes(msg, rcpt), policy=default)["Bcc"] is None


@pytest.mark.parametrize("draft", [Draft(to=("a@b.example",), subject=CRLF_WORD),
                                   Draft(to=("a@b.example",), subject="one\ntwo"),
                                   Draft(to=(f"{CRLF_WORD} <a@b.example>",)),
                                   Draft(to=("a@b.example",), bcc=(f"{CRLF_WORD} <c@d.example>",))])
def test_the_engine_refuses_a_line_break_in_a_header(draft: Draft) -> None:
    with pytest.raises(UsageError) as caught:
        build_message(ME, draft)
    assert caught.value.code == Code.LINE_BREAK_IN_HEADER


def test_an_attached_message_is_not_base64(tmp_path: Path) -> None:
    ascii_original = b"From: a@b.example\nSubject: =?utf-8?q?=C3=BC?=\nX-Long: " + b"a " * 60 + b"\n\nbody\n"
    eight_bit = b"From: a@b.example\r\nSubject: \xc3\xbc\r\n\r\nbody \xc3\xbc\r\n"
    for data in (ascii_original, eight_bit):
        (tmp_path / "orig.eml").write_bytes(data)
        msg, rcpt = build_message(ME, Draft(to=("c@d.example",), attachments=(tmp_path / "orig.eml",)))
        wire = wire_bytes(msg, rcpt)
        [part] = email.message_from_bytes(wire, policy=default).iter_attachments()
        assert part.get_content_type() == "message/rfc822"
        assert part["Content-Transfer-Encoding"] == ("7bit" if data.isascii() else "8bit")
        assert str(part.get_content()["Subject"]) == "ü"
        if data.isascii():  # passed through as it is (only its lines made CRLF): a long line is not refolded
            assert data.replace(b"\n", b"\r\n") in wire

"""The renderer: what a person sees of a message, made safe; the stdlib's traps each degrade, never crash."""

from __future__ import annotations

import base64
import email
import email.policy
from collections.abc import Callable
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from deskmail.render import attachments, render, save_attachments, sender_of
from deskmail.render.decode import decode_header, decode_text, header_params
from hostile_mail import CORPUS, HOSTILE_NAMES


def _stdlib(raw: bytes, use: Callable[[Any], object]) -> object:
    """What the stdlib does with ``policy.default`` (the parse and the use both count)."""
    return use(email.message_from_bytes(raw, policy=email.policy.default))


def _mp(parts: list[str], kind: str = "mixed", head: str = "") -> bytes:
    body = "".join(f"--B\r\n{p}\r\n" for p in parts) + "--B--\r\n"
    return (f"From: a@example.test\r\nSubject: t\r\n{head}MIME-Version: 1.0\r\n"
            f"Content-Type: multipart/{kind}; boundary=\"B\"\r\n\r\n{body}").encode()


# --- the known traps of Python 3.11's email package: each one real, each one handled -------------------------

def test_trap_parameter_star_with_nothing_after_it() -> None:
    with pytest.raises(IndexError):
        _stdlib(CORPUS["param-star-empty"], lambda m: m.get_content_type())
    r = render(CORPUS["param-star-empty"])
    assert r.headers["Subject"] == "hostile param-star-empty"
    assert [(a.filename, a.safe_name) for a in r.attachments] == [("", "attachment-1.txt")]
    assert save_attachments(CORPUS["param-star-empty"], Path("/nonexistent-never-written"), which=[]) == []


def test_trap_address_with_stray_punctuation() -> None:
    with pytest.raises(IndexError):
        _stdlib(CORPUS["address-stray-punctuation"], lambda m: str(m["To"]))
    r = render(CORPUS["address-stray-punctuation"])
    assert r.headers["To"] == ',,;; <>, "x" @ , :;' and r.text == "body\n" and not r.warnings


def test_trap_crlf_inside_a_decoded_address() -> None:
    with pytest.raises(ValueError, match="CR or LF"):
        _stdlib(CORPUS["address-crlf-encoded"], lambda m: str(m["From"]))
    r = render(CORPUS["address-crlf-encoded"])
    # Decoded, but kept on one line: no fake "Bcc:" header line appears.
    assert r.headers["From"] == "Evil Bcc: victim@example.test <evil@example.test>"
    assert r.headers["Subject"] == "line break" and r.sender == "evil@example.test"


def test_trap_unknown_charset() -> None:
    with pytest.raises(LookupError):
        _stdlib(CORPUS["unknown-charset"], lambda m: m.get_content())
    assert render(CORPUS["unknown-charset"]).text == "café bytes\n"  # read as UTF-8, the first fallback


def test_trap_multipart_without_a_boundary() -> None:
    with pytest.raises(KeyError):
        _stdlib(CORPUS["multipart-no-boundary"], lambda m: m.get_content())
    r = render(CORPUS["multipart-no-boundary"])
    assert "lost" in r.text and any(w.kind == "malformed" for w in r.warnings)


def test_trap_recursion_when_serialising_deep_nesting(tmp_path: Path) -> None:
    with pytest.raises(RecursionError):
        _stdlib(CORPUS["deep-250"], lambda m: m.as_bytes())
    r = render(CORPUS["deep-250"])
    assert any("nested more than" in w.text for w in r.warnings)
    assert [a.note for a in r.attachments] == ["nested too deeply to open"]
    (saved,) = save_attachments(CORPUS["deep-250"], tmp_path)
    # Saved whole (without the stdlib's recursive generator): the rest of the nesting, down to the text.
    data = saved.read_bytes()
    assert saved.name == "attachment-1.eml" and data.startswith(b"Content-Type: multipart/mixed; boundary=")
    assert b"the bottom" in data and data.count(b"--\r\n") > 200  # every level's closing boundary


def test_trap_get_filename_returns_paths_and_prefers_the_plain_form(tmp_path: Path) -> None:
    names = _stdlib(CORPUS["get-filename-traps"], lambda m: [p.get_filename() for p in m.walk()])
    assert names == [None, None, "../../escape.txt", "/abs/path.txt", "fallback.txt"]
    found = attachments(CORPUS["get-filename-traps"])
    assert [a.filename for a in found] == ["../../escape.txt", "/abs/path.txt", "préféré.txt"]  # RFC 2231 wins
    assert [a.safe_name for a in found] == ["escape.txt", "path.txt", "préféré.txt"]
    saved = save_attachments(CORPUS["get-filename-traps"], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["escape.txt", "path.txt", "préféré.txt"]
    assert all(p.parent == tmp_path for p in saved)


# --- bodies ----------------------------------------------------------------------------------------------

def test_alternative_honours_the_preference_and_the_last_of_a_kind() -> None:
    raw = _mp(["Content-Type: text/plain\r\n\r\nplain words",
               "Content-Type: text/html\r\n\r\n<p>html <b>words</b></p>",
               "Content-Type: application/x-unknown\r\n\r\nnot shown"], "alternative")
    html, plain = render(raw), render(raw, prefer_html=False)
    assert html.is_html and "<b>words</b>" in html.html and html.text == "html words\n"
    assert not plain.is_html and plain.text == "plain words\n" and "plain words" in plain.html
    assert html.attachments == plain.attachments == ()


def test_related_images_are_served_from_the_message_and_nothing_else_is() -> None:
    r = render(CORPUS["html-related-cid"])
    assert r.inline_images == {"logo@example.test": ("image/png", base64.b64decode("iVBORw0KGgoAAAANSUhEUg=="))}
    assert 'src="cid:logo@example.test"' in r.html and "missing@x" not in r.html
    assert r.image("cid:logo%40example.test") == r.inline_images["logo@example.test"]
    assert r.image("https://x.example/") is None and r.attachments == ()


def test_related_with_a_start_parameter_renders_the_named_root() -> None:
    raw = _mp(["Content-Type: text/plain\r\nContent-ID: <first>\r\n\r\nnot the root",
               "Content-Type: text/html\r\nContent-ID: <root>\r\n\r\n<p>the root</p>"], "related")
    raw = raw.replace(b'boundary="B"', b'boundary="B"; start="<root>"')
    assert render(raw).text == "the root\n"


def test_multipart_mixed_shows_every_inline_text_in_order_and_lists_the_rest() -> None:
    raw = _mp(["Content-Type: text/plain\r\n\r\nfirst", "Content-Type: text/plain\r\n\r\n-- \r\nlist footer",
               "Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=",
               "Content-Type: application/pdf; name=r.pdf\r\n\r\n%PDF"])
    r = render(raw)
    assert r.text == "first\n\n-- \nlist footer\n"  # one blank line between parts
    assert [(a.index, a.safe_name, a.content_type, a.size) for a in r.attachments] == [
        (1, "attachment-1.png", "image/png", 8), (2, "r.pdf", "application/pdf", 4)]


def test_charset_fallback_chain() -> None:
    assert decode_text("naïve".encode(), "us-ascii") == ("naïve", False)  # ASCII that is UTF-8
    assert decode_text(b"caf\xe9", "us-ascii") == ("café", True)  # neither: windows-1252
    assert decode_text(b"\x93q\x94 \x80", "iso-8859-1") == ("“q” €", False)  # read as browsers do
    assert decode_text(b"\x81\x8d", None)[0] == "\x81\x8d"  # 1252's holes map to C1 controls, nothing lost
    assert decode_text(b"caf\xc3\xa9", "x-bogus") == ("café", False)
    assert decode_text(b"x\xff\xfey", "utf-8") == ("x\ufffd\ufffdy", True)  # replacement, not blank
    assert decode_text(b"\\u0041", "unicode-escape")[0] == "\\u0041"  # a codec, not a charset
    assert decode_text(b"hi\xe9", "euc-jp")[0].startswith("hi")


def test_transfer_encodings_with_garbage_and_line_endings() -> None:
    assert render(CORPUS["qp-garbage"]).text == "café =ZZ soft = = =4\n"
    assert render(CORPUS["base64-garbage"]).text.startswith("Hello world")
    assert render(CORPUS["nul-bare-cr"]).text == "line\ufffdone\nline two\nthree\nfour\n"
    assert render(CORPUS["lf-only"]).text == "line one\nline two\n"
    assert render(CORPUS["ascii-lie"]).text == "na\xefve caf\xc3\xa9\n".encode("latin-1").decode("cp1252") + ""


def test_headers_encoded_words_malformed_and_raw_8bit() -> None:
    assert decode_header("=?utf-8?q?=E2=82?= =?utf-8?q?=AC?=") == "€"  # a character split across two words
    assert decode_header("=?utf-8?q?a?=  =?utf-8?q?b?= c") == "ab c"
    assert decode_header("pre=?utf-8?q?fix?=post") == "prefixpost"
    assert decode_header("=?utf-8?b?!!!?= x") == "=?utf-8?b?!!!?= x"  # not base64: left as written
    assert decode_header("=?utf-8*en?q?lang?=") == "lang"
    assert decode_header("=?iso-8859-1?q?=E9t=E9?=") == "été"
    assert decode_header("folded\r\n line") == "folded line"
    r = render(CORPUS["raw-8bit-headers"])
    assert r.headers["From"] == "Jörg <j@example.test>" and r.sender == "j@example.test"
    assert r.headers["Subject"].startswith("caf")  # mixed 8-bit: read, not dropped
    m = render(CORPUS["malformed-encoded-words"])
    assert "€" in m.headers["Subject"] and "=?utf-8?b?!!!notbase64?=" in m.headers["Subject"]


def test_rfc2231_parameters() -> None:
    assert header_params("attachment; filename*0*=utf-8''r%C3%A9; filename*1=sum%C3%A9.pdf")["filename"] == \
        "résum%C3%A9.pdf"  # an unencoded continuation stays literal
    assert header_params("a; filename*0*=utf-8''r%C3%A9; filename*1*=sum%C3%A9.pdf")["filename"] == "résumé.pdf"
    assert header_params("a; filename*=iso-8859-1'fr'caf%E9.txt")["filename"] == "café.txt"
    assert header_params('a; name="=?utf-8?q?na=C3=AFve?=.txt"')["name"] == "naïve.txt"
    assert header_params("a; filename*; x*=") == {}
    assert header_params('a; filename="quoted \\"inner\\".txt"')["filename"] == 'quoted "inner".txt'


def test_attached_message_is_readable_and_saveable(tmp_path: Path) -> None:
    r = render(CORPUS["rfc822-attached"])
    assert "Subject: the inner one" in r.text and "inner body" in r.text
    assert [(a.filename, a.content_type) for a in r.attachments] == [("the inner one.eml", "message/rfc822")]
    (saved,) = save_attachments(CORPUS["rfc822-attached"], tmp_path)
    assert b"Subject: the inner one" in saved.read_bytes()


def test_calendar_invitation_is_summarised() -> None:
    r = render(CORPUS["calendar-invite"])
    (event,) = r.events
    assert (event.method, event.summary, event.location, event.organizer) == (
        "REQUEST", "Planning, with cake", "Room 4", "Ann Boss <ann@example.test>")
    assert event.start == "2026-12-10 10:00 (Europe/Berlin)"
    assert "Invitation: Planning, with cake" in r.text and "Where: Room 4" in r.text
    assert [a.safe_name for a in r.attachments] == ["invite.ics"]


def test_winmail_dat_and_unknown_types_are_attachments() -> None:
    r = render(CORPUS["winmail-dat"])
    assert r.text == "see the attachment\n"
    assert [(a.filename, a.content_type, a.size) for a in r.attachments] == [
        ("winmail.dat", "application/ms-tnef", 44)]


def test_format_flowed_is_unwrapped() -> None:
    raw = (b"Content-Type: text/plain; format=flowed\r\n\r\nA long line \r\ncontinued.\r\n>quoted\r\n"
           b" >stuffed\r\n-- \r\nsig\r\n")
    assert render(raw).text == "A long line continued.\n>quoted\n>stuffed\n-- \nsig\n"


def test_text_from_html_shows_link_targets_and_tables() -> None:
    raw = (b"Content-Type: text/html\r\n\r\n<p>See <a href='https://example.test/doc'>the doc</a> or "
           b"<a href='mailto:a@example.test'>a@example.test</a></p><table><tr><td>x</td><td>y</td></tr></table>")
    r = render(raw)
    assert "See [the doc](https://example.test/doc) or a@example.test" in r.text
    assert "x  y" in r.text
    assert r.links == (("the doc", "https://example.test/doc"), ("a@example.test", "mailto:a@example.test"))


def test_sender_of_reads_only_headers() -> None:
    assert sender_of(b"From: =?utf-8?q?J=C3=B6rg?= <J@Example.TEST>\r\n\r\n") == "j@example.test"
    assert sender_of(CORPUS["address-stray-punctuation"]) == ""
    assert sender_of(b"") == ""


# --- the whole corpus through every path the renderer owns -------------------------------------------------

@pytest.mark.parametrize("name", sorted(CORPUS))
def test_every_hostile_message_renders_lists_and_saves(name: str, tmp_path: Path) -> None:
    raw = CORPUS[name]
    for prefer_html in (True, False):
        for allow_remote in (True, False):
            r = render(raw, prefer_html=prefer_html, allow_remote=allow_remote)
            assert isinstance(r.text, str) and isinstance(r.html, str)
            assert not any(w.text.startswith("The message could not be read") for w in r.warnings), r.warnings
            r.to_dict()
    listed = attachments(raw)
    saved = save_attachments(raw, tmp_path / "out")
    assert len(saved) == len(listed)
    assert all(p.parent == tmp_path / "out" and p.is_file() for p in saved)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in saved)


def test_the_corpus_keeps_every_hostile_name_inside_the_folder(tmp_path: Path) -> None:
    raw = CORPUS["hostile-filenames"]
    found = attachments(raw)
    assert len(found) == len(HOSTILE_NAMES)
    first = save_attachments(raw, tmp_path)
    again = save_attachments(raw, tmp_path)  # the same names again: numbered, nothing overwritten
    assert len(set(first + again)) == 2 * len(HOSTILE_NAMES)
    assert sorted(tmp_path.iterdir()) == sorted(first + again)
    assert [p.read_bytes() for p in first] == [f"file {i}".encode() for i in range(len(HOSTILE_NAMES))]
    names = {p.name for p in first}
    assert {"passwd", "shadow", "evil.dll", "x.txt", "x.exe", "bashrc", "_CON", "_nul.txt", "_COM1.tar.gz",
            "a_b_c_d_e_f_g.txt", "invoicegpj.exe", "trailing", "résumé.pdf", "encoded.txt", "📎 real.txt"} <= names
    assert all(len(n.encode()) <= 180 for n in names)


def test_saving_refuses_unknown_numbers_and_follows_no_planted_link(tmp_path: Path) -> None:
    from deskmail.errors import NotFoundError

    raw = CORPUS["get-filename-traps"]
    with pytest.raises(NotFoundError) as exc:
        save_attachments(raw, tmp_path, which=[4])
    assert exc.value.code == "no_such_attachment" and not list(tmp_path.iterdir())
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"keep")
    target = tmp_path / "in"
    target.mkdir()
    (target / "escape.txt").symlink_to(outside)
    (saved,) = save_attachments(raw, target, which=[1])
    assert saved.name == "escape (2).txt" and outside.read_bytes() == b"keep"


def test_a_message_of_many_parts_is_listed_whole() -> None:
    r = render(CORPUS["many-parts-400"])
    assert len(r.attachments) == 400 and r.attachments[-1].filename == "p399.txt"


def test_html_nesting_that_would_stall_the_parser_is_flattened() -> None:
    import time

    start = time.perf_counter()
    raw = b"Content-Type: text/html\r\n\r\n" + b"<div>" * 200_000 + b"deep text"
    r = render(raw)
    assert "deep text" in r.text and time.perf_counter() - start < 20


def test_the_renderer_never_raises_even_on_its_own_bugs(monkeypatch: pytest.MonkeyPatch) -> None:
    from deskmail.render import mime

    def broken(msg: Message, prefer_html: bool) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(mime, "walk", broken)
    r = render(b"Subject: x\r\n\r\nthe raw text")
    assert "the raw text" in r.text and r.warnings[0].kind == "malformed"


def test_a_named_text_shown_inline_is_also_listed() -> None:
    raw = _mp(["Content-Type: text/plain\r\n\r\nbody",
               "Content-Type: text/plain; name=notes.txt\r\nContent-Disposition: inline\r\n\r\nthe notes"])
    r = render(raw)
    assert r.text == "body\n\nthe notes\n" and [a.filename for a in r.attachments] == ["notes.txt"]

"""Property tests: the decoders are total, the file-name sanitizer can never escape, saving never overwrites."""

from __future__ import annotations

import base64
import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deskmail.render import attachments, render, save_attachments
from deskmail.render.decode import (
    b64decode,
    b64size,
    decode_header,
    decode_text,
    header_params,
    raw_header_text,
    split_header,
)
from deskmail.render.files import _RESERVED, MAX_BYTES, create_exclusive, safe_filename

# Text with the characters that matter here more often than chance would give them.
_NASTY = st.sampled_from(["/", "\\", "..", ".", " ", ":", "\x00", "\u202e", "\u2066", "\u200f", "\r", "\n", "C:",
                          "\\\\?\\", "CON", "nul", "COM1", "LPT9", "*", "?", '"', "<", ">", "|", "é", "📎", "\ufeff",
                          "=?utf-8?q?x?=", "%2E%2E%2F"])
NAMES = st.lists(st.one_of(_NASTY, st.text(max_size=20)), max_size=30).map("".join)
CHARSETS = st.one_of(st.sampled_from(["utf-8", "us-ascii", "iso-8859-1", "windows-1252", "koi8-r", "shift_jis",
                                      "utf-16", "utf-7", "gb2312", "x-unknown", "rot13", "base64", "unicode-escape",
                                      "idna", "", " UTF-8 ", '"utf-8"']), st.text(max_size=12), st.none())
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


@given(NAMES, st.sampled_from(["application/pdf", "image/png", "text/plain", "x/y", "", "message/rfc822"]),
       st.integers(1, 500))
def test_safe_filename_is_one_harmless_component(name: str, ctype: str, index: int) -> None:
    safe = safe_filename(name, ctype, index)
    assert safe and "/" not in safe and "\\" not in safe and not _INVISIBLE.search(safe)
    assert not re.search(r'[<>:"|?*]', safe)
    assert not safe.startswith((".", " ")) and not safe.endswith((".", " "))
    assert safe.split(".", 1)[0].rstrip(" ").upper() not in _RESERVED
    assert len(safe.encode("utf-8")) <= MAX_BYTES
    assert (Path("/target") / safe).parent == Path("/target")
    assert safe_filename(safe, ctype, index) == safe  # already safe: unchanged


@given(st.integers(1, 400).map(lambda n: "ab" * n), st.sampled_from(["pdf", "tar.gz", "docx", ""]))
def test_long_names_keep_their_extension(stem: str, ext: str) -> None:
    safe = safe_filename(f"{stem}.{ext}" if ext else stem)
    if ext:
        assert safe.endswith(f".{ext}") and safe.startswith(stem[:10])
    else:
        assert safe == stem[:MAX_BYTES]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(NAMES, min_size=1, max_size=8))
def test_saving_any_names_stays_inside_and_never_overwrites(names: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "dir"
        root.mkdir()
        written = [create_exclusive(root, safe_filename(n, index=i), str(i).encode()) for i, n in enumerate(names)]
        assert len(set(written)) == len(names)
        assert sorted(root.iterdir()) == sorted(written)  # nothing elsewhere, nothing twice
        assert [p.read_bytes() for p in written] == [str(i).encode() for i in range(len(names))]
        assert {p.name for p in Path(tmp).iterdir()} == {"dir"}


@given(st.text(max_size=200))
def test_decode_header_is_total(value: str) -> None:
    assert isinstance(decode_header(value), str)


@given(st.lists(st.tuples(st.sampled_from(["utf-8", "iso-8859-1", "koi8-r", "bogus", "utf-8*en"]),
                          st.sampled_from("bBqQ"), st.text(max_size=20)), max_size=6))
def test_encoded_words_round_trip(words: list[tuple[str, str, str]]) -> None:
    encoded, expected = [], []
    for charset, kind, text in words:
        codec = {"bogus": "utf-8", "utf-8*en": "utf-8"}.get(charset, charset)
        try:
            data = text.encode(codec)
        except UnicodeEncodeError:
            continue
        if kind in "bB":
            payload = base64.b64encode(data).decode()
        else:
            payload = "".join(chr(b) if chr(b).isascii() and chr(b).isalnum() else f"={b:02X}" for b in data)
        encoded.append(f"=?{charset}?{kind}?{payload}?=")
        expected.append(decode_text(data, codec)[0])
    joined = decode_header(" ".join(encoded))
    # Adjacent words of one charset are decoded together (the text may differ only where words of one
    # charset split a character); here every word is whole, so the result is the concatenation.
    assert joined == "".join(expected) or all(c == "utf-8" for c, _, _ in words)


@given(st.binary(max_size=300), CHARSETS)
def test_decode_text_is_total_and_never_blank(data: bytes, label: str | None) -> None:
    text, _ = decode_text(data, label)
    assert isinstance(text, str) and (text != "" or data == b"")


@given(st.binary(max_size=200))
def test_raw_8bit_header_text(data: bytes) -> None:
    text = raw_header_text(data.decode("ascii", "surrogateescape"))
    assert not any("\udc80" <= c <= "\udcff" for c in text)


@given(st.text(max_size=200))
def test_parameters_are_total(value: str) -> None:
    params = header_params(value)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in params.items())
    split_header(value)


@given(st.binary(max_size=300))
def test_base64_with_garbage(data: bytes) -> None:
    assert b64size(data) == len(b64decode(data))


@given(st.binary(max_size=200), st.lists(st.tuples(st.integers(0, 400), st.sampled_from([b"!", b"\r\n", b"*", b" "]))))
def test_base64_survives_inserted_junk(data: bytes, junk: list[tuple[int, bytes]]) -> None:
    encoded = bytearray(base64.encodebytes(data))
    for at, piece in junk:
        encoded[at:at] = piece
    assert b64decode(bytes(encoded).replace(b"=", b"")) == data


_HEADER = st.sampled_from(["Content-Type: multipart/mixed; boundary=", "Content-Type: text/html; charset=",
                           "Content-Transfer-Encoding: ", "Content-Disposition: attachment; filename*=",
                           "Subject: =?utf-8?", "From: ", "Content-Type: message/rfc822", "--", "\r\n", "\n", "\r",
                           "\x00", "<script>", "<img src=http://x>", "=?", "?=", "\xff"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(_HEADER, st.text(max_size=15)), max_size=40).map("".join), st.booleans())
def test_render_is_total_on_mime_shaped_noise(text: str, prefer_html: bool) -> None:
    raw = text.encode("utf-8", "surrogateescape")
    r = render(raw, prefer_html=prefer_html)
    assert not any(w.text.startswith("The message could not be read") for w in r.warnings)
    assert "<script" not in r.html.lower()
    attachments(raw)
    with tempfile.TemporaryDirectory() as tmp:
        saved = save_attachments(raw, Path(tmp))
        assert all(p.parent == Path(tmp).resolve() for p in saved)

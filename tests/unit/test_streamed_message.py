"""Messages written a chunk at a time: attachments streamed into the MIME message (outbox/compose.py
write_message) and the DATA command's dot-stuffing (protocol/smtp.py DotStuffer), each checked against
the straightforward in-memory way of making the same bytes."""

from __future__ import annotations

import io
import os
import re
import smtplib
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import SMTP, SMTPUTF8, default
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deskmail.model import Account, Protocol, Security, ServerSettings
from deskmail.outbox import compose
from deskmail.outbox.compose import Draft, build_message, wire_bytes, wire_policy
from deskmail.protocol.smtp import DotStuffer

ME = Account("me", "me@example.org", "Me Myself",
             ServerSettings(Protocol.IMAP, "imap.example.org", 993, Security.SSL, "me@example.org"),
             ServerSettings(Protocol.SMTP, "smtp.example.org", 587, Security.STARTTLS, "me@example.org"))


def in_memory(msg: EmailMessage, files: list[tuple[Path, bytes]], addresses: list[str]) -> bytes:
    """The same message made as before streaming: every file's bytes read into the message."""
    ref = EmailMessage()
    for name, value in msg.items():
        if name.lower() not in ("content-type", "mime-version", "content-transfer-encoding"):
            ref[name] = value
    ref.set_content("the text\n")
    for path, data in files:
        ctype = "application/pdf" if path.suffix == ".pdf" else "text/plain"
        maintype, _, subtype = ctype.partition("/")
        ref.add_attachment(data, maintype=maintype, subtype=subtype, filename=path.name)
    boundary = msg.get_boundary()
    assert boundary is not None
    ref.set_boundary(boundary)
    return ref.as_bytes(policy=wire_policy(addresses))


C = compose._CHUNK
SIZES = [0, 1, 2, 56, 57, 58, 113, 114, 115, C - 1, C, C + 1, 2 * C + 2]


@pytest.mark.parametrize("size", SIZES)
def test_a_streamed_attachment_is_byte_for_byte_what_the_email_package_writes(tmp_path: Path, size: int) -> None:
    """Chunk boundaries (multiples of 57 bytes) and the base64 padding of the last line change nothing; the
    RFC 2231 filename of a non-ASCII name is the package's own."""
    data = os.urandom(size)
    f = tmp_path / "Grüße, ein recht langer Dateiname mit Umlauten äöü — für die Faltung.pdf"
    f.write_bytes(data)
    dots = tmp_path / "dots.txt"
    dots.write_bytes(b".\r\n..two\r\n.\r\nlast")
    draft = Draft(to=["a@b.example"], subject="files", body="the text", attachments=(f, dots))
    msg, rcpt = build_message(ME, draft)
    assert len(msg.as_bytes()) < 3000  # the built message does not hold the file: a marker line stands for it
    wire = wire_bytes(msg, ["me@example.org", *rcpt], draft.attachments)
    assert wire == in_memory(msg, [(f, data), (dots, dots.read_bytes())], ["me@example.org", *rcpt])
    parsed = BytesParser(policy=default).parsebytes(wire)
    assert isinstance(parsed, EmailMessage)
    got = [(p.get_filename(), p.get_content()) for p in parsed.iter_attachments()]
    assert got == [(f.name, data), ("dots.txt", ".\r\n..two\r\n.\r\nlast")]
    assert compose._MARK not in wire


def test_international_addresses_write_the_same_as_the_package_too(tmp_path: Path) -> None:
    f = tmp_path / "data.pdf"
    f.write_bytes(os.urandom(1000))
    draft = Draft(to=["jürgen@bücher.example"], subject="Grüße", body="the text", attachments=(f,))
    msg, rcpt = build_message(ME, draft)
    addresses = ["me@example.org", *rcpt]
    assert wire_policy(addresses) is SMTPUTF8 and wire_policy(["a@b.example"]) is SMTP
    assert wire_bytes(msg, addresses, draft.attachments) == in_memory(msg, [(f, f.read_bytes())], addresses)


def test_an_attachment_gone_before_the_message_is_written_is_named(tmp_path: Path) -> None:
    from deskmail.codes import Code
    from deskmail.errors import UsageError

    f = tmp_path / "going.pdf"
    f.write_bytes(b"x")
    draft = Draft(to=["a@b.example"], attachments=(f,))
    msg, rcpt = build_message(ME, draft)
    f.unlink()
    with pytest.raises(UsageError) as caught:
        wire_bytes(msg, rcpt, draft.attachments)
    assert caught.value.code == Code.ATTACHMENT_MISSING and "going.pdf" in str(caught.value)


def reference_data(data: bytes) -> bytes:
    """DATA as smtplib makes it from a whole message in memory: CRLF lines, dots doubled, the final dot."""
    crlf = re.sub(rb"\r\n|\n|\r(?!\n)", b"\r\n", data)
    quoted = smtplib._quote_periods(crlf)  # type: ignore[attr-defined]
    if not quoted.endswith(b"\r\n"):
        quoted += b"\r\n"
    return quoted + b".\r\n"


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([b".", b"\r", b"\n", b"\r\n", b"a", b"..", b"\xff", b"x.y"]), max_size=40),
       st.lists(st.integers(min_value=0, max_value=12), max_size=20))
def test_dot_stuffing_a_chunk_at_a_time_equals_the_whole_message_at_once(pieces: list[bytes],
                                                                          cuts: list[int]) -> None:
    data = b"".join(pieces)
    stuffer = DotStuffer()
    out, at = [], 0
    for cut in cuts:  # chunks of any size, empty ones too, cut anywhere (between CR and LF, before a dot)
        out.append(stuffer.feed(data[at:at + cut]))
        at += cut
    out.append(stuffer.feed(data[at:]))
    out.append(stuffer.end())
    assert b"".join(out) == reference_data(data)


def test_dot_stuffing_edges() -> None:
    def whole(*chunks: bytes) -> bytes:
        s = DotStuffer()
        return b"".join(s.feed(c) for c in chunks) + s.end()

    assert whole() == b"\r\n.\r\n"
    assert whole(b".") == b"..\r\n.\r\n"
    assert whole(b"a\r", b"\n.b") == b"a\r\n..b\r\n.\r\n"
    assert whole(b"a\r") == b"a\r\n.\r\n"
    assert whole(b"a\r\n") == b"a\r\n.\r\n"
    assert whole(b"a\r\n", b".") == b"a\r\n..\r\n.\r\n"


def test_a_file_read_a_chunk_at_a_time_gives_what_one_read_gives() -> None:
    class Trickle(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            return super().read(min(size or 1, 7) if size and size > 0 else size)

    data = os.urandom(1000)
    assert compose._read_full(Trickle(data), 570) == data[:570]
    assert compose._read_full(Trickle(data[:100]), 570) == data[:100]

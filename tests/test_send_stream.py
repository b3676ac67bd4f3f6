"""Attachments streamed end to end (docs/outbox.md, "Large attachments"): from the file into the outbox file,
over SMTP (the sandbox's real submission server, STARTTLS + AUTH, delivering into Dovecot) and into Sent
(IMAP APPEND of a literal read from the outbox file), byte for byte, in bounded memory."""

from __future__ import annotations

import email
import imaplib
import json
import os
import ssl
import subprocess
import sys
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest

from deskmail.app import Deskmail
from deskmail.config import Paths
from deskmail.model import Account, PasswordSource, ServerSettings
from deskmail.outbox import compose
from deskmail.outbox.compose import Draft

pytestmark = pytest.mark.servers

CHUNK = compose._CHUNK  # what is read of a file at a time


def make_app(root: Path, sandbox: Any, user: Any) -> Deskmail:
    app = Deskmail(Paths(root / "config", root / "data"))
    app.add_account(Account(
        "acct", user.email, "Stream Tester",
        incoming=ServerSettings("imap", sandbox.host, sandbox.imaps_port, "ssl", user.email),
        outgoing=ServerSettings("smtp", sandbox.host, sandbox.submission_port, "starttls", user.email),
        password=PasswordSource("env", env="DM_STREAM_PW"), ca_file=str(sandbox.ca_file)))
    return app


def fetch(sandbox: Any, user: Any, folder: str, subject: str) -> EmailMessage:
    """The message with ``subject`` in ``folder``, exactly as the IMAP server holds it."""
    ctx = ssl.create_default_context(cafile=str(sandbox.ca_file))
    with imaplib.IMAP4_SSL(sandbox.host, sandbox.imaps_port, ssl_context=ctx) as imap:
        imap.login(user.email, user.password)
        imap.select(folder, readonly=True)
        _, found = imap.uid("SEARCH", "SUBJECT", f'"{subject}"')
        [uid] = found[0].split()
        _, data = imap.uid("FETCH", uid, "(BODY.PEEK[])")
        raw = data[0][1]
        assert isinstance(raw, bytes)
    msg = email.message_from_bytes(raw, policy=default)
    assert isinstance(msg, EmailMessage)
    return msg


def attachments(msg: EmailMessage) -> dict[str, bytes]:
    out = {}
    for part in msg.iter_attachments():
        assert isinstance(part, EmailMessage)
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        out[str(part.get_filename())] = payload
    return out


def test_attachments_arrive_and_are_kept_in_sent_byte_for_byte(tmp_path: Path, sandbox: Any, mail_user: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Random bytes of sizes around the 57-byte line and the chunk (0, ≡ 0/1/2 mod 57, a chunk ± 1), a text
    file whose lines start with dots (CRLF and LF), a non-ASCII file name; a body whose lines start with dots
    (dot-stuffed on the wire). A Bcc recipient names the copy in Sent (the APPEND's literal is the Bcc line,
    then the outbox file)."""
    monkeypatch.setenv("DM_STREAM_PW", mail_user.password)
    files: dict[str, bytes] = {}
    for size in (0, 1, 2, 57, 58, 59, 57 * 300, 57 * 300 + 1, 57 * 300 + 2, CHUNK - 1, CHUNK, CHUNK + 1,
                 2 * CHUNK + 2):
        files[f"random-{size}.bin"] = os.urandom(size)
    files["dots.txt"] = b".\r\n..\r\n.a line\r\n...\n.\n.end"
    files["Übersicht für März.pdf"] = os.urandom(5000)
    paths = []
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)
    app = make_app(tmp_path, sandbox, mail_user)
    body = ".\n..\n.starts with a dot\nend\n."
    sent = app.send(Draft(to=[mail_user.email], bcc=["hidden@stream.example"], subject="streamed files",
                          body=body, attachments=tuple(paths)))
    assert sent.state == "sent", sent.error
    assert sent.sent_folder == "Sent"
    outbox_size = sent.entry.size
    assert outbox_size > 3 * CHUNK  # (the whole message went through the outbox file)
    for folder in ("INBOX", "Sent"):
        msg = fetch(sandbox, mail_user, folder, "streamed files")
        assert attachments(msg) == files, folder
        text = msg.get_body(("plain",))
        assert isinstance(text, EmailMessage)
        assert text.get_content().replace("\r\n", "\n") == body + "\n", folder
    assert fetch(sandbox, mail_user, "Sent", "streamed files")["Bcc"] == "hidden@stream.example"
    assert fetch(sandbox, mail_user, "INBOX", "streamed files")["Bcc"] is None


_PEAK_SCRIPT = r"""
import json, sys
from pathlib import Path
from deskmail.app import Deskmail
from deskmail.config import Paths
from deskmail.outbox import compose
from deskmail.outbox.compose import Draft

def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

root, to, attachment = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
app = Deskmail(Paths(root / "config", root / "data"))
first = app.send(Draft(to=[to], subject="warm-up", body="imports and connections' code loaded"))
assert first.state == "sent", first.error
Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from what is resident now
before = status("VmRSS")
sent = app.send(Draft(to=[to], subject="large attachment", body="see the file", attachments=(attachment,)))
print(json.dumps({"state": sent.state, "folder": sent.sent_folder, "size": sent.entry.size,
                  "before": before, "peak": status("VmHWM")}))
"""


def test_a_large_attachment_goes_out_and_into_sent_in_bounded_memory(tmp_path: Path, sandbox: Any,
                                                                     mail_user: Any) -> None:
    """A 30 MB file (a 40 MB message, under the server's SIZE of 50 MB) sent in a process of its own: its
    peak resident memory grows by far less than the file (read whole, the file would be held several times
    over: bytes, base64 text, the message, the dot-stuffed copy, the copy for Sent)."""
    size = 30 * 1024 * 1024
    big = tmp_path / "big.bin"
    with open(big, "wb") as fh:
        for _ in range(size // (1024 * 1024)):
            fh.write(os.urandom(1024 * 1024))
    make_app(tmp_path, sandbox, mail_user)
    env = {**os.environ, "DM_STREAM_PW": mail_user.password}
    run = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(tmp_path), mail_user.email, str(big)],
                         capture_output=True, text=True, env=env, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert (seen["state"], seen["folder"]) == ("sent", "Sent")
    assert seen["size"] > size * 4 // 3
    growth = seen["peak"] - seen["before"]  # about 3 MB here; reading the file whole made it about 200 MB
    assert growth < size // 5, f"peak memory grew by {growth / 1e6:.1f} MB for a {size / 1e6:.0f} MB file"
    for folder in ("INBOX", "Sent"):
        assert attachments(fetch(sandbox, mail_user, folder, "large attachment")) == {"big.bin": big.read_bytes()}


def test_a_draft_with_files_is_saved_streamed_and_resumes_byte_for_byte(tmp_path: Path, sandbox: Any,
                                                                       mail_user: Any,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A draft is written out a chunk at a time too (then APPENDed to Drafts from that file)."""
    monkeypatch.setenv("DM_STREAM_PW", mail_user.password)
    files = {f"part-{size}.bin": os.urandom(size) for size in (0, 58, CHUNK + 1)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    app = make_app(tmp_path, sandbox, mail_user)
    info = app.save_draft(Draft(to=[mail_user.email], subject="draft with files", body=".dot\n",
                                attachments=tuple(tmp_path / n for n in files)))
    assert (info.subject, info.where) == ("draft with files", "Drafts")
    assert attachments(fetch(sandbox, mail_user, "Drafts", "draft with files")) == files
    _account, resumed = app.open_draft(info.ref)
    assert {Path(p).name: Path(p).read_bytes() for p in resumed.attachments} == files

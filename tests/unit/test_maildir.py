from __future__ import annotations

import hashlib
import itertools
import mailbox
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deskmail.render import safe_filename
from deskmail.store import Store, maildir
from deskmail.store.maildir import Maildir, flags_to_info, folder_name, folder_path, info_to_flags, server_key

RAW = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n" \
      b"Message-ID: <1@x>\r\nDate: Mon, 02 Jan 2023 10:00:00 +0000\r\n\r\nbody\r\n"


def test_add_is_readable_by_stdlib_maildir(tmp_path: Path) -> None:
    md = Maildir(tmp_path / "m")
    md.ensure()
    name = md.add([RAW], uidvalidity=7, uid="42", flags=("\\Seen", "\\Flagged"))
    assert name.endswith(":2,FS")
    assert server_key(name) == (7, "42")
    assert not list((tmp_path / "m" / "tmp").iterdir())
    box = mailbox.Maildir(tmp_path / "m", create=False)
    (msg,) = list(box)
    assert msg["Message-ID"] == "<1@x>" and set(msg.get_flags()) == {"F", "S"}


def test_pop_uidl_survives_in_name(tmp_path: Path) -> None:
    md = Maildir(tmp_path / "m")
    md.ensure()
    name = md.add([RAW], uidvalidity=0, uid="abc/:,=xyz", flags=(), pop=True)
    assert server_key(name) == (0, "abc/:,=xyz")


def test_publish_batch_is_durable_and_keyed(tmp_path: Path) -> None:
    md = Maildir(tmp_path / "m")
    md.ensure()
    batch = []
    for uid in (3, 4):
        p = md.begin()
        p.write(RAW)
        batch.append((p, 9, str(uid), ("\\Seen",), False))
    names = md.publish(batch)
    assert [server_key(n) for n in names] == [(9, "3"), (9, "4")]
    assert all(n.endswith(":2,S") for n in names)
    assert not list((tmp_path / "m" / "tmp").iterdir())
    assert (tmp_path / "m" / "cur" / names[0]).read_bytes() == RAW


def test_flags_round_trip() -> None:
    flags = ("\\Seen", "\\Answered", "\\Draft", "\\Deleted", "\\Flagged")
    assert flags_to_info(flags) == "DFRST"
    assert set(info_to_flags("x:2,DFRST")) == set(flags)
    assert server_key("1234.foreign.host:2,S") is None


def test_recover_adopts_orphan_and_drops_duplicate(tmp_path: Path) -> None:
    store = Store(tmp_path)
    folder = store.ensure_folder("acct", "INBOX")
    md = store.folder_maildir(folder)
    md.ensure()
    first = md.add([RAW], uidvalidity=5, uid="1", flags=())
    # Simulate a crash after the file was durable but before the index commit.
    assert store.recover(folder) == 1
    assert set(store.rows(folder.id)) == {"1"}
    second = md.add([RAW], uidvalidity=5, uid="1", flags=())  # an interrupted re-download
    assert store.recover(folder) == 0
    assert sorted(md.files()) == [first] and second not in md.files()
    (row,) = store.list_messages("acct")
    assert row.subject == "Grüße" and row.sender == "a@example.com"


def test_recover_finds_one_orphan_among_many_and_leaves_renamed_and_foreign_files(tmp_path: Path) -> None:
    store = Store(tmp_path)
    folder = store.ensure_folder("acct", "INBOX")
    md = store.folder_maildir(folder)
    md.ensure()
    for uid in range(1, 301):
        md.add([RAW], uidvalidity=5, uid=str(uid), flags=())
    assert store.recover(folder) == 300
    assert store.recover(folder) == 0  # index and cur/ agree: the fast path
    orphan = md.add([RAW], uidvalidity=5, uid="301", flags=())
    (renamed_row,) = [r for r in store.db.execute("SELECT filename FROM messages WHERE uid='7'")]
    md.set_flags(renamed_row[0], ("\\Seen",))  # another Maildir client marked it read
    (tmp_path / "mail" / "acct" / "cur" / "1234.foreign.host:2,S").write_bytes(RAW)
    (tmp_path / "mail" / "acct" / "new" / "5678.new.host").write_bytes(RAW)  # moved to cur/, foreign too
    assert store.recover(folder) == 1
    assert {r[0] for r in store.db.execute("SELECT uid FROM messages")} == {str(u) for u in range(1, 302)}
    assert orphan in {r[0] for r in store.db.execute("SELECT filename FROM messages")}
    assert len(md.files()) == 303 and "5678.new.host:2," in md.files()
    assert store.recover(folder) == 0


@given(st.text(max_size=300))
def test_safe_filename_never_escapes(name: str) -> None:
    safe = safe_filename(name)
    assert safe and "/" not in safe and "\\" not in safe and "\x00" not in safe
    assert safe not in (".", "..")
    assert (Path("/target") / safe).parent == Path("/target")


def test_recover_leaves_messages_the_server_does_not_know(tmp_path: Path) -> None:
    store = Store(tmp_path)
    folder = store.ensure_folder("acct", "INBOX")
    md = store.folder_maildir(folder)
    md.ensure()
    ours = md.add([RAW], uidvalidity=5, uid="1", flags=())
    (md.root / "cur" / "1700000000.R1.mutt:2,S").write_bytes(RAW)  # saved by mutt: no identity
    other = md.add([RAW], uidvalidity=9, uid="1", flags=())  # moved here from another folder
    (md.root / "new" / "1700000001.R2.mutt").write_bytes(RAW)  # delivered into new/
    adopted, unknown = store.recover_unknown(folder, {5})
    assert adopted == 1 and set(store.rows(folder.id)) == {"1"} and store.rows(folder.id)["1"].filename == ours
    assert sorted(unknown) == sorted(["1700000000.R1.mutt:2,S", other, "1700000001.R2.mutt:2,"])
    # A file claiming an indexed UID with other content is not a re-download leftover: kept, unknown.
    clash = md.add([RAW + b"more"], uidvalidity=5, uid="1", flags=())
    assert clash in store.recover_unknown(folder, {5})[1] and md.path(clash).exists()


def test_clean_tmp_spares_other_programs_files(tmp_path: Path) -> None:
    import os
    import time

    md = Maildir(tmp_path / "m")
    md.ensure()
    mine = md.begin()
    mine.write(RAW)
    mine.close()
    theirs = tmp_path / "m" / "tmp" / "1700000000.R1.mutt"
    theirs.write_bytes(b"half a mess")  # mutt or an MDA is still writing it
    stale = tmp_path / "m" / "tmp" / "1600000000.R2.mutt"
    stale.write_bytes(b"left over")
    os.utime(stale, (time.time() - 40 * 3600,) * 2)  # older than Maildir's 36 hours
    assert md.clean_tmp() == 2
    assert [p.name for p in (tmp_path / "m" / "tmp").iterdir()] == [theirs.name]


def test_upload_reads_only_message_files_with_crlf(tmp_path: Path) -> None:
    md = Maildir(tmp_path / "m")
    md.ensure()
    cur = tmp_path / "m" / "cur"
    (cur / "a:2,").write_bytes(b"Subject: x\n\nline\r\n")
    (cur / ".a.swp").write_bytes(b"Subject: x\n\n")
    (cur / "empty:2,").write_bytes(b"\n")
    (tmp_path / "secret").write_bytes(b"Subject: x\n\n")
    (cur / "link:2,").symlink_to(tmp_path / "secret")
    upload = md.prepare_upload("a:2,")
    assert upload is not None
    with upload.open() as fh:
        assert fh.read() == b"Subject: x\r\n\r\nline\r\n"
    wire = b"Subject: x\r\n\r\nline\r\n"
    assert upload.size == len(wire) and upload.sha256 == hashlib.sha256(wire).digest()
    upload.discard()
    assert md.prepare_upload(".a.swp") is md.prepare_upload("empty:2,") is md.prepare_upload("link:2,") is None
    assert not list((tmp_path / "m" / "tmp").iterdir()), "no copy left behind"
    name = md.adopt("a:2,", 7, 3, ("\\Seen",))
    assert name == "a,V=7,U=3:2,S" and server_key(name) == (7, "3")
    moved = md.adopt(md.add([RAW], uidvalidity=9, uid="4", flags=()), 7, 5, ())
    assert server_key(moved) == (7, "5") and ",V=9" not in moved  # another folder's identity replaced



_LEVEL = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1).filter(
    lambda t: t.isprintable() and "/" not in t)


@given(st.lists(_LEVEL, min_size=1, max_size=4))
def test_folder_name_inverts_folder_path(levels: list[str]) -> None:
    name = "/".join(levels)
    if name.upper() == "INBOX":
        return
    path = folder_path(name, "/")
    assert folder_name(path, "/") == name
    assert folder_name(path, ".") == (name.replace("/", ".") if not any("." in lv for lv in levels) else None)


def test_folder_name_of_directories_other_programs_make() -> None:
    assert folder_name(".Projects", "/") == "Projects"
    assert folder_name(".Ärger.2024", "/") == "Ärger/2024"  # mutt: plain UTF-8, "." between levels
    assert folder_name(".a%2Eb", "/") == "a.b"
    for not_a_folder in ("Projects", ".", "..", ".a..b", ".%", ".a.%", ".%FF", ".bell\x07", ".inbox", ".a%2Fb"):
        assert folder_name(not_a_folder, "/") is None, not_a_folder


@given(st.binary(min_size=1, max_size=3000), st.integers(min_value=1, max_value=64))
def test_upload_copy_is_the_crlf_form_whatever_the_chunking(tmp_path_factory: pytest.TempPathFactory,
                                                            body: bytes, chunk: int) -> None:
    """Streamed in chunks (a CR at a chunk's end may begin a CRLF), the copy equals the whole-file rewrite."""
    md = Maildir(tmp_path_factory.mktemp("m"))
    md.ensure()
    raw = b"Subject: x\n\n" + body
    (md.root / "cur" / "m:2,").write_bytes(raw)
    want = re.sub(rb"\r?\n", b"\r\n", raw)
    saved = maildir.UPLOAD_CHUNK
    maildir.UPLOAD_CHUNK = chunk
    try:
        upload = md.prepare_upload("m:2,")
    finally:
        maildir.UPLOAD_CHUNK = saved
    assert upload is not None
    with upload.open() as fh:
        assert fh.read() == want
    assert (upload.size, upload.sha256, upload.head) == (len(want), hashlib.sha256(want).digest(), want[:256 * 1024])
    upload.discard()


@given(st.lists(st.integers(min_value=0, max_value=120), max_size=12), st.sampled_from([b"\r\n", b"\n"]),
       st.sampled_from([b"", b"\r\n", b"\n", b"\r\n\r\n", b"\n\n"]))
def test_pending_message_keeps_only_the_header_block(tmp_path_factory: pytest.TempPathFactory, cuts: list[int],
                                                      eol: bytes, body_start: bytes) -> None:
    """However the stream is cut, the head kept for the index is the header block, not the body with it."""
    md = Maildir(tmp_path_factory.mktemp("m"))
    md.ensure()
    header = b"Subject: hello" + eol + b"Message-ID: <h@x>" + eol + eol
    raw = header + body_start + b"body line" + eol + b"y" * 5000
    pending = md.begin()
    edges = [0, *sorted(set(cuts)), len(raw)]
    for start, stop in itertools.pairwise(edges):
        pending.write(raw[start:stop])
    pending.close()
    assert bytes(pending.head) == header and pending.size == len(raw)
    pending.discard()


def test_pending_message_head_without_blank_line_stops_at_the_cap(tmp_path: Path) -> None:
    md = Maildir(tmp_path)
    md.ensure()
    raw = b"X-Long: " + b"a" * (maildir.HEAD_BYTES + 1000) + b"\r\n\r\nbody"
    pending = md.begin()
    for i in range(0, len(raw), 7000):
        pending.write(raw[i:i + 7000])
    pending.close()
    assert bytes(pending.head) == raw[:maildir.HEAD_BYTES] and pending.size == len(raw)
    pending.discard()


def test_unbuffered_pending_message_survives_short_writes(tmp_path: Path) -> None:
    """An unbuffered file may take part of a write (a signal, a nearly full disk): the rest is written."""
    md = Maildir(tmp_path)
    md.ensure()
    pending = md.begin(buffered=False)
    real = pending._fh

    class Short:
        def write(self, data: bytes | memoryview) -> int | None:
            return real.write(data[:7])

        def close(self) -> None:
            real.close()

    pending._fh = Short()  # type: ignore[assignment]
    raw = b"Subject: s\r\n\r\n" + bytes(range(256)) * 3
    assert pending.write(raw) == len(raw)
    pending.close()
    assert Path(pending.path).read_bytes() == raw and bytes(pending.head) == b"Subject: s\r\n\r\n"
    pending.discard()

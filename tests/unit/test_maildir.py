from __future__ import annotations

import mailbox
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from deskmail.render import safe_filename
from deskmail.store import Store
from deskmail.store.maildir import Maildir, flags_to_info, info_to_flags, server_key

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


@given(st.text(max_size=300))
def test_safe_filename_never_escapes(name: str) -> None:
    safe = safe_filename(name)
    assert safe and "/" not in safe and "\\" not in safe and "\x00" not in safe
    assert safe not in (".", "..")
    assert (Path("/target") / safe).parent == Path("/target")

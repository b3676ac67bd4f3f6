"""Paged message listing (sorts, filters, keyset and offset paging) and reading files renamed under a reader."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deskmail.errors import NotFoundError
from deskmail.model import MessageSummary
from deskmail.store import SORTS, Store
from deskmail.store.maildir import flags_to_info

FOLDERS = [("a", "INBOX"), ("a", "Sent"), ("b", "INBOX")]


def head(subject: str, sender: str, date: str) -> bytes:
    return f"From: {sender}\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: <{subject}@x>\r\n\r\n".encode()


def add(store: Store, account: str, folder: str, uid: int, *, subject: str = "s", sender: str = "x@example.test",
        date: str = "Mon, 02 Jan 2023 10:00:00 +0000", flags: tuple[str, ...] = (), body: bytes = b"body\r\n") -> int:
    f = store.ensure_folder(account, folder)
    md = store.folder_maildir(f)
    md.ensure()
    name = f"{uid}.M1P1Q{uid}.host,V=1,U={uid}:2,{flags_to_info(flags)}"
    data = head(subject, sender, date) + body
    md.path(name).write_bytes(data)
    return store.insert_message(md, f.id, 1, str(uid), name, flags, head(subject, sender, date), len(data))


message = st.tuples(
    st.sampled_from(range(len(FOLDERS))),
    st.sampled_from(["Mon, 02 Jan 2023 10:00:00 +0000", "Tue, 03 Jan 2023 10:00:00 +0000", "",
                     "Sun, 01 Jan 2023 09:00:00 +0000"]),
    st.sampled_from(["alpha", "Beta", "beta", "gamma", ""]),
    st.sampled_from(["Ann <ann@x>", "bob@x", "ann@x", ""]),
    st.sampled_from([(), ("\\Seen",), ("\\Flagged",), ("\\Flagged", "\\Seen")]),
)


def expected(rows: list[MessageSummary], sort: str) -> list[int]:
    if sort == "date":
        return [r.id for r in sorted(rows, key=lambda r: (r.date, r.id), reverse=True)]
    if sort == "date_asc":
        return [r.id for r in sorted(rows, key=lambda r: (r.date, r.id))]
    field = "sender" if sort == "sender" else "subject"
    # SQLite's NOCASE folds ASCII letters only, as .lower() does for these ASCII samples.
    return [r.id for r in sorted(rows, key=lambda r: (getattr(r, field).lower(), r.id))]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=st.lists(message, max_size=30), sort=st.sampled_from(sorted(SORTS)), page=st.integers(1, 7),
       where=st.sampled_from([(None, None), ("a", None), ("a", "INBOX"), (None, "INBOX"), ("b", "Sent")]),
       unread=st.booleans(), flagged=st.booleans())
def test_paging_visits_every_match_once_in_order(tmp_path_factory: pytest.TempPathFactory,
                                                 messages: list[tuple[int, str, str, str, tuple[str, ...]]],
                                                 sort: str, page: int, where: tuple[str | None, str | None],
                                                 unread: bool, flagged: bool) -> None:
    store = Store.open_writer(tmp_path_factory.mktemp("store"))
    with store.transaction():
        for account, folder in FOLDERS:
            store.ensure_folder(account, folder)
        for uid, (fi, date, subject, sender, flags) in enumerate(messages, 1):
            add(store, *FOLDERS[fi], uid, subject=subject, sender=sender, date=date, flags=flags)
    account, folder = where
    everything = store.list_messages(limit=1000)
    assert len(everything) == len(messages)
    matching = [r for r in everything
                if (account is None or r.account == account) and (folder is None or r.folder == folder)
                and (not unread or "\\Seen" not in r.flags.split())
                and (not flagged or "\\Flagged" in r.flags.split())]
    want = expected(matching, sort)
    filters = {"unread_only": unread, "flagged_only": flagged}
    assert store.count_messages(account, folder, **filters) == len(want)
    got_keyset: list[int] = []
    got_offset: list[int] = []
    last: MessageSummary | None = None
    while True:
        rows = store.list_messages(account, folder, page, sort=sort, after=last, **filters)
        got_keyset += [r.id for r in rows]
        got_offset += [r.id for r in store.list_messages(account, folder, page, sort=sort,
                                                          offset=len(got_offset), **filters)]
        if len(rows) < page:
            break
        last = rows[-1]
    assert got_keyset == want
    assert got_offset == want
    store.close()


def test_unknown_sort_and_folder(tmp_path: Path) -> None:
    store = Store.open_writer(tmp_path)
    with pytest.raises(ValueError):
        store.list_messages(sort="size")
    assert store.list_messages("a", "Nope") == [] and store.count_messages("a", "Nope") == 0
    assert store.folder_counts() == {}
    with store.transaction():
        add(store, "a", "INBOX", 1)
        add(store, "a", "INBOX", 2)
    (inbox,) = store.folders("a")
    assert store.folder_counts() == {inbox.id: 2}
    store.close()


def test_the_old_call_still_lists_newest_first(tmp_path: Path) -> None:
    store = Store.open_writer(tmp_path)
    with store.transaction():
        old = add(store, "a", "INBOX", 1, date="Sun, 01 Jan 2023 09:00:00 +0000")
        new = add(store, "a", "INBOX", 2, date="Tue, 03 Jan 2023 10:00:00 +0000")
    assert [r.id for r in store.list_messages("a", "INBOX", 10)] == [new, old]
    assert [r.id for r in store.list_messages(None, None, 1)] == [new]
    store.close()


# --- a file renamed between the row's lookup and the open -------------------------------------------------


@pytest.fixture
def one(tmp_path: Path) -> tuple[Store, int]:
    store = Store.open_writer(tmp_path)
    with store.transaction():
        mid = add(store, "a", "INBOX", 1, flags=("\\Seen",), body=b"the body\r\n")
    return store, mid


def test_a_flag_rename_not_yet_in_the_index_is_followed(one: tuple[Store, int]) -> None:
    store, mid = one
    old = Path(store.get(mid).path)
    new = old.with_name(old.name.partition(":")[0] + ":2,FS")
    os.rename(old, new)  # the writer renamed the file; its row update is not committed yet
    assert store.message_path(mid) == new
    with store.open_message(mid) as fh:
        assert fh.read().endswith(b"the body\r\n")
    reader = Store.open_reader(store.data_dir)
    with reader.open_message(mid) as fh:
        assert b"the body" in fh.read()
    reader.close()


def test_a_rename_between_lookup_and_open_is_followed(one: tuple[Store, int], monkeypatch: pytest.MonkeyPatch) -> None:
    store, mid = one
    real_get = Store.get
    renamed: list[Path] = []

    def get_then_rename(self: Store, message_id: int) -> MessageSummary:
        summary = real_get(self, message_id)
        if not renamed:  # the flag change lands right after the reader read the row
            old = Path(summary.path)
            renamed.append(old.with_name(old.name.partition(":")[0] + ":2,RS"))
            os.rename(old, renamed[0])
        return summary

    monkeypatch.setattr(Store, "get", get_then_rename)
    with store.open_message(mid) as fh:
        assert fh.read().endswith(b"the body\r\n")
    assert renamed and not Path(real_get(store, mid).path).exists()  # the row still had the old name


def test_a_file_moved_to_new_is_found_and_a_vanished_one_is_not_found(one: tuple[Store, int]) -> None:
    store, mid = one
    path = Path(store.get(mid).path)
    moved = path.parent.parent / "new" / path.name.partition(":")[0]
    os.rename(path, moved)  # another Maildir program put it back into new/
    assert store.message_path(mid) == moved
    moved.unlink()
    with pytest.raises(NotFoundError) as err:
        store.open_message(mid)
    assert err.value.code == "message_file_missing"
    with pytest.raises(NotFoundError):
        store.message_path(mid)
    with store.transaction():
        store.delete_row(mid)
    with pytest.raises(NotFoundError):  # the row itself is gone: the ordinary "no such message"
        store.open_message(mid)

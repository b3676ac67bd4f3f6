"""POP3 sync's SQL selections: new messages and messages to delete, from the TEMP listing table."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deskmail.store import Store
from deskmail.store.pop3 import count_new, doomed_messages, load_listing, new_messages

DAY = 86400


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path)
    s.ensure_folder("acct", "INBOX")
    return s


def seen(store: Store, *uidls: str, account: str = "acct", age_days: float = 0) -> None:
    when = int(time.time() - age_days * DAY)
    with store.transaction():
        store.db.executemany("INSERT INTO pop_seen (account, uidl, first_seen) VALUES (?,?,?)",
                             [(account, u, when) for u in uidls])


def folder_id(store: Store) -> int:
    folder = store.folder("acct", "INBOX")
    assert folder is not None
    return folder.id


def partial(store: Store, uidl: str, name: str) -> int:
    with store.transaction():
        cur = store.db.execute(
            "INSERT INTO messages (folder_id, uidvalidity, uid, filename, partial) VALUES (?,0,?,?,1)",
            (folder_id(store), uidl, name))
    return int(cur.lastrowid or 0)


def stored(store: Store, *uidls: str, age_days: float = 0, partial_copy: bool = False) -> None:
    """Downloaded whole (or headers only) and indexed, as the sync commits it: pop_seen + message row."""
    seen(store, *uidls, age_days=age_days)
    with store.transaction():
        store.db.executemany(
            "INSERT INTO messages (folder_id, uidvalidity, uid, filename, size, partial) VALUES (?,0,?,?,?,?)",
            [(folder_id(store), u, f"{u}-file:2,", 100, int(partial_copy)) for u in uidls])


def doomed(store: Store, *, leave: bool = True, days: int = 0) -> list[int]:
    return [d.number for d in doomed_messages(store, "acct", folder_id(store), leave=leave, days=days,
                                              now=time.time())]


def test_new_is_the_listing_minus_pop_seen_in_number_order(store: Store) -> None:
    load_listing(store, iter([(3, "c"), (1, "a"), (2, "b"), (4, "d"), (5, "e")]))
    seen(store, "b", "d", "zz-deleted-on-the-server")
    seen(store, "a", account="other")  # another account's history does not count
    got = list(new_messages(store, "acct", folder_id(store), page=2))  # pages of 2: keyset paging crosses pages
    assert [(m.number, m.uidl) for m in got] == [(1, "a"), (3, "c"), (5, "e")]
    assert count_new(store, "acct") == 3


def test_writes_between_pages_do_not_disturb_the_paging(store: Store) -> None:
    load_listing(store, ((n, f"u{n}") for n in range(1, 8)))
    got = []
    for m in new_messages(store, "acct", folder_id(store), page=2):
        got.append(m.number)
        seen(store, m.uidl)  # what the download commits as it goes
    assert got == list(range(1, 8))
    assert list(new_messages(store, "acct", folder_id(store))) == []


def test_partial_copies_are_new_but_not_for_headers_only(store: Store) -> None:
    load_listing(store, [(1, "a"), (2, "b")])
    row = partial(store, "b", "b-file:2,")
    got = list(new_messages(store, "acct", folder_id(store)))
    assert [(m.number, m.partial_id, m.partial_name) for m in got] == [(1, None, None), (2, row, "b-file:2,")]
    assert [m.number for m in new_messages(store, "acct", folder_id(store), headers_only=True)] == [1]


def test_load_listing_replaces_the_previous_listing(store: Store) -> None:
    load_listing(store, [(1, "a"), (2, "b")])
    load_listing(store, [(1, "b"), (1, "c")])  # a number listed twice keeps its last identity
    assert [(m.number, m.uidl) for m in new_messages(store, "acct", folder_id(store))] == [(1, "c")]


def test_a_failing_listing_leaves_no_half_table(store: Store) -> None:
    def broken() -> Iterator[tuple[int, str]]:
        yield (1, "a")
        raise ConnectionResetError("dropped")

    with pytest.raises(ConnectionResetError):
        load_listing(store, broken())
    assert store.db.execute("SELECT name FROM sqlite_temp_master WHERE name='pop_listing'").fetchone() is None


def test_leave_on_server_by_default_deletes_nothing(store: Store) -> None:
    load_listing(store, [(1, "a"), (2, "b")])
    stored(store, "a", "b", age_days=400)
    assert doomed(store) == []


def test_leave_on_server_false_deletes_only_what_is_stored_here(store: Store) -> None:
    load_listing(store, [(1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, "e")])
    stored(store, "c", "a")  # "b" was never stored: it must stay on the server
    seen(store, "b", account="other")
    seen(store, "d")  # downloaded once, but no copy is indexed here (deleted here, or the index lost it)
    stored(store, "e", partial_copy=True)  # only its headers are here
    assert doomed(store, leave=False) == [1, 3]
    got = list(doomed_messages(store, "acct", folder_id(store), leave=False, days=0, now=time.time()))
    assert [(d.filename, d.size) for d in got] == [("a-file:2,", 100), ("c-file:2,", 100)]  # checked before DELE


def test_delete_after_days_counts_from_the_download(store: Store) -> None:
    load_listing(store, [(1, "old"), (2, "new"), (3, "edge"), (4, "not-here")])
    stored(store, "old", age_days=10)
    stored(store, "new", age_days=0.5)
    stored(store, "edge", age_days=6.9)
    assert doomed(store, days=7) == [1]
    assert doomed(store, days=1) == [1, 3]


def test_pending_delete_ops_are_deleted_even_when_leaving_on_server(store: Store) -> None:
    load_listing(store, [(1, "a"), (2, "b"), (3, "c")])
    stored(store, "a", "b")
    seen(store, "c")  # deleted here by the user: no copy left, the journaled op asks for the DELE
    with store.transaction():
        store.add_op("acct", "delete", "INBOX", 0, "c")
        store.add_op("acct", "delete", "INBOX", 0, "gone-from-server")
        store.add_op("other", "delete", "INBOX", 0, "a")
    assert doomed(store) == [3]
    assert [d.filename for d in doomed_messages(store, "acct", folder_id(store), leave=True, days=0,
                                                 now=time.time())] == [""]  # nothing here to check


def test_a_uidl_listed_twice_is_never_deleted(store: Store) -> None:
    load_listing(store, [(1, "a"), (2, "dup"), (3, "dup"), (4, "b")])
    stored(store, "a", "dup", "b")
    with store.transaction():
        store.add_op("acct", "delete", "INBOX", 0, "dup")
    assert doomed(store, leave=False) == [1, 4]

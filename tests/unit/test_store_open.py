"""Opening the store: readers write nothing, one migration step, busy is never taken for damage, change tokens."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from deskmail.errors import StoreError, StoreLocked
from deskmail.store import INDEX_FILE, SCHEMA_VERSION, Store

NEW_INDEXES = ("messages_by_any_date", "messages_by_sender", "messages_by_subject", "messages_unread",
               "messages_flagged")


def raw(data: Path) -> sqlite3.Connection:
    return sqlite3.connect(data / INDEX_FILE, isolation_level=None)


def make_schema_1(data: Path) -> None:
    """An index as deskmail wrote it before schema 2: no version in user_version, no paging indexes."""
    with Store.open_writer(data) as store, store.transaction():
        store.ensure_folder("a", "INBOX")
    db = raw(data)
    for name in NEW_INDEXES:
        db.execute(f"DROP INDEX {name}")
    db.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    db.execute("PRAGMA user_version=0")
    db.close()


def set_aside(data: Path) -> list[str]:
    return [p.name for p in data.iterdir() if ".damaged-" in p.name]


@contextmanager
def holder(data: Path, *sql: str, seconds: float = 3.0) -> Iterator[None]:
    """Another process that runs ``sql`` on the index and keeps it (and its locks) for ``seconds``."""
    code = (
        "import sqlite3, sys, time\n"
        f"db = sqlite3.connect({str(data / INDEX_FILE)!r}, isolation_level=None)\n"
        f"for s in {list(sql)!r}:\n"
        "    db.execute(s)\n"
        "print('holding', flush=True)\n"
        f"time.sleep({seconds})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
        yield
    finally:
        proc.kill()
        proc.wait()


def test_a_reader_creates_nothing_where_there_is_no_index(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with pytest.raises(StoreError) as err:
        Store.open_reader(data)
    assert err.value.code == "store_not_ready" and "sync" in str(err.value) and "deskmail " not in str(err.value)
    assert not data.exists()
    data.mkdir()
    with pytest.raises(StoreError):
        Store.open_reader(data)
    assert list(data.iterdir()) == []


def test_a_reader_writes_nothing_and_takes_no_lock(tmp_path: Path) -> None:
    writer = Store.open_writer(tmp_path)
    writer.lock()  # a sync is running
    with writer.transaction():
        writer.ensure_folder("a", "INBOX")
    before = sorted(os.listdir(tmp_path))
    with Store.open_reader(tmp_path) as reader:
        assert [f.name for f in reader.folders("a")] == ["INBOX"]
        assert reader.list_messages() == [] and reader.count_messages() == 0
        with pytest.raises(sqlite3.OperationalError):  # read-only connection, not just good manners
            reader.db.execute("DELETE FROM folders")
    assert sorted(os.listdir(tmp_path)) == before
    writer.close()


def test_an_old_schema_is_upgraded_by_the_writer_in_one_step_and_refused_by_readers(tmp_path: Path) -> None:
    make_schema_1(tmp_path)
    with pytest.raises(StoreError) as err:
        Store.open_reader(tmp_path)
    assert err.value.code == "store_old_schema" and "needs upgrading: a sync does that" in str(err.value)
    assert raw(tmp_path).execute("PRAGMA user_version").fetchone()[0] == 0  # the reader changed nothing
    with Store.open_writer(tmp_path) as writer:
        assert [f.name for f in writer.folders("a")] == ["INBOX"]  # data kept
    db = raw(tmp_path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert set(NEW_INDEXES) <= names
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    with Store.open_reader(tmp_path) as reader:
        assert reader.folder("a", "INBOX") is not None


def test_a_newer_schema_is_refused_by_both(tmp_path: Path) -> None:
    Store.open_writer(tmp_path).close()
    raw(tmp_path).execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    for opener in (Store.open_reader, Store.open_writer):
        with pytest.raises(StoreError) as err:
            opener(tmp_path)
        assert err.value.code == "store_new_schema"
    assert set_aside(tmp_path) == []


def test_a_long_write_transaction_elsewhere_is_waited_for_never_taken_for_damage(tmp_path: Path) -> None:
    with Store.open_writer(tmp_path) as store, store.transaction():
        store.ensure_folder("a", "INBOX")
    with holder(tmp_path, "BEGIN IMMEDIATE", "INSERT INTO journal (at, account, folder, event) VALUES (1,'a','','x')"):
        # WAL: readers and a writer's open go on; the write itself waits, then says "busy".
        with Store.open_reader(tmp_path, busy_timeout=0.3) as reader:
            assert reader.folder("a", "INBOX") is not None
        writer = Store.open_writer(tmp_path, busy_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(StoreLocked) as err, writer.transaction():
            writer.ensure_folder("a", "Sent")
        assert time.monotonic() - started >= 0.25
        assert err.value.code == "store_locked" and "nothing is damaged" in str(err.value)
        writer.close()
    assert set_aside(tmp_path) == [] and writer.rebuilt_from is None


def test_an_exclusive_lock_elsewhere_is_busy_for_readers_and_writers_not_damage(tmp_path: Path) -> None:
    with Store.open_writer(tmp_path) as store, store.transaction():
        store.ensure_folder("a", "INBOX")
    # A program in exclusive locking mode shuts every other connection out, readers too.
    with holder(tmp_path, "PRAGMA locking_mode=EXCLUSIVE", "BEGIN EXCLUSIVE",
                "INSERT INTO journal (at, account, folder, event) VALUES (1,'a','','x')"):
        for opener in (Store.open_reader, Store.open_writer):
            with pytest.raises(StoreLocked) as err:
                opener(tmp_path, busy_timeout=0.3)
            assert err.value.code == "store_locked"
    assert set_aside(tmp_path) == []
    with Store.open_writer(tmp_path) as store:  # and all is well afterwards
        assert store.rebuilt_from is None and store.folder("a", "INBOX") is not None


def test_an_index_needing_migration_while_another_writes_waits_then_says_busy(tmp_path: Path) -> None:
    make_schema_1(tmp_path)
    with (holder(tmp_path, "BEGIN IMMEDIATE", "INSERT INTO journal (at, account, folder, event) VALUES (1,'a','','x')"),
          pytest.raises(StoreLocked)):
        Store.open_writer(tmp_path, busy_timeout=0.3)
    assert set_aside(tmp_path) == []
    assert raw(tmp_path).execute("PRAGMA user_version").fetchone()[0] == 0  # nothing half-done


def test_only_real_damage_sets_the_index_aside_and_only_for_a_writer(tmp_path: Path) -> None:
    with Store.open_writer(tmp_path) as store, store.transaction():
        store.ensure_folder("a", "INBOX")
    with open(tmp_path / INDEX_FILE, "r+b") as fh:
        fh.write(os.urandom(4096))
    for suffix in ("-wal", "-shm"):
        Path(str(tmp_path / INDEX_FILE) + suffix).unlink(missing_ok=True)
    with pytest.raises(StoreError) as err:
        Store.open_reader(tmp_path)
    assert err.value.code == "store_damaged" and set_aside(tmp_path) == []
    with Store.open_writer(tmp_path) as store:
        assert store.rebuilt_from is not None and store.folders("a") == []
    assert set_aside(tmp_path) == [store.rebuilt_from.name]


def test_an_unreadable_index_is_an_error_not_damage(tmp_path: Path) -> None:
    Store.open_writer(tmp_path).close()
    (tmp_path / INDEX_FILE).unlink()
    (tmp_path / INDEX_FILE).mkdir()  # "unable to open": an I/O-class error
    with pytest.raises(StoreError) as err:
        Store.open_writer(tmp_path)
    assert err.value.code == "store_io"
    assert set_aside(tmp_path) == []


def test_change_token_moves_with_every_commit_and_only_then(tmp_path: Path) -> None:
    writer = Store.open_writer(tmp_path)
    with writer.transaction():
        writer.ensure_folder("a", "INBOX")
    reader = Store.open_reader(tmp_path)
    token, own = reader.change_token(), writer.change_token()
    reader.list_messages()
    reader.count_messages(account="a")
    assert not reader.changed_since(token)
    with writer.transaction():
        writer.ensure_folder("a", "Sent")
    assert reader.changed_since(token)
    assert writer.changed_since(own)  # its own commit counts too
    token, own = reader.change_token(), writer.change_token()
    # ... and another process's
    subprocess.run([sys.executable, "-c", (
        "import sqlite3\n"
        f"db = sqlite3.connect({str(tmp_path / INDEX_FILE)!r}, isolation_level=None)\n"
        "db.execute(\"UPDATE folders SET uidnext = 7 WHERE name = 'Sent'\")\n")], check=True)
    assert reader.changed_since(token) and writer.changed_since(own)
    token = reader.change_token()
    assert not reader.changed_since(token)
    reader.close()
    writer.close()


def test_a_snapshot_reads_one_state(tmp_path: Path) -> None:
    writer = Store.open_writer(tmp_path)
    with writer.transaction():
        writer.ensure_folder("a", "INBOX")
    reader = Store.open_reader(tmp_path)
    with reader.snapshot():
        assert len(reader.folders("a")) == 1
        with writer.transaction():
            writer.ensure_folder("a", "Sent")
        assert len(reader.folders("a")) == 1  # still the state the block began with
    assert len(reader.folders("a")) == 2
    reader.close()
    writer.close()

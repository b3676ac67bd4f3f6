"""The local store: Maildir files plus an SQLite index (WAL).

Order of a write, so that a crash anywhere loses nothing and duplicates
nothing: message file durable in ``cur/`` (see :mod:`.maildir`) -> index row
committed. The index row *is* the sync state ("this UID is here"), so sync
state only moves forward once the message is on disk. A file that made it to
``cur/`` but whose row did not is adopted by :meth:`Store.recover` from the
identity in its name.

Concurrency contract
--------------------
- **One writer process at a time**: whoever writes (a sync, flag/move/delete)
  opens with :meth:`Store.open_writer` (= ``Store(data_dir)``) and takes
  :meth:`Store.lock`, an exclusive ``flock`` on ``data_dir/lock``. Only the
  writer creates the index or upgrades its schema (:meth:`Store.migrate`, one
  transaction, run by the writer's open when ``PRAGMA user_version`` is not
  :data:`SCHEMA_VERSION`).
- **Any number of readers**, in other threads or processes, at any time, even
  during a sync: :meth:`Store.open_reader` (= ``Store(data_dir, readonly=True)``)
  creates nothing, migrates nothing, takes no lock and cannot write (SQLite's
  own ``-wal``/``-shm`` companions aside, which any WAL connection may make). It
  raises :class:`StoreError` when there is no index yet or its schema is not
  this version's. WAL gives a reader a consistent snapshot per statement, or
  per :meth:`Store.snapshot` block (a page and its count from the same state).
  One ``Store`` object belongs to one thread (sqlite3 connections are not
  shared); a GUI opens one reader per thread.
- **Busy is not damage**: a locked/busy index waits ``busy_timeout`` seconds,
  then raises :class:`StoreLocked`; I/O errors raise :class:`StoreError`. Only
  SQLITE_CORRUPT / SQLITE_NOTADB at the writer's open set the index aside
  (``rebuilt_from``) and start a new one, re-adopted from the files' names.
- **Change signal**: :meth:`Store.change_token` is cheap (``PRAGMA
  data_version`` plus this connection's own changes); a reader polls it and
  re-reads only when it differs from the token of its last read.
- **Files move under readers**: a flag change renames ``cur/U:2,S`` to
  ``cur/U:2,FS`` before its row is updated; :meth:`Store.open_message` and
  :meth:`Store.message_path` re-read the row and look the unique name ``U`` up
  in ``cur/`` and ``new/`` instead of failing.
- No SQL outside this package: the sync engines call methods here and in
  :mod:`.pop3` (tests/unit/test_sql_in_store.py keeps it so).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from deskmail.codes import Code
from deskmail.errors import NotFoundError, StoreError, StoreLocked
from deskmail.model import MessageSummary, SearchHit, ThreadSummary
from deskmail.store import threads
from deskmail.store.headers import header_fields
from deskmail.store.maildir import Maildir, folder_path, info_to_flags, server_key

if TYPE_CHECKING:
    from typing import Any, BinaryIO

    from deskmail.store import search

# PRAGMA user_version of an index this code reads and writes. 0: made before versions were kept
# there (schema 1, upgraded by migrate()). 2: the indexes of list_messages()'s sorts. 3: PERMANENTFLAGS.
# 4: full-text search and threads (the FTS5 table ``search``, messages.attachments, messages.thread,
# thread_keys; see .search and .threads).
SCHEMA_VERSION = 4
TEMP_CACHE_KIB = 256
WRITER_BUSY_TIMEOUT = 30.0  # seconds a writer waits for another's transaction before StoreLocked
READER_BUSY_TIMEOUT = 5.0  # readers only wait in rare cases (WAL recovery, an exclusive-mode writer)
INDEX_FILE = "index.sqlite3"
FIND_ATTEMPTS = 3  # open_message(): re-reads of a row whose file was renamed meanwhile

# sqlite3 primary result codes (exc.sqlite_errorcode & 0xFF)
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_FULL = 5, 6, 13
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS folders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL,
    name TEXT NOT NULL,                       -- the server's name, decoded (e.g. "Sent", "Work/Ärger")
    delimiter TEXT NOT NULL DEFAULT '/',
    path TEXT NOT NULL DEFAULT '',            -- Maildir++ folder below the account root ('' = INBOX)
    special_use TEXT NOT NULL DEFAULT '',     -- \\Sent, \\Drafts, \\Trash, \\Junk, \\Archive
    subscribed INTEGER NOT NULL DEFAULT 1,
    sync INTEGER NOT NULL DEFAULT 1,          -- the user's choice of folders to sync
    uidvalidity INTEGER NOT NULL DEFAULT 0,
    uidnext INTEGER NOT NULL DEFAULT 0,
    highestmodseq INTEGER NOT NULL DEFAULT 0,
    local_mtime INTEGER NOT NULL DEFAULT 0,   -- cur/+new/ mtimes at the last scan: unchanged = nothing to scan
                                              -- (<= 0: scan next time, a change made here sets a new negative)
    permanent_flags TEXT,                     -- the last SELECT's PERMANENTFLAGS (NULL: none announced, all kept)
    UNIQUE (account, name)
) STRICT;
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    uidvalidity INTEGER NOT NULL DEFAULT 0,
    uid TEXT NOT NULL,                        -- IMAP UID, or POP3 UIDL
    filename TEXT NOT NULL,
    flags TEXT NOT NULL DEFAULT '',           -- current local flags (mirror the file name)
    synced_flags TEXT NOT NULL DEFAULT '',    -- flags both sides agreed on at the last sync
    size INTEGER NOT NULL DEFAULT 0,
    date TEXT NOT NULL DEFAULT '',
    sender TEXT NOT NULL DEFAULT '',
    recipients TEXT NOT NULL DEFAULT '',
    subject TEXT NOT NULL DEFAULT '',
    message_id TEXT NOT NULL DEFAULT '',
    added INTEGER NOT NULL DEFAULT 0,         -- unix time the message was stored (POP3 delete-after-days)
    partial INTEGER NOT NULL DEFAULT 0,       -- 1: only the header block is here (POP3 headers-first)
    attachments INTEGER NOT NULL DEFAULT 0,   -- attachment names found when indexed (has:attachment)
    thread INTEGER,                           -- conversation (.threads), NULL until indexed
    UNIQUE (folder_id, uidvalidity, uid)
) STRICT;
CREATE INDEX IF NOT EXISTS messages_by_date ON messages (folder_id, date);
CREATE INDEX IF NOT EXISTS messages_by_msgid ON messages (message_id);
-- rows_for(): the changed UIDs of a folder, whatever their UIDVALIDITY (the UNIQUE index needs it first).
CREATE INDEX IF NOT EXISTS messages_by_uid ON messages (folder_id, uid);
-- list_messages(): a page of any sort in order without sorting the folder (every index ends with the id).
CREATE INDEX IF NOT EXISTS messages_by_any_date ON messages (date);
CREATE INDEX IF NOT EXISTS messages_by_sender ON messages (folder_id, sender COLLATE NOCASE);
CREATE INDEX IF NOT EXISTS messages_by_subject ON messages (folder_id, subject COLLATE NOCASE);
-- "unread only" and "flagged only" (few rows of many): the WHERE terms must be these expressions exactly.
CREATE INDEX IF NOT EXISTS messages_unread ON messages (folder_id, date) WHERE instr(flags, '\\Seen') = 0;
CREATE INDEX IF NOT EXISTS messages_flagged ON messages (folder_id, date) WHERE instr(flags, '\\Flagged') > 0;
-- User intent that must reach the server (delete, move, expunge), journaled before it is sent.
-- 'append' (a local-only message being uploaded): uid = the folder's UIDNEXT before the APPEND (the
-- new UID is at least that), target = the file's Maildir unique name.
CREATE TABLE IF NOT EXISTS ops (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL,
    kind TEXT NOT NULL,                       -- 'delete' | 'move' | 'append'
    folder TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL,
    uid TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    message_id TEXT NOT NULL DEFAULT '',
    created INTEGER NOT NULL
) STRICT;
-- POP3: every UIDL ever downloaded (so a message deleted here is not downloaded again).
CREATE TABLE IF NOT EXISTS pop_seen (
    account TEXT NOT NULL,
    uidl TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    PRIMARY KEY (account, uidl)
) STRICT;
-- Every notable decision of a sync (conflicts, UIDVALIDITY changes, quarantines), for the user.
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    account TEXT NOT NULL,
    folder TEXT NOT NULL,
    event TEXT NOT NULL
) STRICT;
"""

_FOLDER_COLS = (
    "id, account, name, delimiter, path, special_use, subscribed, sync, uidvalidity, uidnext, highestmodseq,"
    " local_mtime, permanent_flags"
)
_ROW_COLS = "id, uidvalidity, uid, filename, flags, synced_flags, message_id, size"


def _fingerprint(names: Iterable[str]) -> tuple[int, int]:
    """Count and sum of the names' 64-bit keyed hashes (SipHash, random key per process): two
    different sets of names give the same pair by chance about once in 2**64 comparisons."""
    count = total = 0
    for name in names:
        count += 1
        total += hash(name)
    return count, total & 0xFFFF_FFFF_FFFF_FFFF


@dataclass(frozen=True, slots=True)
class Folder:
    """A folder's index row."""

    id: int
    account: str
    name: str
    delimiter: str
    path: str
    special_use: str
    subscribed: int
    sync: int
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    local_mtime: int
    permanent_flags: str | None = None  # the server's PERMANENTFLAGS, space-separated; None: none announced

    def keeps(self, flag: str) -> bool:
        """Whether the server keeps ``flag`` on this folder's messages (RFC 3501 7.1: a keyword only if
        PERMANENTFLAGS has ``\\*`` or names it; without PERMANENTFLAGS, every flag)."""
        if self.permanent_flags is None or flag.startswith("\\"):
            return True
        kept = self.permanent_flags.split()
        return "\\*" in kept or flag in kept


@dataclass(frozen=True, slots=True)
class Row:
    """One message of a folder as the index knows it: its UID, file name and flags."""

    id: int
    uidvalidity: int
    uid: str
    filename: str
    flags: str
    synced_flags: str
    message_id: str
    size: int


@dataclass(frozen=True, slots=True)
class Op:
    """A journaled user action (delete, move, upload) not yet confirmed by the server."""

    id: int
    kind: str
    folder: str
    uidvalidity: int
    uid: str
    target: str
    message_id: str


@dataclass(frozen=True, slots=True)
class HeaderInfo:
    """The few headers the index keeps for listing a message."""

    date: str
    sender: str
    recipients: str
    subject: str
    message_id: str


def read_header_info(path: Path | None, head: bytes | None = None) -> HeaderInfo:
    """Parse only the header block (bounded read of ``path`` unless ``head`` is given), never the whole body."""
    if head is None:
        assert path is not None, "read_header_info needs a path or a head"
        buf = bytearray()
        with open(path, "rb") as fh:
            for line in fh:
                buf += line
                if line in (b"\r\n", b"\n") or len(buf) > 256 * 1024:
                    break
        head = bytes(buf)
    fields = header_fields(head)
    return HeaderInfo(
        date=fields.get("date", ""),
        sender=fields.get("sender", ""),
        recipients=fields.get("recipients", ""),
        subject=fields.get("subject", ""),
        message_id=fields.get("message_id", ""),
    )


def inbox_state(data_dir: Path, account: str) -> tuple[int, int] | None:
    """INBOX's (UIDVALIDITY, HIGHESTMODSEQ) in the index, read without the store lock; None if unknown.

    For asking the server early (deskmail.cli.fastpath): one query on a read-only connection, no
    schema check, never an error. The engine builds its SELECT from the row it reads under the lock.
    """
    path = data_dir / INDEX_FILE
    if not path.exists():
        return None
    try:
        # as_uri() percent-encodes: a folder named "a#b" or "50%" must not change the URI's meaning.
        db = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True, timeout=1)
        try:
            row = db.execute("SELECT uidvalidity, highestmodseq FROM folders WHERE account=? AND name='INBOX'",
                             (account,)).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return (int(row[0]), int(row[1])) if row else None


def _primary_code(exc: sqlite3.Error) -> int:
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def is_damage(exc: sqlite3.Error) -> bool:
    """A real integrity failure of the file; never "busy", "locked", I/O or permission errors."""
    return _primary_code(exc) in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def store_error(exc: sqlite3.Error, path: Path, doing: str) -> StoreError:
    """The StoreError for an SQLite failure that is not damage: busy (wait, then this), full, I/O, ..."""
    code = _primary_code(exc)
    if code in (_SQLITE_BUSY, _SQLITE_LOCKED) or "locked" in str(exc):
        return StoreLocked(
            f"The mail index {path} is busy: {doing} waited and gave up ({exc})",
            "another deskmail process or thread held a long write transaction (a sync writing many messages)",
            "try again in a moment; nothing is damaged",
            code=Code.STORE_LOCKED,
        )
    full = code == _SQLITE_FULL or "full" in str(exc)
    return StoreError(
        f"The mail index {path} could not be {doing} ({exc})",
        "the disk is full" if full else "an I/O or permission error (the file is read-only or the disk failing)",
        "free some disk space and try again; nothing was removed from the server" if full
        else f"check the disk and the permissions of {path.parent}",
        code=Code.STORE_FULL if full else Code.STORE_IO,
    )


def _no_tables(db: sqlite3.Connection) -> bool:
    try:
        return db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is None
    except sqlite3.Error:
        return False


def _newer_schema(path: Path, version: int) -> StoreError:
    return StoreError(
        f"The mail index {path} was written by a newer version of deskmail (schema {version})",
        f"this version reads schema {SCHEMA_VERSION} only",
        "use the newer version of deskmail, or move the data folder aside to start afresh",
        code=Code.STORE_NEW_SCHEMA,
    )


# list_messages() sorts: name -> (keyset key, comparison for "after", ORDER BY). Text sorts ignore
# case, as the indexes messages_by_sender/_subject do; the id breaks ties, so paging never skips a row.
SORTS: dict[str, tuple[str, str, str]] = {
    "date": ("m.date", "<", "m.date DESC, m.id DESC"),
    "date_asc": ("m.date", ">", "m.date ASC, m.id ASC"),
    "sender": ("m.sender COLLATE NOCASE", ">", "m.sender COLLATE NOCASE ASC, m.id ASC"),
    "subject": ("m.subject COLLATE NOCASE", ">", "m.subject COLLATE NOCASE ASC, m.id ASC"),
}
_SORT_FIELDS = {"date": "date", "date_asc": "date", "sender": "sender", "subject": "subject"}


class Store:
    """The index and Maildir of one data directory; see the module docstring for who may open it how."""

    def __init__(self, data_dir: Path, *, readonly: bool = False, busy_timeout: float | None = None) -> None:
        self.data_dir = data_dir
        self.mail_dir = data_dir / "mail"
        self.readonly = readonly
        self._lock_fd: int | None = None
        self.rebuilt_from: Path | None = None
        path = data_dir / INDEX_FILE
        if readonly:
            self.db = self._open_reader(path, READER_BUSY_TIMEOUT if busy_timeout is None else busy_timeout)
            return
        timeout = WRITER_BUSY_TIMEOUT if busy_timeout is None else busy_timeout
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self.db = self._open_writer(path, timeout)
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise store_error(exc, path, "opened") from exc
            # A damaged index is not mail: set it aside and start a new one. The next sync re-adopts every
            # message file by the (UIDVALIDITY, UID) in its name, so nothing is downloaded again (F-15).
            # Only damage does this: a busy or unreadable index is a StoreError above, never set aside.
            aside = path.with_name(f"{INDEX_FILE}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
            for suffix in ("", "-wal", "-shm"):
                old = Path(str(path) + suffix)
                if old.exists():
                    old.rename(Path(str(aside) + suffix))
            self.rebuilt_from = aside
            try:
                self.db = self._open_writer(path, timeout)
            except sqlite3.DatabaseError as exc2:
                raise StoreError(
                    f"The mail index {path} cannot be created ({exc2})",
                    "the disk is full or the folder is not writable",
                    f"check the free space and the permissions of {data_dir}",
                ) from exc2

    @classmethod
    def open_writer(cls, data_dir: Path, *, busy_timeout: float | None = None) -> Store:
        """For whoever writes: creates the index or upgrades its schema if needed (take :meth:`lock` too)."""
        return cls(data_dir, busy_timeout=busy_timeout)

    @classmethod
    def open_reader(cls, data_dir: Path, *, busy_timeout: float | None = None) -> Store:
        """Read-only: creates no file, runs no migration, takes no lock; safe during a sync."""
        return cls(data_dir, readonly=True, busy_timeout=busy_timeout)

    def _open_writer(self, path: Path, timeout: float) -> sqlite3.Connection:
        db = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        try:
            # Reading the version reads the file's header: a file that is no database fails here (NOTADB).
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            # NORMAL in WAL mode: a power cut may lose the last commits but never corrupts the file;
            # rows lost that way are re-adopted from the message files' names.
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            # TEMP tables hold one row per listed message (POP3 UIDL, recover): a small cache keeps the
            # process's memory the same for any mailbox size; the rest goes to a temporary file.
            db.execute(f"PRAGMA temp.cache_size=-{TEMP_CACHE_KIB}")
            if version > SCHEMA_VERSION:
                raise _newer_schema(path, version)
            if version != SCHEMA_VERSION:
                self.db = db
                self.migrate()
        except BaseException:
            db.close()
            raise
        return db

    def migrate(self) -> None:
        """Create the index or bring its schema to :data:`SCHEMA_VERSION`, in one transaction.

        Idempotent, and only ever run by a writer (readers refuse an index of another version).
        """
        db = self.db
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.execute("PRAGMA journal_mode=WAL")  # persistent in the file; cannot change inside a transaction
        try:
            db.execute("BEGIN IMMEDIATE")
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise _newer_schema(self.data_dir / INDEX_FILE, version)
            if version < SCHEMA_VERSION:  # (another writer may have done it while this one waited)
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                # Schema 3: columns added to tables that older indexes already have.
                columns = {row[1] for row in db.execute("PRAGMA table_info(folders)")}
                if "permanent_flags" not in columns:
                    db.execute("ALTER TABLE folders ADD COLUMN permanent_flags TEXT")
                # Schema 4: full-text search and threads. The messages already here are indexed
                # after this, by the catch-up that follows every sync (search.catch_up).
                columns = {row[1] for row in db.execute("PRAGMA table_info(messages)")}
                if "attachments" not in columns:
                    db.execute("ALTER TABLE messages ADD COLUMN attachments INTEGER NOT NULL DEFAULT 0")
                if "thread" not in columns:
                    db.execute("ALTER TABLE messages ADD COLUMN thread INTEGER")
                from deskmail.store import search

                for statement in (*search.SCHEMA, *threads.SCHEMA):
                    db.execute(statement)
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                           (str(SCHEMA_VERSION),))
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    @staticmethod
    def _open_reader(path: Path, timeout: float) -> sqlite3.Connection:
        if not path.is_file():
            raise StoreError(
                f"There is no mail index at {path} yet",
                "no account has been synced into this data folder",
                "the first sync creates it",
                code=Code.STORE_NOT_READY,
            )
        try:
            # as_uri() percent-encodes: a folder named "a#b" or "50%" must not change the URI's meaning.
            db = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True, timeout=timeout,
                                 isolation_level=None)
        except sqlite3.Error as exc:
            raise store_error(exc, path, "opened") from exc
        try:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            db.execute("PRAGMA query_only=1")
        except sqlite3.Error as exc:
            db.close()
            if is_damage(exc):
                raise StoreError(
                    f"The mail index {path} is damaged ({exc})",
                    "the file was damaged (a disk error, or another program wrote into it)",
                    "the next sync sets it aside and rebuilds it from the mail files",
                    code=Code.STORE_DAMAGED,
                ) from exc
            raise store_error(exc, path, "read") from exc
        if version == 0 and _no_tables(db):  # a file the first sync has only begun to create
            db.close()
            raise StoreError(f"The mail index {path} is not ready yet", "the first sync is creating it",
                             "try again in a moment", code=Code.STORE_NOT_READY)
        if version != SCHEMA_VERSION:
            db.close()
            if version > SCHEMA_VERSION:
                raise _newer_schema(path, version)
            raise StoreError(
                f"The mail index {path} needs upgrading: a sync does that",
                f"it was written by an older version of deskmail (schema {version}, this one reads {SCHEMA_VERSION})",
                "sync once; reading works again afterwards",
                code=Code.STORE_OLD_SCHEMA,
            )
        return db

    # --- change signal, snapshots ----------------------------------------------------

    def change_token(self) -> tuple[int, int]:
        """Equal tokens from this Store = nothing was committed in between, by anyone.

        ``PRAGMA data_version`` moves when another connection commits; this connection's own
        writes are counted by ``total_changes`` (TEMP tables too: a false "changed" at worst).
        Costs one pragma (no file I/O beyond the shared-memory header).
        """
        return int(self._read("PRAGMA data_version")[0][0]), self.db.total_changes

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of a query the façade/GUI asks for: a busy index is a StoreLocked, not an sqlite3 error."""
        try:
            return self.db.execute(sql, tuple(args)).fetchall()
        except sqlite3.OperationalError as exc:
            raise store_error(exc, self.data_dir / INDEX_FILE, "read") from exc

    def changed_since(self, token: tuple[int, int]) -> bool:
        return self.change_token() != token

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads in this block see one committed state (e.g. a page and its count); nests as a no-op."""
        if self.db.in_transaction:
            yield
            return
        try:
            self.db.execute("BEGIN")
        except sqlite3.OperationalError as exc:
            raise store_error(exc, self.data_dir / INDEX_FILE, "read") from exc
        try:
            yield
        finally:
            if self.db.in_transaction:
                self.db.execute("COMMIT")  # read-only: ends the snapshot, writes nothing

    def close(self) -> None:
        self.db.close()
        self.unlock()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- locking -------------------------------------------------------------

    def lock(self) -> None:
        fd = os.open(self.data_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLocked(
                "Another deskmail process is working on this mail store",
                "a sync is already running (another window, a scheduled job, or a watching sync)",
                "wait for it to finish, or stop it, then try again",
            ) from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @contextmanager
    def transaction(self, *, durable: bool = False, immediate: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction.

        ``durable``: on disk at COMMIT even across a power cut (WAL fsync'd). Needed where a server
        write follows the commit (the upload journal): with the normal setting a power cut could lose
        the journal entry of a message the server already has. ``immediate=False`` for a transaction
        that writes only TEMP tables: it never locks the index.
        """
        if durable:
            self.db.execute("PRAGMA synchronous=FULL")
        try:
            try:
                self.db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
                try:
                    yield self.db
                except BaseException:
                    if self.db.in_transaction:
                        self.db.execute("ROLLBACK")
                    raise
                self.db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise store_error(exc, self.data_dir / INDEX_FILE, "written") from exc
        finally:
            if durable:
                self.db.execute("PRAGMA synchronous=NORMAL")

    # --- folders -------------------------------------------------------------

    def maildir(self, account: str, path: str = "") -> Maildir:
        return Maildir(self.mail_dir / account / path if path else self.mail_dir / account)

    def folder_maildir(self, folder: Folder) -> Maildir:
        return self.maildir(folder.account, folder.path)

    def folders(self, account: str) -> list[Folder]:
        rows = self._read(f"SELECT {_FOLDER_COLS} FROM folders WHERE account=? ORDER BY name", (account,))
        return [Folder(*r) for r in rows]

    def folder(self, account: str, name: str) -> Folder | None:
        row = self.db.execute(
            f"SELECT {_FOLDER_COLS} FROM folders WHERE account=? AND name=?", (account, name)
        ).fetchone()
        return Folder(*row) if row else None

    def ensure_folder(
        self, account: str, name: str, delimiter: str = "/", special_use: str = "", subscribed: bool = True,
        *, path: str | None = None,
    ) -> Folder:
        """The folder's row, made if needed; ``path`` keeps a directory made by another program."""
        existing = self.folder(account, name)
        if existing is not None:
            if (existing.special_use, existing.subscribed, existing.delimiter) != (special_use, subscribed, delimiter):
                self.db.execute(
                    "UPDATE folders SET special_use=?, subscribed=?, delimiter=? WHERE id=?",
                    (special_use, int(subscribed), delimiter, existing.id),
                )
                return self.folder(account, name) or existing
            return existing
        path = self._free_path(account, folder_path(name, delimiter) if path is None else path)
        self.db.execute(
            "INSERT INTO folders (account, name, delimiter, path, special_use, subscribed) VALUES (?,?,?,?,?,?)",
            (account, name, delimiter, path, special_use, int(subscribed)),
        )
        created = self.folder(account, name)
        assert created is not None
        return created

    def _free_path(self, account: str, path: str) -> str:
        taken = {r[0] for r in self.db.execute("SELECT path FROM folders WHERE account=?", (account,))}
        candidate, n = path, 1
        while candidate in taken:  # two names that encode alike (case, unsafe chars): keep both apart
            n += 1
            candidate = f"{path}~{n}"
        return candidate

    def update_folder(self, folder_id: int, **fields: int | str | None) -> None:
        allowed = {"uidvalidity", "uidnext", "highestmodseq", "local_mtime", "sync", "name", "path", "special_use",
                   "permanent_flags"}
        if not fields or not set(fields) <= allowed:
            raise ValueError(f"cannot update {sorted(fields)}")
        cols = ", ".join(f"{k}=?" for k in fields)
        self.db.execute(f"UPDATE folders SET {cols} WHERE id=?", (*fields.values(), folder_id))

    def touch_folder(self, folder_id: int) -> None:
        """A person changed messages of this folder here (flag, move, delete): the next sync must look at
        its rows. A value no sync can have read before, so that a sync running now does not record the
        folder as clean over this change (see :meth:`checkpoint_folder`)."""
        self.db.execute("UPDATE folders SET local_mtime = MIN(local_mtime, 0) - 1 WHERE id=?", (folder_id,))

    def checkpoint_folder(self, folder_id: int, *, uidvalidity: int, uidnext: int, highestmodseq: int,
                          local_mtime: int, seen: int) -> None:
        """A folder's sync finished: its server state, and the scan mark ``local_mtime`` unless the folder
        was touched here since the sync read ``seen`` (then 0: the next sync looks at every row)."""
        self.db.execute(
            "UPDATE folders SET uidvalidity=?, uidnext=?, highestmodseq=?,"
            " local_mtime = CASE WHEN local_mtime = ? THEN ? ELSE 0 END WHERE id=?",
            (uidvalidity, uidnext, highestmodseq, seen, local_mtime, folder_id))

    def remove_folder(self, folder_id: int) -> None:
        self.db.execute("DELETE FROM folders WHERE id=?", (folder_id,))

    # --- messages ------------------------------------------------------------

    def rows(self, folder_id: int) -> dict[str, Row]:
        """uid -> row for the folder's current messages (all UIDVALIDITY generations)."""
        cur = self.db.execute(f"SELECT {_ROW_COLS} FROM messages WHERE folder_id=?", (folder_id,))
        return {str(r[2]): Row(*r) for r in cur}

    def rows_for(self, folder_id: int, uids: set[str]) -> dict[str, Row]:
        """Only the given UIDs' rows (all UIDVALIDITY generations)."""
        out: dict[str, Row] = {}
        wanted = sorted(uids)
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            cur = self.db.execute(
                f"SELECT {_ROW_COLS} FROM messages WHERE folder_id=? AND uid IN ({','.join('?' * len(chunk))})",
                (folder_id, *chunk),
            )
            out.update({str(r[2]): Row(*r) for r in cur})
        return out

    def is_empty(self) -> bool:
        """No message at all (before a first sync)."""
        return self.db.execute("SELECT 1 FROM messages LIMIT 1").fetchone() is None

    def has_messages(self, folder_id: int) -> bool:
        return self.db.execute("SELECT 1 FROM messages WHERE folder_id=? LIMIT 1", (folder_id,)).fetchone() is not None

    def max_uid(self, folder_id: int, uidvalidity: int) -> int:
        row = self.db.execute(
            "SELECT MAX(CAST(uid AS INTEGER)) FROM messages WHERE folder_id=? AND uidvalidity=?",
            (folder_id, uidvalidity),
        ).fetchone()
        return int(row[0] or 0)

    def insert_message(
        self, md: Maildir, folder_id: int, uidvalidity: int, uid: str, filename: str, flags: Iterable[str],
        head: bytes | None = None, size: int | None = None, *, synced: Iterable[str] | None = None,
    ) -> int:
        """A message row; its flags are taken as agreed with the server unless ``synced`` says otherwise."""
        # The Path only when the file must be read: see PendingMessage on pathlib's interning.
        info = read_header_info(md.path(filename) if head is None else None, head)
        if size is None:
            size = md.path(filename).stat().st_size
        flag_text = " ".join(sorted(flags))
        synced_text = flag_text if synced is None else " ".join(sorted(synced))
        cur = self.db.execute(
            "INSERT OR IGNORE INTO messages (folder_id, uidvalidity, uid, filename, flags, synced_flags, size,"
            " date, sender, recipients, subject, message_id, added) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                folder_id, uidvalidity, uid, filename, flag_text, synced_text, size,
                info.date, info.sender, info.recipients, info.subject, info.message_id, int(time.time()),
            ),
        )
        if cur.rowcount != 1:
            return 0  # already there
        # Searched and threaded once search.catch_up() has read it: not here, on the download's path.
        return int(cur.lastrowid or 0)

    def recover(self, folder: Folder) -> int:
        """Adopt files that reached cur/ but whose index row was never committed (crash)."""
        return self.recover_unknown(folder)[0]

    def recover_unknown(self, folder: Folder, uidvalidities: set[int] | None = None) -> tuple[int, list[str]]:
        """:meth:`recover`, and the files in cur/ (new/ moved there first) the index cannot place.

        A file whose name carries a server identity is adopted when its UIDVALIDITY is one of
        ``uidvalidities`` (None: any). The others are "unknown": foreign files (no identity: put here
        by mutt, a file manager, an MDA), files with another folder's identity (moved here by hand),
        and a file claiming the UID of an indexed message of a different size. Unknown files are
        never removed here; the IMAP sync uploads them, the POP3 sync lists them.

        Runs before every sync, so it is cheap and its memory flat at any folder size: a
        fingerprint of cur/'s names is compared with one of the index's; only when they
        differ does SQL look for the orphans.
        """
        md = self.folder_maildir(folder)
        if not md.exists():
            return 0, []
        md.clean_tmp()
        indexed = (r[0] for r in self.db.execute("SELECT filename FROM messages WHERE folder_id=?", (folder.id,)))
        if _fingerprint(md.iter_files()) == _fingerprint(indexed):
            return 0, []
        db = self.db
        adopted = 0
        unknown: list[str] = []
        try:
            with self.transaction():
                db.execute("DROP TABLE IF EXISTS temp.recover_files")
                db.execute("CREATE TEMP TABLE recover_files (name TEXT NOT NULL)")
                db.executemany("INSERT INTO temp.recover_files (name) VALUES (?)",
                               ((n,) for n in md.iter_files()))
                # Orphans: names whose unique part (before ":") no row has. A file whose unique part is
                # indexed under another name was renamed by another Maildir client (a flag change): the
                # folder scan handles it. Materialised once, as the adoption below adds rows.
                db.execute("DROP TABLE IF EXISTS temp.recover_orphans")
                db.execute(
                    "CREATE TEMP TABLE recover_orphans AS SELECT name FROM temp.recover_files"
                    " WHERE substr(name, 1, instr(name || ':', ':') - 1) NOT IN"
                    " (SELECT substr(filename, 1, instr(filename || ':', ':') - 1) FROM messages WHERE folder_id=?)",
                    (folder.id,),
                )
                db.execute("DROP TABLE temp.recover_files")
                after = 0
                while True:
                    page = db.execute("SELECT rowid, name FROM temp.recover_orphans WHERE rowid > ?"
                                      " ORDER BY rowid LIMIT 256", (after,)).fetchall()
                    for _rowid, name in page:
                        outcome = self._adopt(md, folder, name, uidvalidities)
                        if outcome is None:
                            unknown.append(name)
                        else:
                            adopted += outcome
                    if len(page) < 256:
                        break
                    after = page[-1][0]
        finally:
            db.execute("DROP TABLE IF EXISTS temp.recover_files")
            db.execute("DROP TABLE IF EXISTS temp.recover_orphans")
        return adopted, unknown

    def index_local(self, folder: Folder, names: list[str]) -> int:
        """Index files the server does not know (POP3: never uploaded) so that they are listed and readable."""
        md = self.folder_maildir(folder)
        added = 0
        with self.transaction():
            for name in names:
                if not md.is_message(name):
                    continue  # not a message file (dot file, symlink, empty)
                added += bool(self.insert_message(md, folder.id, 0, "local:" + name.partition(":")[0], name,
                                                  info_to_flags(name)))
        return added

    def has_uid(self, folder_id: int, uidvalidity: int, uid: int) -> bool:
        return self.db.execute(
            "SELECT 1 FROM messages WHERE folder_id=? AND uidvalidity=? AND uid=?", (folder_id, uidvalidity, str(uid))
        ).fetchone() is not None

    def _adopt(self, md: Maildir, folder: Folder, name: str, uidvalidities: set[int] | None) -> int | None:
        """1 if adopted, 0 if it was a duplicate (removed), None if the file is unknown (see recover_unknown)."""
        key = server_key(name)
        if key is None or (uidvalidities is not None and key[0] not in uidvalidities):
            return None
        uidvalidity, uid = key
        dup = self.db.execute(
            "SELECT size FROM messages WHERE folder_id=? AND uidvalidity=? AND uid=?",
            (folder.id, uidvalidity, uid),
        ).fetchone()
        if dup:
            try:
                same = md.path(name).stat().st_size == dup[0]
            except OSError:
                return 0
            if same:
                md.remove(name)  # a second copy from an interrupted re-download
                return 0
            return None  # another message under a taken identity: not ours to drop
        self.insert_message(md, folder.id, uidvalidity, uid, name, info_to_flags(name))
        return 1

    def set_flags(self, row_id: int, filename: str, flags: Iterable[str], synced: Iterable[str] | None = None) -> None:
        text = " ".join(sorted(flags))
        if synced is None:
            self.db.execute("UPDATE messages SET filename=?, flags=? WHERE id=?", (filename, text, row_id))
        else:
            self.db.execute(
                "UPDATE messages SET filename=?, flags=?, synced_flags=? WHERE id=?",
                (filename, text, " ".join(sorted(synced)), row_id),
            )

    def set_synced(self, row_id: int, synced: Iterable[str]) -> None:
        """Record what both sides agree on now (the server accepted a STORE); the flags here are not touched."""
        self.db.execute("UPDATE messages SET synced_flags=? WHERE id=?", (" ".join(sorted(synced)), row_id))

    def row(self, row_id: int) -> Row | None:
        """The index row as it is now (a change made here during a sync shows), or None if it is gone."""
        r = self.db.execute(f"SELECT {_ROW_COLS} FROM messages WHERE id=?", (row_id,)).fetchone()
        return Row(*r) if r else None

    def delete_row(self, row_id: int) -> None:
        self.db.execute("DELETE FROM messages WHERE id=?", (row_id,))

    def log(self, account: str, folder: str, event: str) -> None:
        self.db.execute(
            "INSERT INTO journal (at, account, folder, event) VALUES (?,?,?,?)",
            (int(time.time()), account, folder, event),
        )

    # --- ops journal ---------------------------------------------------------

    def add_op(self, account: str, kind: str, folder: str, uidvalidity: int, uid: str, target: str = "",
               message_id: str = "") -> int:
        cur = self.db.execute(
            "INSERT INTO ops (account, kind, folder, uidvalidity, uid, target, message_id, created)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (account, kind, folder, uidvalidity, uid, target, message_id, int(time.time())),
        )
        return int(cur.lastrowid or 0)

    def pending_ops(self, account: str, folder: str) -> list[Op]:
        cur = self.db.execute(
            "SELECT id, kind, folder, uidvalidity, uid, target, message_id FROM ops"
            " WHERE account=? AND folder=? ORDER BY id",
            (account, folder),
        )
        return [Op(*r) for r in cur]

    def op_done(self, op_id: int) -> None:
        self.db.execute("DELETE FROM ops WHERE id=?", (op_id,))

    # --- confirmations -------------------------------------------------------

    def confirm_upload(self, account: str, folder: str, confirmed: bool = True) -> None:
        """The user's yes to uploading many local-only messages of one folder at once (see MASS_UPLOAD)."""
        key = f"upload-confirmed\t{account}\t{folder}"
        if confirmed:
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, '1')", (key,))
        else:
            self.db.execute("DELETE FROM meta WHERE key=?", (key,))

    def upload_confirmed(self, account: str, folder: str) -> bool:
        key = f"upload-confirmed\t{account}\t{folder}"
        return self.db.execute("SELECT 1 FROM meta WHERE key=?", (key,)).fetchone() is not None

    # --- message files under readers ------------------------------------------------

    def message_path(self, message_id: int) -> Path:
        """The message file's path as it is now, following a rename made since the row was read."""
        for path in self._paths(message_id):
            if path.exists():
                return path
        raise self._file_gone(message_id)

    def open_message(self, message_id: int) -> BinaryIO:
        """The message file, open for reading: once open, a rename (flag change) or move does not matter."""
        for path in self._paths(message_id):
            try:
                return open(path, "rb")
            except FileNotFoundError:
                continue
        raise self._file_gone(message_id)

    def _paths(self, message_id: int) -> Iterator[Path]:
        """Where the file may be: the row's name, then its unique name in cur/ and new/, again from the row.

        A flag change renames the file first and updates the row after, and another Maildir
        program may rename it without telling the index: a reader can see the old name either
        way. The unique part of a name (before ":") never changes.
        """
        for _attempt in range(FIND_ATTEMPTS):
            path = Path(self.get(message_id).path)  # NotFoundError when the row is gone (deleted)
            yield path
            unique = path.name.partition(":")[0]
            root = path.parent.parent
            for sub in ("cur", "new"):
                try:
                    with os.scandir(root / sub) as entries:
                        found = [e.name for e in entries if e.name == unique or e.name.startswith(unique + ":")]
                except FileNotFoundError:
                    continue
                for name in found:
                    yield root / sub / name
            time.sleep(0.01 * (_attempt + 1))  # the writer is between its rename and its commit

    def _file_gone(self, message_id: int) -> NotFoundError:
        return NotFoundError(
            f"The file of message {message_id} is missing from the mail folder",
            "another program removed or moved it",
            "the next sync downloads it again",
            code=Code.MESSAGE_FILE_MISSING,
        )

    # --- reading ---------------------------------------------------------------

    _SUMMARY_SQL = (
        "SELECT m.id, f.account, f.name, m.uid, m.date, m.sender, m.recipients, m.subject, m.message_id,"
        " m.size, m.flags, m.filename, f.path, m.partial FROM messages m JOIN folders f ON f.id = m.folder_id"
    )

    def list_messages(
        self, account: str | None = None, folder: str | None = None, limit: int = 50, *,
        sort: str = "date", unread_only: bool = False, flagged_only: bool = False,
        after: MessageSummary | None = None, offset: int = 0,
    ) -> list[MessageSummary]:
        """One page of messages: ``limit`` of them, in ``sort`` order (:data:`SORTS`), filtered.

        Paging: pass the last message of the previous page as ``after`` (keyset: as fast deep in
        the list as at its start, and stable while mail arrives), or an ``offset``.
        """
        order = SORTS.get(sort)
        if order is None:
            raise ValueError(f"unknown sort {sort!r} (one of {', '.join(SORTS)})")
        where, args = self._filters(account, folder, unread_only, flagged_only)
        if where is None:
            return []
        if after is not None:
            key, op, _order = order
            value = getattr(after, _SORT_FIELDS[sort])
            # Not the row value (key, id) > (?, ?): SQLite uses no index range for that one with a collation.
            where.append(f"{key} {op}= ? AND ({key} {op} ? OR m.id {op} ?)")
            args += [value, value, after.id]
        sql = self._SUMMARY_SQL + (" WHERE " + " AND ".join(where) if where else "") + f" ORDER BY {order[2]}"
        sql += " LIMIT ? OFFSET ?"
        return [self._summary(r) for r in self._read(sql, (*args, limit, offset))]

    def count_messages(self, account: str | None = None, folder: str | None = None, *,
                       unread_only: bool = False, flagged_only: bool = False) -> int:
        """How many messages :meth:`list_messages` pages through with the same filters."""
        where, args = self._filters(account, folder, unread_only, flagged_only)
        if where is None:
            return 0
        sql = "SELECT COUNT(*) FROM messages m" + (" WHERE " + " AND ".join(where) if where else "")
        return int(self._read(sql, args)[0][0])

    def _filters(self, account: str | None, folder: str | None, unread_only: bool,
                 flagged_only: bool) -> tuple[list[str] | None, list[Any]]:
        """WHERE terms on ``messages m``; None when no folder matches (nothing to list)."""
        where: list[str] = []
        args: list[Any] = []
        if account or folder:
            # The folders table is tiny: resolved first, so that one folder is an equality the
            # (folder_id, key) indexes serve in order.
            terms = [t for t, v in (("account=?", account), ("name=?", folder)) if v]
            ids = [int(r[0]) for r in self._read(f"SELECT id FROM folders WHERE {' AND '.join(terms)}",
                                                 [v for v in (account, folder) if v])]
            if not ids:
                return None, []
            if len(ids) == 1:
                where.append("m.folder_id = ?")
                args.append(ids[0])
            else:
                # "+": not by the folder_id indexes (each folder apart, then a sort of them all) but
                # along the date index, skipping other folders' rows.
                where.append(f"+m.folder_id IN ({','.join('?' * len(ids))})")
                args += ids
        if unread_only:
            where.append("instr(m.flags, '\\Seen') = 0")
        if flagged_only:
            where.append("instr(m.flags, '\\Flagged') > 0")
        return where, args

    def folder_counts(self) -> dict[int, int]:
        """folder id -> number of messages, for every folder that has any."""
        rows = self._read("SELECT folder_id, COUNT(*) FROM messages GROUP BY folder_id")
        return {int(f): int(n) for f, n in rows}

    def folder_unread_counts(self) -> dict[int, int]:
        """folder id -> number of messages without \\Seen, for every folder that has any."""
        rows = self._read("SELECT folder_id, COUNT(*) FROM messages WHERE instr(flags, '\\Seen') = 0"
                          " GROUP BY folder_id")
        return {int(f): int(n) for f, n in rows}

    def _summary(self, r: tuple[Any, ...]) -> MessageSummary:
        account, folder, filename, path = str(r[1]), str(r[2]), str(r[11]), str(r[12])
        return MessageSummary(
            id=int(r[0]), account=account, folder=folder, uid=str(r[3]), date=str(r[4]), sender=str(r[5]),
            to=str(r[6]), subject=str(r[7]), message_id=str(r[8]), size=int(r[9]),
            flags=str(r[10]), path=str(self.maildir(account, path).path(filename)), partial=bool(r[13]),
        )

    # .search (with the text extraction of .fulltext) is imported where it is used: a sync that brought
    # nothing new never loads it (~4 ms of a one-shot no-change `deskmail sync`, issue 11's ≤ mbsync).

    def search(self, node: search.Node, *, limit: int = 50, offset: int = 0) -> list[SearchHit]:
        """Messages matching a query tree (:mod:`.search`), newest first, with snippets."""
        from deskmail.store import search

        return search.search(self, node, limit, offset)

    def unindexed(self) -> int:
        """Message rows not searchable or threaded yet (:meth:`catch_up` indexes them): a rowid range above
        the high-water mark ``indexed_upto`` (search.UPTO), cheap."""
        return int(self._read("SELECT COUNT(*) FROM messages WHERE id > coalesce((SELECT CAST(value AS INTEGER)"
                              " FROM meta WHERE key = 'indexed_upto'), 0)")[0][0])

    def catch_up(self, stop: Callable[[], bool] | None = None) -> int:
        """Index the rows added since the last catch-up (full text, attachments, thread): writer only."""
        if not self.unindexed():
            return 0
        from deskmail.store import search

        return search.catch_up(self, stop)

    def thread(self, message_id: int) -> list[MessageSummary]:
        """Every message of the conversation of message ``message_id``, every folder and account, oldest first."""
        row = self._read("SELECT coalesce(thread, id) FROM messages WHERE id = ?", (message_id,))
        if not row:
            raise self._no_message(message_id)
        sql = self._SUMMARY_SQL + " WHERE m.thread = ? OR m.id = ? ORDER BY m.date, m.id"
        return [self._summary(r) for r in self._read(sql, (row[0][0], message_id))]

    def list_threads(self, account: str | None = None, folder: str | None = None, limit: int = 50, *,
                     after: ThreadSummary | None = None, offset: int = 0) -> list[ThreadSummary]:
        """One page of the conversations with a message in the folder(s), newest first by their newest
        message there. Paging: ``after`` = the last thread of the previous page (keyset), or ``offset``."""
        where, args = self._filters(account, folder, False, False)
        if where is None:
            return []
        # SQLite's bare-column rule: m.id comes from the row that gave max(m.date).
        latest = ("SELECT coalesce(m.thread, m.id) AS t, m.id AS id, max(m.date) AS d FROM messages m"
                  + (" WHERE " + " AND ".join(where) if where else "") + " GROUP BY t")
        page_where = ""
        if after is not None:
            page_where = " WHERE (l.d < ? OR (l.d = ? AND l.id < ?))"
            args += [after.latest.date, after.latest.date, after.latest.id]
        sql = (f"WITH l AS ({latest}) SELECT l.t, " + self._SUMMARY_SQL.removeprefix("SELECT ")
               .replace(" FROM messages m", " FROM l JOIN messages m ON m.id = l.id")
               + page_where + " ORDER BY l.d DESC, l.id DESC LIMIT ? OFFSET ?")
        rows = self._read(sql, (*args, limit, offset))
        numbers = [int(r[0]) for r in rows]
        stats: dict[int, tuple[int, int]] = {}
        for i in range(0, len(numbers), 500):
            chunk = numbers[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for t, n, unread in self._read(
                    f"SELECT thread, COUNT(*), SUM(instr(flags, '\\Seen') = 0) FROM messages"
                    f" WHERE thread IN ({marks}) GROUP BY thread", chunk):
                stats[int(t)] = (int(n), int(unread or 0))
        out = []
        for r in rows:
            summary = self._summary(r[1:])
            n, unread = stats.get(int(r[0]), (1, 0 if "\\Seen" in summary.flags else 1))
            out.append(ThreadSummary(thread=int(r[0]), latest=summary, messages=n, unread=unread))
        return out

    def count_threads(self, account: str | None = None, folder: str | None = None) -> int:
        """How many conversations :meth:`list_threads` pages through."""
        where, args = self._filters(account, folder, False, False)
        if where is None:
            return 0
        sql = "SELECT COUNT(DISTINCT coalesce(m.thread, m.id)) FROM messages m" + (
            " WHERE " + " AND ".join(where) if where else "")
        return int(self._read(sql, args)[0][0])

    def correspondents(self, limit: int = 2000) -> list[str]:
        """Senders of the newest messages, most recent first, each once (address completion)."""
        rows = self._read("SELECT sender FROM messages WHERE sender != '' GROUP BY sender ORDER BY MAX(date) DESC"
                          " LIMIT ?", (limit,))
        return [str(r[0]) for r in rows]

    def get(self, message_id: int) -> MessageSummary:
        rows = self._read(self._SUMMARY_SQL + " WHERE m.id=?", (message_id,))
        if not rows:
            raise self._no_message(message_id)
        return self._summary(rows[0])

    @staticmethod
    def _no_message(message_id: int) -> NotFoundError:
        return NotFoundError(
            f"There is no message with id {message_id}",
            "the id is wrong, or the message was deleted",
            "list the messages again to see the current ids",
            code=Code.NO_SUCH_MESSAGE,
        )

    def row_by_id(self, message_id: int) -> tuple[Folder, Row]:
        r = self.db.execute(f"SELECT {_ROW_COLS}, folder_id FROM messages WHERE id=?", (message_id,)).fetchone()
        if r is None:
            self.get(message_id)  # raises the NotFoundError
        frow = self.db.execute(f"SELECT {_FOLDER_COLS} FROM folders WHERE id=?", (r[-1],)).fetchone()
        return Folder(*frow), Row(*r[:-1])

    # --- for the IMAP sync's executor (deskmail.sync.imap_sync) -----------------------------------

    def forget_folder_messages(self, folder_id: int) -> None:
        """Drop every index row of a folder whose local copy is gone (it is downloaded again)."""
        self.db.execute("DELETE FROM messages WHERE folder_id=?", (folder_id,))

    def rekey_message(self, row_id: int, uidvalidity: int, uid: str, filename: str) -> None:
        """A local copy re-matched to its new UID after a UIDVALIDITY change."""
        self.db.execute("UPDATE messages SET uidvalidity=?, uid=?, filename=? WHERE id=?",
                        (uidvalidity, uid, filename, row_id))

    def copies_elsewhere(self, account: str, folder_id: int, message_ids: Iterable[str]
                         ) -> dict[tuple[str, int], Path]:
        """(Message-ID, size) -> the file of a message with them in another folder of the account: a
        local copy a message moved or copied there by another client can be taken from (F-10)."""
        out: dict[tuple[str, int], Path] = {}
        wanted = sorted(set(message_ids) - {""})
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            cur = self.db.execute(
                "SELECT m.message_id, m.size, m.filename, f.path FROM messages m JOIN folders f ON f.id = m.folder_id"
                f" WHERE f.account=? AND m.folder_id != ? AND m.message_id IN ({','.join('?' * len(chunk))})",
                (account, folder_id, *chunk),
            )
            for mid, size, filename, path in cur:
                out.setdefault((mid, size), self.maildir(account, path).path(filename))
        return out

    def has_messages_elsewhere(self, account: str, folder_id: int) -> bool:
        """Whether another folder of the account holds any message (a local copy could be taken from it)."""
        return self.db.execute(
            "SELECT 1 FROM messages m JOIN folders f ON f.id = m.folder_id WHERE f.account=? AND m.folder_id != ?"
            " LIMIT 1", (account, folder_id)).fetchone() is not None

    def move_row_to_folder(self, row_id: int, folder_id: int, uid: str) -> None:
        """Put a row into another (local) folder under a placeholder UID, e.g. a Recovered quarantine."""
        self.db.execute("UPDATE messages SET folder_id=?, uid=? WHERE id=?", (folder_id, uid, row_id))

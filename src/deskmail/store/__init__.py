"""The local store: Maildir files plus an SQLite index (WAL).

Order of a write, so that a crash anywhere loses nothing and duplicates
nothing: message file durable in ``cur/`` (see :mod:`.maildir`) -> index row
committed. The index row *is* the sync state ("this UID is here"), so sync
state only moves forward once the message is on disk. A file that made it to
``cur/`` but whose row did not is adopted by :meth:`Store.recover` from the
identity in its name.

One process at a time: :meth:`Store.lock` takes an exclusive ``flock``.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from deskmail.errors import NotFoundError, StoreError, StoreLocked
from deskmail.model import MessageSummary
from deskmail.store.maildir import Maildir, info_to_flags, server_key

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS folders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL DEFAULT 0,
    highestmodseq INTEGER NOT NULL DEFAULT 0,
    UNIQUE (account, name)
) STRICT;
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    uidvalidity INTEGER NOT NULL DEFAULT 0,
    uid TEXT NOT NULL,
    filename TEXT NOT NULL,
    flags TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL DEFAULT 0,
    date TEXT NOT NULL DEFAULT '',
    sender TEXT NOT NULL DEFAULT '',
    recipients TEXT NOT NULL DEFAULT '',
    subject TEXT NOT NULL DEFAULT '',
    message_id TEXT NOT NULL DEFAULT '',
    UNIQUE (folder_id, uidvalidity, uid)
) STRICT;
CREATE INDEX IF NOT EXISTS messages_by_date ON messages (folder_id, date);
"""


@dataclass(frozen=True)
class HeaderInfo:
    date: str
    sender: str
    recipients: str
    subject: str
    message_id: str


def _text(value: object) -> str:
    """Decode an RFC 2047 header leniently: broken mail must not stop indexing."""
    if value is None:
        return ""
    try:
        return str(make_header(decode_header(str(value)))).replace("\r", "").replace("\n", " ").strip()
    except (ValueError, LookupError, UnicodeError):
        return str(value).replace("\r", "").replace("\n", " ").strip()


def read_header_info(path: Path) -> HeaderInfo:
    """Parse only the header block (bounded read), never the whole body."""
    head = bytearray()
    with open(path, "rb") as fh:
        for line in fh:
            head += line
            if line in (b"\r\n", b"\n") or len(head) > 256 * 1024:
                break
    msg = BytesHeaderParser(policy=compat32).parsebytes(bytes(head))
    date = ""
    try:
        if msg["Date"]:
            date = parsedate_to_datetime(str(msg["Date"])).isoformat()
    except (TypeError, ValueError, IndexError):
        date = ""
    return HeaderInfo(
        date=date,
        sender=_text(msg["From"]),
        recipients=_text(msg["To"]),
        subject=_text(msg["Subject"]),
        message_id=_text(msg["Message-ID"]),
    )


class Store:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.mail_dir = data_dir / "mail"
        self._lock_fd: int | None = None
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self.db = sqlite3.connect(data_dir / "index.sqlite3", timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL is durable at checkpoint; files fsync'd
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(_SCHEMA)
            self.db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"The mail index {data_dir / 'index.sqlite3'} is damaged ({exc})",
                "the file was truncated or overwritten",
                "move the file away and sync again; it is rebuilt from the mail files",
            ) from exc

    def close(self) -> None:
        self.db.close()
        self.unlock()

    # --- locking -------------------------------------------------------------

    def lock(self) -> None:
        fd = os.open(self.data_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLocked(
                "Another deskmail process is working on this mail store",
                "a sync is already running (another window, a cron job, or `sync --watch`)",
                "wait for it to finish, or stop it, then try again",
            ) from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # --- folders -------------------------------------------------------------

    def maildir(self, account: str, folder: str = "INBOX") -> Maildir:
        root = self.mail_dir / account
        if folder != "INBOX":
            root = root / ("." + folder.replace("/", "."))
        return Maildir(root)

    def folder_id(self, account: str, folder: str) -> int:
        self.db.execute("INSERT OR IGNORE INTO folders (account, name) VALUES (?, ?)", (account, folder))
        row = self.db.execute("SELECT id FROM folders WHERE account=? AND name=?", (account, folder)).fetchone()
        return int(row[0])

    def folder_uidvalidity(self, folder_id: int) -> int:
        row = self.db.execute("SELECT uidvalidity FROM folders WHERE id=?", (folder_id,)).fetchone()
        return int(row[0]) if row else 0

    def set_folder_uidvalidity(self, folder_id: int, uidvalidity: int) -> None:
        self.db.execute("UPDATE folders SET uidvalidity=? WHERE id=?", (uidvalidity, folder_id))

    # --- messages ------------------------------------------------------------

    def known(self, folder_id: int, uidvalidity: int) -> dict[str, tuple[int, str, str]]:
        """uid -> (row id, file name, flags) for one folder at one UIDVALIDITY."""
        rows = self.db.execute(
            "SELECT uid, id, filename, flags FROM messages WHERE folder_id=? AND uidvalidity=?",
            (folder_id, uidvalidity),
        )
        return {str(r[0]): (int(r[1]), str(r[2]), str(r[3])) for r in rows}

    def index_message(
        self, md: Maildir, folder_id: int, uidvalidity: int, uid: str, filename: str, flags: Iterable[str]
    ) -> int:
        info = read_header_info(md.path(filename))
        size = md.path(filename).stat().st_size
        cur = self.db.execute(
            "INSERT OR IGNORE INTO messages (folder_id, uidvalidity, uid, filename, flags, size, date, sender,"
            " recipients, subject, message_id) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                folder_id, uidvalidity, uid, filename, " ".join(sorted(flags)), size,
                info.date, info.sender, info.recipients, info.subject, info.message_id,
            ),
        )
        return int(cur.lastrowid or 0)

    def recover(self, account: str, folder: str) -> int:
        """Adopt files that reached cur/ but whose index row was never committed (crash)."""
        md = self.maildir(account, folder)
        if not md.exists():
            return 0
        md.clean_tmp()
        fid = self.folder_id(account, folder)
        indexed = {r[0] for r in self.db.execute("SELECT filename FROM messages WHERE folder_id=?", (fid,))}
        adopted = 0
        with self.transaction():
            for name in md.files():
                if name in indexed:
                    continue
                key = server_key(name)
                if key is None:
                    continue  # a foreign file (another program put it here): left alone, not uploaded
                uidvalidity, uid = key
                dup = self.db.execute(
                    "SELECT filename FROM messages WHERE folder_id=? AND uidvalidity=? AND uid=?",
                    (fid, uidvalidity, uid),
                ).fetchone()
                if dup:
                    md.remove(name)  # a second copy from an interrupted re-download
                    continue
                self.index_message(md, fid, uidvalidity, uid, name, info_to_flags(name))
                adopted += 1
        return adopted

    def update_flags(self, row_id: int, filename: str, flags: Iterable[str]) -> None:
        self.db.execute(
            "UPDATE messages SET filename=?, flags=? WHERE id=?", (filename, " ".join(sorted(flags)), row_id)
        )

    def delete_row(self, row_id: int) -> None:
        self.db.execute("DELETE FROM messages WHERE id=?", (row_id,))

    def list_messages(
        self, account: str | None = None, folder: str | None = None, limit: int = 50
    ) -> list[MessageSummary]:
        sql = (
            "SELECT m.id, f.account, f.name, m.uid, m.date, m.sender, m.recipients, m.subject, m.message_id,"
            " m.size, m.flags, m.filename FROM messages m JOIN folders f ON f.id = m.folder_id"
        )
        where, args = [], []
        if account:
            where.append("f.account = ?")
            args.append(account)
        if folder:
            where.append("f.name = ?")
            args.append(folder)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY m.date DESC, m.id DESC LIMIT ?"
        rows = self.db.execute(sql, (*args, limit)).fetchall()
        return [self._summary(r) for r in rows]

    def _summary(self, r: tuple[Any, ...]) -> MessageSummary:
        account, folder, filename = str(r[1]), str(r[2]), str(r[11])
        return MessageSummary(
            id=int(r[0]), account=account, folder=folder, uid=str(r[3]), date=str(r[4]), sender=str(r[5]),
            to=str(r[6]), subject=str(r[7]), message_id=str(r[8]), size=int(r[9]),
            flags=str(r[10]), path=str(self.maildir(account, folder).path(filename)),
        )

    def get(self, message_id: int) -> MessageSummary:
        row = self.db.execute(
            "SELECT m.id, f.account, f.name, m.uid, m.date, m.sender, m.recipients, m.subject, m.message_id,"
            " m.size, m.flags, m.filename FROM messages m JOIN folders f ON f.id = m.folder_id WHERE m.id=?",
            (message_id,),
        ).fetchone()
        if row is None:
            raise NotFoundError(
                f"There is no message with id {message_id}",
                "the id is wrong, or the message was deleted",
                "see `deskmail list` for the ids",
            )
        return self._summary(row)

"""POP3 sync's SQL: the listing in a TEMP table, and what to download and delete from it.

The listing (message number, UIDL) is streamed into ``temp.pop_listing``; SQL picks the new
messages (anti-join with ``pop_seen``, every UIDL ever downloaded) and the ones to delete, read
page by page or through a cursor, so memory stays flat however large the mailbox.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import closing
from typing import NamedTuple

from deskmail.store import Store

PAGE = 256  # new messages fetched from SQL at a time (each page is read whole: no statement stays open)


class NewMessage(NamedTuple):
    number: int  # this session's message number
    uidl: str
    partial_id: int | None  # the header-only copy here, replaced by the whole message
    partial_name: str | None


def load_listing(store: Store, entries: Iterable[tuple[int, str]]) -> None:
    """Replace the TEMP table ``pop_listing`` with (message number, identity) as ``entries`` yields them."""
    db = store.db
    # One transaction (a commit per row costs ~15x the whole load), deferred: it writes only TEMP, so
    # the index is not locked while the listing arrives (one TOP per message without UIDL).
    with store.transaction(immediate=False):
        db.execute("DROP TABLE IF EXISTS temp.pop_listing")
        db.execute("CREATE TEMP TABLE pop_listing (num INTEGER PRIMARY KEY, uidl TEXT NOT NULL)")
        # A number listed twice (a broken server) keeps its last identity, as a dict would.
        db.executemany("INSERT OR REPLACE INTO temp.pop_listing (num, uidl) VALUES (?, ?)", entries)


def drop_listing(store: Store) -> None:
    store.db.execute("DROP TABLE IF EXISTS temp.pop_listing")


_NEW_SQL = """
SELECT u.num, u.uidl, m.id, m.filename FROM temp.pop_listing u
LEFT JOIN messages m ON m.folder_id = :folder AND m.uidvalidity = 0 AND m.uid = u.uidl AND m.partial = 1
WHERE u.num > :after
  AND NOT EXISTS (SELECT 1 FROM pop_seen s WHERE s.account = :account AND s.uidl = u.uidl)
  {extra}
ORDER BY u.num LIMIT :limit
"""


def new_messages(store: Store, account: str, folder_id: int, *, headers_only: bool = False,
                 page: int = PAGE) -> Iterator[NewMessage]:
    """Listed messages never downloaded whole, by number; with ``headers_only``, also not yet here as headers.

    Read a page at a time by number (keyset), so the caller may write between pages: rows it
    adds to ``pop_seen`` or ``messages`` are below the next page and cannot change it.
    """
    sql = _NEW_SQL.format(extra="AND m.id IS NULL" if headers_only else "")
    after = 0
    while True:
        rows = store.db.execute(sql, {"folder": folder_id, "account": account, "after": after,
                                      "limit": page}).fetchall()
        for row in rows:
            yield NewMessage(int(row[0]), str(row[1]), row[2], row[3])
        if len(rows) < page:
            return
        after = int(rows[-1][0])


def count_new(store: Store, account: str) -> int:
    row = store.db.execute(
        "SELECT COUNT(*) FROM temp.pop_listing u"
        " WHERE NOT EXISTS (SELECT 1 FROM pop_seen s WHERE s.account = ? AND s.uidl = u.uidl)", (account,),
    ).fetchone()
    return int(row[0])


class Doomed(NamedTuple):
    """A message due for DELE: its number, and the local copy that must be checked first ("" when a
    journaled delete asks for it: the user deleted the copy here)."""

    number: int
    filename: str
    size: int


def doomed_messages(store: Store, account: str, folder_id: int, *, leave: bool, days: int,
                    now: float) -> Iterator[Doomed]:
    """Messages to DELE, by ascending number: stored here whole (in ``pop_seen`` *and* indexed in the
    folder, not a headers-only copy) and due by ``leave_on_server``/``delete_after_days``, or deleted
    here with a pending delete op. The caller checks each one's file before its DELE.

    A UIDL listed twice is never deleted: which of the two messages is stored here is unknowable.
    A message whose row is gone without a delete op (deleted here while ``delete_when_deleted_here``
    was off) is left on the server: nothing here vouches for a copy of it.
    """
    db = store.db
    has_ops = db.execute("SELECT 1 FROM ops WHERE account = ? AND folder = 'INBOX' AND kind = 'delete' LIMIT 1",
                         (account,)).fetchone() is not None
    if leave and not days and not has_ops:
        return  # the default: nothing can be due, skip the pass over the listing
    with closing(db.execute(
        """
        SELECT u.num, COALESCE(m.filename, ''), COALESCE(m.size, 0),
               u.uidl IN (SELECT o.uid FROM ops o
                          WHERE o.account = :account AND o.folder = 'INBOX' AND o.kind = 'delete') AS asked
        FROM temp.pop_listing u
        LEFT JOIN messages m ON m.folder_id = :folder AND m.uidvalidity = 0 AND m.uid = u.uidl AND m.partial = 0
        WHERE (asked
               OR (m.id IS NOT NULL
                   AND EXISTS (SELECT 1 FROM pop_seen s WHERE s.account = :account AND s.uidl = u.uidl
                               AND (:leave = 0 OR (:days != 0 AND :now - s.first_seen > :days * 86400)))))
          AND u.uidl NOT IN (SELECT d.uidl FROM temp.pop_listing d GROUP BY d.uidl HAVING COUNT(*) > 1)
        ORDER BY u.num
        """,
        {"account": account, "folder": folder_id, "leave": int(leave), "days": days, "now": now},
    )) as cursor:
        for number, filename, size, asked in cursor:
            yield Doomed(int(number), "" if asked else str(filename), int(size))


def has_history(store: Store, account: str, folder_id: int) -> bool:
    """Whether this account ever stored POP3 mail here (a Maildir missing now was removed, not never made)."""
    db = store.db
    return (db.execute("SELECT 1 FROM pop_seen WHERE account = ? LIMIT 1", (account,)).fetchone() is not None
            or db.execute("SELECT 1 FROM messages WHERE folder_id = ? LIMIT 1", (folder_id,)).fetchone() is not None)


def forget_history(store: Store, account: str, folder_id: int) -> None:
    """Download everything the server still has again: the local copy is gone (a sync with redownload)."""
    store.db.execute("DELETE FROM pop_seen WHERE account = ?", (account,))
    store.db.execute("DELETE FROM messages WHERE folder_id = ?", (folder_id,))


def settled_ops(store: Store, account: str, *, deleting: bool) -> list[int]:
    """Ids of the ops nothing is left to do for after this session: every op that is not a delete
    (POP3 cannot move or flag), a delete whose message the server no longer lists, and, when this
    session sends the due DELEs, a delete whose UIDL is listed once."""
    rows = store.db.execute(
        """
        SELECT o.id FROM ops o
        WHERE o.account = :account AND o.folder = 'INBOX' AND (
            o.kind != 'delete'
            OR o.uid NOT IN (SELECT uidl FROM temp.pop_listing)
            OR (:deleting AND o.uid NOT IN (SELECT d.uidl FROM temp.pop_listing d GROUP BY d.uidl
                                            HAVING COUNT(*) > 1)))
        """,
        {"account": account, "deleting": int(deleting)},
    )
    return [int(r[0]) for r in rows]


def mark_seen(store: Store, account: str, uidl: str, now: int) -> None:
    """Remember a downloaded UIDL for good (in the transaction that commits its message row)."""
    store.db.execute("INSERT OR IGNORE INTO pop_seen (account, uidl, first_seen) VALUES (?,?,?)",
                     (account, uidl, now))


def mark_partial(store: Store, row_id: int) -> None:
    """The row's file holds only the header block (headers-first download)."""
    store.db.execute("UPDATE messages SET partial=1 WHERE id=?", (row_id,))

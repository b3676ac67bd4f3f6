"""POP3 download: UIDL-based, "leave on server" by default.

Options (``[accounts.NAME.options]``):
- ``leave_on_server`` (default true): never DELE unless one of the rules below says so;
  false = delete each message from the server once it is stored here;
- ``delete_after_days`` (default 0 = never): DELE messages downloaded more than N days ago;
- ``delete_when_deleted_here`` (default false): `deskmail delete` also removes it from the server.

``deskmail sync --headers-only`` fetches only the header block of new messages (POP3 TOP),
for a slow connection; they are listed at once, marked partial, and the next normal sync
replaces them with the whole message.

Every UIDL ever downloaded is remembered (``pop_seen``), so a message deleted here is not
downloaded again. A message is durably stored (file fsync'd, index committed) before any
DELE for it is sent, and DELEs only take effect at QUIT (RFC 1939 UPDATE state), so a crash
or a dropped connection never loses mail. Without UIDL, messages are identified by a hash of
their headers (TOP n 0), and deleting from the server is refused: the identity is too weak.

POP3 never uploads. Message files other programs put into the Maildir (mutt, a file manager) are
indexed as local-only messages (UID ``local:<file name>``) so that `deskmail list` shows them.

Memory stays flat however large the mailbox: the listing (UIDL, one line per message) is
streamed into a TEMP table, and SQL picks the new messages (anti-join with ``pop_seen``) and
the ones to delete, read page by page or through a cursor; nothing here holds one entry per
message in Python.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator
from contextlib import closing
from typing import Any, NamedTuple

from deskmail.model import Account
from deskmail.protocol.pop3 import Pop3Session
from deskmail.store import Store
from deskmail.store.maildir import Maildir, PendingMessage
from deskmail.sync.imap_sync import FolderResult
from deskmail.sync.plan import Pop3Delete, Pop3Download

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing; mypy reads it as True
if TYPE_CHECKING:
    from deskmail.events import CancelToken, Listener

BATCH_MESSAGES = 200
PAGE = 256  # new messages fetched from SQL at a time (each page is read whole: no statement stays open)


class NewMessage(NamedTuple):
    number: int  # this session's message number
    uidl: str
    partial_id: int | None  # the header-only copy here, replaced by the whole message
    partial_name: str | None


def _option(account: Account, key: str, default: Any) -> Any:
    value = account.options.get(key, default)
    return value if isinstance(value, type(default)) else default


# --- the listing in SQL ---------------------------------------------------------------------------

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


def doomed_messages(store: Store, account: str, *, leave: bool, days: int, now: float) -> Iterator[int]:
    """Message numbers to DELE, ascending: stored here (in ``pop_seen``, i.e. committed) and due by
    ``leave_on_server``/``delete_after_days``, or deleted here with a pending delete op.

    A UIDL listed twice is never deleted: which of the two messages is stored here is unknowable.
    """
    db = store.db
    has_ops = db.execute("SELECT 1 FROM ops WHERE account = ? AND folder = 'INBOX' AND kind = 'delete' LIMIT 1",
                         (account,)).fetchone() is not None
    if leave and not days and not has_ops:
        return  # the default: nothing can be due, skip the pass over the listing
    with closing(db.execute(
        """
        SELECT u.num FROM temp.pop_listing u
        WHERE (EXISTS (SELECT 1 FROM pop_seen s WHERE s.account = :account AND s.uidl = u.uidl
                       AND (:leave = 0 OR (:days != 0 AND :now - s.first_seen > :days * 86400)))
               OR u.uidl IN (SELECT o.uid FROM ops o
                             WHERE o.account = :account AND o.folder = 'INBOX' AND o.kind = 'delete'))
          AND u.uidl NOT IN (SELECT d.uidl FROM temp.pop_listing d GROUP BY d.uidl HAVING COUNT(*) > 1)
        ORDER BY u.num
        """,
        {"account": account, "leave": int(leave), "days": days, "now": now},
    )) as cursor:
        for (number,) in cursor:
            yield int(number)


# --- the sync ---------------------------------------------------------------------------------------

def sync_pop3_account(account: Account, store: Store, pop: Pop3Session, *,
                      listener: Listener | None = None, cancel: CancelToken | None = None,
                      headers_only: bool = False, settled: list[int] | None = None,
                      dry_run: bool = False) -> FolderResult:
    """Download new mail and send the DELEs that are due.

    ``settled`` receives the ids of the journaled ops that need nothing more once the
    session ends with QUIT (when the DELEs take effect); the caller forgets them only then.
    ``dry_run``: the result's ``plan`` says what would be done; nothing is written.
    """
    from deskmail import events  # imported by whoever made the listener or the token anyway

    listener = listener or events.ignore
    cancel = cancel or events.NEVER
    cancel.check()
    listener(events.FolderStarted(account.name, "INBOX"))
    result = _sync_pop3(account, store, pop, listener, cancel, headers_only, settled, dry_run)
    listener(events.FolderFinished(account.name, "INBOX", result.new, tuple(result.notes)))
    return result


def _dry_run(account: Account, store: Store, pop: Pop3Session, headers_only: bool) -> FolderResult:
    result = FolderResult(account.name, "INBOX")
    folder = store.folder(account.name, "INBOX")
    listing = pop.uidl_listing()
    if listing is None:
        result.notes.append("the server has no UIDL: a real sync matches messages by their headers")
        result.plan.append(Pop3Download(pop.message_count(), headers_only))
        return result
    try:
        load_listing(store, listing)
        result.plan.append(Pop3Download(count_new(store, account.name), headers_only))
        if folder is not None and not headers_only:
            leave, days = _option(account, "leave_on_server", True), _option(account, "delete_after_days", 0)
            doomed = sum(1 for _ in doomed_messages(store, account.name, leave=leave, days=days, now=time.time()))
            if doomed:
                result.plan.append(Pop3Delete(doomed))
    finally:
        drop_listing(store)
    return result


def _sync_pop3(account: Account, store: Store, pop: Pop3Session, listener: Listener, cancel: CancelToken,
               headers_only: bool, settled: list[int] | None, dry_run: bool) -> FolderResult:
    if dry_run:
        return _dry_run(account, store, pop, headers_only)
    result = FolderResult(account.name, "INBOX")
    with store.transaction():
        folder = store.ensure_folder(account.name, "INBOX")
    md = store.folder_maildir(folder)
    md.ensure()
    _adopted, foreign = store.recover_unknown(folder)
    if foreign:
        # Files other programs put here: listed and readable, never uploaded (POP3 cannot store mail).
        store.index_local(folder, foreign)
    leave = _option(account, "leave_on_server", True)
    days = _option(account, "delete_after_days", 0)

    listing = pop.uidl_listing()
    strong_ids = listing is not None
    if listing is None:
        # No UIDL: a hash of the header block is the best identity there is (F-18 c).
        listing = ((n, "hdr-" + hashlib.sha256(pop.top_headers(n)).hexdigest()[:32])
                   for n in range(1, pop.message_count() + 1))
        result.notes.append("the server has no UIDL: messages are matched by their headers and are never "
                            "deleted from the server")
    try:
        load_listing(store, listing)
        if headers_only:
            _fetch_headers(store, md, folder.id, pop, new_messages(store, account.name, folder.id,
                                                                   headers_only=True), result)
            _settled_ops(store, account.name, deleting=False, into=settled)
            return result
        _download(account, store, md, folder.id, pop, listener, cancel, result)
        if not strong_ids:
            _settled_ops(store, account.name, deleting=False, into=settled)
            return result
        # Read before the DELEs: the ops these DELEs carry out (duplicated UIDLs are never deleted).
        _settled_ops(store, account.name, deleting=True, into=settled)
        # Deletes: only for messages whose copy here is durable (they are in pop_seen only after commit).
        for number in doomed_messages(store, account.name, leave=leave, days=days, now=time.time()):
            pop.delete(number)
            result.deleted += 1
        if result.deleted:
            from deskmail.events import Deleted

            listener(Deleted(account.name, "INBOX", result.deleted, here=False))
        # The DELEs take effect at QUIT; the caller forgets the settled ops only then.
        return result
    finally:
        drop_listing(store)


def _settled_ops(store: Store, account: str, *, deleting: bool, into: list[int] | None) -> None:
    """Ops nothing is left to do for after this session: every op that is not a delete (POP3 cannot
    move or flag), a delete whose message the server no longer lists, and, when this session sends
    the due DELEs, a delete whose UIDL is listed once. A delete that waits (``--headers-only``, or
    a listing without UIDL) stays journaled for a later sync."""
    if into is None:
        return
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
    into.extend(int(r[0]) for r in rows)


def _download(account: Account, store: Store, md: Maildir, folder_id: int, pop: Pop3Session,
              listener: Listener, cancel: CancelToken, result: FolderResult) -> None:
    from deskmail import events

    total = count_new(store, account.name) if listener is not events.ignore else 0
    # Only the messages between RETR and commit are held: at most the pipelining window plus a batch.
    wanted: dict[int, NewMessage] = {}
    pending: dict[int, PendingMessage] = {}
    batch: list[tuple[PendingMessage, int, str, tuple[str, ...], bool]] = []
    replaces: list[NewMessage] = []

    def numbers() -> Iterator[int]:
        for new in new_messages(store, account.name, folder_id):
            wanted[new.number] = new
            yield new.number

    def open_sink(number: int) -> PendingMessage:
        pending[number] = md.begin()
        return pending[number]

    def flush() -> None:
        nonlocal batch, replaces
        names = md.publish(batch)
        now = int(time.time())
        with store.transaction():
            for (p, _v, uid, _f, _pop), name, new in zip(batch, names, replaces, strict=True):
                if new.partial_id is not None and new.partial_name is not None:
                    # the whole message replaces its header-only copy
                    md.remove(new.partial_name)
                    store.delete_row(new.partial_id)
                store.insert_message(md, folder_id, 0, uid, name, (), bytes(p.head), p.size)
                store.db.execute("INSERT OR IGNORE INTO pop_seen (account, uidl, first_seen) VALUES (?,?,?)",
                                 (account.name, uid, now))
        result.new += len(batch)
        listener(events.MessagesDownloaded(account.name, "INBOX", result.new, max(total, result.new), result.bytes))
        batch, replaces = [], []

    try:
        for number in pop.retrieve_stream(numbers(), open_sink, pipelining="PIPELINING" in pop.capabilities()):
            p = pending.pop(number)
            new = wanted.pop(number)
            batch.append((p, 0, new.uidl, (), True))
            replaces.append(new)
            p.close()  # now, not at publish: its write buffer is not kept with the batch
            result.bytes += p.size
            if len(batch) >= BATCH_MESSAGES:
                flush()
                cancel.check()  # the batch is durable and indexed; no DELE has been sent yet
        if batch:
            flush()
    finally:
        for p in pending.values():
            p.discard()
        for p, *_ in batch:
            p.discard()


def _fetch_headers(store: Store, md: Maildir, folder_id: int, pop: Pop3Session, new: Iterable[NewMessage],
                   result: FolderResult) -> None:
    batch: list[tuple[PendingMessage, int, str, tuple[str, ...], bool]] = []
    fetched = 0

    def flush() -> None:
        nonlocal batch, fetched
        names = md.publish(batch)
        with store.transaction():
            for (p, _v, uid, _f, _pop), name in zip(batch, names, strict=True):
                row = store.insert_message(md, folder_id, 0, uid, name, (), bytes(p.head), p.size)
                store.db.execute("UPDATE messages SET partial=1 WHERE id=?", (row,))
        fetched += len(batch)
        batch = []

    try:
        for msg in new:
            p = md.begin()
            batch.append((p, 0, msg.uidl, (), True))
            p.write(pop.top_headers(msg.number))
            p.close()
            if len(batch) >= BATCH_MESSAGES:
                flush()
        flush()
    finally:
        for p, *_ in batch:
            p.discard()
    result.new += fetched
    result.notes.append(f"{fetched} message(s): headers only; the next sync downloads the rest")


def forget_ops(store: Store, op_ids: list[int]) -> None:
    """Forget journaled ops once the session that settled them has ended with QUIT."""
    with store.transaction():
        for op_id in op_ids:
            store.op_done(op_id)

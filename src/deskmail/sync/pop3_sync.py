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
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from deskmail.model import Account
from deskmail.protocol.pop3 import Pop3Session
from deskmail.store import Store
from deskmail.store.maildir import Maildir, PendingMessage
from deskmail.sync.imap_sync import FolderResult, Progress

BATCH_MESSAGES = 200


def _option(account: Account, key: str, default: Any) -> Any:
    value = account.options.get(key, default)
    return value if isinstance(value, type(default)) else default


def sync_pop3_account(account: Account, store: Store, pop: Pop3Session, *,
                      progress: Progress | None = None, headers_only: bool = False) -> FolderResult:
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

    uidl = pop.uidl()
    strong_ids = uidl is not None
    if uidl is None:
        # No UIDL: a hash of the header block is the best identity there is (F-18 c).
        uidl = {n: "hdr-" + hashlib.sha256(pop.top_headers(n)).hexdigest()[:32] for n in sorted(pop.sizes())}
        result.notes.append("the server has no UIDL: messages are matched by their headers and are never "
                            "deleted from the server")
    seen = {r[0]: int(r[1]) for r in store.db.execute(
        "SELECT uidl, first_seen FROM pop_seen WHERE account=?", (account.name,))}
    new = [(n, u) for n, u in sorted(uidl.items()) if u not in seen]

    partial = {str(r[0]): (int(r[1]), str(r[2])) for r in store.db.execute(
        "SELECT uid, id, filename FROM messages WHERE folder_id=? AND partial=1", (folder.id,))}
    if headers_only:
        _fetch_headers(store, md, folder.id, pop, [(n, u) for n, u in new if u not in partial], result)
        return result
    numbers = [n for n, _ in new]
    by_number = dict(new)
    pending: dict[int, PendingMessage] = {}
    batch: list[tuple[PendingMessage, int, str, tuple[str, ...], bool]] = []

    def open_sink(number: int) -> PendingMessage:
        pending[number] = md.begin()
        return pending[number]

    def flush() -> None:
        nonlocal batch
        names = md.publish(batch)
        now = int(time.time())
        with store.transaction():
            for (p, _v, uid, _f, _pop), name in zip(batch, names, strict=True):
                if uid in partial:  # the whole message replaces its header-only copy
                    row_id, old_name = partial.pop(uid)
                    md.remove(old_name)
                    store.delete_row(row_id)
                store.insert_message(md, folder.id, 0, uid, name, (), bytes(p.head), p.size)
                store.db.execute("INSERT OR IGNORE INTO pop_seen (account, uidl, first_seen) VALUES (?,?,?)",
                                 (account.name, uid, now))
                seen[uid] = now
        result.new += len(batch)
        if progress:
            progress(account.name, "INBOX", result.new, len(numbers), result.bytes)
        batch = []

    try:
        for number in pop.retrieve_stream(numbers, open_sink, pipelining="PIPELINING" in pop.capabilities()):
            p = pending.pop(number)
            batch.append((p, 0, by_number[number], (), True))
            result.bytes += p.size
            if len(batch) >= BATCH_MESSAGES:
                flush()
        flush()
    finally:
        for p in pending.values():
            p.discard()
        for p, *_ in batch:
            p.discard()

    if not strong_ids:
        return result
    # Deletes: only for messages whose copy here is durable (they are in pop_seen only after commit).
    doomed: set[int] = set()
    by_uid = {u: n for n, u in uidl.items()}
    now = time.time()
    for uid, first in seen.items():
        if uid not in by_uid:
            continue
        if not leave or (days and now - first > days * 86400):
            doomed.add(by_uid[uid])
    for op in store.pending_ops(account.name, "INBOX"):
        if op.kind == "delete" and op.uid in by_uid:
            doomed.add(by_uid[op.uid])
    for number in sorted(doomed):
        pop.delete(number)
        result.deleted += 1
    # The DELEs take effect at QUIT; forget the ops only then (the caller's `with` sends QUIT).
    return result


def _fetch_headers(store: Store, md: Maildir, folder_id: int, pop: Pop3Session, new: list[tuple[int, str]],
                   result: FolderResult) -> None:
    batch: list[tuple[PendingMessage, int, str, tuple[str, ...], bool]] = []
    for number, uid in new:
        p = md.begin()
        p.write(pop.top_headers(number))
        batch.append((p, 0, uid, (), True))
    names = md.publish(batch)
    with store.transaction():
        for (p, _v, uid, _f, _pop), name in zip(batch, names, strict=True):
            row = store.insert_message(md, folder_id, 0, uid, name, (), bytes(p.head), p.size)
            store.db.execute("UPDATE messages SET partial=1 WHERE id=?", (row,))
    result.new += len(batch)
    result.notes.append(f"{len(batch)} message(s): headers only; the next sync downloads the rest")


def forget_done_ops(store: Store, account: Account) -> None:
    with store.transaction():
        for op in store.pending_ops(account.name, "INBOX"):
            store.op_done(op.id)

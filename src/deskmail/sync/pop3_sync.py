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
or a dropped connection never loses mail. A ``DELE`` the account's rules make due is sent only
after the message's local copy is checked (its index row, and its file in the Maildir at the size
stored); a Maildir that is missing or unreadable stops the sync before anything is listed, exactly
as an IMAP folder's does (code ``store_missing``): an empty store must never read as "downloaded,
delete it there" (F-12). Without UIDL, messages are identified by a hash of
their headers (TOP n 0), and deleting from the server is refused: the identity is too weak.

POP3 never uploads. Message files other programs put into the Maildir (mutt, a file manager) are
indexed as local-only messages (UID ``local:<file name>``) so that `deskmail list` shows them.

Memory stays flat however large the mailbox: the listing (UIDL, one line per message) is
streamed into a TEMP table, and SQL picks the new messages and the ones to delete
(:mod:`deskmail.store.pop3`); nothing here holds one entry per message in Python.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from deskmail.codes import Code
from deskmail.errors import StoreError
from deskmail.model import Account
from deskmail.protocol.pop3 import Pop3Session
from deskmail.store import Store
from deskmail.store.maildir import Maildir, PendingMessage
from deskmail.store.pop3 import (
    NewMessage,
    count_new,
    doomed_messages,
    drop_listing,
    forget_history,
    has_history,
    load_listing,
    mark_partial,
    mark_seen,
    new_messages,
    settled_ops,
)
from deskmail.sync.imap_sync import FolderResult
from deskmail.sync.plan import Pop3Delete, Pop3Download

if TYPE_CHECKING:
    from deskmail.events import CancelToken, Listener

BATCH_MESSAGES = 200


def _option(account: Account, key: str, default: Any) -> Any:
    value = account.options.get(key, default)
    return value if isinstance(value, type(default)) else default


# --- the sync ---------------------------------------------------------------------------------------

def sync_pop3_account(account: Account, store: Store, pop: Pop3Session, *,
                      listener: Listener | None = None, cancel: CancelToken | None = None,
                      headers_only: bool = False, settled: list[int] | None = None,
                      dry_run: bool = False, redownload: bool = False) -> FolderResult:
    """Download new mail and send the DELEs that are due.

    ``settled`` receives the ids of the journaled ops that need nothing more once the
    session ends with QUIT (when the DELEs take effect); the caller forgets them only then.
    ``dry_run``: the result's ``plan`` says what would be done; nothing is written.
    ``redownload``: the local copy is gone; forget what was downloaded and download it again.
    """
    from deskmail import events  # imported by whoever made the listener or the token anyway

    listener = listener or events.ignore
    cancel = cancel or events.NEVER
    cancel.check()
    listener(events.FolderStarted(account.name, "INBOX"))
    result = _sync_pop3(account, store, pop, listener, cancel, headers_only, settled, dry_run, redownload)
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
            doomed = sum(1 for _ in doomed_messages(store, account.name, folder.id, leave=leave, days=days,
                                                    now=time.time()))
            if doomed:
                result.plan.append(Pop3Delete(doomed))
    finally:
        drop_listing(store)
    return result


def _sync_pop3(account: Account, store: Store, pop: Pop3Session, listener: Listener, cancel: CancelToken,
               headers_only: bool, settled: list[int] | None, dry_run: bool, redownload: bool) -> FolderResult:
    _check_store(account, store, redownload and not dry_run)
    if dry_run:
        return _dry_run(account, store, pop, headers_only)
    result = FolderResult(account.name, "INBOX")
    with store.transaction():
        folder = store.ensure_folder(account.name, "INBOX")
    md = store.folder_maildir(folder)
    try:
        md.ensure()
    except OSError as exc:
        raise StoreError(f"Cannot create the mail folder {md.root} ({exc.strerror})") from exc
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
        # Deletes: only for messages whose copy here is durable (indexed only after commit) and still there.
        unverified = 0
        for doomed in doomed_messages(store, account.name, folder.id, leave=leave, days=days, now=time.time()):
            if doomed.filename and not _copy_here(md, doomed.filename, doomed.size):
                unverified += 1
                continue
            pop.delete(doomed.number)
            result.deleted += 1
        if unverified:
            note = (f"{unverified} messages due for deletion were left on the server: their copy here is "
                    "missing or changed")
            result.notes.append(note)
            with store.transaction():
                store.log(account.name, "INBOX", note)
        if result.deleted:
            from deskmail.events import Deleted

            listener(Deleted(account.name, "INBOX", result.deleted, here=False))
        # The DELEs take effect at QUIT; the caller forgets the settled ops only then.
        return result
    finally:
        drop_listing(store)


def _check_store(account: Account, store: Store, redownload: bool) -> None:
    """Stop (``store_missing``) when the Maildir of an account that stored mail before is gone or
    unreadable; with ``redownload``, forget what was stored so that it is downloaded again instead."""
    folder = store.folder(account.name, "INBOX")
    if folder is None:
        return  # the first sync: nothing was ever stored here
    md = store.folder_maildir(folder)
    if _readable(md) or not has_history(store, account.name, folder.id):
        return
    if redownload:
        with store.transaction():
            forget_history(store, account.name, folder.id)
            store.log(account.name, "INBOX", "local copy missing: downloading the mailbox again")
        return
    raise StoreError(
        f"The local copy of the POP3 mailbox of {account.name} is missing or damaged ({md.root})",
        "the mail folder was deleted, moved, unmounted or made unreadable",
        "restore it, or download the mailbox again (a sync with redownload); nothing was deleted on the server",
        code=Code.STORE_MISSING, account=account.name, folder="INBOX",
    )


def _readable(md: Maildir) -> bool:
    if not md.exists():
        return False
    return all(os.access(md.root / sub, os.R_OK | os.W_OK | os.X_OK) for sub in ("cur", "new", "tmp"))


def _copy_here(md: Maildir, filename: str, size: int) -> bool:
    """The message's file is in the Maildir, a regular file of the size stored."""
    try:
        st = os.stat(md.path(filename))
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == size


def _settled_ops(store: Store, account: str, *, deleting: bool, into: list[int] | None) -> None:
    """Ops nothing is left to do for after this session: every op that is not a delete (POP3 cannot
    move or flag), a delete whose message the server no longer lists, and, when this session sends
    the due DELEs, a delete whose UIDL is listed once. A delete that waits (``--headers-only``, or
    a listing without UIDL) stays journaled for a later sync."""
    if into is not None:
        into.extend(settled_ops(store, account, deleting=deleting))


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
                mark_seen(store, account.name, uid, now)
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
                mark_partial(store, row)
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

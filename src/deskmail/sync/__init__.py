"""Download mail into the local store (first version: the INBOX).

IMAP: new messages and flag changes, and messages the server expunged.
POP3: new messages by UIDL; messages are left on the server.

Durability contract (see :mod:`deskmail.store`): a message counts as synced
only when its index row is committed, and that happens after its file is
fsync'd into ``cur/``. Killing the process at any point therefore leaves
either nothing, or a file that the next run adopts (:meth:`Store.recover`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from deskmail.errors import ProtocolError
from deskmail.model import Account, Protocol
from deskmail.protocol.imap import open_imap
from deskmail.protocol.pop3 import open_pop3
from deskmail.secrets import Secret
from deskmail.store import Store

Progress = Callable[[str, int, int], None]  # (folder, done, total)

# Keep a fetch batch's memory bounded: imapclient holds one batch's bodies.
BATCH_BYTES = 8 * 1024 * 1024
BATCH_MAX = 200


@dataclass
class SyncResult:
    account: str
    folder: str = "INBOX"
    new: int = 0
    flags_changed: int = 0
    removed: int = 0
    adopted: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _batches(uids: list[int], sizes: dict[int, int]) -> Iterator[list[int]]:
    batch: list[int] = []
    total = 0
    for uid in uids:
        if batch and (total + sizes.get(uid, 0) > BATCH_BYTES or len(batch) >= BATCH_MAX):
            yield batch
            batch, total = [], 0
        batch.append(uid)
        total += sizes.get(uid, 0)
    if batch:
        yield batch


def sync_account(
    account: Account, password: Secret, store: Store, *, progress: Progress | None = None, timeout: float = 60.0
) -> SyncResult:
    if account.incoming.protocol is Protocol.POP3:
        return _sync_pop3(account, password, store, progress, timeout)
    return _sync_imap(account, password, store, progress, timeout)


def _sync_imap(
    account: Account, password: Secret, store: Store, progress: Progress | None, timeout: float
) -> SyncResult:
    result = SyncResult(account.name)
    md = store.maildir(account.name)
    md.ensure()
    result.adopted = store.recover(account.name, "INBOX")
    fid = store.folder_id(account.name, "INBOX")
    with open_imap(account, password, timeout=timeout) as imap:
        status = imap.select("INBOX", readonly=True)
        previous = store.folder_uidvalidity(fid)
        if previous and previous != status.uidvalidity:
            # Old copies stay (never lose mail); re-matching them to new UIDs is the sync engine's job.
            result.notes.append(
                f"UIDVALIDITY changed ({previous} -> {status.uidvalidity}); earlier copies were kept"
            )
        store.set_folder_uidvalidity(fid, status.uidvalidity)
        server = imap.uid_flags_sizes()
        known = store.known(fid, status.uidvalidity)

        with store.transaction():
            for uid_text, (row_id, filename, local_flags) in known.items():
                uid = int(uid_text)
                if uid not in server:
                    # Expunged on the server (same UIDVALIDITY, confirmed by the full UID listing).
                    md.remove(filename)
                    store.delete_row(row_id)
                    result.removed += 1
                    continue
                flags = server[uid][0]
                if " ".join(sorted(flags)) != local_flags:
                    store.update_flags(row_id, md.set_flags(filename, flags), flags)
                    result.flags_changed += 1

        new = sorted(uid for uid in server if str(uid) not in known)
        sizes = {uid: server[uid][1] for uid in new}
        done = 0
        for batch in _batches(new, sizes):
            stored: list[tuple[int, str, tuple[str, ...]]] = []
            for uid, flags, raw in imap.fetch_messages(batch):
                stored.append((uid, md.add([raw], uidvalidity=status.uidvalidity, uid=str(uid), flags=flags), flags))
            with store.transaction():
                for uid, name, flags in stored:
                    store.index_message(md, fid, status.uidvalidity, str(uid), name, flags)
            done += len(batch)
            result.new += len(stored)
            if progress:
                progress("INBOX", done, len(new))
    return result


def _sync_pop3(
    account: Account, password: Secret, store: Store, progress: Progress | None, timeout: float
) -> SyncResult:
    result = SyncResult(account.name)
    md = store.maildir(account.name)
    md.ensure()
    result.adopted = store.recover(account.name, "INBOX")
    fid = store.folder_id(account.name, "INBOX")
    with open_pop3(account, password, timeout=timeout) as pop:
        uidl = pop.uidl()
        if uidl is None:
            raise ProtocolError(
                f"The POP3 server {account.incoming.host} does not support UIDL",
                "without unique ids deskmail cannot tell which messages it already has",
                "use IMAP for this account if the provider offers it",
            )
        known = store.known(fid, 0)
        new = [(num, uid) for num, uid in sorted(uidl.items()) if uid not in known]
        for done, (num, uid) in enumerate(new, 1):
            raw = pop.retrieve(num)
            name = md.add([raw], uidvalidity=0, uid=uid, flags=(), pop=True)
            with store.transaction():
                store.index_message(md, fid, 0, uid, name, ())
            result.new += 1
            if progress:
                progress("INBOX", done, len(new))
        # Leave on server is the default (and only) mode for now: no DELE is ever sent.
    return result

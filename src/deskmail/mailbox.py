"""Changes a person makes to the local mailbox: flags, moves, deletes.

Each change is applied here at once (the file renamed, the index updated) and journaled for the
server; the next sync carries it out there and removes the journal entry only after the server
said OK. Nothing here talks to a server.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from deskmail.codes import Code
from deskmail.errors import NotFoundError, UsageError
from deskmail.model import Account, Protocol
from deskmail.store import Store

SYSTEM_FLAGS = {"seen": "\\Seen", "read": "\\Seen", "flagged": "\\Flagged", "starred": "\\Flagged",
                "answered": "\\Answered", "replied": "\\Answered", "draft": "\\Draft", "deleted": "\\Deleted"}
MASS_DELETE = 50  # deleting more than this many messages at once needs a confirmation


def flag_name(name: str) -> str:
    """The IMAP name of a flag given by a person: ``seen`` → ``\\Seen``; a keyword stays itself."""
    key = name.lower().lstrip("\\")
    if key in SYSTEM_FLAGS:
        return SYSTEM_FLAGS[key]
    if name.startswith("\\") or not name or not name.replace("$", "").replace("_", "").replace("-", "").isalnum():
        raise UsageError(f"Unknown flag {name!r}", "",
                         "use seen, flagged, answered, draft, or a keyword of letters and digits", code=Code.BAD_FLAG)
    return name  # an IMAP keyword, e.g. $Label1


def set_flags(store: Store, ids: Iterable[int], add: set[str], remove: set[str]) -> int:
    """Add and remove flags on messages here; returns how many messages were changed.

    Every message is looked up and checked before any file is renamed: a refusal (or an unknown id)
    leaves all of them as they were, files and index alike.
    """
    with store.transaction():
        targets = [store.row_by_id(mid) for mid in ids]
        for folder, _row in targets:
            refused = sorted(f for f in add if not folder.keeps(f))
            if refused:
                works = ["seen", "flagged", "answered", "draft"] + [
                    k for k in (folder.permanent_flags or "").split() if not k.startswith("\\")]
                raise UsageError(
                    f"The server does not keep the flag{'s' if len(refused) > 1 else ''} {', '.join(refused)} "
                    f"in {folder.name}",
                    "its PERMANENTFLAGS allow no keywords of your own",
                    f"use one of: {', '.join(works)}", code=Code.FLAG_NOT_KEPT, account=folder.account,
                    folder=folder.name)
        for folder, row in targets:
            flags = (set(row.flags.split()) | add) - remove
            md = store.folder_maildir(folder)
            name = md.set_flags(row.filename, flags)
            store.set_flags(row.id, name, flags)
            if flags != set(row.flags.split()):
                # Also for a keyword, which lives in the index only (nothing on disk changes): the next
                # sync looks at this folder's messages instead of skipping it, even if one runs now.
                store.touch_folder(folder.id)
    return len(targets)


def delete(store: Store, accounts: dict[str, Account], ids: list[int], *, expunge: bool = False,
           confirmed: bool = False) -> int:
    """Delete messages here and journal the deletion: IMAP moves to Trash (or deletes for good with
    ``expunge`` or inside Trash); POP3 deletes on the server only with ``delete_when_deleted_here``."""
    if len(ids) > MASS_DELETE and not confirmed:
        raise UsageError(f"You are about to delete {len(ids)} messages",
                         "large deletions need confirmation", "confirm that this is what you want",
                         code=Code.MASS_DELETE)
    with store.transaction():
        # Every message is looked up first: an unknown id deletes nothing, on disk or in the index.
        targets = [(mid, *store.row_by_id(mid)) for mid in ids]
        for mid, folder, _row in targets:
            if folder.account not in accounts:
                raise NotFoundError(f"Message {mid} belongs to a removed account", code=Code.ACCOUNT_REMOVED)
        trash = {name: next((f for f in store.folders(name) if f.special_use == "\\Trash"), None)
                 for name in {folder.account for _mid, folder, _row in targets}}
        for _mid, folder, row in targets:
            account = accounts[folder.account]
            account_trash = trash[folder.account]
            md = store.folder_maildir(folder)
            if account.incoming.protocol is Protocol.POP3:
                if account.options.get("delete_when_deleted_here"):
                    store.add_op(folder.account, "delete", folder.name, 0, row.uid)
            elif account_trash is not None and account_trash.id != folder.id and not expunge:
                store.add_op(folder.account, "move", folder.name, row.uidvalidity, row.uid, account_trash.name,
                             row.message_id)
                store.touch_folder(folder.id)
                continue  # the file stays until the server has moved it
            else:
                store.add_op(folder.account, "delete", folder.name, row.uidvalidity, row.uid,
                             message_id=row.message_id)
            md.remove(row.filename)
            store.delete_row(row.id)
            store.touch_folder(folder.id)
    return len(ids)


def move(store: Store, ids: list[int], target: str) -> int:
    """Journal moving messages to ``target`` (a folder of the same account); done at the next sync."""
    with store.transaction():
        for mid in ids:
            folder, row = store.row_by_id(mid)
            if store.folder(folder.account, target) is None:
                raise NotFoundError(f"There is no folder {target!r} in account {folder.account}",
                                    "", "pick one of the account's folders (they are known after a sync)",
                                    code=Code.NO_SUCH_FOLDER, account=folder.account, folder=target)
            store.add_op(folder.account, "move", folder.name, row.uidvalidity, row.uid, target, row.message_id)
            store.touch_folder(folder.id)
    return len(ids)


@dataclass(frozen=True, slots=True)
class FolderInfo:
    """A folder of an account, as of the last sync."""

    name: str
    special_use: str
    subscribed: bool
    sync: bool
    messages: int
    path: str
    unread: int = 0
    delimiter: str = "/"  # the server's hierarchy separator (a folder "Archive/2024" is inside "Archive")

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "special_use": self.special_use, "subscribed": self.subscribed,
                "sync": self.sync, "messages": self.messages, "unread": self.unread, "path": self.path}


def folders(store: Store, account: str) -> list[FolderInfo]:
    rows = store.folders(account)
    counts = store.folder_counts()
    unread = store.folder_unread_counts()
    return [FolderInfo(f.name, f.special_use, bool(f.subscribed), bool(f.sync), counts.get(f.id, 0), f.path,
                       unread.get(f.id, 0), f.delimiter or "/") for f in rows]


def choose_folders(store: Store, account: Account, *, enable: Iterable[str] = (), disable: Iterable[str] = (),
                   upload: Iterable[str] = ()) -> None:
    """Turn folders' sync on or off, and confirm uploading many messages saved here into a folder."""
    for name, value in [(n, 1) for n in enable] + [(n, 0) for n in disable]:
        f = store.folder(account.name, name)
        if f is None:
            raise NotFoundError(f"There is no folder {name!r}", "", "the folders are known after a sync",
                                code=Code.NO_SUCH_FOLDER, account=account.name, folder=name)
        store.update_folder(f.id, sync=value)
    for name in upload:
        f = store.folder(account.name, name)
        if f is None or not f.sync or account.incoming.protocol is Protocol.POP3:
            raise UsageError(f"Messages saved in {name!r} cannot be uploaded",
                             "there is no such folder, it is not synced, or the account is POP3",
                             "pick a synced folder of an IMAP account", code=Code.NO_UPLOAD, account=account.name,
                             folder=name)
        store.confirm_upload(account.name, name)

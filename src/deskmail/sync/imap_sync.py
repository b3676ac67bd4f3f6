"""Two-way IMAP sync of every folder: theory of operation.

Per account: LIST the server's folders and reconcile them with the index
(new folders created, renamed ones recognised by UIDVALIDITY and moved on
disk, vanished ones quarantined, never silently deleted). A Maildir++
directory made here by another program (mutt) is CREATEd and SUBSCRIBEd on
the server, then synced like any folder (its messages uploaded, step 8);
only one the index never knew and whose files carry no server identity: a
folder deleted on the server is never brought back.

Then per folder, **gather → plan → apply**. Gathering (:meth:`ImapSync._gather`)
reads the local state (steps 1-2: index rows, flags from file names, missing
and unknown files, the journal) and the server state (step 3) into plain data
(:class:`deskmail.sync.plan.LocalState`, :class:`~deskmail.sync.plan.ServerState`).
The pure planner :func:`deskmail.sync.plan.plan_folder` (no sockets, store,
files or clock) turns them into an ordered list of frozen actions (Rekey,
DeleteThere/MoveThere, ForgetMissing, ExpungeHere, PullFlags, PushFlags,
ResumeUploads, Download, UploadThere, Checkpoint, ...: steps 4-8), and the
executor (:meth:`ImapSync._apply`) applies them in that order, each leaving
the store consistent and durable, so a :class:`~deskmail.events.CancelToken`
is checked between them (and after each published download batch and each
upload). The last action, Checkpoint, advances the folder's sync state, so an
interrupted run repeats the rest next time. After a Rekey (UIDVALIDITY
changed) the folder is gathered and planned again. A dry run gathers and
plans only: EXAMINE instead of SELECT, nothing written here or there, the
plan returned in each result's ``plan``. The fast paths stay in the
gathering: a LIST-STATUS that shows no change ends the folder before any
SELECT; a QRESYNC SELECT reporting nothing reads no index row; a first sync
lists nothing.

1. **Local state.** The index row of each message holds ``synced_flags``
   (what both sides agreed on last time) and ``flags`` (local now). If
   ``cur/`` or ``new/`` changed since the last scan (mtimes), file names are
   re-read (after the SELECT, whose UIDVALIDITY says which names are ours) so
   flag changes by mutt & co. are seen, and files the index cannot place are
   noted for step 8. A file that vanished behind our back is *not* a user
   delete (F-15): it is downloaded again. So a file moved by hand from folder
   A to folder B (mutt, a file manager) becomes a copy: downloaded again in
   A, uploaded in B. Only journaled user intent ever deletes on the server.
2. **Safety.** A folder that was synced before but whose Maildir is missing
   or unreadable stops the sync with "local store missing or damaged"; no
   server write follows from an empty or broken store (F-12).
3. **Server state.** ``SELECT`` with QRESYNC (changed flags and VANISHED
   UIDs since our HIGHESTMODSEQ: one round trip when nothing changed), or
   with CONDSTORE (skip everything if HIGHESTMODSEQ, UIDNEXT and EXISTS are
   unchanged), or a full ``UID FETCH 1:* (FLAGS)``.
4. **UIDVALIDITY changed:** local copies are re-matched by Message-ID and
   size and adopt their new UIDs (no re-download); copies that match nothing
   are moved to a local "Recovered" folder, never pushed or deleted (F-06/07).
5. **User intent first:** journaled deletes and moves (``ops`` table) are
   sent (MOVE, else COPY+STORE+UID EXPUNGE, else COPY+STORE+EXPUNGE) and
   removed from the journal only after the server said OK.
6. **Flags, three-way:** per message, additions and removals from both
   sides are merged (a flag added on one side and untouched on the other is
   added; the same for removals; conflicting edits are unioned), renamed on
   disk where the file differs, pushed with ``UID STORE`` where the server
   differs, and recorded as the new ``synced_flags`` only once the server
   accepted the STORE (a lost connection or a refusal leaves the change to be
   sent by the next sync). Keywords (``$Label1``) are sent only when the
   SELECT's PERMANENTFLAGS has ``\\*`` or names them (or is absent); others
   stay here, are not recorded as agreed, and the folder's notes name them.
   Expunged on the server wins over any local flag change. Before any of
   this is applied, the messages the plan acts on by UID (flags, journaled
   deletes and moves) and the newest one held here are checked to be the
   messages their UIDs named when stored (Message-ID); a UID that now names
   another message, or a UIDNEXT that went backwards, stops the folder with
   ``uids_unstable`` and nothing is changed on either side (F-16).
   A message expunged from the folder on the server is not removed here at
   once: its file is parked (``deskmail-parked/`` below the account's mail
   root, its row gone) until the run has synced every folder, then removed.
7. **New mail:** one ``UID FETCH`` for all new UIDs (and the messages
   whose file vanished here: their index row stays until the new copy
   replaces it in the same transaction), bodies streamed into
   ``tmp/``, published in batches (one file-system flush, renames, one
   directory fsync), then the batch's index rows committed. The index row is
   the sync state, so a crash anywhere leaves either nothing or a file that
   :meth:`deskmail.store.Store.recover` adopts by the identity in its name.
   Messages another client moved or copied (F-10): when a local copy could
   exist (something is parked, or another folder holds messages), the new
   UIDs' Message-ID, size and flags are listed first; one matching a parked
   file or another folder's file, whose first bytes the server gives
   identical, is taken from that file (renamed from the park, or hard-linked
   from the other folder, whose own sync removes its copy once the server no
   longer has it there), not downloaded. Either folder order works: the
   source synced first parks, the target synced first links.
8. **Messages saved here:** a message file in ``cur/``/``new/`` whose name
   carries no identity of this folder (mutt saved it, a file manager dropped
   it, or it was moved here from another folder) is uploaded with
   ``APPEND`` (flags from its Maildir info letters, CRLF line ends), then
   adopted: renamed to ``,V=<uidvalidity>,U=<uid>`` (UIDPLUS APPENDUID, else
   found with ``UID SEARCH``), ``cur/`` fsync'd, index row committed.
   Crash safety: an ``append`` op is committed durably *before* the APPEND
   (the file's unique name and the UIDNEXT before it). A run that finds a
   pending op first looks for the message on the server (UIDs >= that
   UIDNEXT, not held by a local copy; same Message-ID and size, or, with
   no Message-ID, same size and same bytes) and adopts it; only if it is not
   there is it appended again. Never uploaded: ``tmp/`` (partial files), dot
   files, symlinks, empty files, folders that are not synced (the
   "Recovered" quarantines included), POP3 accounts. More than
   ``MASS_UPLOAD`` new files in one folder wait for ``deskmail folders
   --upload NAME`` (a wrong directory or a restored backup must not flood the
   server). Nothing is uploaded from a missing store: step 2 stops first.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

from deskmail.codes import Code
from deskmail.durable import fsync_dir
from deskmail.errors import NetworkError, ProtocolError, StoreError
from deskmail.model import Account
from deskmail.protocol.imap import (
    FolderStatus,
    ImapSession,
    qresync_params,
    quote_string,
    special_use_of,
)
from deskmail.protocol.imap_stream import FetchItem, Untagged, compress_uids, parse_uid_set
from deskmail.store import Folder, Op, Row, Store, read_header_info
from deskmail.store.maildir import (
    Maildir,
    PendingMessage,
    Upload,
    flags_to_info,
    info_to_flags,
    release_freed_memory,
    server_key,
)

if TYPE_CHECKING:
    from deskmail.events import CancelToken, Listener
    from deskmail.sync.plan import (
        Action,
        DeleteThere,
        Download,
        ExpungeHere,
        FlagChange,
        LocalState,
        Mode,
        MoveThere,
        PushFlags,
        ServerState,
    )

BATCH_MESSAGES = 500
# Local copies of messages gone from their folder on the server wait here (below the account's mail
# root, not a Maildir++ folder) until the run ends: another client may have moved them (F-10).
PARKED = "deskmail-parked"
# How much of a message's start is compared before a local copy stands in for a download (F-10).
SAME_START = 4096
# At most this many messages of a flag sync are checked to still be the messages their UIDs named (F-16).
IDENTITY_SAMPLE = 1000
BATCH_BYTES = 32 * 1024 * 1024
# Test hook: DESKMAIL_FAULT=crash_after_append SIGKILLs the process right after the server accepted an
# upload and before the file is adopted (tests/test_sync.py proves the resume). Read only on that path.
FAULT_ENV = "DESKMAIL_FAULT"

_COPYUID = re.compile(rb"\[COPYUID (\d+) ([\d:,]+) ([\d:,]+)\]", re.I)


@dataclass(slots=True)
class FolderResult:
    """What one folder's sync did."""

    account: str
    folder: str
    new: int = 0
    bytes: int = 0
    flags_pushed: int = 0
    flags_pulled: int = 0
    removed: int = 0  # expunged on the server, removed here
    deleted: int = 0  # deleted here, pushed to the server
    moved: int = 0
    refetched: int = 0
    reused: int = 0  # of ``new``: taken from a local copy (moved here by another client), not downloaded
    conflicts: int = 0
    uploaded: int = 0  # local-only messages appended to the server
    held_uploads: int = 0  # messages saved here that wait for a confirmation before they are uploaded
    notes: list[str] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)  # deskmail.codes of what kept something from being done
    plan: list[Action] = field(default_factory=list)  # a dry run's planned actions (a real run applies them)

    def to_dict(self) -> dict[str, object]:
        # Not the plan: objects, not JSON (SyncRun.to_dict describes them).
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "plan"}


def _fs(text: str | tuple[str, ...]) -> frozenset[str]:
    return frozenset(text.split() if isinstance(text, str) else text)


class ImapSync:
    def __init__(
        self,
        account: Account,
        store: Store,
        session: ImapSession,
        *,
        listener: Listener | None = None,
        cancel: CancelToken | None = None,
        folders: list[str] | None = None,
        redownload: bool = False,
        dry_run: bool = False,
    ) -> None:
        self.redownload = redownload
        # deskmail.events is imported only when someone listens or may cancel (~13 ms of start-up:
        # its dataclasses): the quiet no-change sync needs neither.
        self.listener = listener
        self.cancel = cancel
        self.dry_run = dry_run  # gather and plan only: nothing written here or on the server
        self.folder_plans: dict[str, list[Action]] = {}  # dry run: folder-level actions (made, renamed, gone)
        self.status_hint: dict[str, dict[str, int]] = {}
        self.account = account
        self.store = store
        self.only = folders
        self._use(session)
        self.folder_notes: dict[str, list[str]] = {}  # said by reconcile_folders, shown with the folder's result
        self.unsynced: list[FolderResult] = []  # folders made here that the server refused to create
        # (Message-ID, size) -> local copies of messages gone from their folder this run (or a killed one)
        self._parked: dict[tuple[str, int], list[Path]] | None = None

    def _use(self, session: ImapSession) -> None:
        self.imap = session
        caps = {c.decode().upper() if isinstance(c, bytes) else str(c).upper() for c in session.capabilities}
        self.caps = caps
        self.qresync = "QRESYNC" in caps and "QRESYNC" in {c.upper() for c in session.enable("QRESYNC")}
        self.condstore = self.qresync or "CONDSTORE" in caps
        self.move = "MOVE" in caps
        self.uidplus = "UIDPLUS" in caps

    def _check(self) -> None:
        """A safe point: stop here (raising Cancelled) if the caller asked."""
        if self.cancel is not None:
            self.cancel.check()

    # --- folders -------------------------------------------------------------

    def reconcile_folders(self) -> list[Folder]:
        name = self.account.name
        listed = self.imap.list_status()
        self.status_hint = {}
        if listed is not None:
            server = {f.name: (f.flags, f.delimiter) for f in listed}
            subscribed = {f.name for f in listed if "\\Subscribed" in f.flags}
            self.status_hint = {f.name: f.status for f in listed if f.status}
        else:
            server = {n: (flags, delim) for flags, delim, n in self.imap.list_folders()}
            try:
                subscribed = self.imap.subscribed()
            except ProtocolError:
                subscribed = set(server)
        known = {f.name: f for f in self.store.folders(name)}
        gone = [f for n, f in known.items() if n not in server and f.sync and f.uidvalidity]
        if self.only is None:
            server.update(self._create_local_folders(server, known))
        if self.dry_run:
            return self._plan_folders(server, known, gone)
        with self.store.transaction():
            for folder_name, (flags, delim) in server.items():
                if "\\Noselect" in flags or "\\NonExistent" in flags:
                    continue
                use = special_use_of(flags, folder_name)
                sub = folder_name in subscribed or folder_name.upper() == "INBOX"
                if folder_name in known:
                    f = known[folder_name]
                    if (f.special_use, bool(f.subscribed), f.delimiter) != (use, sub, delim):
                        self.store.ensure_folder(name, folder_name, delim, use, sub)
                    continue
                renamed = self._find_renamed(folder_name, gone)
                if renamed is not None:
                    self._rename_local(renamed, folder_name, delim)
                    gone.remove(renamed)
                    continue
                self.store.ensure_folder(name, folder_name, delim, use, sub)
            for folder in gone:
                self._quarantine_folder(folder)
        wanted = [
            f for f in self.store.folders(name)
            if f.name in server and f.sync and (self.only is None or f.name in self.only)
        ]
        # INBOX first: it is where new mail is, and its SELECT may already be answered (see deskmail.cli.fastpath).
        return sorted(wanted, key=lambda f: f.name.upper() != "INBOX")

    def _plan_folders(self, server: dict[str, tuple[tuple[str, ...], str]], known: dict[str, Folder],
                      gone: list[Folder]) -> list[Folder]:
        """Dry run of the folder reconciliation: its actions into ``folder_plans``; the folders to plan."""
        from deskmail.sync.plan import CreateFolder, QuarantineFolder, RenameHere

        for folder_name, (flags, _delim) in server.items():
            if "\\Noselect" in flags or "\\NonExistent" in flags or folder_name in known:
                continue
            if self.only is not None and folder_name not in self.only:
                continue
            renamed = self._find_renamed(folder_name, gone)
            if renamed is not None:
                gone.remove(renamed)
                self.folder_plans.setdefault(folder_name, []).append(RenameHere(renamed.name, folder_name))
            else:
                self.folder_plans.setdefault(folder_name, []).append(CreateFolder(folder_name, there=False))
        for folder in gone:
            self.folder_plans.setdefault(folder.name, []).append(QuarantineFolder(folder.name))
        wanted = [f for f in known.values()
                  if f.name in server and f.sync and (self.only is None or f.name in self.only)]
        return sorted(wanted, key=lambda f: f.name.upper() != "INBOX")

    def _create_local_folders(self, server: dict[str, tuple[tuple[str, ...], str]],
                              known: dict[str, Folder]) -> dict[str, tuple[tuple[str, ...], str]]:
        """Create on the server the folders made here (a Maildir++ directory another program created).

        Only a directory the index has never known and whose files carry no server identity counts:
        one that was synced before and is gone from the server is the server's deletion, and is
        never brought back. Its messages are then uploaded like any message saved here.
        """
        from deskmail.store.maildir import folder_name

        account = self.account.name
        root = self.store.maildir(account).root
        known_paths = {f.path for f in known.values()}
        delimiter = next((d for n, (_f, d) in server.items() if n.upper() == "INBOX" and d), None) or next(
            (d for _f, d in server.values() if d), "/")
        others = [n for n in server if n.upper() != "INBOX"]
        # Servers with the Courier/Cyrus layout keep every folder below INBOX ("INBOX.Sent").
        below = f"INBOX{delimiter}"
        prefix = below if others and all(n.upper().startswith(below) for n in others) else ""
        try:
            with os.scandir(root) as found:
                entries = sorted(e.name for e in found if e.name.startswith(".") and e.is_dir(follow_symlinks=False))
        except OSError:
            return {}
        made: dict[str, tuple[tuple[str, ...], str]] = {}
        taken = {n.casefold() for n in server}
        for path in entries:
            decoded = folder_name(path, delimiter)
            if path in known_paths or decoded is None:
                continue
            md = self.store.maildir(account, path)
            if not (md.root / "cur").is_dir() or not (md.root / "new").is_dir() or md.has_server_names():
                continue
            folder = prefix + decoded
            if folder.casefold() in taken:
                continue  # on the server under this name already (another directory is its copy here)
            if self.dry_run:
                from deskmail.sync.plan import CreateFolder

                self.folder_plans.setdefault(folder, []).append(CreateFolder(folder, there=True))
                continue
            try:
                self.imap.create_folder(folder)
            except ProtocolError as exc:
                note = f"exists only here: the server refused to create it ({exc.what}); nothing was uploaded"
                self.unsynced.append(FolderResult(account, folder, notes=[note]))
                with self.store.transaction():
                    self.store.log(account, folder, note)
                continue
            notes = ["created on the server (the folder was made here)"]
            try:
                self.imap.subscribe(folder)
            except ProtocolError as exc:  # created, only not subscribed: it is synced all the same
                notes.append(f"the server refused to subscribe it ({exc.what})")
            with self.store.transaction():
                self.store.ensure_folder(account, folder, delimiter, special_use_of((), folder), True, path=path)
                for note in notes:
                    self.store.log(account, folder, f"{note}: {path}")
            self.folder_notes.setdefault(folder, []).extend(notes)
            made[folder] = (("\\Subscribed",), delimiter)
            taken.add(folder.casefold())
        return made

    def _find_renamed(self, new_name: str, gone: list[Folder]) -> Folder | None:
        if not gone:
            return None
        try:
            uv = self.imap.status_uidvalidity(new_name)
        except ProtocolError:
            return None
        return next((f for f in gone if f.uidvalidity == uv), None)

    def _rename_local(self, folder: Folder, new_name: str, delim: str) -> None:
        from deskmail.store.maildir import folder_path

        old_md = self.store.folder_maildir(folder)
        path = self.store._free_path(folder.account, folder_path(new_name, delim))
        new_root = self.store.maildir(folder.account, path).root
        if old_md.root.exists():
            old_md.root.rename(new_root)
        self.store.update_folder(folder.id, name=new_name, path=path)
        self.store.log(folder.account, new_name, f"folder renamed on the server: {folder.name} -> {new_name}")

    def _quarantine_folder(self, folder: Folder) -> None:
        stamp = time.strftime("%Y-%m-%d %H.%M")
        new_name = f"Recovered - {folder.name} - {stamp}"
        self._rename_local(folder, new_name, folder.delimiter)
        self.store.update_folder(folder.id, sync=0, special_use="", uidvalidity=0)
        self.store.log(folder.account, new_name, f"folder {folder.name} vanished from the server; local copy kept")

    # --- one folder: gather, plan, apply -----------------------------------------

    def sync_folder(self, folder: Folder) -> FolderResult:
        result = FolderResult(self.account.name, folder.name, notes=self.folder_notes.pop(folder.name, []))
        if self.listener is not None:
            from deskmail.events import FolderStarted

            self.listener(FolderStarted(self.account.name, folder.name))
        run = self._gather(folder, result)
        if run is None:
            return result
        from deskmail.sync.plan import Checkpoint, Rekey, plan_folder  # only now: see _gather

        while True:
            actions = plan_folder(run.local, run.server)
            self._check_identities(actions, run)
            if self.dry_run:
                if any(not isinstance(a, Checkpoint) for a in actions):  # a lone checkpoint is bookkeeping
                    result.plan.extend(actions)
                return result
            for action in actions:
                self._check()  # between actions: each one left the store consistent and durable
                self._apply(action, run)
            if not any(isinstance(a, Rekey) for a in actions):
                return result
            # The local copies carry their new UIDs now: gather again, against the same SELECT.
            run = self._regather(run)

    def _check_identities(self, actions: list[Action], run: _FolderRun) -> None:
        """Before anything is applied: the messages the plan acts on by UID (flags taken or sent, a
        journaled delete or move) and the newest message held here must still be the messages those
        UIDs named when they were stored, by Message-ID (F-16).

        UIDs never change meaning while UIDVALIDITY stays (RFC 3501 2.3.1.1); a server that lost its
        index and hands them out again would have this sync put another message's flags on a local
        copy, or delete the wrong message there. One small FETCH, and only when the plan acts by UID:
        every journaled delete and move, of the flag changes at most :data:`IDENTITY_SAMPLE` spread evenly.
        """
        from deskmail.sync.plan import DeleteThere, MoveThere, PullFlags, PushFlags

        uids: set[str] = set()
        flagged: set[str] = set()
        for action in actions:
            if isinstance(action, DeleteThere | MoveThere):
                uids.add(action.op.uid)  # every one: these remove a message there
            elif isinstance(action, PullFlags | PushFlags):
                flagged.update(c.uid for c in action.changes)
        if len(flagged) > IDENTITY_SAMPLE:  # a flag change on a whole large folder: an even sample
            ordered = sorted(flagged, key=lambda u: int(u) if u.isdigit() else 0)
            step = len(ordered) / IDENTITY_SAMPLE
            flagged = {ordered[int(i * step)] for i in range(IDENTITY_SAMPLE)} | {ordered[-1]}
        uids |= flagged
        if not uids:
            return
        uv = run.status.uidvalidity
        held = [r for r in run.rows.values() if r.uidvalidity == uv and r.uid.isdigit()]
        if held:
            uids.add(max(held, key=lambda r: int(r.uid)).uid)  # a reset server renumbers from below
        known: dict[int, str] = {}
        for uid in uids:
            row = run.rows.get(uid)
            if row is not None and row.uidvalidity == uv and uid.isdigit() and (mid := _angle_id(row.message_id)):
                known[int(uid)] = mid
        if not known:
            return
        for item in self.imap.command(f"UID FETCH {compress_uids(sorted(known))} "
                                      "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"):
            mine = known.get(item.uid)
            theirs = _angle_id(next(iter(item.small.values()), b"").decode("utf-8", "replace"))
            if mine and theirs and theirs != mine:
                folder = run.folder
                raise ProtocolError(
                    f"The server's UID {item.uid} in {folder.name} now names another message ({mine} before, "
                    f"{theirs} now), under the same UIDVALIDITY {uv}",
                    "the server lost its index or reuses message numbers",
                    "nothing was changed here or on the server; ask the provider, or remove the folder's local "
                    "copy and download it again once the server is consistent",
                    code=Code.UIDS_UNSTABLE, account=folder.account, folder=folder.name,
                )

    def _gather(self, folder: Folder, result: FolderResult) -> _FolderRun | None:
        """Local state and server state as plain data (None: nothing changed on either side)."""
        md = self.store.folder_maildir(folder)
        present = md.exists()
        if folder.uidvalidity and not present and self.redownload:
            if self.dry_run:
                from deskmail.sync.plan import Redownload

                result.plan.append(Redownload(folder.name))
                return None
            with self.store.transaction():
                self.store.forget_folder_messages(folder.id)
                self.store.update_folder(folder.id, uidvalidity=0, uidnext=0, highestmodseq=0, local_mtime=0)
                self.store.log(folder.account, folder.name, "local copy missing: downloading the folder again")
            folder = self.store.folder(folder.account, folder.name) or folder
        if folder.uidvalidity and not present:
            raise StoreError(
                f"The local copy of folder {folder.name!r} is missing or damaged ({md.root})",
                "the mail folder was deleted, moved, unmounted or made unreadable",
                "restore it, or download the folder again (a sync with redownload); nothing was deleted on "
                "the server",
                code=Code.STORE_MISSING, account=folder.account, folder=folder.name,
            )
        if not present and not self.dry_run:
            try:
                md.ensure()
            except OSError as exc:
                raise StoreError(f"Cannot create the mail folder {md.root} ({exc.strerror})") from exc
        # cur/ and new/ untouched since our last clean finish: no crash leftovers, no edits or new files
        # from other programs, and no upload left half done.
        pending = self.store.pending_ops(self.account.name, folder.name)
        clean = (bool(folder.local_mtime) and _mtime(md) == folder.local_mtime
                 and not any(op.kind == "append" for op in pending))
        hint = self.status_hint.pop(folder.name, None)  # valid once: right after the LIST that gave it
        if (
            clean and hint and self.condstore and hint.get("UIDVALIDITY") == folder.uidvalidity
            and hint.get("UIDNEXT") == folder.uidnext and hint.get("HIGHESTMODSEQ") == folder.highestmodseq
            and not pending
        ):
            return None  # LIST-STATUS says nothing changed on the server, and nothing changed here

        params = ""
        if self.qresync and folder.uidvalidity and folder.highestmodseq:
            params = qresync_params(folder.uidvalidity, folder.highestmodseq)
        elif self.condstore:
            params = "(CONDSTORE)"
        status, changed, seen = self.imap.select_raw(folder.name, params,
                                                     verb="EXAMINE" if self.dry_run else "SELECT")
        if not status.uidvalidity:
            raise ProtocolError(f"The server gave no UIDVALIDITY for {folder.name}")
        kept = " ".join(status.permanentflags) if status.permanentflags is not None else None
        if kept != folder.permanent_flags and not self.dry_run:
            # Remembered so that a keyword the server would not keep is refused when it is set here.
            with self.store.transaction():
                self.store.update_folder(folder.id, permanent_flags=kept)
        if status.uidvalidity == folder.uidvalidity and 0 < status.uidnext < folder.uidnext:
            # UIDs must only grow (RFC 3501 2.3.1.1). A server that goes back may reuse UIDs for other
            # messages; trusting it could overwrite or drop mail, so this folder waits (F-16).
            raise ProtocolError(
                f"The server's UIDNEXT for {folder.name} went backwards ({folder.uidnext} -> {status.uidnext})",
                "the server lost its index or reuses message numbers",
                "nothing was changed here; ask the provider, or remove the folder's local copy and "
                "download it again once the server is consistent",
                code=Code.UIDS_UNSTABLE, account=folder.account, folder=folder.name,
            )
        ops = [op for op in pending if op.kind in ("delete", "move")]
        if (
            clean and not ops and params.startswith("(QRESYNC") and not changed and not seen.vanished
            and status.uidvalidity == folder.uidvalidity and status.uidnext == folder.uidnext
        ):
            # Nothing changed on either side: one round trip, the index never read, nothing to plan (the
            # planner's answer would be a quiet checkpoint; tests/unit/test_sync_plan.py pins that).
            if status.highestmodseq != folder.highestmodseq and not self.dry_run:
                self.store.update_folder(folder.id, highestmodseq=status.highestmodseq)
            return None
        # Imported here, past the no-change exits above: most folders of most syncs never get this far.
        from deskmail.sync.plan import JournalOp, LocalMessage, LocalState, ServerState

        rows: dict[str, Row] | None = None
        local_flags: dict[str, frozenset[str]] = {}
        missing: set[str] = set()
        unknown: list[str] = []
        leftovers: list[str] = []
        if not clean:
            # Files named with this folder's identity (now, or before a UIDVALIDITY change: re-matched
            # first) are adopted; anything else here is a message the server does not know.
            uidvalidities = {status.uidvalidity, folder.uidvalidity} - {0}
            if self.dry_run:
                rows = self.store.rows(folder.id)
                leftovers, unknown = _orphans(md, rows, uidvalidities)
            else:
                _adopted, unknown = self.store.recover_unknown(folder, uidvalidities)
                rows = self.store.rows(folder.id)
            local_flags, missing = self._scan(md, rows)
        rekey = bool(folder.uidvalidity) and status.uidvalidity != folder.uidvalidity
        qresync = params.startswith("(QRESYNC") and not rekey
        if rows is None and qresync:
            # Nothing changed here (clean), so only the messages the server reports matter: keep memory
            # independent of the folder's size instead of loading every row (none when nothing changed).
            interesting = {str(i.uid) for i in changed if i.uid} | set(map(str, seen.vanished))
            rows = self.store.rows_for(folder.id, interesting | {op.uid for op in ops}) if interesting or ops else {}
        if rows is None:
            rows = self.store.rows(folder.id)
        run = _FolderRun(folder, md, status, rows, result)
        run.pending, run.unknown = pending, unknown
        mode: Mode
        remote: dict[str, frozenset[str]] = {}
        vanished: frozenset[str] = frozenset()
        if rekey:
            mode = "unread"
        elif qresync:
            mode = "qresync"
            remote = {str(i.uid): _fs(i.flags) for i in changed if i.uid and i.flags is not None}
            vanished = frozenset(map(str, seen.vanished))
        elif (
            self.condstore and folder.highestmodseq and status.highestmodseq == folder.highestmodseq
            and status.uidnext == folder.uidnext and status.exists == len(rows)
        ):
            mode = "unchanged"  # CONDSTORE says: nothing happened on the server
        elif not rows and not self.store.has_messages(folder.id):
            mode = "first"  # no listing needed, everything from UID 1 up is new
        else:
            mode = "listing"
            remote = self._server_flags()
        known_max = 0
        if mode != "listing" and not rekey and status.uidnext != folder.uidnext:
            known_max = self.store.max_uid(folder.id, status.uidvalidity)
        run.server = ServerState(status.uidvalidity, status.uidnext, status.exists, status.highestmodseq, mode,
                                 remote, vanished, status.permanentflags)
        run.local = LocalState(
            folder.uidvalidity, folder.uidnext, folder.highestmodseq,
            {uid: LocalMessage(r.uidvalidity, local_flags[uid] if uid in local_flags else _fs(r.flags),
                               _fs(r.synced_flags), uid in missing) for uid, r in rows.items()},
            clean=clean, known_max=known_max,
            ops=tuple(JournalOp(op.id, "move" if op.kind == "move" else "delete", op.uidvalidity, op.uid, op.target)
                      for op in ops),
            unknown=tuple(unknown), leftovers=tuple(leftovers),
            appends=frozenset(op.target for op in pending if op.kind == "append"),
            upload_confirmed=bool(unknown) and self.store.upload_confirmed(self.account.name, folder.name),
        )
        return run

    def _regather(self, run: _FolderRun) -> _FolderRun:
        """After a UIDVALIDITY re-match: every row again, and the server's full listing."""
        from deskmail.sync.plan import LocalMessage, LocalState, ServerState

        folder = self.store.folder(self.account.name, run.folder.name) or run.folder
        rows = self.store.rows(folder.id)
        status = run.status
        fresh = _FolderRun(folder, run.md, status, rows, run.result)
        fresh.pending, fresh.unknown = run.pending, run.unknown
        mode: Mode = "first" if not rows and not self.store.has_messages(folder.id) else "listing"
        remote: dict[str, frozenset[str]] = {}
        if mode == "listing":
            remote = self._server_flags()
        fresh.server = ServerState(status.uidvalidity, status.uidnext, status.exists, status.highestmodseq, mode,
                                   remote, frozenset(), status.permanentflags)
        old = run.local
        fresh.local = LocalState(
            folder.uidvalidity, folder.uidnext, folder.highestmodseq,
            {uid: LocalMessage(r.uidvalidity, _fs(r.flags), _fs(r.synced_flags)) for uid, r in rows.items()},
            clean=False, known_max=self.store.max_uid(folder.id, status.uidvalidity), ops=old.ops,
            unknown=old.unknown, appends=old.appends, upload_confirmed=old.upload_confirmed,
        )
        return fresh

    def _server_flags(self) -> dict[str, frozenset[str]]:
        """Every message's flags in the selected folder, by UID (the full listing)."""
        return {str(i.uid): _fs(i.flags or ()) for i in self.imap.command("UID FETCH 1:* (UID FLAGS)") if i.uid}

    def _scan(self, md: Maildir, rows: dict[str, Row]) -> tuple[dict[str, frozenset[str]], set[str]]:
        """Current local flags (from file names) and the rows whose file is gone (dry run: nothing written)."""
        flags = {uid: _fs(r.flags) for uid, r in rows.items()}
        on_disk = {name.partition(":")[0]: name for name in (md.peek_files() if self.dry_run else md.files())}
        missing: set[str] = set()
        with nullcontext() if self.dry_run else self.store.transaction():
            for uid, r in list(rows.items()):
                unique = r.filename.partition(":")[0]
                current = on_disk.get(unique)
                if current != r.filename:
                    # Changed here since the rows were read (a person's flag change or delete, made in
                    # its own transaction): the row as it is now, not a vanished file or a stale name.
                    fresh = r if self.dry_run else self.store.row(r.id)
                    if fresh is None:
                        del rows[uid], flags[uid]
                        continue
                    if fresh != r:
                        rows[uid] = r = fresh
                        flags[uid] = _fs(r.flags)
                        current = r.filename if md.path(r.filename).exists() else current
                if current is None:
                    missing.add(uid)
                elif current != r.filename:
                    now = frozenset(info_to_flags(current)) | (_fs(r.flags) - _MAILDIR_FLAGS)
                    if not self.dry_run:
                        self.store.set_flags(r.id, current, now)
                    rows[uid] = replace(r, filename=current, flags=" ".join(sorted(now)))
                    flags[uid] = now
        return flags, missing

    # --- the executor ----------------------------------------------------------------

    def _apply(self, action: Action, run: _FolderRun) -> None:
        from deskmail.sync.plan import (
            MASS_UPLOAD,
            Checkpoint,
            DeleteThere,
            Download,
            DropOp,
            ExpungeHere,
            ForgetMissing,
            HoldUploads,
            LogConflicts,
            MoveThere,
            PullFlags,
            PushFlags,
            Recover,
            Rekey,
            ResumeUploads,
            UnkeptKeywords,
            UploadThere,
        )

        account, folder, result = self.account.name, run.folder, run.result
        if isinstance(action, Recover):
            self.store.recover_unknown(folder, {run.status.uidvalidity, folder.uidvalidity} - {0})
        elif isinstance(action, Rekey):
            self._uidvalidity_changed(folder, run.md, run.rows, action.new, result)
        elif isinstance(action, DropOp):
            with self.store.transaction():
                self.store.op_done(action.op.id)
                self.store.log(account, folder.name,
                               f"{action.op.kind} of UID {action.op.uid} dropped: the folder's UIDVALIDITY changed")
        elif isinstance(action, DeleteThere | MoveThere):
            self._apply_op(action, run)
        elif isinstance(action, ForgetMissing):
            with self.store.transaction():
                for uid in action.uids:
                    row = run.rows.pop(uid, None)
                    if row is not None:
                        self.store.delete_row(row.id)
        elif isinstance(action, ExpungeHere):
            self._expunge_here(action, run)
        elif isinstance(action, LogConflicts):
            result.conflicts += len(action.changes)
            with self.store.transaction():
                for c in action.changes:
                    self.store.log(account, folder.name,
                                   f"UID {c.uid}: flags changed on both sides; merged to {' '.join(sorted(c.flags))}")
        elif isinstance(action, PullFlags):
            pulled = result.flags_pulled
            with self.store.transaction():
                for c, synced in zip(action.changes, action.synced, strict=True):
                    self._set_local_flags(run, c, synced)
            if result.flags_pulled > pulled and self.listener is not None:
                from deskmail.events import FlagsPulled

                self.listener(FlagsPulled(account, folder.name, result.flags_pulled - pulled))
        elif isinstance(action, PushFlags):
            self._push_flags(action, run)
        elif isinstance(action, UnkeptKeywords):
            note = f"the server does not keep the keywords {', '.join(action.keywords)}: they stay here only"
            result.notes.append(note)
            with self.store.transaction():
                self.store.log(account, folder.name, note)
        elif isinstance(action, ResumeUploads):
            adopted, run.journaled, run.unknown = self._resume_uploads(folder, run.md, run.status.uidvalidity,
                                                                      run.unknown)
            run.adopted |= adopted
        elif isinstance(action, Download):
            self._download_action(action, run)
        elif isinstance(action, HoldUploads):
            note = (f"{action.total} messages in {folder.name} are only here, more than {MASS_UPLOAD} at once: "
                    "not uploaded until the upload of this folder is confirmed")
            result.notes.append(note)
            result.held_uploads = action.total
            with self.store.transaction():
                self.store.log(account, folder.name, note)
        elif isinstance(action, UploadThere):
            before = result.uploaded
            run.waiting |= self._upload(folder, run.md, run.status.uidvalidity, run.status.uidnext,
                                        list(action.names), run.journaled, result, run.unknown)
            if action.confirmed:
                with self.store.transaction():
                    self.store.confirm_upload(account, folder.name, False)  # a yes counts once
            if result.uploaded > before and self.listener is not None:
                from deskmail.events import Uploaded

                self.listener(Uploaded(account, folder.name, result.uploaded - before))
        elif isinstance(action, Checkpoint):
            if action.quiet:
                if action.highestmodseq != folder.highestmodseq:
                    self.store.update_folder(folder.id, highestmodseq=action.highestmodseq)
                return
            self.store.checkpoint_folder(
                folder.id, uidvalidity=action.uidvalidity, uidnext=action.uidnext,
                highestmodseq=action.highestmodseq,
                # 0: look at the waiting uploads again next time
                local_mtime=0 if (run.waiting or action.rescan) else _mtime(run.md),
                seen=folder.local_mtime,  # a flag, move or delete made here during this sync: look again
            )
        else:  # folder-level actions are planned by reconcile_folders' dry run only
            raise AssertionError(f"not a folder action: {action!r}")

    def _apply_op(self, action: DeleteThere | MoveThere, run: _FolderRun) -> None:
        from deskmail.sync.plan import MoveThere

        op, result = action.op, run.result
        if isinstance(action, MoveThere):
            if not self.move and not self._may_expunge(run, op.uid, f"the move of UID {op.uid} to {op.target}"):
                return  # held: the journal keeps it, the file stays here
            self._move(run.folder, run.md, run.rows, op.uid, op.target, result)
        elif self.uidplus or self._may_expunge(run, op.uid, None):
            self.imap.run(f"UID STORE {op.uid} +FLAGS.SILENT (\\Deleted)")
            self.imap.run(f"UID EXPUNGE {op.uid}" if self.uidplus else "EXPUNGE")
            result.deleted += 1
        elif (trash := self._trash_for(run)) is not None:
            # UID MOVE removes only the message moved (RFC 6851): it goes to Trash instead of for good.
            self.imap.run(f"UID MOVE {op.uid} {self.imap.quote(trash)}")
            self.status_hint.pop(trash, None)  # changed since the LIST: Trash's sync must look
            result.deleted += 1
            self._held(run, Code.DELETED_TO_TRASH,
                       f"UID {op.uid} was moved to {trash} instead of deleted for good: other messages in "
                       f"{run.folder.name} are marked deleted by another program, and this server cannot "
                       "expunge one message alone (no UIDPLUS)")
        else:
            self._held(run, Code.DELETE_HELD, self._held_text(run, f"the delete of UID {op.uid}"))
            return
        with self.store.transaction():
            row = run.rows.pop(op.uid, None)
            if row is not None and not isinstance(action, MoveThere) and (row := self.store.row(row.id)):
                run.md.remove(row.filename)
                self.store.delete_row(row.id)
            self.store.op_done(op.id)
        if self.listener is not None:
            from deskmail.events import Deleted

            self.listener(Deleted(self.account.name, run.folder.name, 1, here=False))

    def _may_expunge(self, run: _FolderRun, uid: str, what: str | None) -> bool:
        """Whether a plain EXPUNGE (no UIDPLUS) would remove only what deskmail means to remove: no other
        message of the folder carries \\Deleted. Those of our own journaled deletes and moves do not
        count (a run cut between their STORE and EXPUNGE). When not, and ``what`` names the change, it is
        held (reported with ``delete_held``) and stays journaled for a later sync."""
        if self.uidplus:
            return True
        if run.deleted_elsewhere is None:
            seen = self.imap.run("UID SEARCH DELETED", parse=frozenset({b"SEARCH"}))
            marked = {v.decode() for _kind, values in seen.data for v in values if isinstance(v, bytes) and v.isdigit()}
            run.deleted_elsewhere = marked - {op.uid for op in run.local.ops}
        if not run.deleted_elsewhere - {uid}:
            return True
        if what is not None:
            self._held(run, Code.DELETE_HELD, self._held_text(run, what))
        return False

    def _held_text(self, run: _FolderRun, what: str) -> str:
        return (f"{what} waits: {len(run.deleted_elsewhere or ())} other messages in {run.folder.name} are marked "
                "deleted by another program, and this server cannot expunge one message alone (no UIDPLUS); "
                "expunging now would remove them too")

    def _held(self, run: _FolderRun, code: Code, note: str) -> None:
        run.result.notes.append(note)
        run.result.codes.append(code)
        with self.store.transaction():
            self.store.log(self.account.name, run.folder.name, note)

    def _trash_for(self, run: _FolderRun) -> str | None:
        """Where a delete goes instead when it cannot be expunged alone: Trash, if the server can MOVE."""
        if not self.move:
            return None
        trash = next((f for f in self.store.folders(self.account.name) if f.special_use == "\\Trash"), None)
        return trash.name if trash is not None and trash.id != run.folder.id else None

    def _expunge_here(self, action: ExpungeHere, run: _FolderRun) -> None:
        dropped = set(action.dropped)
        removed = 0
        parked = False
        with self.store.transaction():
            for uid in action.uids:
                row = run.rows.pop(uid, None)
                if row is not None:
                    row = self.store.row(row.id)  # its name now (a flag change here renames the file)
                if row is None:
                    continue
                if uid in dropped:
                    self.store.log(self.account.name, run.folder.name,
                                   f"UID {uid} was expunged on the server; local flag changes dropped")
                if self._park(run.md, run.folder, row):
                    parked = True
                else:
                    run.md.remove(row.filename)
                self.store.delete_row(row.id)
                removed += 1
            if parked:
                self._parked_durable(run.md)  # before the rows go: a crash keeps the file or the row
        run.result.removed += removed
        if removed and self.listener is not None:
            from deskmail.events import Deleted

            self.listener(Deleted(self.account.name, run.folder.name, removed, here=True))

    def _set_local_flags(self, run: _FolderRun, change: FlagChange, synced: frozenset[str] | None) -> None:
        """The message's file name and index flags become ``change.flags``; ``synced`` recorded when given.

        Inside the caller's transaction the row is read again: a flag change a person made here since
        the gathering (mailbox.set_flags, serialised with this transaction) is merged in, never
        overwritten; a message deleted here meanwhile is left alone.
        """
        from deskmail.sync.plan import merge_flags

        row = run.rows.get(change.uid)
        fresh = self.store.row(row.id) if row is not None else None
        if fresh is None:
            run.rows.pop(change.uid, None)
            return
        flags = change.flags
        if row is not None and fresh.flags != row.flags:
            flags = merge_flags(_fs(row.flags), _fs(fresh.flags), change.flags)
        if flags != _fs(fresh.flags):
            run.result.flags_pulled += 1
        name = run.md.set_flags(fresh.filename, flags)
        self.store.set_flags(fresh.id, name, flags, synced)
        run.rows[change.uid] = replace(fresh, filename=name, flags=" ".join(sorted(flags)))

    def _push_flags(self, action: PushFlags, run: _FolderRun) -> None:
        """Local side first, then UID STORE; recorded as agreed only once the server said OK.

        Never a blind replacement of another client's change: with CONDSTORE, ``UNCHANGEDSINCE`` the
        SELECT's HIGHESTMODSEQ (a message changed since comes back in ``[MODIFIED ...]`` and is merged
        again, :meth:`_remerge`); without it, ``+FLAGS``/``-FLAGS`` of the difference only. A STORE
        that fails (connection lost, keyword refused) leaves ``synced_flags`` as they were, so the next
        sync sees the change here again and sends it again.
        """
        pulled = run.result.flags_pulled
        with self.store.transaction():
            for c in action.changes:
                self._set_local_flags(run, c, None)
        if run.result.flags_pulled > pulled and self.listener is not None:
            from deskmail.events import FlagsPulled

            self.listener(FlagsPulled(self.account.name, run.folder.name, run.result.flags_pulled - pulled))
        uids = compress_uids([int(c.uid) for c in action.changes])
        modified: set[int] = set()
        if self.condstore and run.status.highestmodseq:
            seen = self.imap.run(f"UID STORE {uids} (UNCHANGEDSINCE {run.status.highestmodseq}) "
                                 f"FLAGS.SILENT ({' '.join(sorted(action.flags))})")
            modified = _modified(seen)
        else:
            for sign, flags in (("+", action.add), ("-", action.remove)):
                if flags:
                    self.imap.run(f"UID STORE {uids} {sign}FLAGS.SILENT ({' '.join(sorted(flags))})")
        accepted = [c for c in action.changes if int(c.uid) not in modified]
        with self.store.transaction():
            for c in accepted:
                if (row := run.rows.get(c.uid)) is not None:  # (not deleted here meanwhile)
                    self.store.set_synced(row.id, action.flags)
        pushed = len(accepted)
        if modified:
            pushed += self._remerge([c for c in action.changes if int(c.uid) in modified], action.theirs, run)
        run.result.flags_pushed += pushed
        if pushed and self.listener is not None:
            from deskmail.events import FlagsPushed

            self.listener(FlagsPushed(self.account.name, run.folder.name, pushed))

    def _remerge(self, changes: list[FlagChange], assumed: frozenset[str], run: _FolderRun) -> int:
        """Messages another client changed between the gathering and our STORE: read their flags again,
        merge (:func:`deskmail.sync.plan.remerge`) and store with the modseq just read; a few rounds,
        then the next sync takes over (nothing is recorded as agreed that the server did not accept)."""
        from deskmail.sync.plan import FlagChange, remerge

        pending = {c.uid: assumed for c in changes}  # uid -> the server's flags the last STORE assumed
        pushed = 0
        for _round in range(3):
            if not pending:
                break
            now = {str(i.uid): i for i in self.imap.command(
                f"UID FETCH {compress_uids([int(u) for u in pending])} (UID FLAGS MODSEQ)") if i.uid}
            again: dict[str, frozenset[str]] = {}
            for uid, base in pending.items():
                item = now.get(uid)
                if item is None or uid not in run.rows:
                    continue  # expunged there (the next sync removes it here), or deleted here meanwhile
                mine = _fs(run.rows[uid].flags)  # set here by the plan (and a person's change since)
                theirs = _fs(item.flags or ())
                merged, send = remerge(base, mine, theirs, run.status.permanentflags)
                note = (f"UID {uid}: flags changed by another client during the sync; merged to "
                        f"{' '.join(sorted(merged))}")
                with self.store.transaction():
                    self._set_local_flags(run, FlagChange(uid, merged), send if send == theirs else None)
                    self.store.log(self.account.name, run.folder.name, note)
                run.result.conflicts += 1
                if send == theirs:
                    continue  # the server has it all already: recorded as agreed above
                seen = self.imap.run(f"UID STORE {uid} (UNCHANGEDSINCE {item.modseq}) "
                                     f"FLAGS.SILENT ({' '.join(sorted(send))})")
                if int(uid) in _modified(seen):
                    again[uid] = theirs
                    continue
                if (row := run.rows.get(uid)) is not None:
                    with self.store.transaction():
                        self.store.set_synced(row.id, send)
                pushed += 1
            pending = again
        return pushed

    def _download_action(self, action: Download, run: _FolderRun) -> None:
        """The download; a message whose file vanished keeps its index row until its new copy replaces it."""
        uv = run.status.uidvalidity
        stale = {int(uid): run.rows[uid].id for uid in action.refetch if uid in run.rows}
        run.result.refetched += len(action.refetch)
        current = {u for u, r in run.rows.items() if r.uidvalidity == uv and int(u) not in stale} | run.adopted
        uids, above = list(action.uids), action.above
        if self._parked_index() or self.store.has_messages_elsewhere(self.account.name, run.folder.id):
            left = self._take_local_copies(run, uids, above, current, set(stale))
            if left is not None:
                uids, above = left, None  # the listing named every new UID
        self._download(run.folder, run.md, uv, uids, above, current, run.result, stale)
        if stale:  # not sent by the server (expunged meanwhile): the row of the vanished file goes
            with self.store.transaction():
                for row_id in stale.values():
                    self.store.delete_row(row_id)

    # --- messages another client moved (F-10) -------------------------------------------------

    def _park_dir(self) -> Path:
        return self.store.maildir(self.account.name).root / PARKED

    def _parked_index(self) -> dict[tuple[str, int], list[Path]]:
        """(Message-ID, size) -> parked files: this run's, and those a killed run left (read once)."""
        if self._parked is None:
            self._parked = {}
            park = self._park_dir()
            try:
                names = sorted(os.listdir(park))
            except OSError:
                names = []
            for name in names:
                path = park / name
                try:
                    size = path.stat().st_size
                    mid = read_header_info(path).message_id
                except OSError:
                    continue
                if mid:
                    self._parked.setdefault((mid, size), []).append(path)
        return self._parked

    def _park(self, md: Maildir, folder: Folder, row: Row) -> bool:
        """Keep the local copy of a message gone from ``folder`` on the server aside instead of removing
        it: another client may have moved it to a folder this run syncs later, whose download then takes
        this file (:meth:`_take_local_copies`). Inside the caller's transaction, which drops the row;
        :meth:`drop_parked` removes what no folder took once the run has synced every folder."""
        if not row.message_id:
            return False  # nothing to recognise it by
        park = self._park_dir()
        n = 0
        while (target := park / f"{folder.id}.{n}.{row.filename}").exists():  # parked twice (killed runs)
            n += 1
        try:
            park.mkdir(exist_ok=True)
            size = md.path(row.filename).stat().st_size
            os.rename(md.path(row.filename), target)
        except OSError:
            return False
        self._parked_index().setdefault((row.message_id, size), []).append(target)
        return True

    def _parked_durable(self, md: Maildir, *, park: bool = True) -> None:
        try:
            if park:
                fsync_dir(self._park_dir())
            fsync_dir(md.root / "cur")
        except OSError as exc:
            raise StoreError(f"Cannot write to the mail folder {md.root} ({exc.strerror})") from exc

    def drop_parked(self) -> int:
        """The run synced every folder: parked copies no folder took were expunged for good."""
        park = self._park_dir()
        try:
            names = os.listdir(park)
        except OSError:
            return 0
        for name in names:
            (park / name).unlink(missing_ok=True)
        try:
            park.rmdir()
        except OSError:
            pass
        self._parked = {}
        return len(names)

    def _take_local_copies(self, run: _FolderRun, uids: list[int], above: int | None, current: set[str],
                           refetch: set[int]) -> list[int] | None:
        """New messages of this folder that are here already, parked from a folder they vanished from or
        still in another folder (another client moved or copied them): taken from that file instead of
        downloaded (F-10). Returns the new UIDs left to download.

        A local file stands in only for a message with the same Message-ID and size (RFC822.SIZE) whose
        first bytes (:data:`SAME_START`, the header block and more) the server gives identical. A parked
        file is renamed into this folder, another folder's file hard-linked (that folder's sync removes
        its copy when the server no longer has it there). The file carries this folder's identity
        before its row commits, so after a crash in between the next sync adopts it. None when nothing
        was taken: the download asks for what it meant to (a range stays a range).
        """
        if above is not None:
            uid_set = f"{above + 1}:*" + ("," + compress_uids(uids) if uids else "")
        elif uids:
            uid_set = compress_uids(uids)
        else:
            return None
        wanted = set(uids)
        folder = run.folder
        parked = self._parked_index()
        listed: list[int] = []
        candidates: dict[int, tuple[Path, bool, tuple[str, ...], int]] = {}  # uid -> (file, parked, flags, size)
        chunk: list[tuple[int, str, int, tuple[str, ...]]] = []

        def match() -> None:
            elsewhere = self.store.copies_elsewhere(self.account.name, folder.id, (c[1] for c in chunk))
            for uid, mid, size, flags in chunk:
                if files := parked.get((mid, size)):
                    candidates[uid] = (files.pop(), True, flags, size)
                elif (path := elsewhere.get((mid, size))) is not None:
                    candidates[uid] = (path, False, flags, size)
            chunk.clear()

        for item in self.imap.command(f"UID FETCH {uid_set} "
                                      "(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"):
            if not item.uid or str(item.uid) in current or (
                item.uid not in wanted and (above is None or item.uid <= above)  # "n:*" names the last one
            ):
                continue
            listed.append(item.uid)
            mid = next(iter(item.small.values()), b"").decode("utf-8", "replace").partition(":")[2].strip()
            if mid and item.uid not in refetch:
                chunk.append((item.uid, mid, item.size, item.flags or ()))
                if len(chunk) >= BATCH_MESSAGES:
                    match()
        if chunk:
            match()
        if not candidates:
            return None
        starts: dict[int, _Start] = {}
        checked: set[int] = set()
        for item in self.imap.command(f"UID FETCH {compress_uids(sorted(candidates))} "
                                      f"(UID BODY.PEEK[]<0.{SAME_START}>)",
                                      body_sink=lambda item: starts.setdefault(id(item), _Start())):
            start = starts.pop(id(item), None)
            if start is not None and item.uid in candidates and _starts_with(candidates[item.uid][0], start.data):
                checked.add(item.uid)
        candidates = {uid: c for uid, c in candidates.items() if uid in checked}
        taken = self._take(run, candidates)
        return [u for u in listed if u not in taken] if taken else None

    def _take(self, run: _FolderRun, candidates: dict[int, tuple[Path, bool, tuple[str, ...], int]]) -> set[int]:
        folder, md, uv, result = run.folder, run.md, run.status.uidvalidity, run.result
        taken: set[int] = set()
        todo = sorted(candidates)
        for i in range(0, len(todo), BATCH_MESSAGES):
            done: list[tuple[int, str, tuple[str, ...], int]] = []
            with self.store.transaction():
                for uid in todo[i:i + BATCH_MESSAGES]:
                    path, was_parked, flags, size = candidates[uid]
                    # A parked file's name is "<folder id>.<n>.<its name in that folder>".
                    unique = (path.name.split(".", 2)[-1] if was_parked else path.name).partition(":")[0]
                    base = re.sub(r",V=.*$", "", unique)
                    name = f"{base},V={uv},U={uid}:2,{flags_to_info(flags)}"
                    try:
                        if was_parked:
                            os.rename(path, md.path(name))
                        else:
                            os.link(path, md.path(name))
                    except OSError:
                        continue  # gone meanwhile (renamed by a flag change here): downloaded instead
                    done.append((uid, name, flags, size))
                if done:  # the files carry their identity here before the rows commit
                    self._parked_durable(md, park=any(candidates[u][1] for u, *_ in done))
                for uid, name, flags, size in done:
                    self.store.insert_message(md, folder.id, uv, str(uid), name, flags, size=size)
                    taken.add(uid)
            result.new += len(done)
            result.reused += len(done)
        if taken:
            with self.store.transaction():
                self.store.log(self.account.name, folder.name,
                               f"{len(taken)} messages moved or copied here by another client were taken from "
                               "their local copy, not downloaded")
        return taken

    def _move(self, folder: Folder, md: Maildir, rows: dict[str, Row], uid: str, target: str,
              result: FolderResult) -> None:
        quoted = self.imap.quote(target)
        # The target changed since the LIST that gave its status: its sync in this run must SELECT it (it
        # downloads the message when the server gave no COPYUID to carry the file over).
        self.status_hint.pop(target, None)
        if self.move:
            seen = self.imap.run(f"UID MOVE {uid} {quoted}")
        else:
            seen = self.imap.run(f"UID COPY {uid} {quoted}")
            self.imap.run(f"UID STORE {uid} +FLAGS.SILENT (\\Deleted)")
            self.imap.run(f"UID EXPUNGE {uid}" if self.uidplus else "EXPUNGE")
        result.moved += 1
        row = rows.get(uid)
        if row is None:
            return
        lines = [seen.tagged, *seen.other]
        m = next((m for m in (_COPYUID.search(line) for line in lines) if m), None)
        dest = self.store.folder(self.account.name, target)
        with self.store.transaction():
            row = self.store.row(row.id)  # its name now: flagged here since the gathering, or deleted
            if row is None:
                return
            if m and dest is not None and dest.uidvalidity == int(m.group(1)):
                # The server told us the new UID: carry the file over instead of downloading it again.
                new_uid = parse_uid_set(m.group(3).decode())[0]
                dest_md = self.store.folder_maildir(dest)
                dest_md.ensure()
                unique, _, info = row.filename.partition(":")
                name = f"{re.sub(r',V=.*$', '', unique)},V={dest.uidvalidity},U={new_uid}:{info}"
                md.path(row.filename).rename(dest_md.path(name))
                # The server's copy has the flags agreed before (a change made here and not yet sent goes
                # with the file and is sent by the target's sync, not taken as agreed).
                self.store.insert_message(dest_md, dest.id, dest.uidvalidity, str(new_uid), name, _fs(row.flags),
                                          synced=_fs(row.synced_flags))
            elif self._park(md, folder, row):
                self._parked_durable(md)  # the target folder's sync takes it under its new UID
            else:
                md.remove(row.filename)  # the target folder's sync downloads it with its new UID
            self.store.delete_row(row.id)

    def _uidvalidity_changed(self, folder: Folder, md: Maildir, rows: dict[str, Row], uidvalidity: int,
                             result: FolderResult) -> None:
        """Re-match local copies to the server's new UIDs by Message-ID + size (F-06), quarantine the rest (F-07)."""
        server: dict[tuple[str, int], list[int]] = {}
        for item in self.imap.command("UID FETCH 1:* (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"):
            header = next(iter(item.small.values()), b"")
            mid = header.decode("utf-8", "replace").partition(":")[2].strip()
            server.setdefault((mid, item.size), []).append(item.uid)
        matched = unmatched = 0
        quarantine: Folder | None = None
        with self.store.transaction():
            for row in rows.values():
                candidates = server.get((row.message_id, row.size)) if row.message_id else None
                if candidates:
                    new_uid = candidates.pop(0)
                    name = md.rekey(row.filename, uidvalidity, new_uid)
                    self.store.rekey_message(row.id, uidvalidity, str(new_uid), name)
                    matched += 1
                    continue
                if quarantine is None:
                    stamp = time.strftime("%Y-%m-%d %H.%M")
                    quarantine = self.store.ensure_folder(self.account.name, f"Recovered - {folder.name} - {stamp}")
                    self.store.update_folder(quarantine.id, sync=0)
                qmd = self.store.folder_maildir(quarantine)
                qmd.ensure()
                md.path(row.filename).rename(qmd.path(row.filename))
                self.store.move_row_to_folder(row.id, quarantine.id, f"local-{row.id}")
                unmatched += 1
            note = (f"UIDVALIDITY of {folder.name} changed ({folder.uidvalidity} -> {uidvalidity}): "
                    f"{matched} local copies re-matched")
            if unmatched:
                note += f", {unmatched} kept in the local folder {quarantine.name if quarantine else ''!r}"
            self.store.log(self.account.name, folder.name, note)
            self.store.update_folder(folder.id, uidvalidity=uidvalidity, highestmodseq=0)
        result.notes.append(note)

    # --- local-only messages -> server ------------------------------------------

    def _resume_uploads(self, folder: Folder, md: Maildir, uidvalidity: int, unknown: list[str]
                        ) -> tuple[set[str], dict[str, Op], list[str]]:
        """Before the download: uploads a crash interrupted are looked for on the server and adopted.

        Returns the adopted UIDs (the download must not fetch them: that would be the second copy),
        the journal entries whose message is not on the server (appended again after the download),
        and the unknown files left.
        """
        account = self.account.name
        by_unique = {n.partition(":")[0]: n for n in unknown}
        journaled: dict[str, Op] = {}
        with self.store.transaction():
            for op in self.store.pending_ops(account, folder.name):
                if op.kind != "append":
                    continue
                if op.target in by_unique and op.target not in journaled:
                    journaled[op.target] = op
                else:
                    # Gone (deleted by the user; if the APPEND went through, the server copy is downloaded
                    # as new mail) or adopted already (a crash after the rename): nothing left to do.
                    self.store.op_done(op.id)
        adopted: set[str] = set()
        for unique, op in list(journaled.items()):
            name = by_unique[unique]
            upload = md.prepare_upload(name)
            if upload is None:
                with self.store.transaction():
                    self.store.op_done(op.id)
                del journaled[unique], by_unique[unique]
                continue
            try:
                # The new UID is at least the UIDNEXT before the APPEND, unless the folder was reset since.
                lower = int(op.uid) if op.uidvalidity == uidvalidity and op.uid.isdigit() else 1
                found = self._find_on_server(folder, uidvalidity, upload, _message_id(md, name, upload), lower)
            finally:
                upload.discard()
            if found is None:
                continue
            self._adopt(folder, md, name, uidvalidity, found, tuple(sorted(info_to_flags(name))), upload.size,
                        op.id)
            with self.store.transaction():
                self.store.log(account, folder.name,
                               f"upload of {unique} resumed: UID {found} was already on the server, adopted")
            adopted.add(str(found))
            del journaled[unique], by_unique[unique]
        return adopted, journaled, list(by_unique.values())

    def _upload(self, folder: Folder, md: Maildir, uidvalidity: int, uidnext: int, fresh: list[str],
                journaled: dict[str, Op], result: FolderResult, unknown: list[str]) -> bool:
        """APPEND the messages only this side has, then adopt each file under its new UID.

        Journal first: an ``append`` op (durable) names the file and the UIDNEXT before the APPEND,
        so after a crash anywhere in between, the next run finds the message on the server
        (:meth:`_resume_uploads`) and adopts it instead of appending a second copy.
        True if messages are left waiting (refused by the server, or awaiting confirmation).
        """
        waiting = False
        names = {n.partition(":")[0]: n for n in unknown}
        for unique, op in journaled.items():
            waiting |= not self._append_one(folder, md, names[unique], op, uidvalidity, uidnext, result)
            self._check()  # each upload is adopted (or journaled) before the next one starts
        for name in fresh:
            waiting |= not self._append_one(folder, md, name, None, uidvalidity, uidnext, result)
            self._check()
        return waiting

    def _append_one(self, folder: Folder, md: Maildir, name: str, op: Op | None, uidvalidity: int, uidnext: int,
                    result: FolderResult) -> bool:
        """Upload one file; False if the server refused it (it stays, and is tried again next time)."""
        upload = md.prepare_upload(name)
        if upload is None:
            if op is not None:
                with self.store.transaction():
                    self.store.op_done(op.id)
            return True  # not a message file (dot file, symlink, empty, unreadable): never sent anywhere
        try:
            return self._append_copy(folder, md, name, upload, op, uidvalidity, uidnext, result)
        finally:
            upload.discard()

    def _append_copy(self, folder: Folder, md: Maildir, name: str, upload: Upload, op: Op | None,
                     uidvalidity: int, uidnext: int, result: FolderResult) -> bool:
        account = self.account.name
        flags = tuple(sorted(info_to_flags(name)))
        mid = _message_id(md, name, upload)
        if op is None:
            with self.store.transaction(durable=True):
                op_id = self.store.add_op(account, "append", folder.name, uidvalidity, str(uidnext),
                                          name.partition(":")[0], mid)
        else:
            op_id = op.id  # journaled by a run that crashed, and not on the server: append again
        try:
            with upload.open() as message:
                appended = self.imap.append(folder.name, message, flags, when=_mtime_of(md, name), size=upload.size)
        except ProtocolError as exc:
            if not self.imap.in_step:
                raise  # the connection is out of step: the folder fails and the next one reconnects
            # Refused (too big, over quota...): the file stays, the journal entry too (checked next time).
            note = f"a message saved here could not be uploaded to {folder.name}: {exc.what}"
            if "[OVERQUOTA]" in exc.what.upper() or "QUOTA" in exc.what.upper():
                # RFC 5530 OVERQUOTA (Dovecot: "Quota exceeded (mailbox for user is full)")
                note = (f"a message saved here could not be uploaded to {folder.name}: the mailbox on the "
                        f"server is full ({exc.what}); it is uploaded once space is freed there")
                if Code.OVER_QUOTA not in result.codes:
                    result.codes.append(Code.OVER_QUOTA)
            result.notes.append(note)
            with self.store.transaction():
                self.store.log(account, folder.name, note)
            return False
        except NetworkError:
            raise  # an OSError too, but the connection's, not the local copy's
        except OSError as exc:
            raise StoreError(f"The copy of {name} made for its upload cannot be read ({exc.strerror})") from exc
        if os.environ.get(FAULT_ENV) == "crash_after_append":
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
        result.uploaded += 1
        if appended is not None:
            self._adopt(folder, md, name, appended[0], appended[1], flags, upload.size, op_id)
            return True
        # No UIDPLUS: find the new UID the way a resume does.
        found = self._find_on_server(folder, uidvalidity, upload, mid, uidnext)
        if found is not None:
            self._adopt(folder, md, name, uidvalidity, found, flags, upload.size, op_id)
            return True
        # The server took it but it cannot be told apart (it changed the message?): its copy comes down
        # with the next sync; keeping this file too would make two.
        with self.store.transaction():
            md.remove(name)
            self.store.op_done(op_id)
            self.store.log(account, folder.name, f"{name} uploaded; the server's copy replaces it at the next sync")
        return True

    def _adopt(self, folder: Folder, md: Maildir, name: str, uidvalidity: int, uid: int, flags: tuple[str, ...],
               size: int, op_id: int | None) -> None:
        with self.store.transaction():
            new = md.adopt(name, uidvalidity, uid, flags)  # durable before the row commits
            # The size the server counts (CRLF), so a UIDVALIDITY re-match by Message-ID + size finds it.
            self.store.insert_message(md, folder.id, uidvalidity, str(uid), new, flags, size=size)
            if op_id is not None:
                self.store.op_done(op_id)

    def _find_on_server(self, folder: Folder, uidvalidity: int, upload: Upload, mid: str,
                        lower: int) -> int | None:
        """The UID (>= ``lower``, not held by a local copy) of a server message that is ``upload``, or None.

        With a Message-ID: same Message-ID and same size (RFC822.SIZE). Without one there is no
        cheap identity, so the same-size candidates above ``lower`` are fetched and compared byte for
        byte (SHA-256); ``lower`` (the UIDNEXT before our APPEND) keeps that to the few messages
        that arrived since.
        """
        size = upload.size
        criteria = f"HEADER Message-ID {quote_string(mid)}" if mid else f"LARGER {size - 1} SMALLER {size + 1}"
        seen = self.imap.run(f"UID SEARCH UID {max(lower, 1)}:* {criteria}", parse=frozenset({b"SEARCH"}))
        uids = sorted({int(v) for _kind, values in seen.data for v in values if isinstance(v, bytes) and v.isdigit()})
        uids = [u for u in uids if u >= lower and not self.store.has_uid(folder.id, uidvalidity, u)]
        if not uids:
            return None
        if mid:
            for item in self.imap.command(f"UID FETCH {compress_uids(uids)} "
                                          "(UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"):
                header = next(iter(item.small.values()), b"")
                theirs = header.decode("utf-8", "replace").partition(":")[2].strip()
                if item.uid in uids and item.size == size and theirs == mid:
                    return item.uid
            return None
        want = upload.sha256
        digests: dict[int, _Digest] = {}
        found: list[int] = []
        # The few same-size arrivals since the journal entry, never the whole folder.
        for item in self.imap.command(f"UID FETCH {compress_uids(uids[:20])} (UID BODY.PEEK[])",
                                      body_sink=lambda item: digests.setdefault(id(item), _Digest())):
            digest = digests.pop(id(item), None)
            if digest is not None and item.uid in uids and digest.hash.digest() == want:
                found.append(item.uid)
        return min(found) if found else None

    def _download(self, folder: Folder, md: Maildir, uidvalidity: int, uids: list[int], above: int | None,
                  current: set[str], result: FolderResult, replace: dict[int, int]) -> None:
        """Fetch ``uids`` (and every UID above ``above``) in batches; ``replace``: uid -> the row of a file
        that vanished here, dropped in the transaction that adds its new copy (popped when done)."""
        if above is not None:
            uid_set = f"{above + 1}:*"
            if uids:
                uid_set = compress_uids(uids) + "," + uid_set
        elif uids:
            uid_set = compress_uids(uids)
        else:
            return
        total = len(uids)
        batch: list[tuple[PendingMessage, int, str, tuple[str, ...], bool]] = []
        batch_bytes = 0
        sink = _BodySinks(md)

        def flush() -> None:
            nonlocal batch, batch_bytes
            names = md.publish(batch)
            with self.store.transaction():
                for (pending, v, uid, flags, _pop), name in zip(batch, names, strict=True):
                    old = replace.pop(int(uid), None) if replace else None
                    if old is not None:
                        self.store.delete_row(old)
                    self.store.insert_message(md, folder.id, v, uid, name, flags, bytes(pending.head), pending.size)
            result.new += len(batch)
            if self.listener is not None:
                from deskmail.events import MessagesDownloaded

                self.listener(MessagesDownloaded(self.account.name, folder.name, result.new, max(total, result.new),
                                                 result.bytes))
            batch, batch_bytes = [], 0
            release_freed_memory()

        empties: list[tuple[PendingMessage, int, str, tuple[str, ...], bool]] = []
        answer = Untagged()
        try:
            for item in self.imap.command(f"UID FETCH {uid_set} (UID FLAGS BODY.PEEK[])", body_sink=sink.open,
                                          untagged=answer):
                pending = sink.take(item)
                if pending is None:
                    continue
                if not item.uid or (above is not None and item.uid <= above and item.uid not in uids) or (
                    str(item.uid) in current
                ):
                    pending.discard()  # "n:*" returns the last message when nothing is new
                    continue
                if pending.size == 0:
                    # Expunged by another client after our listing, Dovecot still answers for it in this
                    # session with an empty BODY[], and ends with OK [EXPUNGEISSUED]. A really empty
                    # message (a 0-byte file delivered into a Maildir) looks the same until that line:
                    # kept aside until the answer is complete.
                    pending.close()
                    empties.append((pending, uidvalidity, str(item.uid), item.flags or (), False))
                    continue
                batch.append((pending, uidvalidity, str(item.uid), item.flags or (), False))
                pending.close()  # now, not at publish: a batch kept up to 500 files (and their buffers) open
                batch_bytes += pending.size
                result.bytes += pending.size
                if len(batch) >= BATCH_MESSAGES or batch_bytes >= BATCH_BYTES:
                    flush()
                    # A safe point: the batch is durable and indexed. Stopping mid-FETCH leaves the rest of
                    # the response unread, but the connection is closed with the sync anyway.
                    self._check()
            if empties and b"EXPUNGEISSUED" not in answer.tagged.upper():
                batch += empties  # empty messages, really: stored like any other
                empties = []
            if batch:
                flush()
        finally:
            sink.discard_all()
            for pending, *_ in batch + empties:
                pending.discard()


def _angle_id(text: str) -> str:
    """A Message-ID's ``<...>`` token (folding and comments aside), or "" when there is none."""
    m = re.search(r"<[^<>\s]+>", text)
    return m.group(0) if m else ""


def _starts_with(path: Path, start: bytes | bytearray) -> bool:
    """Whether the file at ``path`` begins with ``start`` (the server's first bytes of the message)."""
    try:
        with open(path, "rb") as fh:
            return bool(start) and fh.read(len(start)) == start
    except OSError:
        return False


class _Start:
    """A BODY[]<0.n> sink: the first bytes of a message (at most :data:`SAME_START`)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes, /) -> int:
        self.data += data[:SAME_START - len(self.data)]
        return len(data)


class _BodySinks:
    """Hands the stream parser a fresh tmp/ file for each BODY[] literal, and gives it back by item."""

    def __init__(self, md: Maildir) -> None:
        self.md = md
        self._open: dict[int, PendingMessage] = {}

    def open(self, item: FetchItem) -> PendingMessage:
        pending = self.md.begin(buffered=False)  # the stream parser writes whole TLS records
        self._open[id(item)] = pending
        return pending

    def take(self, item: FetchItem) -> PendingMessage | None:
        return self._open.pop(id(item), None)

    def discard_all(self) -> None:
        for pending in self._open.values():
            pending.discard()
        self._open.clear()


_MAILDIR_FLAGS = frozenset({"\\Draft", "\\Flagged", "\\Answered", "\\Seen", "\\Deleted"})


_MODIFIED = re.compile(rb"\[MODIFIED ([\d:,]+)\]", re.I)


def _modified(seen: Untagged) -> set[int]:
    """The UIDs a conditional STORE left alone because they changed since (RFC 7162 ``[MODIFIED ...]``)."""
    m = _MODIFIED.search(seen.tagged)
    return set(parse_uid_set(m.group(1).decode())) if m else set()


def _mtime_of(md: Maildir, name: str) -> float | None:
    """When a file saved here was written: the best INTERNALDATE it has (Maildir keeps no other)."""
    try:
        return md.path(name).stat().st_mtime
    except OSError:
        return None


def _mtime(md: Maildir) -> int:
    """cur/ and new/ in one number: a flag rename (cur/) and a delivery (new/) both change it."""
    total = 0
    for sub in ("cur", "new"):
        try:
            total += (md.root / sub).stat().st_mtime_ns
        except OSError:
            pass
    return total


def _message_id(md: Maildir, name: str, upload: Upload) -> str:
    """The Message-ID usable in a SEARCH (ASCII, in angle brackets), or "" (content decides then)."""
    mid = read_header_info(md.path(name), upload.head).message_id
    return mid if mid.isascii() and mid.startswith("<") and mid.endswith(">") else ""


class _Digest:
    """A BODY[] sink that keeps only the SHA-256 of what it was given."""

    def __init__(self) -> None:
        import hashlib

        self.hash = hashlib.sha256()

    def write(self, data: bytes, /) -> int:
        self.hash.update(data)
        return len(data)


def sync_imap_account(
    account: Account, store: Store, session: ImapSession, *, listener: Listener | None = None,
    cancel: CancelToken | None = None, folders: list[str] | None = None,
    on_folder: Callable[[FolderResult], None] | None = None, redownload: bool = False, dry_run: bool = False,
    reopen: Callable[[], AbstractContextManager[ImapSession]] | None = None,
) -> list[FolderResult]:
    """Sync every folder of an IMAP account; ``dry_run``: plan only (each result's ``plan``), write nothing.

    A folder that fails part-way through a server response (the connection cut, garbage in a FETCH)
    is reported as not synced, and the next folder starts on a new connection from ``reopen``
    (without one, the error stops the account): the old stream is out of step, and reading on would
    take the rest of one answer for the next command's. A refusal (a tagged NO) keeps the connection.
    """
    with ExitStack() as sessions:
        return _sync_folders(account, store, session, listener, cancel, folders, on_folder, redownload, dry_run,
                             (lambda: sessions.enter_context(reopen())) if reopen is not None else None)


def _sync_folders(account: Account, store: Store, session: ImapSession, listener: Listener | None,
                  cancel: CancelToken | None, folders: list[str] | None,
                  on_folder: Callable[[FolderResult], None] | None, redownload: bool, dry_run: bool,
                  reopen: Callable[[], ImapSession] | None) -> list[FolderResult]:
    engine = ImapSync(account, store, session, listener=listener, cancel=cancel, folders=folders,
                      redownload=redownload, dry_run=dry_run)
    results: list[FolderResult] = []

    def report(r: FolderResult) -> None:
        results.append(r)
        if listener is not None:
            from deskmail.events import FolderFinished

            listener(FolderFinished(account.name, r.folder, r.new, tuple(r.notes)))
        if on_folder:
            on_folder(r)

    engine._check()
    wanted = engine.reconcile_folders()
    dropped = False
    failed = False
    for folder in wanted:
        engine._check()  # between folders
        if dropped:
            assert reopen is not None
            engine._use(reopen())  # a failure to connect again stops the account: the network is gone
            dropped = False
        try:
            r = engine.sync_folder(folder)
        except (ProtocolError, NetworkError) as exc:
            # One broken folder (hostile names, refused commands, inconsistent UIDs, a response cut or
            # garbled part-way) must not stop the others; a store error does stop the account (the disk).
            out_of_step = isinstance(exc, NetworkError) or not engine.imap.in_step
            if out_of_step:
                if reopen is None:
                    raise
                engine.imap.abort()
                dropped = True
            failed = True
            r = FolderResult(account.name, folder.name, notes=[f"not synced: {exc}"], codes=[exc.code])
            if listener is not None:
                from deskmail.events import FolderFailed

                listener(FolderFailed(account.name, folder.name, exc))
            if not dry_run:
                with store.transaction():
                    store.log(account.name, folder.name, f"not synced: {exc.what}")
        report(r)
    if not dry_run and folders is None and not failed:
        # Every folder synced: a parked copy no folder took was expunged, not moved. After a partial or
        # failed run they wait (the folder they were moved to may be the one not synced).
        engine.drop_parked()
    for r in engine.unsynced:
        report(r)
    synced = {f.name for f in wanted}
    for name, actions in engine.folder_plans.items():  # dry run: folders that are not (yet) synced here
        if name in synced:
            r = next(x for x in results if x.folder == name)
            r.plan[:0] = actions
        else:
            r = FolderResult(account.name, name)
            r.plan.extend(actions)
            results.append(r)
    return results


class _FolderRun:
    """One folder's sync in progress: what was gathered and what the executor's actions changed."""

    def __init__(self, folder: Folder, md: Maildir, status: FolderStatus, rows: dict[str, Row],
                 result: FolderResult) -> None:
        self.folder = folder
        self.md = md
        self.status = status
        self.rows = rows  # uid -> row, kept current by the actions (scan renames, deletes, moves)
        self.result = result
        self.local: LocalState  # set by the gathering
        self.server: ServerState
        self.pending: list[Op] = []
        self.unknown: list[str] = []  # files here the server does not know
        self.journaled: dict[str, Op] = {}  # interrupted uploads not found on the server: appended again
        self.adopted: set[str] = set()  # UIDs a resumed upload adopted: never downloaded
        self.waiting = False  # uploads refused or held: look at the files again next time
        self.deleted_elsewhere: set[str] | None = None  # UIDs marked \\Deleted by others (no UIDPLUS: asked once)


def _orphans(md: Maildir, rows: dict[str, Row], uidvalidities: set[int]) -> tuple[list[str], list[str]]:
    """Dry run's read-only :meth:`Store.recover_unknown`: (crash leftovers it would adopt, unknown files)."""
    indexed = {r.filename.partition(":")[0] for r in rows.values()}
    leftovers: list[str] = []
    unknown: list[str] = []
    for name in md.peek_files():
        if name.partition(":")[0] in indexed:
            continue
        key = server_key(name)
        (leftovers if key is not None and key[0] in uidvalidities else unknown).append(name)
    return leftovers, unknown


__all__ = ["FetchItem", "FolderResult", "ImapSync", "special_use_of", "sync_imap_account"]

"""The IMAP folder planner: what one folder's sync must do, decided from plain data.

:func:`plan_folder` takes what :mod:`deskmail.sync.imap_sync` gathered (the index rows and the
files here as :class:`LocalState`, the SELECT and the server's changes as :class:`ServerState`)
and returns the ordered list of frozen actions the executor applies. No sockets, no store, no
files, no clock: the rules of the module docstring of :mod:`~deskmail.sync.imap_sync` live here
and are tested without servers (tests/unit/test_sync_plan.py).

The order is the durability order: journaled user intent first (deletes, moves), then what the
server removed, then flags, then interrupted uploads, the download, new uploads, and last the
checkpoint that advances the folder's sync state (only reached when everything before it held).
Only :class:`DeleteThere` and :class:`MoveThere` remove anything from the server, and only a
journaled user op makes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Literal

Flags = frozenset[str]

# More local-only messages than this in one folder wait for a confirmation (a wrong directory or a
# restored backup must not flood the server).
MASS_UPLOAD = 50

Mode = Literal["qresync", "unchanged", "listing", "first", "unread"]


def merge_flags(base: Flags, local: Flags, remote: Flags) -> Flags:
    """Three-way flag merge: each side's additions and removals apply; conflicts union (keep the flag)."""
    added = (local - base) | (remote - base)
    removed = ((base - local) | (base - remote)) - added
    return (base | added) - removed


def remerge(assumed: Flags, mine: Flags, now: Flags, permanent: tuple[str, ...] | None) -> tuple[Flags, Flags]:
    """A guarded STORE came back ``MODIFIED``: another client changed the message after the plan read
    its flags (``assumed``). Merge again: the flags here (``mine``, already merged with ``assumed``)
    against what the server has ``now``, so that neither side's change is lost. Returns (the flags
    here, the flags to send); nothing to send when the second equals ``now``."""
    merged = merge_flags(assumed, mine, now)
    return merged, frozenset(f for f in merged if kept(f, permanent))


def is_keyword(flag: str) -> bool:
    return not flag.startswith("\\")


def kept(flag: str, permanent: tuple[str, ...] | None) -> bool:
    """Whether the server stores ``flag`` (PERMANENTFLAGS; none announced: every flag, RFC 3501 7.1)."""
    return permanent is None or not is_keyword(flag) or "\\*" in permanent or flag in permanent


# --- gathered state ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LocalMessage:
    """One message as the store knows it."""

    uidvalidity: int
    flags: Flags  # here, now (file name + the index's keywords)
    synced: Flags  # what both sides agreed on last time
    missing: bool = False  # the file vanished behind our back


@dataclass(frozen=True, slots=True)
class JournalOp:
    """A user's delete or move, journaled here and not yet carried out on the server."""

    id: int
    kind: Literal["delete", "move"]
    uidvalidity: int
    uid: str
    target: str = ""


@dataclass(frozen=True, slots=True)
class LocalState:
    """A folder as the store knows it, gathered before planning."""

    uidvalidity: int  # as last synced (0: never)
    uidnext: int
    highestmodseq: int
    # uid -> message: every row of the folder, or (QRESYNC, nothing changed here) only the rows the
    # server reported on and those the journal names.
    messages: Mapping[str, LocalMessage] = field(default_factory=dict)
    _: KW_ONLY
    clean: bool = False  # cur/ and new/ untouched since the last finished sync, no upload pending
    known_max: int = 0  # the highest UID held here under the server's UIDVALIDITY
    ops: tuple[JournalOp, ...] = ()
    unknown: tuple[str, ...] = ()  # files here the server does not know (to upload)
    appends: frozenset[str] = frozenset()  # unique names of journaled uploads a crash interrupted
    leftovers: tuple[str, ...] = ()  # dry run: files with our identity the index lacks (adopted first)
    upload_confirmed: bool = False


@dataclass(frozen=True, slots=True)
class ServerState:
    """A folder as the server reported it at SELECT (and the flags fetched since the last sync)."""

    uidvalidity: int
    uidnext: int
    exists: int
    highestmodseq: int
    # qresync: changes since our HIGHESTMODSEQ; unchanged: CONDSTORE says nothing happened; listing:
    # every UID's flags; first: nothing here yet, nothing listed; unread: UIDVALIDITY changed.
    mode: Mode
    flags: Mapping[str, Flags] = field(default_factory=dict)  # qresync: the changed ones; listing: all
    vanished: frozenset[str] = frozenset()  # qresync only
    permanent: tuple[str, ...] | None = None  # PERMANENTFLAGS, None when not announced


# --- actions --------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class FlagChange:
    """A message's flags to set on one side."""

    uid: str
    flags: Flags  # the message's flags here after the change


def _flags(flags: Flags) -> str:
    return " ".join(sorted(flags)) or "(none)"


def _uids(uids: tuple[str, ...] | tuple[int, ...]) -> str:
    shown = ", ".join(map(str, uids[:8]))
    return shown + (f" and {len(uids) - 8} more" if len(uids) > 8 else "")


@dataclass(frozen=True, slots=True)
class Recover:
    """Action: adopt message files a crash left in the folder without an index row."""

    names: tuple[str, ...]

    def describe(self) -> str:
        return f"adopt {len(self.names)} files a crash left unindexed"


@dataclass(frozen=True, slots=True)
class Rekey:
    """Action: the folder's UIDVALIDITY changed; re-match local copies instead of downloading them again."""

    old: int
    new: int

    def describe(self) -> str:
        return (f"UIDVALIDITY changed ({self.old} -> {self.new}): re-match local copies by Message-ID and size, "
                "keep the rest in a local Recovered folder, then sync again")


@dataclass(frozen=True, slots=True)
class DropOp:
    """Action: forget a journaled operation that can no longer apply."""

    op: JournalOp

    def describe(self) -> str:
        return f"drop the journaled {self.op.kind} of UID {self.op.uid} (the folder's UIDVALIDITY changed)"


@dataclass(frozen=True, slots=True)
class DeleteThere:
    """Action: delete on the server a message deleted here."""

    op: JournalOp

    def describe(self) -> str:
        return f"delete UID {self.op.uid} on the server (deleted here)"


@dataclass(frozen=True, slots=True)
class MoveThere:
    """Action: move on the server a message moved here."""

    op: JournalOp

    def describe(self) -> str:
        return f"move UID {self.op.uid} to {self.op.target} on the server (moved here)"


@dataclass(frozen=True, slots=True)
class ForgetMissing:
    """Index rows whose file vanished here and that the server no longer has under this UIDVALIDITY."""

    uids: tuple[str, ...]

    def describe(self) -> str:
        return f"forget {len(self.uids)} messages whose file vanished here and which are gone on the server"


@dataclass(frozen=True, slots=True)
class ExpungeHere:
    """Action: remove the local copies of messages expunged on the server."""

    uids: tuple[str, ...]
    dropped: tuple[str, ...] = ()  # of those, the ones whose local flag changes are lost

    def describe(self) -> str:
        return f"remove {len(self.uids)} messages expunged on the server (UID {_uids(self.uids)})"


@dataclass(frozen=True, slots=True)
class LogConflicts:
    """Action: report flags changed on both sides (merged)."""

    changes: tuple[FlagChange, ...]

    def describe(self) -> str:
        return f"{len(self.changes)} messages had flags changed on both sides: merged"


@dataclass(frozen=True, slots=True)
class PullFlags:
    """Set flags here (file name and index) and record them as agreed: the server has them already."""

    changes: tuple[FlagChange, ...]
    synced: tuple[Flags, ...]  # per change: what to record as agreed (unkept keywords left out)

    def describe(self) -> str:
        return f"take flag changes for {len(self.changes)} messages (UID {_uids(tuple(c.uid for c in self.changes))})"


@dataclass(frozen=True, slots=True)
class PushFlags:
    """Make the server's flags ``flags`` for these messages, which it had as ``theirs`` when the plan was
    made; agreed only once the server said OK.

    Never a blind replacement: with CONDSTORE the executor sends ``flags`` with ``UNCHANGEDSINCE`` (a
    message another client changed since comes back ``MODIFIED`` and is merged again,
    :func:`remerge`); without it, only the difference (``+FLAGS`` :attr:`add`, ``-FLAGS``
    :attr:`remove`), which leaves another client's other flags alone.
    """

    flags: Flags
    changes: tuple[FlagChange, ...]
    theirs: Flags = frozenset()

    @property
    def add(self) -> Flags:
        return self.flags - self.theirs

    @property
    def remove(self) -> Flags:
        return self.theirs - self.flags

    def describe(self) -> str:
        uids = tuple(c.uid for c in self.changes)
        return f"set flags {_flags(self.flags)} on the server for UID {_uids(uids)}"


@dataclass(frozen=True, slots=True)
class UnkeptKeywords:
    """Action: report keywords the server does not keep."""

    keywords: tuple[str, ...]

    def describe(self) -> str:
        return f"keywords the server does not keep stay here only: {', '.join(self.keywords)}"


@dataclass(frozen=True, slots=True)
class ResumeUploads:
    """Look on the server for uploads a crash interrupted (adopt them, or append them again)."""

    names: tuple[str, ...]

    def describe(self) -> str:
        return f"finish {len(self.names)} interrupted uploads"


@dataclass(frozen=True, slots=True)
class Download:
    """Action: fetch messages the store does not have."""

    uids: tuple[int, ...]
    above: int | None = None  # also every UID above this one (new mail, not listed)
    refetch: tuple[str, ...] = ()  # of ``uids``: messages whose file vanished here

    def describe(self) -> str:
        parts = []
        if self.uids:
            parts.append(f"download {len(self.uids)} messages (UID {_uids(self.uids)})")
        if self.above is not None:
            parts.append(f"download new messages above UID {self.above}")
        if self.refetch:
            parts.append(f"{len(self.refetch)} of them again, their file vanished here")
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class UploadThere:
    """Action: append to the server messages saved here."""

    names: tuple[str, ...]  # files saved here, new to the server
    confirmed: bool = False  # a confirmation for a mass upload was used (it counts once)

    def describe(self) -> str:
        return f"upload {len(self.names)} messages saved here"


@dataclass(frozen=True, slots=True)
class HoldUploads:
    """Action: too many messages to upload at once; wait for a confirmation."""

    total: int

    def describe(self) -> str:
        return f"{self.total} messages saved here wait for a confirmation (more than {MASS_UPLOAD} at once)"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Record the server's UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ (and the scan time of cur/ and new/)."""

    uidvalidity: int
    uidnext: int
    highestmodseq: int
    quiet: bool = False  # nothing happened on either side: only HIGHESTMODSEQ may move
    rescan: bool = False  # look at the files here again next time (uploads wait)

    def describe(self) -> str:
        return f"record the folder's state (UIDNEXT {self.uidnext}, HIGHESTMODSEQ {self.highestmodseq})"


# Folder-level actions of a dry run (what reconcile_folders would do).
@dataclass(frozen=True, slots=True)
class CreateFolder:
    """Action: a folder new on the server (or here) is created on the other side."""

    name: str
    there: bool  # True: on the server (made here); False: here (new on the server)

    def describe(self) -> str:
        if self.there:
            return f"create folder {self.name} on the server (made here) and upload its messages"
        return f"create folder {self.name} here and download it"


@dataclass(frozen=True, slots=True)
class RenameHere:
    """Action: follow a folder's rename on the server."""

    old: str
    new: str

    def describe(self) -> str:
        return f"rename folder {self.old} to {self.new} here (renamed on the server)"


@dataclass(frozen=True, slots=True)
class QuarantineFolder:
    """Action: keep the local copy of a folder that vanished from the server."""

    name: str

    def describe(self) -> str:
        return f"folder {self.name} vanished from the server: keep the local copy as a Recovered folder"


@dataclass(frozen=True, slots=True)
class Redownload:
    """Action: download a folder again whose local copy is missing."""

    name: str

    def describe(self) -> str:
        return f"the local copy of {self.name} is missing: download the folder again"


# POP3 plans in SQL (deskmail.sync.pop3_sync); a dry run reports what it found.
@dataclass(frozen=True, slots=True)
class Pop3Download:
    """Action: download new POP3 messages."""

    total: int
    headers_only: bool = False

    def describe(self) -> str:
        return f"download {self.total} new messages" + (" (headers only)" if self.headers_only else "")


@dataclass(frozen=True, slots=True)
class Pop3Delete:
    """Action: delete POP3 messages from the server under the account's rules."""

    total: int

    def describe(self) -> str:
        return f"delete {self.total} messages from the server (the account's rules)"


Action = (Recover | Rekey | DropOp | DeleteThere | MoveThere | ForgetMissing | ExpungeHere | LogConflicts
          | PullFlags | PushFlags | UnkeptKeywords | ResumeUploads | Download | UploadThere | HoldUploads
          | Checkpoint
          | CreateFolder | RenameHere | QuarantineFolder | Redownload | Pop3Download | Pop3Delete)


# --- the planner ----------------------------------------------------------------------------------

def plan_folder(local: LocalState, server: ServerState) -> list[Action]:
    """The ordered actions that bring one folder and its server copy together (see the module docstring)."""
    actions: list[Action] = []
    if local.leftovers:
        actions.append(Recover(local.leftovers))
    if local.uidvalidity and server.uidvalidity != local.uidvalidity:
        # Every UID here means another message now: nothing else can be decided before the re-match.
        actions.append(Rekey(local.uidvalidity, server.uidvalidity))
        return actions

    # 1. The user's journaled deletes and moves, in the order they were made.
    op_uids: set[str] = set()
    for op in local.ops:
        if op.uidvalidity != server.uidvalidity:
            actions.append(DropOp(op))
            continue
        op_uids.add(op.uid)
        actions.append(MoveThere(op) if op.kind == "move" else DeleteThere(op))

    # 2. What the server says, as a flag map and the UIDs it no longer has.
    remote: Mapping[str, Flags] = server.flags if server.mode in ("qresync", "listing") else {}
    ours = {uid: m for uid, m in local.messages.items()
            if m.uidvalidity == server.uidvalidity and uid not in op_uids}
    if server.mode == "listing":
        vanished = {uid for uid in ours if uid not in remote}
    elif server.mode == "qresync":
        vanished = {uid for uid in server.vanished if uid in ours}
    else:
        vanished = set()

    # 3. Files that vanished here: fetched again if the server has them, never a delete there (F-15).
    missing = {uid for uid, m in local.messages.items() if m.missing and uid not in op_uids}
    refetch = sorted((uid for uid in missing if uid in ours and uid not in vanished), key=int)
    forget = sorted(missing - set(refetch), key=_uid_key)
    if forget:
        actions.append(ForgetMissing(tuple(forget)))

    # 4. Expunged on the server wins over any local flag change.
    gone = sorted(vanished - missing, key=int)
    if gone:
        dropped = tuple(uid for uid in gone if ours[uid].flags != ours[uid].synced)
        actions.append(ExpungeHere(tuple(gone), dropped))

    # 5. Flags, three-way.
    pulls: list[FlagChange] = []
    pull_synced: list[Flags] = []
    pushes: dict[tuple[Flags, Flags], list[FlagChange]] = {}  # (to send, the server's now) -> messages
    conflicts: list[FlagChange] = []
    unkept: set[str] = set()
    for uid in sorted(ours, key=int):
        m = ours[uid]
        if uid in vanished or m.missing:
            continue
        base, mine = m.synced, m.flags
        theirs = remote.get(uid, base)
        if mine == base and theirs == base:
            continue
        merged = merge_flags(base, mine, theirs)
        if mine != base and theirs != base and mine != theirs:
            conflicts.append(FlagChange(uid, merged))
        refused = {f for f in merged if not kept(f, server.permanent)}
        unkept |= refused
        send = merged - refused
        if send != theirs:
            pushes.setdefault((send, theirs), []).append(FlagChange(uid, merged))
        elif merged != mine or send != base:
            pulls.append(FlagChange(uid, merged))
            pull_synced.append(send)
    if conflicts:
        actions.append(LogConflicts(tuple(conflicts)))
    if pulls:
        actions.append(PullFlags(tuple(pulls), tuple(pull_synced)))
    for flags, theirs in sorted(pushes, key=lambda k: (sorted(k[0]), sorted(k[1]))):
        actions.append(PushFlags(flags, tuple(pushes[(flags, theirs)]), theirs))
    if unkept:
        actions.append(UnkeptKeywords(tuple(sorted(unkept))))

    # 6. Uploads a crash interrupted: before the download, which must not fetch them as new mail.
    if local.appends:
        actions.append(ResumeUploads(tuple(n for n in local.unknown if _unique(n) in local.appends)))

    # 7. New mail (and the messages whose file vanished here).
    held = {uid for uid, m in local.messages.items() if m.uidvalidity == server.uidvalidity and not m.missing}
    if server.mode == "listing":
        wanted = {int(uid) for uid in remote if uid not in held and uid not in op_uids}
    else:
        wanted = {int(uid) for uid in remote if uid not in held and uid not in op_uids and uid not in vanished}
        wanted |= {int(uid) for uid in refetch}
    above = None
    if server.mode != "listing" and server.uidnext != local.uidnext and server.uidnext > local.known_max + 1:
        above = local.known_max
        wanted = {u for u in wanted if u <= above}  # the range covers the rest
    if wanted or above is not None:
        actions.append(Download(tuple(sorted(wanted)), above, tuple(refetch)))

    # 8. Messages saved here.
    waiting = False
    fresh = tuple(n for n in local.unknown if _unique(n) not in local.appends)
    if len(fresh) > MASS_UPLOAD and not local.upload_confirmed:
        actions.append(HoldUploads(len(fresh)))
        fresh, waiting = (), True
    if fresh or local.appends:
        actions.append(UploadThere(fresh, local.upload_confirmed))

    quiet = local.clean and not actions and server.uidnext == local.uidnext
    actions.append(Checkpoint(server.uidvalidity, server.uidnext, server.highestmodseq, quiet=quiet,
                              rescan=waiting))
    return actions


def _unique(name: str) -> str:
    return name.partition(":")[0]


def _uid_key(uid: str) -> tuple[int, str]:
    return (int(uid), "") if uid.isdigit() else (0, uid)


def describe(action: Action) -> str:
    return action.describe()


__all__ = [
    "MASS_UPLOAD", "Action", "Checkpoint", "CreateFolder", "DeleteThere", "Download", "DropOp", "ExpungeHere",
    "FlagChange", "Flags", "ForgetMissing", "HoldUploads", "JournalOp", "LocalMessage", "LocalState", "LogConflicts",
    "MoveThere", "Pop3Delete", "Pop3Download", "PullFlags", "PushFlags", "QuarantineFolder", "Recover",
    "Redownload", "Rekey", "RenameHere", "ResumeUploads", "ServerState", "UnkeptKeywords", "UploadThere",
    "describe", "is_keyword", "kept", "merge_flags", "plan_folder", "remerge",
]

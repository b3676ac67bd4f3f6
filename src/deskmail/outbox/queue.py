"""The persistent outbox: every message is written here durably before it is sent (docs/outbox.md).

Layout under ``DATA/outbox``::

    tmp/ID.eml     being written
    new/ID.eml     the message, exactly the bytes handed to SMTP (CRLF lines, no Bcc header)
    state/ID.json  its record, replaced atomically on every change
    lock           held (flock) by whoever delivers, so two processes never send the same message

The record is the commit point: a message file without a record is an enqueue that never finished (the
caller was never told "queued") and is swept away later; removal deletes the record first.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

from deskmail.codes import Code
from deskmail.durable import atomic_write, fsync_dir
from deskmail.errors import DeskmailError, NotFoundError, StoreError, UsageError

# queued: waiting to be sent now; deferred: waiting for next_attempt (4xx, network); sending: a process
# holds it (a record left "sending" by a process that died is settled by recover()); sent: the server took
# it (copy pending until saved in Sent); failed: refused for good (5xx, too large); uncertain: the server
# may have it (the connection failed after the final dot) — never sent again without the user's word.
QUEUED, DEFERRED, SENDING, SENT, FAILED, UNCERTAIN = "queued", "deferred", "sending", "sent", "failed", "uncertain"
STATES = (QUEUED, DEFERRED, SENDING, SENT, FAILED, UNCERTAIN)
# The copy in Sent of a sent message: still to save, saved (sent_folder says where), or kept by the provider.
COPY_PENDING, COPY_SAVED, COPY_BY_PROVIDER = "pending", "saved", "by_provider"
BACKOFF = (60, 120, 300, 900, 1800, 3600)  # seconds after the 1st, 2nd … temporary failure; then hourly
ORPHAN_AGE = 600.0  # a message file without a record, this old, is an enqueue that died half-way


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One message in the outbox and where it stands.

    ``recipients``: those still to deliver to; ``delivered``: those the server accepted; ``replies``: the
    server's last reply per recipient (``"550 5.1.1 no such user"``), refusals included; ``bcc``: the blind
    copies (never in the transmitted headers, written into the copy in Sent). ``data_sent`` (state
    ``sending`` only): the message with its final dot was about to be, or was, handed over.
    """

    id: str
    account: str
    sender: str
    recipients: tuple[str, ...]
    message_id: str
    subject: str
    created: float
    size: int
    bcc: tuple[str, ...] = ()
    state: str = QUEUED
    attempts: int = 0
    next_attempt: float = 0.0
    last_error: str = ""
    error_code: str = ""
    delivered: tuple[str, ...] = ()
    replies: Mapping[str, str] = field(default_factory=dict)
    data_sent: bool = False
    sent_copy: str = ""
    sent_folder: str = ""

    @property
    def refused(self) -> dict[str, str]:
        """Recipients refused for good (5xx), with the server's reason."""
        return {r: reply for r, reply in self.replies.items() if reply[:1] == "5"}

    def due(self, now: float) -> bool:
        return self.state == QUEUED or (self.state == DEFERRED and self.next_attempt <= now)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["replies"] = dict(self.replies)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OutboxEntry:
        d = dict(d)
        for key in ("recipients", "bcc", "delivered"):
            d[key] = tuple(d.get(key, ()))
        d["replies"] = dict(d.get("replies", {}))
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class Outbox:
    """The queue on disk. Every method leaves it consistent if the process dies at any point."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def add(self, account: str, sender: str, raw: bytes | Callable[[BinaryIO], None], recipients: Sequence[str],
            *, bcc: Sequence[str] = (), message_id: str = "", subject: str = "") -> OutboxEntry:
        """Write the message durably (tmp/ → new/, file and directory fsynced), then its record. ``raw`` is
        the message, or what writes it into the file (a large one is never held in memory whole)."""
        now = time.time()
        entry_id = time.strftime("%Y%m%d%H%M%S", time.gmtime(now)) + "-" + secrets.token_hex(4)
        tmp = self._dir("tmp") / f"{entry_id}.eml"
        try:
            with open(tmp, "xb") as fh:
                if isinstance(raw, bytes):
                    fh.write(raw)
                else:
                    raw(fh)
                fh.flush()
                size = fh.tell()
                os.fsync(fh.fileno())
            final = self._dir("new") / f"{entry_id}.eml"
            os.replace(tmp, final)
            fsync_dir(final.parent)
            entry = OutboxEntry(entry_id, account, sender, tuple(recipients), message_id, subject, now, size,
                                bcc=tuple(bcc))
            return self.save(entry)
        except OSError as exc:
            raise _store_error(self.root, exc) from None
        finally:
            if tmp.exists():  # the message could not be written whole (an attachment gone, the disk full)
                tmp.unlink(missing_ok=True)

    def save(self, entry: OutboxEntry) -> OutboxEntry:
        try:
            atomic_write(self._dir("state") / f"{entry.id}.json", json.dumps(entry.to_dict(), indent=1).encode())
        except OSError as exc:
            raise _store_error(self.root, exc) from None
        return entry

    def entries(self) -> list[OutboxEntry]:
        """Every message in the outbox, oldest first."""
        state = self.root / "state"
        if not state.is_dir():
            return []
        out = []
        for path in state.glob("*.json"):
            try:
                out.append(OutboxEntry.from_dict(json.loads(path.read_bytes())))
            except FileNotFoundError:  # removed meanwhile by another process
                continue
            except (ValueError, KeyError, TypeError) as exc:
                raise StoreError(f"The outbox record {path} cannot be read ({exc})",
                                 "the file was damaged or edited by hand",
                                 f"move it away; the message itself is {self.root / 'new' / path.stem}.eml") from None
        return sorted(out, key=lambda e: (e.created, e.id))

    def get(self, entry_id: str) -> OutboxEntry:
        path = self.root / "state" / f"{Path(entry_id).name}.json"
        try:
            return OutboxEntry.from_dict(json.loads(path.read_bytes()))
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"The outbox holds no message {entry_id!r}", "",
                                "list the outbox to see the ids", code=Code.NO_SUCH_OUTBOX_ENTRY) from None

    def path(self, entry_id: str) -> Path:
        return self.root / "new" / f"{entry_id}.eml"

    def raw(self, entry_id: str) -> bytes:
        """The message whole, in memory (delivering reads it from :meth:`path` a chunk at a time)."""
        return self.path(entry_id).read_bytes()

    def remove(self, entry_id: str) -> None:
        """The record first (the commit point), then the message."""
        (self.root / "state" / f"{entry_id}.json").unlink(missing_ok=True)
        fsync_dir(self._dir("state"))
        self.path(entry_id).unlink(missing_ok=True)

    @contextmanager
    def lock(self, *, wait: bool = True) -> Iterator[None]:
        """Exclusive, for changing records (between processes, and between threads: each call opens its own
        file). ``wait=False`` raises at once when another process holds it (it is sending)."""
        fd = os.open(self._dir(".") / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                raise UsageError("The outbox is being sent right now", "",
                                 "try again when that sending is over", code=Code.OUTBOX_BUSY) from None
            yield
        finally:
            os.close(fd)  # releases the lock; a killed process releases it too

    def recover(self, now: float | None = None) -> list[OutboxEntry]:
        """Call under :meth:`lock`: settle what a process that died left behind.

        A record still ``sending`` belongs to a process that died while sending. Before the data step was
        recorded, the final dot cannot have gone out (a server drops a transaction without it): queued again.
        After it, the server may have the message: uncertain. Message files without a record (an enqueue or
        a removal cut short) and stale ``tmp/`` files are deleted.
        """
        now = time.time() if now is None else now
        changed = []
        entries = self.entries()
        for entry in entries:
            if entry.state != SENDING:
                continue
            if entry.data_sent:
                entry = replace(entry, state=UNCERTAIN, data_sent=False, error_code=Code.SEND_UNCERTAIN,
                                last_error="deskmail stopped after handing the message over and before the "
                                           "server's answer; it may have been sent")
            else:
                entry = replace(entry, state=QUEUED, next_attempt=0.0,
                                last_error="deskmail stopped while sending, before the message was handed over")
            changed.append(self.save(entry))
        known = {e.id for e in entries}
        for sub in ("new", "tmp"):
            folder = self.root / sub
            for path in folder.glob("*.eml") if folder.is_dir() else ():
                try:
                    if path.stem not in known and now - path.stat().st_mtime > ORPHAN_AGE:
                        path.unlink()
                except FileNotFoundError:
                    pass
        return changed


def _store_error(root: Path, exc: OSError) -> DeskmailError:
    return StoreError(f"The outbox {root} cannot be written ({exc.strerror or exc})",
                      "the disk is full or the folder's permissions changed",
                      "free some space or fix the permissions; nothing was sent")


def backoff(attempts: int) -> float:
    return float(BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1])


def for_retry(entry: OutboxEntry) -> OutboxEntry:
    """The entry queued again at the user's word: failed, deferred or uncertain (a resend the user chose)."""
    if entry.state not in (QUEUED, DEFERRED, FAILED, UNCERTAIN):
        raise UsageError(f"The outbox message {entry.id} is {entry.state}; only a queued, deferred, failed or "
                         "uncertain message can be sent again", code=Code.OUTBOX_STATE)
    if not entry.recipients:
        raise UsageError(f"The outbox message {entry.id} has no recipient left to send to",
                         code=Code.OUTBOX_STATE)
    return replace(entry, state=QUEUED, next_attempt=0.0)


def marked_sent(entry: OutboxEntry) -> OutboxEntry:
    """An uncertain message the user says did go out: sent, its copy in Sent still to save."""
    if entry.state != UNCERTAIN:
        raise UsageError(f"The outbox message {entry.id} is {entry.state}; only an uncertain message can be "
                         "marked as sent", code=Code.OUTBOX_STATE)
    return replace(entry, state=SENT, delivered=entry.delivered + entry.recipients, recipients=(),
                   sent_copy=COPY_PENDING, last_error="", error_code="")

"""The persistent outbox: every message is written here durably before it is sent.

Layout under ``DATA/outbox`` (docs/outbox.md)::

    tmp/ID.eml     being written
    new/ID.eml     the message, exactly the bytes handed to SMTP (CRLF lines)
    state/ID.json  its state record, replaced atomically on every change
    lock           held (flock) by whoever delivers, so two processes never send the same message

The state record is the commit point: a message file without a record is an enqueue that never
finished (the caller was not told "queued") and is ignored; removal deletes the record first.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from deskmail.codes import Code
from deskmail.config import atomic_write
from deskmail.errors import DeskmailError, NotFoundError, UsageError
from deskmail.events import NEVER, CancelToken
from deskmail.model import Account
from deskmail.protocol.smtp import DataUncertain, Transaction, open_smtp
from deskmail.secrets import Secret

QUEUED, SENDING, SENT, FAILED, UNCERTAIN = "queued", "sending", "sent", "failed", "uncertain"
STATES = (QUEUED, SENDING, SENT, FAILED, UNCERTAIN)
BACKOFF = (60, 120, 300, 900, 1800, 3600)  # seconds after the 1st, 2nd … temporary failure; then hourly


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One message in the outbox and where it stands.

    ``recipients``: those still to deliver to; ``delivered``: those the server accepted;
    ``replies``: the server's last reply per recipient (``"550 5.1.1 no such user"``), refusals included.
    ``data_sent`` (state ``sending`` only): the message was about to be, or was, handed over.
    """

    id: str
    account: str
    sender: str
    recipients: tuple[str, ...]
    message_id: str
    subject: str
    created: float
    size: int
    state: str = QUEUED
    attempts: int = 0
    next_attempt: float = 0.0
    last_error: str = ""
    error_code: str = ""
    delivered: tuple[str, ...] = ()
    replies: Mapping[str, str] = field(default_factory=dict)
    data_sent: bool = False

    @property
    def refused(self) -> dict[str, str]:
        """Recipients refused for good (5xx), with the server's reason."""
        return {r: reply for r, reply in self.replies.items() if reply[:1] == "5"}

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "account": self.account, "sender": self.sender,
                "recipients": list(self.recipients), "message_id": self.message_id, "subject": self.subject,
                "created": self.created, "size": self.size, "state": self.state, "attempts": self.attempts,
                "next_attempt": self.next_attempt, "last_error": self.last_error, "error_code": self.error_code,
                "delivered": list(self.delivered), "replies": dict(self.replies), "data_sent": self.data_sent}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OutboxEntry:
        return cls(id=str(d["id"]), account=str(d["account"]), sender=str(d["sender"]),
                   recipients=tuple(d["recipients"]), message_id=str(d.get("message_id", "")),
                   subject=str(d.get("subject", "")), created=float(d["created"]), size=int(d.get("size", 0)),
                   state=str(d["state"]), attempts=int(d.get("attempts", 0)),
                   next_attempt=float(d.get("next_attempt", 0)), last_error=str(d.get("last_error", "")),
                   error_code=str(d.get("error_code", "")), delivered=tuple(d.get("delivered", ())),
                   replies=dict(d.get("replies", {})), data_sent=bool(d.get("data_sent", False)))


class Outbox:
    """The queue on disk. Every method is safe against a crash at any point (see the module doc)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def add(self, account: str, sender: str, raw: bytes, recipients: Sequence[str], *, message_id: str = "",
            subject: str = "") -> OutboxEntry:
        """Write the message durably (tmp/ → new/, file and directory fsynced), then its record."""
        now = time.time()
        entry_id = time.strftime("%Y%m%d%H%M%S", time.gmtime(now)) + "-" + secrets.token_hex(4)
        tmp = self._dir("tmp") / f"{entry_id}.eml"
        with open(tmp, "xb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        final = self._dir("new") / f"{entry_id}.eml"
        os.replace(tmp, final)
        _fsync_dir(final.parent)
        entry = OutboxEntry(entry_id, account, sender, tuple(recipients), message_id, subject, now, len(raw))
        self.save(entry)
        return entry

    def save(self, entry: OutboxEntry) -> OutboxEntry:
        atomic_write(self._dir("state") / f"{entry.id}.json", json.dumps(entry.to_dict(), indent=1).encode())
        return entry

    def entries(self) -> list[OutboxEntry]:
        out = []
        for path in sorted(self._dir("state").glob("*.json")):
            try:
                out.append(OutboxEntry.from_dict(json.loads(path.read_bytes())))
            except FileNotFoundError:  # removed meanwhile by another process
                continue
            except (ValueError, KeyError, TypeError) as exc:
                raise DeskmailError(f"The outbox record {path} cannot be read ({exc})",
                                    "the file was damaged or edited by hand",
                                    f"move it away; the message itself is {self.root / 'new' / path.stem}.eml",
                                    code=Code.STORE_ERROR) from None
        return sorted(out, key=lambda e: (e.created, e.id))

    def get(self, entry_id: str) -> OutboxEntry:
        path = self.root / "state" / f"{Path(entry_id).name}.json"
        try:
            return OutboxEntry.from_dict(json.loads(path.read_bytes()))
        except FileNotFoundError:
            raise NotFoundError(f"The outbox holds no message {entry_id!r}", "",
                                "list the outbox to see the ids", code=Code.NO_SUCH_OUTBOX_ENTRY) from None

    def raw(self, entry_id: str) -> bytes:
        return (self.root / "new" / f"{entry_id}.eml").read_bytes()

    def remove(self, entry_id: str) -> None:
        """The record first (the commit point), then the message."""
        (self.root / "state" / f"{entry_id}.json").unlink(missing_ok=True)
        _fsync_dir(self._dir("state"))
        (self.root / "new" / f"{entry_id}.eml").unlink(missing_ok=True)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive for delivering (between processes, and between threads: each call opens its own file)."""
        fd = os.open(self._dir(".") / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock; a killed process releases it too

    def recover(self) -> list[OutboxEntry]:
        """Call under :meth:`lock`: a record still ``sending`` belongs to a process that died while sending.

        Before the data step was recorded, the final dot cannot have gone out (the server drops a
        transaction without it): queued again. After it, the server may have the message: uncertain.
        """
        changed = []
        for entry in self.entries():
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
        return changed


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backoff(attempts: int) -> float:
    return float(BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1])


def _later(entry: OutboxEntry, error: str, code: str, now: float, **changes: Any) -> OutboxEntry:
    return replace(entry, state=QUEUED, data_sent=False, last_error=error, error_code=code,
                   next_attempt=now + backoff(entry.attempts), **changes)


def _reply(pair: tuple[int, str]) -> str:
    return f"{pair[0]} {pair[1]}".strip()


def _judge(entry: OutboxEntry, t: Transaction, now: float) -> OutboxEntry:
    """The entry after one transaction, from the server's replies (2xx accepted, 4xx later, 5xx never)."""
    replies = {**entry.replies, **{r: _reply(p) for r, p in t.recipients.items()}}
    if t.mail[0] >= 400:
        if t.mail[0] < 500:
            return _later(entry, f"The outgoing server asked to try later ({_reply(t.mail)})", Code.SEND_DEFERRED,
                          now)
        return replace(entry, state=FAILED, data_sent=False, error_code=Code.MESSAGE_REFUSED,
                       last_error=f"The outgoing server refused the sender {entry.sender} ({_reply(t.mail)})")
    accepted = [r for r, (c, _) in t.recipients.items() if c < 300]
    later = tuple(r for r, (c, _) in t.recipients.items() if 400 <= c < 500)
    refused = {r: _reply(p) for r, p in t.recipients.items() if p[0] >= 500}
    if t.data is None or t.data[0] >= 300:
        said = _reply(t.data) if t.data is not None else "; ".join(f"{r}: {x}" for r, x in refused.items())
        if t.data is not None and 400 <= t.data[0] < 500:
            return _later(entry, f"The outgoing server asked to try later ({said})", Code.SEND_DEFERRED, now,
                          replies=replies)
        if t.data is None and later:  # some recipients refused for now: keep only those (and drop the refused)
            return _later(entry, "The outgoing server asked to try later for "
                          + ", ".join(f"{r} ({replies[r]})" for r in later), Code.SEND_DEFERRED, now,
                          recipients=later, replies=replies)
        code = Code.RECIPIENT_REFUSED if t.data is None else Code.MESSAGE_REFUSED
        what = "refused every recipient" if t.data is None else "refused the message"
        return replace(entry, state=FAILED, data_sent=False, error_code=code, replies=replies,
                       last_error=f"The outgoing server {what} ({said})")
    delivered = entry.delivered + tuple(accepted)
    if later:
        return _later(entry, "Sent to " + ", ".join(accepted) + "; the server asked to try later for "
                      + ", ".join(f"{r} ({replies[r]})" for r in later), Code.SEND_DEFERRED, now,
                      recipients=later, delivered=delivered, replies=replies)
    note = ("; refused: " + "; ".join(f"{r}: {x}" for r, x in refused.items())) if refused else ""
    return replace(entry, state=SENT, data_sent=False, recipients=(), delivered=delivered, replies=replies,
                   error_code=Code.RECIPIENT_REFUSED if refused else "", last_error=note.lstrip("; "))


def deliver(outbox: Outbox, account: Account, password: Secret | None, entries: Sequence[OutboxEntry], *,
            cancel: CancelToken = NEVER, listener: Callable[[OutboxEntry], None] | None = None,
            timeout: float = 60.0) -> list[OutboxEntry]:
    """Send ``entries`` (all of ``account``, state queued) over ONE connection; call under :meth:`Outbox.lock`.

    Returns each entry as it ended (sent, queued with a reason, failed or uncertain), in order; entries
    not reached (the connection was lost, or ``cancel``) come back unchanged.
    """
    done: list[OutboxEntry] = []

    def record(entry: OutboxEntry) -> None:
        done.append(outbox.save(entry))
        if listener is not None:
            listener(entry)

    pending = list(entries)
    try:
        with open_smtp(account, password, timeout=timeout) as smtp:
            while pending:
                if cancel.cancelled:
                    break
                entry = pending.pop(0)
                now = time.time()
                if smtp.size_limit and entry.size > smtp.size_limit:
                    record(replace(entry, state=FAILED, error_code=Code.MESSAGE_TOO_LARGE,
                                   last_error=f"The message is {entry.size} bytes; the outgoing server "
                                              f"{account.outgoing.host} accepts at most {smtp.size_limit} bytes"))
                    continue
                entry = outbox.save(replace(entry, state=SENDING, attempts=entry.attempts + 1, data_sent=False))
                current = entry

                def data_step(e: OutboxEntry = entry) -> None:
                    outbox.save(replace(e, data_sent=True))

                try:
                    transaction = smtp.transact(entry.sender, entry.recipients, outbox.raw(entry.id), data_step)
                except DataUncertain as exc:
                    record(replace(current, state=UNCERTAIN, data_sent=False, error_code=Code.SEND_UNCERTAIN,
                                   last_error="The connection to the outgoing server failed after the message "
                                              f"was handed over, before its answer ({exc}); it may have been sent"))
                    break
                except DeskmailError as exc:
                    record(_later(current, str(exc), str(exc.code), now))
                    break
                judged = _judge(entry, transaction, now)
                if judged.state != SENT:
                    smtp.reset()
                record(judged)
    except DeskmailError as exc:  # connecting, TLS, login: nothing was handed over
        now = time.time()
        for entry in pending:
            record(_later(replace(entry, attempts=entry.attempts + 1), str(exc), str(exc.code), now))
        pending = []
    return done + pending


def check_retry(entry: OutboxEntry) -> None:
    if entry.state not in (QUEUED, FAILED, UNCERTAIN):
        raise UsageError(f"The outbox message {entry.id} is {entry.state}; only a queued, failed or uncertain "
                         "message can be sent again", code=Code.OUTBOX_STATE)

"""Delivering the outbox: one SMTP connection per account and batch, per-recipient judging, the copy in Sent.

Every step is recorded in the message's outbox record before the next one starts, so a process killed
anywhere leaves something :meth:`Outbox.recover` settles without sending anything twice:

1. ``sending`` is recorded, then MAIL FROM / RCPT TO / DATA; the server's 354 arrives;
2. ``data_sent`` is recorded, then the message and its final dot go out (from here the outcome is unknown
   until the reply is read: a failure now means *uncertain*, never a resend);
3. the reply is judged and recorded (sent, deferred, failed);
4. the copy goes to Sent: first looked for by Message-ID (a copy saved just before a crash is found, not
   saved twice), appended if absent, recorded; then a message with nothing left to tell is removed.
"""

from __future__ import annotations

import io
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from deskmail.codes import Code
from deskmail.errors import DeskmailError, ProtocolError, SendError
from deskmail.model import Account, Protocol
from deskmail.outbox.queue import (
    COPY_BY_PROVIDER,
    COPY_PENDING,
    COPY_SAVED,
    DEFERRED,
    FAILED,
    SENDING,
    SENT,
    UNCERTAIN,
    Outbox,
    OutboxEntry,
    backoff,
)
from deskmail.protocol.smtp import DataUncertain, Transaction, open_smtp

if TYPE_CHECKING:
    from deskmail.events import CancelToken, Listener
    from deskmail.protocol.imap import ImapSession
    from deskmail.secrets import Secret

# Providers that file a message sent through their SMTP server into Sent themselves (a second copy would
# be a duplicate there).
PROVIDER_KEEPS_SENT = ("smtp.gmail.com", "smtp.googlemail.com")
DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class FlushResult:
    """What one delivery run did: every message it handled as it ended, in order, and per account the
    error that stopped sending or saving copies there (the messages concerned stay in the outbox)."""

    entries: tuple[OutboxEntry, ...] = ()
    errors: Mapping[str, DeskmailError] = field(default_factory=dict)

    def entry(self, entry_id: str) -> OutboxEntry | None:
        return next((e for e in self.entries if e.id == entry_id), None)


def entry_error(entry: OutboxEntry, error: DeskmailError | None = None) -> DeskmailError | None:
    """Why ``entry`` is not (wholly) sent, as an error an interface shows: the error that stopped its
    delivery when there is one (``error``), else one made from its record; None when nothing is wrong."""
    refused = entry.refused
    if entry.state == SENT:
        if not refused:
            return None
        return SendError(f"The message was sent, but {len(refused)} recipient(s) were refused",
                         "; ".join(f"{r}: {x}" for r, x in refused.items()),
                         "check those addresses; do not send it again to the others, they got it",
                         refused, code=Code.RECIPIENT_REFUSED, account=entry.account)
    if entry.state not in (DEFERRED, FAILED, UNCERTAIN):
        return None
    if error is not None:
        return error
    remedy = {DEFERRED: "nothing to do: it is sent again automatically",
              FAILED: "correct what the server objects to and send a new message",
              UNCERTAIN: "check with a recipient before sending it again"}[entry.state]
    return SendError(entry.last_error or f"The message is {entry.state}", "", remedy, refused,
                     code=entry.error_code or Code.SEND_REFUSED, account=entry.account)


def _reply(pair: tuple[int, str]) -> str:
    return f"{pair[0]} {pair[1]}".strip()


def _later(entry: OutboxEntry, error: str, code: str, now: float, **changes: Any) -> OutboxEntry:
    return replace(entry, state=DEFERRED, data_sent=False, last_error=error, error_code=code,
                   next_attempt=now + backoff(entry.attempts), **changes)


def _failed(entry: OutboxEntry, error: str, code: str, **changes: Any) -> OutboxEntry:
    return replace(entry, state=FAILED, data_sent=False, last_error=error, error_code=code, **changes)


def judge(entry: OutboxEntry, t: Transaction, now: float) -> OutboxEntry:
    """The entry after one transaction, from the server's replies: 2xx accepted, 4xx later, 5xx never.

    Recipients the server accepted are never sent to again; those refused for good are dropped from the
    ones still to send to (their reasons stay in ``replies``); those refused for now are tried later.
    """
    replies = {**entry.replies, **{r: _reply(p) for r, p in t.recipients.items()}}
    mail = _reply(t.mail)
    if t.mail[0] >= 500:
        return _failed(entry, f"The outgoing server refused the sender {entry.sender} ({mail})", Code.MESSAGE_REFUSED)
    if t.mail[0] >= 400:
        return _later(entry, f"The outgoing server asked to try later ({mail})", Code.SEND_DEFERRED, now)
    accepted = tuple(r for r, (c, _) in t.recipients.items() if c < 300)
    later = tuple(r for r, (c, _) in t.recipients.items() if 400 <= c < 500)
    refused = {r: _reply(p) for r, p in t.recipients.items() if p[0] >= 500}
    refusals = "; ".join(f"{r}: {x}" for r, x in refused.items())
    if t.data is not None and t.data[0] < 300:  # accepted for every recipient the server accepted
        delivered = entry.delivered + accepted
        if later:
            return _later(entry, f"Sent to {', '.join(accepted)}; the server asked to try later for "
                          + ", ".join(f"{r} ({replies[r]})" for r in later), Code.SEND_DEFERRED, now,
                          recipients=later, delivered=delivered, replies=replies)
        return replace(entry, state=SENT, data_sent=False, recipients=(), delivered=delivered, replies=replies,
                       sent_copy=COPY_PENDING, error_code=Code.RECIPIENT_REFUSED if refused else "",
                       last_error=f"Refused: {refusals}" if refused else "")
    # Nothing was delivered by this transaction.
    keep = tuple(r for r in entry.recipients if r not in refused)
    if t.data is not None:
        said = _reply(t.data)
        if t.data[0] < 500:
            return _later(entry, f"The outgoing server asked to try later ({said})", Code.SEND_DEFERRED, now,
                          recipients=keep, replies=replies)
        return _failed(entry, f"The outgoing server refused the message ({said})", Code.MESSAGE_REFUSED,
                       recipients=keep, replies=replies)
    if later:
        return _later(entry, "The outgoing server asked to try later for "
                      + ", ".join(f"{r} ({replies[r]})" for r in later)
                      + (f"; refused: {refusals}" if refused else ""), Code.SEND_DEFERRED, now,
                      recipients=later, replies=replies)
    return _failed(entry, f"The outgoing server refused every recipient ({refusals})", Code.RECIPIENT_REFUSED,
                   replies=replies)


def deliver(outbox: Outbox, account: Account, password: Secret | None, entries: Sequence[OutboxEntry], *,
            record: Callable[[OutboxEntry], None], starting: Callable[[OutboxEntry], None] | None = None,
            cancel: CancelToken | None = None, timeout: float = DEFAULT_TIMEOUT) -> DeskmailError | None:
    """Send ``entries`` (all of ``account``, due) over ONE connection; call under :meth:`Outbox.lock`.

    ``record`` hears each entry as it ends (sent, deferred, failed, uncertain; already saved), ``starting``
    each as its transaction begins. Returns the
    error that ended the connection early (connecting, TLS, login, a broken connection), if any; the
    entries not reached then are deferred with it.
    """
    pending = list(entries)
    error: DeskmailError | None = None
    try:
        with open_smtp(account, password, timeout=timeout) as smtp:
            while pending and not (cancel is not None and cancel.cancelled):
                entry = pending.pop(0)
                now = time.time()
                if smtp.size_limit and entry.size > smtp.size_limit:
                    record(outbox.save(_failed(
                        entry, f"The message is {entry.size:,} bytes; the outgoing server {account.outgoing.host} "
                               f"accepts at most {smtp.size_limit:,} bytes", Code.MESSAGE_TOO_LARGE,
                        attempts=entry.attempts + 1)))
                    continue
                entry = outbox.save(replace(entry, state=SENDING, attempts=entry.attempts + 1, data_sent=False))
                if starting is not None:
                    starting(entry)
                def data_step(e: OutboxEntry = entry) -> None:
                    outbox.save(replace(e, data_sent=True))

                try:
                    with open(outbox.path(entry.id), "rb") as message:
                        t = smtp.transact(entry.sender, entry.recipients, message, entry.size, data_step)
                except DataUncertain as exc:
                    record(outbox.save(replace(
                        entry, state=UNCERTAIN, data_sent=False, error_code=Code.SEND_UNCERTAIN,
                        last_error="The connection to the outgoing server failed after the message was handed "
                                   f"over, before the server's answer ({exc}); it may have been sent")))
                    error = SendError("The outgoing server did not confirm the message", str(exc),
                                      "check with a recipient before sending it again",
                                      code=Code.SEND_UNCERTAIN, account=account.name, host=account.outgoing.host)
                    break
                except SendError as exc:  # refused before MAIL FROM: this message only (international address)
                    record(outbox.save(_failed(entry, str(exc), exc.code)))
                    continue
                except DeskmailError as exc:  # the connection broke before the final dot: nothing went out
                    record(outbox.save(_later(entry, str(exc), exc.code, now)))
                    error = exc
                    break
                record(outbox.save(judge(entry, t, now)))
    except DeskmailError as exc:  # connecting, TLS, login: nothing was handed over
        error = exc
    if error is not None and error.code != Code.SEND_UNCERTAIN:
        now = time.time()
        for entry in pending:
            record(outbox.save(_later(replace(entry, attempts=entry.attempts + 1), str(error), error.code, now)))
    return error


def sent_copy(message: Path, bcc: Sequence[str]) -> tuple[BinaryIO, int]:
    """The copy kept in Sent, to read a chunk at a time (close it), and its size: the message as
    transmitted, with its Bcc recipients named."""
    head = b"Bcc: " + ", ".join(bcc).encode("utf-8") + b"\r\n" if bcc else b""
    fh = open(message, "rb")  # noqa: SIM115 (the caller's to close)
    size = os.fstat(fh.fileno()).st_size
    if not head:
        return fh, size
    return io.BufferedReader(_Prefixed(head, fh)), len(head) + size


class _Prefixed(io.RawIOBase):
    """``head``, then what ``rest`` holds (closed with it)."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head, self._rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n], self._head = self._head[:n], self._head[n:]
            return n
        data = self._rest.read(len(view))
        view[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._rest.close()
        super().close()


def save_copies(outbox: Outbox, account: Account, password: Secret | None, entries: Sequence[OutboxEntry],
                local_dir: Path, *, record: Callable[[OutboxEntry], None], fresh: frozenset[str] = frozenset(),
                timeout: float = DEFAULT_TIMEOUT, early: EarlyCopies | None = None) -> DeskmailError | None:
    """Save the copies in Sent of ``entries`` (sent, copy pending): over IMAP into the Sent folder, found by
    SPECIAL-USE or name (created if missing); for a POP3 account into ``local_dir``; not at all where the
    provider files them itself. A copy already there (same Message-ID) is not saved again; the ids in
    ``fresh`` (sent by this very run: no earlier APPEND can have happened) are saved without looking.
    ``early``: the IMAP session opened meanwhile (used, then closed, also when there is nothing to save)."""
    if not entries:
        if early is not None:
            early.close()
        return None
    if account.outgoing.host.lower() in PROVIDER_KEEPS_SENT:
        for entry in entries:
            record(outbox.save(replace(entry, sent_copy=COPY_BY_PROVIDER)))
        return None
    if account.incoming.protocol is not Protocol.IMAP:
        from deskmail.durable import atomic_write

        for entry in entries:
            path = local_dir / f"{entry.id}.eml"
            copy, _size = sent_copy(outbox.path(entry.id), entry.bcc)
            with copy:
                def write(out: BinaryIO, source: BinaryIO = copy) -> None:
                    shutil.copyfileobj(source, out, 1024 * 1024)

                atomic_write(path, write)
            record(outbox.save(replace(entry, sent_copy=COPY_SAVED, sent_folder=str(path))))
        return None
    from deskmail.errors import AuthError
    from deskmail.protocol.imap import open_imap

    try:
        if early is not None:
            imap, sent = early.take()
            _append_copies(outbox, imap, sent, entries, record, fresh, account.name)
            return None
        if password is None:
            return AuthError(f"No password available for {account.incoming.describe()}", account=account.name)
        with open_imap(account, password, timeout=timeout) as session:
            _append_copies(outbox, session, _sent_folder(session), entries, record, fresh, account.name)
    except DeskmailError as exc:
        return exc
    finally:
        if early is not None:
            early.close()
    return None


def _sent_folder(imap: ImapSession) -> str:
    """The Sent folder: by SPECIAL-USE, else by its name; created when there is none."""
    from deskmail.protocol.imap import special_use_of

    folders = imap.list_folders()
    sent = next((n for flags, _d, n in folders if "\\Sent" in flags), None) or next(
        (n for flags, _d, n in folders if special_use_of(flags, n) == "\\Sent"), None)
    if sent is None:
        sent = "Sent"
        imap.create_folder(sent)
        imap.subscribe(sent)
    return sent


def _append_copies(outbox: Outbox, imap: ImapSession, sent: str, entries: Sequence[OutboxEntry],
                   record: Callable[[OutboxEntry], None], fresh: frozenset[str], account: str) -> None:
    from deskmail.protocol.imap import quote_string

    if any(e.id not in fresh for e in entries):
        imap.select(sent)
    for entry in entries:
        mid = entry.message_id
        found = False
        if entry.id not in fresh and mid.isascii() and mid:
            seen = imap.run(f"UID SEARCH HEADER Message-ID {quote_string(mid)}", parse=frozenset({b"SEARCH"}))
            found = any(v for _kind, values in seen.data for v in values)
        if not found:
            copy, size = sent_copy(outbox.path(entry.id), entry.bcc)
            try:
                with copy:
                    imap.append(sent, copy, ("\\Seen",), entry.created, size=size)
            except ProtocolError as exc:
                if "[OVERQUOTA]" not in exc.what.upper():
                    raise
                # RFC 5530: the mailbox is full. Named as such (not "refused the command"), so the person
                # knows to free space; the copy stays pending and is saved by a later flush.
                raise ProtocolError(
                    f"The copy in {sent} was not saved: the mailbox on the server is full ({exc.what})",
                    "the account is over its storage quota",
                    "delete messages (and empty the trash) on the server; the copy is saved at the next send "
                    "or flush", code=Code.OVER_QUOTA, account=account, folder=sent) from exc
        record(outbox.save(replace(entry, sent_copy=COPY_SAVED, sent_folder=sent)))


class EarlyCopies:
    """The IMAP session for the copies in Sent, logged in and its Sent folder found in a thread while the
    messages go out over SMTP: the two servers' round trips overlap instead of adding up (~20 ms of a
    single send). :meth:`take` hands it over (or raises what went wrong there); :meth:`close` logs out."""

    def __init__(self, account: Account, password: Secret, timeout: float) -> None:
        self._account, self._password, self._timeout = account, password, timeout
        self._cm: AbstractContextManager[ImapSession] | None = None
        self._session: ImapSession | None = None
        self._sent = ""
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._open, name=f"sent-copy-{account.name}", daemon=True)
        self._thread.start()

    def _open(self) -> None:
        from deskmail.protocol.imap import open_imap

        try:
            cm = open_imap(self._account, self._password, timeout=self._timeout)
            self._session = cm.__enter__()
            self._cm = cm
            self._sent = _sent_folder(self._session)
        except BaseException as exc:  # (raised in the caller's thread by take())
            self._error = exc

    def take(self) -> tuple[ImapSession, str]:
        self._thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        assert self._session is not None
        return self._session, self._sent

    def close(self) -> None:
        self._thread.join()
        cm, self._cm = self._cm, None
        if cm is not None:
            try:
                cm.__exit__(None, None, None)
            except DeskmailError:
                pass  # (logging out of a connection that broke)


def flush(outbox: Outbox, accounts: Mapping[str, Account], password_for: Callable[[Account], Secret], *,
          local_sent: Callable[[Account], Path], names: Sequence[str] | None = None,
          ids: Sequence[str] | None = None, everything: bool = False, listener: Listener | None = None,
          cancel: CancelToken | None = None, timeout: Callable[[Account], float] | None = None) -> FlushResult:
    """Deliver what is due (``everything``: every queued and deferred message, back-off or not) and save the
    copies in Sent still pending; only of the accounts ``names`` / the messages ``ids`` when given.

    One SMTP connection per account (one TLS handshake, one AUTH for the batch), then one IMAP connection
    for its copies. Messages of accounts no longer configured are left as they are.
    """
    done: list[OutboxEntry] = []
    errors: dict[str, DeskmailError] = {}
    with outbox.lock():
        outbox.recover()
        now = time.time()
        chosen = [e for e in outbox.entries() if (ids is None or e.id in ids)
                  and (names is None or e.account in names) and e.account in accounts]
        for name in dict.fromkeys(e.account for e in chosen):
            account = accounts[name]
            mine = [e for e in chosen if e.account == name]
            to_send = [e for e in mine if e.due(now) or (everything and e.state == DEFERRED)]
            to_copy = [e for e in mine if e.state == SENT and e.sent_copy == COPY_PENDING]
            finished: list[OutboxEntry] = []

            def tell(entry: OutboxEntry, account: str = name, total: int = len(to_send),
                     finished: list[OutboxEntry] = finished) -> None:
                if listener is not None:
                    from deskmail.events import OutboxProgress

                    listener(OutboxProgress(account, entry.id, entry.subject, entry.state, len(finished), total,
                                            entry.last_error))

            def record(entry: OutboxEntry, finished: list[OutboxEntry] = finished) -> None:
                finished.append(entry)
                done.append(entry)
                tell(entry)

            seconds = timeout(account) if timeout is not None else DEFAULT_TIMEOUT
            password: Secret | None = None
            imap = account.incoming.protocol is Protocol.IMAP
            if (to_send and account.outgoing.auth_required) or (imap and (to_send or to_copy)):
                try:
                    password = password_for(account)
                except DeskmailError as exc:
                    errors[name] = exc
                    for entry in to_send:
                        record(outbox.save(_later(replace(entry, attempts=entry.attempts + 1), str(exc), exc.code,
                                                  now)))
                    continue
            early = (EarlyCopies(account, password, seconds) if imap and to_send and password is not None
                     and account.outgoing.host.lower() not in PROVIDER_KEEPS_SENT else None)
            try:
                if to_send:
                    error = deliver(outbox, account, password if account.outgoing.auth_required else None, to_send,
                                    record=record, starting=tell, cancel=cancel, timeout=seconds)
                    if error is not None:
                        errors[name] = error
            except BaseException:
                if early is not None:
                    early.close()
                raise
            newly_sent = [e for e in finished if e.state == SENT and e.sent_copy == COPY_PENDING]
            error = save_copies(outbox, account, password, to_copy + newly_sent, local_sent(account),
                                record=lambda e: done.append(e), fresh=frozenset(e.id for e in newly_sent),
                                timeout=seconds, early=early)
            if error is not None and name not in errors:
                errors[name] = error
        final = {e.id: e for e in done}  # the last record of each, in the order they were first handled
        finished_before = [e for e in chosen if e.id not in final]  # (a process died before removing them)
        for entry in [*final.values(), *finished_before]:
            if entry.state == SENT and entry.sent_copy not in ("", COPY_PENDING) and not entry.refused:
                outbox.remove(entry.id)  # delivered and filed: nothing left to tell
    return FlushResult(tuple(final.values()), errors)

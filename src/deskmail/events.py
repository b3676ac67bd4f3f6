"""Typed progress events and cancellation for every long operation of the engine.

A caller (the CLI's progress bar, the desktop application, a script) passes a
:data:`Listener` and, if it wants to stop the work, a :class:`CancelToken`. The
engine calls the listener from whichever thread does the work; a GUI forwards the
events to its own thread (a queued signal), a terminal prints them.

Cancelling is cooperative: the engine checks the token at safe points only
(between folders, between download batches, between planned actions), where the
store is consistent and every finished step is durable, and then raises
:class:`deskmail.errors.Cancelled`. A later sync picks up where it stopped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from deskmail.errors import Cancelled, DeskmailError


@dataclass(frozen=True, slots=True)
class FolderStarted:
    """A folder's sync began."""

    account: str
    folder: str


@dataclass(frozen=True, slots=True)
class MessagesDownloaded:
    """Progress of one folder's download: ``done`` of ``total`` messages, ``bytes`` so far."""

    account: str
    folder: str
    done: int
    total: int
    bytes: int


@dataclass(frozen=True, slots=True)
class FlagsPulled:
    """``count`` messages took flag changes made on the server."""

    account: str
    folder: str
    count: int


@dataclass(frozen=True, slots=True)
class FlagsPushed:
    """The server accepted flag changes made here on ``count`` messages."""

    account: str
    folder: str
    count: int


@dataclass(frozen=True, slots=True)
class Uploaded:
    """``count`` messages saved here were appended to the server."""

    account: str
    folder: str
    count: int


@dataclass(frozen=True, slots=True)
class Deleted:
    """``count`` deletes or moves made here were carried out on the server (``here=False``), or
    ``count`` messages expunged on the server were removed here (``here=True``)."""

    account: str
    folder: str
    count: int
    here: bool


@dataclass(frozen=True, slots=True)
class FolderFailed:
    """One folder could not be synced; the others go on."""

    account: str
    folder: str
    error: DeskmailError


@dataclass(frozen=True, slots=True)
class FolderFinished:
    """A folder's sync ended: how many new messages, and notes for the person."""

    account: str
    folder: str
    new: int
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AccountFinished:
    """The end of one account's work; ``error`` is set when it stopped early."""

    account: str
    error: DeskmailError | None = None


@dataclass(frozen=True, slots=True)
class OutboxProgress:
    """A message of the outbox changed state while being sent: ``state`` is ``sending`` as its transaction
    begins, then ``sent``, ``deferred``, ``failed`` or ``uncertain`` (``detail``: the server's reason);
    ``done`` of ``total`` messages of this account's batch have ended so far."""

    account: str
    id: str
    subject: str
    state: str
    done: int
    total: int
    detail: str = ""


Event = (FolderStarted | MessagesDownloaded | FlagsPulled | FlagsPushed | Uploaded | Deleted | FolderFailed
         | FolderFinished | AccountFinished | OutboxProgress)
Listener = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The listener of callers that do not listen."""


class CancelToken:
    """Set by the caller (any thread), checked by the engine at its safe points."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if the caller asked to stop (call only where stopping is safe)."""
        if self._event.is_set():
            raise Cancelled("Stopped on request", "", "run the sync again to finish; nothing was lost")

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, waking at once on cancel; True if cancelled."""
        return self._event.wait(timeout)


NEVER = CancelToken()  # a token nobody cancels, for callers that cannot stop the work

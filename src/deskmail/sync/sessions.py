"""IMAP sessions kept open between syncs, for a long-running process (the desktop application, a script).

A one-shot `deskmail sync` connects, logs in and leaves. A program that syncs every few minutes,
or each time the person clicks "Get mail", would pay the TCP and TLS handshakes and the login
each time: on a loopback Dovecot that is most of a no-change sync (~20 of ~27 ms measured with
bench/inprocess_bench.py). :class:`SessionPool` keeps one logged-in session per account and
hands it to the next sync after a NOOP has shown it still answers; a session that failed during
a sync is closed, never reused, and the next sync logs in afresh.

Each account's session is used by one sync at a time (a lock per account).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from deskmail.errors import DeskmailError
from deskmail.model import Account, Protocol
from deskmail.protocol.imap import ImapSession, open_imap
from deskmail.secrets import get_password


class KeptSession:
    """One account's session: opened on first use, kept while it works."""

    def __init__(self, account: Account, timeout: float = 60.0) -> None:
        self.account = account
        self._timeout = timeout
        self._lock = threading.Lock()
        self._cm: AbstractContextManager[ImapSession] | None = None
        self._session: ImapSession | None = None

    @contextmanager
    def session(self) -> Iterator[ImapSession]:
        """A logged-in session for one sync; closed for good if the sync raised anything."""
        with self._lock:
            session = self._alive()
            try:
                yield session
            except BaseException:
                self._drop()
                raise

    def _alive(self) -> ImapSession:
        if self._session is not None:
            try:
                self._session.run("NOOP")  # a server that timed the session out answers BYE, or nothing
            except (DeskmailError, OSError):
                self._drop()
        if self._session is None:
            cm = open_imap(self.account, get_password(self.account), timeout=self._timeout)
            self._session = cm.__enter__()
            self._cm = cm
        return self._session

    def _drop(self) -> None:
        cm, self._cm, self._session = self._cm, None, None
        if cm is not None:
            try:
                cm.__exit__(None, None, None)  # LOGOUT, then close
            except (DeskmailError, OSError):
                pass  # the connection is gone already: nothing to say goodbye to

    def close(self) -> None:
        with self._lock:
            self._drop()


class SessionPool:
    """The kept sessions of several accounts, by account name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[str, KeptSession] = {}

    def for_accounts(self, accounts: list[Account]) -> dict[str, KeptSession]:
        """Kept sessions for the IMAP accounts among ``accounts`` (POP3 sessions are not kept: the
        server applies deletions only at QUIT, and some allow one session at a time)."""
        with self._lock:
            out = {}
            for a in accounts:
                if a.incoming.protocol is not Protocol.IMAP:
                    continue
                kept = self._kept.get(a.name)
                if kept is None or kept.account != a:  # new, or its settings changed: a new session
                    if kept is not None:
                        kept.close()
                    kept = self._kept[a.name] = KeptSession(a, a.timeout)
                out[a.name] = kept
            return out

    def close(self) -> None:
        with self._lock:
            kept, self._kept = list(self._kept.values()), {}
        for k in kept:
            k.close()

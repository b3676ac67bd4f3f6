"""Connect to the IMAP server while the rest of deskmail is still starting up.

A no-change sync is mostly waiting: for the TLS handshake, the login, and the
server opening folders (Dovecot needs ~20 ms to open a 50,000-message INBOX,
~80 ms when new mail arrived). Started right after the configuration is read,
:class:`EarlyConnection` does that waiting in a thread while the main thread
imports the store and the sync engine and takes the store lock: it logs in,
lists the folders with their STATUS, and SELECTs INBOX the way the engine will
(:meth:`deskmail.protocol.imap.ImapSession.warm_up`). Nothing is written,
locally or on the server; the engine then uses the connection exactly as if it
had opened it itself, and any prefetched answer it does not ask for again is
dropped.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from deskmail.model import Account, Protocol, Security

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms of every sync); mypy reads it as True
if TYPE_CHECKING:
    from pathlib import Path

    from deskmail.protocol.imap import ImapSession


class EarlyConnection:
    def __init__(self, account: Account, data_dir: Path | None = None, timeout: float = 60.0) -> None:
        self.account = account
        self._data_dir = data_dir
        self._timeout = timeout
        self._cm: AbstractContextManager[ImapSession] | None = None
        self._session: ImapSession | None = None
        self._error: BaseException | None = None
        self.waiting = threading.Event()  # set once the thread has imported what it needs and starts waiting
        self._thread = threading.Thread(target=self._open, name=f"connect-{account.name}", daemon=True)
        self._thread.start()

    def let_it_start(self) -> None:
        """Block until the thread is on the network: its imports are on the critical path, the caller's are not.

        Both threads import modules, which needs the GIL; run side by side they would
        slow each other down. In turn, the caller's imports fill the time the thread
        spends waiting for the server.
        """
        self.waiting.wait(timeout=2.0)

    @classmethod
    def start_for(cls, accounts: list[Account], data_dir: Path) -> dict[str, EarlyConnection]:
        """Early connections for the IMAP accounts among ``accounts``, by account name.

        Not for accounts without encryption: their plaintext warning must come before anything
        is sent, and they gain nothing worth that.
        """
        return {a.name: cls(a, data_dir) for a in accounts
                if a.incoming.protocol is Protocol.IMAP and a.incoming.security is not Security.NONE}

    def _open(self) -> None:
        try:
            from deskmail.protocol.imap import open_imap
            from deskmail.secrets import get_password

            password = get_password(self.account)
            self.waiting.set()
            cm = open_imap(self.account, password, timeout=self._timeout)
            session = cm.__enter__()
            self._cm, self._session = cm, session
            session.warm_up(inbox=self._inbox_state())
        except BaseException as exc:
            self._error = exc
        finally:
            self.waiting.set()

    def _inbox_state(self) -> tuple[int, int] | None:
        return inbox_state(self._data_dir, self.account.name) if self._data_dir is not None else None

    @contextmanager
    def session(self) -> Iterator[ImapSession]:
        """The logged-in session; errors of the connection thread are raised here, in the caller's thread."""
        self._thread.join()
        try:
            if self._error is not None:
                raise self._error
            assert self._session is not None
            yield self._session
        finally:
            self.close()

    def close(self) -> None:
        self._thread.join()
        cm, self._cm = self._cm, None
        if cm is not None:
            cm.__exit__(None, None, None)


def inbox_state(data_dir: Path, account: str) -> tuple[int, int] | None:
    """INBOX's (UIDVALIDITY, HIGHESTMODSEQ) in the index, read without the store lock.

    Only used to ask the server early; the engine builds its SELECT from the row it reads
    under the lock, and a prefetched answer to a different question is thrown away.
    """
    import sqlite3

    path = data_dir / "index.sqlite3"
    if not path.exists():
        return None
    try:
        # as_uri() percent-encodes: a folder named "a#b" or "50%" must not change the URI's meaning.
        db = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True, timeout=1)
        try:
            row = db.execute("SELECT uidvalidity, highestmodseq FROM folders WHERE account=? AND name='INBOX'",
                             (account,)).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return (int(row[0]), int(row[1])) if row else None

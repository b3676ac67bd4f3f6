"""Connect to the IMAP server while the rest of deskmail is still starting up.

A no-change sync is mostly waiting: for the TLS handshake, the login, and the
server opening folders (Dovecot needs ~20 ms to open a 50,000-message INBOX,
~80 ms when new mail arrived). Two threads do that waiting while the main thread
imports the configuration, the store and the sync engine and takes the store lock:

- :func:`dial_early` opens the TCP and TLS connection first thing, from the cached
  parse of the accounts file, before even the configuration module is imported
  (:mod:`deskmail.net.dial`);
- :class:`EarlyConnection`, started once the configuration is read, takes that
  connection over, logs in, lists the folders with their STATUS, and SELECTs INBOX
  the way the engine will (:meth:`deskmail.protocol.imap.ImapSession.warm_up`).

Nothing is written, locally or on the server; the engine then uses the connection
exactly as if it had opened it itself, and any prefetched answer it does not ask
for again is dropped.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from deskmail.model import Account
    from deskmail.net.dial import Dial
    from deskmail.protocol.imap import ImapSession


class EarlyConnection:
    def __init__(self, account: Account, data_dir: Path | None = None, timeout: float = 60.0,
                 dial: Dial | None = None) -> None:
        self.account = account
        self._data_dir = data_dir
        self._dial = dial
        self._timeout = timeout
        self._cm: AbstractContextManager[ImapSession] | None = None
        self._session: ImapSession | None = None
        self._error: BaseException | None = None
        self.waiting = threading.Event()  # set once the thread has imported what it needs and starts waiting
        self._inbox_lock = threading.Lock()
        self._inbox_known = False
        self._inbox: tuple[int, int] | None = None
        self._thread = threading.Thread(target=self._open, name=f"connect-{account.name}", daemon=True)
        self._thread.start()

    def let_it_start(self) -> None:
        """Block until the thread is on the network: its imports are on the critical path, the caller's are not.

        Both threads import modules, which needs the GIL; run side by side they would
        slow each other down. In turn, the caller's imports fill the time the thread
        spends waiting for the server.
        """
        self.waiting.wait(timeout=2.0)
        # The thread now waits for its login; reading INBOX's state for it here keeps the
        # deskmail.store import and the query out of its way.
        self._read_inbox_state()

    def _read_inbox_state(self) -> None:
        """Once, by whichever thread comes first: the caller in let_it_start(), else the connection thread."""
        with self._inbox_lock:
            if not self._inbox_known:
                if self._data_dir is not None:
                    # (deskmail.store: imported by the caller next anyway, so not a cost of its own here)
                    from deskmail.store import inbox_state

                    self._inbox = inbox_state(self._data_dir, self.account.name)
                self._inbox_known = True

    @classmethod
    def start_for(cls, accounts: list[Account], data_dir: Path,
                  dials: dict[str, Dial] | None = None) -> dict[str, EarlyConnection]:
        """Early connections for the IMAP accounts among ``accounts``, by account name.

        Not for accounts without encryption: their plaintext warning must come before anything
        is sent, and they gain nothing worth that. ``dials`` (from :func:`dial_early`) are
        taken over when they go to the account's server, and closed otherwise.
        """
        from deskmail.model import Protocol, Security

        dials = dict(dials or {})
        early = {}
        for a in accounts:
            dial = dials.pop(a.name, None)
            server = a.incoming
            if dial is not None and not dial.serves(a):
                dial.close()  # the cached settings were not the ones the configuration gives now
                dial = None
            if server.protocol is Protocol.IMAP and server.security is not Security.NONE:
                early[a.name] = cls(a, data_dir, dial=dial)
            elif dial is not None:
                dial.close()
        for dial in dials.values():
            dial.close()
        return early

    def _open(self) -> None:
        try:
            from deskmail.protocol.imap import open_imap
            from deskmail.secrets import get_password

            password = get_password(self.account)
            self.waiting.set()
            cm = open_imap(self.account, password, timeout=self._timeout, dial=self._dial)
            session = cm.__enter__()
            self._cm, self._session = cm, session
            self._read_inbox_state()  # already done, or being done, by let_it_start() when it was called
            session.warm_up(inbox=self._inbox)
        except BaseException as exc:
            self._error = exc
        finally:
            self.waiting.set()

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
        if self._dial is not None:
            self._dial.close()  # only if open_imap never took it (an error came first)
        cm, self._cm = self._cm, None
        if cm is not None:
            cm.__exit__(None, None, None)


def dial_early(name: str | None) -> dict[str, Dial]:
    """Connections to the IMAP servers `deskmail sync [name]` will sync, opened before the configuration is read.

    The servers come from the cached parse of the accounts file (:mod:`deskmail.dirs`), so
    this needs neither the TOML parser nor the configuration module. Those settings are
    only a guess until :func:`deskmail.config.load_accounts` has checked them:
    :meth:`EarlyConnection.start_for` takes a connection over only if it goes to the
    account's server with the account's CA file. Anything unexpected here means no early
    connection, never an error.
    """
    from deskmail import dirs

    where = dirs.dirs()
    if where is None:
        return {}
    config_dir, data_dir = where
    try:
        with open(os.path.join(config_dir, dirs.ACCOUNTS_FILE), encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError):
        return {}
    doc = dirs.cached_document(text, os.path.join(data_dir, dirs.ACCOUNTS_CACHE))
    accounts = doc.get("accounts") if doc is not None else None
    if not isinstance(accounts, dict):
        return {}
    from deskmail.net.dial import Dial

    dials = {}
    for account_name, table in accounts.items():
        if name is not None and account_name != name:
            continue  # (an account named by its address is not guessed at: it simply connects later)
        incoming = table.get("incoming") if isinstance(table, dict) else None
        if not isinstance(incoming, dict):
            continue
        host, port, security = incoming.get("host"), incoming.get("port"), incoming.get("security")
        ca_file = table.get("ca_file", "")
        if (incoming.get("protocol") == "imap" and security in ("ssl", "starttls") and isinstance(host, str)
                and host and type(port) is int and 0 < port < 65536 and isinstance(ca_file, str)):
            dials[account_name] = Dial(host, port, security == "ssl", ca_file)
    return dials

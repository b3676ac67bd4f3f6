"""Push: keep folders in sync as mail arrives (``deskmail sync --watch``).

One IMAP connection per watched folder sits in IDLE (RFC 2177). Any
untagged EXISTS/EXPUNGE/FETCH ends the IDLE, the folder is synced through
the normal engine, and IDLE starts again. IDLE is re-issued every
``IDLE_RENEW`` seconds, well before the 29-minute server timeout the RFC
allows. The INBOX thread also syncs every other folder every ``interval``
seconds. Network trouble: reconnect with exponential back-off (1 s doubling
to 5 minutes), reported, never fatal. A rejected password or an untrusted
certificate is fatal: retrying cannot help, so that account stops and
:func:`watch` returns the error. Servers without IDLE are polled.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from deskmail.errors import (
    AuthError,
    CertificateError,
    DeskmailError,
    PlaintextRefused,
    SecretError,
    SecurityError,
    StartTLSUnavailable,
)
from deskmail.model import Account
from deskmail.protocol.imap import open_imap
from deskmail.secrets import get_password
from deskmail.store import Store
from deskmail.sync.imap_sync import FolderResult, ImapSync

if TYPE_CHECKING:
    from deskmail.events import Listener

IDLE_RENEW = 25 * 60
MAX_BACKOFF = 300.0

Report = Callable[[str], None]


@dataclass(frozen=True)
class WatchOptions:
    """How `watch` waits for new mail and tells of it."""

    folders: tuple[str, ...] = ("INBOX",)
    interval: float = 300.0  # full sync of all folders
    notify_command: str = ""
    notify_desktop: bool = True  # notify-send when no command is given (off: the caller shows new mail itself)
    # Timings: defaults are the documented ones; tests lower them to prove renewal and back-off in seconds.
    idle_renew: float = IDLE_RENEW
    backoff_start: float = 1.0
    max_backoff: float = MAX_BACKOFF
    # Typed progress events (deskmail.events), from the watching threads; FolderFinished after each sync.
    listener: Listener | None = None


def finished(account: Account, result: FolderResult, options: WatchOptions) -> None:
    """A folder was synced while watching: tell the listener, then the desktop (new mail only)."""
    if options.listener is not None:
        from deskmail.events import FolderFinished

        options.listener(FolderFinished(account.name, result.folder, result.new, tuple(result.notes)))
    notify(account, result, options)


def notify(account: Account, result: FolderResult, options: WatchOptions) -> None:
    """Tell the desktop about new mail: the user's command, else notify-send when there is a desktop."""
    command = options.notify_command
    if result.new <= 0 or not (command or options.notify_desktop):
        return
    env = {**os.environ, "DESKMAIL_ACCOUNT": account.name, "DESKMAIL_FOLDER": result.folder,
           "DESKMAIL_NEW": str(result.new)}
    if command:
        subprocess.run(command, shell=True, env=env, timeout=30, check=False)
    elif shutil.which("notify-send") and (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        subprocess.run(["notify-send", "deskmail", f"{result.new} new message(s) in {account.name}/{result.folder}"],
                       env=env, timeout=10, check=False)


def _fatal(exc: DeskmailError, connected_before: bool, account: Account) -> bool:
    """True when reconnecting cannot help, so the watch of this account must stop."""
    if isinstance(exc, AuthError | CertificateError | StartTLSUnavailable | PlaintextRefused):
        return True
    if isinstance(exc, SecretError):
        # An environment variable cannot appear in a running process; a keyring may be unlocked
        # and a password command may work later (an agent started), so those are retried.
        return account.password.kind == "env"
    # Any other TLS failure (a handshake cut short, "EOF occurred in violation of protocol" when the
    # network drops mid-session) is only a settings problem if this account never connected; once
    # it has, it is network trouble like any other and must be retried, not end the watch.
    return isinstance(exc, SecurityError) and not connected_before


def watch_folder(account: Account, data_dir: Path, folder_name: str, options: WatchOptions,
                 stop: threading.Event, report: Report, *, periodic: bool) -> DeskmailError | None:
    """Watch one folder until ``stop`` is set; returns the error that ended it early, if fatal."""
    backoff = options.backoff_start
    connected = False
    while not stop.is_set():
        store = Store(data_dir)
        try:
            with open_imap(account, get_password(account), timeout=account.timeout) as imap:
                connected = True
                engine = ImapSync(account, store, imap, listener=options.listener)
                folders = engine.reconcile_folders()
                if periodic:
                    for f in folders:
                        finished(account, engine.sync_folder(f), options)
                target = store.folder(account.name, folder_name)
                if target is None:
                    report(f"{account.name}: folder {folder_name!r} does not exist on the server; not watching it")
                    return None
                finished(account, engine.sync_folder(target), options)
                backoff = options.backoff_start
                report(f"{account.name}/{folder_name}: watching for new mail")
                next_full = _now() + options.interval
                can_idle = imap.has_capability("IDLE")
                renew = options.idle_renew
                while not stop.is_set():
                    wait = min(renew, max(1.0, next_full - _now())) if periodic else renew
                    if imap.selected is None or imap.selected.name != folder_name:
                        imap.select(folder_name)  # the engine may have skipped SELECT (nothing changed)
                    if can_idle:
                        # changed or not, the folder is synced below; stop is looked at twice a second (a
                        # window asking for mail now stops the watch first)
                        imap.idle_wait(min(wait, 0.5), stop, wait)
                    else:
                        stop.wait(wait)
                    if stop.is_set():
                        break
                    if periodic and _now() >= next_full:
                        for f in engine.reconcile_folders():
                            finished(account, engine.sync_folder(f), options)
                        next_full = _now() + options.interval
                    else:
                        # Also after a plain renewal, not only on a change: a change the server announced
                        # while IDLE was being ended arrives with the DONE reply, which idle_wait() discards,
                        # and the next IDLE does not repeat it. One SELECT per renewal picks such mail up.
                        target = store.folder(account.name, folder_name) or target
                        r = engine.sync_folder(target)
                        if r.new or r.removed or r.flags_pulled:
                            report(f"{account.name}/{folder_name}: {r.new} new, {r.removed} removed")
                        finished(account, r, options)
        except DeskmailError as exc:
            if stop.is_set():
                break  # the connection failed because we are shutting down: nothing to report
            if _fatal(exc, connected, account):
                report(f"{account.name}: {exc.what} (not retrying)")
                return exc
            report(f"{account.name}/{folder_name}: {exc.what}; reconnecting in {backoff:g} s")
            stop.wait(backoff)
            backoff = min(options.max_backoff, backoff * 2)
        finally:
            store.close()
    return None


def _now() -> float:
    import time

    return time.monotonic()


def watch(accounts: list[Account], data_dir: Path, options: WatchOptions, stop: threading.Event,
          report: Report) -> dict[str, DeskmailError]:
    """Run until ``stop`` is set or every watch has ended; returns the accounts stopped by a fatal error."""
    failures: dict[str, DeskmailError] = {}
    lock = threading.Lock()

    def run(fn: Callable[..., DeskmailError | None], account: Account, *args: object, **kwargs: object) -> None:
        error = fn(account, *args, **kwargs)
        if error is not None:
            with lock:
                failures.setdefault(account.name, error)

    threads = []
    for account in accounts:
        if account.incoming.protocol.value != "imap":
            report(f"{account.name}: POP3 has no push; polling every {options.interval:.0f} s")
            threads.append(threading.Thread(target=run, args=(_poll_pop3, account, data_dir, options, stop, report),
                                            daemon=True))
            continue
        for i, folder in enumerate(options.folders):
            threads.append(threading.Thread(
                target=run, args=(watch_folder, account, data_dir, folder, options, stop, report),
                kwargs={"periodic": i == 0}, daemon=True,
            ))
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.5)
    return failures


def _poll_pop3(account: Account, data_dir: Path, options: WatchOptions, stop: threading.Event,
               report: Report) -> DeskmailError | None:
    from deskmail.sync import sync_account

    connected = False
    while not stop.is_set():
        store = Store(data_dir)
        try:
            for r in sync_account(account, get_password(account), store, listener=options.listener):
                notify(account, r, options)  # sync_account told the listener itself
            connected = True
        except DeskmailError as exc:
            if _fatal(exc, connected, account):  # a wrong password would be retried every interval, forever
                report(f"{account.name}: {exc.what} (not retrying)")
                return exc
            report(f"{account.name}: {exc.what}")
        finally:
            store.close()
        stop.wait(options.interval)
    return None

"""Push: keep folders in sync as mail arrives (``deskmail sync --watch``).

One IMAP connection per watched folder sits in IDLE (RFC 2177). Any
untagged EXISTS/EXPUNGE/FETCH ends the IDLE, the folder is synced through
the normal engine, and IDLE starts again. IDLE is re-issued every
``IDLE_RENEW`` seconds, well before the 29-minute server timeout the RFC
allows. The INBOX thread also syncs every other folder every ``interval``
seconds. Network trouble: reconnect with exponential back-off (1 s doubling
to 5 minutes), reported, never fatal. Servers without IDLE are polled.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deskmail.errors import AuthError, DeskmailError, SecurityError
from deskmail.model import Account
from deskmail.protocol.imap import open_imap
from deskmail.secrets import get_password
from deskmail.store import Store
from deskmail.sync.imap_sync import FolderResult, ImapSync

IDLE_RENEW = 25 * 60
MAX_BACKOFF = 300.0

Report = Callable[[str], None]


@dataclass(frozen=True)
class WatchOptions:
    folders: tuple[str, ...] = ("INBOX",)
    interval: float = 300.0  # full sync of all folders
    notify_command: str = ""


def notify(account: Account, result: FolderResult, command: str) -> None:
    """Tell the desktop about new mail: the user's command, else notify-send when there is a desktop."""
    if result.new <= 0:
        return
    env = {**os.environ, "DESKMAIL_ACCOUNT": account.name, "DESKMAIL_FOLDER": result.folder,
           "DESKMAIL_NEW": str(result.new)}
    if command:
        subprocess.run(command, shell=True, env=env, timeout=30, check=False)
    elif shutil.which("notify-send") and (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        subprocess.run(["notify-send", "deskmail", f"{result.new} new message(s) in {account.name}/{result.folder}"],
                       env=env, timeout=10, check=False)


def watch_folder(account: Account, data_dir: Path, folder_name: str, options: WatchOptions,
                 stop: threading.Event, report: Report, *, periodic: bool) -> None:
    backoff = 1.0
    while not stop.is_set():
        store = Store(data_dir)
        try:
            with open_imap(account, get_password(account), timeout=60) as imap:
                engine = ImapSync(account, store, imap)
                folders = engine.reconcile_folders()
                if periodic:
                    for f in folders:
                        notify(account, engine.sync_folder(f), options.notify_command)
                target = store.folder(account.name, folder_name)
                if target is None:
                    report(f"{account.name}: folder {folder_name!r} does not exist on the server; not watching it")
                    return
                notify(account, engine.sync_folder(target), options.notify_command)
                backoff = 1.0
                report(f"{account.name}/{folder_name}: watching for new mail")
                next_full = _now() + options.interval
                can_idle = imap.has_capability("IDLE")
                while not stop.is_set():
                    wait = min(IDLE_RENEW, max(1.0, next_full - _now())) if periodic else IDLE_RENEW
                    if imap.selected is None or imap.selected.name != folder_name:
                        imap.select(folder_name)  # the engine may have skipped SELECT (nothing changed)
                    activity = imap.idle_wait(min(wait, 5.0), stop, wait) if can_idle else _sleep(stop, wait)
                    if stop.is_set():
                        break
                    if periodic and _now() >= next_full:
                        for f in engine.reconcile_folders():
                            notify(account, engine.sync_folder(f), options.notify_command)
                        next_full = _now() + options.interval
                    elif activity or not can_idle:
                        target = store.folder(account.name, folder_name) or target
                        r = engine.sync_folder(target)
                        if r.new or r.removed or r.flags_pulled:
                            report(f"{account.name}/{folder_name}: {r.new} new, {r.removed} removed")
                        notify(account, r, options.notify_command)
        except (AuthError, SecurityError) as exc:
            report(f"{account.name}: {exc} (not retrying)")
            return
        except DeskmailError as exc:
            report(f"{account.name}/{folder_name}: {exc.what}; reconnecting in {backoff:.0f} s")
            stop.wait(backoff)
            backoff = min(MAX_BACKOFF, backoff * 2)
        finally:
            store.close()


def _now() -> float:
    import time

    return time.monotonic()


def _sleep(stop: threading.Event, seconds: float) -> bool:
    stop.wait(seconds)
    return True


def watch(accounts: list[Account], data_dir: Path, options: WatchOptions, stop: threading.Event,
          report: Report) -> None:
    threads = []
    for account in accounts:
        if account.incoming.protocol.value != "imap":
            report(f"{account.name}: POP3 has no push; polling every {options.interval:.0f} s")
            threads.append(threading.Thread(target=_poll_pop3, args=(account, data_dir, options, stop, report),
                                            daemon=True))
            continue
        for i, folder in enumerate(options.folders):
            threads.append(threading.Thread(
                target=watch_folder, args=(account, data_dir, folder, options, stop, report),
                kwargs={"periodic": i == 0}, daemon=True,
            ))
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.5)


def _poll_pop3(account: Account, data_dir: Path, options: WatchOptions, stop: threading.Event,
               report: Report) -> None:
    from deskmail.sync import sync_account

    while not stop.is_set():
        store = Store(data_dir)
        try:
            for r in sync_account(account, get_password(account), store):
                notify(account, r, options.notify_command)
        except DeskmailError as exc:
            report(f"{account.name}: {exc.what}")
        finally:
            store.close()
        stop.wait(options.interval)

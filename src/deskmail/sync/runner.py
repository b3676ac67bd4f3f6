"""Sync several accounts at once: the one entry point for the CLI (both paths) and the GUI.

Accounts run in parallel threads, each with its own connection and SQLite handle; one
account's failure is returned beside the others' results, never raised. The caller holds
the store lock (:meth:`deskmail.store.Store.lock`).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from deskmail.errors import DeskmailError
from deskmail.model import Account
from deskmail.sync.imap_sync import FolderResult

if TYPE_CHECKING:
    from deskmail.events import CancelToken, Listener
    from deskmail.protocol.imap import ImapSession
    from deskmail.sync.plan import Action


class SessionSource(Protocol):
    """A logged-in IMAP session opened elsewhere: at start-up (the command-line fast path) or kept
    between syncs (sync.sessions)."""

    def session(self) -> AbstractContextManager[ImapSession]: ...


class SyncRun:
    __slots__ = ("failures", "results")

    def __init__(self) -> None:
        self.results: dict[str, list[FolderResult]] = {}
        self.failures: dict[str, DeskmailError] = {}

    @property
    def plans(self) -> dict[str, dict[str, list[Action]]]:
        """A dry run's planned actions: account -> folder -> actions (empty for a real run)."""
        return {name: {r.folder: r.plan for r in rs if r.plan} for name, rs in self.results.items()
                if any(r.plan for r in rs)}

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            name: {"ok": True, "folders": [r.to_dict() for r in rs]} for name, rs in self.results.items()
        }
        for name, folders in self.plans.items():
            entry = out[name]
            assert isinstance(entry, dict)
            entry["plans"] = {folder: [{"action": type(a).__name__, "description": a.describe()} for a in actions]
                              for folder, actions in folders.items()}
        out.update({name: {"ok": False, **exc.to_dict()} for name, exc in self.failures.items()})
        return out

    def plan_lines(self) -> list[str]:
        """A dry run's plan as plain text."""
        lines = []
        for name, results in self.results.items():
            planned = [r for r in results if r.plan]
            lines.append(f"{name}: " + (f"{len(planned)} folders to change" if planned else "nothing to do"))
            for r in planned:
                lines.append(f"  {r.folder}:")
                lines.extend(f"    {a.describe()}" for a in r.plan)
                lines.extend(f"    note: {note}" for note in r.notes)
        return lines
    def summary_lines(self) -> list[str]:
        lines = []
        for name, results in self.results.items():
            new = sum(r.new for r in results)
            changed = sum(r.flags_pulled + r.flags_pushed for r in results)
            removed = sum(r.removed for r in results)
            pushed = sum(r.deleted + r.moved for r in results)
            uploaded = sum(r.uploaded for r in results)
            lines.append(f"{name}: {new} new, {changed} flag changes, {removed} removed on the server, "
                         f"{pushed} deletes/moves sent" + (f", {uploaded} saved here uploaded" if uploaded else "")
                         + f" ({len(results)} folders)")
            for r in results:
                if (r.new or r.removed or r.flags_pulled or r.flags_pushed or r.deleted or r.moved or r.refetched
                        or r.uploaded):
                    lines.append(
                        f"  {r.folder}: {r.new} new, {r.flags_pulled} flags here, {r.flags_pushed} flags sent, "
                        f"{r.removed} removed, {r.deleted} deleted, {r.moved} moved"
                        + (f", {r.uploaded} uploaded" if r.uploaded else "")
                        + (f", {r.refetched} missing files fetched again" if r.refetched else "")
                        + (f", {r.reused} moved here by another program, not downloaded again" if r.reused else "")
                    )
                lines.extend(f"  note: {note}" for note in r.notes)
        return lines


def _one(account: Account, data_dir: Path, folders: list[str] | None, redownload: bool, headers_only: bool,
         listener: Listener | None, cancel: CancelToken | None, dry_run: bool,
         early: SessionSource | None = None) -> list[FolderResult]:
    from deskmail.secrets import get_password
    from deskmail.store import Store
    from deskmail.sync import sync_account

    store = Store(data_dir)
    try:
        if early is not None:
            from deskmail.protocol.imap import open_imap
            from deskmail.sync.imap_sync import sync_imap_account

            with early.session() as imap:
                return sync_imap_account(account, store, imap, listener=listener, cancel=cancel, folders=folders,
                                         redownload=redownload, dry_run=dry_run,
                                         reopen=lambda: open_imap(account, get_password(account),
                                                                          timeout=account.timeout))
        return sync_account(account, get_password(account), store, folders=folders, redownload=redownload,
                            listener=listener, cancel=cancel, headers_only=headers_only, dry_run=dry_run)
    finally:
        store.close()


def _finished(account: Account, data_dir: Path, folders: list[str] | None, redownload: bool, headers_only: bool,
              listener: Listener | None, cancel: CancelToken | None, dry_run: bool,
              early: SessionSource | None = None) -> list[FolderResult]:
    """:func:`_one`, then AccountFinished (with the error that stopped it, if any)."""
    error: DeskmailError | None = None
    try:
        return _one(account, data_dir, folders, redownload, headers_only, listener, cancel, dry_run, early)
    except DeskmailError as exc:
        error = exc
        raise
    finally:
        if listener is not None:
            from deskmail.events import AccountFinished

            listener(AccountFinished(account.name, error))


def sync_accounts(
    accounts: list[Account], data_dir: Path, *, folders: list[str] | None = None, redownload: bool = False,
    headers_only: bool = False, listener: Listener | None = None, cancel: CancelToken | None = None,
    dry_run: bool = False, early: Mapping[str, SessionSource] | None = None,
) -> SyncRun:
    """Sync ``accounts``; ``early`` holds sessions opened elsewhere for some of them (the command-line
    fast path, sync.sessions).

    ``listener`` hears the typed events (from the accounts' threads); ``cancel`` stops every account
    at its next safe point (a cancelled account is a failure, :class:`deskmail.errors.Cancelled`);
    ``dry_run`` gathers and plans only: :attr:`SyncRun.plans`, nothing written here or on the server.
    """
    run = SyncRun()
    early = early or {}
    args = (data_dir, folders, redownload, headers_only, listener, cancel, dry_run)
    if len(accounts) == 1:  # no thread pool for the common case: it costs start-up time
        try:
            run.results[accounts[0].name] = _finished(accounts[0], *args, early.get(accounts[0].name))
        except DeskmailError as exc:
            run.failures[accounts[0].name] = exc
        return run
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(4, len(accounts))) as pool:
        futures = {a.name: pool.submit(_finished, a, *args, early.get(a.name)) for a in accounts}
        for name, fut in futures.items():
            try:
                run.results[name] = fut.result()
            except DeskmailError as exc:
                run.failures[name] = exc
    return run

"""Sync several accounts at once: the one entry point for the CLI (both paths) and the GUI.

Accounts run in parallel threads, each with its own connection and SQLite handle; one
account's failure is returned beside the others' results, never raised. The caller holds
the store lock (:meth:`deskmail.store.Store.lock`).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from deskmail.errors import DeskmailError
from deskmail.model import Account
from deskmail.protocol.imap import ImapSession
from deskmail.sync.imap_sync import FolderResult, Progress


class SessionSource(Protocol):
    """A logged-in IMAP session opened elsewhere: early at start-up (sync.early) or kept (sync.sessions)."""

    def session(self) -> AbstractContextManager[ImapSession]: ...


class SyncRun:
    __slots__ = ("failures", "results")

    def __init__(self) -> None:
        self.results: dict[str, list[FolderResult]] = {}
        self.failures: dict[str, DeskmailError] = {}

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            name: {"ok": True, "folders": [r.to_dict() for r in rs]} for name, rs in self.results.items()
        }
        out.update({name: {"ok": False, **exc.to_dict()} for name, exc in self.failures.items()})
        return out

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
                    )
                lines.extend(f"  note: {note}" for note in r.notes)
        return lines


def _one(account: Account, data_dir: Path, folders: list[str] | None, redownload: bool, headers_only: bool,
         progress: Progress | None, early: SessionSource | None = None) -> list[FolderResult]:
    from deskmail.secrets import get_password
    from deskmail.store import Store
    from deskmail.sync import sync_account

    store = Store(data_dir)
    try:
        if early is not None:
            from deskmail.sync.imap_sync import sync_imap_account

            with early.session() as imap:
                return sync_imap_account(account, store, imap, progress=progress, folders=folders,
                                         redownload=redownload)
        return sync_account(account, get_password(account), store, folders=folders, redownload=redownload,
                            progress=progress, headers_only=headers_only)
    finally:
        store.close()


def sync_accounts(
    accounts: list[Account], data_dir: Path, *, folders: list[str] | None = None, redownload: bool = False,
    headers_only: bool = False, progress: Progress | None = None, early: Mapping[str, SessionSource] | None = None,
) -> SyncRun:
    """Sync ``accounts``; ``early`` holds sessions opened elsewhere for some of them (sync.early, sync.sessions)."""
    run = SyncRun()
    early = early or {}
    if len(accounts) == 1:  # no thread pool for the common case: it costs start-up time
        try:
            run.results[accounts[0].name] = _one(accounts[0], data_dir, folders, redownload, headers_only, progress,
                                                 early.get(accounts[0].name))
        except DeskmailError as exc:
            run.failures[accounts[0].name] = exc
        return run
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(4, len(accounts))) as pool:
        futures = {a.name: pool.submit(_one, a, data_dir, folders, redownload, headers_only, progress,
                                       early.get(a.name)) for a in accounts}
        for name, fut in futures.items():
            try:
                run.results[name] = fut.result()
            except DeskmailError as exc:
                run.failures[name] = exc
    return run

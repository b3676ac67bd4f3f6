"""`deskmail sync`, `folders`, `flag`, `delete`, `move`: the mailbox-keeping commands."""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from deskmail import config
from deskmail.cli.ui import err, out
from deskmail.errors import UsageError
from deskmail.model import Account, Protocol

if TYPE_CHECKING:
    from pathlib import Path

    from deskmail.store import Store
    from deskmail.sync.early import EarlyConnection
    from deskmail.sync.runner import SyncRun


FLAG_NAMES = {"seen": "\\Seen", "read": "\\Seen", "flagged": "\\Flagged", "starred": "\\Flagged",
              "answered": "\\Answered", "replied": "\\Answered", "draft": "\\Draft", "deleted": "\\Deleted"}
MASS_DELETE = 50  # deleting more than this many messages at once needs --yes
MASS_UPLOAD = 50  # = deskmail.sync.imap_sync.MASS_UPLOAD (the CLI loads the engine only to sync)


def _store(data_dir: Any) -> Store:
    from deskmail.store import Store

    return Store(data_dir)


def _progress_display(enabled: bool) -> tuple[Any, Any]:
    if not enabled:
        return None, None
    from rich.filesize import decimal
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    # The task counts messages; the bytes received are a separate field. (DownloadColumn and
    # TransferSpeedColumn read the message count as bytes: 40 messages of 800 kB showed "40/40 bytes".)
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[received]}"), TimeRemainingColumn(), console=err._console_now(),
                   transient=True)
    tasks: dict[tuple[str, str], Any] = {}
    lock = threading.Lock()

    def update(event: Any) -> None:
        from deskmail.events import MessagesDownloaded

        if not isinstance(event, MessagesDownloaded):
            return
        with lock:
            key = (event.account, event.folder)
            if key not in tasks:
                tasks[key] = bar.add_task(f"{event.account}/{event.folder}", total=event.total, received="")
            bar.update(tasks[key], completed=event.done, total=event.total, received=decimal(event.bytes))

    return bar, update


def register(app: typer.Typer) -> None:
    @app.command()
    def sync(
        account_name: Annotated[str | None, typer.Argument(metavar="ACCOUNT", help="Default: every account.")] = None,
        folder: Annotated[
            list[str] | None, typer.Option("--folder", "-f", help="Only this folder (repeatable).")
        ] = None,
        json_out: Annotated[bool, typer.Option("--json")] = False,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress, only errors.")] = False,
        watch: Annotated[bool, typer.Option("--watch", help="Stay running; IDLE push for new mail.")] = False,
        interval: Annotated[float, typer.Option(help="--watch: full sync every N seconds.")] = 300.0,
        notify_command: Annotated[
            str, typer.Option("--notify-command", help="--watch: run CMD on new mail ($DESKMAIL_NEW ...).")
        ] = "",
        redownload: Annotated[
            bool, typer.Option("--redownload", help="Fetch again folders whose local copy is missing.")
        ] = False,
        headers_only: Annotated[
            bool, typer.Option("--headers-only", help="POP3: fetch only the headers of new mail (TOP).")
        ] = False,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Only show what a sync would do; change nothing.")
        ] = False,
    ) -> None:
        """Sync mail: IMAP all folders both ways (flags, moves, deletes); POP3 new messages."""

        accounts = config.load_accounts()
        if account_name:
            targets = [config.resolve_account(account_name, accounts)]
        else:
            targets = list(accounts.values()) or [config.resolve_account(None, accounts)]
        paths = config.paths()
        from deskmail.sync.early import EarlyConnection

        # Log in and list the folders while the store is opened (see sync.early); not for --watch,
        # which keeps connections of its own.
        early = {} if watch or dry_run else EarlyConnection.start_for(targets, paths.data_dir)
        try:
            run = _sync_locked(targets, paths.data_dir, early, folder, json_out, quiet, watch and not dry_run,
                               interval, notify_command, redownload, headers_only, dry_run)
        finally:
            for connection in early.values():
                connection.close()
        if run is None:
            return
        if json_out:
            sys.stdout.write(__import__("json").dumps(run.to_dict(), indent=2) + "\n")
        elif dry_run:
            for line in run.plan_lines():
                out.print(line, highlight=False, markup=False)
        elif not quiet:
            for line in run.summary_lines():
                out.print(line, highlight=False)
        for name, failure in run.failures.items():
            prefix = f"{name}: " if len(targets) > 1 else ""
            err.print(f"[bold red]Error:[/] {prefix}{failure}", highlight=False)
        if run.failures:
            raise typer.Exit(next(iter(run.failures.values())).exit_code)

    def _sync_locked(targets: list[Account], data_dir: Path, early: dict[str, EarlyConnection],
                     folder: list[str] | None, json_out: bool, quiet: bool, watch: bool, interval: float,
                     notify_command: str, redownload: bool, headers_only: bool, dry_run: bool) -> SyncRun | None:
        from deskmail.cli.main import _warn_plaintext

        lock = _store(data_dir)
        lock.lock()
        if lock.rebuilt_from is not None:
            err.print(f"[yellow]The mail index was damaged; it was moved to {lock.rebuilt_from} and is rebuilt "
                      "from the mail files (nothing is downloaded again).[/]", highlight=False)
        try:
            for account in targets:
                _warn_plaintext(account)
            if watch:
                _watch(targets, data_dir, folder, interval, notify_command)
                return None
            bar, update = _progress_display(not (quiet or json_out or dry_run) and sys.stderr.isatty())
            if bar:
                bar.start()
            try:
                from deskmail.sync.runner import sync_accounts

                return sync_accounts(targets, data_dir, folders=folder, redownload=redownload,
                                     headers_only=headers_only, listener=update, dry_run=dry_run, early=early)
            finally:
                if bar:
                    bar.stop()
        finally:
            lock.close()

    @app.command()
    def folders(
        account_name: Annotated[str | None, typer.Option("--account", "-a")] = None,
        enable: Annotated[list[str] | None, typer.Option("--enable", help="Sync this folder (repeatable).")] = None,
        disable: Annotated[list[str] | None, typer.Option("--disable", help="Stop syncing it (repeatable).")] = None,
        upload: Annotated[list[str] | None, typer.Option(
            "--upload", help=f"Confirm uploading more than {MASS_UPLOAD} messages saved here at the next sync.")
        ] = None,
        json_out: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """List the account's folders (as of the last sync) and choose which ones to sync."""
        account = config.resolve_account(account_name, config.load_accounts())
        store = _store(config.paths().data_dir)
        try:
            for name, value in [(n, 1) for n in enable or []] + [(n, 0) for n in disable or []]:
                f = store.folder(account.name, name)
                if f is None:
                    raise UsageError(f"There is no folder {name!r}", "", "see `deskmail folders` (after a sync)")
                store.update_folder(f.id, sync=value)
            for name in upload or []:
                f = store.folder(account.name, name)
                if f is None or not f.sync or account.incoming.protocol is Protocol.POP3:
                    raise UsageError(f"Messages saved in {name!r} cannot be uploaded",
                                     "there is no such folder, it is not synced, or the account is POP3",
                                     "see `deskmail folders`")
                store.confirm_upload(account.name, name)
            rows = store.folders(account.name)
            counts = dict(store.db.execute("SELECT folder_id, COUNT(*) FROM messages GROUP BY folder_id").fetchall())
        finally:
            store.close()
        if json_out:
            sys.stdout.write(__import__("json").dumps([
                {"name": f.name, "special_use": f.special_use, "subscribed": bool(f.subscribed),
                 "sync": bool(f.sync), "messages": counts.get(f.id, 0), "path": f.path} for f in rows
            ], indent=2, ensure_ascii=False) + "\n")
            return
        for f in rows:
            mark = "✓" if f.sync else " "
            out.print(f"{mark} {f.name:30} {f.special_use:10} {counts.get(f.id, 0):6} messages", highlight=False)

    @app.command()
    def flag(
        ids: Annotated[list[int], typer.Argument(metavar="ID...")],
        set_: Annotated[list[str] | None, typer.Option("--set", help="seen, flagged, answered, draft")] = None,
        unset: Annotated[list[str] | None, typer.Option("--unset")] = None,
    ) -> None:
        """Change flags here; the next sync sends the change to the server."""
        add = {_flag(n) for n in set_ or []}
        remove = {_flag(n) for n in unset or []}
        if not add and not remove:
            raise UsageError("Nothing to change", "", "give --set FLAG or --unset FLAG")
        store = _store(config.paths().data_dir)
        try:
            with store.transaction():
                for mid in ids:
                    folder, row = store.row_by_id(mid)
                    flags = (set(row.flags.split()) | add) - remove
                    md = store.folder_maildir(folder)
                    name = md.set_flags(row.filename, flags)
                    store.set_flags(row.id, name, flags)
        finally:
            store.close()
        out.print(f"Flags changed on {len(ids)} message(s); run `deskmail sync` to send the change.")

    @app.command()
    def delete(
        ids: Annotated[list[int], typer.Argument(metavar="ID...")],
        yes: Annotated[bool, typer.Option("--yes", "-y", help=f"Confirm deleting more than {MASS_DELETE}.")] = False,
        expunge: Annotated[bool, typer.Option("--expunge", help="Delete for good instead of moving to Trash.")]
        = False,
    ) -> None:
        """Delete messages (IMAP: to Trash, or for good with --expunge / inside Trash); sent at the next sync."""
        if len(ids) > MASS_DELETE and not yes:
            raise UsageError(f"You are about to delete {len(ids)} messages",
                             "large deletions need confirmation", "add --yes if that is what you want")
        accounts = config.load_accounts()
        store = _store(config.paths().data_dir)
        try:
            with store.transaction():
                for mid in ids:
                    folder, row = store.row_by_id(mid)
                    account = accounts.get(folder.account)
                    if account is None:
                        raise UsageError(f"Message {mid} belongs to a removed account")
                    trash = next((f for f in store.folders(folder.account) if f.special_use == "\\Trash"), None)
                    md = store.folder_maildir(folder)
                    if account.incoming.protocol is Protocol.POP3:
                        if account.options.get("delete_when_deleted_here"):
                            store.add_op(folder.account, "delete", folder.name, 0, row.uid)
                    elif trash is not None and trash.id != folder.id and not expunge:
                        store.add_op(folder.account, "move", folder.name, row.uidvalidity, row.uid, trash.name,
                                     row.message_id)
                        continue  # the file stays until the server has moved it
                    else:
                        store.add_op(folder.account, "delete", folder.name, row.uidvalidity, row.uid,
                                     message_id=row.message_id)
                    md.remove(row.filename)
                    store.delete_row(row.id)
        finally:
            store.close()
        out.print(f"{len(ids)} message(s) deleted here; `deskmail sync` sends it to the server.")

    @app.command()
    def move(
        ids: Annotated[list[int], typer.Argument(metavar="ID...")],
        to: Annotated[str, typer.Option("--to", help="Target folder name, as `deskmail folders` shows it.")],
    ) -> None:
        """Move messages to another folder; sent at the next sync."""
        store = _store(config.paths().data_dir)
        try:
            with store.transaction():
                for mid in ids:
                    folder, row = store.row_by_id(mid)
                    if store.folder(folder.account, to) is None:
                        raise UsageError(f"There is no folder {to!r}", "", "see `deskmail folders`")
                    store.add_op(folder.account, "move", folder.name, row.uidvalidity, row.uid, to, row.message_id)
        finally:
            store.close()
        out.print(f"{len(ids)} message(s) will move to {to} at the next `deskmail sync`.")


def _flag(name: str) -> str:
    key = name.lower().lstrip("\\")
    if key in FLAG_NAMES:
        return FLAG_NAMES[key]
    if name.startswith("\\") or not name.replace("$", "").replace("_", "").replace("-", "").isalnum():
        raise UsageError(f"Unknown flag {name!r}", "", "use seen, flagged, answered, draft or a keyword")
    return name  # an IMAP keyword, e.g. $Label1


def _watch(accounts: list[Account], data_dir: Any, folders: list[str] | None, interval: float, notify: str) -> None:
    from deskmail.sync.watch import WatchOptions, watch

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    options = WatchOptions(folders=tuple(folders or ["INBOX"]), interval=interval, notify_command=notify)

    def report(message: str) -> None:
        err.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}", highlight=False)

    try:
        failures = watch(accounts, data_dir, options, stop, report)
    except KeyboardInterrupt:
        stop.set()
        return
    # A wrong password or an untrusted certificate ends the watch: say so and exit with the error's code,
    # like a plain sync (it used to exit 0, as if stopped on purpose, hiding the failure from scripts/systemd).
    for name, failure in failures.items():
        prefix = f"{name}: " if len(accounts) > 1 else ""
        err.print(f"[bold red]Error:[/] {prefix}{failure}", highlight=False)
    if failures:
        raise typer.Exit(next(iter(failures.values())).exit_code)

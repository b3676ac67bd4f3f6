"""`deskmail sync`, `folders`, `flag`, `delete`, `move`: the mailbox-keeping commands."""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from deskmail.app import Deskmail
from deskmail.cli import options as opt
from deskmail.cli.ui import err, out, safe, visible
from deskmail.mailbox import MASS_DELETE

if TYPE_CHECKING:
    from pathlib import Path

MASS_UPLOAD = 50  # = deskmail.sync.imap_sync.MASS_UPLOAD (the CLI loads the engine only to sync)


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
        account: Annotated[str | None, typer.Argument(metavar="ACCOUNT", show_default=False,
                                                      help="Default: every account.")] = None,
        folder: Annotated[
            list[str] | None, typer.Option("--folder", "-f", help="Only this folder (repeatable).")
        ] = None,
        json_out: opt.JsonOut = False,
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
        from deskmail.cli.main import _warn_plaintext, print_error

        app_ = Deskmail()
        names = [account] if account else None
        targets = [app_.account(account)] if account else list(app_.accounts().values())
        for a in targets:
            _warn_plaintext(a)
        if watch and not dry_run:
            _watch(app_, names, folder, interval, notify_command, len(targets))
            return
        bar, update = _progress_display(not (quiet or json_out or dry_run) and sys.stderr.isatty())
        if bar:
            bar.start()
        try:
            run = app_.sync(names, folders=folder, redownload=redownload, headers_only=headers_only,
                            listener=update, dry_run=dry_run, on_index_rebuilt=_index_rebuilt)
        finally:
            if bar:
                bar.stop()
        if json_out:
            sys.stdout.write(__import__("json").dumps(run.to_dict(), indent=2) + "\n")
        elif dry_run:
            for line in run.plan_lines():
                out.print(visible(line), highlight=False, markup=False)
        elif not quiet:
            for line in run.summary_lines():
                out.print(visible(line), markup=False, highlight=False)
            from deskmail.cli.fastpath import hints

            for line in hints(run):
                out.print(visible(line), markup=False, highlight=False)
        for name, failure in run.failures.items():
            print_error(failure, f"{name}: " if len(targets) > 1 else "")
        if run.failures:
            raise typer.Exit(next(iter(run.failures.values())).exit_code)

    @app.command()
    def folders(
        account: opt.AccountOpt = None,
        enable: Annotated[list[str] | None, typer.Option("--enable", help="Sync this folder (repeatable).")] = None,
        disable: Annotated[list[str] | None, typer.Option("--disable", help="Stop syncing it (repeatable).")] = None,
        upload: Annotated[list[str] | None, typer.Option(
            "--upload", help=f"Confirm uploading more than {MASS_UPLOAD} messages saved here at the next sync.")
        ] = None,
        json_out: opt.JsonOut = False,
    ) -> None:
        """List the account's folders (as of the last sync) and choose which ones to sync."""
        app_ = Deskmail()
        app_.choose_folders(account, enable=enable or [], disable=disable or [], upload=upload or [])
        rows = app_.folders(account)
        if json_out:
            sys.stdout.write(__import__("json").dumps([f.to_dict() for f in rows], indent=2, ensure_ascii=False)
                             + "\n")
            return
        for f in rows:
            mark = "✓" if f.sync else " "
            out.print(f"{mark} {safe(f.name, newlines=False):30} {f.special_use:10} {f.messages:6} messages",
                      highlight=False)

    @app.command()
    def flag(
        ids: Annotated[list[int], typer.Argument(metavar="ID...", show_default=False)],
        set_: Annotated[list[str] | None, typer.Option(
            "--set", help="seen, flagged, answered, draft, or a keyword (repeatable).")] = None,
        unset: Annotated[list[str] | None, typer.Option("--unset", help="A flag to clear (repeatable).")] = None,
    ) -> None:
        """Change the flags of messages ID...; the next sync sends the change to the server."""
        count = Deskmail().set_flags(ids, add=set_ or [], remove=unset or [])
        out.print(f"Flags changed on {count} message(s); run `deskmail sync` to send the change.")

    @app.command()
    def delete(
        ids: Annotated[list[int], typer.Argument(metavar="ID...", show_default=False)],
        yes: Annotated[bool, typer.Option("--yes", "-y", help=f"Confirm deleting more than {MASS_DELETE}.")] = False,
        expunge: Annotated[bool, typer.Option("--expunge", help="Delete for good instead of moving to Trash.")]
        = False,
    ) -> None:
        """Delete messages ID... (IMAP: to Trash, or for good with --expunge / inside Trash); sent at the next sync."""
        count = Deskmail().delete(ids, expunge=expunge, confirmed=yes)
        out.print(f"{count} message(s) deleted here; `deskmail sync` sends it to the server.")

    @app.command()
    def move(
        ids: Annotated[list[int], typer.Argument(metavar="ID...", show_default=False)],
        to: Annotated[str, typer.Option("--to", help="Target folder name, as `deskmail folders` shows it.")],
    ) -> None:
        """Move messages ID... to another folder; sent at the next sync."""
        count = Deskmail().move(ids, to)
        out.print(f"{count} message(s) will move to {safe(to)} at the next `deskmail sync`.", highlight=False)


def _index_rebuilt(moved_to: Path) -> None:
    err.print(f"[yellow]The mail index was damaged; it was moved to {safe(moved_to)} and is rebuilt "
              "from the mail files (nothing is downloaded again).[/]", highlight=False)


def _watch(app_: Deskmail, names: list[str] | None, folders: list[str] | None, interval: float, notify: str,
           count: int) -> None:
    from deskmail.cli.main import print_error

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def report(message: str) -> None:
        err.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {safe(message)}", highlight=False)

    try:
        failures = app_.watch(names, stop, report, folders=folders or ["INBOX"], interval=interval,
                              notify_command=notify)
    except KeyboardInterrupt:
        stop.set()
        return
    # A wrong password or an untrusted certificate ends the watch: say so and exit with the error's code,
    # like a plain sync (it used to exit 0, as if stopped on purpose, hiding the failure from scripts/systemd).
    for name, failure in failures.items():
        print_error(failure, f"{name}: " if count > 1 else "")
    if failures:
        raise typer.Exit(next(iter(failures.values())).exit_code)

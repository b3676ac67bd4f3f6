"""`deskmail outbox`: what waits to be sent, and retry / cancel / mark-sent / flush; the results of `send`.

Everything printed from a message (subject, addresses, the server's words) goes through ``safe``/``cell``.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from deskmail.app import Deskmail
from deskmail.cli import options as opt
from deskmail.cli.outbox_text import describe, entry_dict, when
from deskmail.cli.ui import cell, err, out, safe

if TYPE_CHECKING:
    from deskmail.app import SentMessage
    from deskmail.outbox.deliver import FlushResult

EntryArg = Annotated[str, typer.Argument(metavar="ID", show_default=False, help="The id `deskmail outbox` shows.")]

def print_result(result: FlushResult) -> int:
    """Each handled message's outcome, then what stopped an account's sending; the exit code: 0 when
    everything went out, else that of the error that stopped sending, else that of the first message's."""
    from deskmail.cli.main import print_error
    from deskmail.outbox.deliver import entry_error

    code = 0
    for e in result.entries:
        fine = e.state == "sent" and not e.refused
        (out if fine else err).print("\n".join(safe(line) for line in describe(e)), highlight=False)
        error = entry_error(e)
        if error is not None and not code:
            code = error.exit_code
    several = len(result.errors) > 1
    for name, error in result.errors.items():
        print_error(error, f"{name}: " if several else "")
    return next((e.exit_code for e in result.errors.values()), code)


def show_sent(sent: SentMessage, *, json_out: bool, queued: bool) -> int:
    """What became of one message just sent (`send`, `compose`, `reply`, `forward`): per recipient; the exit code."""
    from deskmail.outbox.deliver import FlushResult

    if json_out:
        _emit({**entry_dict(sent.entry), "error": sent.error.to_dict() if sent.error else None,
               "copy_error": sent.copy_error.to_dict() if sent.copy_error else None})
        return sent.error.exit_code if sent.error else 0
    if queued:
        out.print("\n".join(safe(line) for line in describe(sent.entry)), highlight=False)
        return 0
    errors = {sent.entry.account: sent.error or sent.copy_error} if (sent.error or sent.copy_error) else {}
    code = print_result(FlushResult((sent.entry,), {k: v for k, v in errors.items() if v is not None}))
    return 0 if sent.copy_error is not None and sent.error is None else code  # (only its copy in Sent waits)


def register(app: typer.Typer) -> None:
    box = typer.Typer(help="The outbox: messages waiting to be sent, and what became of them.",
                      invoke_without_command=True)
    app.add_typer(box, name="outbox")

    @box.callback()
    def outbox(ctx: typer.Context, json_out: opt.JsonOut = False) -> None:
        """List the outbox (with no command): id, state, subject, recipients, why it waits."""
        if ctx.invoked_subcommand is not None:
            return
        _list(json_out)

    @box.command("list")
    def list_(json_out: opt.JsonOut = False) -> None:
        """List the outbox."""
        _list(json_out)

    @box.command()
    def flush(
        everything: Annotated[bool, typer.Option("--all", help="Deferred messages too, before their next attempt.")]
        = False,
        account: opt.AccountOpt = None,
        json_out: opt.JsonOut = False,
    ) -> None:
        """Send what is due now (one connection per account) and save pending copies in Sent."""
        app_ = Deskmail()
        names = [app_.account(account).name] if account else None
        result = app_.flush_outbox(names, everything=everything)
        if json_out:
            _emit({"entries": [entry_dict(e) for e in result.entries],
                   "errors": {k: v.to_dict() for k, v in result.errors.items()}})
            raise typer.Exit(next((v.exit_code for v in result.errors.values()), 0))
        if not result.entries:
            out.print("Nothing is due in the outbox.")
        raise typer.Exit(print_result(result))

    @box.command()
    def retry(entry: EntryArg, json_out: opt.JsonOut = False) -> None:
        """Send message ID again now: deferred, failed (to the recipients not refused) or uncertain (it may
        then arrive twice)."""
        app_ = Deskmail()
        ended = app_.retry(entry)
        if json_out:
            _emit(entry_dict(ended))
            return
        from deskmail.outbox.deliver import FlushResult

        raise typer.Exit(print_result(FlushResult((ended,))))

    @box.command("mark-sent")
    def mark_sent(entry: EntryArg) -> None:
        """Record uncertain message ID as sent (you know it arrived): it is not sent again."""
        ended = Deskmail().mark_sent(entry)
        out.print("\n".join(safe(line) for line in describe(ended)), highlight=False)

    @box.command()
    def cancel(entry: EntryArg) -> None:
        """Take message ID out of the outbox: it is not sent (again)."""
        removed = Deskmail().remove_from_outbox(entry)
        out.print(f"Removed {safe(removed.id)} ({safe(repr(removed.subject))}, {safe(removed.state)}) from the "
                  "outbox.", highlight=False)


def register_drafts(app: typer.Typer) -> None:
    @app.command()
    def drafts(account: opt.AccountOpt = None, json_out: opt.JsonOut = False) -> None:
        """List saved drafts (the server's Drafts folder for IMAP, local files for POP3)."""
        from dataclasses import asdict

        found = Deskmail().drafts(account)
        if json_out:
            _emit([asdict(d) for d in found])
            return
        if not found:
            out.print("No drafts.")
            return
        from rich.table import Table

        table = Table("date", "to", "subject", "ref")
        for d in found:
            table.add_row(cell(d.date), cell(d.to), cell(d.subject), cell(d.ref))
        out.print(table)


def _list(json_out: bool) -> None:
    entries = Deskmail().outbox()
    if json_out:
        _emit([entry_dict(e) for e in entries])
        return
    if not entries:
        out.print("The outbox is empty.")
        return
    from rich.table import Table

    table = Table("id", "state", "account", "to", "subject", "why / next attempt")
    for e in entries:
        why = e.last_error
        if e.state == "deferred":
            why = f"{why} (next: {when(e.next_attempt)})"
        elif e.state == "sent" and e.sent_copy == "pending":
            why = "copy in Sent pending"
        table.add_row(e.id, e.state, cell(e.account), cell(", ".join(e.recipients or e.delivered)), cell(e.subject),
                      cell(why))
    out.print(table)


def _emit(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")

"""`deskmail read` and `deskmail attachments`: a message as text, its attachments listed and saved.

Everything printed from the message goes through ``safe``/``visible``: a subject, a link or a file
name is data, never Rich markup or a terminal escape. ``--json`` prints the renderer's values exactly.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from deskmail.app import Deskmail
from deskmail.cli import options as opt
from deskmail.cli.ui import err, out, safe, visible

if TYPE_CHECKING:
    from deskmail.render import AttachmentInfo

MessageArg = Annotated[int, typer.Argument(metavar="ID", show_default=False, help="The id `deskmail list` shows.")]


def _size(n: int) -> str:
    from rich.filesize import decimal

    return decimal(n)


def _emit(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def _attachment_line(a: AttachmentInfo) -> str:
    name = a.filename or f"(no name; saved as {a.safe_name})"
    note = f"; {a.note}" if a.note else ""
    return visible(f"  {a.index}. {name} ({a.content_type}, {_size(a.size)}{note})", newlines=False)


def register(app: typer.Typer) -> None:
    @app.command()
    def read(
        message: MessageArg,
        json_out: opt.JsonOut = False,
        raw: Annotated[bool, typer.Option("--raw", help="Print the message exactly as stored.")] = False,
        html: Annotated[bool, typer.Option("--html", help="Read the HTML version when there is a choice.")] = False,
    ) -> None:
        """Show message ID: headers, text (HTML made text, link targets shown), warnings, attachments."""
        app_ = Deskmail()
        if raw:
            sys.stdout.buffer.write(app_.raw_message(message))
            return
        view = app_.read_message(message, prefer_html=html, allow_remote=False)
        summary, r = view.summary, view.reading
        if summary.partial:
            err.print("[yellow]Only the headers of this message are downloaded; `deskmail sync` fetches the rest.[/]")
        if json_out:
            _emit({"id": summary.id, "account": summary.account, "folder": summary.folder,
                   "partial": summary.partial, **r.to_dict()})
            return
        for key, value in r.headers.items():
            out.print(f"[bold]{safe(key, newlines=False)}:[/] {safe(value, newlines=False)}", highlight=False)
        for w in r.warnings:
            out.print(f"[yellow]Warning:[/] {safe(w.text, newlines=False)}", highlight=False)
        out.print()
        out.print(visible(r.text), markup=False, highlight=False)
        if r.attachments:
            out.print("[bold]Attachments:[/] (save them with `deskmail attachments "
                      f"{message} --save DIR`)", highlight=False)
            for a in r.attachments:
                out.print(_attachment_line(a), markup=False, highlight=False)

    @app.command()
    def attachments(
        message: MessageArg,
        save: Annotated[Path | None, typer.Option("--save", metavar="DIR",
                                                  help="Save them into DIR (never overwriting a file).")] = None,
        number: Annotated[list[int] | None, typer.Option("--number", "-n", metavar="N",
                                                         help="Only attachment N (repeatable).")] = None,
        json_out: opt.JsonOut = False,
    ) -> None:
        """List the attachments of message ID (number, name, type, size), or save them with --save."""
        app_ = Deskmail()
        if save is None:
            found = app_.attachments(message)
            if number:
                found = [a for a in found if a.index in number]
            if json_out:
                from dataclasses import asdict

                _emit([asdict(a) for a in found])
            elif not found:
                out.print("The message has no attachments.")
            else:
                for a in found:
                    out.print(_attachment_line(a), markup=False, highlight=False)
            return
        written = app_.save_attachments(message, save, which=number or None)
        if json_out:
            _emit([str(p) for p in written])
            return
        if not written:
            out.print("The message has no attachments.")
        for path in written:
            out.print(f"Saved {safe(path, newlines=False)}", highlight=False)

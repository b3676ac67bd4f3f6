"""``deskmail search``, ``deskmail thread`` and ``list --threads``: thin callers of the façade's
:meth:`~deskmail.app.Deskmail.search`, :meth:`~deskmail.app.Deskmail.thread` and
:meth:`~deskmail.app.Deskmail.list_threads`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from deskmail.cli import options as opt
from deskmail.cli.ui import cell, out, visible

if TYPE_CHECKING:
    from rich.text import Text

    from deskmail.model import SearchHit, ThreadSummary


def _snippet(hit: SearchHit) -> Text:
    """The snippet, matched words in bold; every piece shown through visible() (never markup)."""
    from rich.text import Text

    text = Text()
    pos = 0
    for start, end in hit.highlights:
        text.append(visible(hit.snippet[pos:start], newlines=False))
        text.append(visible(hit.snippet[start:end], newlines=False), style="bold yellow")
        pos = end
    text.append(visible(hit.snippet[pos:], newlines=False))
    return text


def print_threads(threads: list[ThreadSummary], json_out: bool) -> None:
    from deskmail.cli.main import _emit_json

    if json_out:
        _emit_json([t.to_dict() for t in threads])
        return
    if not threads:
        out.print("No messages. Run `deskmail sync` to download mail.")
        return
    from rich.table import Table

    table = Table("id", "date", "from", "subject", "messages", "unread")
    for t in threads:
        m = t.latest
        table.add_row(str(m.id), m.date[:16].replace("T", " "), cell(m.sender), cell(m.subject), str(t.messages),
                      str(t.unread) if t.unread else "")
    out.print(table)


def register(app: typer.Typer) -> None:
    @app.command()
    def thread(
        message: Annotated[int, typer.Argument(help="The id of any message of the conversation.")],
        json_out: opt.JsonOut = False,
    ) -> None:
        """Show the conversation of message ID: its messages in every folder and account, oldest first."""
        from deskmail.cli.main import _emit_json, dm

        messages = dm().thread(message)
        if json_out:
            _emit_json([m.to_dict() for m in messages])
            return
        from rich.table import Table

        table = Table("id", "date", "from", "subject", "folder")
        for m in messages:
            table.add_row(str(m.id), m.date[:16].replace("T", " "), cell(m.sender), cell(m.subject),
                          cell(f"{m.account}/{m.folder}"))
        out.print(table)

    @app.command()
    def search(
        query: Annotated[str, typer.Argument(help="What to look for, e.g. 'from:alice \"budget plan\"'.")],
        limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Show at most N messages.")] = 50,
        json_out: opt.JsonOut = False,
    ) -> None:
        """Search every account and folder, newest first (query language: docs/search.md)."""
        from deskmail.cli.main import _emit_json, dm

        hits = dm().search(query, limit=limit)
        if json_out:
            _emit_json([h.to_dict() for h in hits])
            return
        if not hits:
            out.print("No messages match.")
            return
        from rich.table import Table

        table = Table("id", "date", "from", "subject", "folder")
        for hit in hits:
            m = hit.message
            table.add_row(str(m.id), m.date[:16].replace("T", " "), cell(m.sender), cell(m.subject),
                          cell(f"{m.account}/{m.folder}"))
            if hit.snippet:
                table.add_row("", "", "", _snippet(hit), "")
        out.print(table)


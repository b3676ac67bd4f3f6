"""``deskmail search``: a thin caller of :meth:`deskmail.app.Deskmail.search`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from deskmail.cli import options as opt
from deskmail.cli.ui import cell, out, visible

if TYPE_CHECKING:
    from rich.text import Text

    from deskmail.model import SearchHit


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


def register(app: typer.Typer) -> None:
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


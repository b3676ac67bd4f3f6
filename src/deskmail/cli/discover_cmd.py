"""`deskmail discover`: which settings would be used for an address, and where they come from."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from deskmail.app import Deskmail
from deskmail.cli.ui import out, safe


def register(app: typer.Typer) -> None:
    @app.command()
    def discover(
        email: Annotated[str, typer.Argument(metavar="EMAIL")],
        json_out: Annotated[bool, typer.Option("--json", help="One JSON object {email, candidates} (documented).")]
        = False,
        offline: Annotated[bool, typer.Option("--offline", help="Only the bundled provider database.")] = False,
        deadline: Annotated[float, typer.Option(help="Give up on the network after N seconds.")] = 8.0,
    ) -> None:
        """Find the server settings for an address (no password needed, nothing is sent to any server)."""
        from deskmail.discovery import describe_candidate

        result = Deskmail().discover(email, offline=offline, deadline=deadline)
        if json_out:
            sys.stdout.write(json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n")
        else:
            if not result.candidates:
                out.print(f"No settings found for {safe(email)}. Ask your provider for the server names, then use "
                          "`deskmail account add --imap-host ... --smtp-host ...`.")
            for n, candidate in enumerate(result.candidates, 1):
                lines = describe_candidate(candidate)
                out.print(f"{n}. {safe(lines[0])}", highlight=False)
                for line in lines[1:]:
                    out.print(f"   {safe(line)}", highlight=False)
            out.print(f"[dim]({result.elapsed:.1f} s)[/]")
        if not result.candidates:
            raise typer.Exit(4)

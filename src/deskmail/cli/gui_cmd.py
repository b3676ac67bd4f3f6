"""`deskmail gui`: open the desktop application (PySide6, the `gui` extra)."""

from __future__ import annotations

from typing import Annotated

import typer

from deskmail.codes import Code
from deskmail.errors import UsageError


def register(app: typer.Typer) -> None:
    @app.command()
    def gui(
        mailto: Annotated[str, typer.Argument(help="A mailto: link to write to.", show_default=False)] = "",
        ca_file: Annotated[str, typer.Option("--ca-file", help="An extra trusted certificate authority "
                                                               "(self-hosted servers).")] = "",
    ) -> None:
        """Open the desktop application (the same as `deskmail-gui`)."""
        try:
            from deskmail.gui.main import run
        except ImportError as exc:
            raise UsageError("The desktop application is not installed", f"Python cannot import {exc.name}",
                             "install it with: pip install 'deskmail[gui]'", code=Code.GUI_MISSING) from None
        raise typer.Exit(run(ca_file=ca_file, mailto=mailto))

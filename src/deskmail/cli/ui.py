"""Terminal output: consoles created on first use, and text from the outside made harmless.

Importing Rich costs ~20 ms and `sync --quiet` never prints, hence the lazy consoles.

Anything that comes from a message, a server or a file name (subjects, addresses, folder names,
bodies, server replies inside error texts) goes through :func:`safe` or :func:`cell`: Rich would
read ``[/b]`` in a subject as markup (and fail with a MarkupError, or render ``[link=…]`` as a
link), and a terminal would obey escape sequences in it. :func:`visible` shows control characters
as ``\\x1b``-style escapes instead of sending them to the terminal.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text


class LazyConsole:
    def __init__(self, stderr: bool = False) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def _console_now(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self._console_now(), name)


out = LazyConsole()
err = LazyConsole(stderr=True)

# C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides and isolates
# (they reorder what a person reads: "txt.exe" shown as "exe.txt").
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_NO_NEWLINE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape_char(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, *, newlines: bool = True) -> str:
    """``text`` with control characters shown as escapes; newlines and tabs kept if ``newlines``."""
    return (_CONTROL if newlines else _CONTROL_NO_NEWLINE).sub(_escape_char, text)


def safe(text: object, *, newlines: bool = True) -> str:
    """Outside text for a Rich markup string: control characters shown, markup escaped."""
    from rich.markup import escape

    return escape(visible(str(text), newlines=newlines))


def cell(text: object) -> Text:
    """Outside text as a Rich Text (a table cell): never parsed as markup, one line."""
    from rich.text import Text

    return Text(visible(str(text), newlines=False))

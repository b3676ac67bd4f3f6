"""``deskmail search QUERY --json [--limit N]`` without Typer and Rich (what scripts run).

Imports only the façade: ~70 ms less start-up than the Typer application. The output is the
same JSON as :mod:`.search_cmd`'s; an error goes the ordinary way, which reports it.
"""

from __future__ import annotations


def lean_args(args: list[str]) -> tuple[str, int] | None:
    """(query, limit) when ``args`` (after "search") are exactly a query, ``--json`` and at most a limit.

    That form (what scripts run) skips Typer and Rich: ~90 ms whole-process instead of ~200 ms. Any
    other form (a table for people, --help, an unknown option) goes the ordinary way.
    """
    query: str | None = None
    limit = 50
    json_seen = False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--json" and not json_seen:
            json_seen = True
        elif arg in ("--limit", "-n") and i + 1 < len(args) and args[i + 1].isdigit():
            limit = int(args[i + 1])
            i += 1
        elif arg.startswith("--limit=") and arg[8:].isdigit():
            limit = int(arg[8:])
        elif query is None and not arg.startswith("-"):
            query = arg
        else:
            return None
        i += 1
    if query is None or not json_seen or limit < 1:
        return None
    return query, limit


def run_lean(query: str, limit: int) -> int | None:
    """The JSON of :func:`search`; None when it failed (the ordinary way then reports the error)."""
    import json
    import sys

    from deskmail.app import Deskmail
    from deskmail.errors import DeskmailError

    try:
        hits = Deskmail().search(query, limit=limit)
    except DeskmailError:
        return None
    sys.stdout.write(json.dumps([h.to_dict() for h in hits], indent=2, ensure_ascii=False, default=str) + "\n")
    return 0

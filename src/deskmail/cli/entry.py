"""The `deskmail` console entry point.

A plain `deskmail sync` (what timers and cron jobs run), `deskmail send` with a script's options and
`deskmail search QUERY --json [--limit N]` take the command-line fast paths (:mod:`deskmail.cli.fastpath`);
everything else goes to the Typer application (:func:`deskmail.cli.main.main`).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from deskmail.cli import fastpath

    args = list(sys.argv[1:] if argv is None else argv)
    lean = fastpath.applies(args)
    if lean is not None:
        code = fastpath.run(*lean)
        if argv is None:
            fastpath.exit_now(code)
        return code
    if args[:1] == ["send"]:
        wanted = fastpath.send_args(args[1:])
        if wanted is not None:
            code = fastpath.run_send(wanted)
            if argv is None:
                fastpath.exit_now(code)
            return code
    if args[:1] == ["search"]:
        found = fastpath.search_args(args[1:])
        if found is not None and fastpath.run_search(*found) == 0:
            return 0
    from deskmail.cli.main import main as full

    return full(args)


if __name__ == "__main__":
    sys.exit(main())

"""The `deskmail` console entry point.

A plain `deskmail sync` (what timers and cron jobs run), `deskmail send` with a script's options,
`deskmail search QUERY --json [--limit N]` and `deskmail discover EMAIL --json [--offline]` take the
command-line fast paths (:mod:`deskmail.cli.fastpath`); everything else, and whatever a fast path hands
back, goes to the Typer application (:func:`deskmail.cli.main.main`).
"""

from __future__ import annotations

import gc
import sys


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        gc.disable()  # a process of its own: no collection until the command's modules are in (fastpath trick 5)
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
        searched = fastpath.run_search(*found) if found is not None else None
        if searched is not None:
            if argv is None:
                fastpath.exit_now(searched)
            return searched
    if args[:1] == ["discover"]:
        asked = fastpath.discover_args(args[1:])
        answered = fastpath.run_discover(*asked) if asked is not None else None
        if answered is not None:
            if argv is None:
                fastpath.exit_now(answered)
            return answered
    from deskmail.cli.main import main as full

    return full(args)


if __name__ == "__main__":
    sys.exit(main())

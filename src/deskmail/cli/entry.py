"""The `deskmail` console entry point.

`deskmail sync`, the command timers and cron jobs run over and over, takes a lean path
when it needs nothing interactive (`--quiet`, or output not on a terminal): it skips
importing Typer, Click and Rich (about 45 ms of a ~150 ms no-change sync) and prints
plain text. The output and exit codes are the same as the full command's; everything
else goes to :func:`deskmail.cli.main.main`.
"""

from __future__ import annotations

import os
import sys


def _lean_sync(args: list[str]) -> tuple[str | None, bool] | None:
    """(account name, quiet) when ``args`` is a plain `sync [ACCOUNT] [-q]` the lean path can run."""
    if not args or args[0] != "sync":
        return None
    name, quiet = None, False
    for arg in args[1:]:
        if arg in ("-q", "--quiet"):
            quiet = True
        elif arg.startswith("-") or name is not None:
            return None  # anything else (--json, --watch, --help, ...) is the full command's
        else:
            name = arg
    if not quiet and sys.stdout.isatty():
        return None  # a person is watching: the full command shows a progress bar
    return name, quiet


def _run_lean_sync(name: str | None, quiet: bool) -> int:
    from deskmail.sync.early import EarlyConnection, dial_early

    # Connect first, from the cached settings: the configuration, the store and the sync
    # engine are imported while the server answers (see sync.early).
    dials = dial_early(name)
    for dial in dials.values():
        dial.let_it_start()
    from deskmail import config
    from deskmail.errors import DeskmailError

    early: dict[str, EarlyConnection] = {}
    try:
        accounts = config.load_accounts()
        targets = [config.resolve_account(name, accounts)] if name else (
            list(accounts.values()) or [config.resolve_account(None, accounts)])
        # Log in and list the folders while the rest is imported.
        early = EarlyConnection.start_for(targets, config.paths().data_dir, dials)
        dials = {}
        for connection in early.values():
            connection.let_it_start()
        from deskmail.net.connect import plaintext_warnings
        from deskmail.store import Store
        from deskmail.sync.runner import sync_accounts

        data_dir = config.paths().data_dir
        lock = Store(data_dir)
        lock.lock()
        try:
            if lock.rebuilt_from is not None:
                sys.stderr.write(f"The mail index was damaged; it was moved to {lock.rebuilt_from} and is rebuilt "
                                 "from the mail files (nothing is downloaded again).\n")
            for account in targets:
                for warning in plaintext_warnings(account):
                    sys.stderr.write(warning + "\n")
            run = sync_accounts(targets, data_dir, early=early)
        finally:
            lock.close()
    except DeskmailError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        return 130
    finally:
        for dial in dials.values():
            dial.close()  # the configuration could not be read: nothing took them
        for connection in early.values():
            try:
                connection.close()
            except (DeskmailError, OSError):
                pass  # the connection's own error was reported through the sync (or is moot now)
    if not quiet:
        sys.stdout.write("".join(line + "\n" for line in run.summary_lines()))
    for account_name, failure in run.failures.items():
        prefix = f"{account_name}: " if len(targets) > 1 else ""
        sys.stderr.write(f"Error: {prefix}{failure}\n")
    return next(iter(run.failures.values())).exit_code if run.failures else 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    lean = _lean_sync(args)
    if lean is not None:
        code = _run_lean_sync(*lean)
        if argv is None:
            # The console command: everything is written, closed and committed by now, so skip the
            # interpreter's tear-down of every module and object (~4 ms of a ~50 ms no-change sync).
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    from deskmail.cli.main import main as full

    return full(args)


if __name__ == "__main__":
    sys.exit(main())

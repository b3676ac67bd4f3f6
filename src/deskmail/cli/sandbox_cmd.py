"""`deskmail sandbox`: local Dovecot + SMTP servers with sample mail, and a demo account.

So a newcomer can see deskmail work without a real mailbox. Needs root and
Debian's dovecot packages (scripts/bootstrap installs them).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Annotated

import typer

from deskmail.app import Deskmail
from deskmail.cli.ui import out
from deskmail.errors import DeskmailError, UsageError
from deskmail.model import Account

DEMO_EMAIL = "demo@example.test"  # = deskmail.sandbox.demo's (the sandbox package is imported only when used)
DEMO_ACCOUNT = "demo"


RootOpt = Annotated[Path | None, typer.Option(help="Where the sandbox keeps its servers and mail "
                                                   "(default: a folder beside deskmail's data).")]


def _root(root: Path | None) -> Path:
    """Where the servers live. Dovecot's unprivileged processes must be able to traverse every parent
    folder, so a data folder under a private home (e.g. /root, mode 0700) moves the sandbox to /tmp."""
    if root is not None:
        return root.absolute()
    wanted = (Deskmail().paths.data_dir / "sandbox").absolute()
    if all(p.stat().st_mode & 0o001 for p in wanted.parents if p.exists()):
        return wanted
    import hashlib
    import os
    import tempfile

    tag = hashlib.sha256(str(wanted).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"deskmail-sandbox-{os.getuid()}-{tag}"


def _import_sandbox() -> ModuleType:
    try:
        from deskmail import sandbox
    except ImportError as exc:
        raise DeskmailError(
            f"The sandbox needs an optional package ({exc.name})",
            "deskmail was installed without the 'sandbox' extra",
            "install it with: pip install 'deskmail[sandbox]'",
        ) from None
    return sandbox


def start_demo(root: Path) -> Account:
    """Start the servers, create the demo user with sample mail, and save the demo account."""
    _import_sandbox()  # the clear error when the optional packages are missing
    from deskmail.sandbox.demo import start_demo as start

    return start(Deskmail(), root)


def register(app: typer.Typer) -> None:
    sandbox_app = typer.Typer(help="Local demo mail servers (Dovecot + SMTP) with sample mail.", no_args_is_help=True)
    app.add_typer(sandbox_app, name="sandbox")

    @sandbox_app.command("start")
    def start(root: Annotated[Path | None, typer.Option(help="Where the servers keep their files.")] = None) -> None:
        """Start the servers and create the ready-to-use account 'demo'."""
        r = _root(root)
        demo = start_demo(r)
        out.print(f"Sandbox running in {r}.")
        out.print(f"  IMAP {demo.incoming.host}:{demo.incoming.port} (SSL/TLS), "
                  f"SMTP {demo.outgoing.host}:{demo.outgoing.port} (STARTTLS)")
        out.print(f"Account [bold]{DEMO_ACCOUNT}[/] <{DEMO_EMAIL}> is ready: try `deskmail sync demo`.")

    @sandbox_app.command("stop")
    def stop(root: RootOpt = None) -> None:
        """Stop the servers (mail and settings are kept)."""
        sb = _import_sandbox().load_sandbox(_root(root))
        if sb is None or not sb.is_running():
            out.print("The sandbox is not running.")
            return
        sb.stop()
        out.print("Sandbox stopped.")

    @sandbox_app.command("status")
    def status(root: RootOpt = None) -> None:
        """Say whether the servers run, and where."""
        sb = _import_sandbox().load_sandbox(_root(root))
        if sb is None or not sb.is_running():
            out.print("The sandbox is not running. Start it with `deskmail sandbox start`.")
            raise typer.Exit(1)
        out.print(f"Running: IMAPS {sb.host}:{sb.imaps_port}, POP3S {sb.pop3s_port}, "
                  f"submission {sb.submission_port}, SMTPS {sb.smtps_port}; CA {sb.ca_file}")

    @sandbox_app.command("demo")
    def demo(root: RootOpt = None) -> None:
        """Start the sandbox, send a message to yourself, sync, and list the inbox."""
        from deskmail.cli.main import main as cli_main

        r = _root(root)
        start_demo(r)
        steps = [
            ["send", "--account", DEMO_ACCOUNT, "--to", DEMO_EMAIL, "--subject", "Hello from deskmail",
             "--body", "This message went out through the local SMTP server and came back over IMAP."],
            ["sync", DEMO_ACCOUNT],
            ["list", "--account", DEMO_ACCOUNT],
        ]
        for step in steps:
            out.print(f"[dim]$ deskmail {' '.join(step)}[/]")
            code = cli_main(step)
            if code:
                raise UsageError(f"The demo step `deskmail {step[0]}` failed (exit {code})")
        out.print("\nRead a message with `deskmail read ID`; stop the servers with `deskmail sandbox stop`.")


"""`deskmail identity`: the From-addresses of an account (its own first), with names, Reply-To and signatures."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from deskmail.app import Deskmail
from deskmail.cli import options as opt
from deskmail.cli.ui import cell, out, safe
from deskmail.errors import UsageError

Account = Annotated[str, typer.Argument(metavar="ACCOUNT", show_default=False, help="The account, by name or address.")]
Address = Annotated[str, typer.Argument(metavar="ADDRESS", show_default=False, help="The identity's address.")]
Signature = Annotated[str | None, typer.Option("--signature", help="Its signature (plain text; '' for none).")]
SignatureFile = Annotated[Path | None, typer.Option("--signature-file", help="Read the signature from a file "
                                                    "(- = stdin).")]


def _signature(text: str | None, file: Path | None) -> str | None:
    if text is not None and file is not None:
        raise UsageError("Give either --signature or --signature-file, not both")
    if file is None:
        return text
    try:
        return sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"Cannot read the signature file {file} ({exc})") from None


def register(app: typer.Typer) -> None:
    ident = typer.Typer(help="The addresses an account sends from (identities), with their signatures.",
                        no_args_is_help=True)
    app.add_typer(ident, name="identity")

    @ident.command("list")
    def list_(account: Account, json_out: opt.JsonOut = False) -> None:
        """List ACCOUNT's identities: its own address first."""
        dm = Deskmail()
        a = dm.account(account)
        found = dm.identities(a.name)
        if json_out:
            from deskmail.cli.main import _emit_json

            _emit_json([{"address": i.address, "name": i.name, "reply_to": i.reply_to, "signature": i.signature,
                         "primary": n == 0} for n, i in enumerate(found)])
            return
        from rich.table import Table

        table = Table("address", "name", "reply-to", "signature")
        for n, i in enumerate(found):
            first = i.signature.split("\n", 1)[0] + (" …" if "\n" in i.signature else "")
            table.add_row(cell(i.address) + (" (own)" if n == 0 else ""), cell(i.name), cell(i.reply_to), cell(first))
        out.print(table)

    @ident.command()
    def add(account: Account, address: Address,
            name: Annotated[str, typer.Option("--name", help="The name shown with the address.")] = "",
            reply_to: Annotated[str, typer.Option("--reply-to", help="Where replies should go.")] = "",
            signature: Signature = None, signature_file: SignatureFile = None) -> None:
        """Let ACCOUNT send from ADDRESS too."""
        from deskmail.outbox.identities import make_identity

        dm = Deskmail()
        added = dm.add_identity(account, make_identity(address, name, reply_to,
                                                       _signature(signature, signature_file) or ""))
        out.print(f"{safe(dm.account(account).name)} now also sends as {safe(added.label())}.", highlight=False)

    @ident.command()
    def edit(account: Account, address: Address,
             name: Annotated[str | None, typer.Option("--name", help="The name shown with the address.")] = None,
             reply_to: Annotated[str | None, typer.Option("--reply-to", help="Where replies should go ('' for "
                                                          "the address itself).")] = None,
             signature: Signature = None, signature_file: SignatureFile = None) -> None:
        """Change the name, Reply-To or signature of ACCOUNT's identity ADDRESS (its own address too)."""
        from deskmail.outbox.identities import identity_of, make_identity

        dm = Deskmail()
        old = identity_of(dm.account(account), address)
        sig = _signature(signature, signature_file)
        new = make_identity(old.address, old.name if name is None else name,
                            old.reply_to if reply_to is None else reply_to, old.signature if sig is None else sig)
        dm.update_identity(account, new, old.address)
        out.print(f"Changed {safe(new.label())}.", highlight=False)

    @ident.command()
    def remove(account: Account, address: Address) -> None:
        """Stop sending from ADDRESS (ACCOUNT's own address stays)."""
        removed = Deskmail().remove_identity(account, address)
        out.print(f"Removed {safe(removed.label())}.", highlight=False)

"""The `deskmail` command line: a thin layer over the core.

Expected failures are :class:`deskmail.errors.DeskmailError`; :func:`main`
prints their one paragraph (what, cause, remedy) and exits with their code.
A traceback is only ever shown for a real bug.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import click
import typer

from deskmail import config
from deskmail.cli import options as opt
from deskmail.cli.ui import err, out
from deskmail.errors import AuthError, DeskmailError, UsageError
from deskmail.model import Account, PasswordSource, Protocol, Security, ServerSettings, default_port, email_domain
from deskmail.secrets import Secret, get_password

app = typer.Typer(
    help="deskmail: your mailbox on your desktop. Set up, send, receive, diagnose.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
account_app = typer.Typer(help="Add, list, show and remove accounts.", no_args_is_help=True)
app.add_typer(account_app, name="account")



def _print_version(value: bool) -> None:
    if value:
        from deskmail import __version__

        out.print(f"deskmail {__version__}")
        raise typer.Exit(0)


@app.callback()
def _global(
    debug: Annotated[
        bool, typer.Option("--debug", help="Write a protocol log (passwords redacted) to stderr and logs/debug.log.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    if debug:
        from deskmail.net.log import enable_debug_log

        enable_debug_log(config.paths().log_dir / "debug.log")


def _emit_json(data: Any) -> None:

    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def _load() -> dict[str, Account]:
    return config.load_accounts()


def _warn_plaintext(account: Account) -> None:
    from deskmail.net.connect import plaintext_warnings

    for warning in plaintext_warnings(account):
        err.print(f"[bold yellow]{warning}[/]", highlight=False)


# --- account ----------------------------------------------------------------

def provider_defaults(email: str, protocol: Protocol) -> tuple[ServerSettings, ServerSettings] | None:
    """The provider database's first recommended settings for this protocol, if the domain is known.

    For the Spectrum family these are the founding document's (imap.spectrum.net:993 SSL/TLS,
    smtp.spectrum.net:587 STARTTLS), which the database lists before the public alternatives.
    """
    from deskmail.cli.discover_cmd import provider_dirs
    from deskmail.discovery import lookup_provider

    provider = lookup_provider(email_domain(email), provider_dirs=provider_dirs())
    if provider is None:
        return None
    for incoming, outgoing in provider.recommended(email):
        if incoming.protocol is protocol:
            return incoming, outgoing
    return None


def build_account(
    *,
    email: str,
    name: str | None,
    display_name: str,
    protocol: str,
    in_host: str | None,
    in_port: int | None,
    in_security: str | None,
    smtp_host: str | None,
    smtp_port: int | None,
    smtp_security: str | None,
    smtp_auth: bool,
    username: str | None,
    ca_file: str | None,
    password_env: str | None,
    password_command: str | None,
    allow_plaintext: bool = False,
    interactive: bool = False,
) -> Account:
    """An Account from command-line settings, filling gaps from the provider database."""
    try:
        proto = Protocol(protocol.lower())
        if proto is Protocol.SMTP:
            raise ValueError
    except ValueError:
        raise UsageError(f"--protocol must be imap or pop3, not {protocol!r}") from None
    if "@" not in email:
        raise UsageError(f"{email!r} is not an e-mail address", "", "give the full address, like you@example.com")
    preset = provider_defaults(email, proto)
    user = username or email

    def security(value: str | None, fallback: Security, what: str) -> Security:
        if value is None:
            return fallback
        v = value.lower().replace("/", "").replace("-", "")
        v = {"tls": "ssl", "ssltls": "ssl", "plain": "none"}.get(v, v)
        try:
            return Security(v)
        except ValueError:
            raise UsageError(f"{what} must be ssl, starttls or none, not {value!r}") from None

    if preset:
        p_in, p_out = preset
        in_sec = security(in_security, p_in.security, "incoming security")
        out_sec = security(smtp_security, p_out.security, "--smtp-security")
        in_host = in_host or p_in.host
        smtp_host = smtp_host or p_out.host
        in_port = in_port or (p_in.port if in_sec is p_in.security else default_port(proto, in_sec))
        smtp_port = smtp_port or (p_out.port if out_sec is p_out.security else default_port(Protocol.SMTP, out_sec))
    else:
        in_sec = security(in_security, Security.SSL, "incoming security")
        out_sec = security(smtp_security, Security.STARTTLS, "--smtp-security")
        if interactive:
            in_host = in_host or typer.prompt(f"Incoming ({proto.value.upper()}) server")
            smtp_host = smtp_host or typer.prompt("Outgoing (SMTP) server")
        if not in_host or not smtp_host:
            raise UsageError(
                f"deskmail does not know the servers for {email_domain(email)}",
                "the domain is not in the provider database",
                f"give --{'imap' if proto is Protocol.IMAP else 'pop'}-host and --smtp-host (your provider's help "
                "pages list them), or try `deskmail discover`",
            )
        in_port = in_port or default_port(proto, in_sec)
        smtp_port = smtp_port or default_port(Protocol.SMTP, out_sec)
    if password_env and password_command:
        raise UsageError("Give either --password-env or --password-command, not both")
    source = (
        PasswordSource("env", env=password_env)
        if password_env
        else PasswordSource("command", command=password_command)
        if password_command
        else PasswordSource("keyring")
    )
    try:
        return Account(
            name=name or email,
            email=email,
            display_name=display_name,
            incoming=ServerSettings(proto, in_host, in_port, in_sec, user),
            outgoing=ServerSettings(Protocol.SMTP, smtp_host, smtp_port, out_sec, user, auth_required=smtp_auth),
            password=source,
            ca_file=str(Path(ca_file).expanduser().absolute()) if ca_file else "",
            allow_plaintext_password=allow_plaintext,
        )
    except ValueError as exc:
        raise UsageError(f"Invalid account settings: {exc}") from None


def verify_account(account: Account, password: Secret, *, timeout: float = 30.0) -> None:
    """Log in to both servers; raises the first failure."""
    from deskmail.protocol.smtp import open_smtp

    if account.incoming.protocol is Protocol.IMAP:
        from deskmail.protocol.imap import open_imap

        with open_imap(account, password, timeout=timeout):
            pass
    else:
        from deskmail.protocol.pop3 import open_pop3

        with open_pop3(account, password, timeout=timeout):
            pass
    with open_smtp(account, password, timeout=timeout):
        pass


@account_app.command("add")
def account_add(
    email_arg: Annotated[str | None, typer.Argument(metavar="EMAIL", help="The e-mail address.")] = None,
    email: opt.Email = None,
    name: Annotated[str | None, typer.Option(help="Account name (default: the address).")] = None,
    display_name: Annotated[str, typer.Option("--display-name", help="Your name, as recipients see it.")] = "",
    protocol: Annotated[str | None, typer.Option("--protocol", help="imap or pop3 (default: imap).")] = None,
    imap_host: opt.ImapHost = None,
    imap_port: opt.ImapPort = None,
    imap_security: opt.ImapSecurity = None,
    pop_host: opt.PopHost = None,
    pop_port: opt.PopPort = None,
    pop_security: opt.PopSecurity = None,
    smtp_host: opt.SmtpHost = None,
    smtp_port: opt.SmtpPort = None,
    smtp_security: opt.SmtpSecurity = None,
    smtp_auth: opt.SmtpAuth = True,
    username: opt.Username = None,
    ca_file: opt.CaFile = None,
    password_env: opt.PasswordEnv = None,
    password_command: opt.PasswordCommand = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input; keep it in the keyring.")
    ] = False,
    allow_plaintext_password: opt.AllowPlaintext = False,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Log in to both servers before saving.")] = True,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Accept servers found by probing or plain HTTP.")] = False,
    json_out: opt.JsonOut = False,
) -> None:
    """Add an account. Known providers (e.g. Spectrum) need only the address and password."""
    interactive = sys.stdin.isatty()
    address = email or email_arg or (typer.prompt("E-mail address") if interactive else None)
    if not address:
        raise UsageError("No e-mail address given", "", "pass it as `deskmail account add you@example.com`")
    pop = (protocol or "").lower() == "pop3"
    settings: dict[str, Any] = dict(
        email=address, name=name, display_name=display_name, smtp_auth=smtp_auth, username=username,
        ca_file=ca_file, password_env=password_env, password_command=password_command,
        allow_plaintext=allow_plaintext_password,
    )
    manual = any(v is not None for v in (imap_host, imap_port, imap_security, pop_host, pop_port, pop_security,
                                         smtp_host, smtp_port, smtp_security))
    if manual:
        candidates = [(build_account(
            **settings, protocol=protocol or "imap", in_host=pop_host if pop else imap_host,
            in_port=pop_port if pop else imap_port, in_security=pop_security if pop else imap_security,
            smtp_host=smtp_host, smtp_port=smtp_port, smtp_security=smtp_security, interactive=interactive,
        ), "the settings you gave", False)]
    else:
        candidates = _discovered_accounts(address, protocol, settings, interactive)
    account = candidates[0][0]
    accounts = _load()
    if account.name in accounts:
        raise UsageError(
            f"An account named {account.name!r} exists already",
            "",
            f"remove it first (`deskmail account remove {account.name}`) or choose another --name",
        )
    secret = _obtain_password(account, password_stdin, interactive)
    if verify:
        account = _verify_candidates(candidates, secret, interactive, yes)
    else:
        account = next((a for a, _src, confirm in candidates if not confirm), account)
    _warn_plaintext(account)
    if account.password.kind == "keyring":
        from deskmail.secrets import store_in_keyring

        store_in_keyring(account.name, secret.reveal())
    accounts[account.name] = account
    config.save_accounts(accounts)
    if json_out:
        _emit_json(_account_dict(account))
    else:
        out.print(f"Account [bold]{account.name}[/] saved.")


def _discovered_accounts(
    address: str, protocol: str | None, settings: dict[str, Any], interactive: bool
) -> list[tuple[Account, str, bool]]:
    """Accounts built from discovery candidates, best first: (account, where it came from, needs confirmation).

    A provider-database hit is used alone (instant, offline, vouched for); otherwise the whole
    chain runs (autoconfig, SRV, MX, probing) under its deadline.
    """
    from deskmail.cli.discover_cmd import provider_dirs
    from deskmail.discovery import DiscoveryOptions, Origin, discover

    options = DiscoveryOptions(provider_dirs=provider_dirs(), ca_file=settings.get("ca_file") or "")
    result = discover(address, options=options.clone(sources=frozenset({Origin.DATABASE})))
    if not result.candidates:
        err.print(f"Looking up the settings for {email_domain(address)} ...")
        result = discover(address, options=options)
    if not result.candidates:
        raise UsageError(
            f"deskmail could not find the servers for {email_domain(address)}",
            "the domain is not in the provider database and publishes no autoconfig, SRV or MX hints",
            "give --imap-host (or --pop-host) and --smtp-host from your provider's help pages",
        )
    protocols = {c.incoming.protocol.value for c in result.candidates}
    chosen = (protocol or "").lower()
    if not chosen:
        chosen = "imap" if "imap" in protocols else "pop3"
        if interactive and protocols == {"imap", "pop3"}:
            chosen = typer.prompt("Keep mail on the server (IMAP, recommended) or download it (POP3)?",
                                  default="imap", type=click.Choice(["imap", "pop3"]))
    picked = [c for c in result.candidates if c.incoming.protocol.value == chosen]
    if not picked:
        raise UsageError(f"No {chosen.upper()} server was found for {email_domain(address)}",
                         "", f"try --protocol {'pop3' if chosen == 'imap' else 'imap'}, or give the servers by hand")
    accounts = []
    for c in picked:
        inc, outg = c.incoming_settings(), c.outgoing_settings()
        a = build_account(
            **settings, protocol=chosen, in_host=inc.host, in_port=inc.port, in_security=inc.security.value,
            smtp_host=outg.host, smtp_port=outg.port, smtp_security=outg.security.value,
        )
        user = settings.get("username")
        a = a.clone(incoming=a.incoming.clone(username=user or inc.username, auth=inc.auth),
                    outgoing=a.outgoing.clone(username=user or outg.username, auth=outg.auth,
                                              auth_required=settings["smtp_auth"] and outg.auth_required))
        label = f"{c.provider.display_name}: {c.source}" if c.provider is not None else c.source
        accounts.append((a, label, c.needs_confirmation))
        for note in c.notes[:1] if len(accounts) == 1 else ():
            err.print(f"[dim]Note: {note}[/]", highlight=False)
    return accounts


def _obtain_password(account: Account, password_stdin: bool, interactive: bool) -> Secret:
    if account.password.kind != "keyring":
        return get_password(account)
    from deskmail.secrets import _keyring_backend_usable, store_in_keyring

    if not _keyring_backend_usable():
        store_in_keyring(account.name, "")  # raises the clear "no keyring" error before any prompt
    if password_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    elif interactive:
        value = typer.prompt(f"Password for {account.email}", hide_input=True)
    else:
        raise UsageError(
            "No password source given",
            "the password prompt needs a terminal",
            "use --password-stdin, --password-env VAR or --password-command CMD in scripts",
        )
    if not value:
        raise UsageError("The password is empty")
    return Secret(value)


def _verify_candidates(
    candidates: list[tuple[Account, str, bool]], secret: Secret, interactive: bool, yes: bool
) -> Account:
    """Log in with each candidate in turn; the first that works is the account.

    A server that answered and rejected the password proves the settings right: then the
    password is the problem, and trying other servers would only spread it further.
    """
    failures: list[tuple[Account, DeskmailError]] = []
    for account, source, needs_confirmation in candidates:
        where = f"{account.incoming.describe()} and {account.outgoing.describe()}"
        if needs_confirmation and not yes:
            question = (f"{where} ({source}) cannot be vouched for by deskmail. "
                        "Send your password there?")
            if not (interactive and typer.confirm(question, default=False)):
                err.print(f"Skipped {where}: {source}, not confirmed (use --yes to accept such servers).")
                continue
        err.print(f"Checking {where} ({source}) ...")
        try:
            verify_account(account, secret)
        except AuthError as exc:
            err.print(f"[bold red]Error:[/] {exc}", highlight=False)
            err.print("The server answered, so these settings are right, but it refused the login. "
                      "The account was not saved.")
            raise typer.Exit(exc.exit_code) from None
        except DeskmailError as exc:
            err.print(f"[yellow]Did not work:[/] {exc}", highlight=False)
            failures.append((account, exc))
            continue
        if failures:
            err.print(f"[green]Using {where}[/] ({source}); the settings tried before did not work.")
        else:
            err.print(f"[green]Both servers accepted the login[/] ({source}).")
        return account
    if not failures:
        raise UsageError("No settings were confirmed, so nothing was checked and nothing saved",
                         "", "confirm a server, pass --yes, or give the servers by hand")
    account, first = failures[0]
    err.print("\nThe account was not saved. Running the connection doctor to find out why:\n")
    from deskmail.cli.doctor_cmd import show_doctor

    show_doctor(account, secret)
    raise typer.Exit(first.exit_code)


def _account_dict(a: Account) -> dict[str, Any]:
    return {
        "name": a.name,
        "email": a.email,
        "display_name": a.display_name,
        "incoming": a.incoming.to_dict(),
        "outgoing": a.outgoing.to_dict(),
        "password_source": a.password.kind,
        "ca_file": a.ca_file,
    }


@account_app.command("list")
def account_list(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the accounts."""
    accounts = _load()
    if json_out:
        _emit_json([_account_dict(a) for a in accounts.values()])
        return
    if not accounts:
        out.print("No accounts yet. Add one with `deskmail account add`.")
        return
    from rich.table import Table

    table = Table("name", "address", "incoming", "outgoing")
    for a in accounts.values():
        table.add_row(a.name, a.email, a.incoming.describe(), a.outgoing.describe())
    out.print(table)


@account_app.command("show")
def account_show(
    name: Annotated[str | None, typer.Argument()] = None, json_out: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Show one account's settings (never the password)."""
    a = config.resolve_account(name, _load())
    if json_out:
        _emit_json(_account_dict(a))
        return
    out.print(f"[bold]{a.name}[/] <{a.email}> {a.display_name}")
    out.print(f"  incoming: {a.incoming.describe()} as {a.incoming.username}")
    auth = "authentication required" if a.outgoing.auth_required else "no authentication"
    out.print(f"  outgoing: {a.outgoing.describe()} as {a.outgoing.username}, {auth}")
    out.print(f"  password: from {a.password.kind}" + (f" ({a.password.env or a.password.command})"
                                                        if a.password.kind != "keyring" else ""))
    if a.ca_file:
        out.print(f"  extra CA: {a.ca_file}")


@account_app.command("password")
def account_password(
    name: Annotated[str | None, typer.Argument()] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read it from standard input.")] = False,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Log in with it before storing it.")] = True,
) -> None:
    """Store a new password (or app password) for an account in the system keyring."""
    accounts = _load()
    account = config.resolve_account(name, accounts)
    secret = _obtain_password(account.clone(password=PasswordSource("keyring")), password_stdin, sys.stdin.isatty())
    if verify:
        verify_account(account, secret)
    from deskmail.secrets import store_in_keyring

    store_in_keyring(account.name, secret.reveal())
    if account.password.kind != "keyring":
        accounts[account.name] = account.clone(password=PasswordSource("keyring"))
        config.save_accounts(accounts)
    out.print(f"Password of [bold]{account.name}[/] stored in the system keyring.")


@account_app.command("remove")
def account_remove(name: Annotated[str, typer.Argument()]) -> None:
    """Remove an account (its downloaded mail stays on disk)."""
    accounts = _load()
    a = config.resolve_account(name, accounts)
    del accounts[a.name]
    config.save_accounts(accounts)
    if a.password.kind == "keyring":
        from deskmail.secrets import delete_from_keyring

        delete_from_keyring(a.name)
    out.print(f"Account [bold]{a.name}[/] removed. Its mail stays in {config.paths().mail_dir / a.name}.")


# --- mail -------------------------------------------------------------------


@app.command()
def send(
    to: Annotated[list[str], typer.Option("--to", help="Recipient (repeat for more).")],
    account_name: Annotated[str | None, typer.Option("--account", "-a")] = None,
    cc: Annotated[list[str] | None, typer.Option("--cc")] = None,
    bcc: Annotated[list[str] | None, typer.Option("--bcc")] = None,
    subject: Annotated[str, typer.Option("--subject", "-s")] = "",
    body: Annotated[str | None, typer.Option("--body")] = None,
    body_file: Annotated[
        Path | None, typer.Option("--body-file", help="Read the body from a file (- = stdin).")
    ] = None,
    attach: Annotated[list[Path] | None, typer.Option("--attach", help="Attach a file (repeat for more).")] = None,
) -> None:
    """Send a message."""
    from deskmail.outbox.compose import Draft
    from deskmail.outbox.compose import send as send_message

    account = config.resolve_account(account_name, _load())
    if body is not None and body_file is not None:
        raise UsageError("Give either --body or --body-file, not both")
    text = body or ""
    if body_file is not None:
        try:
            text = sys.stdin.read() if str(body_file) == "-" else body_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"Cannot read the body file {body_file} ({exc})") from None
    _warn_plaintext(account)
    password = get_password(account) if account.outgoing.auth_required else None
    msg = send_message(
        account, password, Draft(to=to, cc=cc or [], bcc=bcc or [], subject=subject, body=text,
                                 attachments=attach or []),
    )
    out.print(f"Sent {msg['Message-ID']} to {', '.join(to + (cc or []) + (bcc or []))}.")
    if account.incoming.protocol is Protocol.IMAP:
        from deskmail.outbox.compose import copy_to_sent

        try:
            folder = copy_to_sent(account, password or get_password(account), msg)
        except DeskmailError as exc:
            err.print(f"[yellow]The message was sent, but the copy in Sent could not be saved:[/] {exc}",
                      highlight=False)
        else:
            out.print(f"A copy is in {folder}.")


@app.command("list")
def list_messages(
    account_name: Annotated[str | None, typer.Option("--account", "-a")] = None,
    folder: Annotated[str | None, typer.Option("--folder", "-f")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 50,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List stored messages, newest first."""
    from deskmail.store import Store

    name = config.resolve_account(account_name, _load()).name if account_name else None
    store = Store(config.paths().data_dir)
    try:
        rows = store.list_messages(name, folder, limit)
    finally:
        store.close()
    if json_out:
        _emit_json([r.to_dict() for r in rows])
        return
    if not rows:
        out.print("No messages. Run `deskmail sync` to download mail.")
        return
    from rich.table import Table

    several = len({(r.account, r.folder) for r in rows}) > 1
    table = Table("id", "date", "from", "subject", "", *(["folder"] if several else []))
    for r in rows:
        flags = r.flags.split()
        marks = ("" if "\\Seen" in flags else "new ") + ("★" if "\\Flagged" in flags else "") + (
            "↩" if "\\Answered" in flags else "") + (" partial" if r.partial else "")
        where = ([r.folder] if account_name else [f"{r.account}/{r.folder}"]) if several else []
        table.add_row(str(r.id), r.date[:16].replace("T", " "), r.sender, r.subject, marks.strip(), *where)
    out.print(table)


@app.command()
def read(
    message_id: Annotated[int, typer.Argument(metavar="ID")],
    json_out: Annotated[bool, typer.Option("--json")] = False,
    raw: Annotated[bool, typer.Option("--raw", help="Print the message exactly as stored.")] = False,
) -> None:
    """Show one message: headers, text and attachment names."""
    from deskmail.render import read_message
    from deskmail.store import Store

    store = Store(config.paths().data_dir)
    try:
        summary = store.get(message_id)
    finally:
        store.close()
    path = Path(summary.path)
    if raw:
        sys.stdout.buffer.write(path.read_bytes())
        return
    reading = read_message(path)
    if summary.partial:
        err.print("[yellow]Only the headers of this message are downloaded; `deskmail sync` fetches the rest.[/]")
    if json_out:
        _emit_json({"id": summary.id, "account": summary.account, "folder": summary.folder,
                    "partial": summary.partial, **reading.to_dict()})
        return
    for key, value in reading.headers.items():
        out.print(f"[bold]{key}:[/] {value}", highlight=False, markup=True)
    out.print()
    out.print(reading.text, markup=False, highlight=False)
    if reading.attachments:
        out.print("[bold]Attachments:[/]")
        for a in reading.attachments:
            out.print(f"  {a.filename} ({a.content_type}, {a.size} bytes)", markup=False)


def _register_optional() -> None:
    from deskmail.cli import sandbox_cmd, sync_cmd

    sync_cmd.register(app)
    sandbox_cmd.register(app)
    for module in ("discover_cmd", "doctor_cmd"):
        try:
            mod = __import__(f"deskmail.cli.{module}", fromlist=["register"])
        except ImportError:
            continue
        mod.register(app)


_register_optional()


def main(argv: list[str] | None = None) -> int:
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        rv = command.main(args=args, prog_name="deskmail", standalone_mode=False)
        if isinstance(rv, int):  # click returns typer.Exit's code instead of raising without standalone mode
            return rv
    except DeskmailError as exc:
        if "--json" in args:
            _emit_json(exc.to_dict())
        err.print(f"[bold red]Error:[/] {exc}", highlight=False)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code or 0)
    except click.exceptions.Abort:
        err.print("Aborted.")
        return 130
    except click.ClickException as exc:
        exc.show()
        return int(exc.exit_code)
    except KeyboardInterrupt:
        err.print("Interrupted.")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The `deskmail` command line: a thin layer over the core.

Expected failures are :class:`deskmail.errors.DeskmailError`; :func:`main`
prints their one paragraph (what, cause, remedy) and exits with their code.
A traceback is only ever shown for a real bug.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer

from deskmail import config
from deskmail.app import Deskmail
from deskmail.cli import options as opt
from deskmail.cli.ui import cell, err, out, safe
from deskmail.codes import Code
from deskmail.errors import AuthError, DeskmailError, UsageError
from deskmail.model import Account, PasswordSource, email_domain
from deskmail.secrets import Secret
from deskmail.setup import Candidate, Checked, DidNotWork, ManualSettings, SetupEvent, Skipped, Trying

if TYPE_CHECKING:
    from deskmail.oauth2.flows import DeviceCode

app = typer.Typer(
    help="deskmail: your mailbox on your desktop. Set up, send, receive, diagnose.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
account_app = typer.Typer(help="Add, list, show and remove accounts.", no_args_is_help=True)
app.add_typer(account_app, name="account")

# What a person at the terminal can do about an error the engine raised, by the error's code: the
# engine's remedies speak of settings, these name the command-line options and commands.
_DOCTOR = "run `deskmail doctor` for a step-by-step diagnosis"
CLI_HINTS: dict[str, str] = {
    Code.SERVERS_UNKNOWN: "give --imap-host (or --pop-host) and --smtp-host, or try `deskmail discover`",
    Code.PROTOCOL_NOT_OFFERED: "try the other --protocol, or give the servers by hand (--imap-host / --pop-host)",
    Code.TWO_PASSWORD_SOURCES: "give either --password-env or --password-command",
    Code.ACCOUNT_EXISTS: "remove it first (`deskmail account remove NAME`) or choose another --name",
    Code.MASS_DELETE: "add --yes if that is what you want",
    Code.NO_SUCH_FOLDER: "see `deskmail folders` for the names",
    Code.NO_SUCH_ACCOUNT: "see `deskmail account list` for the names",
    Code.NO_ACCOUNTS: "add one with `deskmail account add` (or try `deskmail sandbox demo`)",
    Code.SEVERAL_ACCOUNTS: "name it with --account",
    Code.NO_SUCH_MESSAGE: "see `deskmail list` for the ids",
    Code.NO_SUCH_ATTACHMENT: "see `deskmail attachments ID` for the numbers",
    Code.NO_SUCH_OUTBOX_ENTRY: "see `deskmail outbox` for the ids",
    Code.NO_SUCH_IDENTITY: "see `deskmail identity list ACCOUNT`; `deskmail identity add` adds one",
    Code.SEND_DEFERRED: "it waits in `deskmail outbox`; `deskmail outbox flush --all` tries again now",
    Code.SEND_UNCERTAIN: "`deskmail outbox retry ID` sends it again, `deskmail outbox mark-sent ID` records it as sent",
    Code.NO_KEYRING: "or re-add the account with --password-command 'pass show mail' or --password-env VARIABLE",
    Code.STORE_MISSING: "run `deskmail sync --redownload` to fetch the folder again",
    Code.NO_PASSWORD_STORED: "run `deskmail account password ACCOUNT` to store it again",
    Code.CONFIG_INVALID: "or remove the account with `deskmail account remove` and add it again",
    Code.CERTIFICATE_UNTRUSTED: "for your own server, add --ca-file PATH to the account; `deskmail doctor` tells more",
    Code.NETWORK: _DOCTOR,
    Code.CONNECTION_REFUSED: _DOCTOR,
    Code.CONNECTION_TIMEOUT: _DOCTOR,
    Code.NETWORK_UNREACHABLE: _DOCTOR,
    Code.DNS_NOT_FOUND: _DOCTOR,
    Code.TLS_HANDSHAKE_FAILED: _DOCTOR,
    Code.TLS_MODE_MISMATCH: _DOCTOR,
    Code.AUTH_FAILED: _DOCTOR,
    Code.GREETING_REFUSED: _DOCTOR,
    Code.OAUTH_SIGN_IN_AGAIN: "run `deskmail account login ACCOUNT`",
    Code.OAUTH_TOKEN_EXPIRED: "run `deskmail account login ACCOUNT`; `deskmail doctor` tells more",
    Code.OAUTH_SCOPE_MISSING: "run `deskmail account login ACCOUNT` and allow access to mail",
    Code.OAUTH_SIGN_IN_FAILED: "run `deskmail account login ACCOUNT` (--device for a code to type elsewhere)",
    Code.OAUTH_CLIENT_MISSING: "where the provider also takes app passwords (Google, Yahoo, AOL), --no-oauth2 "
    "uses one instead",
    Code.AUTH_NOT_ENABLED: "add the account again with --smtp-auth, or edit smtp auth_required in accounts.toml",
}


def print_error(exc: DeskmailError, prefix: str = "", label: str = "[bold red]Error:[/]") -> None:
    """The error's paragraph, then what to type about it, if the terminal has something to offer."""
    err.print(f"{label} {safe(prefix)}{safe(exc)}", highlight=False)
    hint = CLI_HINTS.get(exc.code)
    if hint:
        err.print(f"At the command line: {safe(hint)}.", highlight=False)


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


def _warn_plaintext(account: Account) -> None:
    from deskmail.net.connect import plaintext_warnings

    for warning in plaintext_warnings(account):
        err.print(f"[bold yellow]{safe(warning)}[/]", highlight=False)


# --- account ----------------------------------------------------------------

def dm() -> Deskmail:
    """The façade, for the user's configuration (``$DESKMAIL_HOME`` or the platform's folders)."""
    return Deskmail()


def manual_settings(
    *, email: str, protocol: str | None, imap_host: str | None, imap_port: int | None, imap_security: str | None,
    pop_host: str | None, pop_port: int | None, pop_security: str | None, smtp_host: str | None,
    smtp_port: int | None, smtp_security: str | None, smtp_auth: bool, username: str | None, ca_file: str | None,
    password_env: str | None, password_command: str | None, allow_plaintext: bool, name: str | None = None,
    display_name: str = "",
) -> ManualSettings:
    """The settings of `account add` and `doctor --email` (the same options, the same meaning)."""
    pop = (protocol or "").lower() == "pop3"
    return ManualSettings(
        email=email, name=name, display_name=display_name, protocol=protocol,
        in_host=pop_host if pop else imap_host, in_port=pop_port if pop else imap_port,
        in_security=pop_security if pop else imap_security, smtp_host=smtp_host, smtp_port=smtp_port,
        smtp_security=smtp_security, smtp_auth=smtp_auth, username=username, ca_file=ca_file,
        password_env=password_env, password_command=password_command, allow_plaintext=allow_plaintext,
    )


@account_app.command("add")
def account_add(
    email: Annotated[str | None, typer.Argument(metavar="EMAIL", show_default=False)] = None,
    email_opt: opt.Email = None,
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
    oauth2: Annotated[bool | None, typer.Option(
        "--oauth2/--no-oauth2", help="Sign in with OAuth2 in the browser, or with a password (default: OAuth2 "
        "when the provider requires it or a client ID is configured; docs/oauth2.md).", show_default=False)] = None,
    oauth2_provider: Annotated[str | None, typer.Option(
        "--oauth2-provider", help="The OAuth2 provider (google, microsoft, yahoo, aol, or one of deskmail.toml); "
        "default: the one serving the account's servers.")] = None,
    device: opt.DeviceCode = False,
    browser: opt.OpenBrowser = True,
    json_out: opt.JsonOut = False,
) -> None:
    """Add the account of EMAIL. Known providers (e.g. Spectrum) need only the address and password."""
    interactive = sys.stdin.isatty()
    address = email_opt or email or (typer.prompt("E-mail address") if interactive else None)
    if not address:
        raise UsageError("No e-mail address given", "", "pass it as `deskmail account add you@example.com`")
    settings = manual_settings(
        email=address, name=name, display_name=display_name, protocol=protocol, imap_host=imap_host,
        imap_port=imap_port, imap_security=imap_security, pop_host=pop_host, pop_port=pop_port,
        pop_security=pop_security, smtp_host=smtp_host, smtp_port=smtp_port, smtp_security=smtp_security,
        smtp_auth=smtp_auth, username=username, ca_file=ca_file, password_env=password_env,
        password_command=password_command, allow_plaintext=allow_plaintext_password,
    )
    app_ = dm()

    def choose_protocol(found: frozenset[str]) -> str:
        return str(typer.prompt("Keep mail on the server (IMAP, recommended) or download it (POP3)?",
                                default="imap", type=click.Choice(sorted(found))))

    try:
        candidates = app_.candidates(
            settings, choose_protocol=choose_protocol if interactive else None,
            on_network=lambda: err.print(f"Looking up the settings for {safe(email_domain(address))} ..."))
    except UsageError as exc:
        if not (exc.code == "servers_unknown" and interactive and settings.has_servers):
            raise
        # Some servers were given by hand but not all, and nothing is known about the domain: ask.
        kind = "POP3" if (protocol or "").lower() == "pop3" else "IMAP"
        settings = replace(settings, in_host=settings.in_host or typer.prompt(f"Incoming ({kind}) server"),
                           smtp_host=settings.smtp_host or typer.prompt("Outgoing (SMTP) server"))
        candidates = app_.candidates(settings)
    for note in candidates[0].notes[:1] if not settings.has_servers else ():
        err.print(f"[dim]Note: {safe(note)}[/]", highlight=False)
    account = candidates[0].account
    if oauth2_provider:
        account = replace(account, options={**account.options, "oauth2_provider": oauth2_provider})
    account = app_.use_oauth2(account, True if oauth2_provider and oauth2 is None else oauth2)
    if account.incoming.auth == "oauth2":
        app_.check_keyring()  # the tokens go there: the clear "no keyring" error before the browser opens
        account = _sign_in(app_, account, device=device, browser=browser, verify=verify)
        app_.add_account(account)
        if json_out:
            _emit_json(_account_dict(account))
        else:
            out.print(f"Account [bold]{safe(account.name)}[/] saved (signed in with OAuth2).")
        return
    secret = _obtain_password(app_, account, password_stdin, interactive)
    if verify:
        account = _verify_candidates(app_, candidates, secret, interactive, yes)
    else:
        account = next((c.account for c in candidates if not c.needs_confirmation), account)
    _warn_plaintext(account)
    app_.add_account(account, secret)
    if json_out:
        _emit_json(_account_dict(account))
    else:
        out.print(f"Account [bold]{safe(account.name)}[/] saved.")


def _sign_in(app_: Deskmail, account: Account | str | None, *, device: bool, browser: bool,
             verify: bool = True) -> Account:
    """The OAuth2 sign-in at the terminal: the page's address printed (and opened), or the device code shown."""

    def open_url(url: str) -> None:
        err.print("Sign in in your browser. If it does not open, open this address:", highlight=False)
        out.print(safe(url), soft_wrap=True, highlight=False)
        sys.stdout.flush()
        if browser:
            import webbrowser

            webbrowser.open(url)

    def show_code(code: DeviceCode) -> None:
        err.print(f"On any device, open {safe(code.verification_uri)} and enter the code", highlight=False)
        out.print(safe(code.user_code), soft_wrap=True, highlight=False)
        sys.stdout.flush()

    err.print("Waiting for the sign-in ...", highlight=False)
    return app_.oauth2_sign_in(account, open_url=open_url, show_code=show_code, device=device, verify=verify)


def _obtain_password(app_: Deskmail, account: Account, password_stdin: bool, interactive: bool) -> Secret:
    if account.password.kind != "keyring":
        return app_.password(account)
    app_.check_keyring()  # the clear "no keyring" error before any prompt
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


def _where(c: Candidate) -> str:
    return f"{c.account.incoming.describe()} and {c.account.outgoing.describe()}"


def _verify_candidates(app_: Deskmail, candidates: list[Candidate], secret: Secret, interactive: bool,
                       yes: bool) -> Account:
    """Log in with each candidate in turn (the façade decides the order and when to stop); say what happens."""

    def confirm(c: Candidate) -> bool:
        question = f"{_where(c)} ({c.source}) cannot be vouched for by deskmail. Send your password there?"
        return yes or (interactive and typer.confirm(question, default=False))

    def show(event: SetupEvent) -> None:
        c = event.candidate
        if isinstance(event, Checked):
            return  # the terminal says it once, when both servers worked
        if isinstance(event, Skipped):
            err.print(f"Skipped {safe(_where(c))}: {safe(c.source)}, not confirmed (use --yes to accept such "
                      "servers).", highlight=False)
        elif isinstance(event, Trying):
            err.print(f"Checking {safe(_where(c))} ({safe(c.source)}) ...", highlight=False)
        elif isinstance(event, DidNotWork):
            print_error(event.error, label="[bold red]Error:[/]" if isinstance(event.error, AuthError)
                        else "[yellow]Did not work:[/]")
        elif event.after_failures:
            err.print(f"[green]Using {safe(_where(c))}[/] ({safe(c.source)}); the settings tried before did not "
                      "work.", highlight=False)
        else:
            err.print(f"[green]Both servers accepted the login[/] ({safe(c.source)}).", highlight=False)

    outcome = app_.verify_candidates(candidates, secret, confirm=confirm, on_event=show)
    if outcome.account is not None:
        return outcome.account
    if outcome.rejected is not None:
        err.print("The server answered, so these settings are right, but it refused the login. "
                  "The account was not saved.")
        raise typer.Exit(outcome.rejected.exit_code)
    if not outcome.failures:
        raise UsageError("No settings were confirmed, so nothing was checked and nothing saved",
                         "", "confirm a server, pass --yes, or give the servers by hand")
    candidate, first = outcome.failures[0]
    err.print("\nThe account was not saved. Running the connection doctor to find out why:\n")
    from deskmail.cli.doctor_cmd import show_doctor

    show_doctor(app_, candidate.account, secret)
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
def account_list(json_out: opt.JsonOut = False) -> None:
    """List the accounts."""
    accounts = dm().accounts()
    if json_out:
        _emit_json([_account_dict(a) for a in accounts.values()])
        return
    if not accounts:
        out.print("No accounts yet. Add one with `deskmail account add`.")
        return
    from rich.table import Table

    table = Table("name", "address", "incoming", "outgoing")
    for a in accounts.values():
        table.add_row(cell(a.name), cell(a.email), cell(a.incoming.describe()), cell(a.outgoing.describe()))
    out.print(table)


@account_app.command("show")
def account_show(account: opt.AccountArg = None, json_out: opt.JsonOut = False) -> None:
    """Show the settings of ACCOUNT (never the password)."""
    a = dm().account(account)
    if json_out:
        _emit_json(_account_dict(a))
        return
    out.print(f"[bold]{safe(a.name)}[/] <{safe(a.email)}> {safe(a.display_name)}", highlight=False)
    out.print(f"  incoming: {safe(a.incoming.describe())} as {safe(a.incoming.username)}", highlight=False)
    auth = "authentication required" if a.outgoing.auth_required else "no authentication"
    out.print(f"  outgoing: {safe(a.outgoing.describe())} as {safe(a.outgoing.username)}, {auth}", highlight=False)
    source = f" ({a.password.env or a.password.command})" if a.password.kind != "keyring" else ""
    out.print(f"  password: from {a.password.kind}{safe(source)}", highlight=False)
    if a.ca_file:
        out.print(f"  extra CA: {safe(a.ca_file)}", highlight=False)


@account_app.command("password")
def account_password(
    account: opt.AccountArg = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read it from standard input.")] = False,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Log in with it before storing it.")] = True,
) -> None:
    """Store a new password (or app password) for ACCOUNT in the system keyring."""
    app_ = dm()
    a = app_.account(account)
    secret = _obtain_password(app_, replace(a, password=PasswordSource("keyring")), password_stdin, sys.stdin.isatty())
    a = app_.set_password(a.name, secret, verify=verify)
    out.print(f"Password of [bold]{safe(a.name)}[/] stored in the system keyring.")


@account_app.command("login")
def account_login(account: opt.AccountArg = None, device: opt.DeviceCode = False,
                  browser: opt.OpenBrowser = True) -> None:
    """Sign ACCOUNT in (again) with OAuth2; its tokens are kept in the keyring."""
    app_ = dm()
    app_.check_keyring()
    signed_in = _sign_in(app_, app_.account(account).name, device=device, browser=browser)
    out.print(f"Account [bold]{safe(signed_in.name)}[/] is signed in.")


@account_app.command("remove")
def account_remove(account: Annotated[str, typer.Argument(metavar="ACCOUNT", show_default=False)]) -> None:
    """Remove ACCOUNT and its stored password (its downloaded mail stays on disk)."""
    removed = dm().remove_account(account)
    where = (f" Its mail stays in {safe(removed.mail_dir)}." if removed.mail_dir is not None
             else " Nothing had been downloaded for it.")
    out.print(f"Account [bold]{safe(removed.account.name)}[/] removed.{where}")


# --- mail -------------------------------------------------------------------


@app.command()
def send(
    to: Annotated[list[str], typer.Option("--to", help="Recipient (repeat for more).")],
    account: opt.AccountOpt = None,
    cc: Annotated[list[str] | None, typer.Option("--cc", help="Copy to (repeat for more).")] = None,
    bcc: Annotated[list[str] | None, typer.Option("--bcc", help="Blind copy to (repeat for more).")] = None,
    subject: Annotated[str, typer.Option("--subject", "-s", help="The subject line.")] = "",
    body: Annotated[str | None, typer.Option("--body", help="The message text.")] = None,
    body_file: Annotated[
        Path | None, typer.Option("--body-file", help="Read the body from a file (- = stdin).")
    ] = None,
    attach: Annotated[list[Path] | None, typer.Option("--attach", help="Attach a file (repeat for more).")] = None,
    queue: Annotated[bool, typer.Option("--queue", help="Only put it into the outbox; `deskmail outbox flush` "
                                        "(or a sync) sends it.")] = False,
    sender: Annotated[str | None, typer.Option("--from", metavar="ADDRESS", help="Send as this identity of the "
                                               "account (`deskmail identity list`); it names the account too.")]
    = None,
    no_signature: Annotated[bool, typer.Option("--no-signature", help="Leave out the identity's signature.")]
    = False,
    json_out: opt.JsonOut = False,
) -> None:
    """Send a message: it is written into the outbox first, then delivered (kept there if it cannot be)."""
    from deskmail.outbox.compose import Draft

    if body is not None and body_file is not None:
        raise UsageError("Give either --body or --body-file, not both")
    text = body or ""
    if body_file is not None:
        from deskmail.cli.compose_cmd import read_body_file

        text = read_body_file(body_file)
    app_ = dm()
    chosen = app_.sender_account(sender) if sender and not account else app_.account(account)
    _warn_plaintext(chosen)
    draft = Draft(to=to, cc=cc or [], bcc=bcc or [], subject=subject, body=text, attachments=attach or [],
                  sender=sender or "")
    if not no_signature:
        draft = app_.sign(draft, chosen.name)
    sent = app_.send(draft, chosen.name, queue_only=queue)
    from deskmail.cli.outbox_cmd import show_sent

    raise typer.Exit(show_sent(sent, json_out=json_out, queued=queue))


@app.command("list")
def list_messages(
    account: opt.AccountOpt = None,
    folder: Annotated[str | None, typer.Option("--folder", "-f", help="Only this folder (e.g. Sent).")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Show at most N messages.")] = 50,
    unread: Annotated[bool, typer.Option("--unread", help="Only messages not read yet.")] = False,
    flagged: Annotated[bool, typer.Option("--flagged", help="Only flagged (starred) messages.")] = False,
    sort: Annotated[str, typer.Option("--sort", help="date (newest first), date_asc, sender or subject.",
                                      click_type=click.Choice(["date", "date_asc", "sender", "subject"]))] = "date",
    threads: Annotated[bool, typer.Option("--threads", help="One row per conversation (its newest message here).")
                       ] = False,
    json_out: opt.JsonOut = False,
) -> None:
    """List stored messages, newest first."""
    if threads:
        from deskmail.cli.search_cmd import print_threads

        print_threads(dm().list_threads(account=account, folder=folder, limit=limit), json_out)
        return
    rows = dm().list_messages(account=account, folder=folder, limit=limit, sort=sort, unread_only=unread,
                              flagged_only=flagged)
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
        where = ([r.folder] if account else [f"{r.account}/{r.folder}"]) if several else []
        table.add_row(str(r.id), r.date[:16].replace("T", " "), cell(r.sender), cell(r.subject), marks.strip(),
                      *map(cell, where))
    out.print(table)


def _register_optional() -> None:
    from deskmail.cli import compose_cmd, identity_cmd, outbox_cmd, read_cmd, sandbox_cmd, search_cmd, sync_cmd

    sync_cmd.register(app)
    compose_cmd.register(app)
    identity_cmd.register(app)
    outbox_cmd.register(app)
    outbox_cmd.register_drafts(app)
    read_cmd.register(app)
    search_cmd.register(app)
    sandbox_cmd.register(app)
    for module in ("discover_cmd", "doctor_cmd", "gui_cmd"):
        try:
            mod = __import__(f"deskmail.cli.{module}", fromlist=["register"])
        except ImportError:
            continue
        mod.register(app)


_register_optional()


def main(argv: list[str] | None = None) -> int:
    code = _main(list(sys.argv[1:] if argv is None else argv))
    from deskmail.cli.fastpath import write_out

    return code if write_out() else 1  # what is still buffered, written now: a reader gone is exit 1, silently


def _main(args: list[str]) -> int:
    command = typer.main.get_command(app)
    from deskmail.cli.fastpath import imports_done

    imports_done()
    try:
        rv = command.main(args=args, prog_name="deskmail", standalone_mode=False)
        if isinstance(rv, int):  # click returns typer.Exit's code instead of raising without standalone mode
            return rv
    except DeskmailError as exc:
        if "--json" in args:
            _emit_json(exc.to_dict())
        print_error(exc)
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

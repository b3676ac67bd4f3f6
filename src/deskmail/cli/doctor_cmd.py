"""`deskmail doctor`: test each layer of an account's connections and name the cause of a failure."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from deskmail.app import Deskmail
from deskmail.cli import options as opt
from deskmail.cli.ui import err, out, safe
from deskmail.errors import ConfigError, SecretError, UsageError
from deskmail.model import Account
from deskmail.secrets import Secret


def show_doctor(app_: Deskmail, account: Account, password: Secret | None, *, send_test: bool = False,
                round_trip: bool = False, json_out: bool = False) -> bool:
    """Run the doctor with live output (or JSON); True when everything needed works."""
    if json_out:
        report = app_.doctor(account, password, send_test=send_test, round_trip=round_trip)
        sys.stdout.write(report.to_json() + "\n")
        return bool(report.ok)
    from deskmail.cli.doctor_render import DoctorPrinter

    printer = DoctorPrinter(console=out._console_now())
    report = app_.doctor(account, password, send_test=send_test, round_trip=round_trip, on_step=printer)
    printer.summary(report)
    return bool(report.ok)


def register(app: typer.Typer) -> None:
    @app.command()
    def doctor(
        account: opt.AccountArg = None,
        email: opt.Email = None,
        protocol: opt.ProtocolOpt = "imap",
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
        allow_plaintext_password: opt.AllowPlaintext = False,
        send_test: Annotated[bool, typer.Option("--send-test", help="Send a test message to yourself.")] = False,
        round_trip: Annotated[
            bool, typer.Option("--round-trip", help="Also wait for the test message to arrive (implies --send-test).")
        ] = False,
        json_out: opt.JsonOut = False,
    ) -> None:
        """Diagnose ACCOUNT (or settings given with --email) step by step: DNS, ports, TLS, login, sending."""
        from deskmail.cli.main import manual_settings

        app_ = Deskmail()
        if email:
            if account:
                raise UsageError("Give either an account name or --email with settings, not both")
            target = app_.build_account(manual_settings(
                email=email, protocol=protocol, imap_host=imap_host, imap_port=imap_port,
                imap_security=imap_security, pop_host=pop_host, pop_port=pop_port, pop_security=pop_security,
                smtp_host=smtp_host, smtp_port=smtp_port, smtp_security=smtp_security, smtp_auth=smtp_auth,
                username=username, ca_file=ca_file, password_env=password_env, password_command=password_command,
                allow_plaintext=allow_plaintext_password,
            ))
        else:
            target = app_.account(account)
        password: Secret | None = None
        if target.password.kind == "keyring" and email:
            if sys.stdin.isatty():
                password = Secret(typer.prompt(f"Password for {target.email}", hide_input=True))
        else:
            try:
                password = app_.password(target)
            except (SecretError, ConfigError) as exc:
                if target.incoming.auth != "oauth2":  # an OAuth2 account's login step names the problem itself
                    err.print(f"[yellow]No password:[/] {safe(exc)} The login checks are skipped.", highlight=False)
        if password is None and not json_out:
            err.print("[yellow]Without a password the login and sending checks are skipped.[/]")
        if not show_doctor(app_, target, password, send_test=send_test, round_trip=round_trip, json_out=json_out):
            raise typer.Exit(1)

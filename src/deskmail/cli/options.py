"""Command-line options shared by `account add` and `doctor` (same names, same meaning)."""

from __future__ import annotations

from typing import Annotated

import typer

Email = Annotated[str | None, typer.Option("--email", help="The e-mail address.")]
ProtocolOpt = Annotated[str, typer.Option("--protocol", help="imap or pop3.")]
ImapHost = Annotated[str | None, typer.Option("--imap-host")]
ImapPort = Annotated[int | None, typer.Option("--imap-port")]
ImapSecurity = Annotated[str | None, typer.Option("--imap-security", help="ssl, starttls or none.")]
PopHost = Annotated[str | None, typer.Option("--pop-host")]
PopPort = Annotated[int | None, typer.Option("--pop-port")]
PopSecurity = Annotated[str | None, typer.Option("--pop-security", help="ssl, starttls or none.")]
SmtpHost = Annotated[str | None, typer.Option("--smtp-host")]
SmtpPort = Annotated[int | None, typer.Option("--smtp-port")]
SmtpSecurity = Annotated[str | None, typer.Option("--smtp-security", help="ssl, starttls or none.")]
SmtpAuth = Annotated[bool, typer.Option("--smtp-auth/--no-smtp-auth", help="Outgoing server requires authentication.")]
Username = Annotated[str | None, typer.Option("--username", help="Login name (default: the full address).")]
CaFile = Annotated[str | None, typer.Option("--ca-file", help="Extra CA certificate (PEM) to trust.")]
PasswordEnv = Annotated[
    str | None, typer.Option("--password-env", metavar="VAR", help="Read the password from $VAR (scripts).")
]
PasswordCommand = Annotated[
    str | None, typer.Option("--password-command", metavar="CMD", help="Run CMD to get the password.")
]
AllowPlaintext = Annotated[
    bool, typer.Option("--allow-plaintext-password", help="Permit sending the password unencrypted.")
]
JsonOut = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]

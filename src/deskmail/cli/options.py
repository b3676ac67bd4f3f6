"""Command-line options shared by `account add` and `doctor` (same names, same meaning)."""

from __future__ import annotations

from typing import Annotated

import typer

Email = Annotated[str | None, typer.Option("--email", help="The e-mail address.")]
ProtocolOpt = Annotated[str, typer.Option("--protocol", help="imap or pop3.")]
ImapHost = Annotated[str | None, typer.Option("--imap-host", help="Incoming IMAP server, e.g. imap.example.com.")]
ImapPort = Annotated[int | None, typer.Option("--imap-port", help="Its port (993 for SSL/TLS, 143 for STARTTLS).")]
ImapSecurity = Annotated[str | None, typer.Option("--imap-security", help="ssl, starttls or none.")]
PopHost = Annotated[str | None, typer.Option("--pop-host", help="Incoming POP3 server (with --protocol pop3).")]
PopPort = Annotated[int | None, typer.Option("--pop-port", help="Its port (995 for SSL/TLS, 110 for STARTTLS).")]
PopSecurity = Annotated[str | None, typer.Option("--pop-security", help="ssl, starttls or none.")]
SmtpHost = Annotated[str | None, typer.Option("--smtp-host", help="Outgoing SMTP server, e.g. smtp.example.com.")]
SmtpPort = Annotated[int | None, typer.Option("--smtp-port", help="Its port (587 for STARTTLS, 465 for SSL/TLS).")]
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
AccountArg = Annotated[
    str | None, typer.Argument(metavar="ACCOUNT", show_default=False, help="Default: the only account.")
]
AccountOpt = Annotated[
    str | None, typer.Option("--account", "-a", help="Which account, by name or address (default: the only one).")
]
DeviceCode = Annotated[bool, typer.Option(
    "--device", help="OAuth2: sign in with a code typed on another device (where the provider allows it).")]
OpenBrowser = Annotated[bool, typer.Option(
    "--browser/--no-browser", help="OAuth2: open the sign-in page in the browser (the address is printed anyway).")]

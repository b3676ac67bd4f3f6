"""The demo account: the local sandbox servers with sample mail, and an account that uses them."""

from __future__ import annotations

import secrets
from pathlib import Path

from deskmail.app import Deskmail
from deskmail.model import Account, PasswordSource, Protocol, Security, ServerSettings
from deskmail.sandbox.servers import load_sandbox, sample_messages, start_sandbox

DEMO_EMAIL = "demo@example.test"
DEMO_ACCOUNT = "demo"


def start_demo(app: Deskmail, root: Path) -> Account:
    """Start the servers (if they are not running), create the demo user with sample mail once, and save
    the demo account."""
    password_file = root / "demo-password"
    root.mkdir(parents=True, exist_ok=True)
    if not password_file.exists():
        password_file.write_text(secrets.token_urlsafe(18) + "\n")
        password_file.chmod(0o600)
    password = password_file.read_text().strip()
    sb = load_sandbox(root)
    if sb is None or not sb.is_running():
        sb = start_sandbox(root, {DEMO_EMAIL: password})
    demo = Account(
        name=DEMO_ACCOUNT,
        email=DEMO_EMAIL,
        display_name="Demo User",
        incoming=ServerSettings(Protocol.IMAP, sb.host, sb.imaps_port, Security.SSL, DEMO_EMAIL),
        outgoing=ServerSettings(Protocol.SMTP, sb.host, sb.submission_port, Security.STARTTLS, DEMO_EMAIL),
        # A throw-away password for a local test server: read from a 0600 file, like msmtp's passwordeval.
        password=PasswordSource("command", command=f"cat '{password_file}'"),
        ca_file=str(sb.ca_file),
    )
    existing = app.accounts().get(DEMO_ACCOUNT)
    if existing is None:
        app.add_account(demo)
    elif existing != demo:
        app.update_account(demo)
    marker = root / "samples-delivered"
    if not marker.exists():
        for raw in sample_messages(DEMO_EMAIL):
            sb.deliver(DEMO_EMAIL, raw)
        marker.touch()
    return demo

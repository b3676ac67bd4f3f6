"""The foundation's end-to-end slice, through the real CLI, against the real Dovecot + SMTP sandbox."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from helpers import Home, RewritingProxy, secret_service

pytestmark = pytest.mark.servers


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


def add_args(sb: Any, user: Any, *, protocol: str = "imap", imap_security: str = "ssl",
             smtp_security: str = "starttls", ca: bool = True, name: str = "acct") -> list[str]:
    if protocol == "imap":
        port = sb.imaps_port if imap_security == "ssl" else sb.imap_port
        incoming = ["--imap-host", sb.host, "--imap-port", str(port), "--imap-security", imap_security]
    else:
        port = sb.pop3s_port if imap_security == "ssl" else sb.pop3_port
        incoming = ["--pop-host", sb.host, "--pop-port", str(port), "--pop-security", imap_security]
    smtp_port = sb.submission_port if smtp_security == "starttls" else sb.smtps_port
    args = ["account", "add", "--email", user.email, "--name", name, "--protocol", protocol, *incoming,
            "--smtp-host", sb.host, "--smtp-port", str(smtp_port), "--smtp-security", smtp_security,
            "--password-env", "DM_PW"]
    if ca:
        args += ["--ca-file", str(sb.ca_file)]
    return args


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc


def wait_for_sync(home: Home, subject: str, account: str = "acct", tries: int = 20) -> dict[str, Any]:
    """Sync until a message with ``subject`` is listed (delivery is synchronous, but be patient)."""
    for _ in range(tries):
        ok(home.run("sync", account))
        rows = json.loads(ok(home.run("list", "--account", account, "--json")).stdout)
        for row in rows:
            if row["subject"] == subject:
                return dict(row)
        time.sleep(0.25)
    raise AssertionError(f"{subject!r} never arrived")


@pytest.mark.parametrize(
    ("protocol", "imap_security", "smtp_security"),
    [("imap", "ssl", "starttls"), ("imap", "starttls", "ssl"), ("pop3", "ssl", "starttls"),
     ("pop3", "starttls", "starttls")],
)
def test_add_send_sync_list_read(
    sandbox: Any, mail_user: Any, home: Home, tmp_path: Path, protocol: str, imap_security: str, smtp_security: str
) -> None:
    home.env["DM_PW"] = mail_user.password
    ok(home.run(*add_args(sandbox, mail_user, protocol=protocol, imap_security=imap_security,
                          smtp_security=smtp_security)))
    attachment = tmp_path / "report ü.pdf"
    attachment.write_bytes(b"%PDF-1.4 fake but fine\n" * 100)
    subject = f"Hello over {protocol}/{imap_security}/{smtp_security} ✓"
    ok(home.run("send", "--account", "acct", "--to", mail_user.email, "--subject", subject,
                "--body", "First line\nSecond line", "--attach", str(attachment)))
    row = wait_for_sync(home, subject)
    assert row["sender"].endswith(mail_user.email)

    shown = json.loads(ok(home.run("read", str(row["id"]), "--json")).stdout)
    assert shown["headers"]["Subject"] == subject
    assert "First line\nSecond line" in shown["text"]
    assert [a["filename"] for a in shown["attachments"]] == ["report ü.pdf"]
    human = ok(home.run("read", str(row["id"]))).stdout
    assert "Second line" in human and "report ü.pdf" in human
    raw = ok(home.run("read", str(row["id"]), "--raw")).stdout
    assert "Message-ID:" in raw

    if protocol == "imap":  # the copy in Sent, as IMAP clients keep it
        sent = json.loads(ok(home.run("list", "--folder", "Sent", "--json")).stdout)
        assert [r["subject"] for r in sent] == [subject] and "\\Seen" in sent[0]["flags"]

    # A second sync downloads nothing again.
    again = ok(home.run("sync", "acct", "--json"))
    report = json.loads(again.stdout)["acct"]
    assert report["ok"] is True and sum(f["new"] for f in report["folders"]) == 0


def test_wrong_password_is_one_clear_paragraph(sandbox: Any, mail_user: Any, home: Home) -> None:
    home.env["DM_PW"] = "not-the-password"
    proc = home.run(*add_args(sandbox, mail_user))
    assert proc.returncode == 8
    assert "Traceback" not in proc.stderr
    assert f"{sandbox.host}:{sandbox.imaps_port}" in proc.stderr
    assert "rejected the user name or password" in proc.stderr
    assert "app password" in proc.stderr  # the likely fixes are named
    assert not (home.root / "config" / "accounts.toml").exists()  # nothing saved

    # Same for sync with an account saved without verification.
    ok(home.run(*add_args(sandbox, mail_user), "--no-verify"))
    proc = home.run("sync")
    assert proc.returncode == 8 and "Traceback" not in proc.stderr and "rejected" in proc.stderr


def test_untrusted_certificate_is_refused(sandbox: Any, mail_user: Any, home: Home) -> None:
    home.env["DM_PW"] = mail_user.password
    proc = home.run(*add_args(sandbox, mail_user, ca=False))
    assert proc.returncode == 7, proc.stderr
    assert "certificate" in proc.stderr and "not trusted" in proc.stderr
    assert "--ca-file" in proc.stderr and "Traceback" not in proc.stderr


def test_imap_starttls_stripped_no_credentials_sent(sandbox: Any, mail_user: Any, home: Home) -> None:
    proxy = RewritingProxy((sandbox.host, sandbox.imap_port), rewrite=(re.compile(rb" STARTTLS"), b""))
    try:
        home.env["DM_PW"] = mail_user.password
        args = add_args(sandbox, mail_user, imap_security="starttls")
        args[args.index("--imap-port") + 1] = str(proxy.port)
        proc = home.run(*args)
        assert proc.returncode == 7, proc.stderr
        assert "did not offer STARTTLS" in proc.stderr and "downgrade" in proc.stderr
        sent = bytes(proxy.client_bytes)
        assert b"LOGIN" not in sent.upper() and b"AUTHENTICATE" not in sent.upper()
        assert mail_user.password.encode() not in sent
    finally:
        proxy.close()


def test_smtp_starttls_stripped_no_credentials_sent(sandbox: Any, mail_user: Any, home: Home) -> None:
    proxy = RewritingProxy((sandbox.host, sandbox.submission_port), drop_line=re.compile(rb"^250.STARTTLS", re.I))
    try:
        home.env["DM_PW"] = mail_user.password
        ok(home.run(*add_args(sandbox, mail_user), "--no-verify"))
        accounts = home.root / "config" / "accounts.toml"
        text = accounts.read_text().replace(f"port = {sandbox.submission_port}", f"port = {proxy.port}")
        accounts.write_text(text)
        proc = home.run("send", "--to", mail_user.email, "--subject", "x", "--body", "y")
        assert proc.returncode == 7, proc.stderr
        assert "did not offer STARTTLS" in proc.stderr
        sent = bytes(proxy.client_bytes).upper()
        assert b"AUTH" not in sent and b"MAIL FROM" not in sent
    finally:
        proxy.close()


def test_plaintext_password_needs_explicit_permission(sandbox: Any, mail_user: Any, home: Home) -> None:
    home.env["DM_PW"] = mail_user.password
    args = add_args(sandbox, mail_user, imap_security="none")
    proc = home.run(*args)
    assert proc.returncode == 7 and "password would travel in clear" in proc.stderr
    # With explicit permission it works (Dovecot treats loopback as secure) and warns each time.
    proc = ok(home.run(*args, "--allow-plaintext-password"))
    assert "without encryption" in proc.stderr
    proc = ok(home.run("sync"))
    assert "without encryption" in proc.stderr


def test_password_never_stored_or_logged(sandbox: Any, mail_user: Any, home: Home, tmp_path: Path) -> None:
    """Keyring path: the password lives in the keyring only; not in TOML, debug log or store."""
    with secret_service(tmp_path) as keyring_env:
        home.env.update(keyring_env)
        _password_never_stored_or_logged(sandbox, mail_user, home)
        stored = subprocess.run(
            [sys.executable, "-c", "import keyring; print(keyring.get_password('deskmail', 'acct'))"],
            env={**os.environ, **keyring_env}, capture_output=True, text=True, check=True)
        assert stored.stdout.strip() == mail_user.password  # it went to the Secret Service instead
    assert not list(tmp_path.rglob("keyring_pass.cfg"))  # and not to a plaintext file


def _password_never_stored_or_logged(sandbox: Any, mail_user: Any, home: Home) -> None:
    args = [a for a in add_args(sandbox, mail_user) if a not in ("--password-env", "DM_PW")]
    ok(home.run("--debug", *args, "--password-stdin", input=mail_user.password + "\n"))
    ok(home.run("--debug", "send", "--to", mail_user.email, "--subject", "secret check", "--body", "hi"))
    wait_for_sync(home, "secret check")
    ok(home.run("--debug", "sync"))

    debug_log = home.root / "data" / "logs" / "debug.log"
    assert debug_log.stat().st_size > 0
    log_text = debug_log.read_text()
    assert "LOGIN" in log_text and "AUTH" in log_text  # the log really covers the logins
    assert "Secret(" not in log_text
    everything = home.all_bytes()
    pw = mail_user.password.encode()
    forms = [pw, base64.b64encode(pw),
             base64.b64encode(b"\0" + mail_user.email.encode() + b"\0" + pw),
             base64.b64encode(mail_user.email.encode() + b"\0" + mail_user.email.encode() + b"\0" + pw)]
    for form in forms:
        assert form not in everything, f"secret form found under DESKMAIL_HOME: {form!r}"


def test_plaintext_keyring_is_refused(sandbox: Any, mail_user: Any, home: Home, tmp_path: Path) -> None:
    home.env.update({"PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
                     "XDG_DATA_HOME": str(tmp_path / "keyring-data")})
    args = [a for a in add_args(sandbox, mail_user) if a not in ("--password-env", "DM_PW")]
    proc = home.run(*args, "--password-stdin", input=mail_user.password + "\n")
    assert proc.returncode == 5, proc.stderr
    assert "insecure keyring" in proc.stderr and "plain file" in proc.stderr
    assert "password_command" in proc.stderr and "password_env" in proc.stderr
    assert not list((tmp_path / "keyring-data").rglob("*.cfg"))  # nothing was written


def test_no_keyring_names_alternatives(sandbox: Any, mail_user: Any, home: Home) -> None:
    home.env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    args = [a for a in add_args(sandbox, mail_user) if a not in ("--password-env", "DM_PW")]
    proc = home.run(*args, "--password-stdin", input="whatever\n")
    assert proc.returncode == 5
    assert "keyring" in proc.stderr and "--password-command" in proc.stderr and "--password-env" in proc.stderr


def test_broken_config_names_file_and_line(home: Home) -> None:
    cfg = home.root / "config" / "accounts.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('[accounts.a]\nemail = "a@b.c"\nport = [\n')
    proc = home.run("account", "list")
    assert proc.returncode == 3
    assert str(cfg) in proc.stderr and "line" in proc.stderr and "Traceback" not in proc.stderr


def _server_message_ids(sandbox: Any, email: str) -> list[str]:
    proc = sandbox.doveadm("-f", "tab", "fetch", "-u", email, "hdr.message-id", "mailbox", "INBOX")
    return [line.strip() for line in proc.stdout.splitlines()[1:] if line.strip()]


def test_sigkill_mid_sync_then_resume_exactly_once(sandbox: Any, mail_user: Any, home: Home) -> None:
    filler = b"x" * 20000
    messages = [
        (f"From: gen@example.test\r\nTo: {mail_user.email}\r\nSubject: bulk {i}\r\n"
         f"Message-ID: <bulk-{i}@example.test>\r\nDate: Mon, 02 Jan 2023 10:00:00 +0000\r\n\r\n").encode()
        + filler + b"\r\n"
        for i in range(500)
    ]
    assert sandbox.fill_maildir(mail_user.email, messages) == 500
    home.env["DM_PW"] = mail_user.password
    ok(home.run(*add_args(sandbox, mail_user)))
    cur = home.root / "data" / "mail" / "acct" / "cur"
    kill_points = [60, 230, 420]
    for point in kill_points:
        proc = home.popen("sync")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if cur.is_dir() and sum(1 for _ in cur.iterdir()) >= point:
                break
            time.sleep(0.005)
        assert proc.poll() is None, "sync finished before it could be killed; make the mailbox bigger"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    ok(home.run("sync"))
    names = [p.name for p in cur.iterdir()]
    assert len(names) == 500
    db = sqlite3.connect(home.root / "data" / "index.sqlite3")
    ids = [r[0] for r in db.execute("SELECT message_id FROM messages")]
    assert sorted(ids) == sorted(f"<bulk-{i}@example.test>" for i in range(500))
    assert len(set(ids)) == 500
    files_in_index = {r[0] for r in db.execute("SELECT filename FROM messages")}
    assert files_in_index == set(names)
    assert not list((cur.parent / "tmp").iterdir())
    assert len(_server_message_ids(sandbox, mail_user.email)) == 500  # the server was not touched


def test_account_password_replaces_the_keyring_entry(sandbox: Any, mail_user: Any, home: Home, tmp_path: Path) -> None:
    with secret_service(tmp_path) as keyring_env:
        home.env.update(keyring_env)
        _account_password_replaces_the_keyring_entry(sandbox, mail_user, home)


def _account_password_replaces_the_keyring_entry(sandbox: Any, mail_user: Any, home: Home) -> None:
    args = [a for a in add_args(sandbox, mail_user) if a not in ("--password-env", "DM_PW")]
    ok(home.run(*args, "--password-stdin", input=mail_user.password + "\n"))
    bad = home.run("account", "password", "acct", "--password-stdin", input="wrong\n")
    assert bad.returncode == 8  # verified before it replaces anything
    ok(home.run("sync"))
    ok(home.run("account", "password", "acct", "--password-stdin", input=mail_user.password + "\n"))
    ok(home.run("sync"))

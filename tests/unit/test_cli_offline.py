"""CLI behaviour that needs no server: provider defaults, usage errors, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import Home


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home", env={"PW": "x"})


@pytest.mark.parametrize("address", ["me@spectrum.net", "me@charter.net", "me@twc.com", "me@nc.rr.com",
                                     "me@rr.com", "me@brighthouse.com", "me@socal.rr.com"])
def test_spectrum_family_gets_founding_document_settings(home: Home, address: str) -> None:
    proc = home.run("account", "add", address, "--password-env", "PW", "--no-verify", "--json")
    assert proc.returncode == 0, proc.stderr
    saved = json.loads(proc.stdout)
    assert saved["incoming"] == {"protocol": "imap", "host": "imap.spectrum.net", "port": 993, "security": "ssl",
                                 "username": address, "auth": "password"}
    assert saved["outgoing"]["host"] == "smtp.spectrum.net"
    assert saved["outgoing"]["port"] == 587
    assert saved["outgoing"]["security"] == "starttls"
    assert saved["outgoing"]["auth_required"] is True
    assert saved["outgoing"]["username"] == address


def test_spectrum_pop3_uses_port_995(home: Home) -> None:
    proc = home.run("account", "add", "me@spectrum.net", "--protocol", "pop3", "--password-env", "PW",
                    "--no-verify", "--json")
    assert proc.returncode == 0, proc.stderr
    incoming = json.loads(proc.stdout)["incoming"]
    assert (incoming["protocol"], incoming["port"], incoming["security"]) == ("pop3", 995, "ssl")


def test_unknown_domain_without_hosts_is_a_usage_error(home: Home) -> None:
    proc = home.run("account", "add", "me@unknown-domain.invalid", "--password-env", "PW", "--no-verify")
    assert proc.returncode == 2
    assert "--imap-host" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_security_value(home: Home) -> None:
    proc = home.run("account", "add", "me@x.example", "--imap-host", "h", "--smtp-host", "h",
                    "--imap-security", "tls9", "--password-env", "PW", "--no-verify")
    assert proc.returncode == 2 and "ssl, starttls or none" in proc.stderr


def test_account_list_show_remove(home: Home) -> None:
    assert home.run("account", "add", "me@spectrum.net", "--password-env", "PW", "--no-verify").returncode == 0
    listed = json.loads(home.run("account", "list", "--json").stdout)
    assert [a["name"] for a in listed] == ["me@spectrum.net"]
    shown = home.run("account", "show")
    assert "imap.spectrum.net:993" in shown.stdout and "x" not in shown.stdout.split("password:")[1].split()[0:1]
    assert home.run("account", "remove", "me@spectrum.net").returncode == 0
    assert json.loads(home.run("account", "list", "--json").stdout) == []
    missing = home.run("account", "show", "nobody")
    assert missing.returncode == 4 and "no account named" in missing.stderr


def test_read_unknown_id(home: Home) -> None:
    proc = home.run("read", "999")
    assert proc.returncode == 4 and "no message with id 999" in proc.stderr


def test_help_for_every_command(home: Home) -> None:
    for cmd in (["--help"], ["account", "add", "--help"], ["send", "--help"], ["sync", "--help"],
                ["list", "--help"], ["read", "--help"], ["sandbox", "--help"]):
        proc = home.run(*cmd)
        assert proc.returncode == 0 and "Usage" in proc.stdout, cmd


def test_interactive_add_asks_imap_or_pop3(home: Home) -> None:
    """On a terminal, a provider offering both gets the question (IMAP by default); answered here: pop3."""
    import os
    import pty
    import select
    import subprocess
    import sys
    import time

    master, slave = pty.openpty()
    env = {**os.environ, "DESKMAIL_HOME": str(home.root), "PW": "x", "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "deskmail", "account", "add", "me@spectrum.net",
                             "--password-env", "PW", "--no-verify", "--json"],
                            stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    seen = b""
    answered = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal: it is done
                break
            if not chunk:
                break
            seen += chunk
        if not answered and b"(POP3)?" in seen:
            os.write(master, b"pop3\n")
            answered = True
        if proc.poll() is not None and not ready:
            break
    proc.wait(timeout=10)
    os.close(master)
    text = seen.decode("utf-8", "replace").replace("\r\n", "\n")
    assert answered and "IMAP, recommended" in text, text
    assert proc.returncode == 0, text
    saved = json.loads(text[text.index("{"):])
    assert (saved["incoming"]["protocol"], saved["incoming"]["host"], saved["incoming"]["port"]) == (
        "pop3", "pop.spectrum.net", 995)


def test_version(home: Home) -> None:
    proc = home.run("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("deskmail ")

"""`deskmail doctor` and `account add`'s diagnosis, through the real CLI against the sandbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from helpers import Home, closed_port

pytestmark = pytest.mark.servers


def settings(sb: Any, user: Any, **override: str) -> list[str]:
    values = {"--email": user.email, "--imap-host": sb.host, "--imap-port": str(sb.imaps_port),
              "--imap-security": "ssl", "--smtp-host": sb.host, "--smtp-port": str(sb.submission_port),
              "--smtp-security": "starttls", "--ca-file": str(sb.ca_file), "--password-env": "DM_PW"}
    values.update(override)
    return [x for kv in values.items() for x in kv]



@pytest.fixture
def home(tmp_path: Path, mail_user: Any) -> Home:
    return Home(tmp_path / "home", env={"DM_PW": mail_user.password})


def test_doctor_green_with_round_trip(sandbox: Any, mail_user: Any, home: Home) -> None:
    proc = home.run("doctor", *settings(sandbox, mail_user), "--round-trip", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    codes = {f["code"] for f in report["findings"]}
    assert "ok" in codes
    assert mail_user.password not in proc.stdout + proc.stderr
    human = home.run("doctor", *settings(sandbox, mail_user))
    assert human.returncode == 0 and "Incoming" in human.stdout


def test_doctor_names_refused_port_and_hides_password(sandbox: Any, mail_user: Any, home: Home) -> None:
    port = closed_port()
    proc = home.run("doctor", *settings(sandbox, mail_user, **{"--imap-port": str(port)}), "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    refused = [f for f in report["findings"] if f["code"] == "connection_refused"]
    assert refused and str(port) in refused[0]["text"]
    assert mail_user.password not in proc.stdout + proc.stderr


def test_account_add_failure_shows_the_doctor(sandbox: Any, mail_user: Any, home: Home) -> None:
    port = closed_port()
    args = ["account", "add", *settings(sandbox, mail_user, **{"--smtp-port": str(port)})]
    proc = home.run(*args)
    assert proc.returncode == 6
    assert "not saved" in proc.stderr and "connection doctor" in proc.stderr
    assert "Outgoing" in proc.stdout and "connection_refused" in proc.stdout
    assert mail_user.password not in proc.stdout + proc.stderr
    assert not (home.root / "config" / "accounts.toml").exists()


def test_doctor_on_a_saved_account(sandbox: Any, mail_user: Any, home: Home) -> None:
    assert home.run("account", "add", *settings(sandbox, mail_user)).returncode == 0
    proc = home.run("doctor", "--json")
    assert proc.returncode == 0, proc.stdout
    assert json.loads(proc.stdout)["ok"] is True

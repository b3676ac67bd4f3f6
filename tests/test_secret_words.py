"""Passwords that are ordinary words or single letters, against the real servers.

Secrets are kept out of logs and the doctor's output by structure (what is sent is
logged in its shown form), never by masking text afterwards, so a password such as
``e`` or ``false`` must leave every other word alone: ``doctor --json`` stays valid JSON
with ``false``/``true`` intact and no ``****`` anywhere, and the ``--debug`` logs of
sync, send and doctor carry the whole protocol transcript but no client line with the
password, its base64 form or the AUTH PLAIN blob.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from pathlib import Path
from typing import Any

import pytest

from deskmail.doctor import Timeouts, run_doctor
from deskmail.model import Account, Protocol, Security, ServerSettings
from deskmail.sandbox import MailUser, Sandbox
from deskmail.secrets import Secret
from helpers import Home

pytestmark = pytest.mark.servers

CASES = [("e", "imap"), ("a", "pop3"), ("password", "imap"), ("false", "pop3"), ("imap", "imap"),
         ("true", "imap")]
REAL = Timeouts(dns=2, connect=2, sniff=0.5, greeting=3, tls=3, command=5, alternative=1,
                round_trip=15, poll_interval=0.25, total=60)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


def _user(sandbox: Sandbox, password: str) -> MailUser:
    user = MailUser(f"word-{secrets.token_hex(4)}@example.test", password)
    sandbox.add_user(user.email, user.password)
    return user


def _ok(proc: Any) -> Any:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc


def _secret_forms(user: MailUser) -> list[str]:
    pw, email = user.password.encode(), user.email.encode()
    return [base64.b64encode(form).decode() for form in (pw, b"\0" + email + b"\0" + pw,
                                                        email + b"\0" + email + b"\0" + pw)]


def _client_lines(log: str) -> list[str]:
    return [line.split(" C: ", 1)[1] for line in log.splitlines() if " C: " in line]


def _assert_no_secret(log: str, user: MailUser) -> None:
    for form in _secret_forms(user):
        assert form not in log, f"a base64 form of the password is in the log: {form}"
    for line in _client_lines(log):
        words = {w.strip('"') for w in line.split()}
        assert user.password not in words, f"a client line carries the password: {line!r}"
    # The credentials went out, in their shown form.
    assert any(line.endswith("****") for line in _client_lines(log))


@pytest.mark.parametrize(("password", "protocol"), CASES)
def test_word_passwords_leave_output_and_logs_intact(sandbox: Sandbox, home: Home, password: str,
                                                     protocol: str) -> None:
    user = _user(sandbox, password)
    home.env["DM_PW"] = password
    port = {"imap": sandbox.imaps_port, "pop3": sandbox.pop3s_port}[protocol]
    host_opt = "--imap" if protocol == "imap" else "--pop"
    _ok(home.run("account", "add", "--email", user.email, "--name", "acct", "--protocol", protocol,
                 f"{host_opt}-host", sandbox.host, f"{host_opt}-port", str(port), f"{host_opt}-security", "ssl",
                 "--smtp-host", sandbox.host, "--smtp-port", str(sandbox.submission_port),
                 "--smtp-security", "starttls", "--ca-file", str(sandbox.ca_file), "--password-env", "DM_PW"))
    log_file = home.root / "data" / "logs" / "debug.log"

    # doctor --json: valid JSON, every word as written, no mask anywhere.
    proc = _ok(home.run("--debug", "doctor", "acct", "--json"))
    report = json.loads(proc.stdout)
    assert report["ok"] is True and "****" not in proc.stdout
    texts = [f["text"] for f in report["findings"]]
    assert any(t.startswith("Logged in to ") and user.email in t for t in texts), texts
    doctor_log = log_file.read_text()
    assert "-- doctor: connected to" in doctor_log and "-- TLS established" in doctor_log
    if protocol == "imap":
        assert f'LOGIN "{user.email}" ****' in doctor_log and "C: D001 CAPABILITY" in doctor_log
    else:
        assert "C: PASS ****" in doctor_log and "C: CAPA" in doctor_log
    assert "C: AUTH PLAIN ****" in doctor_log and "S: 235" in doctor_log
    _assert_no_secret(doctor_log, user)
    log_file.write_text("")

    subject = f"word check {password}"
    _ok(home.run("--debug", "send", "--to", user.email, "--subject", subject, "--body", "hello"))
    send_log = log_file.read_text()
    assert "C: AUTH PLAIN ****" in send_log and "S: 235" in send_log and "C: <message," in send_log
    _assert_no_secret(send_log, user)
    log_file.write_text("")

    for _ in range(20):
        _ok(home.run("--debug", "sync"))
        rows = json.loads(_ok(home.run("list", "--json")).stdout)
        if any(row["subject"] == subject for row in rows):
            break
        time.sleep(0.25)
    else:
        raise AssertionError(f"{subject!r} never arrived")
    sync_log = log_file.read_text()
    if protocol == "imap":
        assert f'LOGIN "{user.email}" ****' in sync_log and "FETCH" in sync_log
    else:
        assert "C: PASS ****" in sync_log and "C: UIDL" in sync_log
    _assert_no_secret(sync_log, user)
    assert password not in {w for line in _client_lines(sync_log) for w in line.split()}


@pytest.mark.parametrize("password", ["e", "false", "password"])
def test_doctor_library_json_is_valid_with_word_passwords(sandbox: Sandbox, password: str) -> None:
    user = _user(sandbox, password)
    account = Account(
        name="words", email=user.email, display_name="",
        incoming=ServerSettings(Protocol.IMAP, sandbox.host, sandbox.imaps_port, Security.SSL, user.email),
        outgoing=ServerSettings(Protocol.SMTP, sandbox.host, sandbox.submission_port, Security.STARTTLS,
                                user.email),
        ca_file=str(sandbox.ca_file),
    )
    report = run_doctor(account, Secret(password), timeouts=REAL)
    text = report.to_json()
    data = json.loads(text)
    assert data["ok"] is True and "****" not in text
    assert [f["text"] for f in data["findings"]] == [f.text for f in report.findings]
    wrong = run_doctor(account, Secret(password + "x"), timeouts=REAL)
    wrong_text = wrong.to_json()
    assert json.loads(wrong_text)["ok"] is False and "****" not in wrong_text

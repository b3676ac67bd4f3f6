"""What the CLI prints: message data is never markup or terminal control, and small usage errors read right."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from helpers import Home, add_imaps_account

pytestmark = pytest.mark.servers

HOSTILE_SUBJECT = ("[/b] [link=https://evil.example/]click[/link] [bold red]alarm[/] \x1b[31mRED\x1b[0m \x07 "
                   "\u202etxt.exe")
HOSTILE_FROM = "[b]Boss[/b] \x1b]8;;https://evil.example/\x1b\\ <boss@example.test>"
HOSTILE_BODY = "Line [/i] one\n\x1b[2J\x1b[Hcleared?\n[link=https://evil.example/]x[/link]\n"


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


def _deliver_hostile(sandbox: Any, mail_user: Any) -> None:
    raw = (f"From: {HOSTILE_FROM}\r\nTo: {mail_user.email}\r\nSubject: {HOSTILE_SUBJECT}\r\n"
           "Message-ID: <hostile@example.test>\r\nDate: Fri, 04 Dec 2026 10:00:00 +0000\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n\r\n" + HOSTILE_BODY.replace("\n", "\r\n"))
    sandbox.deliver(mail_user.email, raw.encode())


def test_list_and_read_show_markup_and_control_characters_literally(sandbox: Any, mail_user: Any,
                                                                     home: Home) -> None:
    home.env["DM_PW"] = mail_user.password
    add_imaps_account(home, sandbox, mail_user)
    _deliver_hostile(sandbox, mail_user)
    assert home.run("sync").returncode == 0

    listed = home.run("list")
    assert listed.returncode == 0, listed.stderr
    assert "Traceback" not in listed.stderr and "MarkupError" not in listed.stderr
    assert "\x1b" not in listed.stdout and "\x07" not in listed.stdout and "\u202e" not in listed.stdout
    assert "[/b]" in listed.stdout and "[link=https://evil.example/]click[/link]" in listed.stdout
    assert "\\x1b[31mRED" in listed.stdout  # the escape shown, not obeyed
    assert "[b]Boss[/b]" in listed.stdout

    message_id = json.loads(home.run("list", "--json").stdout)[0]["id"]
    shown = home.run("read", str(message_id))
    assert shown.returncode == 0, shown.stderr
    assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout and "\u202e" not in shown.stdout
    assert "[/b] [link=https://evil.example/]click[/link] [bold red]alarm[/]" in shown.stdout
    assert "Line [/i] one" in shown.stdout and "\\x1b[2J\\x1b[Hcleared?" in shown.stdout
    assert "\\u202etxt.exe" in shown.stdout

    # --json keeps the data exactly (escaped by JSON, not altered).
    data = json.loads(home.run("read", str(message_id), "--json").stdout)
    assert data["headers"]["Subject"] == HOSTILE_SUBJECT


def test_send_names_the_bad_address_and_the_folder_attachment(sandbox: Any, mail_user: Any, home: Home,
                                                              tmp_path: Path) -> None:
    home.env["DM_PW"] = mail_user.password
    add_imaps_account(home, sandbox, mail_user)
    bad = home.run("send", "--to", "not an address", "--subject", "x", "--body", "y")
    assert bad.returncode == 2
    assert "'not an address' in To is not an e-mail address" in bad.stderr

    folder = tmp_path / "holiday photos"
    folder.mkdir()
    attached = home.run("send", "--to", mail_user.email, "--body", "y", "--attach", str(folder))
    assert attached.returncode == 2
    assert "is a folder, not a file" in attached.stderr and "does not exist" not in attached.stderr


def test_help_shows_no_internal_names_and_every_option_is_described(home: Home) -> None:
    import re

    for command in (["account", "add"], ["account", "show"], ["account", "remove"], ["sync"], ["flag"],
                    ["list"], ["send"], ["doctor"], ["folders"], ["read"], ["attachments"], ["move"], ["delete"],
                    ["discover"], ["account", "list"], ["account", "password"], ["sandbox", "start"],
                    ["sandbox", "demo"]):
        proc = home.run(*command, "--help")
        assert proc.returncode == 0, proc.stderr
        assert "_arg" not in proc.stdout and "account_name" not in proc.stdout and "message_id" not in proc.stdout
        # Every option line of the rich help has a description after its type column.
        for line in proc.stdout.splitlines():
            m = re.match(r"^│ (--[\w-]+)(?:,? *-\w)? +(TEXT|INTEGER|FLOAT|PATH|VAR|CMD)? *│$", line)
            assert m is None, f"{' '.join(command)}: option without a description: {line.strip()}"


def test_account_remove_speaks_only_of_mail_that_exists(home: Home) -> None:
    assert home.run("account", "add", "me@spectrum.net", "--password-env", "PW", "--no-verify",
                    env={"PW": "x"}).returncode == 0
    removed = home.run("account", "remove", "me@spectrum.net")
    assert removed.returncode == 0
    assert "stays in" not in removed.stdout and "Nothing had been downloaded" in removed.stdout

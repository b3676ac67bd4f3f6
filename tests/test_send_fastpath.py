"""`deskmail send`'s lean path (cli/fastpath.py, no Typer) says and returns what the full command does: the
real CLI in a subprocess, through the sandbox's submission server into Dovecot. The full command is taken
by giving the body with --body-file, an option the lean path leaves to it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from deskmail.cli.fastpath import send_args
from helpers import Home, add_imaps_account

pytestmark = pytest.mark.servers


def _masked(text: str) -> str:
    # The Message-IDs differ, and with them where a narrow terminal wraps the line: compared unwrapped.
    return " ".join(re.sub(r"<[^<>\s]+@[^<>\s]+>", "<ID>", text).split())


@pytest.mark.parametrize("columns", ["200", "60"])
def test_lean_and_full_send_say_the_same(tmp_path: Path, sandbox: Any, mail_user: Any, columns: str) -> None:
    home = Home(tmp_path / "home", env={"DM_PW": mail_user.password, "COLUMNS": columns})
    add_imaps_account(home, sandbox, mail_user, name="acct")
    body = tmp_path / "body.txt"
    body.write_text("the body\n")
    common = ("send", "--to", f"Friend <{mail_user.email}>", "--cc", "other@far.example")
    lean = home.run(*common, "--subject", "lean one", "--body", "the body\n", "--bcc", "hidden@far.example")
    full = home.run(*common, "--subject", "full one", "--body-file", str(body), "--bcc", "hidden@far.example")
    assert (lean.returncode, full.returncode) == (0, 0), (lean.stderr, full.stderr)
    assert _masked(lean.stdout) == _masked(full.stdout) and "A copy is in Sent." in lean.stdout
    assert (lean.stderr, full.stderr) == ("", "")
    for subject in ("lean one", "full one"):  # both arrived, both copies in Sent
        for folder in ("INBOX", "Sent"):
            found = sandbox.doveadm("search", "-u", mail_user.email, "mailbox", folder, "subject", subject)
            assert len(found.stdout.split()) == 2, (subject, folder)


def test_lean_and_full_send_fail_the_same(tmp_path: Path, sandbox: Any, mail_user: Any) -> None:
    home = Home(tmp_path / "home", env={"DM_PW": mail_user.password})
    add_imaps_account(home, sandbox, mail_user, name="acct")
    body = tmp_path / "body.txt"
    body.write_text("x")
    for extra in ([], ["--json"]):
        lean = home.run("send", "--to", "not an address", "--body", "x", *extra)
        full = home.run("send", "--to", "not an address", "--body-file", str(body), *extra)
        assert lean.returncode == full.returncode == 2
        assert (lean.stdout, lean.stderr) == (full.stdout, full.stderr)
        assert "'not an address' in To is not an e-mail address" in lean.stderr
    lean = home.run("send", "--to", mail_user.email, "--account", "nobody", "--body", "x")
    full = home.run("send", "--to", mail_user.email, "--account", "nobody", "--body-file", str(body))
    assert lean.returncode == full.returncode != 0 and lean.stderr == full.stderr and "nobody" in lean.stderr
    sent = home.run("send", "--to", mail_user.email, "--subject", "as json", "--body", "x", "--json")
    assert sent.returncode == 0, sent.stderr
    record = json.loads(sent.stdout)
    assert (record["state"], record["sent_folder"], record["error"], record["refused"]) == ("sent", "Sent", None, {})
    queued = home.run("send", "--to", mail_user.email, "--subject", "queued", "--body", "x", "--queue")
    assert queued.returncode == 0 and "queued  'queued'" in queued.stdout and "Queued." in queued.stdout


def test_only_a_scripts_options_take_the_lean_path() -> None:
    assert send_args(["--to", "a@b.example", "-s", "S", "--body=B", "--to=c@d.example", "--json", "--queue",
                      "--attach", "f", "--attach", "g", "-a", "acct", "--from", "me@x.example", "--no-signature",
                      "--cc", "e@f.example"]) == {
        "to": ["a@b.example", "c@d.example"], "cc": ["e@f.example"], "bcc": [], "attach": ["f", "g"],
        "subject": "S", "body": "B", "json": True, "queue": True, "account": "acct", "sender": "me@x.example",
        "no_signature": True}
    for args in (["--to", "a@b.example", "--help"], ["--to", "a@b.example", "--body-file", "-"],
                 ["--to", "a@b.example", "-s", "one", "-s", "two"], ["--to", "a@b.example", "--json", "--json"],
                 ["--to"], [], ["--body", "no recipient"], ["--to", "a@b.example", "-sS"], ["--json=yes", "--to", "x"],
                 ["--to", "a@b.example", "stray"]):
        assert send_args(args) is None, args

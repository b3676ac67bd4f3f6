"""Sending as a second identity through the sandbox's real submission server (STARTTLS + AUTH, delivering into
Dovecot over LMTP): what Dovecot received carries the identity in From, Reply-To and the envelope sender."""

from __future__ import annotations

import json
from dataclasses import replace
from email.parser import HeaderParser
from email.policy import default
from pathlib import Path
from typing import Any

import pytest

from deskmail.app import Deskmail
from deskmail.config import Paths
from deskmail.model import Account, Identity, PasswordSource, ServerSettings
from helpers import Home, add_imaps_account

pytestmark = pytest.mark.servers


def _received(sandbox: Any, user: Any, subject: str, mailbox: str = "INBOX") -> str:
    found = sandbox.doveadm("fetch", "-u", user.email, "hdr", "mailbox", mailbox, "subject", subject)
    assert found.returncode == 0, found.stderr
    return str(found.stdout)


def test_sent_from_a_second_identity_arrives_from_it(tmp_path: Path, sandbox: Any, mail_user: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DM_IDENT_PW", mail_user.password)
    app = Deskmail(Paths(tmp_path / "config", tmp_path / "data"))
    app.add_account(Account(
        "acct", mail_user.email, "Main Me",
        incoming=ServerSettings("imap", sandbox.host, sandbox.imaps_port, "ssl", mail_user.email),
        outgoing=ServerSettings("smtp", sandbox.host, sandbox.submission_port, "starttls", mail_user.email),
        password=PasswordSource("env", env="DM_IDENT_PW"), ca_file=str(sandbox.ca_file)))
    app.add_identity("acct", Identity("juergen.alias@ident.example", "Jürgen Alias", "replies@ident.example",
                                      "Jürgen\nident.example"))
    draft = app.new_draft("acct", sender="juergen.alias@ident.example")
    draft = replace(draft, to=(mail_user.email,), subject="from my alias", body="Hello there." + draft.body)
    sent = app.send(draft)
    assert sent.state == "sent", sent.error
    assert sent.entry.sender == "juergen.alias@ident.example"
    headers = _received(sandbox, mail_user, "from my alias")
    assert "Return-Path: <juergen.alias@ident.example>" in headers  # the envelope's MAIL FROM
    parsed = HeaderParser(policy=default).parsestr(headers.removeprefix("hdr:\n"))
    assert str(parsed["From"]) == "Jürgen Alias <juergen.alias@ident.example>"
    assert str(parsed["Reply-To"]) == "replies@ident.example"
    body = sandbox.doveadm("fetch", "-u", mail_user.email, "body", "mailbox", "INBOX", "subject",
                           "from my alias").stdout
    assert "Hello there.\n\n-- \nJürgen\nident.example" in body.replace("\r\n", "\n")
    copy = HeaderParser(policy=default).parsestr(_received(sandbox, mail_user, "from my alias", "Sent")[5:])
    assert str(copy["From"]) == "Jürgen Alias <juergen.alias@ident.example>"  # its copy in Sent, as sent


def test_cli_identities_and_send_from(tmp_path: Path, sandbox: Any, mail_user: Any) -> None:
    home = Home(tmp_path / "home", env={"DM_PW": mail_user.password})
    add_imaps_account(home, sandbox, mail_user, name="acct")
    added = home.run("identity", "add", "acct", "alias@ident.example", "--name", "Alias Me", "--signature",
                     "Alias sig")
    assert added.returncode == 0, added.stderr
    listed = json.loads(home.run("identity", "list", "acct", "--json").stdout)
    assert [(i["address"], i["primary"]) for i in listed] == [(mail_user.email, True), ("alias@ident.example", False)]
    assert listed[1]["signature"] == "Alias sig"
    sent = home.run("send", "--from", "alias@ident.example", "--to", mail_user.email, "--subject", "cli alias",
                    "--body", "via the alias")
    assert sent.returncode == 0, sent.stderr
    unsigned = home.run("send", "--from", "alias@ident.example", "--to", mail_user.email, "--subject",
                        "cli unsigned", "--body", "no sig", "--no-signature")
    assert unsigned.returncode == 0, unsigned.stderr
    assert "From: Alias Me <alias@ident.example>" in _received(sandbox, mail_user, "cli alias")
    bodies = {s: sandbox.doveadm("fetch", "-u", mail_user.email, "body", "mailbox", "INBOX", "subject", s).stdout
              for s in ("cli alias", "cli unsigned")}
    assert "-- \r\nAlias sig" in bodies["cli alias"] or "-- \nAlias sig" in bodies["cli alias"]
    assert "Alias sig" not in bodies["cli unsigned"]
    primary = home.run("identity", "remove", "acct", mail_user.email)
    assert primary.returncode != 0 and "cannot be removed" in primary.stderr
    unknown = home.run("send", "--from", "nobody@ident.example", "--to", mail_user.email, "--body", "x")
    assert unknown.returncode != 0 and "nobody@ident.example" in unknown.stderr
    assert home.run("identity", "remove", "acct", "alias@ident.example").returncode == 0
    edited = home.run("identity", "edit", "acct", mail_user.email, "--name", "Own Me", "--signature", "own sig")
    assert edited.returncode == 0, edited.stderr
    assert [(i["name"], i["signature"]) for i in json.loads(home.run("identity", "list", "acct", "--json").stdout)] \
        == [("Own Me", "own sig")]
    bad = home.run("identity", "add", "acct", "x@ident.example", "--name", "Evil\r\nBcc: victim@x.example")
    assert bad.returncode != 0 and "line break" in bad.stderr

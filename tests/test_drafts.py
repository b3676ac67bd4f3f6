"""Drafts through the façade: saved into the server's Drafts folder (IMAP) or local files (POP3), resumed,
replaced by a newer version, discarded; against the sandbox's Dovecot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deskmail.app import Deskmail
from deskmail.codes import Code
from deskmail.config import Paths
from deskmail.errors import NotFoundError
from deskmail.model import Account, PasswordSource, ServerSettings
from deskmail.outbox.compose import Draft

pytestmark = pytest.mark.servers


def _app(tmp_path: Path, sandbox: Any, user: Any, protocol: str, monkeypatch: pytest.MonkeyPatch) -> Deskmail:
    monkeypatch.setenv("DM_DRAFT_PW", user.password)
    port = sandbox.imaps_port if protocol == "imap" else sandbox.pop3s_port
    account = Account("acct", user.email, "Draft Writer",
                      incoming=ServerSettings(protocol, sandbox.host, port, "ssl", user.email),
                      outgoing=ServerSettings("smtp", sandbox.host, sandbox.submission_port, "starttls", user.email),
                      password=PasswordSource("env", env="DM_DRAFT_PW"), ca_file=str(sandbox.ca_file))
    app = Deskmail(Paths(tmp_path / "config", tmp_path / "data"))
    app.add_account(account)
    return app


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_save_resume_replace_discard(tmp_path: Path, sandbox: Any, mail_user: Any, monkeypatch: pytest.MonkeyPatch,
                                     protocol: str) -> None:
    app = _app(tmp_path, sandbox, mail_user, protocol, monkeypatch)
    attachment = tmp_path / "notes ü.txt"
    attachment.write_text("attached text\n")
    first = app.save_draft(Draft(to=(), subject="half written ✓", body="Dear Ann,\n\nline two\n",
                                 bcc=("secret@far.example",), attachments=(attachment,),
                                 in_reply_to="<orig@x.example>", references=("<orig@x.example>",)))
    assert [d.ref for d in app.drafts()] == [first.ref] and first.subject == "half written ✓"
    if protocol == "imap":  # on the server, flagged as a draft, where other programs see it
        fetched = sandbox.doveadm("fetch", "-u", mail_user.email, "flags hdr.subject", "mailbox", "Drafts", "all")
        assert "\\Draft" in fetched.stdout and "half written" in fetched.stdout
    else:
        assert Path(first.where).is_file() and Path(first.where).is_relative_to(tmp_path / "data" / "drafts")

    account, resumed = app.open_draft(first.ref)
    assert account == "acct"
    assert (resumed.to, resumed.bcc, resumed.subject) == ((), ("secret@far.example",), "half written ✓")
    assert resumed.body == "Dear Ann,\n\nline two\n"
    assert (resumed.in_reply_to, tuple(resumed.references)) == ("<orig@x.example>", ("<orig@x.example>",))
    assert [Path(p).read_text() for p in resumed.attachments] == ["attached text\n"]

    second = app.save_draft(Draft(to=("ann@far.example",), subject="nearly done", body="Dear Ann,\n"),
                            replaces=first.ref)
    assert [(d.ref, d.subject, d.to) for d in app.drafts()] == [(second.ref, "nearly done", "ann@far.example")]
    with pytest.raises(NotFoundError) as gone:
        app.open_draft(first.ref)
    assert gone.value.code == Code.NO_SUCH_DRAFT

    app.discard_draft(second.ref)
    assert app.drafts() == []
    if protocol == "imap":  # expunged (UIDPLUS), not just marked
        left = sandbox.doveadm("search", "-u", mail_user.email, "mailbox", "Drafts", "all")
        assert left.stdout.strip() == ""


def test_cli_lists_drafts(tmp_path: Path, sandbox: Any, mail_user: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from helpers import Home, add_imaps_account

    home = Home(tmp_path / "home", env={"DM_PW": mail_user.password})
    add_imaps_account(home, sandbox, mail_user, name="acct")
    assert "No drafts." in home.run("drafts").stdout
    monkeypatch.setenv("DESKMAIL_HOME", str(home.root))
    monkeypatch.setenv("DM_PW", mail_user.password)
    saved = Deskmail().save_draft(Draft(to=("bob@far.example",), subject="from the cli's view", body="x"))
    listed = json.loads(home.run("drafts", "--json").stdout)
    assert [(d["ref"], d["subject"], d["to"]) for d in listed] == [
        (saved.ref, "from the cli's view", "bob@far.example")]

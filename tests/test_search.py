"""Full-text search (docs/search.md) against the real Dovecot: sync indexes, queries find, changes follow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from deskmail.app import Deskmail
from deskmail.config import Paths
from deskmail.errors import QueryError
from deskmail.setup import ManualSettings

pytestmark = pytest.mark.servers

ZOE = b"""From: =?utf-8?q?Zo=C3=AB_=C3=85gren?= <zoe@example.test>
To: @ME@
Subject: Quarterly =?utf-8?q?R=C3=A9sum=C3=A9?=
Date: Thu, 15 Jan 2026 10:00:00 +0000
Message-ID: <zoe@example.test>
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

The flamingo budget is ready for review.
"""

BOB = b"""From: Bob <bob@example.test>
To: @ME@
Subject: lunch
Date: Fri, 20 Feb 2026 12:00:00 +0000
Message-ID: <bob@example.test>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="XX"

--XX
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

Let us meet at the caf=E9 near the station.
--XX
Content-Type: application/pdf
Content-Disposition: attachment; filename*=utf-8''Plan-%C3%9Cberblick.pdf
Content-Transfer-Encoding: base64

JVBERi0xLjQK
--XX--
"""

CAROL = b"""From: Carol <carol@example.test>
To: @ME@
Cc: Dave <dave@example.test>
Subject: Re: sighting
Date: Tue, 10 Mar 2026 09:00:00 +0000
Message-ID: <carol@example.test>
Content-Type: text/html; charset=utf-8

<html><body><p>A pink <b>FLAMINGO</b> was seen &amp; photographed.</p></body></html>
"""


def _found(app: Deskmail, query: str) -> list[str]:
    return [hit.message.message_id for hit in app.search(query)]


@pytest.fixture
def app(tmp_path: Path, sandbox: Any, mail_user: Any, monkeypatch: pytest.MonkeyPatch) -> Deskmail:
    monkeypatch.setenv("DM_SEARCH_PW", mail_user.password)
    app = Deskmail(Paths(tmp_path / "config", tmp_path / "data"))
    app.add_account(app.build_account(ManualSettings(
        email=mail_user.email, name="acct", in_host=sandbox.host, in_port=sandbox.imaps_port, in_security="ssl",
        smtp_host=sandbox.host, smtp_port=sandbox.submission_port, smtp_security="starttls",
        ca_file=str(sandbox.ca_file), password_env="DM_SEARCH_PW")))
    me = mail_user.email.encode()
    sandbox.fill_maildir(mail_user.email, [ZOE.replace(b"@ME@", me)], flags="S")
    sandbox.fill_maildir(mail_user.email, [m.replace(b"@ME@", me) for m in (BOB, CAROL)])
    run = app.sync()
    assert not run.failures
    return app


def test_search_finds_by_words_fields_dates_and_flags(app: Deskmail) -> None:
    zoe, bob, carol = "<zoe@example.test>", "<bob@example.test>", "<carol@example.test>"
    assert _found(app, "flamingo") == [carol, zoe]  # newest first; HTML-only body indexed
    assert _found(app, "FLAMINGO") == _found(app, "Flamingo") == [carol, zoe]
    assert _found(app, '"meet at the cafe"') == [bob]  # phrase; é folded (Latin-1 body)
    assert _found(app, '"the cafe meet"') == []
    assert _found(app, "résumé") == _found(app, "RESUME") == [zoe]  # encoded-word subject, accents folded
    assert _found(app, "from:zoe") == _found(app, 'from:"zoe agren"') == [zoe]
    assert _found(app, "from:carol flamingo") == [carol]
    assert _found(app, "subject:lunch") == [bob] and _found(app, "subject:flamingo") == []
    assert _found(app, "cc:dave") == _found(app, "to:dave") == [carol]
    assert _found(app, "date:2026-02..2026-03") == [carol, bob]
    assert _found(app, "before:2026-02") == [zoe] and _found(app, "after:2026-03-10") == [carol]
    assert _found(app, "date:2026-01-15") == [zoe]
    assert _found(app, "has:attachment") == [bob] and _found(app, "filename:uberblick") == [bob]
    assert _found(app, "is:unread") == [carol, bob] and _found(app, "is:read") == [zoe]
    assert _found(app, "flamingo -from:carol") == [zoe] == _found(app, "flamingo AND NOT carol")
    assert _found(app, "(lunch OR resume) NOT has:attachment") == [zoe]
    assert _found(app, "lunch OR is:read") == [bob, zoe]
    assert _found(app, "folder:inbox account:acct flamingo") == [carol, zoe]
    assert _found(app, "folder:Trash flamingo") == [] and _found(app, "flam*") == [carol, zoe]

    hit = app.search("pink flamingo")[0]
    marked = [hit.snippet[a:b].lower() for a, b in hit.highlights]
    assert marked == ["pink", "flamingo"] and "<b>" not in hit.snippet and "photographed" in hit.snippet
    assert app.search("is:unread")[0].snippet == ""  # filters only: no text matched
    with pytest.raises(QueryError) as bad:
        app.search("flamingo (from:carol")
    assert bad.value.code == "bad_query" and bad.value.position == 9


def test_results_follow_delete_move_expunge_and_flags(app: Deskmail, sandbox: Any, mail_user: Any) -> None:
    zoe, bob, carol = "<zoe@example.test>", "<bob@example.test>", "<carol@example.test>"
    ids = {hit.message.message_id: hit.message.id for hit in app.search("from:example")}
    assert app.delete([ids[zoe]], expunge=True) == 1
    assert _found(app, "flamingo") == [carol]  # gone at once, before any sync
    folders = {f.name for f in app.folders()}
    target = "Archive" if "Archive" in folders else "Trash"
    assert app.move([ids[carol]], target) == 1
    assert not app.sync().failures
    assert [(h.message.folder, h.message.message_id) for h in app.search("flamingo")] == [(target, carol)]
    assert _found(app, "folder:inbox flamingo") == []

    assert app.mark_read([ids[bob]]) == 1
    assert _found(app, "is:unread lunch") == [] and _found(app, "is:read lunch") == [bob]
    assert _found(app, '"meet at the cafe"') == [bob]  # a flag change keeps the words

    sandbox.doveadm("expunge", "-u", mail_user.email, "mailbox", "INBOX", "all", check=True)
    assert not app.sync().failures
    assert _found(app, "lunch") == [] and _found(app, "has:attachment") == []


def test_search_through_the_cli(sandbox: Any, mail_user: Any, tmp_path: Path) -> None:
    from helpers import Home, add_imaps_account

    home = Home(tmp_path / "home", env={"DM_PW": mail_user.password})
    add_imaps_account(home, sandbox, mail_user)
    sandbox.fill_maildir(mail_user.email, [CAROL.replace(b"@ME@", mail_user.email.encode())])
    assert home.run("sync").returncode == 0
    hits = json.loads(home.run("search", "flamingo", "--json").stdout)
    assert [h["message_id"] for h in hits] == ["<carol@example.test>"] and hits[0]["highlights"]
    shown = home.run("search", "pink", "--limit", "1")
    assert shown.returncode == 0 and "sighting" in shown.stdout
    bad = home.run("search", "from:")
    assert bad.returncode == 2 and "position" in bad.stderr and "Traceback" not in bad.stderr


def test_pop3_sync_indexes_too(tmp_path: Path, sandbox: Any, mail_user: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DM_SEARCH_PW", mail_user.password)
    app = Deskmail(Paths(tmp_path / "config", tmp_path / "data"))
    app.add_account(app.build_account(ManualSettings(
        email=mail_user.email, name="pop", protocol="pop3", in_host=sandbox.host, in_port=sandbox.pop3s_port,
        in_security="ssl", smtp_host=sandbox.host, smtp_port=sandbox.submission_port, smtp_security="starttls",
        ca_file=str(sandbox.ca_file), password_env="DM_SEARCH_PW")))
    sandbox.fill_maildir(mail_user.email, [BOB.replace(b"@ME@", mail_user.email.encode())])
    assert not app.sync().failures
    assert _found(app, "account:pop cafe has:attachment filename:uberblick") == ["<bob@example.test>"]

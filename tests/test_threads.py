"""Threads (docs/threads.md) against the real Dovecot: a reply kept in Sent joins its conversation;
the threaded listing pages by keyset; a sync of many messages is indexed by the second process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from deskmail.app import Deskmail
from deskmail.config import Paths
from deskmail.setup import ManualSettings

pytestmark = pytest.mark.servers


def _msg(mid: str, subject: str, date: str, extra: str = "", sender: str = "Ann <ann@example.test>") -> bytes:
    return (f"From: {sender}\nTo: me@example.test\nSubject: {subject}\nDate: {date}\nMessage-ID: <{mid}>\n"
            f"{extra}Content-Type: text/plain\n\nBody of {mid}.\n").encode()


ROOT = _msg("root@x", "Budget", "Mon, 05 Jan 2026 10:00:00 +0000")
# their reply: References only
THEIRS = _msg("theirs@x", "Re: Budget", "Wed, 07 Jan 2026 10:00:00 +0000",
              "References: <root@x> <mine@x>\n", sender="Bob <bob@example.test>")
# my reply, kept in Sent: In-Reply-To only
MINE = _msg("mine@x", "Re: Budget", "Tue, 06 Jan 2026 10:00:00 +0000", "In-Reply-To: <root@x>\n",
            sender="Me <me@example.test>")
# no References, no In-Reply-To, a reply's subject: joins by subject
BY_SUBJECT = _msg("subj@x", "RE:  budget", "Thu, 08 Jan 2026 10:00:00 +0000", sender="Cy <cy@example.test>")
OTHER = _msg("other@x", "Budget", "Fri, 09 Jan 2026 10:00:00 +0000")  # same subject, not a reply: apart
LONE = _msg("lone@x", "Lunch", "Sat, 10 Jan 2026 10:00:00 +0000")


@pytest.fixture
def app(tmp_path: Path, sandbox: Any, mail_user: Any, monkeypatch: pytest.MonkeyPatch) -> Deskmail:
    monkeypatch.setenv("DM_THREAD_PW", mail_user.password)
    app = Deskmail(Paths(tmp_path / "config", tmp_path / "data"))
    app.add_account(app.build_account(ManualSettings(
        email=mail_user.email, name="acct", in_host=sandbox.host, in_port=sandbox.imaps_port, in_security="ssl",
        smtp_host=sandbox.host, smtp_port=sandbox.submission_port, smtp_security="starttls",
        ca_file=str(sandbox.ca_file), password_env="DM_THREAD_PW")))
    # The replies arrive before the message they answer: the thread is joined whatever the order.
    sandbox.fill_maildir(mail_user.email, [THEIRS, BY_SUBJECT, ROOT, OTHER, LONE])
    sandbox.fill_maildir(mail_user.email, [MINE], "Sent", flags="S")
    assert not app.sync().failures
    return app


def _ids(app: Deskmail) -> dict[str, int]:
    return {m.message_id: m.id for m in app.list_messages(limit=100)}


def test_a_reply_in_sent_joins_the_thread(app: Deskmail) -> None:
    ids = _ids(app)
    conversation = app.thread(ids["<root@x>"])
    assert [(m.message_id, m.folder) for m in conversation] == [
        ("<root@x>", "INBOX"), ("<mine@x>", "Sent"), ("<theirs@x>", "INBOX"), ("<subj@x>", "INBOX")]
    assert [m.id for m in app.thread(ids["<mine@x>"])] == [m.id for m in conversation]  # from any member
    assert [m.message_id for m in app.thread(ids["<other@x>"])] == ["<other@x>"]
    assert [m.message_id for m in app.thread(ids["<lone@x>"])] == ["<lone@x>"]


def test_threaded_listing_pages_by_keyset(app: Deskmail) -> None:
    threads = app.list_threads(folder="INBOX")
    assert [(t.latest.message_id, t.messages, t.unread) for t in threads] == [
        ("<lone@x>", 1, 1), ("<other@x>", 1, 1), ("<subj@x>", 4, 3)]  # Sent's copy is read
    assert app.count_threads(folder="INBOX") == 3
    assert app.count_threads(folder="Sent") == 1
    first = app.list_threads(folder="INBOX", limit=2)
    rest = app.list_threads(folder="INBOX", limit=2, after=first[-1])
    assert first + rest == threads
    # Across folders: the Sent reply is its thread's newest message in Sent.
    assert [(t.latest.message_id, t.messages) for t in app.list_threads(folder="Sent")] == [("<mine@x>", 4)]


def test_moving_and_deleting_keep_threads(app: Deskmail) -> None:
    ids = _ids(app)
    folders = {f.name for f in app.folders()}
    target = "Archive" if "Archive" in folders else "Trash"
    assert app.move([ids["<theirs@x>"]], target) == 1
    assert not app.sync().failures
    assert [m.folder for m in app.thread(ids["<root@x>"]) if m.message_id == "<theirs@x>"] == [target]
    assert app.delete([ids["<subj@x>"]], expunge=True) == 1
    assert [m.message_id for m in app.thread(ids["<root@x>"])] == ["<root@x>", "<mine@x>", "<theirs@x>"]


def test_thread_commands(sandbox: Any, mail_user: Any, tmp_path: Path) -> None:
    from helpers import Home, add_imaps_account

    home = Home(tmp_path / "home", env={"DM_PW": mail_user.password})
    add_imaps_account(home, sandbox, mail_user)
    sandbox.fill_maildir(mail_user.email, [ROOT, THEIRS, LONE])
    assert home.run("sync").returncode == 0
    listed = json.loads(home.run("list", "--threads", "--json").stdout)
    assert [(t["latest"]["message_id"], t["messages"]) for t in listed] == [("<lone@x>", 1), ("<theirs@x>", 2)]
    shown = json.loads(home.run("thread", str(listed[1]["latest"]["id"]), "--json").stdout)
    assert [m["message_id"] for m in shown] == ["<root@x>", "<theirs@x>"]
    table = home.run("thread", str(listed[1]["latest"]["id"]))
    assert table.returncode == 0 and "Budget" in table.stdout
    missing = home.run("thread", "99999")
    assert missing.returncode != 0 and "Traceback" not in missing.stderr


def test_a_sync_is_indexed_by_the_second_process(tmp_path: Path, sandbox: Any, mail_user: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from deskmail.store import Store

    monkeypatch.setenv("DM_THREAD_PW", mail_user.password)
    app = Deskmail(Paths(tmp_path / "config", tmp_path / "data"))
    app.add_account(app.build_account(ManualSettings(
        email=mail_user.email, name="acct", in_host=sandbox.host, in_port=sandbox.imaps_port, in_security="ssl",
        smtp_host=sandbox.host, smtp_port=sandbox.submission_port, smtp_security="starttls",
        ca_file=str(sandbox.ca_file), password_env="DM_THREAD_PW")))
    count = 350  # several of the indexer's transactions (search.CHUNK)
    sandbox.fill_maildir(mail_user.email, [
        _msg(f"m{i}@x", f"Re: topic {i % 7}", "Mon, 05 Jan 2026 10:00:00 +0000",
             f"In-Reply-To: <m{i - 7}@x>\n" if i >= 7 else "") + f"zebra{i}\n".encode()
        for i in range(count)])
    started = []
    import deskmail.store.indexer as indexer

    real = indexer.Follower.__init__

    def spy(self: indexer.Follower, data_dir: Path) -> None:
        started.append(data_dir)
        real(self, data_dir)

    monkeypatch.setattr(indexer.Follower, "__init__", spy)
    assert not app.sync().failures
    assert started == [tmp_path / "data"]  # (a first sync: the process starts with it)
    # The sync does not wait for the indexer; a search asked at once still sees every message (it
    # catches up first), the last one stored included.
    assert app.search(f"zebra{count - 1}")[0].message.subject == f"Re: topic {(count - 1) % 7}"
    assert len(app.search("zebra123")) == 1
    assert app.count_threads(folder="INBOX") == 7  # seven chains of replies
    children = list(indexer._DETACHED)
    assert len(children) <= 1
    for child in children:
        assert child.wait(60) == 0  # it finished the rest on its own, and exited
    with Store.open_reader(tmp_path / "data") as reader:
        assert reader.unindexed() == 0

    # A few new messages go to the indexer too: the sync does not wait for their full text either.
    sandbox.fill_maildir(mail_user.email, [_msg("late@x", "Late news", "Tue, 06 Jan 2026 10:00:00 +0000")
                                           + b"quokka\n"])
    assert not app.sync().failures
    assert started == [tmp_path / "data"] * 2
    for child in list(indexer._DETACHED):
        assert child.wait(60) == 0
    with Store.open_reader(tmp_path / "data") as reader:
        assert reader.unindexed() == 0  # the child indexed it (the sync catches up only when none started)
    assert [hit.message.subject for hit in app.search("quokka")] == ["Late news"]

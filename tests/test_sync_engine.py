"""The sync engine as a library against the real Dovecot: flags agreed only after the server accepted
them, keywords and PERMANENTFLAGS, the dry run, typed events, and cancellation at random moments."""

from __future__ import annotations

import collections
import json
import random
import re
import socket
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from helpers import Home, RewritingProxy
from test_sync import acct, db, local, maildir_files, maildir_files_pop, msg, pop_account, server, sync

pytestmark = pytest.mark.servers
__all__ = ["acct"]  # the fixture, imported for this module's tests


def add_plain_account(home: Home, sandbox: Any, user: Any, port: int) -> None:
    """An IMAP account without TLS (loopback only) so that a proxy can read and cut the commands."""
    proc = home.run("account", "add", "--email", user.email, "--name", "a", "--imap-host", "127.0.0.1",
                    "--imap-port", str(port), "--imap-security", "none", "--allow-plaintext-password",
                    "--smtp-host", sandbox.host, "--smtp-port", str(sandbox.submission_port),
                    "--ca-file", str(sandbox.ca_file), "--password-env", "DM_PW", "--no-verify")
    assert proc.returncode == 0, proc.stderr


class StoreCutter(RewritingProxy):
    """Drops the connection (both ways) when the client sends a flag-setting UID STORE."""

    def __init__(self, upstream: tuple[str, int], **kw: Any) -> None:
        self.cut = 0
        super().__init__(upstream, **kw)

    def _pump_up(self, client: socket.socket, server: socket.socket) -> None:
        try:
            while data := client.recv(65536):
                self.client_bytes += data
                if re.search(rb"UID STORE [\d:,]+ (\(UNCHANGEDSINCE \d+\) )?[+-]?FLAGS", data):
                    self.cut += 1
                    for sock in (client, server):
                        sock.shutdown(socket.SHUT_RDWR)
                        sock.close()
                    return
                server.sendall(data)
        except OSError:
            pass
        finally:
            server.close()


def in_process(home: Home, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> Any:
    """``sync_accounts`` for every account of ``home``, in this process."""
    from deskmail import config
    from deskmail.sync.runner import sync_accounts

    monkeypatch.setenv("DESKMAIL_HOME", str(home.root))
    for key, value in home.env.items():
        monkeypatch.setenv(key, value)
    return sync_accounts(list(config.load_accounts().values()), config.paths().data_dir, **kw)


def row_id(home: Home, message_id: str) -> int:
    return int(db(home).execute("SELECT id FROM messages WHERE message_id=?", (message_id,)).fetchone()[0])


def test_flag_change_cut_at_the_store_is_sent_by_the_next_sync(sandbox: Any, mail_user: Any, tmp_path: Path) -> None:
    """A STORE the connection lost is not recorded as agreed: the next sync sends it (the bug: it was
    recorded before the STORE, and never sent again)."""
    email = mail_user.email
    proxy = StoreCutter((sandbox.host, sandbox.imap_port))
    home = Home(tmp_path / "home", env={"DM_PW": mail_user.password})
    try:
        add_plain_account(home, sandbox, mail_user, proxy.port)
        sandbox.fill_maildir(email, [msg(i, email) for i in range(1, 4)])
        sync(home)
        assert home.run("flag", str(row_id(home, "<m2-2000@example.test>")), "--set", "flagged").returncode == 0
        proc = home.run("sync", "--json")
        assert proxy.cut == 1
        assert proc.returncode != 0 or "not synced" in proc.stdout, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr
        assert server(sandbox, email)["<m2-2000@example.test>"] == ""  # the STORE never reached the server
        synced = db(home).execute("SELECT flags, synced_flags FROM messages WHERE message_id=?",
                                  ("<m2-2000@example.test>",)).fetchone()
        assert synced == ("\\Flagged", ""), synced  # set here, not agreed
    finally:
        proxy.close()
    cfg = home.root / "config" / "accounts.toml"
    cfg.write_text(cfg.read_text().replace(f"port = {proxy.port}", f"port = {sandbox.imap_port}"))
    report = sync(home)
    assert sum(f["flags_pushed"] for f in report["a"]["folders"]) == 1
    assert server(sandbox, email)["<m2-2000@example.test>"] == "\\Flagged"
    assert local(home)["<m2-2000@example.test>"][0] == "\\Flagged"
    report = sync(home)
    assert all(f["flags_pushed"] == f["flags_pulled"] == 0 for f in report["a"]["folders"])


def test_keywords_reach_the_server_unless_it_does_not_keep_them(sandbox: Any, mail_user: Any,
                                                                 tmp_path: Path) -> None:
    email = mail_user.email
    # First through a proxy that takes \* out of PERMANENTFLAGS: the server then keeps no keywords.
    proxy = RewritingProxy((sandbox.host, sandbox.imap_port),
                           rewrite=(re.compile(rb"(\[PERMANENTFLAGS \([^)]*?) ?\\\*\)"), rb"\1)"))
    home = Home(tmp_path / "home", env={"DM_PW": mail_user.password})
    try:
        add_plain_account(home, sandbox, mail_user, proxy.port)
        sandbox.fill_maildir(email, [msg(i, email) for i in range(1, 3)])
        sync(home)
        rid = row_id(home, "<m1-2000@example.test>")
        # The folder's PERMANENTFLAGS are known now: setting the keyword here is refused, with the flags
        # that work, and nothing changes.
        refused = home.run("flag", str(rid), "--set", "$Label1", "--set", "seen")
        assert refused.returncode == 2 and "does not keep the flag $Label1" in refused.stderr, refused.stderr
        assert "seen, flagged, answered, draft" in refused.stderr
        assert db(home).execute("SELECT flags FROM messages WHERE id=?", (rid,)).fetchone()[0] == ""
        # A keyword set while the server's answer was not known yet (another program, an older index) is
        # held back by the sync itself, with a note.
        con = db(home)
        con.execute("UPDATE messages SET flags='$Label1' WHERE id=?", (rid,))
        con.execute("UPDATE folders SET local_mtime=0")
        con.commit()
        assert home.run("flag", str(rid), "--set", "seen").returncode == 0
        report = sync(home)
        notes = [n for f in report["a"]["folders"] for n in f["notes"]]
        assert any("$Label1" in n and "does not keep" in n for n in notes), notes
        assert server(sandbox, email)["<m1-2000@example.test>"] == "\\Seen"  # the rest was sent
        flags, synced = db(home).execute("SELECT flags, synced_flags FROM messages WHERE id=?", (rid,)).fetchone()
        assert (flags, synced) == ("$Label1 \\Seen", "\\Seen")  # kept here, not recorded as agreed
    finally:
        proxy.close()
    # Straight to Dovecot (PERMANENTFLAGS has \*): the keyword is sent.
    cfg = home.root / "config" / "accounts.toml"
    cfg.write_text(cfg.read_text().replace(f"port = {proxy.port}", f"port = {sandbox.imap_port}"))
    db(home).execute("UPDATE folders SET local_mtime=0").connection.commit()  # look at the files again
    report = sync(home)
    assert server(sandbox, email)["<m1-2000@example.test>"] == "$Label1 \\Seen"
    assert not [n for f in report["a"]["folders"] for n in f["notes"]]
    assert db(home).execute("SELECT synced_flags FROM messages WHERE id=?", (rid,)).fetchone()[0] == "$Label1 \\Seen"


def snapshot(home: Home) -> tuple[object, ...]:
    con = sqlite3.connect(home.root / "data" / "index.sqlite3")
    tables = tuple(con.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in ("messages", "folders", "ops"))
    journal = con.execute("SELECT COUNT(*) FROM journal").fetchone()
    files = sorted(str(p.relative_to(home.root)) for p in (home.root / "data" / "mail").rglob("*"))
    return tables, journal, files


def test_dry_run_plans_and_changes_nothing(sandbox: Any, acct: Home) -> None:
    email = acct.user.email  # type: ignore[attr-defined]
    sandbox.fill_maildir(email, [msg(i, email) for i in range(1, 4)])
    sync(acct)
    assert acct.run("flag", str(row_id(acct, "<m2-2000@example.test>")), "--set", "answered").returncode == 0
    sandbox.fill_maildir(email, [msg(9, email)])
    sandbox.doveadm("flags", "add", "-u", email, "\\Flagged", "mailbox", "INBOX", "uid", "1")
    before, server_before = snapshot(acct), server(sandbox, email)

    proc = acct.run("sync", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    plans = json.loads(proc.stdout)["a"]["plans"]["INBOX"]
    kinds = [p["action"] for p in plans]
    assert {"PullFlags", "PushFlags", "Download", "Checkpoint"} <= set(kinds), plans
    assert any("\\Answered" in p["description"] for p in plans if p["action"] == "PushFlags")
    text = acct.run("sync", "--dry-run")
    assert text.returncode == 0 and "set flags \\Answered on the server for UID 2" in text.stdout, text.stdout
    assert snapshot(acct) == before
    assert server(sandbox, email) == server_before

    report = sync(acct)
    inbox = next(f for f in report["a"]["folders"] if f["folder"] == "INBOX")
    assert (inbox["new"], inbox["flags_pushed"], inbox["flags_pulled"]) == (1, 1, 1)
    assert server(sandbox, email)["<m2-2000@example.test>"] == "\\Answered"
    assert local(acct)["<m1-2000@example.test>"][0] == "\\Flagged"
    again = acct.run("sync", "--dry-run", "--json")
    assert "plans" not in json.loads(again.stdout)["a"]  # nothing left to do


def test_events_of_a_sync(sandbox: Any, acct: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    from deskmail import events

    email = acct.user.email  # type: ignore[attr-defined]
    sandbox.fill_maildir(email, [msg(i, email) for i in range(1, 31)])
    monkeypatch.setattr("deskmail.sync.imap_sync.BATCH_MESSAGES", 10)
    seen: list[events.Event] = []
    run = in_process(acct, monkeypatch, listener=seen.append)
    assert not run.failures
    inbox = [e for e in seen if getattr(e, "folder", "") == "INBOX"]
    assert isinstance(inbox[0], events.FolderStarted) and isinstance(inbox[-1], events.FolderFinished)
    downloads = [e for e in inbox if isinstance(e, events.MessagesDownloaded)]
    assert [e.done for e in downloads] == [10, 20, 30] and downloads[-1].bytes > 30 * 2000
    assert inbox[-1].new == 30
    assert seen[-1] == events.AccountFinished("a")
    assert sum(isinstance(e, events.FolderStarted) for e in seen) == len(run.results["a"])

    rid = row_id(acct, "<m3-2000@example.test>")
    assert acct.run("flag", str(rid), "--set", "seen").returncode == 0
    assert acct.run("delete", "--expunge", str(row_id(acct, "<m4-2000@example.test>"))).returncode == 0
    sandbox.doveadm("expunge", "-u", email, "mailbox", "INBOX", "uid", "5")
    seen.clear()
    in_process(acct, monkeypatch, listener=seen.append)
    assert events.FlagsPushed("a", "INBOX", 1) in seen
    assert events.Deleted("a", "INBOX", 1, here=False) in seen
    assert events.Deleted("a", "INBOX", 1, here=True) in seen


def test_pop3_dry_run_events_and_cancel(sandbox: Any, mail_user: Any, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from deskmail import events
    from deskmail.errors import Cancelled

    home = pop_account(sandbox, mail_user, tmp_path)
    sandbox.fill_maildir(mail_user.email, [msg(i, mail_user.email) for i in range(1, 8)])
    proc = home.run("sync", "--dry-run")
    assert proc.returncode == 0 and "download 7 new messages" in proc.stdout, proc.stdout + proc.stderr
    cur = home.root / "data" / "mail" / "p" / "cur"
    assert not cur.is_dir() or not list(cur.iterdir())
    assert db(home).execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
    assert db(home).execute("SELECT COUNT(*) FROM pop_seen").fetchone()[0] == 0
    monkeypatch.setattr("deskmail.sync.pop3_sync.BATCH_MESSAGES", 3)
    token = events.CancelToken()
    seen: list[events.Event] = []

    def listener(event: events.Event) -> None:
        seen.append(event)
        if isinstance(event, events.MessagesDownloaded):
            token.cancel()  # after the first published batch

    run = in_process(home, monkeypatch, listener=listener, cancel=token)
    assert isinstance(run.failures["p"], Cancelled)
    assert seen[-1] == events.AccountFinished("p", run.failures["p"])
    assert len(maildir_files_pop(home)) == 3  # the first batch, durable and indexed
    seen.clear()
    run = in_process(home, monkeypatch, listener=seen.append)
    assert not run.failures and len(maildir_files_pop(home)) == 7 and len(server(sandbox, mail_user.email)) == 7
    assert [type(e).__name__ for e in seen] == ["FolderStarted", "MessagesDownloaded", "MessagesDownloaded",
                                                "FolderFinished", "AccountFinished"]
    assert [(e.done, e.total) for e in seen if isinstance(e, events.MessagesDownloaded)] == [(3, 4), (4, 4)]


def server_ids(sandbox: Any, email: str, folder: str) -> list[str]:
    proc = sandbox.doveadm("-f", "tab", "fetch", "-u", email, "hdr.message-id", "mailbox", folder)
    return sorted(line.strip() for line in proc.stdout.splitlines()[1:] if line.strip())


def assert_consistent(home: Home) -> None:
    """What must hold whenever a sync stopped: no temporary files, every index row has its file and every
    file its row (except the message saved here and not yet uploaded), no duplicate in a folder."""
    con = db(home)
    root = home.root / "data" / "mail" / "a"
    for fid, path in con.execute("SELECT id, path FROM folders").fetchall():
        md = root / path
        if not md.exists():
            continue
        assert not list((md / "tmp").iterdir()), f"temporary files left in {md}"
        names = {p.name for p in (md / "cur").iterdir()}
        rows = con.execute("SELECT filename, message_id FROM messages WHERE folder_id=?", (fid,)).fetchall()
        indexed = {r[0] for r in rows}
        assert indexed <= names, f"rows without files in {path}: {indexed - names}"
        assert {n for n in names - indexed if not n.startswith("17000000")} == set(), path  # saved here
        counts = collections.Counter(r[1] for r in rows)
        assert max(counts.values(), default=1) == 1, f"duplicates in {path}: {counts.most_common(2)}"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cancel_at_random_moments_then_a_full_sync(sandbox: Any, acct: Home, monkeypatch: pytest.MonkeyPatch,
                                                   seed: int) -> None:
    """Work on both sides before every run (new mail, flags here and there, a move, a message saved
    here); each run is cancelled after its k-th event or by a timer thread. Whenever it stops, the
    store is consistent; a last normal sync leaves the exact mailbox on both sides."""
    from deskmail import events
    from deskmail.errors import Cancelled

    rnd = random.Random(seed)
    email = acct.user.email  # type: ignore[attr-defined]
    sandbox.doveadm("mailbox", "create", "-u", email, "Work")
    sandbox.fill_maildir(email, [msg(i, email) for i in range(1, 151)])
    sandbox.fill_maildir(email, [msg(i, email) for i in range(1000, 1100)], folder="Work")
    sandbox.fill_maildir(email, [msg(i, email) for i in range(2000, 2040)], folder="Archive")
    sync(acct)
    monkeypatch.setattr("deskmail.sync.imap_sync.BATCH_MESSAGES", 10)
    inbox_ids = {f"<m{i}-2000@example.test>" for i in range(1, 151)}
    moved: set[str] = set()
    cur = acct.root / "data" / "mail" / "a" / "cur"

    def more_work(round_: int) -> None:
        """New mail on the server, flags changed there and here, a move and a message saved here."""
        base = 3000 + 100 * round_
        sandbox.fill_maildir(email, [msg(i, email) for i in range(base, base + 25)])
        sandbox.fill_maildir(email, [msg(i, email) for i in range(base + 50, base + 60)], folder="Work")
        inbox_ids.update(f"<m{i}-2000@example.test>" for i in range(base, base + 25))
        for mid in rnd.sample(sorted(local(acct, "Work")), 3):
            sandbox.doveadm("flags", "add", "-u", email, "\\Answered", "mailbox", "Work", "header", "Message-ID", mid)
        here = [mid for mid in sorted(local(acct)) if mid not in moved]
        for mid in rnd.sample(here, 3):
            assert acct.run("flag", str(row_id(acct, mid)), "--set", "flagged").returncode == 0
        mid = rnd.choice([m for m in here if local(acct)[m][0] == ""])
        assert acct.run("move", str(row_id(acct, mid)), "--to", "Archive").returncode == 0
        moved.add(mid)
        saved = msg(9000 + round_, email, subject="saved here")
        (cur / f"17000000{round_:02}.R1.mutt:2,S").write_bytes(saved)
        inbox_ids.add(f"<m{9000 + round_}-2000@example.test>")

    cancelled: collections.Counter[str] = collections.Counter()
    for round_ in range(8):
        more_work(round_)
        token = events.CancelToken()
        timer = None
        if round_ % 4 == 3:  # from another thread, at a random time
            timer = threading.Timer(rnd.uniform(0.0, 0.6), token.cancel)
            timer.start()
            listener = None
        else:
            k, count = rnd.randint(1, 30), [0]

            def listener(event: events.Event, token: events.CancelToken = token, count: list[int] = count,
                         k: int = k) -> None:
                count[0] += 1
                if count[0] == k:
                    cancelled[type(event).__name__] += 1
                    token.cancel()

        run = in_process(acct, monkeypatch, listener=listener, cancel=token)
        if timer is not None:
            timer.join()
            cancelled["timer"] += "a" in run.failures
        assert not run.failures or isinstance(run.failures["a"], Cancelled), run.failures
        assert_consistent(acct)
    assert sum(v for key, v in cancelled.items() if key != "timer") >= 4, cancelled

    run = in_process(acct, monkeypatch)
    assert not run.failures, run.failures
    assert_consistent(acct)
    for folder in ("INBOX", "Work", "Archive"):
        theirs = server_ids(sandbox, email, folder)
        assert len(theirs) == len(set(theirs)), f"duplicates on the server in {folder}"
        assert sorted(local(acct, folder)) == theirs, folder
        assert {m: f for m, (f, _n) in local(acct, folder).items()} == server(sandbox, email, folder), folder
    assert set(server_ids(sandbox, email, "INBOX")) == inbox_ids - moved
    assert moved <= set(server_ids(sandbox, email, "Archive"))
    assert len(server_ids(sandbox, email, "Work")) == 100 + 8 * 10
    assert not db(acct).execute("SELECT * FROM ops").fetchall()
    assert not [n for n in maildir_files(acct) if ",U=" not in n]  # every saved message adopted

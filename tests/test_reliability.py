"""Issue 12's data-loss paths, each closed with a fault injected for real (docs/reliability.md lists them).

No test hook in the program: the clock is shifted for the deskmail process only (faketime), the
other client is doveadm, and faults on the wire come from a small proxy in this file that reads
the client's commands and acts at exactly the moment named (runs doveadm before forwarding a
command, cuts or garbles the server's answer in one folder).
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import Home
from test_sync import db, local, maildir_files, maildir_files_pop, msg, pop_account, server, sync

pytestmark = pytest.mark.servers

FAKETIME = shutil.which("faketime")


# ---- 1. POP3 after the local copy is gone -------------------------------------------------------


def test_pop3_never_deletes_from_the_server_once_the_local_copy_is_gone(sandbox: Any, mail_user: Any,
                                                                         tmp_path: Path) -> None:
    """delete_after_days = 1, the account's mail folder removed, the next sync two days later (the
    clock of the deskmail process moved by faketime): it stops with store_missing, the server keeps
    every message; after a redownload the copies are back and only then do the DELEs go out."""
    assert FAKETIME, "faketime is missing (scripts/bootstrap test installs it)"
    email = mail_user.email
    home = pop_account(sandbox, mail_user, tmp_path)
    cfg = home.root / "config" / "accounts.toml"
    cfg.write_text(cfg.read_text() + "\n[accounts.p.options]\ndelete_after_days = 1\n")
    sandbox.fill_maildir(email, [msg(i, email) for i in range(1, 6)])
    assert sync(home)["p"]["folders"][0]["new"] == 5
    later = ["faketime", "-f", "+2d"]

    # The store replaced by a symlink to an empty directory (an unmounted disk looks the same).
    mail = home.root / "data" / "mail" / "p"
    mail.rename(tmp_path / "away")
    (tmp_path / "empty").mkdir()
    mail.symlink_to(tmp_path / "empty")
    proc = _run_at(home, later, "sync", "--json")
    assert proc.returncode == 10 and '"code": "store_missing"' in proc.stdout, proc.stdout + proc.stderr
    assert len(server(sandbox, email)) == 5 and not list((tmp_path / "empty").iterdir())
    mail.unlink()
    shutil.rmtree(tmp_path / "away")  # and now gone for good

    proc = _run_at(home, later, "sync", "--json")
    assert proc.returncode == 10, proc.stdout + proc.stderr
    assert '"code": "store_missing"' in proc.stdout, proc.stdout
    assert len(server(sandbox, email)) == 5, "no DELE may follow from a missing store"
    assert not (home.root / "data" / "mail" / "p" / "cur").exists(), "the missing store is not recreated"

    # Files gone one by one (the folder is still there): those are not deleted on the server either.
    proc = _run_at(home, later, "sync", "--json", "--redownload")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(maildir_files_pop(home)) == 5 and len(server(sandbox, email)) == 5  # downloaded again today
    cur = home.root / "data" / "mail" / "p" / "cur"
    gone = sorted(cur.iterdir())[:2]
    for path in gone:
        path.unlink()
    proc = _run_at(home, ["faketime", "-f", "+4d"], "sync", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"deleted": 3' in proc.stdout and "left on the server" in proc.stdout, proc.stdout
    assert len(server(sandbox, email)) == 2, "only the three messages whose copy is here were deleted there"


def _run_at(home: Home, clock: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    """The deskmail CLI with its clock shifted (faketime preloads into that process only)."""
    import os
    import sys

    env = {**os.environ, "DESKMAIL_HOME": str(home.root), "COLUMNS": "200", **home.env}
    return subprocess.run([*clock, sys.executable, "-m", "deskmail", *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


# ---- a proxy that acts at one exact point of the conversation -----------------------------------


class WireProxy:
    """A plain TCP relay to an IMAP server (the account uses no TLS on loopback, so commands are readable).

    ``before(pattern, action)``: when the client sends a command line matching ``pattern``, run
    ``action(line)`` (another client's change, e.g. doveadm) *before* the command goes on to the
    server: deterministic, the server sees the other client's change first.
    ``fault_in(pattern, kind)``: once the client sent a command matching ``pattern`` (a SELECT of
    one folder), the first ``BODY[] {n}`` literal of the answer to its next FETCH of bodies is cut
    ("cut": ``after`` bytes (1,000) into the literal, then both ways closed) or garbled ("garble": its size
    announced 40 bytes short, so the rest of the body lands where the parser expects the response to
    go on). Only once.
    """

    LITERAL = re.compile(rb"BODY\[\] \{(\d+)\}\r\n")

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.connections = 0
        self.commands: list[bytes] = []
        self._before: list[tuple[re.Pattern[bytes], Callable[[bytes], None]]] = []
        self._fault: tuple[re.Pattern[bytes], str] | None = None
        self._cut_after = 1000
        self._selected = threading.Event()
        self._armed = threading.Event()
        self.faulted = threading.Event()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def before(self, pattern: bytes, action: Callable[[bytes], None]) -> None:
        self._before.append((re.compile(pattern), action))

    def fault_in(self, pattern: bytes, kind: str, *, after: int = 1000) -> None:
        self._fault = (re.compile(pattern), kind)
        self._cut_after = after

    def close(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._up, args=(client, server), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket) -> None:
        buf = b""
        try:
            while data := client.recv(65536):
                buf += data
                out = b""
                while b"\n" in buf:
                    line, _, buf = buf.partition(b"\n")
                    line += b"\n"
                    self.commands.append(line)
                    for pattern, action in self._before:
                        if pattern.search(line):
                            if out:
                                server.sendall(out)
                                out = b""
                            action(line)
                    if self._fault is not None and not self.faulted.is_set():
                        if self._fault[0].search(line):
                            self._selected.set()
                        elif self._selected.is_set() and re.search(rb"FETCH .*BODY\.PEEK\[\]", line):
                            self._armed.set()  # before the command goes on: the answer is what breaks
                    out += line
                if buf and not out:  # a literal's bytes (APPEND) carry no line end: pass them on
                    out, buf = buf, b""
                server.sendall(out)
        except OSError:
            pass
        finally:
            _hang_up(server)

    def _down(self, server: socket.socket, client: socket.socket) -> None:
        pending = b""
        try:
            while data := server.recv(65536):
                if not self._armed.is_set() or self._fault is None:
                    client.sendall(data)
                    continue
                pending += data
                m = self.LITERAL.search(pending)
                if m is None:
                    client.sendall(pending[:-64])  # keep a tail: the marker may straddle two reads
                    pending = pending[-64:]
                    continue
                self._armed.clear()
                self.faulted.set()
                if self._fault[1] == "cut":
                    while len(pending) < m.end() + self._cut_after:  # the literal's first bytes, exactly
                        more = server.recv(65536)
                        if not more:
                            break
                        pending += more
                    client.sendall(pending[:m.end() + self._cut_after])
                    _hang_up(client)
                    _hang_up(server)
                    return
                size = int(m.group(1))
                client.sendall(pending[:m.start()] + b"BODY[] {%d}\r\n" % (size - 40) + pending[m.end():])
                pending = b""
        except OSError:
            pass
        finally:
            _hang_up(client)


def _hang_up(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def plain_account(sandbox: Any, user: Any, tmp_path: Path, port: int) -> Home:
    """An IMAP account without TLS on loopback (Dovecot counts it secured), through a proxy on ``port``."""
    home = Home(tmp_path / "home", env={"DM_PW": user.password})
    home.user = user  # type: ignore[attr-defined]
    proc = home.run("account", "add", "--email", user.email, "--name", "a", "--imap-host", "127.0.0.1",
                    "--imap-port", str(port), "--imap-security", "none", "--allow-plaintext-password",
                    "--smtp-host", sandbox.host, "--smtp-port", str(sandbox.submission_port),
                    "--ca-file", str(sandbox.ca_file), "--password-env", "DM_PW", "--no-verify")
    assert proc.returncode == 0, proc.stderr
    return home


def _through(home: Home, port: int) -> None:
    cfg = home.root / "config" / "accounts.toml"
    cfg.write_text(re.sub(r"port = \d+", f"port = {port}", cfg.read_text(), count=1))


# ---- 4. An error inside a response derails the next folder ---------------------------------------


@pytest.mark.parametrize("kind", ["cut", "garble"])
def test_a_folder_whose_fetch_breaks_midway_fails_alone_and_the_next_folders_reconnect(
        sandbox: Any, mail_user: Any, tmp_path: Path, kind: str) -> None:
    """The server's answer to one folder's FETCH is cut (or its literal garbled) part-way: that folder is
    reported (with its code), no partial file is kept, the connection is dropped and the folders after
    it are synced on a new one; the next sync completes the failed folder."""
    email = mail_user.email
    proxy = WireProxy((sandbox.host, sandbox.imap_port))
    try:
        home = plain_account(sandbox, mail_user, tmp_path, proxy.port)
        for folder, first in (("INBOX", 1), ("Lists", 10), ("Work", 20)):
            sandbox.fill_maildir(email, [msg(i, email, size=5000) for i in range(first, first + 3)], folder)
        proxy.fault_in(rb'SELECT "?Lists"?', kind)
        proc = home.run("sync", "--json")
        assert proxy.faulted.is_set()
        assert "Traceback" not in proc.stderr
        assert proc.returncode == 0, proc.stdout + proc.stderr  # the account went on
        import json

        folders = {f["folder"]: f for f in json.loads(proc.stdout)["a"]["folders"]}
        assert folders["Lists"]["new"] == 0 and "not synced" in folders["Lists"]["notes"][0]
        assert folders["Lists"]["codes"] == (["network"] if kind == "cut" else ["protocol_error"])
        assert folders["INBOX"]["new"] == 3 and folders["Work"]["new"] == 3, folders
        assert proxy.connections == 2, "one new connection, made before the folder after the broken one"
        assert set(local(home, "Work")) == {f"<m{i}-5000@example.test>" for i in range(20, 23)}
        lists = home.root / "data" / "mail" / "a" / ".Lists"
        assert not list((lists / "cur").iterdir()), "no partial message is kept"
        report = sync(home)
        assert {f["folder"]: f["new"] for f in report["a"]["folders"]}["Lists"] == 3
        assert len(maildir_files(home, ".Lists")) == 3 and len(server(sandbox, email, "Lists")) == 3
    finally:
        proxy.close()


# ---- a server without UIDPLUS, MOVE, CONDSTORE and QRESYNC ---------------------------------------

LEGACY_DROPS = {"UIDPLUS", "MOVE", "CONDSTORE", "QRESYNC"}


@pytest.fixture(scope="module")
def legacy() -> Iterator[Any]:
    """A second Dovecot whose IMAP capability lacks UIDPLUS, MOVE, CONDSTORE and QRESYNC."""
    yield from _variant(LEGACY_DROPS)


@pytest.fixture(scope="module")
def no_uidplus() -> Iterator[Any]:
    """A second Dovecot without UIDPLUS only (it still offers MOVE)."""
    yield from _variant({"UIDPLUS"})


def _variant(drops: set[str]) -> Iterator[Any]:
    """A sandbox whose ``imap_capability`` (its etc/local.conf) is what the same Dovecot offers, less ``drops``."""
    import imaplib
    import tempfile

    from deskmail.sandbox import start_sandbox

    root = Path(tempfile.mkdtemp(prefix="deskmail-variant-"))
    sb = start_sandbox(root)
    try:
        probe = sb.create_user("caps")
        with imaplib.IMAP4_SSL(sb.host, sb.imaps_port, ssl_context=sb.client_ssl_context()) as c:
            c.login(probe.email, probe.password)
            caps = c.capability()[1][0].decode().split()
        kept = [c for c in caps if c.upper() not in drops]
        (root / "etc" / "local.conf").write_text("protocol imap {\n  imap_capability = " + " ".join(kept) + "\n}\n")
        sb.stop()
        sb = start_sandbox(root)
        with imaplib.IMAP4_SSL(sb.host, sb.imaps_port, ssl_context=sb.client_ssl_context()) as c:
            c.login(probe.email, probe.password)
            now = set(c.capability()[1][0].decode().upper().split())
        assert not now & drops and "IMAP4REV1" in now and "IDLE" in now, now
        yield sb
    finally:
        sb.stop()
        shutil.rmtree(root, ignore_errors=True)


def _row(home: Home, message_id: str) -> str:
    return str(db(home).execute("SELECT id FROM messages WHERE message_id=?", (message_id,)).fetchone()[0])


def _mid(i: int) -> str:
    return f"<m{i}-2000@example.test>"


def _flags_elsewhere(sb: Any, email: str, changes: list[tuple[str, str, int]]) -> Callable[[bytes], None]:
    """An action for the proxy: another client's flag changes (doveadm), once."""
    done = threading.Event()

    def act(_line: bytes) -> None:
        if done.is_set():
            return
        done.set()
        for verb, flag, i in changes:
            sb.doveadm("flags", verb, "-u", email, flag, "mailbox", "INBOX", "header", "Message-ID", _mid(i),
                       check=True)
    return act


# ---- 2. Flags pushed with a guard --------------------------------------------------------------


@pytest.mark.parametrize("server_kind", ["condstore", "legacy"])
def test_flags_another_client_changes_between_gathering_and_store_are_kept(
        request: pytest.FixtureRequest, tmp_path: Path, server_kind: str) -> None:
    """Here: m2 gets \\Seen, m4 loses \\Seen. Another client, exactly between deskmail's gathering and its
    UID STORE (the proxy runs doveadm when it sees the STORE, before passing it on): m2 gets \\Flagged,
    m4 gets \\Answered. Neither side's change is lost, on the server or here, and a second sync agrees.
    With CONDSTORE the STORE is guarded (UNCHANGEDSINCE, re-merged on MODIFIED); without, only deltas."""
    sb = request.getfixturevalue("sandbox" if server_kind == "condstore" else "legacy")
    user = sb.create_user(hint=f"flags-{server_kind}")
    email = user.email
    proxy = WireProxy((sb.host, sb.imap_port))
    try:
        home = plain_account(sb, user, tmp_path, proxy.port)
        sb.fill_maildir(email, [msg(i, email) for i in range(1, 4)])
        sb.fill_maildir(email, [msg(i, email) for i in range(4, 6)], flags="S")
        sync(home)
        assert home.run("flag", _row(home, _mid(2)), "--set", "seen").returncode == 0
        assert home.run("flag", _row(home, _mid(4)), "--unset", "seen").returncode == 0
        proxy.before(rb"UID STORE", _flags_elsewhere(sb, email, [("add", "\\Flagged", 2), ("add", "\\Answered", 4)]))
        report = sync(home)
        stores = [c for c in proxy.commands if b"UID STORE" in c]
        if server_kind == "condstore":
            assert all(b"UNCHANGEDSINCE" in c for c in stores), stores
        else:
            assert stores and all(re.search(rb"[+-]FLAGS", c) for c in stores), stores
        want = {_mid(1): "", _mid(2): "\\Flagged \\Seen", _mid(3): "", _mid(4): "\\Answered", _mid(5): "\\Seen"}
        assert server(sb, email) == want, "the other client's flags survived our STORE"
        assert sum(f["flags_pushed"] for f in report["a"]["folders"]) == 2
        if server_kind == "legacy":
            # Without CONDSTORE the other client's change is not seen during this sync; the next one
            # pulls it (three-way: it is theirs, not a conflict), and sends nothing.
            again = sync(home)
            assert sum(f["flags_pulled"] for f in again["a"]["folders"]) == 2, again
        assert {m: f for m, (f, _name) in local(home).items()} == want
        synced = dict(db(home).execute("SELECT message_id, synced_flags FROM messages").fetchall())
        assert synced == want, "agreed only on what the server holds"
        again = sync(home)
        assert all(f["flags_pushed"] == f["flags_pulled"] == 0 for f in again["a"]["folders"]), again
        assert server(sb, email) == want
    finally:
        proxy.close()


# ---- 3. Expunge without UIDPLUS ----------------------------------------------------------------


def test_without_uidplus_another_clients_deleted_message_survives_our_delete_and_move(
        legacy: Any, tmp_path: Path) -> None:
    """The server offers neither UIDPLUS nor MOVE, and another client has marked m1 \\Deleted (not yet
    expunged). deskmail's delete (for good) of m2 and move of m3 must not send a plain EXPUNGE that would
    take m1 too: they wait, reported with a code, until the other client's \\Deleted is gone; then
    they go through, and m1's fate stayed the other client's."""
    user = legacy.create_user(hint="no-uidplus")
    email = user.email
    proxy = WireProxy((legacy.host, legacy.imap_port))
    try:
        home = plain_account(legacy, user, tmp_path, proxy.port)
        legacy.fill_maildir(email, [msg(i, email) for i in range(1, 6)])
        sync(home)
        legacy.doveadm("flags", "add", "-u", email, "\\Deleted", "mailbox", "INBOX", "header", "Message-ID",
                       _mid(1), check=True)
        assert home.run("delete", "--expunge", _row(home, _mid(2))).returncode == 0
        assert home.run("move", _row(home, _mid(3)), "--to", "Archive").returncode == 0
        report = sync(home)
        inbox = next(f for f in report["a"]["folders"] if f["folder"] == "INBOX")
        assert inbox["codes"] == ["delete_held", "delete_held"], inbox
        assert any("marked deleted by another program" in n for n in inbox["notes"]), inbox["notes"]
        assert not any(re.match(rb"D\d+ (UID )?EXPUNGE", c) for c in proxy.commands), "no EXPUNGE of any kind"
        there = server(legacy, email)
        assert {_mid(1), _mid(2), _mid(3)} <= set(there) and there[_mid(1)] == "\\Deleted", there
        assert server(legacy, email, "Archive") == {}, "no copy made that could not be completed"
        assert db(home).execute("SELECT COUNT(*) FROM ops").fetchone()[0] == 2, "both wait in the journal"

        report = sync(home)  # still marked: still waiting, nothing re-downloaded meanwhile
        assert _mid(2) not in local(home) and db(home).execute("SELECT COUNT(*) FROM ops").fetchone()[0] == 2

        legacy.doveadm("expunge", "-u", email, "mailbox", "INBOX", "deleted", check=True)  # the other client's doing
        report = sync(home)
        inbox = next(f for f in report["a"]["folders"] if f["folder"] == "INBOX")
        assert inbox["deleted"] == 1 and inbox["moved"] == 1 and inbox["codes"] == [], inbox
        assert set(server(legacy, email)) == {_mid(4), _mid(5)}
        assert set(server(legacy, email, "Archive")) == {_mid(3)}
        assert set(local(home)) == {_mid(4), _mid(5)} and set(local(home, "Archive")) == {_mid(3)}
        assert db(home).execute("SELECT COUNT(*) FROM ops").fetchone()[0] == 0
        assert any(re.match(rb"D\d+ EXPUNGE", c) for c in proxy.commands), "a plain EXPUNGE once it is safe"
    finally:
        proxy.close()


# ---- 6. flag, move and delete while a sync runs -------------------------------------------------


def test_flag_move_and_delete_during_a_large_sync_all_reach_the_server(sandbox: Any, mail_user: Any,
                                                                       tmp_path: Path) -> None:
    """The façade's set_flags / move / delete in a loop (this process) while a sync of thousands of
    messages runs (another process): first the download of 4,000 messages, then a sync that pulls a
    flag another client set on all of them and downloads 1,000 more. Then a normal sync: every change
    made here is on the server, nothing is lost or doubled, and here equals there; one more sync
    changes nothing."""
    import random
    import sqlite3

    from deskmail.app import Deskmail
    from deskmail.config import Paths
    from helpers import add_imaps_account

    email = mail_user.email
    home = Home(tmp_path / "home", env={"DM_PW": mail_user.password})
    add_imaps_account(home, sandbox, mail_user)
    app = Deskmail(Paths(home.root / "config", home.root / "data"))
    rng = random.Random(12)
    total = 4000
    sandbox.fill_maildir(email, [msg(i, email, size=1500) for i in range(total)])
    flags: dict[str, set[str]] = {}  # message-id -> flags set here
    moved: set[str] = set()
    deleted: set[str] = set()

    def index() -> dict[int, str]:
        path = home.root / "data" / "index.sqlite3"
        if not path.exists():
            return {}
        conn = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True, timeout=30)
        try:
            return dict(conn.execute("SELECT m.id, m.message_id FROM messages m JOIN folders f ON f.id = m.folder_id"
                                     " WHERE f.name = 'INBOX' AND f.account = 'a'").fetchall())
        except sqlite3.OperationalError:
            return {}  # the first sync is creating the index
        finally:
            conn.close()

    def during(proc: subprocess.Popen[bytes]) -> int:
        """Flag, move and delete INBOX messages until the sync ends; how many changes landed during it."""
        done = 0
        while proc.poll() is None:
            touched = flags.keys() | moved | deleted
            free = [(rid, m) for rid, m in index().items() if m not in touched]
            if len(free) < 10:
                continue
            for rid, m in rng.sample(free, 10):
                kind = rng.random()
                if kind < 0.6:
                    add = rng.sample(["seen", "flagged", "$Label1"], rng.randint(1, 2))
                    app.set_flags([rid], add=add)
                    flags[m] = {"\\Seen" if a == "seen" else "\\Flagged" if a == "flagged" else a for a in add}
                elif kind < 0.8:
                    app.move([rid], "Archive")
                    moved.add(m)
                else:
                    app.delete([rid])  # to Trash
                    deleted.add(m)
                done += proc.poll() is None
        err = proc.stderr.read().decode() if proc.stderr is not None else ""
        assert proc.returncode == 0, f"the sync itself must not fail: {err}"
        return done

    landed = during(_popen(home, "sync"))
    assert landed >= 30, f"only {landed} changes landed while the first sync ran"
    # Another client flags every INBOX message, and 1,000 more arrive: the next sync pulls and downloads.
    sandbox.doveadm("flags", "add", "-u", email, "\\Answered", "mailbox", "INBOX", "all", check=True)
    sandbox.fill_maildir(email, [msg(i, email, size=1500) for i in range(total, total + 1000)])
    landed = during(_popen(home, "sync"))
    assert landed >= 30, f"only {landed} changes landed while the second sync ran"

    sync(home)
    inbox, archive, trash = (server(sandbox, email, f) for f in ("INBOX", "Archive", "Trash"))
    everything = {f"<m{i}-1500@example.test>" for i in range(total + 1000)}
    assert set(archive) == moved and set(trash) == deleted, "every move and delete reached the server"
    assert set(inbox) == everything - moved - deleted, "nothing lost, nothing doubled"
    for m, wanted in flags.items():
        there = next(f for f in (inbox, archive, trash) if m in f)[m]
        assert wanted <= set(there.split()), f"{m}: {wanted} set here, server has {there!r}"
    for folder, there in (("INBOX", inbox), ("Archive", archive), ("Trash", trash)):
        here = local(home, folder)
        assert {m: f for m, (f, _name) in here.items()} == there, f"{folder}: here differs from the server"
        rows = db(home).execute("SELECT COUNT(*) FROM messages m JOIN folders f ON f.id = m.folder_id"
                                " WHERE f.name = ?", (folder,)).fetchone()[0]
        path = "" if folder == "INBOX" else "." + folder
        assert rows == len(there) == len(maildir_files(home, path)), f"{folder}: one file and one row each"
    assert db(home).execute("SELECT COUNT(*) FROM ops").fetchone()[0] == 0
    again = sync(home)
    assert all(f["flags_pushed"] == f["flags_pulled"] == f["new"] == 0 for f in again["a"]["folders"]), again


def _popen(home: Home, *args: str) -> subprocess.Popen[bytes]:
    import os
    import sys

    env = {**os.environ, "DESKMAIL_HOME": str(home.root), **home.env}
    return subprocess.Popen([sys.executable, "-m", "deskmail", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def test_without_uidplus_but_with_move_a_delete_for_good_goes_to_trash_instead(no_uidplus: Any,
                                                                               tmp_path: Path) -> None:
    """No UIDPLUS, but MOVE: with another client's \\Deleted message in the folder, deskmail's delete for
    good of m2 becomes a UID MOVE to Trash (code deleted_to_trash), and its move of m3 is a UID MOVE as
    always; no EXPUNGE is sent and the other client's m1 stays, still marked."""
    sb = no_uidplus
    user = sb.create_user(hint="to-trash")
    email = user.email
    proxy = WireProxy((sb.host, sb.imap_port))
    try:
        home = plain_account(sb, user, tmp_path, proxy.port)
        sb.fill_maildir(email, [msg(i, email) for i in range(1, 5)])
        sync(home)
        sb.doveadm("flags", "add", "-u", email, "\\Deleted", "mailbox", "INBOX", "header", "Message-ID", _mid(1),
                   check=True)
        assert home.run("delete", "--expunge", _row(home, _mid(2))).returncode == 0
        assert home.run("move", _row(home, _mid(3)), "--to", "Archive").returncode == 0
        report = sync(home)
        inbox = next(f for f in report["a"]["folders"] if f["folder"] == "INBOX")
        assert inbox["codes"] == ["deleted_to_trash"] and inbox["deleted"] == 1 and inbox["moved"] == 1, inbox
        assert not any(re.match(rb"D\d+ (UID )?EXPUNGE", c) for c in proxy.commands), "no EXPUNGE of any kind"
        assert server(sb, email) == {_mid(1): "\\Deleted", _mid(4): ""}
        assert set(server(sb, email, "Trash")) == {_mid(2)} and set(server(sb, email, "Archive")) == {_mid(3)}
        assert set(local(home, "Trash")) == {_mid(2)} and set(local(home, "Archive")) == {_mid(3)}
        assert db(home).execute("SELECT COUNT(*) FROM ops").fetchone()[0] == 0
    finally:
        proxy.close()


def test_a_flag_set_here_then_a_move_reaches_the_server_in_the_target(sandbox: Any, mail_user: Any,
                                                                      tmp_path: Path) -> None:
    """Flagged, then moved, before any sync: the move carries the file over (COPYUID), and the flag set
    here is not taken as agreed with the server's copy (it was never sent): the target's sync sends it."""
    from helpers import add_imaps_account

    email = mail_user.email
    home = Home(tmp_path / "home", env={"DM_PW": mail_user.password})
    add_imaps_account(home, sandbox, mail_user)
    sandbox.fill_maildir(email, [msg(i, email) for i in range(1, 4)])
    sync(home)
    assert home.run("flag", _row(home, _mid(2)), "--set", "flagged").returncode == 0
    assert home.run("move", _row(home, _mid(2)), "--to", "Archive").returncode == 0
    report = sync(home)
    assert {f["folder"]: f["new"] for f in report["a"]["folders"]}["Archive"] == 0, "carried over, not downloaded"
    assert server(sandbox, email, "Archive") == {_mid(2): "\\Flagged"}
    assert {m: f for m, (f, _n) in local(home, "Archive").items()} == {_mid(2): "\\Flagged"}
    again = sync(home)
    assert all(f["flags_pushed"] == f["flags_pulled"] == 0 for f in again["a"]["folders"]), again

"""Rows of the fault matrix (docs/reliability.md) injected at an exact point of a real sync.

Another client is doveadm on the same Dovecot; the moment is chosen by :class:`WireProxy` (plain IMAP
on loopback, so that the proxy reads the commands): its action runs *before* the client's command
reaches the server, so the server sees the other client's change first, every time.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import Home
from test_reliability import WireProxy, plain_account
from test_sync import local, msg, server

pytestmark = pytest.mark.servers


def _mid(i: int, size: int = 2000) -> str:
    return f"<m{i}-{size}@example.test>"


def _sync(home: Home) -> dict[str, dict[str, Any]]:
    proc = home.run("sync", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {f["folder"]: f for f in json.loads(proc.stdout)["a"]["folders"]}


def _files(home: Home, folder: str = "INBOX") -> list[Path]:
    base = home.root / "data" / "mail" / "a" / ("" if folder == "INBOX" else f".{folder}")
    return [p for sub in ("cur", "new") if (base / sub).is_dir() for p in (base / sub).iterdir()]


def _same_everywhere(home: Home, sandbox: Any, email: str, folders: tuple[str, ...]) -> None:
    """Here equals there, folder by folder (Message-ID and flags), one file and one row per message,
    and no message in two folders (I1, I2 across folders)."""
    seen: dict[str, str] = {}
    for folder in folders:
        mine = {mid: flags for mid, (flags, _name) in local(home, folder).items()}
        assert mine == server(sandbox, email, folder), folder
        assert len(_files(home, folder)) == len(mine), folder
        for mid in mine:
            assert mid not in seen, f"{mid} in {seen.get(mid)} and {folder}"
            seen[mid] = folder


# ---- F-08: another client expunges between the listing and the FETCH ------------------------------


def test_expunged_between_listing_and_fetch_is_gone_not_a_failure(sandbox: Any, mail_user: Any,
                                                                  tmp_path: Path) -> None:
    """Messages 10-20 are expunged by doveadm exactly when deskmail sends its FETCH of bodies (after it
    listed them): the FETCH simply has no answer for them; the folder is not failed, nothing of theirs
    is kept, and a later expunge of messages already here removes them only once the server's listing
    no longer has them."""
    email = mail_user.email
    proxy = WireProxy((sandbox.host, sandbox.imap_port))
    try:
        home = plain_account(sandbox, mail_user, tmp_path, proxy.port)
        sandbox.fill_maildir(email, [msg(i, email) for i in range(1, 31)])
        done: list[bytes] = []

        def expunge(range_: str) -> Any:
            def act(line: bytes) -> None:
                if not done:
                    done.append(line)
                    sandbox.doveadm("expunge", "-u", email, "mailbox", "INBOX", "uid", range_, check=True)
            return act

        proxy.before(rb"UID FETCH \S+ \(.*BODY\.PEEK\[\]", expunge("10:20"))
        inbox = _sync(home)["INBOX"]
        assert done, "the FETCH was never seen"
        assert inbox["codes"] == [] and not any("not synced" in n for n in inbox["notes"]), inbox
        # Dovecot answers for the expunged ones in this session with an empty BODY[] and ends with
        # OK [EXPUNGEISSUED]: those empty bodies are not messages (they were stored, before this test).
        assert inbox["new"] == 19, inbox
        assert set(local(home)) == {_mid(i) for i in range(1, 31) if not 10 <= i <= 20}
        assert all(p.stat().st_size > 2000 for p in _files(home))
        _same_everywhere(home, sandbox, email, ("INBOX",))

        # Here already: 1-5 expunged there while deskmail fetches the bodies of five new ones.
        sandbox.fill_maildir(email, [msg(i, email) for i in range(31, 36)])
        done.clear()
        proxy._before.clear()
        proxy.before(rb"UID FETCH \S+ \(.*BODY\.PEEK\[\]", expunge("1:5"))
        inbox = _sync(home)["INBOX"]
        assert done and inbox["codes"] == [] and inbox["new"] == 5, inbox
        after = _sync(home)["INBOX"]
        assert after["new"] == 0, after
        _same_everywhere(home, sandbox, email, ("INBOX",))
        assert set(local(home)) == {_mid(i) for i in range(6, 36) if not 10 <= i <= 20}
    finally:
        proxy.close()


# ---- F-03: the connection cut inside a BODY[] literal ---------------------------------------------


def test_cut_3000_bytes_into_a_body_literal_keeps_nothing_partial_then_fetches_it_whole(
        sandbox: Any, mail_user: Any, tmp_path: Path) -> None:
    """The proxy passes INBOX's FETCH answer up to the `{N}\r\n` of its first `BODY[]` literal plus
    exactly 3,000 bytes, then closes both ways: no short message is stored (no file, no row, nothing left
    in tmp/), the folder is reported as a network failure (no traceback), the next folder is synced over
    a new connection, and the next sync fetches every message whole (bytes equal to those delivered)."""
    email = mail_user.email
    proxy = WireProxy((sandbox.host, sandbox.imap_port))
    try:
        home = plain_account(sandbox, mail_user, tmp_path, proxy.port)
        sent = {_mid(i, 20_000): msg(i, email, size=20_000) for i in range(1, 6)}
        sandbox.fill_maildir(email, list(sent.values()))
        sandbox.fill_maildir(email, [msg(9, email)], "Lists")
        proxy.fault_in(rb'SELECT "?INBOX"?', "cut", after=3000)
        proc = home.run("sync", "--json")
        assert proxy.faulted.is_set() and "Traceback" not in proc.stderr
        assert proc.returncode == 0, proc.stdout + proc.stderr
        folders = {f["folder"]: f for f in json.loads(proc.stdout)["a"]["folders"]}
        assert folders["INBOX"]["codes"] == ["network"] and folders["INBOX"]["new"] == 0, folders["INBOX"]
        assert folders["Lists"]["new"] == 1 and proxy.connections == 2, folders
        assert _files(home) == [] and local(home) == {}, "nothing of the cut message is kept"
        assert not list((home.root / "data" / "mail" / "a" / "tmp").iterdir())

        again = _sync(home)
        assert again["INBOX"]["new"] == 5 and again["INBOX"]["codes"] == [], again["INBOX"]
        stored = {}
        for path in _files(home):
            data = path.read_bytes()
            mid = re.search(rb"^Message-ID: (<[^>]+>)", data, re.M)
            assert mid is not None
            stored[mid.group(1).decode()] = data
        assert stored == sent, "every message whole, byte for byte"
        assert not list((home.root / "data" / "mail" / "a" / "tmp").iterdir())
    finally:
        proxy.close()


# ---- F-10: another client moves messages ---------------------------------------------------------


def _bodies_fetched(proxy: WireProxy, since: int) -> list[bytes]:
    """The client's FETCH commands of whole bodies after the ``since``-th command (a partial
    ``BODY.PEEK[]<0.n>`` is not one)."""
    return [c for c in proxy.commands[since:] if re.search(rb"FETCH .*BODY\.PEEK\[\](?!<)", c)]


@pytest.mark.parametrize("when", ["between", "during", "during_next", "into_inbox"])
def test_messages_another_client_moves_end_up_once_in_the_target(sandbox: Any, mail_user: Any, tmp_path: Path,
                                                                 when: str) -> None:
    """`doveadm move` of INBOX's 40 messages to Archive (which has 20): between two syncs, while the first
    sync fetches INBOX's bodies, or while the next sync fetches a new message into INBOX; or
    of Archive's 20 into INBOX, the folder synced first. Afterwards each message is here once, in the
    target (never in both folders, never lost, its bytes those delivered), nothing is left parked, and a
    further sync changes nothing. Once the messages were here, none is downloaded again: the copy here
    is taken (parked when the source's sync sees them gone before the target's sync, linked from the
    source's file when the target's sync comes first), and no FETCH of a whole body goes out."""
    email = mail_user.email
    proxy = WireProxy((sandbox.host, sandbox.imap_port))
    try:
        home = plain_account(sandbox, mail_user, tmp_path, proxy.port)
        sent = {_mid(i): msg(i, email) for i in range(1, 61)}
        sandbox.fill_maildir(email, [sent[_mid(i)] for i in range(1, 41)])
        sandbox.fill_maildir(email, [sent[_mid(i)] for i in range(41, 61)], "Archive")
        if when == "into_inbox":
            source, target, moved_ids = "Archive", "INBOX", {_mid(i) for i in range(41, 61)}
        else:
            source, target, moved_ids = "INBOX", "Archive", {_mid(i) for i in range(1, 41)}
        moved: list[bytes] = []

        def move(line: bytes) -> None:
            if not moved:
                moved.append(line)
                sandbox.doveadm("move", "-u", email, target, "mailbox", source, "uid", "1:40", check=True)

        if when == "during":
            proxy.before(rb"UID FETCH \S+ \(.*BODY\.PEEK\[\]", move)
            _sync(home)
            assert moved
        else:
            _sync(home)
            assert len(local(home)) == 40 and len(local(home, "Archive")) == 20
            if when == "during_next":
                # While this sync fetches a new message into INBOX, after INBOX's listing and the LIST
                # that said Archive had not changed: the next sync sees the move.
                sandbox.fill_maildir(email, [msg(61, email)])
                proxy.before(rb"UID FETCH \S+ \(.*BODY\.PEEK\[\]", move)
                during = _sync(home)
                assert moved and during["INBOX"]["new"] == 1, during
            else:
                move(b"")
        since = len(proxy.commands)
        result = _sync(home)
        again = _sync(home)
        assert all(f["new"] == 0 and f["removed"] == 0 for f in again.values()), again
        _same_everywhere(home, sandbox, email, ("INBOX", "Archive"))
        assert set(local(home, target)) == set(sent)
        assert set(local(home, source)) == ({_mid(61)} if when == "during_next" else set())
        for folder in ("INBOX", "Archive"):  # each file holds the bytes delivered
            for path in _files(home, folder):
                data = path.read_bytes()
                mid = re.search(rb"^Message-ID: (<[^>]+>)", data, re.M)
                assert mid and data == {**sent, _mid(61): msg(61, email)}[mid.group(1).decode()], path
        assert result["INBOX"]["codes"] == [] and result["Archive"]["codes"] == []
        assert not (home.root / "data" / "mail" / "a" / "deskmail-parked").exists(), "nothing left parked"
        if when != "during":
            assert result[source]["removed"] == len(moved_ids), result
            assert result[target]["new"] == len(moved_ids) == result[target]["reused"], result
            assert result[target]["bytes"] == 0 and _bodies_fetched(proxy, since) == [], result
    finally:
        proxy.close()


# ---- F-29: the process killed in the middle of its login ---------------------------------------------


def test_killed_during_login_leaves_no_secret_anywhere(sandbox: Any, mail_user: Any, tmp_path: Path) -> None:
    """SIGKILL the moment deskmail sends its LOGIN (this account logs in with it over plain IMAP on
    loopback, where Dovecot allows it): no file it leaves, nor anything it printed, holds the password
    or its AUTH forms; then a normal sync works."""
    email, password = mail_user.email, mail_user.password
    proxy = WireProxy((sandbox.host, sandbox.imap_port))
    try:
        home = plain_account(sandbox, mail_user, tmp_path, proxy.port)
        sandbox.fill_maildir(email, [msg(i, email) for i in range(1, 4)])
        assert _sync(home)["INBOX"]["new"] == 3  # an index, a journal, mail files: places a secret could go
        sandbox.fill_maildir(email, [msg(i, email) for i in range(4, 6)])
        env = {**os.environ, "DESKMAIL_HOME": str(home.root), **home.env}
        child = subprocess.Popen([sys.executable, "-m", "deskmail", "--debug", "sync"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
        killed: list[bytes] = []

        def kill(line: bytes) -> None:
            if not killed:
                killed.append(line)
                os.kill(child.pid, signal.SIGKILL)

        proxy.before(rb"(?i)^\S+ (LOGIN|AUTHENTICATE)\b", kill)
        out, err = child.communicate(timeout=60)
        assert killed and child.returncode == -signal.SIGKILL
        forms = [password.encode(), base64.b64encode(password.encode()),
                 base64.b64encode(f"\0{email}\0{password}".encode()),
                 base64.b64encode(f"{email}\0{email}\0{password}".encode())]
        blob = home.all_bytes() + out + err
        blob += b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and home.root not in p.parents)
        for form in forms:
            assert form not in blob, f"a form of the password was left behind ({form[:6]!r}...)"
        assert (b"LOGIN" in err and b"****" in err) or b"LOGIN" not in err  # the --debug log shows it masked
        assert _sync(home)["INBOX"]["new"] == 2
    finally:
        proxy.close()


# ---- F-05 (b): the server kicks the session ---------------------------------------------------------


def test_session_kicked_in_the_middle_of_a_download(sandbox: Any, mail_user: Any, tmp_path: Path) -> None:
    """`doveadm kick` the moment deskmail asks for Lists' bodies: that folder fails with a network
    error, the folders after it are synced over a new connection, the next run completes, no duplicates."""
    email = mail_user.email
    proxy = WireProxy((sandbox.host, sandbox.imap_port))
    try:
        home = plain_account(sandbox, mail_user, tmp_path, proxy.port)
        for folder, first in (("INBOX", 1), ("Lists", 10), ("Work", 20)):
            sandbox.fill_maildir(email, [msg(i, email, size=50_000) for i in range(first, first + 4)], folder)
        kicked: list[bytes] = []
        selected: list[bytes] = []
        proxy.before(rb'SELECT "?Lists"?', selected.append)

        def kick(line: bytes) -> None:
            if selected and not kicked:
                kicked.append(line)
                sandbox.doveadm("kick", email, check=True)

        proxy.before(rb"UID FETCH \S+ \(.*BODY\.PEEK\[\]", kick)
        proc = home.run("sync", "--json")
        assert kicked and proc.returncode == 0, proc.stdout + proc.stderr
        folders = {f["folder"]: f for f in json.loads(proc.stdout)["a"]["folders"]}
        assert folders["Lists"]["new"] == 0 and folders["Lists"]["codes"] in (["network"], ["protocol_error"])
        assert folders["INBOX"]["new"] == 4 and folders["Work"]["new"] == 4, folders
        assert _sync(home)["Lists"]["new"] == 4
        _same_everywhere(home, sandbox, email, ("INBOX", "Lists", "Work"))
    finally:
        proxy.close()


# ---- F-30: hostile folder names in a real server's LIST -------------------------------------------


HOSTILE = {
    "Evil1": "../../../../../tmp/deskmail-pwned",
    "Evil2": "a/../../../b",
    "Evil3": "..",
    "Evil4": "cur",
    "Evil5": ".hidden/./tmp",
}


def _quoted(name: str) -> bytes:
    return b'"' + name.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


class NamingProxy(WireProxy):
    """Dovecot's folders Evil1..5, shown to deskmail under hostile names (and mapped back)."""

    def _up(self, client: Any, server: Any) -> None:
        class Mapped:
            def __init__(self, sock: Any) -> None:
                self.sock = sock

            def sendall(self, data: bytes) -> None:
                for real, shown in HOSTILE.items():
                    data = data.replace(_quoted(shown), _quoted(real))
                self.sock.sendall(data)

            def __getattr__(self, name: str) -> Any:
                return getattr(self.sock, name)

        super()._up(client, Mapped(server))

    def _down(self, server: Any, client: Any) -> None:
        class Mapped:
            def __init__(self, sock: Any) -> None:
                self.sock = sock

            def sendall(self, data: bytes) -> None:
                for real, shown in HOSTILE.items():
                    data = re.sub(rb'"?' + real.encode() + rb'"?(?=[\r \)])', _quoted(shown).replace(b"\\", b"\\\\"),
                                  data)
                self.sock.sendall(data)

            def __getattr__(self, name: str) -> Any:
                return getattr(self.sock, name)

        super()._down(server, Mapped(client))


def test_hostile_folder_names_from_a_real_server_stay_inside_the_account(sandbox: Any, mail_user: Any,
                                                                          tmp_path: Path) -> None:
    email = mail_user.email
    for n, real in enumerate(HOSTILE, start=1):
        sandbox.doveadm("mailbox", "create", "-u", email, real, check=True)
        sandbox.fill_maildir(email, [msg(100 + n, email)], folder=real)
    proxy = NamingProxy((sandbox.host, sandbox.imap_port))
    try:
        home = plain_account(sandbox, mail_user, tmp_path, proxy.port)
        before = set(Path("/tmp").iterdir())
        proc = home.run("sync", "--json")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        listed = {f["folder"]: f for f in json.loads(proc.stdout)["a"]["folders"]}
        root = (home.root / "data" / "mail" / "a").resolve()
        for n, shown in enumerate(HOSTILE.values(), start=1):
            assert shown in listed and listed[shown]["new"] == 1, (shown, listed.get(shown))
            assert _mid(100 + n) in local(home, shown)
        assert not Path("/tmp/deskmail-pwned").exists()
        assert not any(p.name in ("deskmail-pwned", "b") for p in set(Path("/tmp").iterdir()) - before)
        assert not any(p.name in ("deskmail-pwned", "b") for p in tmp_path.rglob("*") if root not in p.parents)
        home_root = home.root.resolve()
        for path in home.root.rglob("*"):
            assert home_root in path.resolve().parents, path
        # Each hostile name's message is in a Maildir++ folder of its own inside the account.
        maildirs = [p.parent for p in root.rglob("cur")]
        assert all(root == m or root in m.parents for m in maildirs)
        assert len(maildirs) >= 1 + len(HOSTILE)
        assert _sync(home)[HOSTILE["Evil1"]]["new"] == 0
    finally:
        proxy.close()


# ---- F-13: mass local deletion ---------------------------------------------------------------------


def test_95_percent_of_the_files_removed_by_another_tool_are_fetched_again_and_a_mass_delete_asks(
        sandbox: Any, mail_user: Any, tmp_path: Path) -> None:
    """95 of INBOX's 100 files removed with rm: the sync sends no STORE or EXPUNGE (a vanished file is never
    read as a delete), fetches the 95 again, byte for byte. The same 95 deleted through the CLI without
    --yes: refused with mass_delete naming the count, nothing changed here or there; with --yes: moved to
    Trash, here and on the server."""
    email = mail_user.email
    proxy = WireProxy((sandbox.host, sandbox.imap_port))
    try:
        home = plain_account(sandbox, mail_user, tmp_path, proxy.port)
        sandbox.fill_maildir(email, [msg(i, email) for i in range(1, 101)])
        assert _sync(home)["INBOX"]["new"] == 100
        before = {p.name: p.read_bytes() for p in _files(home)}
        on_server = server(sandbox, email)
        gone = sorted(before)[:95]
        subprocess.run(["rm", *[str(home.root / "data" / "mail" / "a" / "cur" / n) for n in gone]], check=True)
        sent_before = len(proxy.commands)
        inbox = _sync(home)["INBOX"]
        assert inbox["refetched"] == 95 and inbox.get("deleted", 0) == 0, inbox
        assert not any(re.match(rb"\S+ (UID )?(STORE|EXPUNGE|MOVE)", c.upper()) for c in proxy.commands[sent_before:])
        assert server(sandbox, email) == on_server
        assert sorted(p.read_bytes() for p in _files(home)) == sorted(before.values())
        _same_everywhere(home, sandbox, email, ("INBOX",))

        ids = [str(r["id"]) for r in json.loads(home.run("list", "--limit", "200", "--json").stdout)][:95]
        refused = home.run("delete", *ids)
        assert refused.returncode != 0 and "95 messages" in refused.stderr and "--yes" in refused.stderr, refused
        assert "Traceback" not in refused.stderr
        assert len(_files(home)) == 100
        again = _sync(home)["INBOX"]
        assert again["new"] == 0 and again.get("deleted", 0) == 0 and server(sandbox, email) == on_server
        done = home.run("delete", "--yes", *ids)
        assert done.returncode == 0, done.stderr
        _sync(home)
        assert len(server(sandbox, email)) == 5 and len(server(sandbox, email, "Trash")) == 95
        _same_everywhere(home, sandbox, email, ("INBOX", "Trash"))
    finally:
        proxy.close()


# ---- F-28: LOGINDISABLED, plaintext refused ----------------------------------------------------------


@pytest.mark.parametrize("security", ["none", "starttls"])
def test_logindisabled_server_gets_no_password_in_clear(sandbox: Any, mail_user: Any, tmp_path: Path,
                                                        security: str) -> None:
    """Dovecot reached from another address (a proxy to 127.0.0.2, its plaintext port): it offers
    LOGINDISABLED and no AUTH= before TLS. An account wrongly set to "no encryption" (even with plaintext
    passwords allowed) stops with a clear error suggesting TLS, having sent no LOGIN or AUTHENTICATE; with
    STARTTLS it upgrades and logs in (possible only from the capabilities read again after TLS)."""
    from helpers import RewritingProxy

    proxy = RewritingProxy((sandbox.insecure_host, sandbox.imap_port))
    try:
        import imaplib

        probe = imaplib.IMAP4("127.0.0.1", proxy.port, timeout=10)
        greeting = " ".join(probe.capabilities)
        probe.logout()
        assert "LOGINDISABLED" in greeting and "AUTH=" not in greeting, greeting  # the injection holds
        proxy.client_bytes.clear()
        home = Home(tmp_path / "home", env={"DM_PW": mail_user.password})
        add = ["account", "add", "--email", mail_user.email, "--name", "a", "--imap-host", "127.0.0.1",
               "--imap-port", str(proxy.port), "--imap-security", security, "--smtp-host", sandbox.host,
               "--smtp-port", str(sandbox.submission_port), "--ca-file", str(sandbox.ca_file),
               "--password-env", "DM_PW", "--no-verify"]
        added = home.run(*add, *(["--allow-plaintext-password"] if security == "none" else []))
        assert added.returncode == 0, added.stderr
        sandbox.fill_maildir(mail_user.email, [msg(i, mail_user.email) for i in range(1, 3)])
        proc = home.run("sync", "--json")
        sent = bytes(proxy.client_bytes)
        assert mail_user.password.encode() not in sent
        assert base64.b64encode(f"\0{mail_user.email}\0{mail_user.password}".encode()) not in sent
        clear = sent.split(b"STARTTLS\r\n", 1)[0] if security == "starttls" else sent
        assert not re.search(rb"^\S+ (LOGIN|AUTHENTICATE)\b", clear.upper(), re.M), clear
        assert "Traceback" not in proc.stderr
        if security == "none":
            assert proc.returncode == 7, proc.stdout + proc.stderr
            error = json.loads(proc.stdout)["a"]
            assert error["code"] == "starttls_missing" and "does not allow login without encryption" in error["what"]
            assert "STARTTLS or SSL/TLS" in error["remedy"] and "What to do: set the incoming" in proc.stderr, error
            assert b"STARTTLS" not in sent  # the account said no encryption: it is not upgraded behind its back
        else:
            assert proc.returncode == 0, proc.stdout + proc.stderr
            assert b"STARTTLS\r\n" in sent and len(local(home)) == 2
    finally:
        proxy.close()


# ---- F-12 (b): the store made unreadable (chmod 000) ---------------------------------------------

# The tests run as root, for whom permission bits do not apply (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH).
# The sync runs without those two capabilities (setpriv drops them from its bounding set, so they are
# gone after exec): a mode of 000 then refuses it exactly as it refuses an ordinary user.
WITHOUT_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"]


def _run_without_dac(home: Home, *args: str, clock: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DESKMAIL_HOME": str(home.root), "COLUMNS": "200", **home.env}
    return subprocess.run([*WITHOUT_DAC, *clock, sys.executable, "-m", "deskmail", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_bench_refuses_an_unreadable_folder_to_the_sync_process(tmp_path: Path) -> None:
    """The injection itself: the process as the sync runs is refused a folder of mode 000."""
    folder = tmp_path / "closed"
    folder.mkdir()
    (folder / "f").write_text("x")
    folder.chmod(0)
    try:
        probe = subprocess.run([*WITHOUT_DAC, sys.executable, "-c", f"import os; os.listdir({str(folder)!r})"],
                               capture_output=True, text=True, check=False)
        assert probe.returncode != 0 and "PermissionError" in probe.stderr, probe.stderr
    finally:
        folder.chmod(0o700)


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_an_unreadable_store_is_missing_not_deleted(sandbox: Any, mail_user: Any, tmp_path: Path,
                                                    protocol: str) -> None:
    """The account's mail folder chmod 000 after a sync; the next sync (IMAP through a proxy that records
    its commands; POP3 with delete_after_days = 1 two days later, under faketime) stops with store_missing:
    no STORE, EXPUNGE or DELE, the server keeps every message with its flags, nothing is recreated or
    written. Readable again, a sync changes nothing."""
    from test_reliability import FAKETIME, pop_account

    email = mail_user.email
    sandbox.fill_maildir(email, [msg(i, email) for i in range(1, 6)])
    proxy = WireProxy((sandbox.host, sandbox.imap_port))
    try:
        if protocol == "imap":
            home, name, clock = plain_account(sandbox, mail_user, tmp_path, proxy.port), "a", ()
        else:
            assert FAKETIME, "faketime is missing (scripts/bootstrap test installs it)"
            home, name, clock = pop_account(sandbox, mail_user, tmp_path), "p", ("faketime", "-f", "+2d")
            cfg = home.root / "config" / "accounts.toml"
            cfg.write_text(cfg.read_text() + "\n[accounts.p.options]\ndelete_after_days = 1\n")
        first = _run_without_dac(home, "sync", "--json")
        assert first.returncode == 0, first.stdout + first.stderr
        mail = home.root / "data" / "mail" / name
        before = {p.relative_to(mail): p.read_bytes() for p in mail.rglob("*") if p.is_file()}
        assert sum(1 for p in before if p.parts[0] == "cur") == 5
        on_server = server(sandbox, email)
        assert len(on_server) == 5
        sent_before = len(proxy.commands)

        mail.chmod(0)
        try:
            proc = _run_without_dac(home, "sync", "--json", clock=clock)
        finally:
            mail.chmod(0o700)
        assert proc.returncode == 10 and '"code": "store_missing"' in proc.stdout, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr
        assert server(sandbox, email) == on_server  # every message, flags unchanged (I5)
        assert not any(re.match(rb"\S+ (UID )?(STORE|EXPUNGE)", c.upper()) for c in proxy.commands[sent_before:])
        assert {p.relative_to(mail): p.read_bytes() for p in mail.rglob("*") if p.is_file()} == before

        again = _run_without_dac(home, "sync", "--json")  # readable again, and today: nothing to do
        assert again.returncode == 0, again.stdout + again.stderr
        [folder] = [f for f in json.loads(again.stdout)[name]["folders"] if f["folder"] == "INBOX"]
        assert folder["new"] == 0 and folder.get("removed", 0) == 0 and folder.get("deleted", 0) == 0, folder
        assert {p.relative_to(mail): p.read_bytes() for p in mail.rglob("*") if p.is_file()} == before
        assert server(sandbox, email) == on_server
    finally:
        proxy.close()


# ---- F-12 (d): the disk holding the store is unmounted ---------------------------------------------


def test_store_on_an_unmounted_disk_is_missing_not_deleted(sandbox: Any, mail_user: Any, tmp_path: Path) -> None:
    """The account's mail lives on a tmpfs mounted over data/mail; after a sync the disk is unmounted
    (the folder is there, empty): the next sync stops with store_missing and the server keeps every
    message; mounted back, a sync changes nothing."""
    email = mail_user.email
    proxy = WireProxy((sandbox.host, sandbox.imap_port))
    mail = tmp_path / "home" / "data" / "mail"
    mail.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mail)], check=True)
    mounted = True
    try:
        home = plain_account(sandbox, mail_user, tmp_path, proxy.port)
        sandbox.fill_maildir(email, [msg(i, email) for i in range(1, 6)])
        assert _sync(home)["INBOX"]["new"] == 5
        keep = tmp_path / "kept"
        subprocess.run(["cp", "-a", str(mail), str(keep)], check=True)
        subprocess.run(["umount", str(mail)], check=True)
        mounted = False
        assert mail.is_dir() and not any(mail.iterdir())
        proc = home.run("sync", "--json")
        assert proc.returncode == 10 and '"code": "store_missing"' in proc.stdout, proc.stdout + proc.stderr
        assert len(server(sandbox, email)) == 5
        assert not any(c.upper().split(b" ")[1:2] in ([b"EXPUNGE"], [b"STORE"]) for c in proxy.commands)
        assert not any(mail.iterdir()), "the missing store is not recreated"
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mail)], check=True)
        mounted = True
        subprocess.run(["cp", "-a", f"{keep}/.", str(mail)], check=True)
        again = _sync(home)
        assert all(f["new"] == 0 and f["removed"] == 0 and f["deleted"] == 0 for f in again.values()), again
        _same_everywhere(home, sandbox, email, ("INBOX",))
    finally:
        proxy.close()
        if mounted:
            subprocess.run(["umount", str(mail)], check=False)

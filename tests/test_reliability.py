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
from collections.abc import Callable
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
    shutil.rmtree(home.root / "data" / "mail" / "p")

    later = ["faketime", "-f", "+2d"]
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
    one folder), the first ``BODY[] {n}`` literal of the answer to its next FETCH of bodies is cut ("cut": 1,000 bytes into the
    literal, then both ways closed) or garbled ("garble": its size announced 40 bytes short, so the
    rest of the body lands where the parser expects the response to go on). Only once.
    """

    LITERAL = re.compile(rb"BODY\[\] \{(\d+)\}\r\n")

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.connections = 0
        self.commands: list[bytes] = []
        self._before: list[tuple[re.Pattern[bytes], Callable[[bytes], None]]] = []
        self._fault: tuple[re.Pattern[bytes], str] | None = None
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

    def fault_in(self, pattern: bytes, kind: str) -> None:
        self._fault = (re.compile(pattern), kind)

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
                    client.sendall(pending[:m.end() + 1000])
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

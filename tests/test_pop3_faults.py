"""F-18: POP3 interrupted at its two dangerous moments, against the real Dovecot.

A proxy between deskmail and Dovecot's plain POP3 port (loopback, so the commands are readable) acts
when the client sends a given command: (a) the connection is lost after the ``DELE``s, when the
client says ``QUIT`` (the QUIT never reaches the server, so by RFC 1939 nothing is deleted); (b) the
deskmail process is killed with SIGKILL while the answer to a ``RETR`` is coming in. In both cases
every message must end up here exactly once, complete, and be deleted from the server (the account
says ``leave_on_server = false``) only by a later session that reaches QUIT.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helpers import Home
from test_sync import msg, server

pytestmark = pytest.mark.servers


class CommandProxy:
    """A relay to Dovecot's plain POP3 port; ``on(pattern, action, nth)`` runs ``action(conn)`` when the
    client sends its ``nth`` command matching ``pattern`` (``conn`` can ``cut()`` the connection)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.commands: list[bytes] = []
        self.fired = threading.Event()
        self._rule: tuple[re.Pattern[bytes], Callable[[_Conn], bool], int] | None = None
        self._seen = 0
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def on(self, pattern: bytes, action: Callable[[_Conn], bool], nth: int = 1) -> None:
        """``action`` returns whether the command still goes on to the server."""
        self._rule = (re.compile(pattern), action, nth)
        self._seen = 0

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            conn = _Conn(client, socket.create_connection(self.upstream))
            threading.Thread(target=self._up, args=(conn,), daemon=True).start()
            threading.Thread(target=conn.down, daemon=True).start()

    def _up(self, conn: _Conn) -> None:
        buf = b""
        try:
            while data := conn.client.recv(65536):
                buf += data
                while b"\n" in buf:
                    line, _, buf = buf.partition(b"\n")
                    line += b"\n"
                    self.commands.append(line)
                    forward = True
                    if self._rule is not None and not self.fired.is_set() and self._rule[0].search(line):
                        self._seen += 1
                        if self._seen == self._rule[2]:
                            self.fired.set()
                            forward = self._rule[1](conn)
                    if not forward:
                        return
                    conn.server.sendall(line)
        except OSError:
            pass


class _Conn:
    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client = client
        self.server = server
        self.trip: tuple[int, Callable[[], None]] | None = None  # (bytes, action): see after_bytes()

    def after_bytes(self, count: int, action: Callable[[], None]) -> None:
        """Run ``action`` once ``count`` more bytes of the server's answer have been passed on."""
        self.trip = (count, action)

    def down(self) -> None:
        try:
            while data := self.server.recv(65536):
                if self.trip is not None:
                    left, action = self.trip
                    if len(data) >= left:
                        self.client.sendall(data[:left])
                        self.trip = None
                        action()
                        data = data[left:]
                    else:
                        self.trip = (left - len(data), action)
                self.client.sendall(data)
        except OSError:
            pass

    def cut(self) -> None:
        for s in (self.client, self.server):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def _account(sandbox: Any, user: Any, tmp_path: Path, port: int) -> Home:
    home = Home(tmp_path / "pop", env={"DM_PW": user.password})
    proc = home.run("account", "add", "--email", user.email, "--name", "p", "--protocol", "pop3",
                    "--pop-host", "127.0.0.1", "--pop-port", str(port), "--pop-security", "none",
                    "--allow-plaintext-password", "--smtp-host", sandbox.host,
                    "--smtp-port", str(sandbox.submission_port), "--ca-file", str(sandbox.ca_file),
                    "--password-env", "DM_PW", "--no-verify")
    assert proc.returncode == 0, proc.stderr
    cfg = home.root / "config" / "accounts.toml"
    cfg.write_text(cfg.read_text() + "\n[accounts.p.options]\nleave_on_server = false\n")
    return home


def _local(home: Home) -> dict[str, list[str]]:
    """Every file of the POP3 folder by sub-directory, and the Message-IDs of cur/ and new/ (a list)."""
    base = home.root / "data" / "mail" / "p"
    out: dict[str, list[str]] = {"tmp": [], "ids": []}
    for sub in ("cur", "new", "tmp"):
        d = base / sub
        for p in sorted(d.iterdir()) if d.is_dir() else ():
            if sub == "tmp":
                out["tmp"].append(p.name)
                continue
            m = re.search(rb"^Message-ID: (<[^>]+>)", p.read_bytes(), re.M | re.I)
            out["ids"].append(m.group(1).decode() if m else "?")
    out["ids"].sort()
    return out


def _sync(home: Home) -> dict[str, Any]:
    proc = home.run("sync", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(json.loads(proc.stdout)["p"]["folders"][0])


def test_connection_lost_after_dele_before_quit_deletes_nothing_and_duplicates_nothing(
        sandbox: Any, mail_user: Any, tmp_path: Path) -> None:
    email = mail_user.email
    proxy = CommandProxy((sandbox.host, sandbox.pop3_port))
    try:
        home = _account(sandbox, mail_user, tmp_path, proxy.port)
        messages = [msg(i, email, size=3000) for i in range(1, 6)]
        ids = sorted(f"<m{i}-3000@example.test>" for i in range(1, 6))
        sandbox.fill_maildir(email, messages)

        def lose(conn: _Conn) -> bool:
            conn.cut()
            return False

        proxy.on(rb"^QUIT", lose)
        proc = home.run("sync", "--json")
        assert proxy.fired.is_set() and "Traceback" not in proc.stderr
        assert sum(c.startswith(b"DELE") for c in proxy.commands) == 5, "the DELEs went out, then QUIT was lost"
        assert len(server(sandbox, email)) == 5, "without QUIT the server deleted nothing (RFC 1939)"
        assert _local(home) == {"tmp": [], "ids": ids}

        # The next session downloads nothing again and deletes them for good, once it reaches QUIT.
        result = _sync(home)
        assert result["new"] == 0 and result["deleted"] == 5, result
        assert server(sandbox, email) == {}
        assert _local(home) == {"tmp": [], "ids": ids}
        result = _sync(home)
        assert result["new"] == 0 and result["deleted"] == 0, result
    finally:
        proxy.close()


def test_sigkill_during_retr_keeps_no_partial_file_and_the_next_run_completes(
        sandbox: Any, mail_user: Any, tmp_path: Path) -> None:
    email = mail_user.email
    proxy = CommandProxy((sandbox.host, sandbox.pop3_port))
    try:
        home = _account(sandbox, mail_user, tmp_path, proxy.port)
        size = 400_000
        sandbox.fill_maildir(email, [msg(i, email, size=size) for i in range(1, 7)])
        ids = sorted(f"<m{i}-{size}@example.test>" for i in range(1, 7))
        env = {**os.environ, "DESKMAIL_HOME": str(home.root), **home.env}
        child = subprocess.Popen([sys.executable, "-m", "deskmail", "sync"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def kill_while_it_arrives(conn: _Conn) -> bool:
            # 150,000 bytes of the 400 KB answer reach the client, then it dies.
            conn.after_bytes(150_000, lambda: (os.kill(child.pid, signal.SIGKILL), child.wait()))
            return True

        proxy.on(rb"^RETR ", kill_while_it_arrives, nth=4)
        assert child.wait(60) == -signal.SIGKILL
        assert proxy.fired.is_set()
        assert not any(c.startswith(b"QUIT") for c in proxy.commands)
        # A DELE only ever follows the stored copy of a message fetched before the one cut short.
        deleted = [int(c.split()[1]) for c in proxy.commands if c.startswith(b"DELE")]
        assert all(n < 4 for n in deleted), deleted
        time.sleep(0.3)  # Dovecot notices the closed connection: no QUIT, no deletion
        assert len(server(sandbox, email)) == 6
        kept = _local(home)
        assert len(kept["ids"]) <= 4 and len(set(kept["ids"])) == len(kept["ids"])
        for path in (home.root / "data" / "mail" / "p" / "cur").iterdir():
            assert path.stat().st_size > size, f"{path.name} is a partial message"

        result = _sync(home)
        assert result["new"] == 6 - len(kept["ids"]) and result["deleted"] == 6, result
        assert server(sandbox, email) == {}
        assert _local(home) == {"tmp": [], "ids": ids}
    finally:
        proxy.close()

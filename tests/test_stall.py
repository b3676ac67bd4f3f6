"""F-05: a server that stalls, and a network that blackholes, for `deskmail sync` and `sync --watch`.

Resets are covered elsewhere (test_watch.py, test_reliability.py). Here nothing is ever closed: a
proxy between deskmail and Dovecot (plain IMAP on loopback, so that it can read the commands) stops
passing the server's bytes in the middle of a FETCH's message body, without a FIN; or it accepts new
connections and never says a word (a blackhole: the laptop slept, the Wi-Fi changed, a firewall drops
packets). The account's ``timeout`` option (3 s here, 60 s by default) bounds every wait: the run ends
in bounded time with a clear error, nothing partial is kept, and the next run completes.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import Home, add_imaps_account
from test_reliability import plain_account
from test_sync import local, msg, server

pytestmark = pytest.mark.servers

TIMEOUT = 3


class StallProxy:
    """A TCP relay to Dovecot's plain IMAP port.

    ``stall_in_body(pattern)``: once the client sent a command matching ``pattern`` (a SELECT), the
    answer to its next FETCH of bodies is passed on up to 1,000 bytes into the first ``BODY[]``
    literal, then nothing more (the connection stays open, no FIN). Once.
    ``stall_all()``: every open connection stops passing the server's bytes from now on.
    ``blackhole``: new connections are accepted and never answered (no upstream connection).
    """

    LITERAL = re.compile(rb"BODY\[\] \{(\d+)\}\r\n")

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.connections = 0
        self.blackhole = False
        self.stalled = threading.Event()
        self._pattern: re.Pattern[bytes] | None = None
        self._selected = False
        self._armed = threading.Event()
        self._frozen: list[threading.Event] = []
        self._socks: list[socket.socket] = []
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def stall_in_body(self, pattern: bytes) -> None:
        self._pattern = re.compile(pattern)

    def stall_all(self) -> None:
        for frozen in list(self._frozen):
            frozen.set()
        self.stalled.set()

    def close(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        for s in self._socks:
            try:
                s.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self._socks.append(client)
            if self.blackhole:
                continue  # accepted, kept open, never answered
            up = socket.create_connection(self.upstream)
            self._socks.append(up)
            frozen = threading.Event()
            self._frozen.append(frozen)
            threading.Thread(target=self._up, args=(client, up), daemon=True).start()
            threading.Thread(target=self._down, args=(up, client, frozen), daemon=True).start()

    def _up(self, client: socket.socket, up: socket.socket) -> None:
        try:
            while data := client.recv(65536):
                if self._pattern is not None and not self.stalled.is_set():
                    for line in data.split(b"\n"):
                        if self._pattern.search(line):
                            self._selected = True
                        elif self._selected and re.search(rb"FETCH .*BODY\.PEEK\[\]", line):
                            self._armed.set()
                up.sendall(data)
        except OSError:
            pass

    def _down(self, up: socket.socket, client: socket.socket, frozen: threading.Event) -> None:
        pending = b""
        try:
            while data := up.recv(65536):
                if frozen.is_set():
                    continue  # swallowed: the client never hears another byte
                if not self._armed.is_set():
                    client.sendall(data)
                    continue
                pending += data
                m = self.LITERAL.search(pending)
                if m is None:
                    client.sendall(pending[:-64])
                    pending = pending[-64:]
                    continue
                client.sendall(pending[:m.end() + 1000])
                self._armed.clear()
                frozen.set()
                self.stalled.set()
        except OSError:
            pass


@pytest.fixture
def proxy(sandbox: Any) -> Iterator[StallProxy]:
    p = StallProxy((sandbox.host, sandbox.imap_port))
    yield p
    p.close()


def _with_timeout(home: Home, seconds: int) -> None:
    cfg = home.root / "config" / "accounts.toml"
    cfg.write_text(cfg.read_text() + f"\n[accounts.a.options]\ntimeout = {seconds}\n")


def _files(home: Home, folder: str = "") -> list[Path]:
    base = home.root / "data" / "mail" / "a" / folder
    return [p for sub in ("cur", "new", "tmp") if (base / sub).is_dir() for p in (base / sub).iterdir()]


def test_sync_stalled_in_the_middle_of_a_body_ends_in_bounded_time_and_the_next_run_completes(
        sandbox: Any, mail_user: Any, tmp_path: Path, proxy: StallProxy) -> None:
    email = mail_user.email
    home = plain_account(sandbox, mail_user, tmp_path, proxy.port)
    _with_timeout(home, TIMEOUT)
    for folder, first in (("INBOX", 1), ("Lists", 10), ("Work", 20)):
        sandbox.fill_maildir(email, [msg(i, email, size=20_000) for i in range(first, first + 3)], folder)
    proxy.stall_in_body(rb'SELECT "?Lists"?')
    started = time.monotonic()
    proc = home.run("sync", "--json", timeout=60)
    took = time.monotonic() - started
    assert proxy.stalled.is_set(), "the stall was not injected"
    assert "Traceback" not in proc.stderr
    assert took < 4 * TIMEOUT + 6, f"a {TIMEOUT} s timeout, but the run took {took:.1f} s"
    assert proc.returncode == 0, proc.stdout + proc.stderr  # the account went on after the stalled folder
    folders = {f["folder"]: f for f in json.loads(proc.stdout)["a"]["folders"]}
    lists = folders["Lists"]
    assert lists["new"] == 0 and lists["codes"] == ["connection_timeout"], lists
    assert "did not answer in time" in lists["notes"][0], lists
    assert folders["INBOX"]["new"] == 3 and folders["Work"]["new"] == 3, folders
    assert _files(home, ".Lists") == [], "nothing partial is kept"
    # The next run, with the network fine, completes the folder: every message once.
    again = home.run("sync", "--json", timeout=60)
    assert again.returncode == 0, again.stdout + again.stderr
    assert {f["folder"]: f["new"] for f in json.loads(again.stdout)["a"]["folders"]}["Lists"] == 3
    for folder in ("INBOX", "Lists", "Work"):
        assert sorted(local(home, folder)) == sorted(server(sandbox, email, folder)), folder
    assert len(_files(home, ".Lists")) == 3


@pytest.mark.parametrize("security", ["none", "ssl"])
def test_sync_into_a_blackhole_fails_in_bounded_time_with_a_clear_error(
        sandbox: Any, mail_user: Any, tmp_path: Path, security: str) -> None:
    """Accepted, never answered: no greeting (plain), no TLS handshake (SSL/TLS, dialled early by the
    command line's fast path before the configuration is read)."""
    email = mail_user.email
    proxy = StallProxy((sandbox.host, sandbox.imap_port if security == "none" else sandbox.imaps_port))
    try:
        if security == "none":
            home = plain_account(sandbox, mail_user, tmp_path, proxy.port)
        else:
            home = Home(tmp_path / "home", env={"DM_PW": mail_user.password})
            add_imaps_account(home, sandbox, mail_user, imap_port=proxy.port)
        _with_timeout(home, TIMEOUT)
        sandbox.fill_maildir(email, [msg(i, email) for i in range(1, 4)])
        proxy.blackhole = True
        started = time.monotonic()
        proc = home.run("sync", "--json", timeout=90)
        took = time.monotonic() - started
        assert took < TIMEOUT + 5, f"a {TIMEOUT} s timeout, but the run took {took:.1f} s"
        assert proc.returncode == 6 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
        error = json.loads(proc.stdout)
        error = error.get("a", error)  # the account's error, or the run's
        assert error["code"] == "connection_timeout" and "did not answer in time" in error["what"], error
        assert proxy.connections >= 1
        proxy.blackhole = False
        again = home.run("sync", "--json", timeout=60)
        assert again.returncode == 0, again.stdout + again.stderr
        assert sorted(local(home)) == sorted(server(sandbox, email))
    finally:
        proxy.close()


def test_watch_notices_a_stalled_connection_and_a_blackhole_and_resumes(
        sandbox: Any, mail_user: Any, tmp_path: Path, proxy: StallProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    """`sync --watch`: the connection under IDLE stops passing bytes (no FIN), and for a while every new
    connection goes into a blackhole. The watch notices at its next IDLE renewal plus the timeout,
    backs off while the blackhole lasts, each attempt bounded, then reconnects, and the mail that
    arrived meanwhile comes down once."""
    from test_watch import Watcher, mid, wait_for
    from test_watch import msg as wmsg

    email = mail_user.email
    home = plain_account(sandbox, mail_user, tmp_path, proxy.port)
    _with_timeout(home, 2)
    w = Watcher(home, monkeypatch, idle_renew=1.0, backoff_start=0.5, max_backoff=2.0)
    try:
        w.wait_report(r"a/INBOX: watching for new mail", timeout=15)
        sandbox.deliver(email, wmsg(1, email))
        wait_for(lambda: mid(1) in local(home), 8, "mail before the stall")

        proxy.blackhole = True
        proxy.stall_all()
        stalled = time.monotonic()
        first = w.wait_report(r"a/INBOX: .*did not answer in time.*; reconnecting", timeout=15)[0][0]
        assert first - stalled < 1.0 + 2 + 3, "noticed within a renewal and the timeout"
        w.wait_report(r"a/INBOX: .*; reconnecting", count=3, timeout=20)  # attempts into the blackhole
        assert w.thread.is_alive() and not w.failures
        sandbox.deliver(email, wmsg(2, email))  # arrives while the network is "down"

        proxy.blackhole = False
        wait_for(lambda: mid(2) in local(home), 20, "mail after the blackhole")
        w.wait_report(r"a/INBOX: watching for new mail", count=2, timeout=10)
        sandbox.deliver(email, wmsg(3, email))
        wait_for(lambda: mid(3) in local(home), 8, "IDLE works again")
        assert sorted(local(home)) == sorted([mid(1), mid(2), mid(3)])
        assert len(_files(home)) == 3
    finally:
        w.close()
    assert not w.crashes

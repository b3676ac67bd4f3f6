"""`deskmail sync --watch` against the real Dovecot: reconnects, back-off, IDLE renewal, the periodic
full sync, fatal errors; and the progress display of a plain `deskmail sync` on a terminal.

The network is cut with :class:`CutProxy`, a TCP relay between deskmail and Dovecot that the test
controls (cut every connection, refuse new ones, accept and hang up at once, hold the server's
bytes back). Timings are lowered through ``WatchOptions`` so that a 25-minute IDLE renewal or a
5-minute back-off ceiling shows within seconds. The reconnect tests run the library's
:func:`deskmail.sync.watch.watch` in a thread (its reports, with times, are the evidence); the renewal
and fatal-error tests run the real CLI (``deskmail sync --watch``) for its --debug log, messages and
exit codes.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import socket
import sqlite3
import ssl
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import Home, add_imaps_account

pytestmark = pytest.mark.servers


# ---- a network the test can break


class CutProxy:
    """TCP relay on 127.0.0.1 to ``upstream``; ``connections`` counts the clients it accepted.

    ``cut()`` drops every open connection (the network went away under an IDLE); ``down()`` also closes
    the listening port, so reconnects are refused until ``up()`` opens the same port again;
    ``upstream = None`` accepts connections and hangs up at once (a balancer whose backend is down);
    ``upstream`` may also point elsewhere (an impostor server) for the next connections; ``hold()``
    delays everything the server sends until ``release()`` (a slow link).
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream: tuple[str, int] | None = upstream
        self.connections = 0
        self.port = 0
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._flowing = threading.Event()
        self._flowing.set()
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))  # the same port again after down()
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        if self._listener is not None:
            try:  # close() alone leaves a thread blocked in accept() accepting; shutdown() wakes it
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        self.cut()

    def cut(self) -> None:
        with self._lock:
            socks, self._open = self._open, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def hold(self) -> None:
        self._flowing.clear()

    def release(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self.release()
        self.down()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # down()
            with self._lock:
                self.connections += 1
            upstream = self.upstream
            try:
                if upstream is None:
                    raise OSError("backend down")
                server = socket.create_connection(upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, server]
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst, src is server), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_server: bool) -> None:
        try:
            while data := src.recv(65536):
                if from_server:
                    self._flowing.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# ---- fixtures and helpers


def msg(i: int, to: str, size: int = 2000) -> bytes:
    return (f"From: gen@example.test\r\nTo: {to}\r\nSubject: watched {i}\r\n"
            f"Message-ID: <w{i}@example.test>\r\nDate: Mon, 02 Jan 2023 10:00:00 +0000\r\n\r\n").encode() + (
        b"y" * size + b"\r\n")


def mid(i: int) -> str:
    return f"<w{i}@example.test>"


@pytest.fixture
def proxy(sandbox: Any) -> Iterator[CutProxy]:
    p = CutProxy((sandbox.host, sandbox.imaps_port))
    yield p
    p.close()


@pytest.fixture
def home(sandbox: Any, mail_user: Any, proxy: CutProxy, tmp_path: Path) -> Home:
    """An account "a" whose IMAP goes through the proxy (the certificate still names 127.0.0.1)."""
    h = Home(tmp_path / "home", env={"DM_PW": mail_user.password})
    add_imaps_account(h, sandbox, mail_user, imap_port=proxy.port)
    return h


def local(h: Home, folder: str = "INBOX") -> list[str]:
    """Message-IDs of the local copies in ``folder`` (a list: duplicates must show)."""
    with sqlite3.connect(h.root / "data" / "index.sqlite3") as conn:
        rows = conn.execute("SELECT m.message_id FROM messages m JOIN folders f ON f.id=m.folder_id"
                            " WHERE f.name=?", (folder,)).fetchall()
    return sorted(r[0] for r in rows)


def files(h: Home) -> list[str]:
    cur = h.root / "data" / "mail" / "a" / "cur"
    return sorted(p.name for p in cur.iterdir())


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll until ``condition`` holds; the seconds it took."""
    start = time.monotonic()
    while time.monotonic() < start + timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout} s")


class Watcher:
    """``watch()`` in a thread, as the CLI runs it, with every report kept as (monotonic time, text)."""

    def __init__(self, h: Home, monkeypatch: pytest.MonkeyPatch, **options: Any) -> None:
        from deskmail import config
        from deskmail.sync.watch import WatchOptions, watch

        monkeypatch.setenv("DESKMAIL_HOME", str(h.root))
        monkeypatch.setenv("DM_PW", h.env["DM_PW"])
        self.crashes: list[BaseException | None] = []
        monkeypatch.setattr(threading, "excepthook", lambda args: self.crashes.append(args.exc_value))
        self.reports: list[tuple[float, str]] = []
        self.failures: dict[str, Any] | None = None
        self.stop = threading.Event()
        accounts = list(config.load_accounts().values())
        data_dir = config.paths().data_dir

        def run() -> None:
            self.failures = watch(accounts, data_dir, WatchOptions(**options), self.stop, self.reports_append)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def reports_append(self, text: str) -> None:
        self.reports.append((time.monotonic(), text))

    def matching(self, pattern: str) -> list[tuple[float, str]]:
        return [(t, r) for t, r in list(self.reports) if re.search(pattern, r)]

    def wait_report(self, pattern: str, count: int = 1, timeout: float = 10) -> list[tuple[float, str]]:
        wait_for(lambda: len(self.matching(pattern)) >= count, timeout,
                 f"report #{count} matching {pattern!r} (reports: {[r for _, r in self.reports]})")
        return self.matching(pattern)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(15)
        assert not self.thread.is_alive(), "watch() did not stop within 15 s of the stop event"


@pytest.fixture
def start_watch(home: Home, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Watcher]]:
    started: list[Watcher] = []

    def start(**options: Any) -> Watcher:
        w = Watcher(home, monkeypatch, **options)
        started.append(w)
        return w

    yield start
    for w in started:
        w.close()
        assert not w.crashes, f"a watch thread died: {w.crashes!r}"


def assert_exactly(h: Home, expected: set[str]) -> None:
    """Each message once in the index and once on disk: nothing lost, nothing duplicated."""
    ids = local(h)
    assert ids == sorted(expected), ids
    assert len(files(h)) == len(expected)


# The real `deskmail` command line, with the IDLE renewal lowered to 1 s through WatchOptions' field (so
# renewals can be counted in seconds).
CLI = ("import functools, sys; import deskmail.sync.watch as w; "
       "w.WatchOptions = functools.partial(w.WatchOptions, idle_renew=1.0); "
       "from deskmail.cli.entry import main; sys.exit(main())")


def _cli_watch(h: Home, log: Path, *options: str) -> subprocess.Popen[bytes]:
    """`deskmail [OPTIONS] sync --watch` with stderr (reports, errors, --debug log) going to ``log``."""
    env = {**os.environ, "DESKMAIL_HOME": str(h.root), "COLUMNS": "300", **h.env}
    with log.open("wb") as f:
        return subprocess.Popen([sys.executable, "-c", CLI, *options, "sync", "--watch"], env=env,
                                stdout=subprocess.DEVNULL, stderr=f)


def _stopped(proc: subprocess.Popen[bytes], timeout: float) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"`sync --watch` still running {timeout} s later (endless retry?)") from None



# ---- reconnecting


def test_reconnects_after_the_connection_is_cut(sandbox: Any, mail_user: Any, home: Home, proxy: CutProxy,
                                               start_watch: Callable[..., Watcher]) -> None:
    email = mail_user.email
    # idle_renew=1: the cut is noticed at the next renewal at the latest (see test_cut_during_idle_is_noticed...).
    w = start_watch(idle_renew=1.0)
    w.wait_report(r"a/INBOX: watching for new mail")
    sandbox.deliver(email, msg(1, email))
    wait_for(lambda: mid(1) in local(home), 5, "mail before the cut")

    proxy.cut()
    w.wait_report(r"a/INBOX: .*; reconnecting in 1 s", timeout=5)
    w.wait_report(r"a/INBOX: watching for new mail", count=2, timeout=5)
    assert proxy.connections == 2
    # IDLE works on the new connection.
    sent = time.monotonic()
    sandbox.deliver(email, msg(2, email))
    wait_for(lambda: mid(2) in local(home), 5, "mail after the reconnect")
    assert time.monotonic() - sent < 5
    assert_exactly(home, {mid(1), mid(2)})
    assert w.thread.is_alive() and not w.failures


def test_outage_backs_off_exponentially_then_syncs_what_arrived(
        sandbox: Any, mail_user: Any, home: Home, proxy: CutProxy, start_watch: Callable[..., Watcher]) -> None:
    email = mail_user.email
    sandbox.deliver(email, msg(1, email))
    w = start_watch(idle_renew=1.0, backoff_start=0.25, max_backoff=1.0)
    w.wait_report(r"watching for new mail")
    assert local(home) == [mid(1)]

    proxy.down()  # the server is unreachable: connections are refused
    sandbox.deliver(email, msg(2, email))  # mail keeps arriving at the server meanwhile
    sandbox.deliver(email, msg(3, email))
    retries = w.wait_report(r"reconnecting in", count=5, timeout=15)
    delays = [float(re.search(r"reconnecting in ([\d.]+) s", r)[1]) for _, r in retries]  # type: ignore[index]
    assert delays[:5] == [0.25, 0.5, 1, 1, 1], retries  # doubling, capped at max_backoff
    assert any("refused" in r for _, r in retries), retries  # reported in words
    for (t0, _), (t1, _), delay in zip(retries, retries[1:], delays, strict=False):
        assert t1 - t0 >= delay * 0.9, f"retried after {t1 - t0:.2f} s, the back-off was {delay} s"
    assert w.thread.is_alive() and not w.failures and not w.crashes  # never fatal
    assert mid(2) not in local(home)

    proxy.up()
    w.wait_report(r"watching for new mail", count=2, timeout=5)
    wait_for(lambda: mid(3) in local(home), 5, "mail that arrived during the outage")
    assert_exactly(home, {mid(1), mid(2), mid(3)})

    # A good connection resets the back-off: the next loss starts at the first step again.
    n = len(w.matching(r"reconnecting in"))
    proxy.cut()
    again = w.wait_report(r"reconnecting in", count=n + 1, timeout=5)
    assert again[n][1].endswith("reconnecting in 0.25 s"), again[n]
    w.wait_report(r"watching for new mail", count=3, timeout=5)
    assert_exactly(home, {mid(1), mid(2), mid(3)})


def test_tls_cut_short_after_a_good_connection_is_retried_not_fatal(
        sandbox: Any, mail_user: Any, home: Home, proxy: CutProxy, start_watch: Callable[..., Watcher]) -> None:
    """Accept-and-hang-up makes the TLS handshake fail (a SecurityError), but the account did work: retry."""
    email = mail_user.email
    w = start_watch(idle_renew=1.0, backoff_start=0.25, max_backoff=0.5)
    w.wait_report(r"watching for new mail")
    proxy.upstream = None
    proxy.cut()
    w.wait_report(r"reconnecting in", count=3, timeout=10)
    assert not w.matching(r"not retrying") and w.thread.is_alive() and not w.failures
    proxy.upstream = (sandbox.host, sandbox.imaps_port)
    w.wait_report(r"watching for new mail", count=2, timeout=5)
    sandbox.deliver(email, msg(1, email))
    wait_for(lambda: mid(1) in local(home), 5, "mail after the handshake trouble")


def test_cut_during_idle_is_noticed_without_waiting_for_the_renewal(
        sandbox: Any, home: Home, proxy: CutProxy, start_watch: Callable[..., Watcher]) -> None:
    w = start_watch(backoff_start=0.25)  # the real 25-minute renewal
    w.wait_report(r"watching for new mail")
    proxy.cut()
    w.wait_report(r"reconnecting in", timeout=4)
    w.wait_report(r"watching for new mail", count=2, timeout=4)


# ---- IDLE renewal and the periodic full sync


def test_idle_is_reissued_on_the_same_connection_and_mail_still_arrives(
        sandbox: Any, mail_user: Any, home: Home, proxy: CutProxy, tmp_path: Path) -> None:
    email = mail_user.email
    log = tmp_path / "stderr"
    proc = _cli_watch(home, log, "--debug")  # the protocol log shows every IDLE command sent

    def idles() -> int:
        return len(re.findall(r"(?:> b'|C: )\w+ IDLE\b", log.read_text()))

    try:
        wait_for(lambda: "watching for new mail" in log.read_text() and idles() >= 1, 15, "watch start")
        first = idles()
        time.sleep(3.6)
        renewed = idles() - first
        assert 2 <= renewed <= 5, f"{renewed} IDLE commands re-issued in 3.6 s with a 1 s renewal"
        assert proxy.connections == 1 and "reconnecting" not in log.read_text()  # renewed, not reconnected
        sandbox.deliver(email, msg(1, email))
        wait_for(lambda: mid(1) in local(home), 3, "mail after several renewals")

        # The server announces new mail just as the client ends an IDLE: on a slow link the EXISTS arrives
        # together with the reply to DONE. It must not be lost (it was, until the next full sync: the
        # reply's untagged responses are discarded and the next IDLE does not repeat them).
        proxy.hold()
        sandbox.deliver(email, msg(2, email))
        time.sleep(1.6)  # > the renewal period: meanwhile the client has sent DONE and waits for the reply
        proxy.release()
        wait_for(lambda: mid(2) in local(home), 3, "mail announced while an IDLE was being renewed")
        assert_exactly(home, {mid(1), mid(2)})
        assert proxy.connections == 1
    finally:
        proc.terminate()
        _stopped(proc, 10)
    assert "Traceback" not in log.read_text()


def test_interval_syncs_the_other_folders(sandbox: Any, mail_user: Any, home: Home, proxy: CutProxy,
                                          start_watch: Callable[..., Watcher]) -> None:
    email = mail_user.email
    w = start_watch(interval=1.5)
    w.wait_report(r"watching for new mail")
    # A folder created and filled by another client while the watch sits in IDLE on INBOX only.
    sandbox.doveadm("mailbox", "create", "-u", email, "Lists", check=True)
    sandbox.fill_maildir(email, [msg(1, email)], folder="Lists")
    took = wait_for(lambda: mid(1) in local(home, "Lists"), 6, "mail in a non-watched folder")
    assert took < 4
    # Afterwards INBOX is selected and IDLEd again.
    sandbox.deliver(email, msg(2, email))
    wait_for(lambda: mid(2) in local(home), 4, "INBOX push after the full sync")
    assert local(home, "Lists") == [mid(1)] and local(home) == [mid(2)]
    assert proxy.connections == 1


# ---- errors that must end the watch (through the real CLI)

def test_password_changed_during_watch_stops_with_the_auth_error(
        sandbox: Any, mail_user: Any, home: Home, proxy: CutProxy, tmp_path: Path) -> None:
    log = tmp_path / "stderr"
    proc = _cli_watch(home, log)
    try:
        wait_for(lambda: "watching for new mail" in log.read_text(), 15, "watch start")
        sandbox.add_user(mail_user.email, "changed-in-webmail")  # the user changed it elsewhere
        proxy.cut()
        code = _stopped(proc, 10)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert code == 8, text
    assert "reconnecting in 1 s" in text  # first a normal reconnect ...
    assert "rejected the user name or password" in text and "(not retrying)" in text  # ... then it stops
    assert "Error: The IMAP server" in text and "What to do:" in text  # the full error, as a sync shows it
    assert "Traceback" not in text
    assert proxy.connections == 2  # exactly one attempt with the wrong password


def test_missing_password_variable_stops_the_watch_at_once(home: Home, tmp_path: Path) -> None:
    """A password from an environment variable that is not set cannot appear later: exit 5, no retries."""
    log = tmp_path / "stderr"
    env = {k: v for k, v in os.environ.items() if k != "DM_PW"} | {"DESKMAIL_HOME": str(home.root)}
    with log.open("wb") as f:
        proc = subprocess.Popen([sys.executable, "-c", CLI, "sync", "--watch"], env=env,
                                stdout=subprocess.DEVNULL, stderr=f)
    code = _stopped(proc, 15)
    text = log.read_text()
    assert code == 5, text
    assert "DM_PW" in text and "(not retrying)" in text
    assert "reconnecting" not in text and "Traceback" not in text


def test_untrusted_certificate_on_reconnect_stops_with_the_certificate_error(
        sandbox: Any, home: Home, proxy: CutProxy, tmp_path: Path) -> None:
    from deskmail.sandbox import issue_cert, make_ca

    # An impostor on the same address, with a well-formed certificate from a CA deskmail does not trust.
    impostor_ctx = issue_cert(make_ca("Hotel WiFi Inspection CA"), ["127.0.0.1", "localhost"]).server_context()
    impostor = socket.socket()
    impostor.bind(("127.0.0.1", 0))
    impostor.listen(4)

    def serve() -> None:
        while True:
            try:
                conn, _ = impostor.accept()
            except OSError:
                return
            try:
                with impostor_ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"* OK IMAP ready\r\n")
            except (OSError, ssl.SSLError):
                pass  # the client refuses the certificate

    threading.Thread(target=serve, daemon=True).start()
    log = tmp_path / "stderr"
    proc = _cli_watch(home, log)
    try:
        wait_for(lambda: "watching for new mail" in log.read_text(), 15, "watch start")
        proxy.upstream = impostor.getsockname()
        proxy.cut()
        code = _stopped(proc, 10)
    finally:
        impostor.close()
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert code == 7, text
    assert "is not trusted" in text and "(not retrying)" in text and "Error: The certificate of" in text
    assert "Traceback" not in text
    assert proxy.connections == 2


# ---- the progress display of a plain sync on a terminal


def test_sync_on_a_terminal_shows_progress_and_summary(sandbox: Any, mail_user: Any, home: Home) -> None:
    email = mail_user.email
    sandbox.fill_maildir(email, [msg(i, email, size=20_000) for i in range(40)])
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    env = {**os.environ, "DESKMAIL_HOME": str(home.root), "TERM": "xterm-256color", **home.env}
    env.pop("COLUMNS", None)
    proc = subprocess.Popen([sys.executable, "-m", "deskmail", "sync"], env=env, stdin=slave, stdout=slave,
                            stderr=slave, close_fds=True)
    os.close(slave)
    raw = b""
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            raw += chunk
    finally:
        os.close(master)
        code = proc.wait(10)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw.decode("utf-8", "replace"))
    assert code == 0, text
    frames = [line for line in re.split(r"[\r\n]", text) if line.startswith("a/INBOX ")]
    assert frames, f"no progress line on the terminal: {text!r}"
    final = frames[-1]
    assert re.search(r"\b40/40\b", final), final  # messages done / to do
    assert re.search(r"\b8\d\d\.\d kB\b", final), final  # the bytes received (40 x 20 kB), not "40/40 bytes"
    assert "bytes" not in text
    assert "a: 40 new, 0 flag changes" in text and "INBOX: 40 new" in text  # the summary after the bar
    assert text.index("a: 40 new") > text.rindex("a/INBOX ")
    assert len(files(home)) == 40

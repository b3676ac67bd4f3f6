"""Shared test helpers: run the real CLI in a subprocess, and a small fault proxy."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Home:
    """One isolated deskmail installation (DESKMAIL_HOME) for a test."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(
        self, *args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "DESKMAIL_HOME": str(self.root), "COLUMNS": "200", **self.env, **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "deskmail", *args],
            env=full_env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        full_env = {**os.environ, "DESKMAIL_HOME": str(self.root), **self.env}
        return subprocess.Popen(
            [sys.executable, "-m", "deskmail", *args],
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def all_bytes(self) -> bytes:
        """Every file under DESKMAIL_HOME concatenated (to search for leaked secrets)."""
        blob = bytearray()
        for p in self.root.rglob("*"):
            if p.is_file():
                blob += p.read_bytes()
        return bytes(blob)


def add_imaps_account(home: Home, sandbox: Any, user: Any, *, name: str = "a", imap_port: int | None = None) -> None:
    """Add an IMAPS (+ 587 STARTTLS) account for ``user`` of the sandbox, unverified; ``imap_port`` e.g. a proxy's."""
    port = sandbox.imaps_port if imap_port is None else imap_port
    proc = home.run("account", "add", "--email", user.email, "--name", name, "--imap-host", sandbox.host,
                    "--imap-port", str(port), "--imap-security", "ssl", "--smtp-host", sandbox.host,
                    "--smtp-port", str(sandbox.submission_port), "--smtp-security", "starttls",
                    "--ca-file", str(sandbox.ca_file), "--password-env", "DM_PW", "--no-verify")
    assert proc.returncode == 0, proc.stderr


def wait_for_indexer(data_dir: Path, timeout: float = 60) -> None:
    """Wait until no indexer process (``deskmail.store.indexer DATA_DIR``) works on ``data_dir``.

    A sync that stores messages leaves their search indexing to that process and returns; a test that
    damages, deletes or copies the store's files right after waits for it first (a person's damage
    comes later), or the indexer's last commit races with the test's own writes."""
    needle = b"\0".join([b"deskmail.store.indexer", str(data_dir).encode()])
    deadline = time.monotonic() + timeout
    while any(needle in cmdline for cmdline in _command_lines()):
        assert time.monotonic() < deadline, f"the indexer of {data_dir} still runs after {timeout} s"
        time.sleep(0.01)


def _command_lines() -> Iterator[bytes]:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                yield (proc / "cmdline").read_bytes()
            except OSError:
                continue  # it exited while we looked


def closed_port() -> int:
    """A loopback port on which nothing listens (bound once, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


class RewritingProxy:
    """TCP proxy on 127.0.0.1 that rewrites server->client lines and records client->server bytes.

    Used to strip the STARTTLS offer from a real server (a downgrade attack)
    and to prove afterwards what the client sent; ``rewrite_up`` changes what the
    client sends (to make a real server refuse one command, e.g. POP3 UIDL).
    """

    def __init__(self, upstream: tuple[str, int], drop_line: re.Pattern[bytes] | None = None,
                 rewrite: tuple[re.Pattern[bytes], bytes] | None = None,
                 rewrite_up: tuple[re.Pattern[bytes], bytes] | None = None) -> None:
        self.upstream = upstream
        self.drop_line = drop_line
        self.rewrite = rewrite
        self.rewrite_up = rewrite_up  # applied to each chunk the client sends (commands are short)
        self.client_bytes = bytearray()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self.port = self._listener.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump_up, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump_down, args=(server, client), daemon=True).start()

    def _pump_up(self, client: socket.socket, server: socket.socket) -> None:
        try:
            while data := client.recv(65536):
                self.client_bytes += data
                if self.rewrite_up is not None:
                    data = self.rewrite_up[0].sub(self.rewrite_up[1], data)
                server.sendall(data)
        except OSError:
            pass
        finally:
            server.close()

    def _pump_down(self, server: socket.socket, client: socket.socket) -> None:
        buf = b""
        try:
            while data := server.recv(65536):
                if self.drop_line is None and self.rewrite is None:
                    client.sendall(data)  # nothing to rewrite: pass on at once (a TLS handshake cannot wait)
                    continue
                buf += data
                *lines, buf = buf.split(b"\n")
                out = b""
                for line in lines:
                    line += b"\n"
                    if self.drop_line is not None and self.drop_line.search(line):
                        continue
                    if self.rewrite is not None:
                        line = self.rewrite[0].sub(self.rewrite[1], line)
                    out += line
                client.sendall(out)
        except OSError:
            pass
        finally:
            client.close()

    def close(self) -> None:
        self._stop = True
        self._listener.close()


@contextlib.contextmanager
def secret_service(tmp: Path) -> Iterator[dict[str, str]]:
    """A real freedesktop Secret Service (gnome-keyring) on a private session bus.

    Yields the environment a process needs to use it: the bus address and a HOME whose
    keyring files stay under ``tmp``. Both daemons are stopped by their PIDs afterwards.
    """
    runtime = tmp / "runtime"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "HOME": str(tmp / "home"), "XDG_RUNTIME_DIR": str(runtime)}
    (tmp / "home").mkdir()
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                           stdout=subprocess.PIPE, text=True, env=env)
    daemon: subprocess.Popen[str] | None = None
    try:
        assert bus.stdout is not None
        env["DBUS_SESSION_BUS_ADDRESS"] = bus.stdout.readline().strip()
        daemon = subprocess.Popen(["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  text=True, env=env)
        assert daemon.stdin is not None
        daemon.stdin.write("unlock-pw")
        daemon.stdin.close()
        probe = ("import keyring; k = keyring.get_keyring(); "
                 "print([type(b).__module__ for b in getattr(k, 'backends', [k])][:1])")
        for _ in range(100):  # the daemon registers its bus name shortly after starting
            out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False)
            if "SecretService" in out.stdout:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"the Secret Service did not come up: {out.stdout} {out.stderr}")
        yield {k: env[k] for k in ("HOME", "XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS")}
    finally:
        for proc in (daemon, bus):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)

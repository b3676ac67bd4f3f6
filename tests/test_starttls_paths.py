"""F-24, F-25, F-26 on the paths a person uses: `deskmail sync` (IMAP, POP3) and `deskmail send` (SMTP).

A proxy between deskmail and the real servers (Dovecot's plain IMAP and POP3 ports, the sandbox's
submission port) plays the attacker on the network: it strips the STARTTLS/STLS offer from the
capabilities, injects a forged answer in the same TCP segment as the server's "go ahead" for TLS (the
STARTTLS command-injection attack, CVE-2011-0411 and kin), or turns IMAP's greeting into PREAUTH
(already logged in, so never encrypted). Every time deskmail must stop with a security error (exit
7), and neither the password nor a login command may have crossed the proxy. POP3 and SMTP have no
pre-authenticated greeting, so PREAUTH is IMAP's alone.
"""

from __future__ import annotations

import base64
import re
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from helpers import Home

pytestmark = pytest.mark.servers


class AttackerProxy:
    """A relay that edits the server's lines: ``rewrite`` (regex → bytes) on every line, and
    ``inject_after`` (regex, bytes): the bytes follow the first matching line in the same send()."""

    def __init__(self, upstream: tuple[str, int], *, rewrite: tuple[bytes, bytes] | None = None,
                 inject_after: tuple[bytes, bytes] | None = None) -> None:
        self.upstream = upstream
        self.rewrite = (re.compile(rewrite[0]), rewrite[1]) if rewrite else None
        self.inject = (re.compile(inject_after[0]), inject_after[1]) if inject_after else None
        self.injected = threading.Event()
        self.client_bytes = bytearray()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            up = socket.create_connection(self.upstream)
            threading.Thread(target=self._up, args=(client, up), daemon=True).start()
            threading.Thread(target=self._down, args=(up, client), daemon=True).start()

    def _up(self, client: socket.socket, up: socket.socket) -> None:
        try:
            while data := client.recv(65536):
                self.client_bytes += data
                up.sendall(data)
        except OSError:
            pass
        finally:
            up.close()

    def _down(self, up: socket.socket, client: socket.socket) -> None:
        buf = b""
        try:
            while data := up.recv(65536):
                if self.injected.is_set():
                    client.sendall(data)  # encrypted from here on, or never read again
                    continue
                buf += data
                *lines, buf = buf.split(b"\n")
                out = b""
                for line in lines:
                    line += b"\n"
                    if self.rewrite is not None:
                        line = self.rewrite[0].sub(self.rewrite[1], line)
                    out += line
                    if self.inject is not None and not self.injected.is_set() and self.inject[0].search(line):
                        out += self.inject[1]
                        self.injected.set()
                client.sendall(out)
                if self.injected.is_set() and buf:
                    client.sendall(buf)
                    buf = b""
        except OSError:
            pass
        finally:
            client.close()


def _home(sandbox: Any, user: Any, tmp_path: Path, protocol: str, port: int) -> Home:
    home = Home(tmp_path / "home", env={"DM_PW": user.password})
    if protocol == "imap":
        incoming = ["--imap-host", "127.0.0.1", "--imap-port", str(port), "--imap-security", "starttls"]
    else:
        incoming = ["--protocol", "pop3", "--pop-host", "127.0.0.1", "--pop-port", str(port),
                    "--pop-security", "starttls"]
    smtp_port = port if protocol == "smtp" else sandbox.submission_port
    if protocol == "smtp":
        incoming = ["--imap-host", sandbox.host, "--imap-port", str(sandbox.imaps_port), "--imap-security", "ssl"]
    proc = home.run("account", "add", "--email", user.email, "--name", "a", *incoming,
                    "--smtp-host", "127.0.0.1", "--smtp-port", str(smtp_port), "--smtp-security", "starttls",
                    "--ca-file", str(sandbox.ca_file), "--password-env", "DM_PW", "--no-verify")
    assert proc.returncode == 0, proc.stderr
    return home


UPSTREAM = {"imap": "imap_port", "pop3": "pop3_port", "smtp": "submission_port"}
STRIP = {
    "imap": (rb" STARTTLS", b""),  # from the greeting's [CAPABILITY ...] and from CAPABILITY
    "pop3": (rb"^STLS\r\n", b"X-NONE\r\n"),
    "smtp": (rb"^250([- ])STARTTLS\r\n", rb"250\1X-NONE\r\n"),
}
GO_AHEAD = {"imap": rb"^[A-Za-z0-9]+ OK .*TLS", "pop3": rb"^\+OK .*TLS", "smtp": rb"^220 .*TLS"}
FORGED = {
    "imap": b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] forged in clear\r\n",
    "pop3": b"+OK forged in clear\r\n",
    "smtp": b"250-forged.example\r\n250 AUTH PLAIN LOGIN\r\n",
}


def _attempt(home: Home, protocol: str, user: Any) -> tuple[int, str]:
    if protocol == "smtp":
        proc = home.run("send", "--to", user.email, "--subject", "x", "--body", "y")
    else:
        proc = home.run("sync")
    return proc.returncode, proc.stdout + proc.stderr


def _nothing_secret_sent(proxy: AttackerProxy, user: Any) -> None:
    sent = bytes(proxy.client_bytes)
    assert user.password.encode() not in sent
    forms = [base64.b64encode(f"\0{user.email}\0{user.password}".encode()), base64.b64encode(user.password.encode())]
    assert not any(form in sent for form in forms)
    assert not re.search(rb"(?im)^(\S+ )?(LOGIN|AUTHENTICATE|AUTH|USER|PASS|MAIL FROM)\b", sent), sent[-400:]


@pytest.mark.parametrize("protocol", ["imap", "pop3", "smtp"])
def test_starttls_offer_stripped_is_refused_before_credentials(sandbox: Any, mail_user: Any, tmp_path: Path,
                                                               protocol: str) -> None:
    proxy = AttackerProxy((sandbox.host, getattr(sandbox, UPSTREAM[protocol])), rewrite=STRIP[protocol])
    try:
        home = _home(sandbox, mail_user, tmp_path, protocol, proxy.port)
        code, out = _attempt(home, protocol, mail_user)
        assert code == 7, out
        assert re.search(r"did not offer (STARTTLS|STLS)", out) and "downgrade" in out, out
        assert "Traceback" not in out
        _nothing_secret_sent(proxy, mail_user)
    finally:
        proxy.close()


@pytest.mark.parametrize("protocol", ["imap", "pop3", "smtp"])
def test_answer_injected_with_the_tls_go_ahead_is_refused(sandbox: Any, mail_user: Any, tmp_path: Path,
                                                          protocol: str) -> None:
    proxy = AttackerProxy((sandbox.host, getattr(sandbox, UPSTREAM[protocol])),
                          inject_after=(GO_AHEAD[protocol], FORGED[protocol]))
    try:
        home = _home(sandbox, mail_user, tmp_path, protocol, proxy.port)
        code, out = _attempt(home, protocol, mail_user)
        assert proxy.injected.is_set(), "the go-ahead was never seen"
        assert code == 7, out
        assert "injecting" in out, out
        assert "Traceback" not in out
        _nothing_secret_sent(proxy, mail_user)
    finally:
        proxy.close()


def test_imap_preauth_greeting_is_refused_before_anything_is_sent(sandbox: Any, mail_user: Any,
                                                                  tmp_path: Path) -> None:
    proxy = AttackerProxy((sandbox.host, sandbox.imap_port), rewrite=(rb"^\* OK ", b"* PREAUTH "))
    try:
        home = _home(sandbox, mail_user, tmp_path, "imap", proxy.port)
        code, out = _attempt(home, "imap", mail_user)
        assert code == 7, out
        assert "PREAUTH" in out and "tampering" in out, out
        _nothing_secret_sent(proxy, mail_user)
        assert not re.search(rb"(?i)\b(SELECT|EXAMINE|LIST|STATUS|FETCH)\b", bytes(proxy.client_bytes))
    finally:
        proxy.close()

"""F-27 on the sync path: a man in the middle presenting a certificate that must not be accepted.

A TLS server on loopback stands where the account's IMAPS server is, with a certificate signed by the
very CA the account trusts (the sandbox's), so that only the one property under test is wrong: another
server name, expired; and one from another CA (a changed certificate, as an interceptor presents).
`deskmail sync` (whose command-line fast path dials TLS before reading the configuration) must stop
with exit 7 and the precise code, and no byte of IMAP may reach the impostor.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest

from deskmail.sandbox.servers import CertificateAuthority, issue_cert, make_ca
from helpers import Home, add_imaps_account

pytestmark = pytest.mark.servers


class Impostor:
    """Accepts TLS with ``context``; records whatever a client sends after a completed handshake."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.handshakes = 0
        self.received = bytearray()
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
                raw, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(10)
        try:
            with self.context.wrap_socket(raw, server_side=True) as tls:
                self.handshakes += 1
                tls.sendall(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] impostor ready\r\n")
                while data := tls.recv(4096):
                    self.received += data
        except (OSError, ssl.SSLError):
            pass


def _ca(sandbox: Any) -> CertificateAuthority:
    tls = Path(sandbox.ca_file).parent
    return CertificateAuthority.load(tls / "ca.crt", tls / "ca.key")


@pytest.mark.parametrize("kind", ["wrong_name", "expired", "other_ca"])
def test_sync_refuses_a_certificate_it_must_not_accept(sandbox: Any, mail_user: Any, tmp_path: Path,
                                                       kind: str) -> None:
    now = dt.datetime.now(dt.UTC)
    if kind == "wrong_name":
        leaf = issue_cert(_ca(sandbox), ["mail.other-provider.example"])
        code, words = "certificate_hostname_mismatch", "not valid for the name"
    elif kind == "expired":
        leaf = issue_cert(_ca(sandbox), ["127.0.0.1", "localhost"], not_before=now - dt.timedelta(days=60),
                          not_after=now - dt.timedelta(days=1))
        code, words = "certificate_expired", "has expired"
    else:
        leaf = issue_cert(make_ca("Mail Shield Root"), ["127.0.0.1", "localhost"])
        code, words = "certificate_untrusted", "not trusted"
    impostor = Impostor(leaf.server_context())
    try:
        home = Home(tmp_path / "home", env={"DM_PW": mail_user.password})
        add_imaps_account(home, sandbox, mail_user, imap_port=impostor.port)
        proc = home.run("sync", "--json")
        assert proc.returncode == 7, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr
        error = json.loads(proc.stdout)
        error = error.get("a", error)
        assert error["code"] == code and words in error["what"], error
        assert impostor.handshakes == 0 and bytes(impostor.received) == b"", "nothing may reach the impostor"
        assert mail_user.password not in proc.stdout + proc.stderr
    finally:
        impostor.close()

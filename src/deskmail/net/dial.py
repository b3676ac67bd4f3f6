"""Open the TCP (and, for SSL/TLS, the TLS) connection to a server in a thread.

`deskmail sync` starts this before it imports anything else of deskmail: a no-change
sync is ~50 ms, and the TLS handshake, the login and the server opening folders are
waits that the rest of the start-up (reading the configuration, importing the store
and the sync engine) can fill. Nothing is sent but the TLS handshake, which verifies the
certificate exactly as any other connection does (:func:`deskmail.net.tls.client_context`).

This module imports only what the connection needs (socket, ssl, threading): whatever
it imports is on the critical path of every sync.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import _socket
    import socket

    from deskmail.model import Account


class Dial:
    """One connection being opened; :meth:`take` hands it over (or raises what went wrong)."""

    def __init__(self, host: str, port: int, tls: bool, ca_file: str, timeout: float = 60.0) -> None:
        self.key = (host, port, tls, ca_file)
        self._timeout = timeout
        self._sock: socket.socket | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._abandoned = False
        self.on_network = threading.Event()  # set once the thread waits for the server (or has finished)
        self._thread = threading.Thread(target=self._run, name=f"dial-{host}", daemon=True)
        self._thread.start()

    def serves(self, account: Account) -> bool:
        """Whether this connection goes where ``account`` connects to, checked as ``account`` would."""
        server = account.incoming
        return self.key == (server.host, server.port, server.security.value == "ssl", account.ca_file)

    def let_it_start(self) -> None:
        """Wait until the thread's imports are done: they are on the critical path, the caller's are not."""
        self.on_network.wait(timeout=2.0)

    def _run(self) -> None:
        try:
            host, port, tls, ca_file = self.key
            # An ASCII name as bytes: a str goes through the "idna" codec, whose import
            # (with stringprep and unicodedata) costs ~1 ms here.
            address: str | bytes = host.encode("ascii") if host.isascii() else host
            # Connect before importing socket.py and ssl (~10 ms): the server starts its side
            # meanwhile. Dovecot forks a login process per connection, and a TLS handshake
            # begun at once waits ~5 ms for it; begun 10 ms later, ~1 ms.
            raw = _connect(address, port, self._timeout)
            try:
                import socket

                from deskmail.net.tls import client_context

                sock = socket.socket(raw.family, raw.type, raw.proto, fileno=raw.detach())
            except BaseException:
                raw.close()
                raise
            try:
                sock.settimeout(self._timeout)
                if tls:
                    ctx = client_context(ca_file)
                    self.on_network.set()
                    sock = ctx.wrap_socket(sock, server_hostname=address)  # (bytes: no idna codec either)
            except BaseException:
                sock.close()
                raise
            with self._lock:
                if self._abandoned:
                    sock.close()
                else:
                    self._sock = sock
        except BaseException as exc:
            self._error = exc
        finally:
            self.on_network.set()

    def take(self) -> socket.socket:
        """The connected socket, once; the connection's exception is raised here, in the caller's thread."""
        self._thread.join()
        sock, self._sock = self._sock, None
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if sock is None:
            raise RuntimeError("the dialed connection was already taken (or closed)")
        return sock

    def close(self) -> None:
        """Close the connection if nobody took it; returns at once, even while the thread still waits."""
        with self._lock:
            self._abandoned = True
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


def _connect(host: str | bytes, port: int, timeout: float) -> _socket.socket:
    """socket.create_connection() (each address in turn, the last error raised) on the C-level socket.

    Written out because create_connection lives in socket.py, whose import (enum, selectors:
    ~5 ms) is exactly what this connection is meant to get ahead of.
    """
    import _socket

    error: OSError | None = None
    for family, kind, proto, _name, address in _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
        raw = _socket.socket(family, kind, proto)
        try:
            raw.settimeout(timeout)
            raw.connect(address)
        except OSError as exc:
            raw.close()
            error = exc
            continue
        return raw
    raise error if error is not None else OSError(f"no address found for {host!r}")

"""Translate socket/TLS failures into deskmail errors, in one place for all protocols."""

from __future__ import annotations

import errno
import socket
import ssl
from typing import Any

from deskmail.codes import Code
from deskmail.errors import (
    ConnectTimeout,
    DeskmailError,
    NetworkError,
    PlaintextRefused,
    SecurityError,
)
from deskmail.model import Account, Security, ServerSettings
from deskmail.net.tls import certificate_error


def check_plaintext_policy(account: Account, server: ServerSettings) -> None:
    """Refuse to send a password in clear unless the user asked for exactly that."""
    if server.security is Security.NONE and not account.allow_plaintext_password:
        raise PlaintextRefused(
            f"{server.describe()} is set to use no encryption, so the password would travel in clear",
            "the account's security setting is 'none'",
            "use SSL/TLS or STARTTLS (ask your provider which); if you really must, set "
            "allow_plaintext_password = true for this account",
            account=account.name, host=server.host, port=server.port,
        )


def plaintext_warnings(account: Account) -> list[str]:
    """The warning shown on every run of an account that sends its password unencrypted (by its owner's choice)."""
    return [
        f"Warning: {server.describe()} is used without encryption: your password and mail travel in clear text."
        for server in (account.incoming, account.outgoing)
        if server.security is Security.NONE and account.allow_plaintext_password
    ]


def waiting_in_clear(sock: socket.socket, reader: Any) -> int:
    """Bytes received after the server's go-ahead for TLS and not read yet (in ``reader``, a socket
    file, or in the socket), without waiting for more: anything there came in clear, from someone in
    the middle (STARTTLS response injection), and must end the session rather than be discarded."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return len(reader.peek(1)) if reader is not None else len(sock.recv(1, socket.MSG_PEEK))
    except (BlockingIOError, InterruptedError):
        return 0
    finally:
        sock.settimeout(timeout)


def translate(exc: BaseException, server: ServerSettings) -> DeskmailError:
    """Map an exception raised while connecting/talking to ``server`` to a user-facing error."""
    if isinstance(exc, DeskmailError):
        return exc
    where = f"{server.host}:{server.port}"
    kind = server.protocol.value.upper()
    if isinstance(exc, ssl.SSLCertVerificationError):
        return certificate_error(exc, server.host, server.port)
    if isinstance(exc, ssl.SSLError):
        reason = getattr(exc, "reason", "") or str(exc)
        if reason in ("WRONG_VERSION_NUMBER", "UNEXPECTED_EOF_WHILE_READING", "RECORD_LAYER_FAILURE") or (
            "wrong version number" in str(exc)
        ):
            return SecurityError(
                f"The {kind} server {where} did not answer with TLS ({reason})",
                "SSL/TLS is chosen, but this port expects a plain-text start followed by STARTTLS "
                "(or it is not a mail port at all)",
                f"set the {kind} security to STARTTLS for port {server.port}, or use the SSL/TLS port "
                "your provider documents",
                code=Code.TLS_MODE_MISMATCH, host=server.host, port=server.port,
            )
        if reason in ("UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION", "NO_PROTOCOLS_AVAILABLE"):
            return SecurityError(
                f"The {kind} server {where} only offers an outdated TLS version",
                "deskmail requires TLS 1.2 or newer; the server is too old",
                "ask the provider to enable TLS 1.2; do not lower the security setting",
                code=Code.TLS_VERSION, host=server.host, port=server.port,
            )
        return SecurityError(
            f"The TLS handshake with {where} failed ({reason})",
            "the server's TLS setup is broken, or something on the network interferes",
            "check the port and security settings; the connection doctor tells what the server speaks",
            code=Code.TLS_HANDSHAKE_FAILED, host=server.host, port=server.port,
        )
    if isinstance(exc, socket.gaierror):
        return NetworkError(
            f"The server name {server.host} cannot be found",
            "the name is misspelt, or there is no working internet/DNS connection",
            "check the server name in the account settings and your internet connection",
            code=Code.DNS_NOT_FOUND, host=server.host, port=server.port,
        )
    if isinstance(exc, ConnectionRefusedError):
        return NetworkError(
            f"The {kind} server {where} refused the connection",
            "nothing is listening on that port: the port number is wrong or the server is down",
            f"check the {kind} port (common: {_common_ports(server)})",
            code=Code.CONNECTION_REFUSED, host=server.host, port=server.port,
        )
    if isinstance(exc, TimeoutError | socket.timeout):
        cause = "a firewall, antivirus or the network is blocking the port, or the server is overloaded"
        if server.security is Security.STARTTLS:
            cause += "; or the port expects SSL/TLS from the start while STARTTLS is chosen"
        return ConnectTimeout(
            f"The {kind} server {where} did not answer in time",
            cause,
            f"allow outgoing connections to port {server.port} in your firewall/antivirus; "
            "the connection doctor finds which port works",
            code=Code.CONNECTION_TIMEOUT, host=server.host, port=server.port,
        )
    if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return NetworkError(
            f"The network to {where} is unreachable",
            "this computer is offline, or has no route to the server (IPv6-only problem, VPN)",
            "check the internet connection",
            code=Code.NETWORK_UNREACHABLE, host=server.host, port=server.port,
        )
    if isinstance(exc, ConnectionError | EOFError) or (
        isinstance(exc, OSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE)
    ):
        return NetworkError(
            f"The connection to {where} was closed unexpectedly",
            "the network dropped, or the server closed the session",
            "try again; if it keeps happening, the connection doctor looks at each step",
            host=server.host, port=server.port,
        )
    if isinstance(exc, OSError):
        return NetworkError(f"Cannot talk to {where} ({exc.strerror or exc})", "",
                            "the connection doctor looks at each step", host=server.host, port=server.port)
    return NetworkError(f"Unexpected failure talking to {where} ({type(exc).__name__})", "", "try again",
                        host=server.host, port=server.port)


def _common_ports(server: ServerSettings) -> str:
    return {
        "imap": "993 with SSL/TLS, 143 with STARTTLS",
        "pop3": "995 with SSL/TLS, 110 with STARTTLS",
        "smtp": "587 with STARTTLS, 465 with SSL/TLS",
    }[server.protocol.value]

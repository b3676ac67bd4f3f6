"""POP3 adapter (stdlib poplib), under deskmail's TLS policy.

poplib handles implicit TLS (POP3_SSL) and the commands. We never turn on its
debugging (it prints PASS lines); this module logs the transcript itself, the
password by structure (:meth:`_LoggedMixin.pass_` marks the one line that carries
it). Whether STLS is offered and accepted is decided by :mod:`deskmail.protocol.core`.
"""

from __future__ import annotations

import poplib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from deskmail.errors import AuthError, ProtocolError, SecurityError, StartTLSUnavailable
from deskmail.model import Account, Security, ServerSettings
from deskmail.net.connect import check_plaintext_policy, translate, waiting_in_clear
from deskmail.net.log import protocol_log
from deskmail.net.tls import client_context
from deskmail.protocol import bearer, core
from deskmail.protocol.imap_stream import Sink
from deskmail.secrets import Secret

# Allow long lines from chatty servers without giving up the memory bound.
_MAX_LINE = 1024 * 1024
poplib._MAXLINE = _MAX_LINE  # type: ignore[attr-defined]


class _LoggedMixin:
    _secret: tuple[str, str] | None = None  # (password, user) while PASS is on the wire

    def pass_(self, pswd: str) -> bytes:
        [segment] = core.pop3_pass(pswd)
        self._secret = (pswd, getattr(self, "_deskmail_user", ""))
        try:
            protocol_log.debug("C: %s", segment.shown)
            self._putline(segment.data[:-2])  # type: ignore[attr-defined]
            return self._getresp()
        finally:
            self._secret = None

    def auth_bearer(self, mechanism: str, message: bytes) -> tuple[bytes, bytes]:
        """AUTH with an initial response (RFC 5034): (the final status line, the error challenge or b"").

        Sent and logged by structure, like PASS; an error challenge (``+ <base64 JSON>``) is answered
        with the mechanism's abort so the server ends the exchange with its -ERR.
        """
        segment = core.pop3_auth(mechanism, message)
        protocol_log.debug("C: %s", segment.shown)
        self._putline(segment.data[:-2])  # type: ignore[attr-defined]
        line: bytes = self._getline()[0]  # type: ignore[attr-defined]
        challenge = b""
        if line.startswith(b"+ ") or line == b"+":
            challenge = line[1:].strip()
            protocol_log.debug("S: + (error challenge, %d bytes)", len(challenge))
            protocol_log.debug("C: (end of the exchange)")
            self._putline(core.sasl_abort(mechanism))  # type: ignore[attr-defined]
            line = self._getline()[0]  # type: ignore[attr-defined]
        protocol_log.debug("S: %s", line.decode("utf-8", "replace"))
        return line, challenge

    def user(self, user: str) -> bytes:
        self._deskmail_user = user
        return super().user(user)  # type: ignore[misc, no-any-return]

    def _putcmd(self, line: str) -> None:
        protocol_log.debug("C: %s", line)  # PASS never comes this way: see pass_
        super()._putcmd(line)  # type: ignore[misc]

    def _getresp(self) -> bytes:
        resp = super()._getresp()  # type: ignore[misc]
        if protocol_log.enabled:
            said = resp.decode("utf-8", "replace")
            if self._secret is not None and core.repeats_secret(said, *self._secret):
                said = "(the server's answer repeats the credentials; not shown)"
            protocol_log.debug("S: %s", said)
        return resp  # type: ignore[no-any-return]


class _POP3(_LoggedMixin, poplib.POP3):
    pass


class _POP3S(_LoggedMixin, poplib.POP3_SSL):
    pass


class Pop3Session:
    def __init__(self, pop: poplib.POP3, server: ServerSettings) -> None:
        self._p = pop
        self.server = server

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except poplib.error_proto as exc:
            raise ProtocolError(
                f"The POP3 server {self.server.host} refused a command ({exc})",
                "the server does not support it, or the mailbox is busy",
                "try again later",
            ) from exc
        except OSError as exc:
            raise translate(exc, self.server) from exc

    def uidl_listing(self) -> Iterator[tuple[int, str]] | None:
        """(message number, unique id) of every message, read as it is consumed; None without UIDL.

        poplib's uidl() keeps the whole listing, one line per message, which grows with the
        mailbox; this reads it line by line from the socket file, as :meth:`retrieve_stream`
        reads messages. Consume it completely before sending the next command.
        """
        try:
            self._p._putcmd("UIDL")  # type: ignore[attr-defined]
            self._p._getresp()  # type: ignore[attr-defined]
        except poplib.error_proto:
            return None
        except OSError as exc:
            raise translate(exc, self.server) from exc
        return self._uidl_lines()

    def _uidl_lines(self) -> Iterator[tuple[int, str]]:
        try:
            for line in _multiline(self._p.file, "listing"):
                num, _, uid = line.decode("ascii", "replace").partition(" ")
                try:
                    number = int(num)
                except ValueError:
                    raise ProtocolError(
                        f"The POP3 server {self.server.host} sent an unreadable UIDL line: {line[:80]!r}",
                        "the server does not follow RFC 1939, or the connection is garbling data",
                        "sync again; if it persists, report it to your provider",
                    ) from None
                yield number, uid.strip()
        except OSError as exc:
            raise translate(exc, self.server) from exc

    def message_count(self) -> int:
        """STAT: the number of messages, numbered 1..count at the start of a session (RFC 1939)."""
        count, _octets = self._call(self._p.stat)
        return int(count)

    def capabilities(self) -> set[str]:
        try:
            return {k.upper() for k in self._p.capa()}
        except (poplib.error_proto, OSError):
            return set()

    def retrieve_stream(
        self, numbers: Iterable[int], open_sink: Callable[[int], Sink], *, pipelining: bool
    ) -> Iterator[int]:
        """RETR each message straight into ``open_sink(number)``; yields the number when it is complete.

        poplib reads a whole message into a list of lines; this reads line by line
        from the same buffered socket file, un-stuffs dots, and with PIPELINING
        (RFC 2449) keeps up to WINDOW commands in flight, which is most of the
        speed on a real network. ``numbers`` is consumed lazily, at most WINDOW
        ahead of the message being read, so it can be a cursor over any number of messages.
        """
        window = 32 if pipelining else 1
        todo = iter(numbers)
        in_flight: deque[int] = deque()
        reader = self._p.file
        try:
            while True:
                while len(in_flight) < window and (number := next(todo, None)) is not None:
                    self._p._putline(f"RETR {number}".encode())  # type: ignore[attr-defined]
                    in_flight.append(number)
                if not in_flight:
                    return
                number = in_flight.popleft()
                status = reader.readline(_MAX_LINE)
                if not status.startswith(b"+OK"):
                    raise ProtocolError(
                        f"The POP3 server refused to send message {number}: "
                        f"{status.decode('utf-8', 'replace').strip()}",
                        "the message was deleted by another client, or the mailbox is locked",
                        "sync again",
                    )
                sink = open_sink(number)
                for line in _multiline(reader, "message"):
                    sink.write(line)
                yield number
        except OSError as exc:
            raise translate(exc, self.server) from exc

    def top_headers(self, number: int) -> bytes:
        _resp, lines, _octets = self._call(self._p.top, number, 0)
        return b"\r\n".join(lines) + b"\r\n"

    def retrieve(self, number: int) -> bytes:
        _resp, lines, _octets = self._call(self._p.retr, number)
        return b"\r\n".join(lines) + b"\r\n"

    def delete(self, number: int) -> None:
        self._call(self._p.dele, number)

    def quit(self) -> None:
        try:
            self._p.quit()
        except (poplib.error_proto, OSError):
            self._p.close()


@contextmanager
def open_pop3(account: Account, password: Secret, *, timeout: float = 30.0) -> Iterator[Pop3Session]:
    server = account.incoming
    check_plaintext_policy(account, server)
    ctx = client_context(account.ca_file)
    pop: poplib.POP3
    try:
        if server.security is Security.SSL:
            pop = _POP3S(server.host, server.port, timeout=timeout, context=ctx)
        else:
            pop = _POP3(server.host, server.port, timeout=timeout)
    except poplib.error_proto as exc:
        raise ProtocolError(f"{server.describe()} sent an unusable greeting ({exc})") from exc
    except OSError as exc:
        raise translate(exc, server) from exc
    session = Pop3Session(pop, server)
    try:
        try:
            if server.security is Security.STARTTLS:
                _stls(pop, server, ctx)
            if server.auth == "oauth2":
                _sign_in_bearer(pop, server, password, bearer.preferred_mechanism(account))
            else:
                pop.user(server.username)
                pop.pass_(password.reveal())
        except poplib.error_proto as exc:
            text = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
            raise AuthError(
                f"The POP3 server {server.host}:{server.port} rejected the login for {server.username} ({text})",
                "the password is wrong, the user name has the wrong form (full address vs. name only), "
                "or an app password is required",
                "check the password in the provider's webmail; if two-step verification is on, create "
                "an app password",
            ) from None
        except OSError as exc:
            raise translate(exc, server) from exc
        yield session
    finally:
        session.quit()


def _sign_in_bearer(pop: poplib.POP3, server: ServerSettings, token: Secret, preferred: str) -> None:
    try:
        capa = pop.capa()
    except poplib.error_proto:
        capa = {}
    offered = core.pop3_server_caps(" ".join([name, *args]) for name, args in capa.items()).auth_mechanisms
    mechanism = core.bearer_mechanism(preferred, offered)

    def attempt(secret: Secret) -> core.BearerRefusal | None:
        message = core.sasl_bearer(mechanism, server.username, secret.reveal(), server.host, server.port)
        line, challenge = pop.auth_bearer(mechanism, message)  # type: ignore[attr-defined]
        if core.pop3_ok(line):
            return None
        if b"[SYS/TEMP]" in line.upper():
            raise ProtocolError(
                f"The POP3 server {server.host}:{server.port} could not check the sign-in now "
                f"({line.decode('utf-8', 'replace')})",
                "the server's connection to the provider's token service failed (a temporary fault there)",
                "try again later; the sign-in is kept",
                host=server.host, port=server.port,
            )
        return core.bearer_refusal(challenge)

    bearer.sign_in(token, attempt, server)


def _stls(pop: poplib.POP3, server: ServerSettings, ctx: Any) -> None:
    """STLS (RFC 2595) when CAPA offers it; poplib's stls() without its second CAPA check."""
    try:
        capa = pop.capa()
    except poplib.error_proto:
        capa = {}
    offered = core.pop3_server_caps(" ".join([name, *args]) for name, args in capa.items()).starttls
    try:
        if not offered:
            raise poplib.error_proto("-ERR STLS not supported by server")
        pop._shortcmd("STLS")  # type: ignore[attr-defined]
    except poplib.error_proto as exc:
        raise StartTLSUnavailable(
            f"The POP3 server {server.host}:{server.port} did not offer STLS encryption ({exc})",
            "the server does not support it, or someone on the network removed the offer "
            "(a downgrade attack); deskmail never continues without encryption",
            "use SSL/TLS on port 995 if your provider offers it",
        ) from None
    if core.starttls_outcome(True, waiting_in_clear(pop.sock, pop.file)) == core.STARTTLS_INJECTED:
        raise SecurityError(
            f"The POP3 server {server.host}:{server.port} sent data in clear after agreeing to encrypt",
            "someone on the network is injecting commands or answers (a STARTTLS injection attack)",
            "do not use this network for mail; connect with SSL/TLS (port 995) instead",
        )
    pop.sock = ctx.wrap_socket(pop.sock, server_hostname=server.host)
    pop.file = pop.sock.makefile("rb")
    pop._tls_established = True  # type: ignore[attr-defined]


def _multiline(reader: Any, what: str) -> Iterator[bytes]:
    """The lines of a multi-line POP3 answer (RFC 1939 §3), dot-unstuffed, up to the final ".\r\n"."""
    while True:
        line = reader.readline(_MAX_LINE)
        if not line:
            raise ConnectionResetError(f"the POP3 server closed the connection mid-{what}")
        if line in (b".\r\n", b".\n"):
            return
        yield line[1:] if line.startswith(b"..") else line

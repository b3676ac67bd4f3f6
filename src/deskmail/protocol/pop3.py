"""POP3 adapter (stdlib poplib), under deskmail's TLS policy.

poplib handles implicit TLS (POP3_SSL) and STLS with a given context, and
refuses STLS when CAPA does not list it. We never turn on its debugging
(it prints PASS lines); this module logs a redacted transcript itself.
"""

from __future__ import annotations

import poplib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from deskmail.errors import AuthError, ProtocolError, StartTLSUnavailable
from deskmail.model import Account, Security, ServerSettings
from deskmail.net.connect import check_plaintext_policy, translate
from deskmail.net.log import protocol_log, redact_command
from deskmail.net.tls import client_context
from deskmail.secrets import Secret

# Allow long lines from chatty servers without giving up the memory bound.
poplib._MAXLINE = 64 * 1024  # type: ignore[attr-defined]


class _LoggedMixin:
    def _putcmd(self, line: str) -> None:
        protocol_log.debug("C: %s", redact_command(line))
        super()._putcmd(line)  # type: ignore[misc]

    def _getresp(self) -> bytes:
        resp = super()._getresp()  # type: ignore[misc]
        protocol_log.debug("S: %s", resp.decode("utf-8", "replace"))
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

    def uidl(self) -> dict[int, str] | None:
        """Message number -> unique id, or None when the server has no UIDL."""
        try:
            _resp, lines, _octets = self._p.uidl()
        except poplib.error_proto:
            return None
        except OSError as exc:
            raise translate(exc, self.server) from exc
        out: dict[int, str] = {}
        for line in lines:
            num, _, uid = line.decode("ascii", "replace").partition(" ")
            out[int(num)] = uid.strip()
        return out

    def sizes(self) -> dict[int, int]:
        _resp, lines, _octets = self._call(self._p.list)
        out: dict[int, int] = {}
        for line in lines:
            num, _, size = line.decode("ascii", "replace").partition(" ")
            out[int(num)] = int(size.split()[0]) if size.strip() else 0
        return out

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
                try:
                    pop.stls(ctx)
                except poplib.error_proto as exc:
                    raise StartTLSUnavailable(
                        f"The POP3 server {server.host}:{server.port} did not offer STLS encryption ({exc})",
                        "the server does not support it, or someone on the network removed the offer "
                        "(a downgrade attack); deskmail never continues without encryption",
                        "use SSL/TLS on port 995 if your provider offers it",
                    ) from None
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

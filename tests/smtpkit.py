"""A scripted submission server for the outbox's fault tests: aiosmtpd in a thread of the test process.

STARTTLS required (the sandbox's certificate, so accounts trust it through the sandbox CA), AUTH PLAIN/LOGIN
required, and per test: a reply per recipient (``rcpt``: address -> "451 …" or "550 …"), a cut once a RCPT
arrives (``after_rcpt``), a reply to the DATA command (``data_command_reply``), a reply to the final
dot (``data_reply``), or what happens after the dot (``after_dot``: "drop" closes the connection before any
reply, "hang" never answers). It counts what it saw: connections (that said EHLO), AUTHs, transactions, and
the messages it accepted (the whole data, in ``received``; also those it then dropped or hung on: they were
received, the client just never heard so).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from deskmail.sandbox.servers import server_ssl_context


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes


@dataclass
class Script:
    rcpt: dict[str, str] = field(default_factory=dict)
    mail_reply: str = ""
    data_reply: str = ""
    after_dot: str = ""  # "", "drop", "hang"
    after_rcpt: str = ""  # "drop": the connection closed once a RCPT arrived, before its reply
    data_command_reply: str = ""  # the answer to the DATA command itself (before any message byte)


class _Handler:
    def __init__(self, owner: ScriptedSmtp) -> None:
        self.owner = owner

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        with self.owner.lock:
            self.owner.ehlo_peers.add(session.peer)  # one per TCP connection (STARTTLS starts a new session)
        return responses

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        with self.owner.lock:
            self.owner.transactions += 1
            self.owner.mail_options.append(list(options))
        if self.owner.script.mail_reply:
            return self.owner.script.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        if self.owner.script.after_rcpt == "drop":
            assert server.transport is not None
            server.transport.abort()
            return "250 2.1.5 never read"
        reply = self.owner.script.rcpt.get(address, "")
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        script = self.owner.script
        if script.data_reply and script.data_reply[0] in "45":
            return script.data_reply
        with self.owner.lock:
            self.owner.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos),
                                                bytes(envelope.original_content or b"")))
        if script.after_dot == "drop":
            assert server.transport is not None
            server.transport.abort()
            return "250 2.0.0 never read"
        if script.after_dot == "hang":
            await asyncio.sleep(3600)
        return script.data_reply or "250 2.0.0 OK queued"


class _Server(SMTP):
    async def smtp_DATA(self, arg: str) -> None:
        reply = self.event_handler.owner.script.data_command_reply
        if reply and self.envelope is not None and self.envelope.rcpt_tos:
            await self.push(reply)  # refused before the 354: the client never sends the message
            return
        await super().smtp_DATA(arg)


class ScriptedSmtp:
    """Start with :meth:`start`; ``port`` is where it listens on 127.0.0.1 (STARTTLS)."""

    def __init__(self, sandbox: Any, user: Any, port: int, *, size_limit: int = 33554432,
                 smtputf8: bool = True) -> None:
        self.script = Script()
        self.lock = threading.Lock()
        self.ehlo_peers: set[Any] = set()
        self.auths = 0
        self.transactions = 0
        self.mail_options: list[list[str]] = []
        self.received: list[Received] = []
        self.port = port
        tls_dir = Path(sandbox.root) / "tls"
        tls = server_ssl_context(tls_dir / "fullchain.crt", tls_dir / "server.key")
        handler = _Handler(self)
        owner = self

        def authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                         auth_data: Any) -> AuthResult:
            ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user.email
                  and auth_data.password.decode() == user.password)
            with owner.lock:
                owner.auths += 1
            return AuthResult(success=ok, handled=False)

        class _Controller(Controller):
            def factory(self) -> SMTP:
                return _Server(handler, hostname="scripted.test", tls_context=tls, require_starttls=True,
                               auth_required=True, auth_require_tls=True, authenticator=authenticate,
                               data_size_limit=size_limit, enable_SMTPUTF8=smtputf8)

        self._controller = _Controller(handler, hostname="127.0.0.1", port=port)

    @property
    def connections(self) -> int:
        """TCP connections that said EHLO (the controller's own start-up probe does not)."""
        return len(self.ehlo_peers)

    def start(self) -> ScriptedSmtp:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def count(self, needle: bytes) -> int:
        """How many accepted messages contain ``needle`` (a Message-ID, a subject)."""
        with self.lock:
            return sum(needle in r.data for r in self.received)

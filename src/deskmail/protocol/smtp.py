"""SMTP submission adapter (stdlib smtplib), under deskmail's TLS policy.

smtplib is well kept, synchronous (easy to run off the GUI thread) and
supports both 465 implicit TLS and 587 STARTTLS. Its own debug output prints
AUTH blobs, so it is never enabled; this module logs the transcript itself
through :data:`deskmail.net.log.protocol_log`, the AUTH exchange by structure
(while smtplib authenticates, every client line is credentials and is logged as
``****``). What the EHLO answer offers is read by :mod:`deskmail.protocol.core`.
"""

from __future__ import annotations

import base64
import hmac
import re
import smtplib
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

from deskmail.codes import Code
from deskmail.errors import AuthError, ProtocolError, SecurityError, SendError, StartTLSUnavailable
from deskmail.model import Account, Security, ServerSettings
from deskmail.net.connect import check_plaintext_policy, translate, waiting_in_clear
from deskmail.net.log import protocol_log
from deskmail.net.tls import client_context
from deskmail.protocol import bearer, core
from deskmail.secrets import Secret


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


class _SMTP(smtplib.SMTP):
    """The transcript: commands as sent, replies as received, credentials never.

    smtplib sends AUTH from :meth:`auth`: while it runs, the first line is logged as
    ``AUTH <mechanism> ****`` and every further client line as ``****`` (they are the
    challenge answers), and a reply that repeats the credentials is not shown. After
    a 354 (DATA go-ahead) the next send is the message itself, logged by size only.
    """

    _auth: tuple[str, str, str] | None = None  # (mechanism, user, password) while authenticating
    _auth_lines = 0

    def auth(self, mechanism: str, authobject: Any, *, initial_response_ok: bool = True) -> tuple[int, bytes]:
        """smtplib's exchange, its answers encoded as UTF-8 (RFC 4616, RFC 4954) where smtplib encodes them as
        ASCII: there a password with "ü" or "ß" raised UnicodeEncodeError from every login."""
        self._auth, self._auth_lines = (mechanism, str(getattr(self, "user", "")),
                                        str(getattr(self, "password", ""))), 0
        try:
            mechanism = mechanism.upper()
            initial = authobject() if initial_response_ok else None
            if initial is not None:
                code, resp = self.docmd("AUTH", f"{mechanism} {_b64(initial)}")
                self._auth_challenge_count = 1
            else:
                code, resp = self.docmd("AUTH", mechanism)
                self._auth_challenge_count = 0
            while code == 334:  # a challenge: answer it (smtplib's own auth_login counts on the count)
                self._auth_challenge_count += 1
                code, resp = self.docmd(_b64(authobject(base64.decodebytes(resp))))
                if self._auth_challenge_count > 5:
                    raise smtplib.SMTPException(f"The server's AUTH does not end (last answer {code} {resp!r})")
            if code in (235, 503):
                return code, resp
            raise smtplib.SMTPAuthenticationError(code, resp)
        finally:
            self._auth = None

    def auth_cram_md5(self, challenge: bytes | None = None) -> str | None:  # type: ignore[override]
        """smtplib's, with the password's UTF-8 bytes as the key (its own takes ASCII only)."""
        if challenge is None:
            return None
        return f"{self.user} {hmac.HMAC(self.password.encode('utf-8'), challenge, 'md5').hexdigest()}"

    def send(self, s: Any) -> None:
        if self._auth is not None:
            self._auth_lines += 1
            protocol_log.debug("C: %s", f"AUTH {self._auth[0]} ****" if self._auth_lines == 1 else "****")
        elif protocol_log.enabled:
            text = s.decode("utf-8", "replace") if isinstance(s, bytes) else str(s)
            protocol_log.debug("C: %s", text.strip())
        super().send(s)

    def send_data(self, source: BinaryIO) -> None:
        """The message after the 354 (dot-stuffed, CRLF lines, the final dot), read from ``source`` a chunk
        at a time; logged by its size only."""
        stuffer = DotStuffer()
        size = 0
        ready = b""  # each chunk waits for the next read: the last one goes out with the final dot, in one
        # write (a small write after another waits for the server's delayed ACK, ~40 ms: Nagle's algorithm)
        while chunk := source.read(_CHUNK):
            if ready:
                smtplib.SMTP.send(self, ready)
            ready = stuffer.feed(chunk)
            size += len(chunk)
        protocol_log.debug("C: <message, %d bytes>", size)
        smtplib.SMTP.send(self, ready + stuffer.end())

    def getreply(self) -> tuple[int, bytes]:
        if _QUICKACK is not None and self.sock is not None:
            # ACK at once what arrives: a server that writes a multi-line reply (EHLO) line by line has each
            # further line held back by Nagle's algorithm until that ACK, which a client waiting to read
            # would otherwise delay by ~40 ms (Linux; the setting lasts a while only, hence before each reply)
            try:
                self.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                pass
        code, msg = super().getreply()
        if protocol_log.enabled:
            said = msg.decode("utf-8", "replace").replace("\n", " | ")
            if self._auth is not None and core.repeats_secret(said, self._auth[2], self._auth[1]):
                said = "(the server's answer repeats the credentials; not shown)"
            protocol_log.debug("S: %d %s", code, said)
        return code, msg


_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)
_CHUNK = 256 * 1024  # what is read of a message at a time when it is sent


class DotStuffer:
    """The message as the DATA command carries it (RFC 5321 4.5.2), made a chunk at a time: every line
    ending CRLF (a bare CR or LF made one), a dot starting a line doubled, CRLF "." CRLF at the end.

    What a line break or a line start is can straddle two chunks (CR at the end of one, LF at the start of
    the next; a dot right after a chunk ending a line): a CR ending a chunk is held back until the next one
    says whether it is half of a CRLF, and whether the last byte written ended a line is remembered.
    """

    _EOL = re.compile(rb"\r\n|\r|\n")

    def __init__(self) -> None:
        self._cr = False  # a CR ended the last chunk and was not written yet
        self._line_start = True  # the next byte written starts a line
        self._wrote = False

    def feed(self, chunk: bytes) -> bytes:
        data = b"\r" + chunk if self._cr else chunk
        self._cr = data.endswith(b"\r")
        if self._cr:
            data = data[:-1]
        if not data:
            return b""
        data = self._EOL.sub(b"\r\n", data).replace(b"\n.", b"\n..")
        if self._line_start and data.startswith(b"."):
            data = b"." + data
        self._line_start = data.endswith(b"\n")
        self._wrote = True
        return data

    def end(self) -> bytes:
        """What follows the last chunk: a held-back CR made a line break, the last line ended, the dot."""
        tail = self.feed(b"\n") if self._cr else b""
        if not (self._wrote and self._line_start):
            tail += b"\r\n"
        return tail + b".\r\n"


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class _SMTPS(_SMTP, smtplib.SMTP_SSL):
    pass


def _auth_error(code: int, text: str, server: ServerSettings) -> AuthError:
    where = f"{server.host}:{server.port}"
    lowered = text.lower()
    if code == 534 or "application-specific" in lowered or "app password" in lowered:
        return AuthError(
            f"The outgoing server {where} needs an app password for {server.username} ({code} {text})",
            "two-step verification is on, so the normal password is refused for mail programs",
            "create an app password in your provider's account security page and use it here",
        )
    return AuthError(
        f"The outgoing server {where} rejected the user name or password for {server.username} "
        f"({code} {text})",
        "the password is wrong, the user name has the wrong form (use the full e-mail address), "
        "or an app password is required",
        "check the password in the provider's webmail; if two-step verification is on, create an "
        "app password",
    )


class DataUncertain(Exception):
    """The message and its final dot were handed over, and then the connection failed before the reply."""


@dataclass(frozen=True, slots=True)
class Transaction:
    """The server's replies: to MAIL FROM, per recipient (RCPT TO), and to the data (None: not reached)."""

    mail: tuple[int, str]
    recipients: dict[str, tuple[int, str]]
    data: tuple[int, str] | None


def _ascii(message: BinaryIO) -> bool:
    """Whether the message (read a chunk at a time, then rewound) is all ASCII."""
    start = message.tell()
    try:
        while chunk := message.read(_CHUNK):
            if not chunk.isascii():
                return False
        return True
    finally:
        message.seek(start)


class SmtpSession:
    def __init__(self, smtp: _SMTP, server: ServerSettings) -> None:
        self._s = smtp
        self.server = server

    @property
    def size_limit(self) -> int:
        """The server's SIZE limit in bytes (RFC 1870), 0 when it names none."""
        value = self._s.esmtp_features.get("size", "").strip()
        return int(value) if value.isdigit() else 0

    def transact(self, sender: str, recipients: Sequence[str], message: BinaryIO, size: int,
                 before_data: Callable[[], None]) -> Transaction:
        """One mail transaction, step by step, for the outbox: it must know which side of the final dot
        a failure falls on. ``message`` (``size`` bytes) is read a chunk at a time, never whole.
        ``before_data`` runs after the 354 and right before the message (with its
        final dot) is handed to the socket: the caller records durably that the data may have gone out.

        Returns what the server said to each recipient and to the data. Raises :class:`DataUncertain`
        when the connection fails after the whole message was handed over but before the reply, and
        a :class:`~deskmail.errors.DeskmailError` (network, protocol) for failures before that point.
        """
        s = self._s
        replies: dict[str, tuple[int, str]] = {}
        options = [f"SIZE={size}"] if s.has_extn("size") else []
        if not all(a.isascii() for a in (sender, *recipients)):
            if not s.has_extn("smtputf8"):
                raise SendError(
                    f"The outgoing server {self.server.host} does not accept international addresses "
                    f"({', '.join(a for a in (sender, *recipients) if not a.isascii())})",
                    "it does not offer SMTPUTF8, and the part before the @ cannot be rewritten",
                    "write to an ASCII address of that person, or send through a server that offers SMTPUTF8",
                    code=Code.INTERNATIONAL_ADDRESS, host=self.server.host, port=self.server.port)
            options.append("SMTPUTF8")
        if s.has_extn("8bitmime") and not _ascii(message):
            options.append("BODY=8BITMIME")
        try:
            code, text = s.mail(sender, options)
            mail = (code, _text(text))
            if code >= 400:
                s.rset()
                return Transaction(mail, replies, None)
            for rcpt in recipients:
                rcode, rtext = s.rcpt(rcpt)
                replies[rcpt] = (rcode, _text(rtext))
            if not any(c < 300 for c, _ in replies.values()):
                s.rset()
                return Transaction(mail, replies, None)
            code, text = s.docmd("data")
            if code != 354:
                s.rset()
                return Transaction(mail, replies, (code, _text(text)))
            before_data()
            s.send_data(message)
        except smtplib.SMTPServerDisconnected as exc:
            raise translate(ConnectionResetError(str(exc)), self.server) from None
        except OSError as exc:
            raise translate(exc, self.server) from exc
        # Everything is with the server now: whatever fails from here leaves the outcome unknown.
        try:
            code, text = s.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise DataUncertain(str(exc) or type(exc).__name__) from None
        return Transaction(mail, replies, (code, _text(text)))

    def close(self) -> None:
        try:
            self._s.quit()
        except (smtplib.SMTPException, OSError):
            self._s.close()


@contextmanager
def open_smtp(account: Account, password: Secret | None, *, timeout: float = 30.0) -> Iterator[SmtpSession]:
    server = account.outgoing
    if server.auth_required:
        check_plaintext_policy(account, server)
    ctx = client_context(account.ca_file)
    smtp: _SMTP
    try:
        if server.security is Security.SSL:
            smtp = _SMTPS(server.host, server.port, timeout=timeout, context=ctx)
        else:
            smtp = _SMTP(server.host, server.port, timeout=timeout)
        _no_delay(smtp)
        session = SmtpSession(smtp, server)
    except smtplib.SMTPConnectError as exc:
        raise ProtocolError(
            f"The outgoing server {server.host}:{server.port} refused the session ({exc.smtp_code})",
            _text(exc.smtp_error),
            "try again later",
        ) from None
    except smtplib.SMTPServerDisconnected as exc:
        raise translate(ConnectionResetError(str(exc)), server) from None
    except OSError as exc:
        raise translate(exc, server) from exc
    try:
        _secure_and_login(smtp, server, password, ctx, bearer.preferred_mechanism(account))
        yield session
    finally:
        session.close()


def _no_delay(smtp: smtplib.SMTP) -> None:
    """Every command and the message's last piece are written whole, so nothing gains by Nagle's algorithm
    holding a write back until the server ACKs the one before (up to ~40 ms: the EHLO right after the TLS
    handshake waits so for the ACK of the handshake's last message)."""
    try:
        if smtp.sock is not None:
            smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


def _bearer_attempt(smtp: smtplib.SMTP, server: ServerSettings, mechanism: str,
                    token: Secret) -> core.BearerRefusal | None:
    """AUTH with the token as the initial response; an error challenge is decoded, then answered to end it."""
    challenges: list[bytes] = []

    def answer(challenge: bytes | None = None) -> str:
        if challenge is None:
            return core.sasl_bearer(mechanism, server.username, token.reveal(), server.host,
                                    server.port).decode()
        challenges.append(challenge)
        return "" if mechanism == core.XOAUTH2 else "\x01"

    # For the transcript's check that a reply does not repeat the credentials (_SMTP.getreply).
    smtp.user, smtp.password = server.username, token.reveal()
    try:
        smtp.auth(mechanism, answer)
    except smtplib.SMTPAuthenticationError as exc:
        if 400 <= exc.smtp_code < 500:
            raise ProtocolError(
                f"The outgoing server {server.host}:{server.port} could not check the sign-in now "
                f"({exc.smtp_code} {_text(exc.smtp_error)})",
                "the server's connection to the provider's token service failed (a temporary fault there)",
                "try again later; the sign-in is kept",
                host=server.host, port=server.port,
            ) from None
        # (the challenge arrives decoded; core reads the base64 form)
        return core.bearer_refusal(base64.b64encode(challenges[-1]) if challenges else b"")
    finally:
        smtp.password = ""
    return None


def _ehlo(smtp: smtplib.SMTP) -> core.ServerCaps:
    code, msg = smtp.ehlo()
    texts = tuple(msg.decode("utf-8", "replace").split("\n"))
    return core.smtp_server_caps(core.SmtpReply(code, texts, (), True))


def _starttls(smtp: smtplib.SMTP, server: ServerSettings, ctx: Any) -> None:
    """smtplib's starttls(), with a look at what came with the 220 before the handshake."""
    code, resp = smtp.docmd("STARTTLS")
    if not core.smtp_starttls_ok(core.SmtpReply(code, (), (), True)):
        raise StartTLSUnavailable(
            f"The outgoing server {server.host} refused to start encryption ({code})",
            resp.decode(errors="replace"),
            "use port 465 with SSL/TLS if your provider offers it",
        )
    assert smtp.sock is not None
    if waiting_in_clear(smtp.sock, smtp.file):
        raise SecurityError(
            f"The outgoing server {server.host}:{server.port} sent data in clear after agreeing to encrypt",
            "someone on the network is injecting commands or answers (a STARTTLS injection attack)",
            "do not use this network to send mail; use port 465 with SSL/TLS instead",
        )
    smtp.sock = ctx.wrap_socket(smtp.sock, server_hostname=server.host)
    # RFC 3207: forget what was said in clear; the caller says EHLO again.
    smtp.file = None
    smtp.helo_resp = None
    smtp.ehlo_resp = None
    smtp.esmtp_features = {}
    smtp.does_esmtp = False


def _secure_and_login(smtp: smtplib.SMTP, server: ServerSettings, password: Secret | None, ctx: Any,
                      preferred: str = core.XOAUTH2) -> None:
    try:
        caps = _ehlo(smtp)
        if server.security is Security.STARTTLS:
            if not caps.starttls:
                raise StartTLSUnavailable(
                    f"The outgoing server {server.host}:{server.port} did not offer STARTTLS encryption",
                    "the server does not support it, or someone on the network removed the offer "
                    "(a downgrade attack); deskmail never continues without encryption",
                    "use port 465 with SSL/TLS if your provider offers it",
                )
            _starttls(smtp, server, ctx)
            caps = _ehlo(smtp)
        if not server.auth_required:
            return
        if password is None:
            raise AuthError(f"No password available for {server.describe()}")
        if not caps.auth_advertised:
            raise AuthError(
                f"The outgoing server {server.host}:{server.port} does not offer authentication",
                "this is not the submission port (25 is for server-to-server mail), or the server "
                "only offers it after encryption",
                "use port 587 with STARTTLS or 465 with SSL/TLS",
            )
        if server.auth == "oauth2":
            mechanism = core.bearer_mechanism(preferred, caps.auth_mechanisms)
            bearer.sign_in(password, lambda token: _bearer_attempt(smtp, server, mechanism, token), server)
            return
        try:
            smtp.login(server.username, password.reveal())
        except smtplib.SMTPAuthenticationError as exc:
            raise _auth_error(exc.smtp_code, _text(exc.smtp_error), server) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise AuthError(f"{server.describe()}: no usable AUTH mechanism ({exc})") from None
        except smtplib.SMTPException as exc:
            raise ProtocolError(f"{server.describe()}: login failed ({exc})") from None
    except smtplib.SMTPServerDisconnected as exc:
        raise translate(ConnectionResetError(str(exc)), server) from None
    except OSError as exc:
        raise translate(exc, server) from exc

"""SMTP submission adapter (stdlib smtplib), under deskmail's TLS policy.

smtplib is well kept, synchronous (easy to run off the GUI thread) and
supports both 465 implicit TLS and 587 STARTTLS. Its own debug output prints
AUTH blobs, so it is never enabled; this module logs the transcript itself
through :data:`deskmail.net.log.protocol_log`, the AUTH exchange by structure
(while smtplib authenticates, every client line is credentials and is logged as
``****``). What the EHLO answer offers is read by :mod:`deskmail.protocol.core`.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any

from deskmail.codes import Code
from deskmail.errors import AuthError, ProtocolError, SendError, StartTLSUnavailable
from deskmail.model import Account, Security, ServerSettings
from deskmail.net.connect import check_plaintext_policy, translate
from deskmail.net.log import protocol_log
from deskmail.net.tls import client_context
from deskmail.protocol import bearer, core
from deskmail.secrets import Secret


class _SMTP(smtplib.SMTP):
    """The transcript: commands as sent, replies as received, credentials never.

    smtplib sends AUTH from :meth:`auth`: while it runs, the first line is logged as
    ``AUTH <mechanism> ****`` and every further client line as ``****`` (they are the
    challenge answers), and a reply that repeats the credentials is not shown. After
    a 354 (DATA go-ahead) the next send is the message itself, logged by size only.
    """

    _auth: tuple[str, str, str] | None = None  # (mechanism, user, password) while authenticating
    _auth_lines = 0
    _in_data = False

    def auth(self, mechanism: str, authobject: Any, *, initial_response_ok: bool = True) -> tuple[int, bytes]:
        self._auth, self._auth_lines = (mechanism, str(getattr(self, "user", "")),
                                        str(getattr(self, "password", ""))), 0
        try:
            return super().auth(mechanism, authobject, initial_response_ok=initial_response_ok)
        finally:
            self._auth = None

    def send(self, s: Any) -> None:
        if self._in_data:
            protocol_log.debug("C: <message, %d bytes>", len(s))
            self._in_data = False
        elif self._auth is not None:
            self._auth_lines += 1
            protocol_log.debug("C: %s", f"AUTH {self._auth[0]} ****" if self._auth_lines == 1 else "****")
        elif protocol_log.enabled:
            text = s.decode("utf-8", "replace") if isinstance(s, bytes) else str(s)
            protocol_log.debug("C: %s", text.strip())
        super().send(s)

    def getreply(self) -> tuple[int, bytes]:
        code, msg = super().getreply()
        self._in_data = code == 354
        if protocol_log.enabled:
            said = msg.decode("utf-8", "replace").replace("\n", " | ")
            if self._auth is not None and core.repeats_secret(said, self._auth[2], self._auth[1]):
                said = "(the server's answer repeats the credentials; not shown)"
            protocol_log.debug("S: %d %s", code, said)
        return code, msg


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


class SmtpSession:
    def __init__(self, smtp: smtplib.SMTP, server: ServerSettings) -> None:
        self._s = smtp
        self.server = server

    def send(self, message: EmailMessage, sender: str, recipients: Sequence[str]) -> None:
        """Send; raises SendError naming every refused recipient (partial success included)."""
        try:
            refused = self._s.send_message(message, from_addr=sender, to_addrs=list(recipients))
        except smtplib.SMTPRecipientsRefused as exc:
            raise SendError(
                "The outgoing server refused every recipient",
                "; ".join(f"{r}: {c} {m.decode(errors='replace')}" for r, (c, m) in exc.recipients.items()),
                "check the addresses",
                refused={r: f"{c} {m.decode(errors='replace')}" for r, (c, m) in exc.recipients.items()},
            ) from None
        except smtplib.SMTPSenderRefused as exc:
            text = _text(exc.smtp_error)
            if exc.smtp_code == 530 or "authentication required" in text.lower():
                raise AuthError(
                    f"The outgoing server {self.server.host} requires authentication ({exc.smtp_code} {text})",
                    "'My outgoing server (SMTP) requires authentication' is switched off for this account",
                    "turn outgoing authentication on in the account's settings",
                    code=Code.AUTH_NOT_ENABLED, host=self.server.host, port=self.server.port,
                ) from None
            raise SendError(
                f"The outgoing server refused the sender {sender} ({exc.smtp_code} {text})",
                "the sender address is not allowed for this login",
                "send from the address that belongs to this account",
            ) from None
        except smtplib.SMTPDataError as exc:
            text = _text(exc.smtp_error)
            raise SendError(
                f"The outgoing server refused the message ({exc.smtp_code} {text})",
                "the server's policy (size, content or rate limit)",
                "read the server's reason above; the message was not sent",
            ) from None
        except smtplib.SMTPServerDisconnected as exc:
            raise translate(ConnectionResetError(str(exc)), self.server) from None
        except OSError as exc:
            raise translate(exc, self.server) from exc
        if refused:
            raise SendError(
                f"The message was sent, but {len(refused)} recipient(s) were refused",
                "; ".join(f"{r}: {c} {m.decode(errors='replace')}" for r, (c, m) in refused.items()),
                "check those addresses; do not resend to the others, they got it",
                refused={r: f"{c} {m.decode(errors='replace')}" for r, (c, m) in refused.items()},
            )

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
    smtp: smtplib.SMTP
    try:
        if server.security is Security.SSL:
            smtp = _SMTPS(server.host, server.port, timeout=timeout, context=ctx)
        else:
            smtp = _SMTP(server.host, server.port, timeout=timeout)
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
        import base64  # the challenge arrives decoded; core reads the base64 form

        return core.bearer_refusal(base64.b64encode(challenges[-1]) if challenges else b"")
    finally:
        smtp.password = ""
    return None


def _ehlo(smtp: smtplib.SMTP) -> core.ServerCaps:
    code, msg = smtp.ehlo()
    texts = tuple(msg.decode("utf-8", "replace").split("\n"))
    return core.smtp_server_caps(core.SmtpReply(code, texts, (), True))


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
            code, resp = smtp.starttls(context=ctx)
            if not core.smtp_starttls_ok(core.SmtpReply(code, (), (), True)):
                raise StartTLSUnavailable(
                    f"The outgoing server {server.host} refused to start encryption ({code})",
                    resp.decode(errors="replace"),
                    "use port 465 with SSL/TLS if your provider offers it",
                )
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

"""IMAP adapter: imapclient, wrapped in deskmail's TLS policy and error words.

imapclient (over the stdlib imaplib) is used because it parses FETCH/LIST
responses reliably and takes our SSL context for both implicit TLS and
STARTTLS. This module is the only place that imports it; callers see
:class:`ImapSession` and :mod:`deskmail.errors`.

Security rules enforced here:
- implicit TLS or STARTTLS with a verified certificate before LOGIN;
- STARTTLS required but not offered -> StartTLSUnavailable, nothing sent;
- a PREAUTH greeting on an account that requires TLS is refused (it would
  skip the STARTTLS step entirely: mutt CVE-2020-14093);
- LOGINDISABLED is honoured (never LOGIN in clear).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import imapclient
from imapclient.exceptions import CapabilityError, IMAPClientError, LoginError

from deskmail.errors import AuthError, ProtocolError, StartTLSUnavailable
from deskmail.model import Account, Security, ServerSettings
from deskmail.net.connect import check_plaintext_policy, translate
from deskmail.net.tls import client_context
from deskmail.secrets import Secret


@dataclass(frozen=True)
class FolderStatus:
    name: str
    uidvalidity: int
    uidnext: int
    exists: int
    highestmodseq: int


def _auth_error(text: str, server: ServerSettings) -> AuthError:
    where = f"{server.host}:{server.port}"
    lowered = text.lower()
    if "application-specific" in lowered or "app password" in lowered or "app-specific" in lowered:
        return AuthError(
            f"The IMAP server {where} needs an app password for {server.username}",
            "two-step verification is on for this account, so the normal password is refused",
            "create an app password in your provider's account security page and use it here",
        )
    return AuthError(
        f"The IMAP server {where} rejected the user name or password for {server.username}",
        "the password is wrong, the user name has the wrong form (full address vs. name only), "
        "or two-step verification requires an app password",
        "check the password (try it in the provider's webmail); use the full e-mail address as "
        "user name; if two-step verification is on, create an app password",
    )


class ImapSession:
    """A logged-in IMAP connection. Use :func:`open_imap`."""

    def __init__(self, client: imapclient.IMAPClient, server: ServerSettings) -> None:
        self._c = client
        self.server = server
        self.selected: FolderStatus | None = None

    @property
    def capabilities(self) -> tuple[bytes, ...]:
        return tuple(self._c.capabilities())

    def has_capability(self, name: str) -> bool:
        return bool(self._c.has_capability(name))

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except IMAPClientError as exc:
            raise ProtocolError(
                f"The IMAP server {self.server.host} refused a command ({exc})",
                "the server does not support it or the folder is unavailable",
                "try again; run `deskmail --debug` to see the exchange",
            ) from exc
        except OSError as exc:
            raise translate(exc, self.server) from exc

    def select(self, folder: str, readonly: bool = True) -> FolderStatus:
        r = self._call(self._c.select_folder, folder, readonly=readonly)
        self.selected = FolderStatus(
            name=folder,
            uidvalidity=int(r.get(b"UIDVALIDITY", 0)),
            uidnext=int(r.get(b"UIDNEXT", 0)),
            exists=int(r.get(b"EXISTS", 0)),
            highestmodseq=int(r.get(b"HIGHESTMODSEQ", 0)),
        )
        return self.selected

    def uid_flags_sizes(self) -> dict[int, tuple[tuple[str, ...], int]]:
        """UID -> (flags, size) for every message of the selected folder."""
        if self.selected is not None and self.selected.exists == 0:
            return {}  # "1:*" on an empty folder is an error on some servers
        data = self._call(self._c.fetch, "1:*", ["FLAGS", "RFC822.SIZE"])
        out: dict[int, tuple[tuple[str, ...], int]] = {}
        for uid, item in data.items():
            flags = _flags(item.get(b"FLAGS", ()))
            out[int(uid)] = (flags, int(item.get(b"RFC822.SIZE", 0)))
        return out

    def fetch_messages(self, uids: Iterable[int]) -> Iterator[tuple[int, tuple[str, ...], bytes]]:
        """Yield (uid, flags, raw bytes) for ``uids``; BODY.PEEK so \\Seen is not set."""
        data = self._call(self._c.fetch, list(uids), ["BODY.PEEK[]", "FLAGS"])
        for uid, item in data.items():
            body = item.get(b"BODY[]")
            if body is None:
                continue  # expunged meanwhile by another client: gone, not an error
            flags = _flags(item.get(b"FLAGS", ()))
            yield int(uid), flags, bytes(body)

    def folder_with_special_use(self, use: bytes) -> str | None:
        for flags, _delim, name in self._call(self._c.list_folders):
            if use in flags:
                return str(name)
        return None

    def append(self, folder: str, raw: bytes, flags: tuple[str, ...] = ()) -> None:
        self._call(self._c.append, folder, raw, flags=flags)

    def logout(self) -> None:
        try:
            self._c.logout()
        except (IMAPClientError, OSError):
            pass  # the server may already have closed; nothing left to do


def _flag_str(flag: Any) -> str:
    return flag.decode("ascii", "replace") if isinstance(flag, bytes) else str(flag)


def _flags(raw: Any) -> tuple[str, ...]:
    # \Recent belongs to one IMAP session, not to the message: never stored.
    return tuple(f for f in (_flag_str(x) for x in raw) if f.lower() != "\\recent")


_ALERT = re.compile(rb"\[(ALERT|AUTHENTICATIONFAILED|UNAVAILABLE|PRIVACYREQUIRED)\]\s*(.*)", re.I)


@contextmanager
def open_imap(account: Account, password: Secret, *, timeout: float = 30.0) -> Iterator[ImapSession]:
    server = account.incoming
    check_plaintext_policy(account, server)
    ctx = client_context(account.ca_file)
    try:
        client = imapclient.IMAPClient(
            server.host,
            port=server.port,
            ssl=server.security is Security.SSL,
            ssl_context=ctx,
            timeout=timeout,
            use_uid=True,
        )
    except OSError as exc:
        raise translate(exc, server) from exc
    except IMAPClientError as exc:
        raise ProtocolError(f"{server.describe()} sent an unusable greeting ({exc})") from exc
    session = ImapSession(client, server)
    try:
        _secure_and_login(client, server, password)
        yield session
    finally:
        session.logout()


def _secure_and_login(client: imapclient.IMAPClient, server: ServerSettings, password: Secret) -> None:
    if client._imap.state == "AUTH" and server.security is not Security.SSL:
        raise StartTLSUnavailable(
            f"The IMAP server {server.host}:{server.port} skipped login (PREAUTH) before encryption",
            "someone on the network may be tampering with the connection",
            "do not use this network for mail; connect with SSL/TLS (port 993) instead",
        )
    try:
        if server.security is Security.STARTTLS:
            try:
                client.starttls(client_context_for(client))
            except CapabilityError as exc:
                raise StartTLSUnavailable(
                    f"The IMAP server {server.host}:{server.port} did not offer STARTTLS encryption",
                    "the server does not support it, or someone on the network removed the offer "
                    "(a downgrade attack); deskmail never continues without encryption",
                    "use SSL/TLS on port 993 if your provider offers it; otherwise ask the provider",
                ) from exc
            except IMAPClientError as exc:
                raise StartTLSUnavailable(
                    f"The IMAP server {server.host}:{server.port} refused to start encryption ({exc})",
                    "the server's STARTTLS is broken, or the connection is being tampered with",
                    "use SSL/TLS on port 993 if your provider offers it",
                ) from exc
        if client.has_capability("LOGINDISABLED"):
            raise StartTLSUnavailable(
                f"The IMAP server {server.host}:{server.port} does not allow login without encryption",
                "the account is set to no encryption, and the server (rightly) refuses that",
                "set the incoming security to STARTTLS or SSL/TLS",
            )
        try:
            client.login(server.username, password.reveal())
        except LoginError as exc:
            raise _auth_error(str(exc), server) from None
    except OSError as exc:
        raise translate(exc, server) from exc


def client_context_for(client: imapclient.IMAPClient) -> Any:
    # The context stored at construction carries the account's CA file.
    return client.ssl_context

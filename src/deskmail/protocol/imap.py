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
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import imapclient
from imapclient.exceptions import CapabilityError, IMAPClientError, LoginError
from imapclient.imap_utf7 import decode as _decode_utf7
from imapclient.response_parser import parse_response

from deskmail.errors import AuthError, ProtocolError, StartTLSUnavailable
from deskmail.model import Account, Security, ServerSettings
from deskmail.net.connect import check_plaintext_policy, translate
from deskmail.net.log import protocol_log
from deskmail.net.tls import client_context
from deskmail.protocol.imap_stream import FetchItem, Sink, Untagged, read_responses
from deskmail.secrets import Secret


@dataclass(frozen=True)
class ListedFolder:
    name: str
    delimiter: str
    flags: tuple[str, ...]
    status: dict[str, int]  # MESSAGES, UIDNEXT, UIDVALIDITY, HIGHESTMODSEQ when LIST-STATUS answered


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

    # --- raw commands for the sync engine (see imap_stream for why) ----------

    def command(
        self,
        text: str,
        body_sink: Callable[[FetchItem], Sink | None] = lambda _item: None,
        untagged: Untagged | None = None,
    ) -> Iterator[FetchItem]:
        """Send one command and stream its FETCH responses (a generator: iterate it to the end)."""
        imap = self._c._imap
        tag = imap._new_tag()
        imap.tagged_commands.pop(tag, None)  # we read the completion ourselves
        protocol_log.debug("C: %s %s", tag.decode(), text)
        try:
            imap.send(tag + b" " + text.encode("utf-8") + b"\r\n")
            yield from read_responses(imap.file, tag, body_sink, untagged)
        except OSError as exc:
            raise translate(exc, self.server) from exc

    def run(self, text: str) -> Untagged:
        """A command whose FETCH responses (if any) are not needed."""
        seen = Untagged()
        for _ in self.command(text, untagged=seen):
            pass
        return seen

    def quote(self, folder: str) -> str:
        return self._c._normalise_folder(folder).decode("ascii")  # type: ignore[no-any-return]

    def select_raw(self, folder: str, params: str = "") -> tuple[FolderStatus, list[FetchItem], Untagged]:
        """SELECT with CONDSTORE/QRESYNC parameters; returns status, changed messages and VANISHED UIDs."""
        seen = Untagged()
        items = list(self.command(f"SELECT {self.quote(folder)}{' ' + params if params else ''}", untagged=seen))
        codes: dict[str, int] = {}
        for line in seen.other:
            m = _CODE.search(line)
            if m:
                codes[m.group(1).decode().upper()] = int(m.group(2))
        self._c._imap.state = "SELECTED"  # keep imaplib's state machine in step with our raw SELECT
        self.selected = FolderStatus(
            name=folder,
            uidvalidity=codes.get("UIDVALIDITY", 0),
            uidnext=codes.get("UIDNEXT", 0),
            exists=seen.exists or 0,
            highestmodseq=codes.get("HIGHESTMODSEQ", 0),
        )
        return self.selected, items, seen

    def idle_wait(self, poll: float, stop: threading.Event, total: float) -> bool:
        """IDLE until the folder changes, ``total`` seconds pass or ``stop`` is set; True if it changed."""
        deadline = time.monotonic() + total
        changed = False
        try:
            self._c.idle()
            while not stop.is_set() and time.monotonic() < deadline:
                responses = self._c.idle_check(timeout=poll)
                if any(isinstance(r, tuple) and len(r) > 1 and r[1] in (b"EXISTS", b"EXPUNGE", b"FETCH")
                       for r in responses):
                    changed = True
                    break
            self._c.idle_done()
        except IMAPClientError as exc:
            raise ProtocolError(f"IDLE failed on {self.server.host} ({exc})") from exc
        except OSError as exc:
            raise translate(exc, self.server) from exc
        return changed

    def enable(self, *capabilities: str) -> set[str]:
        try:
            return {c.decode() if isinstance(c, bytes) else str(c) for c in self._c.enable(*capabilities)}
        except (IMAPClientError, OSError):
            return set()

    def list_folders(self) -> list[tuple[tuple[str, ...], str, str]]:
        """(flags, delimiter, decoded name) for every folder on the server."""
        out = []
        for flags, delim, name in self._call(self._c.list_folders):
            d = delim.decode() if isinstance(delim, bytes) else (delim or "/")
            out.append((tuple(_flag_str(f) for f in flags), d, str(name)))
        return out

    def list_status(self) -> list[ListedFolder] | None:
        """Every folder with its flags and STATUS in one round trip (RFC 5819), or None if unsupported."""
        if not (self.has_capability("LIST-STATUS") and self.has_capability("LIST-EXTENDED")):
            return None
        items = "MESSAGES UIDNEXT UIDVALIDITY" + (" HIGHESTMODSEQ" if self.has_capability("CONDSTORE") else "")
        seen = self.run(f'LIST "" "*" RETURN (SUBSCRIBED SPECIAL-USE STATUS ({items}))')
        folders: dict[str, ListedFolder] = {}
        order: list[str] = []
        for line in seen.other:
            if line.endswith(b"}\r\n"):
                return None  # a folder name sent as a literal: let the plain LIST handle it
            if line.startswith(b"* LIST "):
                flags, delim, raw = parse_response([line[7:].rstrip(b"\r\n")])
                name = decode_utf7(raw if isinstance(raw, bytes) else str(raw).encode())
                d = delim.decode() if isinstance(delim, bytes) else "/"
                folders[name] = ListedFolder(name, d, tuple(_flag_str(f) for f in flags), {})
                order.append(name)
            elif line.startswith(b"* STATUS "):
                raw_name, values = parse_response([line[9:].rstrip(b"\r\n")])
                name = decode_utf7(raw_name if isinstance(raw_name, bytes) else str(raw_name).encode())
                if name in folders:
                    it = iter(values)
                    folders[name].status.update({k.decode().upper(): int(v) for k, v in zip(it, it, strict=True)})
        return [folders[n] for n in order]

    def subscribed(self) -> set[str]:
        return {str(name) for _f, _d, name in self._call(self._c.list_sub_folders)}

    def status_uidvalidity(self, folder: str) -> int:
        r = self._call(self._c.folder_status, folder, ["UIDVALIDITY"])
        return int(r.get(b"UIDVALIDITY", 0))

    def folder_with_special_use(self, use: bytes) -> str | None:
        for flags, _delim, name in self._call(self._c.list_folders):
            if use in flags:
                return str(name)
        return None

    def create_folder(self, folder: str) -> None:
        self._call(self._c.create_folder, folder)

    def append(self, folder: str, raw: bytes, flags: tuple[str, ...] = ()) -> None:
        self._call(self._c.append, folder, raw, flags=flags)

    def logout(self) -> None:
        try:
            self._c.logout()
        except (IMAPClientError, OSError):
            pass  # the server may already have closed; nothing left to do


def decode_utf7(raw: bytes) -> str:
    return str(_decode_utf7(raw))


def _flag_str(flag: Any) -> str:
    return flag.decode("ascii", "replace") if isinstance(flag, bytes) else str(flag)


def _flags(raw: Any) -> tuple[str, ...]:
    # \Recent belongs to one IMAP session, not to the message: never stored.
    return tuple(f for f in (_flag_str(x) for x in raw) if f.lower() != "\\recent")


_CODE = re.compile(rb"\[(UIDVALIDITY|UIDNEXT|HIGHESTMODSEQ) (\d+)\]", re.I)
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

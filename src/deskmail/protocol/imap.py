"""IMAP adapter: a small client of our own, wrapped in deskmail's TLS policy and error words.

Why not imapclient (which deskmail used first): importing it pulls in imaplib,
logging, email.utils and dataclasses' inspect, about 20 ms on this class of
machine, while a whole no-change sync of a large mailbox is budgeted at the
time mbsync takes (~40 ms, issue 5). The hot paths (FETCH streaming, QRESYNC
SELECT) were already hand-written in :mod:`deskmail.protocol.imap_stream`
because imaplib holds whole responses in memory; the rest (greeting,
CAPABILITY, STARTTLS, LOGIN, LIST, STATUS, IDLE, APPEND) is a thin layer on
the same reader. What a greeting, a capability list, a tagged status or a
STARTTLS answer means, and what LOGIN sends (and shows in the log), is decided
by :mod:`deskmail.protocol.core`, shared with the doctor and discovery; the
FETCH streaming stays in imap_stream's pull parser, which reads straight from
the socket buffer without a second copy (the first-sync hot loop). Callers see
:class:`ImapSession` and :mod:`deskmail.errors`.

Security rules enforced here:
- implicit TLS or STARTTLS with a verified certificate before LOGIN;
- STARTTLS required but not offered -> StartTLSUnavailable, nothing sent;
- bytes that arrive in clear together with the STARTTLS answer are refused
  (response injection, CVE-2011-0411 style), never read as if encrypted;
- a PREAUTH greeting on an account that requires TLS is refused (it would
  skip the STARTTLS step entirely: mutt CVE-2020-14093);
- LOGINDISABLED is honoured (never LOGIN in clear).
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from deskmail.codes import Code
from deskmail.errors import AuthError, ProtocolError, SecurityError, StartTLSUnavailable
from deskmail.model import Account, Security, ServerSettings
from deskmail.net.connect import check_plaintext_policy, translate
from deskmail.net.log import protocol_log
from deskmail.net.tls import client_context
from deskmail.protocol import bearer, core, utf7
from deskmail.protocol.imap_stream import FetchItem, Sink, SocketReader, Untagged, read_line, read_responses
from deskmail.secrets import Secret

if TYPE_CHECKING:
    from typing import BinaryIO


@dataclass(frozen=True, slots=True)
class ListedFolder:
    """One folder of a LIST reply: its name, hierarchy delimiter and flags."""

    name: str
    delimiter: str
    flags: tuple[str, ...]
    status: dict[str, int]  # MESSAGES, UIDNEXT, UIDVALIDITY, HIGHESTMODSEQ when LIST-STATUS answered


@dataclass(frozen=True, slots=True)
class FolderStatus:
    """A folder's state from SELECT or STATUS: UIDVALIDITY, UIDNEXT, message count, HIGHESTMODSEQ."""

    name: str
    uidvalidity: int
    uidnext: int
    exists: int
    highestmodseq: int
    permanentflags: tuple[str, ...] | None = None  # the SELECT's PERMANENTFLAGS; None when the server sent none


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


def quote_string(text: str) -> str:
    """An IMAP quoted string; text that cannot be quoted (CR, LF, NUL) is refused."""
    if any(c in text for c in "\r\n\0"):
        raise ProtocolError(f"The name {text!r} contains a line break and cannot be sent to an IMAP server")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _caps_from(line: bytes) -> set[str] | None:
    caps = core.imap_capabilities(line)
    return set(caps) if caps is not None else None


class ImapSession:
    """A logged-in IMAP connection. Use :func:`open_imap`."""

    def __init__(self, sock: socket.socket, server: ServerSettings) -> None:
        self._sock = sock
        self._reader = SocketReader(sock)
        self.server = server
        self.selected: FolderStatus | None = None
        self._caps: set[str] = set()
        self._tags = 0
        self._enabled: dict[tuple[str, ...], set[str]] = {}
        self._listed: list[ListedFolder] | None = None
        self._selects = 0  # SELECT/EXAMINE commands so far: a prefetched SELECT is valid only while it is the last
        self._prefetched: tuple[str, str, int, tuple[FolderStatus, list[FetchItem], Untagged]] | None = None
        # False from a command's start until its tagged completion is read: a failure part-way through
        # a response (cut, garbage, a caller that stopped reading) leaves the stream out of step, and
        # the next command would read the rest of this one's answer as its own.
        self.in_step = True
        self._login_reply = b""  # the tagged OK of a bearer sign-in (its capabilities)

    # --- the wire ------------------------------------------------------------

    def _tag(self) -> bytes:
        self._tags += 1
        return b"D%d" % self._tags

    def _send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise translate(exc, self.server) from exc

    def command(
        self,
        text: str,
        body_sink: Callable[[FetchItem], Sink | None] = lambda _item: None,
        untagged: Untagged | None = None,
        *,
        parse: frozenset[bytes] = frozenset(),
        check: bool = True,
    ) -> Iterator[FetchItem]:
        """Send one command and stream its FETCH responses (a generator: iterate it to the end)."""
        tag = self._tag()
        protocol_log.debug("C: %s %s", tag.decode(), text)  # credentials never come this way: see _login
        seen = untagged if untagged is not None else Untagged()
        self.in_step = False
        try:
            self._send(tag + b" " + text.encode("utf-8") + b"\r\n")
            yield from read_responses(self._reader, tag, body_sink, seen, parse=parse, check=check)
        except OSError as exc:
            raise translate(exc, self.server) from exc
        finally:
            self.in_step = seen.tagged.startswith(tag + b" ")
            if protocol_log.enabled:
                for line in seen.other:
                    protocol_log.debug("S: %s", line.decode("utf-8", "replace").rstrip())
                protocol_log.debug("S: %s", seen.tagged.decode("utf-8", "replace").rstrip())

    def run(self, text: str, *, parse: frozenset[bytes] = frozenset(), check: bool = True) -> Untagged:
        """A command whose FETCH responses (if any) are not needed."""
        seen = Untagged()
        for _ in self.command(text, untagged=seen, parse=parse, check=check):
            pass
        self._note_caps(seen.tagged)
        return seen

    def _note_caps(self, line: bytes) -> None:
        caps = _caps_from(line)
        if caps:
            self._caps = caps

    # --- session setup -------------------------------------------------------

    def _greeting(self) -> core.ImapGreeting:
        try:
            line = read_line(self._reader)
        except OSError as exc:
            raise translate(exc, self.server) from exc
        protocol_log.debug("S: %s", line.decode("utf-8", "replace").rstrip())
        greeting = core.imap_greeting(line)
        if not greeting.usable:
            raise ProtocolError(
                f"{self.server.describe()} sent an unusable greeting ({_text(line[:200]).strip()})",
                "this is not an IMAP server, or it is refusing connections (BYE)",
                "check the port number; the connection doctor tells what the server speaks",
                code=Code.GREETING_REFUSED, host=self.server.host, port=self.server.port,
            )
        if greeting.capabilities:
            self._caps = set(greeting.capabilities)
        return greeting

    def _refresh_caps(self) -> None:
        seen = self.run("CAPABILITY", parse=frozenset({b"CAPABILITY"}))
        for _kind, values in seen.data:
            self._caps = {_text(v).upper() for v in values}

    def _starttls(self, ctx: ssl.SSLContext) -> None:
        if "STARTTLS" not in self._caps:
            raise StartTLSUnavailable(
                f"The IMAP server {self.server.host}:{self.server.port} did not offer STARTTLS encryption",
                "the server does not support it, or someone on the network removed the offer "
                "(a downgrade attack); deskmail never continues without encryption",
                "use SSL/TLS on port 993 if your provider offers it; otherwise ask the provider",
            )
        seen = self.run("STARTTLS", check=False)
        outcome = core.starttls_outcome(_status(seen.tagged) == b"OK", self._reader.buffered())
        if outcome == core.STARTTLS_REFUSED:
            raise StartTLSUnavailable(
                f"The IMAP server {self.server.host}:{self.server.port} refused to start encryption "
                f"({_text(seen.tagged).strip()})",
                "the server's STARTTLS is broken, or the connection is being tampered with",
                "use SSL/TLS on port 993 if your provider offers it",
            )
        if outcome == core.STARTTLS_INJECTED:
            raise SecurityError(
                f"The IMAP server {self.server.host}:{self.server.port} sent data in clear after agreeing to "
                "encrypt",
                "someone on the network is injecting commands or answers (a STARTTLS injection attack)",
                "do not use this network for mail; connect with SSL/TLS (port 993) instead",
            )
        try:
            self._sock = ctx.wrap_socket(self._sock, server_hostname=self.server.host)
        except OSError as exc:
            raise translate(exc, self.server) from exc
        self._reader = SocketReader(self._sock)
        self._caps = set()  # what was said in clear is not trusted (RFC 3501 §6.2.1)
        self._refresh_caps()

    def _login(self, password: Secret) -> None:
        if "LOGINDISABLED" in self._caps:
            raise StartTLSUnavailable(
                f"The IMAP server {self.server.host}:{self.server.port} does not allow login without encryption",
                "the account is set to no encryption, and the server (rightly) refuses that",
                "set the incoming security to STARTTLS or SSL/TLS",
            )
        user, secret = self.server.username, password.reveal()
        tag = self._tag()
        seen = Untagged()
        try:
            for segment in core.imap_login(tag, user, secret):
                if segment.after_go_ahead:
                    line = read_line(self._reader)
                    while line.startswith(b"* "):  # untagged news may come before the go-ahead
                        seen.other.append(line[:1000])
                        line = read_line(self._reader)
                    if not line.startswith(b"+"):  # refused (e.g. a literal too long): the answer follows
                        if line.startswith(tag + b" "):
                            seen.tagged = line
                        else:
                            seen.other.append(line[:1000])
                            for _ in read_responses(self._reader, tag, untagged=seen, check=False):
                                pass
                        break
                protocol_log.debug("C: %s", segment.shown)
                self._send(segment.data)
            else:
                for _ in read_responses(self._reader, tag, untagged=seen, check=False):
                    pass
        except OSError as exc:
            raise translate(exc, self.server) from exc
        finally:
            if protocol_log.enabled:
                for said in (*seen.other, seen.tagged):
                    shown = _text(said).rstrip()
                    if core.repeats_secret(shown, secret, user):
                        shown = "(the server's answer repeats the credentials; not shown)"
                    protocol_log.debug("S: %s", shown)
        if _status(seen.tagged) != b"OK":
            raise _auth_error(_text(seen.tagged), self.server) from None
        self._note_caps(seen.tagged)
        if not _caps_from(seen.tagged):
            self._refresh_caps()  # RFC 3501: capabilities may change at login

    def _sign_in_bearer(self, token: Secret, preferred: str) -> None:
        """AUTHENTICATE XOAUTH2 / OAUTHBEARER with an access token (SASL-IR when offered)."""
        offered = [c[5:] for c in self._caps if c.startswith("AUTH=")]
        mechanism = core.bearer_mechanism(preferred, offered)
        bearer.sign_in(token, lambda t: self._bearer_attempt(mechanism, t), self.server)
        if not self._note_caps_after_login():
            self._refresh_caps()  # RFC 3501: capabilities may change at login

    def _bearer_attempt(self, mechanism: str, token: Secret) -> core.BearerRefusal | None:
        message = core.sasl_bearer(mechanism, self.server.username, token.reveal(), self.server.host,
                                   self.server.port)
        tag = self._tag()
        seen = Untagged()
        challenge = b""
        try:
            segments = core.imap_authenticate(tag, mechanism, message, sasl_ir="SASL-IR" in self._caps)
            for segment in segments:
                if segment.after_go_ahead:
                    line = read_line(self._reader)
                    if not line.startswith(b"+"):
                        seen.tagged = line
                        break
                protocol_log.debug("C: %s", segment.shown)
                self._send(segment.data)
            if not seen.tagged:
                line = read_line(self._reader)
                while line.startswith(b"* "):
                    seen.other.append(line[:1000])
                    line = read_line(self._reader)
                if line.startswith(b"+"):  # an error challenge: decode it, end the exchange, read the NO
                    challenge = line[1:].strip()
                    protocol_log.debug("S: + (error challenge, %d bytes)", len(challenge))
                    protocol_log.debug("C: (end of the exchange)")
                    self._send(core.sasl_abort(mechanism) + b"\r\n")
                    for _ in read_responses(self._reader, tag, untagged=seen, check=False):
                        pass
                else:
                    seen.tagged = line
        except OSError as exc:
            raise translate(exc, self.server) from exc
        finally:
            if protocol_log.enabled:
                for said in (*seen.other, seen.tagged):
                    protocol_log.debug("S: %s", _text(said).rstrip())
        status = _status(seen.tagged)
        if status == b"OK":
            self._login_reply = seen.tagged
            return None
        if b"[UNAVAILABLE]" in seen.tagged.upper():
            raise ProtocolError(
                f"The IMAP server {self.server.host}:{self.server.port} could not check the sign-in now "
                f"({_text(seen.tagged).strip()})",
                "the server's connection to the provider's token service failed (a temporary fault there)",
                "try again later; the sign-in is kept",
                host=self.server.host, port=self.server.port,
            )
        return core.bearer_refusal(challenge)

    def _note_caps_after_login(self) -> bool:
        line, self._login_reply = self._login_reply, b""
        self._note_caps(line)
        return bool(_caps_from(line))

    # --- what the sync engine and the outbox use ---------------------------

    @property
    def capabilities(self) -> tuple[str, ...]:
        return tuple(sorted(self._caps))

    def has_capability(self, name: str) -> bool:
        return name.upper() in self._caps

    def quote(self, folder: str) -> str:
        return quote_string(utf7.encode(folder).decode("ascii"))

    def select(self, folder: str, readonly: bool = True) -> FolderStatus:
        return self.select_raw(folder, verb="EXAMINE" if readonly else "SELECT")[0]

    def select_raw(
        self, folder: str, params: str = "", *, verb: str = "SELECT"
    ) -> tuple[FolderStatus, list[FetchItem], Untagged]:
        """SELECT with CONDSTORE/QRESYNC parameters; returns status, changed messages and VANISHED UIDs."""
        prefetched, self._prefetched = self._prefetched, None
        if prefetched is not None and prefetched[:3] == (folder, params, self._selects) and verb == "SELECT":
            return prefetched[3]  # the same command, and the folder is still the selected one
        self._selects += 1
        seen = Untagged()
        self.selected = None
        items = list(self.command(f"{verb} {self.quote(folder)}{' ' + params if params else ''}", untagged=seen))
        codes: dict[str, int] = {}
        permanent: tuple[str, ...] | None = None
        for line in (*seen.other, seen.tagged):
            for m in _CODE.finditer(line):
                codes[m.group(1).decode().upper()] = int(m.group(2))
            if (p := _PERMANENTFLAGS.search(line)) is not None:
                permanent = tuple(p.group(1).decode("utf-8", "replace").split())
        self.selected = FolderStatus(
            name=folder,
            uidvalidity=codes.get("UIDVALIDITY", 0),
            uidnext=codes.get("UIDNEXT", 0),
            exists=seen.exists or 0,
            highestmodseq=codes.get("HIGHESTMODSEQ", 0),
            permanentflags=permanent,
        )
        return self.selected, items, seen

    def idle_wait(self, poll: float, stop: threading.Event, total: float) -> bool:
        """IDLE until the folder changes, ``total`` seconds pass or ``stop`` is set; True if it changed."""
        import select

        deadline = time.monotonic() + total
        changed = False
        tag = self._tag()
        protocol_log.debug("C: %s IDLE", tag.decode())
        try:
            self._sock.sendall(tag + b" IDLE\r\n")
            while True:
                line = read_line(self._reader)
                if line.startswith(b"+"):
                    break
                if line.startswith(tag + b" "):
                    raise ProtocolError(f"IDLE failed on {self.server.host} ({_text(line).strip()})")
                changed = changed or _is_change(line)
            while not changed and not stop.is_set() and time.monotonic() < deadline:
                pending = self._reader.buffered() or getattr(self._sock, "pending", lambda: 0)()
                if not pending:
                    wait = max(0.0, min(poll, deadline - time.monotonic()))
                    ready, _w, _x = select.select([self._sock], [], [], wait)
                    if not ready:
                        continue
                line = read_line(self._reader)
                protocol_log.debug("S: %s", _text(line).rstrip())
                changed = _is_change(line)
            self._sock.sendall(b"DONE\r\n")
            # News that crossed our DONE arrives with its answer: it counts too (the next
            # IDLE would not repeat it).
            ended = Untagged()
            for _ in read_responses(self._reader, tag, untagged=ended):
                changed = True
            changed = changed or ended.exists is not None or bool(ended.expunged or ended.vanished)
        except OSError as exc:
            raise translate(exc, self.server) from exc
        return changed

    def warm_up(self, inbox: tuple[int, int] | None = None) -> None:
        """Ask now what a sync asks first; the answers wait for it.

        Used by :mod:`deskmail.cli.fastpath` to do the server's slowest work while the process
        is still importing: ENABLE QRESYNC, then, when ``inbox`` gives the (UIDVALIDITY,
        HIGHESTMODSEQ) the index holds for INBOX, the engine's own ``SELECT INBOX (QRESYNC ...)``
        instead of INBOX's STATUS (a STATUS followed by a SELECT would open a large INBOX twice),
        then the folder list with the other folders' STATUS. Each answer is handed out once; a
        later question goes to the server.
        """
        qresync = "QRESYNC" in self._caps and "QRESYNC" in self.enable("QRESYNC")
        prefetch_inbox = inbox is not None and qresync and all(inbox)
        if prefetch_inbox and inbox is not None:
            # INBOX before the LIST: Dovecot opened a 50,000-message INBOX in 0.8 ms as the session's
            # first folder, but in 20 ms after a LIST or another folder's STATUS (3.8 ms at 10,000).
            params = qresync_params(*inbox)
            result = self.select_raw("INBOX", params)
            self._prefetched = ("INBOX", params, self._selects, result)
        self._listed = self.list_status(inbox_status=not prefetch_inbox)

    def enable(self, *capabilities: str) -> set[str]:
        if "ENABLE" not in self._caps:
            return set()
        if capabilities in self._enabled:  # ENABLE is for the whole session: asking twice changes nothing
            return self._enabled[capabilities]
        try:
            seen = self.run(f"ENABLE {' '.join(capabilities)}", parse=frozenset({b"ENABLED"}), check=False)
        except ProtocolError:
            return set()
        self._enabled[capabilities] = {_text(v).upper() for _kind, values in seen.data for v in values}
        return self._enabled[capabilities]

    def _list(self, command: str, kind: bytes) -> list[tuple[tuple[str, ...], str, str]]:
        seen = self.run(command, parse=frozenset({kind}))
        return [entry for _kind, values in seen.data if (entry := _list_entry(values)) is not None]

    def list_folders(self) -> list[tuple[tuple[str, ...], str, str]]:
        """(flags, delimiter, decoded name) for every folder on the server."""
        return self._list('LIST "" "*"', b"LIST")

    def list_status(self, *, inbox_status: bool = True) -> list[ListedFolder] | None:
        """Every folder with its flags and STATUS, or None if the server lacks LIST-STATUS (RFC 5819).

        One round trip with LIST-STATUS; with ``inbox_status=False`` INBOX gets no STATUS (its
        SELECT follows anyway): a plain LIST, then the other folders' STATUS commands pipelined.
        """
        if self._listed is not None:
            listed, self._listed = self._listed, None
            return listed
        if not (self.has_capability("LIST-STATUS") and self.has_capability("LIST-EXTENDED")):
            return None
        items = "MESSAGES UIDNEXT UIDVALIDITY" + (" HIGHESTMODSEQ" if self.has_capability("CONDSTORE") else "")
        status = f" STATUS ({items})" if inbox_status else ""
        seen = self.run(f'LIST "" "*" RETURN (SUBSCRIBED SPECIAL-USE{status})', parse=frozenset({b"LIST", b"STATUS"}))
        folders: dict[str, ListedFolder] = {}
        data = list(seen.data)
        for kind, values in data:
            if kind == b"LIST" and (entry := _list_entry(values)) is not None:
                flags, delim, name = entry
                folders[name] = ListedFolder(name, delim, flags, {})
        if not inbox_status:
            wanted = [f.name for f in folders.values() if f.name.upper() != "INBOX"
                      and not {"\\NOSELECT", "\\NONEXISTENT"} & {x.upper() for x in f.flags}]
            for reply in self._pipeline([f"STATUS {self.quote(n)} ({items})" for n in wanted], b"STATUS"):
                data.extend(reply.data)
        for kind, values in data:
            if kind == b"STATUS" and (answer := _status_entry(values)) is not None and answer[0] in folders:
                folders[answer[0]].status.update(answer[1])
        return list(folders.values())

    def _pipeline(self, commands: list[str], kind: bytes) -> list[Untagged]:
        """Send ``commands`` at once, then read their answers in order (one round trip for all).

        A command the server refuses (e.g. STATUS of a folder deleted meanwhile) just has no data.
        """
        tags = [self._tag() for _ in commands]
        for tag, text in zip(tags, commands, strict=True):
            protocol_log.debug("C: %s %s", tag.decode(), text)
        self._send(b"".join(tag + b" " + text.encode("utf-8") + b"\r\n" for tag, text in zip(tags, commands,
                                                                                             strict=True)))
        answers = []
        try:
            for tag in tags:
                seen = Untagged()
                for _ in read_responses(self._reader, tag, untagged=seen, parse=frozenset({kind}), check=False):
                    pass
                answers.append(seen)
        except OSError as exc:
            raise translate(exc, self.server) from exc
        return answers

    def subscribed(self) -> set[str]:
        return {name for _f, _d, name in self._list('LSUB "" "*"', b"LSUB")}

    def status_uidvalidity(self, folder: str) -> int:
        seen = self.run(f"STATUS {self.quote(folder)} (UIDVALIDITY)", parse=frozenset({b"STATUS"}))
        for _kind, values in seen.data:
            if (answer := _status_entry(values)) is not None and "UIDVALIDITY" in answer[1]:
                return answer[1]["UIDVALIDITY"]
        return 0

    def create_folder(self, folder: str) -> None:
        self.run(f"CREATE {self.quote(folder)}")

    def subscribe(self, folder: str) -> None:
        self.run(f"SUBSCRIBE {self.quote(folder)}")

    def append(self, folder: str, message: bytes | BinaryIO, flags: tuple[str, ...] = (),
               when: float | None = None, *, size: int | None = None) -> tuple[int, int] | None:
        """APPEND a message; returns (UIDVALIDITY, UID) when the server says (UIDPLUS), else None.

        ``message`` is the bytes, or a file read in chunks (``size`` bytes, the wire form: CRLF)
        so that a large message is never held in memory. ``when`` (a POSIX time) becomes the
        message's INTERNALDATE, the date mail programs sort by; without it the server uses the
        time of the upload.
        """
        if isinstance(message, bytes):
            size = len(message)
        elif size is None:
            raise ValueError("append() from a file needs its size")
        tag = self._tag()
        plus = "LITERAL+" in self._caps
        date = f' "{_internaldate(when)}"' if when is not None else ""
        head = f"APPEND {self.quote(folder)} ({' '.join(flags)}){date} {{{size}{'+' if plus else ''}}}"
        protocol_log.debug("C: %s %s", tag.decode(), head)
        seen = Untagged()
        self.in_step = False
        try:
            self._send(tag + b" " + head.encode("utf-8") + b"\r\n")
            while not plus:
                line = read_line(self._reader)
                if line.startswith(b"+"):
                    break
                if line.startswith(tag + b" "):
                    seen.tagged = line
                    raise ProtocolError(f"The IMAP server {self.server.host} refused to store a message in "
                                        f"{folder} ({_text(line).strip()})")
                seen.other.append(line[:1000])  # untagged news (EXISTS ...) may come before the go-ahead
            if isinstance(message, bytes):
                self._send(message + b"\r\n")
            else:
                self._send_file(message, size)
            for _ in read_responses(self._reader, tag, untagged=seen):
                pass
        except OSError as exc:
            raise translate(exc, self.server) from exc
        finally:
            self.in_step = seen.tagged.startswith(tag + b" ")
        m = _APPENDUID.search(seen.tagged)
        return (int(m.group(1)), int(m.group(2))) if m else None

    def _send_file(self, source: BinaryIO, size: int) -> None:
        """Exactly ``size`` bytes of ``source`` and the CRLF ending the command, a chunk at a time."""
        left = size
        while left:
            chunk = source.read(min(left, 1024 * 1024))
            if not chunk:
                # The literal's size is announced: the connection cannot carry on from here.
                self._sock.close()
                raise ProtocolError(f"A message being uploaded to {self.server.host} was {size - left} bytes, "
                                    f"not the {size} announced; the connection was closed")
            left -= len(chunk)
            # (the CRLF with the last chunk: a small write of its own would wait for the server's delayed ACK)
            self._send(chunk if left else chunk + b"\r\n")
        if not size:
            self._send(b"\r\n")

    def abort(self) -> None:
        """Hang up at once, without LOGOUT: the stream is out of step (see ``in_step``), or dead."""
        self.in_step = False
        try:
            self._sock.close()
        except OSError:
            pass

    def logout(self) -> None:
        # Every command before this one has had its tagged answer, so nothing is left in
        # flight: say LOGOUT and hang up without waiting for the server's goodbye.
        try:
            tag = self._tag()
            protocol_log.debug("C: %s LOGOUT", tag.decode())
            self._sock.settimeout(1)
            self._sock.sendall(tag + b" LOGOUT\r\n")
        except OSError:
            pass  # the server may already have closed; nothing left to do
        finally:
            try:
                self._sock.close()
            except OSError:
                pass


def _folder_name(raw: object) -> str:
    return utf7.decode(raw if isinstance(raw, bytes) else str(raw).encode())


def _list_entry(values: list[object]) -> tuple[tuple[str, ...], str, str] | None:
    """(flags, delimiter, decoded name) of a parsed ``* LIST``/``* LSUB`` response."""
    if len(values) < 3 or not isinstance(values[0], list):
        return None
    delim = _text(values[1]) if values[1] is not None else "/"
    return tuple(_text(f) for f in values[0]), delim, _folder_name(values[2])


def _status_entry(values: list[object]) -> tuple[str, dict[str, int]] | None:
    """(decoded name, {item: number}) of a parsed ``* STATUS`` response."""
    if len(values) < 2 or not isinstance(values[1], list):
        return None
    it = iter(values[1])
    items = {_text(key).upper(): int(value) for key, value in zip(it, it, strict=False)
             if isinstance(value, bytes) and value.isdigit()}
    return _folder_name(values[0]), items


def qresync_params(uidvalidity: int, highestmodseq: int) -> str:
    """SELECT parameters asking for what changed since the last sync (RFC 7162)."""
    return f"(QRESYNC ({uidvalidity} {highestmodseq}))"


def decode_utf7(raw: bytes) -> str:
    return utf7.decode(raw)


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _internaldate(when: float) -> str:
    """RFC 3501 date-time ("02-Jan-2023 10:00:00 +0000"), in UTC: month names never localised."""
    t = time.gmtime(when)
    clock = f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    return f"{t.tm_mday:02d}-{_MONTHS[t.tm_mon - 1]}-{t.tm_year:04d} {clock} +0000"


def _status(tagged: bytes) -> bytes:
    """OK / NO / BAD of a tagged completion line."""
    status = core.imap_tagged(tagged, tagged.split(b" ", 1)[0]) if tagged else None
    return status.status.encode() if status is not None else b""


def _is_change(line: bytes) -> bool:
    words = line.split(b" ", 3)
    return len(words) >= 3 and words[0] == b"*" and words[2].rstrip().upper() in (b"EXISTS", b"EXPUNGE", b"FETCH")


_CODE = re.compile(rb"\[(UIDVALIDITY|UIDNEXT|HIGHESTMODSEQ) (\d+)\]", re.I)
_PERMANENTFLAGS = re.compile(rb"\[PERMANENTFLAGS \(([^)]*)\)\]", re.I)
_CAPS = re.compile(rb"\[CAPABILITY ([^\]]*)\]", re.I)
# RFC 6154 special-use attributes deskmail knows.
SPECIAL_USES = ("\\Sent", "\\Drafts", "\\Trash", "\\Junk", "\\Archive", "\\All", "\\Flagged")
# Name-based fallback for servers without SPECIAL-USE (lower-case names).
NAME_HINTS = {
    "\\Sent": ("sent", "sent items", "sent messages", "sent mail", "gesendet", "envoyés"),
    "\\Drafts": ("drafts", "draft", "entwürfe", "brouillons"),
    "\\Trash": ("trash", "deleted items", "deleted messages", "bin", "papierkorb", "corbeille"),
    "\\Junk": ("junk", "spam", "junk e-mail", "bulk mail"),
    "\\Archive": ("archive", "archives", "archiv"),
}


def special_use_of(flags: tuple[str, ...], name: str) -> str:
    for f in flags:
        if f in SPECIAL_USES:
            return f
    last = name.rsplit("/", 1)[-1].rsplit(".", 1)[-1].lower()
    for use, names in NAME_HINTS.items():
        if last in names:
            return use
    return ""


_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]", re.I)


# TCP keepalive: a session waiting in IDLE sends nothing for up to half an hour, so a network that
# died without a FIN or RST (a laptop's Wi-Fi gone, a NAT entry dropped) would only be noticed at the
# next renewal. With probes after 60 s of silence, every 15 s, the kernel gives up after ~2 minutes
# and the watch reconnects.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 60, 15, 4


def keep_alive(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", KEEPALIVE_IDLE), ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
                          ("TCP_KEEPCNT", KEEPALIVE_COUNT)):
        if hasattr(socket, option):  # Linux names; macOS has TCP_KEEPALIVE instead of TCP_KEEPIDLE
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


class PreDialed(Protocol):
    """A connection to a server already being opened elsewhere (the command-line fast path's ``Dial``)."""

    key: tuple[str, int, bool, str]

    def serves(self, account: Account) -> bool: ...

    def take(self) -> socket.socket: ...


@contextmanager
def open_imap(account: Account, password: Secret, *, timeout: float = 30.0,
              dial: PreDialed | None = None) -> Iterator[ImapSession]:
    """A logged-in session; ``dial`` is a connection to the account's server already being opened."""
    server = account.incoming
    check_plaintext_policy(account, server)
    tls = server.security is Security.SSL
    ctx = None if dial is not None and tls else client_context(account.ca_file)
    try:
        if dial is not None:
            if not dial.serves(account):
                raise ValueError(f"dialed {dial.key}, not the account's server")
            sock = dial.take()
            sock.settimeout(timeout)
        else:
            sock = socket.create_connection((server.host, server.port), timeout=timeout)
        keep_alive(sock)
    except OSError as exc:
        raise translate(exc, server) from exc
    session: ImapSession | None = None
    try:
        if tls and ctx is not None:
            try:
                sock = ctx.wrap_socket(sock, server_hostname=server.host)
            except OSError as exc:
                raise translate(exc, server) from exc
        session = ImapSession(sock, server)
        greeting = session._greeting()
        if greeting.kind == core.IMAP_PREAUTH and server.security is not Security.SSL:
            raise StartTLSUnavailable(
                f"The IMAP server {server.host}:{server.port} skipped login (PREAUTH) before encryption",
                "someone on the network may be tampering with the connection",
                "do not use this network for mail; connect with SSL/TLS (port 993) instead",
            )
        if not session._caps:
            session._refresh_caps()
        if server.security is Security.STARTTLS:
            assert ctx is not None  # only an SSL/TLS dial comes without a context
            session._starttls(ctx)
        if greeting.kind != core.IMAP_PREAUTH:
            if server.auth == "oauth2":
                session._sign_in_bearer(password, bearer.preferred_mechanism(account))
            else:
                session._login(password)
    except BaseException:
        if session is not None:
            session._sock.close()
        else:
            sock.close()
        raise
    try:
        yield session
    finally:
        session.logout()

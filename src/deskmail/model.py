"""The domain model: small immutable values shared by every layer.

Nothing here does I/O. Invalid values are refused at construction, so the
rest of the code can trust a ``ServerSettings`` it is handed.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


class Security(StrEnum):
    """How a connection is encrypted."""

    SSL = "ssl"  # implicit TLS from the first byte (IMAPS 993, POP3S 995, SMTPS 465)
    STARTTLS = "starttls"  # plain greeting, then upgrade; refusing to upgrade is fatal
    NONE = "none"  # no encryption; passwords only with allow_plaintext_password

    @property
    def label(self) -> str:
        return {"ssl": "SSL/TLS", "starttls": "STARTTLS", "none": "no encryption"}[self.value]


class Protocol(StrEnum):
    IMAP = "imap"
    POP3 = "pop3"
    SMTP = "smtp"


# Standard ports, used as defaults and by the doctor's alternatives.
DEFAULT_PORTS: dict[tuple[Protocol, Security], int] = {
    (Protocol.IMAP, Security.SSL): 993,
    (Protocol.IMAP, Security.STARTTLS): 143,
    (Protocol.IMAP, Security.NONE): 143,
    (Protocol.POP3, Security.SSL): 995,
    (Protocol.POP3, Security.STARTTLS): 110,
    (Protocol.POP3, Security.NONE): 110,
    (Protocol.SMTP, Security.SSL): 465,
    (Protocol.SMTP, Security.STARTTLS): 587,
    (Protocol.SMTP, Security.NONE): 587,
}

_HOST_RE = re.compile(r"^[A-Za-z0-9_.:\-\[\]]+$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$|^[^@\s]+@[A-Za-z0-9\-]+$")


# How long a sync waits for the server's next bytes: long enough for a slow server's big SEARCH or
# EXPUNGE, short enough that a dead connection (laptop asleep, a network that drops packets) ends.
DEFAULT_TIMEOUT = 60.0


def default_port(protocol: Protocol, security: Security) -> int:
    return DEFAULT_PORTS[(protocol, security)]


def valid_email(address: str) -> bool:
    return bool(_EMAIL_RE.match(address))


def email_domain(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".")


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Where and how to reach one server (incoming or outgoing)."""

    protocol: Protocol
    host: str
    port: int
    security: Security
    username: str
    auth: str = "password"  # "password" (PLAIN/LOGIN) or "oauth2"
    auth_required: bool = True  # only meaningful for SMTP

    def __post_init__(self) -> None:
        # Accept plain strings from config files and flags; keep enums.
        object.__setattr__(self, "protocol", Protocol(self.protocol))
        object.__setattr__(self, "security", Security(self.security))
        if not self.host or not _HOST_RE.match(self.host):
            raise ValueError(f"invalid host name {self.host!r}")
        if not isinstance(self.port, int) or isinstance(self.port, bool) or not 0 < self.port < 65536:
            raise ValueError(f"invalid port {self.port!r} (must be 1-65535)")
        if self.auth not in ("password", "oauth2"):
            raise ValueError(f"invalid auth method {self.auth!r} (password or oauth2)")

    def describe(self) -> str:
        return f"{self.protocol.value.upper()} {self.host}:{self.port} ({self.security.label})"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "protocol": self.protocol.value,
            "host": self.host,
            "port": self.port,
            "security": self.security.value,
            "username": self.username,
            "auth": self.auth,
        }
        if self.protocol is Protocol.SMTP:
            d["auth_required"] = self.auth_required
        return d


@dataclass(frozen=True, slots=True)
class PasswordSource:
    """Where an account's password comes from; the password itself is never stored here.

    kind: "keyring" (OS keyring, the default), "command" (stdout of a shell
    command, like msmtp's passwordeval) or "env" (an environment variable,
    for scripts).
    """

    kind: str = "keyring"
    command: str = ""
    env: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("keyring", "command", "env"):
            raise ValueError(f"invalid password source {self.kind!r} (keyring, command or env)")
        if self.kind == "command" and not self.command:
            raise ValueError("password source 'command' needs password_command")
        if self.kind == "env" and not self.env:
            raise ValueError("password source 'env' needs password_env")


# CR, LF, other controls and what str.splitlines() also breaks at (NEL, the Unicode line and paragraph
# separators): a header value must stay one line.
_HEADER_BREAK = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")


def identity_problem(address: str, name: str = "", reply_to: str = "") -> str:
    """What is wrong with an identity's header fields ("" when nothing): they become From and Reply-To, so a
    line break in one would smuggle in another header."""
    for label, value in (("address", address), ("name", name), ("Reply-To", reply_to)):
        if _HEADER_BREAK.search(value):
            return f"the {label} {value!r} contains a line break or another control character"
    if not valid_email(address) or "<" in address or ">" in address or "," in address:
        return f"{address!r} is not an e-mail address"
    if reply_to and (not valid_email(reply_to) or any(c in reply_to for c in "<>,")):
        return f"the Reply-To {reply_to!r} is not an e-mail address"
    return ""


def plain_signature(text: str) -> str:
    # One form of line endings and no trailing blank lines, so a signature is found again to be swapped.
    return text.replace("\r\n", "\n").replace("\r", "\n").rstrip()


@dataclass(frozen=True, slots=True)
class Identity:
    """One From-address of an account: its address, the name shown with it, where replies should go
    (``reply_to``, "" for the address itself) and its plain-text signature (without the "-- " line)."""

    address: str
    name: str = ""
    reply_to: str = ""
    signature: str = ""

    def __post_init__(self) -> None:
        problem = identity_problem(self.address, self.name, self.reply_to)
        if problem:
            raise ValueError(problem)
        object.__setattr__(self, "signature", plain_signature(self.signature))

    def label(self) -> str:
        """``Name <address>``, or the address alone."""
        return f"{self.name} <{self.address}>" if self.name else self.address


@dataclass(frozen=True, slots=True)
class Account:
    """One configured mail account: who it is, where its mail comes from and goes to.

    The address and display name are its primary identity (with ``reply_to`` and ``signature``);
    ``identities`` are the further From-addresses it sends as."""

    name: str
    email: str
    display_name: str
    incoming: ServerSettings
    outgoing: ServerSettings
    password: PasswordSource = field(default_factory=PasswordSource)
    ca_file: str = ""  # extra trust anchor (self-hosted servers, the sandbox)
    allow_plaintext_password: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    reply_to: str = ""
    signature: str = ""
    identities: tuple[Identity, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"invalid account name {self.name!r}")
        if not valid_email(self.email):
            raise ValueError(f"invalid email address {self.email!r}")
        problem = identity_problem(self.email, self.display_name, self.reply_to)
        if problem:
            raise ValueError(problem)
        object.__setattr__(self, "signature", plain_signature(self.signature))
        seen = [i.address.lower() for i in self.all_identities()]
        if len(set(seen)) != len(seen):
            raise ValueError("two identities have the same address")
        if self.incoming.protocol not in (Protocol.IMAP, Protocol.POP3):
            raise ValueError("incoming server must be IMAP or POP3")
        if self.outgoing.protocol is not Protocol.SMTP:
            raise ValueError("outgoing server must be SMTP")

    @property
    def primary(self) -> Identity:
        return Identity(self.email, self.display_name, self.reply_to, self.signature)

    def all_identities(self) -> tuple[Identity, ...]:
        """The primary identity first, then the others."""
        return (self.primary, *self.identities)

    def identity(self, address: str) -> Identity | None:
        """The identity of ``address`` (any case; "" = the primary), or None."""
        if not address:
            return self.primary
        want = address.strip().lower()
        return next((i for i in self.all_identities() if i.address.lower() == want), None)

    @property
    def timeout(self) -> float:
        """Seconds to wait for the incoming server to answer before the connection is given up (the
        ``timeout`` option; a stalled or blackholed connection ends after this, never hangs)."""
        return float(self.options.get("timeout", DEFAULT_TIMEOUT))


@dataclass(frozen=True, slots=True)
class Attachment:
    """An attachment as listed: its safe name, type and size."""

    filename: str
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class MessageSummary:
    """One row of a message list: what the index knows without opening the file."""

    id: int
    account: str
    folder: str
    uid: str
    date: str
    sender: str
    to: str
    subject: str
    message_id: str
    size: int
    flags: str
    path: str
    partial: bool = False  # only the header block is stored (POP3 headers-only)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ThreadSummary:
    """One row of a threaded message list: a conversation with a message in the listed folder(s)."""

    thread: int  # the conversation's number (Deskmail.thread(latest.id) lists it)
    latest: MessageSummary  # its newest message in the listed folder(s): what the row shows, and the page's key
    messages: int  # messages in the whole conversation, every folder and account
    unread: int

    def to_dict(self) -> dict[str, Any]:
        return {"thread": self.thread, "messages": self.messages, "unread": self.unread,
                "latest": self.latest.to_dict()}


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A message found by a search: its summary, and a snippet of where it matched with the matched
    words' (start, end) character ranges in the snippet (empty when only filters matched)."""

    message: MessageSummary
    snippet: str
    highlights: tuple[tuple[int, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**self.message.to_dict(), "snippet": self.snippet, "highlights": [list(h) for h in self.highlights]}

"""Drafts: a message being written, saved where the account keeps them, and resumed (docs/outbox.md).

IMAP accounts keep drafts in the server's Drafts folder (SPECIAL-USE ``\\Drafts``, else the common names;
created when missing), flagged ``\\Draft \\Seen``, so another program sees them too. POP3 accounts have no
folders on the server: their drafts are files in ``DATA/drafts/ACCOUNT/``.

A draft is known by its Message-ID (``ref``); saving again gives the new version a new Message-ID and removes
the one it replaces only after the new one is stored (a failure in between leaves two versions, never none).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from email.policy import default
from email.utils import getaddresses
from pathlib import Path
from typing import BinaryIO

from deskmail.codes import Code
from deskmail.errors import NotFoundError
from deskmail.model import Account, Protocol
from deskmail.outbox.compose import Draft, build_message, write_message
from deskmail.protocol.imap import ImapSession, open_imap, quote_string
from deskmail.secrets import Secret

_FIELDS = "MESSAGE-ID SUBJECT TO DATE"
_HEAD = 256 * 1024  # what is read of a saved draft for its header


@dataclass(frozen=True, slots=True)
class DraftInfo:
    account: str
    ref: str  # the saved version's Message-ID: what open_draft / discard_draft / save_draft(replaces=) take
    subject: str
    to: str
    date: str
    where: str  # the IMAP folder, or the local file


def draft_writer(account: Account, draft: Draft) -> tuple[Callable[[BinaryIO], None], str]:
    """The draft as a message (recipients optional, Bcc kept as a header: it is the writer's own copy): what
    writes it into a file (its attachments streamed in, never read whole), and its Message-ID."""
    msg, _recipients = build_message(account, draft, require_recipients=False)
    if draft.bcc:
        msg["Bcc"] = ", ".join(draft.bcc)
    msg["X-Deskmail-Draft"] = "yes"
    policy = default.clone(linesep="\r\n", utf8=True)
    return (lambda out: write_message(out, msg, draft.attachments, policy)), str(msg["Message-ID"])


def _head(fh: BinaryIO) -> bytes:
    """The start of a message file, enough for its header (then rewound)."""
    fh.seek(0)
    head = fh.read(_HEAD)
    fh.seek(0)
    return head


def draft_from_message(raw: bytes) -> Draft:
    """The fields of a saved draft (attachments aside: the caller writes them out)."""
    msg = BytesParser(policy=default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)

    def addresses(name: str) -> tuple[str, ...]:
        return tuple(a for _n, a in getaddresses([str(v) for v in msg.get_all(name, [])]) if a)

    body = msg.get_body(("plain",))
    text = body.get_content() if isinstance(body, EmailMessage) else ""
    return Draft(to=addresses("To"), cc=addresses("Cc"), bcc=addresses("Bcc"), subject=str(msg["Subject"] or ""),
                 body=str(text).replace("\r\n", "\n"), in_reply_to=str(msg["In-Reply-To"] or "").strip(),
                 references=tuple(str(msg["References"] or "").split()),
                 sender=next(iter(addresses("From")), ""))


def _info(account: str, raw_header: bytes, where: str) -> DraftInfo:
    h = BytesHeaderParser(policy=default).parsebytes(raw_header)
    return DraftInfo(account, str(h["Message-ID"] or "").strip(), str(h["Subject"] or ""), str(h["To"] or ""),
                     str(h["Date"] or ""), where)


def _missing(ref: str) -> NotFoundError:
    return NotFoundError(f"There is no draft {ref!r}", "it was sent, discarded or replaced by a newer version",
                         "list the drafts to see them", code=Code.NO_SUCH_DRAFT)


class LocalDrafts:
    """A POP3 account's drafts: one file per draft, named after its Message-ID."""

    def __init__(self, root: Path, account: str) -> None:
        self.root, self.account = root, account

    def _path(self, ref: str) -> Path:
        return self.root / (hashlib.sha256(ref.encode()).hexdigest()[:32] + ".eml")

    def save(self, write: Callable[[BinaryIO], None], ref: str, replaces: str) -> DraftInfo:
        from deskmail.durable import atomic_write

        path = self._path(ref)
        atomic_write(path, write)
        if replaces:
            self._path(replaces).unlink(missing_ok=True)
        with open(path, "rb") as fh:
            return _info(self.account, _head(fh), str(path))

    def list(self) -> list[DraftInfo]:
        if not self.root.is_dir():
            return []
        return [_info(self.account, p.read_bytes(), str(p)) for p in sorted(self.root.glob("*.eml"))]

    def raw(self, ref: str) -> bytes:
        try:
            return self._path(ref).read_bytes()
        except FileNotFoundError:
            raise _missing(ref) from None

    def discard(self, ref: str) -> None:
        path = self._path(ref)
        if not path.exists():
            raise _missing(ref)
        path.unlink()


class ServerDrafts:
    """An IMAP account's Drafts folder, over one connection per call."""

    def __init__(self, account: Account, password: Secret, timeout: float = 60.0) -> None:
        self.account, self.password, self.timeout = account, password, timeout

    @contextmanager
    def _folder(self, *, create: bool = False) -> Iterator[tuple[ImapSession, str]]:
        from deskmail.protocol.imap import special_use_of

        with open_imap(self.account, self.password, timeout=self.timeout) as imap:
            folders = imap.list_folders()
            name = next((n for flags, _d, n in folders if "\\Drafts" in flags), None) or next(
                (n for flags, _d, n in folders if special_use_of(flags, n) == "\\Drafts"), None)
            if name is None:
                if not create:
                    yield imap, ""
                    return
                name = "Drafts"
                imap.create_folder(name)
                imap.subscribe(name)
            yield imap, name

    @staticmethod
    def _uids(imap: ImapSession, ref: str) -> list[int]:
        if not ref or not ref.isascii():
            return []
        seen = imap.run(f"UID SEARCH UNDELETED HEADER Message-ID {quote_string(ref)}", parse=frozenset({b"SEARCH"}))
        return sorted({int(v) for _k, values in seen.data for v in values if isinstance(v, bytes) and v.isdigit()})

    @staticmethod
    def _delete(imap: ImapSession, uids: list[int]) -> None:
        """Mark the old versions deleted and expunge exactly them (UID EXPUNGE); without UIDPLUS they stay
        marked, for the server or another program to expunge: a plain EXPUNGE would remove others' too."""
        if not uids:
            return
        uid_set = ",".join(map(str, uids))
        imap.run(f"UID STORE {uid_set} +FLAGS.SILENT (\\Deleted)")
        if imap.has_capability("UIDPLUS"):
            imap.run(f"UID EXPUNGE {uid_set}")

    def save(self, write: Callable[[BinaryIO], None], ref: str, replaces: str) -> DraftInfo:
        import tempfile

        # Written out first (an APPEND announces the size), into a file that has no name: nothing to clean up.
        with tempfile.TemporaryFile() as fh:
            write(fh)
            size = fh.tell()
            head = _head(fh)
            with self._folder(create=True) as (imap, name):
                imap.append(name, fh, ("\\Draft", "\\Seen"), size=size)
                if replaces:
                    imap.select(name, readonly=False)
                    self._delete(imap, self._uids(imap, replaces))
        return _info(self.account.name, head, name)

    def list(self) -> list[DraftInfo]:
        with self._folder() as (imap, name):
            if not name:
                return []
            status = imap.select(name)
            if not status.exists:
                return []
            return [_info(self.account.name, next(iter(item.small.values()), b""), name)
                    for item in imap.command(f"UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS ({_FIELDS})])")
                    if "\\Deleted" not in (item.flags or ())]

    def raw(self, ref: str) -> bytes:
        with self._folder() as (imap, name):
            if name:
                imap.select(name)
            uids = self._uids(imap, ref) if name else []
            if not uids:
                raise _missing(ref)
            buf = io.BytesIO()
            for _item in imap.command(f"UID FETCH {uids[-1]} (UID BODY.PEEK[])", body_sink=lambda _i: buf):
                pass
            return buf.getvalue()

    def discard(self, ref: str) -> None:
        with self._folder() as (imap, name):
            if name:
                imap.select(name, readonly=False)
            uids = self._uids(imap, ref) if name else []
            if not uids:
                raise _missing(ref)
            self._delete(imap, uids)


def store_for(account: Account, password: Secret | None, drafts_dir: Path,
              timeout: float = 60.0) -> LocalDrafts | ServerDrafts:
    if account.incoming.protocol is Protocol.IMAP and password is not None:
        return ServerDrafts(account, password, timeout)
    return LocalDrafts(drafts_dir / account.name, account.name)

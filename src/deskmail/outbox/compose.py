"""Build a MIME message from what the user typed, and hand it to SMTP.

Uses ``email.message.EmailMessage`` with the default policy: it folds
headers, encodes non-ASCII words and picks transfer encodings correctly.
Attached files are not read into it: :func:`write_message` streams them
into the message as it is written out (see there why).
"""

from __future__ import annotations

import base64
import io
import mimetypes
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import Policy, default
from email.utils import formatdate, getaddresses, make_msgid
from pathlib import Path
from typing import BinaryIO

from deskmail.codes import Code
from deskmail.errors import NotFoundError, UsageError
from deskmail.model import Account, Identity, email_domain, valid_email

MAX_ATTACHMENT = 50 * 1024 * 1024
# The body of a file's part until write_message puts the file there: this line and the index of the file in
# Draft.attachments. Random per process, so no text a person writes can be taken for it.
_MARK = ("deskmail-file-" + secrets.token_hex(16) + "-").encode()
_LINE = 57  # bytes of a file per base64 line (76 characters), as the email package writes them
_CHUNK = _LINE * 4096  # what is read of a file at a time (228 KiB): whole lines, so no state between reads


@dataclass(frozen=True)
class Draft:
    """A message as the person writes it: the addresses, the subject, the text, the files to attach."""

    to: Sequence[str]
    cc: Sequence[str] = ()
    bcc: Sequence[str] = ()
    subject: str = ""
    body: str = ""
    attachments: Sequence[Path] = field(default_factory=tuple)
    in_reply_to: str = ""  # the Message-ID answered (a reply)
    references: Sequence[str] = ()  # the thread's Message-IDs, oldest first
    sender: str = ""  # the identity's address it goes out from ("" = the account's own)
    # Where the person starts typing in ``body`` (below a reply's quote, above the signature); where the
    # cursor was is no change to the message, so it does not count in comparing drafts.
    write_at: int = field(default=0, compare=False)


def sender_address(sender: str) -> str:
    """The address of ``sender`` ("address" or "Name <address>")."""
    if "<" not in sender:
        return sender.strip()
    pairs = getaddresses([sender])
    return pairs[0][1] if pairs and pairs[0][1] else sender.strip()


def identity_of(account: Account, sender: str) -> Identity:
    """The account's identity for ``sender`` ("" = the primary), or the ``no_such_identity`` error."""
    address = sender_address(sender)
    found = account.identity(address)
    if found is None:
        raise NotFoundError(
            f"The account {account.name!r} has no identity {address!r}",
            "the address is misspelt, or it was never added to the account",
            "use one of its addresses (" + ", ".join(i.address for i in account.all_identities()) + ")",
            code=Code.NO_SUCH_IDENTITY, account=account.name)
    return found


def _addresses(values: Sequence[str], field_name: str) -> list[str]:
    out = []
    for value in values:
        # Each value may hold several addresses ("a@x, Bob <b@y>"); getaddresses splits them, but it
        # also makes "not an address" into the bare word "not": the error must quote what was typed.
        for _name, addr in getaddresses([value]):
            if not valid_email(addr):
                raise UsageError(
                    f"{value.strip() or '(empty)'!r} in {field_name} is not an e-mail address",
                    "",
                    "write addresses as name@example.com or Name <name@example.com>, separated by commas",
                    code=Code.BAD_ADDRESS,
                )
            out.append(addr)
    return out


def build_message(account: Account, draft: Draft, *,
                  require_recipients: bool = True) -> tuple[EmailMessage, list[str]]:
    """Return the message and its envelope recipients (To + Cc + Bcc); a draft being saved
    (``require_recipients=False``) may have none yet. An attached file's part holds a marker instead of
    the file: write the message out with :func:`write_message` (or :func:`wire_bytes`) and the draft's
    attachments."""
    to = _addresses(draft.to, "To")
    cc = _addresses(draft.cc, "Cc")
    bcc = _addresses(draft.bcc, "Bcc")
    if require_recipients and not (to or cc or bcc):
        raise UsageError("The message has no recipient", "", "give at least one recipient")
    me = identity_of(account, draft.sender)
    msg = EmailMessage()
    local, _, domain = me.address.rpartition("@")
    msg["From"] = Address(me.name, local, domain) if me.name else me.address
    if me.reply_to:
        msg["Reply-To"] = me.reply_to
    if draft.to:
        _set_header(msg, "To", ", ".join(draft.to))
    if draft.cc:
        _set_header(msg, "Cc", ", ".join(draft.cc))
    if draft.bcc:  # (only checked here: the copy in Sent and a saved draft name them)
        _set_header(EmailMessage(), "Bcc", ", ".join(draft.bcc))
    _set_header(msg, "Subject", draft.subject)
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=email_domain(me.address))
    if draft.in_reply_to:
        msg["In-Reply-To"] = draft.in_reply_to
    if draft.references:
        msg["References"] = " ".join(draft.references)
    msg["User-Agent"] = "deskmail"
    msg.set_content(draft.body if draft.body.endswith("\n") else draft.body + "\n")
    for index, path in enumerate(draft.attachments):
        if path.is_dir():
            raise UsageError(f"The attachment {path} is a folder, not a file", "",
                             "attach the files inside it one by one, or pack it into a zip file first",
                             code=Code.ATTACHMENT_IS_FOLDER)
        if not path.is_file():
            raise UsageError(f"The attachment {path} does not exist", "", "check the file name",
                             code=Code.ATTACHMENT_MISSING)
        if path.stat().st_size > MAX_ATTACHMENT:
            raise UsageError(
                f"The attachment {path} is larger than 50 MB",
                "most mail servers refuse messages that large",
                "share the file through a link instead",
            )
        ctype, encoding = mimetypes.guess_type(path.name)
        if ctype is None or encoding is not None:
            ctype = "application/octet-stream"
        maintype, _, subtype = ctype.partition("/")
        if ctype == "message/rfc822":  # (a forwarded message): RFC 2046 5.2.1 allows 7bit/8bit, never base64
            _attach_message(msg, path.read_bytes(), path.name)  # (a message, not a large file: parsed whole)
            continue
        # The part's headers exactly as for the file's bytes (base64, RFC 2231 filename); its body the marker.
        msg.add_attachment(b"", maintype=maintype, subtype=subtype, filename=path.name)
        parts = msg.get_payload()
        assert isinstance(parts, list) and isinstance(parts[-1], EmailMessage)
        part = parts[-1]
        part.set_payload(_MARK.decode() + f"{index}\n")
    return msg, to + cc + bcc


def _set_header(msg: EmailMessage, name: str, value: str) -> None:
    """A line break in a value, also one hidden in an encoded word (``=?utf-8?b?DQo=?=``, which the email
    package decodes when the header is set), would be written out as a header line of its own."""
    try:
        msg[name] = value
        broken = any(c in str(msg[name]) for c in "\r\n")
    except ValueError:  # (the email package's own refusal of a line break)
        broken = True
    if broken:
        raise UsageError(f"The {name} header holds a line break", "it would start a header line of its own",
                         "write it on one line", code=Code.LINE_BREAK_IN_HEADER)


def _attach_message(msg: EmailMessage, data: bytes, filename: str) -> None:
    """An ASCII message goes as it is (CRLF lines); the stdlib's generator cannot pass 8-bit bytes through
    verbatim, so an 8-bit one is parsed and written out again (8bit: header folding may change)."""
    if data.isascii():
        crlf = re.sub(rb"\r?\n", b"\r\n", data)
        msg.add_attachment(crlf, maintype="message", subtype="rfc822", cte="7bit", filename=filename)
    else:
        msg.add_attachment(BytesParser(policy=default).parsebytes(data), filename=filename)


def bcc_of(draft: Draft) -> list[str]:
    """The blind-copy addresses: in the envelope only, never in the transmitted headers."""
    return _addresses(draft.bcc, "Bcc")


def wire_policy(addresses: Sequence[str]) -> Policy:
    """The message as handed to SMTP: CRLF lines; raw UTF-8 headers only when an address needs them
    (SMTPUTF8, RFC 6531), encoded words otherwise."""
    from email.policy import SMTP, SMTPUTF8

    return SMTP if all(a.isascii() for a in addresses) else SMTPUTF8


def wire_bytes(msg: EmailMessage, addresses: Sequence[str], files: Sequence[Path] = ()) -> bytes:
    """The message of :func:`build_message` (``files``: the draft's attachments) as handed to SMTP, in memory."""
    out = io.BytesIO()
    write_message(out, msg, files, wire_policy(addresses))
    return out.getvalue()


def write_message(out: BinaryIO, msg: EmailMessage, files: Sequence[Path], policy: Policy) -> None:
    """Write ``msg`` to ``out`` with each attached file (``files``, the draft's attachments) streamed in.

    The email package holds every payload in memory, as a string, and its generator has no way to take a
    part's body from a file: a 50 MB attachment would be held four times over (bytes, base64, the message,
    its copy). So the package writes the headers, the text and the MIME structure (boundaries), with a
    marker line for the body of each file's part, and the file's base64 goes where the marker is, read and
    encoded a whole number of 57-byte lines at a time: the same lines as the package writes (76 characters,
    the last one padded), the policy's line ending. Memory stays bounded whatever the files' size.
    """
    text = msg.as_bytes(policy=policy)
    eol = policy.linesep.encode()
    at = 0
    for found in re.finditer(re.escape(_MARK) + rb"(\d+)" + re.escape(eol), text):
        out.write(text[at:found.start()])
        path = files[int(found.group(1))]
        try:
            with open(path, "rb") as fh:
                while chunk := _read_full(fh, _CHUNK):
                    coded = base64.b64encode(chunk)
                    out.write(b"".join(coded[i:i + 76] + eol for i in range(0, len(coded), 76)))
        except OSError as exc:
            raise UsageError(f"The attachment {path} cannot be read ({exc.strerror or exc})",
                             "it was moved, removed or made unreadable while the message was being written",
                             "check the file and send again", code=Code.ATTACHMENT_MISSING) from None
        at = found.end()
    out.write(text[at:])


def _read_full(fh: BinaryIO, size: int) -> bytes:
    """``size`` bytes, fewer only at the end of the file (a read may return less: a pipe, a network file)."""
    data = fh.read(size)
    while 0 < len(data) < size:
        more = fh.read(size - len(data))
        if not more:
            break
        data += more
    return data

"""Replies and forwards: the draft a person starts from, built from the message they answer.

Pure: header values and the original's text in, a :class:`~deskmail.outbox.compose.Draft` out.
Header decoding is forgiving (malformed encoded words and stray bytes give their best reading,
never an exception), because the message being answered may be anything a server delivered.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import formataddr, getaddresses, parsedate_to_datetime

from deskmail.model import Account
from deskmail.outbox.compose import Draft, identity_of
from deskmail.outbox.identities import FORWARD_MARK, addressed_identity, own_addresses, with_signature
from deskmail.render.decode import decode_header

# "Re:" is added once: a subject already starting with a reply prefix (also "AW:", "SV:", "Re[2]:"…) keeps it.
_REPLY_PREFIX = re.compile(r"^\s*(re|aw|sv|vs|antw|ref)\s*(\[\d+\])?\s*:", re.IGNORECASE)
_FORWARD_PREFIX = re.compile(r"^\s*(fwd?|wg|tr|vs)\s*:", re.IGNORECASE)


def headers_of(raw: bytes) -> dict[str, str]:
    """The message's header fields decoded to text (first occurrence of each name, names lower-case)."""
    msg = BytesHeaderParser(policy=compat32).parsebytes(raw)
    out: dict[str, str] = {}
    for name, value in msg.items():
        key = name.lower()
        if key not in out:
            # One line: an encoded word may decode to a line break, which copied into the reply's Subject
            # or an address would be refused (line_break_in_header) — or be a header injection.
            out[key] = " ".join(_decode(value).splitlines())
    return out


def _decode(value: object) -> str:
    # The reader's decoder: malformed encoded words, bad base64, unknown charsets and raw 8-bit bytes give
    # their best reading (email.header raises HeaderParseError on some of them).
    return decode_header(str(value))


def reply_subject(subject: str) -> str:
    return subject if _REPLY_PREFIX.match(subject) else f"Re: {subject}".rstrip()


def forward_subject(subject: str) -> str:
    return subject if _FORWARD_PREFIX.match(subject) else f"Fwd: {subject}".rstrip()


def _addresses(*values: str) -> list[tuple[str, str]]:
    return [(name, addr) for name, addr in getaddresses([v for v in values if v]) if "@" in addr]


def _unique(pairs: Iterable[tuple[str, str]], skip: set[str]) -> list[str]:
    seen = set(skip)
    out = []
    for name, addr in pairs:
        key = addr.lower()
        if key not in seen:
            seen.add(key)
            # formataddr refuses a non-ASCII address (an internationalized one, or garbage from a bad
            # header): then the name and address are joined as they are, for the person to see and fix.
            try:
                out.append(formataddr((name, addr)) if name else addr)
            except UnicodeError:
                out.append(f"{name} <{addr}>" if name else addr)
    return out


def _quote(text: str) -> str:
    return "\n".join(("> " + line) if line else ">" for line in text.rstrip("\n").split("\n"))


def _intro(h: dict[str, str]) -> str:
    who = (_addresses(h.get("from", "")) or [("", h.get("from", "someone"))])[0]
    name = who[0] or who[1]
    try:
        when = parsedate_to_datetime(h["date"]).strftime("%a, %d %b %Y at %H:%M")
    except (KeyError, TypeError, ValueError, IndexError):
        return f"{name} wrote:"
    return f"On {when}, {name} wrote:"


def reply_draft(account: Account, raw: bytes, text: str, *, reply_all: bool = False, sender: str = "") -> Draft:
    """The reply to ``raw`` (whose readable text is ``text``): to its Reply-To or sender, and with
    ``reply_all`` also to everyone else it went to, never to any of the account's own addresses. It goes out
    from ``sender`` (an identity's address), else from the identity the original was addressed to. Bottom-
    posted: the person writes below the quote (``write_at``), above the signature."""
    h = headers_of(raw)
    me = identity_of(account, sender) if sender else addressed_identity(
        account, h.get("to", ""), h.get("cc", ""), h.get("delivered-to", ""))
    own = own_addresses(account)
    to_pairs = _addresses(h.get("reply-to", "")) or _addresses(h.get("from", ""))
    to = _unique(to_pairs, own)
    cc: list[str] = []
    if reply_all:
        cc = _unique(_addresses(h.get("to", ""), h.get("cc", "")), own | {a.lower() for _n, a in to_pairs})
    if not to and cc:  # answering one's own message: the others become the recipients
        to, cc = cc, []
    message_id = h.get("message-id", "").strip()
    references = tuple(h.get("references", "").split()) + ((message_id,) if message_id else ())
    quoted = f"{_intro(h)}\n{_quote(text)}\n\n"
    return with_signature(Draft(to=tuple(to), cc=tuple(cc), subject=reply_subject(h.get("subject", "")),
                                body=quoted, in_reply_to=message_id, references=references,
                                write_at=len(quoted)), me)


def forward_draft(account: Account, raw: bytes, text: str, *, sender: str = "") -> Draft:
    """The original inline below a header block, for the person to address; from ``sender``, else from the
    identity the original was addressed to; the signature above the forwarded message."""
    h = headers_of(raw)
    me = identity_of(account, sender) if sender else addressed_identity(
        account, h.get("to", ""), h.get("cc", ""), h.get("delivered-to", ""))
    fields = (("From", "from"), ("Date", "date"), ("Subject", "subject"), ("To", "to"), ("Cc", "cc"))
    block = "\n".join(f"{label}: {h[key]}" for label, key in fields if h.get(key))
    return with_signature(Draft(to=(), subject=forward_subject(h.get("subject", "")),
                                body=f"\n{FORWARD_MARK}{block}\n\n{text.rstrip()}\n"), me)

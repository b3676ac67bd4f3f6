"""Identities (the From-addresses of an account) and their signatures in a message being written.

Pure text work. A signature goes below the RFC 3676 separator line "-- " (dash, dash, space), as one
block ``"\\n\\n-- \\n" + signature + "\\n"``: at the end of a new message or a reply, above the forwarded
message in a forward. Changing the sender swaps exactly that block, so whatever the person typed stays
as it was.
"""

from __future__ import annotations

from dataclasses import replace
from email.utils import getaddresses

from deskmail.codes import Code
from deskmail.errors import UsageError
from deskmail.model import Account, Identity
from deskmail.outbox.compose import Draft, identity_of

SEPARATOR = "-- \n"
FORWARD_MARK = "\n-------- Forwarded Message --------\n"


def block(signature: str) -> str:
    """The text a signature adds to a body ("" for no signature)."""
    return f"\n\n{SEPARATOR}{signature}\n" if signature else ""


def make_identity(address: str, name: str = "", reply_to: str = "", signature: str = "") -> Identity:
    """An identity from what a person typed, or the ``bad_identity`` error saying what is wrong."""
    try:
        return Identity(address.strip(), name.strip(), reply_to.strip(), signature)
    except ValueError as exc:
        raise UsageError(f"Invalid identity: {exc}", "",
                         "give an address like name@example.com, and a name and Reply-To on one line each",
                         code=Code.BAD_IDENTITY) from None


def addressed_identity(account: Account, *fields: str) -> Identity:
    """The identity the message was sent to: the first of the account's addresses found in ``fields`` (the
    original's To, Cc, Delivered-To, in that order), else the primary."""
    mine = {i.address.lower(): i for i in account.all_identities()}
    for _name, addr in getaddresses([f for f in fields if f]):
        found = mine.get(addr.strip().lower())
        if found is not None:
            return found
    return account.primary


def own_addresses(account: Account) -> set[str]:
    """Every address the account sends as, lower-case: a reply-all leaves them all out."""
    return {i.address.lower() for i in account.all_identities()}


def with_signature(draft: Draft, identity: Identity) -> Draft:
    """``draft`` from ``identity``, its signature added where it belongs: above a forwarded message, else at
    the end (below the place the person writes, ``write_at``); the cursor never lands below it."""
    if not identity.signature:
        return replace(draft, sender=identity.address)
    body = draft.body
    mark = body.find(FORWARD_MARK)
    if mark >= 0:
        head, tail = body[:mark].rstrip("\n"), body[mark:]
    else:  # trailing empty lines give way to the signature's own blank line, but never the writing place
        head, tail = body[:max(len(body.rstrip("\n")), min(draft.write_at, len(body)))], ""
    return replace(draft, sender=identity.address, body=head + block(identity.signature) + tail,
                   write_at=min(draft.write_at, len(head)))


def change_sender(draft: Draft, old: Identity, new: Identity) -> Draft:
    """``draft`` sent as ``new`` instead of ``old``: the old signature block (the last one, as it was
    inserted) replaced by the new one; without it (the person deleted or edited it) the new one is added as
    for a new message. The person's words stay; ``write_at`` moves with any change before it."""
    body = draft.body
    old_block, new_block = block(old.signature), block(new.signature)
    at = body.rfind(old_block) if old_block else -1
    if at < 0:
        return with_signature(draft, new)
    body = body[:at] + new_block + body[at + len(old_block):]
    moved = len(new_block) - len(old_block) if at < draft.write_at else 0
    return replace(draft, sender=new.address, body=body, write_at=draft.write_at + moved)


__all__ = ["FORWARD_MARK", "SEPARATOR", "addressed_identity", "block", "change_sender", "identity_of",
           "make_identity", "own_addresses", "with_signature"]

"""What became of an outbox message, in words and as JSON: shared by `deskmail send`'s lean path
(:mod:`deskmail.cli.fastpath`, which must not import Typer) and the outbox commands."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deskmail.outbox.queue import OutboxEntry

_SAID = {
    "queued": "Queued",
    "deferred": "Not sent yet, kept in the outbox and tried again automatically",
    "failed": "Not sent: refused for good; kept in the outbox",
    "uncertain": ("Delivery unknown: the connection failed after the message was handed over, so it may have "
                  "been sent. It is not sent again automatically (`deskmail outbox retry ID` sends it again, "
                  "`deskmail outbox mark-sent ID` records it as sent)"),
}


def when(ts: float) -> str:
    return time.strftime("%H:%M:%S" if ts - time.time() < 86400 else "%Y-%m-%d %H:%M", time.localtime(ts))


def entry_dict(e: OutboxEntry) -> dict[str, Any]:
    d = e.to_dict()
    d["refused"] = e.refused
    return d


def describe(e: OutboxEntry) -> list[str]:
    """One entry's outcome for a person: the first line names it, the others say why."""
    who = ", ".join(e.recipients or e.delivered)
    lines = [f"{e.id}  {e.state}  {e.subject!r} to {who}"]
    if e.state == "sent":
        lines[0] = f"Sent {e.message_id} to {', '.join(e.delivered)}."
        if e.sent_copy == "saved":
            lines.append(f"A copy is in {e.sent_folder}.")
        elif e.sent_copy == "by_provider":
            lines.append("The provider keeps the copy in Sent itself.")
        elif e.sent_copy == "pending":
            lines.append("The copy in Sent is not saved yet; the next `deskmail outbox flush` (or sync) saves it.")
    elif e.state in _SAID:
        lines.append(_SAID[e.state].replace("ID", e.id) + ".")
        if e.last_error:
            lines.append(f"Reason: {e.last_error}")
        if e.state == "deferred":
            lines.append(f"Next attempt at {when(e.next_attempt)} (attempt {e.attempts + 1}); "
                         f"`deskmail outbox flush --all` tries now.")
    for rcpt, reply in e.refused.items():
        lines.append(f"Refused {rcpt}: {reply}")
    return lines

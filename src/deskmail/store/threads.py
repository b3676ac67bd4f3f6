"""Conversations: which messages belong together, from their References and In-Reply-To.

A thread is a connected component of the graph that links each message's Message-ID with the
ids in its References and In-Reply-To: across folders (a reply kept in Sent joins it) and
accounts (the same Message-ID is the same message). It is kept up incrementally as messages are
indexed (:func:`.search.catch_up`), as a union of keys: ``thread_keys`` maps every id seen
(a message's own and the ones it refers to) to a thread number, and ``messages.thread`` holds
each message's. A message that links keys of several threads merges them into the lowest
number. A thread's number is the row id of the first message indexed in it; a row not indexed
yet is a thread of its own (``coalesce(thread, id)``, which no other thread can have: its id was
never given out as a thread number).

Subject fallback, only for a message with neither References nor In-Reply-To whose subject reads
as a reply or forward ("Re: Budget"): it joins the thread that first used the subject without
its prefixes. Messages that are not replies never join by subject: two unrelated messages both
called "Hello" stay apart.
"""

from __future__ import annotations

import re
import sqlite3

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS thread_keys (key TEXT PRIMARY KEY, thread INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS thread_keys_thread ON thread_keys (thread)",
    # Partial: a sync inserts rows without a thread, and pays nothing for this index.
    "CREATE INDEX IF NOT EXISTS messages_thread ON messages (thread) WHERE thread IS NOT NULL",
)

MAX_REFERENCES = 100  # ids taken from one References header (its oldest and newest ones)
_ID = re.compile(r"<([^<>\s]{1,998})>")
_PREFIX = re.compile(r"^(?:\s*(?:re|fwd?|aw|wg|sv|vs|antw|tr|rif|r|i|enc|odp|vb)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*)+",
                     re.IGNORECASE)
_SPACE = re.compile(r"\s+")
SUBJECT = "subject:"  # key prefix of a subject (message ids have no such prefix: they are in <>)


def ids(value: str) -> list[str]:
    """The message ids in a header value, in order, without their angle brackets."""
    return _ID.findall(value)


def own_key(message_id: str, row_id: int) -> str:
    """A message's key: its Message-ID (angle brackets optional), or one of its own when it has none."""
    found = ids(message_id)
    if found:
        return found[0]
    bare = message_id.strip()
    return bare if bare and " " not in bare else f"#{row_id}"


def parent_keys(in_reply_to: str, references: str) -> list[str]:
    refs = ids(references)
    if len(refs) > MAX_REFERENCES:  # the root and the nearest ancestors carry the thread
        refs = refs[:MAX_REFERENCES // 2] + refs[-MAX_REFERENCES // 2:]
    out = dict.fromkeys(refs + ids(in_reply_to)[:1])
    return list(out)


def base_subject(subject: str) -> tuple[str, bool]:
    """(the subject without reply/forward prefixes, case-folded, spaces collapsed; whether it had one)."""
    m = _PREFIX.match(subject)
    rest = subject[m.end():] if m else subject
    return _SPACE.sub(" ", rest).strip().casefold(), m is not None


def assign(db: sqlite3.Connection, row_id: int, message_id: str, in_reply_to: str, references: str,
           subject: str) -> int:
    """Put message ``row_id`` in its thread (merging threads it links); in the caller's transaction."""
    own = own_key(message_id, row_id)
    parents = [k for k in parent_keys(in_reply_to, references) if k != own]
    base, reply = base_subject(subject)
    keys = [own, *parents]
    if not parents and reply and base:
        keys.append(SUBJECT + base)
    marks = ",".join("?" * len(keys))
    found = {int(r[0]) for r in db.execute(f"SELECT DISTINCT thread FROM thread_keys WHERE key IN ({marks})", keys)}
    thread = min(found) if found else row_id
    others = sorted(found - {thread})
    if others:
        merged = ",".join("?" * len(others))
        db.execute(f"UPDATE thread_keys SET thread = ? WHERE thread IN ({merged})", (thread, *others))
        db.execute(f"UPDATE messages SET thread = ? WHERE thread IN ({merged})", (thread, *others))
    db.executemany("INSERT OR REPLACE INTO thread_keys (key, thread) VALUES (?, ?)", [(k, thread) for k in keys])
    if base:  # (a reply's own subject too: an original that arrives later still does not join by it)
        db.execute("INSERT OR IGNORE INTO thread_keys (key, thread) VALUES (?, ?)", (SUBJECT + base, thread))
    db.execute("UPDATE messages SET thread = ? WHERE id = ?", (thread, row_id))
    return thread

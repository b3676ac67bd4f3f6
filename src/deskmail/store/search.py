"""Full-text search in the index: the FTS5 table, its upkeep, and queries compiled to SQL.

The table ``search`` (SQLite FTS5) holds one row per message, ``rowid`` = ``messages.id``:
subject, sender, recipient (To), cc, body (the text parts, :mod:`.fulltext`) and filename
(attachment names). It is written by :func:`catch_up`, after the message rows are committed
(during a sync by a second process, :mod:`.indexer`, so that indexing is off the download's
path), and emptied by the trigger ``messages_unindex`` when a row goes
(expunge, delete, move, a folder forgotten): flag changes only UPDATE ``messages`` and never
touch it. The tokenizer ``unicode61 remove_diacritics 2`` folds case and accents
(docs/search.md says why).

A query arrives as a tree of the values below (built by ``deskmail.search.query``, which
knows the syntax); :func:`search` compiles it into one statement. Every value given by a
person is a bound parameter; the FTS5 text is built only from quoted strings (``"`` doubled),
so no input can change the statement or the FTS5 expression's structure.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deskmail.errors import QueryError
from deskmail.model import MessageSummary, SearchHit
from deskmail.store import threads
from deskmail.store.fulltext import MARK_END, MARK_START, extract

if TYPE_CHECKING:
    from deskmail.store import Store

READ_CAP = 4 * 1024 * 1024  # bytes of a message file read for indexing (attachment names past it are missed)
SNIPPET_TOKENS = 16

SCHEMA = (  # statements apart: the trigger's body has a ";" of its own
    """CREATE VIRTUAL TABLE IF NOT EXISTS search USING fts5(
        subject, sender, recipient, cc, body, filename,
        tokenize = 'unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER IF NOT EXISTS messages_unindex AFTER DELETE ON messages BEGIN
        DELETE FROM search WHERE rowid = old.id;
    END""",
)

# query field -> FTS5 columns it searches (to: as in Gmail and notmuch: To and Cc)
COLUMNS: dict[str, str] = {
    "subject": "{subject}", "from": "{sender}", "to": "{recipient cc}", "cc": "{cc}", "filename": "{filename}",
}


# --- the query tree -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Term:
    """Words (a phrase when several) in every text column, or in ``field``'s (:data:`COLUMNS`)."""

    text: str
    field: str = ""
    prefix: bool = False  # the last word may go on (word*)


@dataclass(frozen=True, slots=True)
class Flag:
    """A flag condition."""

    name: str  # "unread" | "read" | "flagged" | "unflagged"


@dataclass(frozen=True, slots=True)
class HasAttachment:
    """Messages with at least one attachment."""


@dataclass(frozen=True, slots=True)
class DateRange:
    """``start`` <= date < ``end``, ISO prefixes ("" = open); compared as the index stores dates."""

    start: str = ""
    end: str = ""


@dataclass(frozen=True, slots=True)
class Place:
    """Messages in one folder or account."""

    kind: str  # "folder" | "account"
    name: str


@dataclass(frozen=True, slots=True)
class And:
    """Every item holds."""

    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """At least one item holds."""

    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """The item does not hold."""

    item: Node


Node = Term | Flag | HasAttachment | DateRange | Place | And | Or | Not


# --- upkeep ------------------------------------------------------------------------------

CHUNK = 100  # messages per indexing transaction: the write lock is held ~30 ms, so a sync's commit
# (another connection, maybe another process) never waits long for it.
# meta key (Store.unindexed reads it too): every message row with an id up to this one is indexed (or gone)
UPTO = "indexed_upto"


def indexed_upto(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (UPTO,)).fetchone()
    return int(row[0]) if row else 0


def read_for_index(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(READ_CAP)
    except OSError:
        return b""  # gone or unreadable: the headers in the row are still indexed


def catch_up(store: Store, stop: Callable[[], bool] | None = None) -> int:
    """Index every message row added since the last call (search entry, attachment count, thread);
    the number indexed. ``stop`` is asked between transactions.

    Row ids only grow (AUTOINCREMENT) and commit in order, so "indexed" is one high-water mark
    (meta ``indexed_upto``), advanced in the transaction that writes the entries: a crash loses
    nothing and indexes nothing twice, and two catch-ups at once (a sync's indexer process and a
    search in the application) each index only what the other has not. The files are read and
    their text extracted before the write lock is taken; the lock covers the inserts only.
    """
    db = store.db
    done = 0
    while stop is None or not stop():
        upto = indexed_upto(db)
        rows = db.execute(
            "SELECT m.id, f.account, f.path, m.filename, m.subject, m.sender, m.message_id FROM messages m"
            " JOIN folders f ON f.id = m.folder_id WHERE m.id > ? ORDER BY m.id LIMIT ?", (upto, CHUNK)).fetchall()
        if not rows:
            return done
        found = [(int(row_id), extract(read_for_index(os.path.join(store.maildir(account, path).root, "cur",
                                                                     filename))), subject, sender, message_id)
                 for row_id, account, path, filename, subject, sender, message_id in rows]
        last = found[-1][0]
        with store.transaction():
            now = indexed_upto(db)
            ids = [f[0] for f in found if f[0] > now]
            alive = {int(r[0]) for r in db.execute(
                f"SELECT id FROM messages WHERE id IN ({','.join('?' * len(ids))})", ids)} if ids else set()
            for row_id, text, subject, sender, message_id in found:
                if row_id not in alive:
                    continue  # indexed meanwhile by another catch-up, or deleted since it was read
                db.execute("INSERT OR REPLACE INTO search (rowid, subject, sender, recipient, cc, body, filename)"
                           " VALUES (?,?,?,?,?,?,?)", (row_id, subject, sender, text.to, text.cc, text.body,
                                                       text.filenames))
                attachments = text.filenames.count("\n") + 1 if text.filenames else 0
                if attachments:
                    db.execute("UPDATE messages SET attachments=? WHERE id=?", (attachments, row_id))
                threads.assign(db, row_id, message_id, text.in_reply_to, text.references, subject)
                done += 1
            if last > now:
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (UPTO, str(last)))
    return done


# --- queries -----------------------------------------------------------------------------

def _quote(text: str) -> str:
    # FTS5 ends a string at a NUL ("unterminated string"); the index holds none (fulltext strips them).
    return '"' + text.replace('"', '""').replace("\x00", " ") + '"'


def _pure_text(node: Node) -> bool:
    if isinstance(node, Term):
        return True
    if isinstance(node, And | Or):
        return all(_pure_text(item) for item in node.items)
    return False


def fts_expression(node: Node) -> str:
    """The FTS5 expression of a pure-text tree (Terms under And/Or)."""
    if isinstance(node, Term):
        text = _quote(node.text) + (" *" if node.prefix else "")
        return f"{COLUMNS[node.field]} : {text}" if node.field else text
    if isinstance(node, And | Or):
        joiner = " AND " if isinstance(node, And) else " OR "
        return joiner.join(f"({fts_expression(item)})" for item in node.items)
    raise ValueError(f"not a text query: {node!r}")


def _sql(node: Node, args: list[Any]) -> str:
    """A WHERE term on ``messages m JOIN folders f`` for any tree; its values appended to ``args``."""
    if _pure_text(node):
        args.append(fts_expression(node))
        return "m.id IN (SELECT rowid FROM search WHERE search MATCH ?)"
    if isinstance(node, Flag):
        return {
            "unread": "instr(m.flags, '\\Seen') = 0", "read": "instr(m.flags, '\\Seen') > 0",
            "flagged": "instr(m.flags, '\\Flagged') > 0", "unflagged": "instr(m.flags, '\\Flagged') = 0",
        }[node.name]
    if isinstance(node, HasAttachment):
        return "m.attachments > 0"
    if isinstance(node, DateRange):
        terms = ["m.date != ''"]
        if node.start:
            terms.append("m.date >= ?")
            args.append(node.start)
        if node.end:
            terms.append("m.date < ?")
            args.append(node.end)
        return " AND ".join(terms)
    if isinstance(node, Place):
        args.append(node.name)
        return "f.name = ? COLLATE NOCASE" if node.kind == "folder" else "f.account = ? COLLATE NOCASE"
    if isinstance(node, Not):
        return f"NOT ({_sql(node.item, args)})"
    if isinstance(node, And | Or):
        joiner = " AND " if isinstance(node, And) else " OR "
        return joiner.join(f"({_sql(item, args)})" for item in node.items)
    raise ValueError(f"unknown query node {node!r}")


@dataclass(frozen=True, slots=True)
class Compiled:
    """A query tree as SQL: the FTS5 MATCH and the other conditions."""

    match: str  # the FTS5 expression that drives the query ("" = none: a filter-only query)
    where: str
    args: tuple[Any, ...]


def compile_query(node: Node) -> Compiled:
    """The top level's positive text conjuncts become one MATCH (ranked by FTS5, with snippets);
    negated text conjuncts join it as FTS5 ``NOT``; everything else is an SQL condition."""
    items = node.items if isinstance(node, And) else (node,)
    positive = [i for i in items if _pure_text(i)]
    negative = [i.item for i in items if isinstance(i, Not) and _pure_text(i.item)] if positive else []
    rest = [i for i in items if not _pure_text(i) and not (isinstance(i, Not) and i.item in negative)]
    match = ""
    if positive:
        match = " AND ".join(f"({fts_expression(i)})" for i in positive)
        match += "".join(f" NOT ({fts_expression(i)})" for i in negative)
    args: list[Any] = []
    where = " AND ".join(f"({_sql(i, args)})" for i in rest)
    return Compiled(match, where, tuple(args))


_COLS = ("m.id, f.account, f.name, m.uid, m.date, m.sender, m.recipients, m.subject, m.message_id,"
         " m.size, m.flags, m.filename, f.path, m.partial")


def search(store: Store, node: Node, limit: int, offset: int) -> list[SearchHit]:
    """Messages matching ``node``, newest first, each with a snippet of where it matched."""
    q = compile_query(node)
    order = " ORDER BY m.date DESC, m.id DESC"
    if q.match:
        # The page first, then snippets for its rows only: snippet() in the sorted query would be
        # computed for every match before the sort (~0.1 ms each: 0.6 s for a word in 8,000 messages).
        page = ("SELECT m.id FROM search JOIN messages m ON m.id = search.rowid JOIN folders f ON f.id = m.folder_id"
                " WHERE search MATCH ?" + (f" AND {q.where}" if q.where else "") + order + " LIMIT ? OFFSET ?")
        sql = (f"SELECT {_COLS}, snippet(search, -1, ?, ?, '…', {SNIPPET_TOKENS}) FROM search"
               " JOIN messages m ON m.id = search.rowid JOIN folders f ON f.id = m.folder_id"
               f" WHERE search MATCH ? AND search.rowid IN ({page})" + order)
        args: tuple[Any, ...] = (MARK_START, MARK_END, q.match, q.match, *q.args, limit, offset)
    else:
        sql = (f"SELECT {_COLS}, '' FROM messages m JOIN folders f ON f.id = m.folder_id"
               + (f" WHERE {q.where}" if q.where else "") + order + " LIMIT ? OFFSET ?")
        args = (*q.args, limit, offset)
    try:
        rows = store.db.execute(sql, args).fetchall()
    except sqlite3.OperationalError as exc:
        if "fts5" in str(exc) or "unterminated" in str(exc):  # a hole in the quoting: still the query's fault
            raise QueryError(f"The search query cannot be run ({exc})", "FTS5 refused the expression",
                             "simplify the query, or put its words in double quotes") from exc
        from deskmail.store import INDEX_FILE, store_error

        raise store_error(exc, store.data_dir / INDEX_FILE, "read") from exc
    return [_hit(store._summary(r[:14]), str(r[14] or "")) for r in rows]


def _hit(message: MessageSummary, marked: str) -> SearchHit:
    """The snippet as plain text and the (start, end) character ranges of the matched words in it."""
    text: list[str] = []
    spans: list[tuple[int, int]] = []
    pos = 0
    start = -1
    for ch in " ".join(marked.split()):  # line breaks and runs of spaces: one space
        if ch == MARK_START:
            start = pos
        elif ch == MARK_END:
            if start >= 0:
                spans.append((start, pos))
            start = -1
        else:
            text.append(ch)
            pos += 1
    return SearchHit(message=message, snippet="".join(text), highlights=tuple(spans))

"""The search query language: Gmail- and notmuch-like text to a tree of ``deskmail.store.search`` values.

Pure: no I/O, no SQL. Grammar (operators in capitals; adjacent terms are ANDed)::

    query   := or
    or      := and ("OR" and)*
    and     := unary (["AND"] unary)*
    unary   := ("NOT" | "-") unary | "(" or ")" | term
    term    := word | "phrase" | field ":" (word | "phrase")

Fields: ``from: to: cc: subject: filename:`` (words in those headers; ``to:`` also searches Cc),
``date:A..B`` (either side may be left open), ``before:`` (earlier than), ``after:`` (on or after)
with dates ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``, ``has:attachment``, ``is:unread|read|flagged|
unflagged`` (``starred`` = flagged), ``folder:`` (also ``in:``), ``account:``. A trailing ``*``
makes a word a prefix. Anything else is a :class:`QueryError` naming the 0-based position.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

from deskmail.errors import QueryError
from deskmail.store.search import And, DateRange, Flag, HasAttachment, Node, Not, Or, Place, Term

MAX_DEPTH = 64  # nested parentheses and NOTs: deeper is refused, never a RecursionError
TEXT_FIELDS = ("from", "to", "cc", "subject", "filename")
FLAGS = {"unread": "unread", "read": "read", "seen": "read", "flagged": "flagged", "starred": "flagged",
         "unflagged": "unflagged"}
FIELDS = (*TEXT_FIELDS, "date", "before", "after", "has", "is", "folder", "in", "account")
_DATE = re.compile(r"(\d{4})(?:[-/](\d{1,2})(?:[-/](\d{1,2}))?)?\Z")
_FIELD = re.compile(r"([A-Za-z]+):")


@dataclass(frozen=True, slots=True)
class _Token:
    """One lexical unit of a search query."""

    kind: str  # "word" | "phrase" | "field" | "(" | ")" | "AND" | "OR" | "NOT" | "-"
    pos: int
    text: str = ""
    field: str = ""
    quoted: bool = False


def _fail(query: str, pos: int, problem: str) -> QueryError:
    pos = max(0, min(pos, len(query)))
    return QueryError(
        f"The search query cannot be read at position {pos + 1}: {problem}",
        f"the problem is at the arrow: {query[max(0, pos - 30):pos]}⟶{query[pos:pos + 30]}" if query.strip()
        else "the query is empty",
        'check the quotes and parentheses; put text that looks like syntax in "double quotes"',
        position=pos,
    )


def _tokens(query: str) -> list[_Token]:
    out: list[_Token] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            out.append(_Token(ch, i))
            i += 1
        elif ch == '"':
            text, i = _phrase(query, i)
            out.append(_Token("phrase", i - len(text) - 2, text=text))
        elif ch == "-" and i + 1 < n and not query[i + 1].isspace() and query[i + 1] not in ")-":
            out.append(_Token("-", i))
            i += 1
        else:
            start = i
            while i < n and not query[i].isspace() and query[i] not in '()"':
                i += 1
            word = query[start:i]
            m = _FIELD.match(word)
            if m and len(m.group(0)) == len(word) and i < n and query[i] == '"':
                text, i = _phrase(query, i)  # field:"a phrase"
                out.append(_Token("field", start, text=text, field=m.group(1).lower(), quoted=True))
            elif m and len(word) > len(m.group(0)):
                out.append(_Token("field", start, text=word[len(m.group(0)):], field=m.group(1).lower()))
            elif m:
                raise _fail(query, i, f"{word!r} needs a value right after the colon")
            elif word in ("AND", "OR", "NOT"):
                out.append(_Token(word, start))
            else:
                out.append(_Token("word", start, text=word))
    return out


def _phrase(query: str, start: int) -> tuple[str, int]:
    """The text between the quote at ``start`` and its closing quote, and the index after that."""
    end = query.find('"', start + 1)
    if end < 0:
        raise _fail(query, start, "this quote is never closed")
    return query[start + 1:end], end + 1


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = _tokens(query)
        self.i = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def parse(self) -> Node:
        if not self.tokens:
            raise _fail(self.query, 0, "there is nothing to search for")
        node = self.or_(0)
        tok = self.peek()
        if tok is not None:  # only a ")" can stop or_() early
            raise _fail(self.query, tok.pos, "this parenthesis closes nothing")
        return node

    def or_(self, depth: int) -> Node:
        items = [self.and_(depth)]
        while (tok := self.peek()) is not None and tok.kind == "OR":
            self.i += 1
            items.append(self.and_(depth))
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_(self, depth: int) -> Node:
        items = [self.unary(depth)]
        while (tok := self.peek()) is not None and tok.kind not in ("OR", ")"):
            if tok.kind == "AND":
                self.i += 1
            items.append(self.unary(depth))
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self, depth: int) -> Node:
        tok = self.peek()
        if tok is None:
            raise _fail(self.query, len(self.query), "a search term is missing at the end")
        if depth > MAX_DEPTH:
            raise _fail(self.query, tok.pos, f"more than {MAX_DEPTH} levels of parentheses or NOT")
        self.i += 1
        if tok.kind in ("NOT", "-"):
            return Not(self.unary(depth + 1))
        if tok.kind == "(":
            node = self.or_(depth + 1)
            close = self.peek()
            if close is None or close.kind != ")":
                raise _fail(self.query, tok.pos, "this parenthesis is never closed")
            self.i += 1
            return node
        if tok.kind in (")", "AND", "OR"):
            raise _fail(self.query, tok.pos, f"a search term is missing before {tok.kind!r}")
        if tok.kind == "phrase":
            return self.text(tok, tok.text, "", phrase=True)
        if tok.kind == "word":
            return self.text(tok, tok.text, "", phrase=False)
        return self.field(tok)

    def text(self, tok: _Token, text: str, field: str, *, phrase: bool) -> Term:
        prefix = not phrase and text.endswith("*")
        if prefix:
            text = text.rstrip("*")
        if not any(ch.isalnum() for ch in text):  # the index keeps only letters and digits: this finds nothing
            raise _fail(self.query, tok.pos, "there are no words here to search for")
        return Term(text, field, prefix)

    def field(self, tok: _Token) -> Node:
        name, value = tok.field, tok.text
        at = tok.pos + len(name) + 1
        if name in TEXT_FIELDS:
            return self.text(tok, value, name, phrase=tok.quoted)
        if name in ("folder", "in", "account"):
            return Place("account" if name == "account" else "folder", value)
        if name == "has":
            if value.lower() in ("attachment", "attachments"):
                return HasAttachment()
            raise _fail(self.query, at, f"has: knows only 'attachment', not {value!r}")
        if name == "is":
            flag = FLAGS.get(value.lower())
            if flag is None:
                raise _fail(self.query, at, f"is: takes {', '.join(FLAGS)}, not {value!r}")
            return Flag(flag)
        if name == "date":
            first, dots, last = value.partition("..")
            if not dots:
                return DateRange(*self.period(value, at))
            if not first and not last:
                raise _fail(self.query, at, "a date range needs at least one end")
            start = self.period(first, at)[0] if first else ""
            end = self.period(last, at + len(first) + 2)[1] if last else ""
            if start and end and start >= end:
                raise _fail(self.query, at, "this date range ends before it starts")
            return DateRange(start, end)
        if name == "before":
            return DateRange("", self.period(value, at)[0])
        if name == "after":
            return DateRange(self.period(value, at)[0], "")
        raise _fail(self.query, tok.pos, f"there is no field {name + ':'!r} (known: {', '.join(FIELDS)});"
                                         " quote text that contains a colon")

    def period(self, value: str, at: int) -> tuple[str, str]:
        """The ISO prefix where a date (a year, month or day) starts and the one where it has ended."""
        m = _DATE.match(value)
        try:
            if m is None:
                raise ValueError
            year = int(m.group(1))
            if m.group(3):
                day = datetime.date(year, int(m.group(2)), int(m.group(3)))
                return day.isoformat(), (day + datetime.timedelta(days=1)).isoformat()
            if m.group(2):
                month = datetime.date(year, int(m.group(2)), 1)
                following = datetime.date(year + month.month // 12, month.month % 12 + 1, 1)
                return month.isoformat()[:7], following.isoformat()[:7]
            return f"{year:04d}", f"{year + 1:04d}"
        except (ValueError, OverflowError):
            raise _fail(self.query, at, f"{value!r} is not a date (YYYY, YYYY-MM or YYYY-MM-DD)") from None


def parse(query: str) -> Node:
    """The tree of ``query``; a :class:`QueryError` (code ``bad_query``, with ``position``) if it cannot be read."""
    return _Parser(query).parse()

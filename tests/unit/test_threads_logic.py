"""The threading logic (deskmail.store.threads): keys, subjects, and the incremental union against
connected components, in any arrival order (hypothesis)."""

from __future__ import annotations

import sqlite3

from hypothesis import given, settings
from hypothesis import strategies as st

from deskmail.store import threads


def _db() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, thread INTEGER)")
    for statement in threads.SCHEMA:
        db.execute(statement)
    return db


def test_keys_and_subjects() -> None:
    assert threads.ids(" <a@x>\r\n\t<b@y> junk <c@z") == ["a@x", "b@y"]
    assert threads.own_key("<a@x>", 7) == "a@x" and threads.own_key("", 7) == "#7"
    assert threads.own_key("a@x", 7) == "a@x" and threads.own_key("not an id", 7) == "#7"
    assert threads.parent_keys("<p@x> (comment) <q@x>", "<r@x> <p@x>") == ["r@x", "p@x"]
    assert threads.base_subject("Re: RE: Fwd:  The   Plan") == ("the plan", True)
    assert threads.base_subject("AW: Sv[2]: Wg: plan") == ("plan", True)
    assert threads.base_subject("Reply needed") == ("reply needed", False)
    assert threads.base_subject("") == ("", False)


def test_subject_fallback_only_for_replies_without_references() -> None:
    db = _db()

    def add(row: int, mid: str, subject: str, irt: str = "", refs: str = "") -> int:
        db.execute("INSERT INTO messages (id) VALUES (?)", (row,))
        return threads.assign(db, row, mid, irt, refs, subject)

    first = add(1, "<a@x>", "Hello")
    assert add(2, "<b@x>", "Hello") != first  # not a reply: stays apart
    assert add(3, "<c@x>", "Re: hello") == first  # a reply without references: by subject
    assert add(4, "<d@x>", "Re: Hello", irt="<zzz@x>") != first  # has In-Reply-To: never by subject
    assert add(5, "", "") == 5  # no Message-ID, no subject: a thread of its own


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_threads_are_the_connected_components_in_any_order(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 12))
    refs = [data.draw(st.lists(st.integers(0, n + 3), max_size=4)) for _ in range(n)]  # ids > n: never arrive
    order = data.draw(st.permutations(range(n)))
    db = _db()
    for row, i in enumerate(order, start=1):
        db.execute("INSERT INTO messages (id) VALUES (?)", (row,))
        threads.assign(db, row, f"<m{i}@x>", f"<m{refs[i][0]}@x>" if refs[i] else "",
                       " ".join(f"<m{r}@x>" for r in refs[i][1:]), "")
    got = {order[row - 1]: t for row, t in db.execute("SELECT id, thread FROM messages")}
    # Expected: union-find over the message ids and every id they refer to.
    parent = list(range(n + 4))

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for i in range(n):
        for r in refs[i]:
            parent[find(r)] = find(i)
    for a in range(n):
        for b in range(n):
            assert (got[a] == got[b]) == (find(a) == find(b)), (refs, order)

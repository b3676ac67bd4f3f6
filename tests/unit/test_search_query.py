"""The search query language (deskmail.search.query) and its compilation (deskmail.store.search), offline.

Property: any string either parses or raises QueryError, and whatever parses runs as one SQL statement on
a real index without an SQLite error (every value a bound parameter, FTS5 text only quoted strings).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deskmail.cli.fastpath import search_args as lean_args
from deskmail.errors import QueryError
from deskmail.search.query import parse
from deskmail.store import INDEX_FILE, Store
from deskmail.store.fulltext import extract
from deskmail.store.search import And, DateRange, Flag, HasAttachment, Not, Or, Place, Term, compile_query

MESSAGE = (b"From: =?utf-8?q?Zo=C3=AB?= <zoe@example.test>\nTo: me@example.test\nCc: dave@example.test\n"
           b"Subject: Caf\xc3\xa9 plans\nDate: Thu, 15 Jan 2026 10:00:00 +0000\nMessage-ID: <z@x>\n\n"
           b"The flamingo budget.\n")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    data = tmp_path_factory.mktemp("search")
    with Store.open_writer(data) as writer, writer.transaction():
        folder = writer.ensure_folder("a", "INBOX")
        md = writer.folder_maildir(folder)
        md.ensure()
        (md.root / "cur" / "1.x:2,").write_bytes(MESSAGE)
        writer.insert_message(md, folder.id, 1, "1", "1.x:2,", ())
    with Store.open_writer(data) as writer:
        writer.catch_up()
    reader = Store.open_reader(data)
    yield reader
    reader.close()


@pytest.mark.parametrize(("query", "tree"), [
    ("word", Term("word")),
    ('"two words"', Term("two words")),
    ("a b", And((Term("a"), Term("b")))),
    ("a AND b OR c", Or((And((Term("a"), Term("b"))), Term("c")))),
    ("a (b OR c)", And((Term("a"), Or((Term("b"), Term("c")))))),
    ("-a NOT b", And((Not(Term("a")), Not(Term("b"))))),
    ("a or b", And((Term("a"), Term("or"), Term("b")))),  # operators in capitals only
    ('from:alice subject:"big plan"', And((Term("alice", "from"), Term("big plan", "subject")))),
    ("filename:rep*", Term("rep", "filename", prefix=True)),
    ("date:2026-01..2026-03", DateRange("2026-01", "2026-04")),
    ("date:2026-12", DateRange("2026-12", "2027-01")),
    ("date:2026..", DateRange("2026", "")),
    ("date:..2026-02-28", DateRange("", "2026-03-01")),
    ("before:2026-03 after:2026", And((DateRange("", "2026-03"), DateRange("2026", "")))),
    ("has:attachment is:unread is:starred", And((HasAttachment(), Flag("unread"), Flag("flagged")))),
    ("folder:Sent account:work in:Archive", And((Place("folder", "Sent"), Place("account", "work"),
                                                  Place("folder", "Archive")))),
    ("10:30", Term("10:30")),  # not a field: the part before the colon is no name
])
def test_parses(query: str, tree: object) -> None:
    assert parse(query) == tree


@pytest.mark.parametrize(("query", "position"), [
    ("", 0), ("   ", 0), ("(a", 0), ("a)", 1), ('say "hi', 4), ("a AND", 5), ("OR a", 0), ("a OR OR b", 5),
    ("foo:bar", 0), ("from:", 5), ("is:weird", 3), ("has:cats", 4), ("date:2026-13", 5),
    ("date:2026-02..2026-01", 5), ("date:..", 5), ("x date:2026..2026-02-30", 13), ('"!"', 0), ("*", 0),
    ("(" * 100 + "a" + ")" * 100, 65),
])
def test_a_bad_query_names_its_position(query: str, position: int) -> None:
    with pytest.raises(QueryError) as caught:
        parse(query)
    assert caught.value.code == "bad_query" and caught.value.position == position
    assert f"position {position + 1}" in caught.value.what


def test_text_is_quoted_for_fts5_and_values_are_parameters() -> None:
    q = compile_query(parse('from:x*y^z:{a}-NEAR folder:"\'; DROP TABLE messages; --"'))
    assert q.match == '({sender} : "x*y^z:{a}-NEAR")'
    assert "DROP" not in q.where and q.args == ("'; DROP TABLE messages; --",)


def test_extract_reads_text_parts_and_attachment_names() -> None:
    found = extract(MESSAGE)
    assert found.body == "The flamingo budget.\n" and found.cc == "dave@example.test" and found.filenames == ""
    html = extract(b"Content-Type: text/html\n\n<p>a <b>b</b> &amp; c</p><script>evil()</script>")
    assert html.body.split() == ["a", "b", "&", "c"]
    multi = extract(b'Content-Type: multipart/mixed; boundary="b"\n\n--b\n\nhi\n--b\n'
                    b'Content-Type: image/png; name="=?utf-8?q?Gr=C3=BC=C3=9Fe.png?="\n'
                    b"Content-Transfer-Encoding: base64\n\nAAAA\n--b--\n")
    assert multi.body.strip() == "hi" and multi.filenames == "Grüße.png"


def test_an_index_made_before_search_gets_it_on_migration(tmp_path: Path) -> None:
    with Store.open_writer(tmp_path) as writer, writer.transaction():
        folder = writer.ensure_folder("a", "INBOX")
        md = writer.folder_maildir(folder)
        md.ensure()
        (md.root / "cur" / "1.x:2,").write_bytes(MESSAGE)
        writer.insert_message(md, folder.id, 1, "1", "1.x:2,", ())
    db = sqlite3.connect(tmp_path / INDEX_FILE, isolation_level=None)
    db.execute("DROP TRIGGER messages_unindex")
    db.execute("DROP TABLE search")
    db.execute("DROP TABLE thread_keys")
    db.execute("DROP INDEX messages_thread")
    db.execute("ALTER TABLE messages DROP COLUMN thread")
    db.execute("ALTER TABLE messages DROP COLUMN attachments")
    db.execute("PRAGMA user_version=3")
    db.close()
    with Store.open_writer(tmp_path) as writer:  # migrates; the rows wait for the catch-up
        assert writer.unindexed() == 1
        assert writer.catch_up() == 1
        assert writer.unindexed() == 0
    with Store.open_reader(tmp_path) as reader:
        hits = reader.search(parse("flamingo cafe"))
        assert [h.message.message_id for h in hits] == ["<z@x>"]
    with Store.open_writer(tmp_path) as writer, writer.transaction():
        writer.delete_row(hits[0].message.id)
    with Store.open_reader(tmp_path) as reader:
        assert reader.search(parse("flamingo")) == []


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(['"', "(", ")", "-", " ", "AND", "OR", "NOT", "from:", "date:", "..", "is:unread",
                              "2026-01", "*", "x", "é", "'", ";", "{", "}", ":", "^", "NEAR", "\x00"]),
             max_size=20).map("".join),
))
def test_any_input_parses_or_is_a_query_error_and_runs(store: Store, query: str) -> None:
    try:
        tree = parse(query)
    except QueryError as exc:
        assert 0 <= exc.position <= len(query)
        return
    store.search(tree, limit=5)  # an sqlite3 error here would be a hole in the quoting


@pytest.mark.parametrize(("args", "lean"), [
    (["a b", "--json"], ("a b", 50)),
    (["--json", "-n", "5", "x"], ("x", 5)),
    (["x", "--json", "--limit=7"], ("x", 7)),
    (["x"], None),  # a table for people: the ordinary way
    (["x", "--json", "--help"], None),
    (["x", "y", "--json"], None),
    (["--json"], None),
    (["x", "--json", "--limit", "0"], None),
])
def test_the_lean_cli_path_takes_only_its_own_form(args: list[str], lean: tuple[str, int] | None) -> None:
    assert lean_args(args) == lean


def test_every_hostile_message_is_indexed_and_found(tmp_path: Path) -> None:
    import time

    from hostile_mail import CORPUS

    with Store.open_writer(tmp_path) as writer, writer.transaction():
        folder = writer.ensure_folder("a", "INBOX")
        md = writer.folder_maildir(folder)
        md.ensure()
        for uid, (name, raw) in enumerate(CORPUS.items(), start=1):
            start = time.perf_counter()
            extract(raw)
            assert time.perf_counter() - start < 1.0, name
            (md.root / "cur" / f"{uid}.x:2,").write_bytes(raw)
            assert writer.insert_message(md, folder.id, 1, str(uid), f"{uid}.x:2,", ()), name
    with Store.open_writer(tmp_path) as writer:
        assert writer.catch_up() == len(CORPUS)
    db = sqlite3.connect(tmp_path / INDEX_FILE)
    assert db.execute("SELECT COUNT(*) FROM search").fetchone()[0] == len(CORPUS)  # every one has its entry
    db.close()
    with Store.open_reader(tmp_path) as reader:
        subjects = {h.message.message_id: h.message.subject for h in reader.search(parse("is:unread"), limit=10_000)}
        checked = 0
        for name in CORPUS:
            mid = f"<{name}@hostile.test>"
            if f"hostile {name}" in subjects.get(mid, ""):  # (some have no subject, or a broken one)
                found = reader.search(parse(f'subject:"hostile {name}"'), limit=10_000)
                assert mid in [h.message.message_id for h in found], name
                checked += 1
        assert checked >= len(CORPUS) * 2 // 3


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400) | st.lists(st.sampled_from(
    [b"Content-Type: multipart/mixed; boundary=b\n", b"\n", b"--b\n", b"--b--\n", b"Content-Type: text/html\n",
     b"Content-Transfer-Encoding: base64\n", b"Content-Disposition: attachment; filename*0*=utf-8''%C3\n",
     b"Content-Type: message/rfc822\n", b"<p>x</p>", b"=C3=A9", b"\x00", b"\r\n"]), max_size=30).map(b"".join))
def test_extract_never_raises(raw: bytes) -> None:
    found = extract(raw)
    assert "\x00" not in found.body + found.filenames + found.to + found.cc

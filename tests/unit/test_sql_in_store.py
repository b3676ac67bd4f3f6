"""No SQL outside deskmail.store: every statement the engine runs is a method of the store (issue 11)."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "deskmail"
SQL_CALL = re.compile(r"\.(?:execute|executemany|executescript)\(")

# Files still running SQL of their own, each to be emptied by work in flight. An entry whose file no
# longer has any fails the test, so the list only ever shrinks. (Empty: all SQL is in store/.)
PENDING: set[str] = set()


def offenders() -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("store/"):
            continue
        lines = [n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if SQL_CALL.search(line)]
        if lines:
            found[rel] = lines
    return found


def test_no_sql_outside_the_store() -> None:
    found = offenders()
    unexpected = {rel: lines for rel, lines in found.items() if rel not in PENDING}
    assert not unexpected, f"SQL outside src/deskmail/store/ (add a Store method instead): {unexpected}"
    stale = PENDING - set(found)
    assert not stale, f"no SQL left in {sorted(stale)}: remove them from PENDING"


def test_the_check_sees_sql() -> None:
    assert SQL_CALL.search('rows = store.db.execute("SELECT 1")')
    assert SQL_CALL.search("db.executemany(sql, rows)") and SQL_CALL.search("db.executescript(s)")
    assert not SQL_CALL.search("executor.submit(fn)")
    assert (SRC / "store" / "__init__.py").is_file()  # the path is right: a wrong one would find nothing
    assert SQL_CALL.search((SRC / "store" / "pop3.py").read_text(encoding="utf-8"))

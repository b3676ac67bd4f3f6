"""Store speed: opening the index, and paging list_messages() through 50,000 synthetic rows.

    .venv/bin/python bench/store_bench.py [--rows 50000] [--dir /tmp/store-bench]

Rows go straight into the index (no message files): only the SQL is measured. Prints the
median of several runs in ms for each query.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from deskmail.model import MessageSummary
from deskmail.store import Store

FOLDERS = [("a", "INBOX", 0.7), ("a", "Archive", 0.2), ("a", "Sent", 0.05), ("b", "INBOX", 0.05)]


def fill(store: Store, rows: int, seed: int = 1) -> None:
    rnd = random.Random(seed)
    with store.transaction():
        ids = [store.ensure_folder(acct, name).id for acct, name, _ in FOLDERS]
    weights = [w for *_, w in FOLDERS]
    senders = [f"Person {i} <p{i}@example.test>" for i in range(500)]
    batch = []
    for n in range(rows):
        fid = rnd.choices(ids, weights)[0]
        day = rnd.randrange(0, 3650)
        date = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(1_400_000_000 + day * 86400 + rnd.randrange(86400)))
        flags = " ".join(f for f, p in (("\\Flagged", 0.02), ("\\Seen", 0.9)) if rnd.random() < p)
        batch.append((fid, 1, str(n + 1), f"{n}.M1P1Q1.host,V=1,U={n + 1}:2,", flags, flags, 1000 + n % 5000, date,
                      rnd.choice(senders), "me@example.test", f"Subject {rnd.randrange(10**6):06d}", f"<{n}@x>"))
    with store.transaction() as db:  # (bench only: the store has no bulk-insert API)
        db.executemany("INSERT INTO messages (folder_id, uidvalidity, uid, filename, flags, synced_flags, size,"
                       " date, sender, recipients, subject, message_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", batch)


def ms(fn: Callable[[], object], runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def measure(r: Store, label: str, sort: str = "date", *, account: str | None = None, folder: str | None = None,
            unread_only: bool = False, flagged_only: bool = False) -> None:
    def page(after: MessageSummary | None = None, offset: int = 0, limit: int = 50) -> list[MessageSummary]:
        return r.list_messages(account, folder, limit, sort=sort, unread_only=unread_only,
                               flagged_only=flagged_only, after=after, offset=offset)

    def count() -> int:
        return r.count_messages(account, folder, unread_only=unread_only, flagged_only=flagged_only)

    total = count()
    # The last message before the page at 80 % of the list: what a GUI's keyset paging passes.
    deep = max(0, int(total * 0.8) - 1)
    anchor = page(offset=deep, limit=1)[0]
    print(f"{label:28} {total:7} {ms(count):9.2f} {ms(page):10.2f} {ms(lambda: page(after=anchor)):13.2f}"
          f" {ms(lambda: page(offset=deep), 3):15.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--dir", type=Path)
    args = ap.parse_args()
    data = args.dir or Path(tempfile.mkdtemp(prefix="store-bench-"))
    try:
        if not (data / "index.sqlite3").exists():
            with Store.open_writer(data) as w:
                fill(w, args.rows)
        print(f"open_writer: {ms(lambda: Store.open_writer(data).close(), 21):.2f} ms")
        print(f"open_reader: {ms(lambda: Store.open_reader(data).close(), 21):.2f} ms")
        r = Store.open_reader(data)
        print(f"change_token: {ms(r.change_token, 101) * 1000:.1f} µs")
        print(f"{'query':28} {'total':>7} {'count ms':>9} {'page 1 ms':>10} {'deep page ms':>13}"
              f" {'deep offset ms':>15}")
        measure(r, "all, date")
        measure(r, "account a, date", account="a")
        for sort in ("date", "date_asc", "sender", "subject"):
            measure(r, f"INBOX of a, {sort}", sort, account="a", folder="INBOX")
        measure(r, "INBOX of a, unread", account="a", folder="INBOX", unread_only=True)
        measure(r, "INBOX of a, flagged", account="a", folder="INBOX", flagged_only=True)
        measure(r, "all, subject", "subject")
        r.close()
    finally:
        if args.dir is None:
            shutil.rmtree(data)


if __name__ == "__main__":
    main()

"""Search speed: indexing and query latency, deskmail beside notmuch on the same generated Maildir.

    .venv/bin/python bench/search_bench.py [--messages 10000] [--dir /tmp/search-bench] [--runs 5] [--no-notmuch]

1. N messages from :mod:`mailbox_gen` are written once into ``DIR/data/mail/bench/cur`` (deskmail's
   layout: one account "bench", its INBOX), which is also notmuch's database root.
2. **Index**: deskmail stores every file through ``Store.insert_message`` in batches of 500 (what a
   sync does after the download: header parse, row), then indexes them with ``Store.catch_up`` (what
   the sync's indexer process does meanwhile: full-text entry, attachments, thread), each timed.
   ``notmuch new`` indexes the same files (if notmuch is installed).
3. **Queries** (a rare word, a common word, ``from:``, ``subject:``, a date range, a combination): the
   median of ``--runs`` runs in process (``Store.search``, a reader open already: the GUI's case) and as a
   whole process (``deskmail search --json --limit 50``; ``notmuch search --limit=50``), start-up included.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mailbox_gen  # sibling module; bench/ is not a package

from deskmail.search.query import parse
from deskmail.store import Store

QUERIES = [  # (label, deskmail query, notmuch query)
    ("rare word", "smörgåsbord", "smörgåsbord"),
    ("common word", "deadline", "deadline"),
    ("from:", "from:kwame", "from:kwame"),
    ("subject:", "subject:invoice", "subject:invoice"),
    ("date range", "date:2019-03..2019-04", "date:2019-03-01..2019-04-30"),
    ("combination", "budget from:ada -review", "budget and from:ada and not review"),
]


def write_maildir(cur: Path, count: int) -> list[str]:
    cur.mkdir(parents=True, exist_ok=True)
    for sub in ("new", "tmp"):
        (cur.parent / sub).mkdir(exist_ok=True)
    names = []
    for i, raw in enumerate(mailbox_gen.messages(count)):
        name = f"{1_700_000_000 + i}.bench{i}.host:2,S"
        (cur / name).write_bytes(raw)
        names.append(name)
    return names


def index(data: Path, names: list[str]) -> tuple[float, float]:
    """(seconds to store the rows, as a sync does; seconds to index them: Store.catch_up)."""
    if (data / "index.sqlite3").exists():
        for suffix in ("", "-wal", "-shm"):
            Path(str(data / "index.sqlite3") + suffix).unlink(missing_ok=True)
    with Store.open_writer(data) as store:
        with store.transaction():
            folder = store.ensure_folder("bench", "INBOX")
        md = store.folder_maildir(folder)
        start = time.perf_counter()
        for b in range(0, len(names), 500):
            with store.transaction():
                for i, name in enumerate(names[b:b + 500], start=b + 1):
                    store.insert_message(md, folder.id, 1, str(i), name, ("\\Seen",))
        stored = time.perf_counter()
        store.catch_up()
        return stored - start, time.perf_counter() - stored


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return time.perf_counter() - start, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--dir", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-notmuch", action="store_true", help="deskmail only (notmuch new takes minutes)")
    args = parser.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="search-bench-"))
    data = root / "data"
    cur = data / "mail" / "bench" / "cur"
    names = write_maildir(cur, args.messages)
    print(f"{args.messages:,} messages in {cur.parent}")

    base, full = index(data, names)
    print(f"deskmail: rows stored {base:.2f} s, then indexed (full text and threads) {full:.2f} s")

    env = {**os.environ, "DESKMAIL_HOME": str(root / "home")}
    # As an installed program has: byte-compiled modules (this machine sets PYTHONDONTWRITEBYTECODE, and
    # compiling deskmail's sources at every start cost ~25 ms of each whole-process search).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(__file__).resolve().parents[1] / "src")],
                   check=True, stdout=subprocess.DEVNULL)
    home = root / "home"
    (home / "data").mkdir(parents=True, exist_ok=True)
    for entry in ("index.sqlite3", "mail"):
        target = home / "data" / entry
        if not target.exists():
            target.symlink_to(data / entry)
    notmuch = None if args.no_notmuch else shutil.which("notmuch")
    nm_env = {**os.environ, "NOTMUCH_CONFIG": str(root / "notmuch-config")}
    if notmuch:
        (root / "notmuch-config").write_text(f"[database]\npath={cur.parent}\n[new]\ntags=\n[search]\n"
                                             "exclude_tags=\n[maildir]\nsynchronize_flags=false\n")
        shutil.rmtree(cur.parent / ".notmuch", ignore_errors=True)
        took, _ = timed([notmuch, "new", "--quiet"], nm_env)
        print(f"notmuch new: {took:.2f} s")

    print("\n| query | hits | deskmail in process ms | deskmail whole process ms | notmuch search ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    deskmail = str(Path(sys.executable).with_name("deskmail"))
    with Store.open_reader(data) as reader:
        for label, query, nm_query in QUERIES:
            tree = parse(query)
            inproc = []
            for _ in range(args.runs):
                start = time.perf_counter()
                hits = reader.search(tree, limit=50)
                inproc.append(time.perf_counter() - start)
            count = len(reader.search(tree, limit=1_000_000))
            whole = [timed([deskmail, "search", query, "--json", "--limit", "50"], env)[0] for _ in range(args.runs)]
            nm = "—"
            if notmuch:
                nm_runs = [timed([notmuch, "search", "--limit=50", nm_query], nm_env)[0] for _ in range(args.runs)]
                nm_count = timed([notmuch, "count", nm_query], nm_env)[1].strip()
                nm = f"{statistics.median(nm_runs) * 1000:.0f} ({nm_count} hits)"
            assert len(hits) == min(50, count)
            print(f"| {label} `{query}` | {count} | {statistics.median(inproc) * 1000:.1f} |"
                  f" {statistics.median(whole) * 1000:.0f} | {nm} |")
    if args.dir is None:
        shutil.rmtree(root)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

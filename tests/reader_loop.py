"""A GUI-like reader process for tests/test_store_readers.py: pages and reads messages until told to stop.

    python tests/reader_loop.py DATA_DIR STOP_FILE

Uses only the read-only store API. Prints one JSON line of statistics at the end, and exits 1
with the tracebacks of any error on stderr (an index that does not exist yet is waited for).
"""

from __future__ import annotations

import json
import random
import sys
import time
import traceback
from pathlib import Path

from deskmail.errors import StoreError
from deskmail.model import MessageSummary
from deskmail.store import SORTS, Store

REOPEN_EVERY = 20  # loop turns per reader: opening during the sync is exercised too
DEPTH = 6  # pages walked down (keyset) before starting at the top again


def main() -> int:
    data, stop = Path(sys.argv[1]), Path(sys.argv[2])
    rnd = random.Random(11)
    stats = {"opens": 0, "not_ready": 0, "turns": 0, "pages": 0, "listed": 0, "read": 0, "bytes": 0,
             "changes": 0, "max_total": 0}
    errors: list[str] = []
    reader: Store | None = None
    token: tuple[int, int] | None = None
    last: MessageSummary | None = None
    sort, depth = "date", 0
    while not stop.exists() and len(errors) < 5:
        try:
            if reader is None or stats["turns"] % REOPEN_EVERY == 0:
                if reader is not None:
                    reader.close()
                reader = None
                try:
                    reader = Store.open_reader(data)
                except StoreError as exc:
                    if exc.code != "store_not_ready":
                        raise
                    stats["not_ready"] += 1
                    time.sleep(0.02)
                    continue
                stats["opens"] += 1
                token, last = None, None
            stats["turns"] += 1
            if token is None or reader.changed_since(token) or depth >= DEPTH:
                if token is not None and reader.changed_since(token):
                    stats["changes"] += 1
                token, last, depth = reader.change_token(), None, 0
                sort = rnd.choice(sorted(SORTS))
            with reader.snapshot():  # a page and its count from one state
                total = reader.count_messages(unread_only=rnd.random() < 0.2)
                page = reader.list_messages(limit=50, sort=sort, after=last)
            stats["max_total"] = max(stats["max_total"], total)
            stats["pages"] += 1
            stats["listed"] += len(page)
            depth += 1
            last = page[-1] if page else None
            for summary in rnd.sample(page, min(3, len(page))):
                with reader.open_message(summary.id) as fh:
                    body = fh.read()
                if not body.startswith(b"From:"):
                    raise AssertionError(f"message {summary.id}: unexpected content {body[:40]!r}")
                stats["read"] += 1
                stats["bytes"] += len(body)
            if page:
                reader.message_path(page[0].id)
        except Exception:  # every error is a finding: reported, and the loop goes on to find more
            errors.append(traceback.format_exc())
            if reader is not None:
                reader.close()
            reader = None
    if reader is not None:
        reader.close()
    print(json.dumps(stats), flush=True)
    for e in errors:
        sys.stderr.write(e + "\n")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

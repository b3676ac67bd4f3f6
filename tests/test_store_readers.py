"""Issue 11: a reader process pages and reads the store while a real sync and a flag storm write it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from deskmail.store import Store
from helpers import Home, add_imaps_account

pytestmark = pytest.mark.servers

COUNT = 10_000
READER = Path(__file__).with_name("reader_loop.py")


def small(i: int, to: str) -> bytes:
    return (f"From: sender{i % 97}@example.test\r\nTo: {to}\r\nSubject: message {i:05d}\r\n"
            f"Message-ID: <r{i}@example.test>\r\nDate: Mon, 02 Jan 2023 {i // 3600 % 24:02d}:{i // 60 % 60:02d}:"
            f"{i % 60:02d} +0000\r\n\r\nbody {i}\r\n").encode()


def sync(home: Home) -> dict[str, Any]:
    proc = home.run("sync", "--json", timeout=300)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return dict(json.loads(proc.stdout))


def flag_storm(data: Path, rounds: int, size: int, offset: int) -> int:
    """Round 0 toggles \\Flagged, round 1 \\Seen, on ``size`` messages through the store API, as `flag` does."""
    changed = 0
    with Store.open_writer(data) as store:
        store.lock()
        ids = [m.id for m in store.list_messages(limit=size, offset=offset, sort="date_asc")]
        for r in range(rounds):
            for start in range(0, len(ids), 50):
                with store.transaction():
                    for mid in ids[start:start + 50]:
                        folder, row = store.row_by_id(mid)
                        flags = set(row.flags.split()) ^ ({"\\Flagged"} if r % 2 == 0 else {"\\Seen"})
                        name = store.folder_maildir(folder).set_flags(row.filename, flags)
                        store.set_flags(row.id, name, flags)
                        changed += 1
    return changed


def test_a_reader_process_never_fails_during_a_first_sync_and_a_flag_storm(
        sandbox: Any, mail_user: Any, tmp_path: Path) -> None:
    started = time.monotonic()
    home = Home(tmp_path / "home", env={"DM_PW": mail_user.password})
    add_imaps_account(home, sandbox, mail_user)
    sandbox.fill_maildir(mail_user.email, (small(i, mail_user.email) for i in range(COUNT)))
    data = home.root / "data"
    stop = tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, str(READER), str(data), str(stop)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        report = sync(home)  # (a) the first sync: 10,000 messages arrive while the reader reads
        assert sum(f["new"] for f in report["a"]["folders"]) == COUNT
        with Store.open_reader(data) as check:
            assert check.count_messages("a", "INBOX") == COUNT
        # (b) the flag storm: local flag changes (files renamed), synced up; server changes, synced down
        changed = flag_storm(data, rounds=2, size=1500, offset=0)
        sync(home)
        sandbox.doveadm("flags", "add", "-u", mail_user.email, "\\Answered", "mailbox", "INBOX", "uid", "1:2000")
        sync(home)  # renames 2,000 files here
        changed += flag_storm(data, rounds=2, size=1500, offset=3000)
        sync(home)
        time.sleep(0.5)  # a few more turns on the settled store
    finally:
        stop.touch()
        out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err[-4000:]
    stats = json.loads(out)
    assert stats["max_total"] == COUNT and changed == 6000
    assert stats["read"] > 100 and stats["changes"] >= 3, stats  # it did read, and saw the store change
    with Store.open_reader(data) as check:
        answered = check.list_messages("a", "INBOX", 1, sort="date_asc")[0]
        assert "\\Answered" in answered.flags.split()
        assert check.count_messages("a", "INBOX", flagged_only=True) == 3000  # round 0 of each storm
    assert not [p.name for p in data.iterdir() if ".damaged-" in p.name]
    print(f"\nreader: {stats}; {time.monotonic() - started:.1f} s in all")

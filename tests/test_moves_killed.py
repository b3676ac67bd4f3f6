"""F-10 under SIGKILL: a sync that takes messages another client moved from their local copy, killed at
every durable step it makes, deterministically (``strace -e inject=<call>:signal=KILL:when=K``, no test
hook in the program), then a normal sync: the same mailbox as a run never killed, each message once,
and still nothing downloaded again.

The scenario: INBOX holds 1-8 and Archive 20-25, synced; then ``doveadm move`` takes 1-4 from INBOX to
Archive (INBOX, synced first, sees them go: their copies are parked until Archive's sync takes them) and
20-21 from Archive to INBOX (INBOX's sync takes them from Archive's files, which Archive's sync then sees
go). The machinery (clones of the starting point, server and local state) is the F-02 sweep's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import Home, add_imaps_account, wait_for_indexer
from test_crash_sweep import PASSWORD, STRACE, Start, _clone, _deskmail, _local_state, _quiet, _server_state
from test_sync import msg

pytestmark = [pytest.mark.servers, pytest.mark.slow, pytest.mark.timeout(1200)]

CALLS = ("rename", "renameat", "renameat2", "link", "linkat", "fsync", "fdatasync", "unlink", "unlinkat")
INDEX_WRITES = 12  # kills at this many evenly spaced writes to the index (each commit is a few)


def _mid(i: int) -> str:
    return f"<m{i}-{1200 + 41 * i}@example.test>"


@pytest.fixture(scope="module")
def start(sandbox: Any) -> Iterator[Start]:
    root = Path(tempfile.mkdtemp(prefix="deskmail-moves-"))
    try:
        email = f"moves-start-{os.urandom(4).hex()}@example.test"
        sandbox.add_user(email, PASSWORD)
        sandbox.fill_maildir(email, [msg(i, email, size=1200 + 41 * i) for i in range(1, 9)])
        sandbox.fill_maildir(email, [msg(i, email, size=1200 + 41 * i) for i in range(20, 26)], folder="Archive")
        home = root / "home"
        user = type("U", (), {"email": email, "password": PASSWORD})()
        add_imaps_account(Home(home, env={"DM_PW": PASSWORD}), sandbox, user)
        first = _deskmail(home, "sync", "--json")
        assert first.returncode == 0, first.stdout + first.stderr
        wait_for_indexer(home / "data")  # every clone starts from the same files
        for i in (1, 2, 3, 4):
            sandbox.doveadm("move", "-u", email, "Archive", "mailbox", "INBOX", "header", "Message-ID", _mid(i),
                            check=True)
        for i in (20, 21):
            sandbox.doveadm("move", "-u", email, "INBOX", "mailbox", "Archive", "header", "Message-ID", _mid(i),
                            check=True)
        for folder in ("INBOX", "Archive"):
            sandbox.doveadm("mailbox", "status", "-u", email, "messages uidnext", folder, check=True)
        yield Start(root, home, sandbox.user(email).home / "Maildir", email)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _parked(home: Path) -> list[str]:
    park = home / "data" / "mail" / "a" / "deskmail-parked"
    return sorted(os.listdir(park)) if park.is_dir() else []


def _downloaded(report: dict[str, Any]) -> int:
    return sum(f["bytes"] for f in report["a"]["folders"])


def _count(sandbox: Any, start: Start, calls: tuple[str, ...], paths: tuple[Path, ...] = ()) -> dict[str, int]:
    home, _email = _clone(sandbox, start, "count")
    log = start.root / "strace.log"
    prefix = [STRACE or "strace", "-f", "-qq", "-o", str(log), "-e", "trace=" + ",".join(calls)]
    for p in paths:
        prefix += ["-P", str(home / "data" / p)]
    done = _deskmail(home, "sync", "--json", prefix=tuple(prefix))
    assert done.returncode == 0, done.stdout + done.stderr
    text = log.read_text()
    return {call: len(re.findall(rf"^\d+\s+{call}\(", text, re.MULTILINE)) for call in calls}


def test_a_sync_taking_moved_messages_killed_at_every_step_ends_as_if_never_killed(sandbox: Any,
                                                                                   start: Start) -> None:
    assert STRACE, "strace is missing (scripts/bootstrap test installs it)"
    home, email = _clone(sandbox, start, "golden")
    done = _deskmail(home, "sync", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = {f["folder"]: f for f in json.loads(done.stdout)["a"]["folders"]}
    # Never killed: the six moved messages are taken from here, none downloaded.
    assert (report["INBOX"]["reused"], report["Archive"]["reused"]) == (2, 4), report
    assert (report["INBOX"]["removed"], report["Archive"]["removed"]) == (4, 2), report
    assert _downloaded(json.loads(done.stdout)) == 0 and _parked(home) == []
    golden_server, golden_local = _server_state(sandbox, email), _local_state(home)
    where = {mid: folder for folder, rows in golden_server.items() for _u, _f, mid, _s in rows}
    assert {where[_mid(i)] for i in (1, 2, 3, 4, 22, 23, 24, 25)} == {"Archive"}
    assert {where[_mid(i)] for i in (5, 6, 7, 8, 20, 21)} == {"INBOX"}
    assert len(golden_local["files"]) == 14 and len(golden_local["rows"]) == 14

    counts = _count(sandbox, start, CALLS)
    index = ("index.sqlite3", "index.sqlite3-wal")
    writes = _count(sandbox, start, ("pwrite64",), tuple(Path(p) for p in index))["pwrite64"]
    assert counts["rename"] >= 6 and counts["link"] + counts["linkat"] >= 2 and writes > 0, (counts, writes)
    plan = [(call, k, ()) for call, n in counts.items() for k in range(1, n + 1)]
    plan += [("pwrite64", k, index) for k in sorted({1 + round(i * (writes - 1) / (INDEX_WRITES - 1))
                                                      for i in range(INDEX_WRITES)})]
    failures: list[str] = []
    for call, k, paths in plan:
        home, email = _clone(sandbox, start, f"{call}-{k}")
        prefix = [STRACE, "-f", "-qq", "-o", "/dev/null", "-e", f"trace={call}",
                  "-e", f"inject={call}:signal=KILL:when={k}"]
        for p in paths:
            prefix += ["-P", str(home / "data" / p)]
        cut = _deskmail(home, "sync", "--json", prefix=tuple(prefix))
        where = f"{call} #{k}"
        if cut.returncode == 0:
            failures.append(f"{where}: the run ended before it")
            continue
        after = _deskmail(home, "sync", "--json")
        if after.returncode != 0:
            failures.append(f"{where}: the sync after the kill failed: {(after.stdout + after.stderr)[-600:]}")
            continue
        if _downloaded(json.loads(after.stdout)):
            failures.append(f"{where}: a moved message was downloaded again: {after.stdout[-800:]}")
        server, local = _server_state(sandbox, email), _local_state(home)
        if server != golden_server:
            failures.append(f"{where}: the server differs: {server}")
        if local != golden_local:
            diff = {key: (golden_local[key], local[key]) for key in local if local[key] != golden_local[key]}
            failures.append(f"{where}: the local copies differ: {diff}")
        if _parked(home):
            failures.append(f"{where}: left parked: {_parked(home)}")
        third = _deskmail(home, "sync", "--json")
        if third.returncode != 0 or not _quiet(json.loads(third.stdout)):
            failures.append(f"{where}: a third sync still did something: {third.stdout[-800:]}")
        shutil.rmtree(home, ignore_errors=True)
    print(f"\nmoves killed: calls {counts}, index writes {writes}; {len(plan)} kills")
    assert not failures, "\n".join(failures)

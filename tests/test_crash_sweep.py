"""F-02: the sync killed at every durable step, deterministically, with no test hook in the program.

One scenario mixes every kind of work a sync does: new mail on the server (INBOX and Work), flags
changed there (doveadm) and here (the façade), a message moved there (``doveadm move``) and here, one
expunged there, one deleted here (to Trash), one deleted for good here, and a message saved into a
local folder (an upload). Its starting state (the local home and the server's Maildir, Dovecot's
indexes included) is built once and cloned for every run under a fresh server user, so every run
starts from byte-identical state.

For each system call a durable step goes through (``rename``/``renameat``/``renameat2``,
``fsync``/``fdatasync``, ``unlink``/``unlinkat``, and ``write``/``pwrite64`` to the index files), the
real ``deskmail sync`` runs under ``strace -f -e inject=<call>:signal=KILL:when=K``: strace sends SIGKILL
when the process enters its Kth such call, so it dies exactly there. Then a normal sync runs, and the
server (``doveadm fetch 'uid flags hdr.message-id size.physical'`` of every folder) and the local copies
(SHA-256, UID and flags of every file, the index's rows, ``PRAGMA integrity_check``, an empty ``tmp/``)
must equal those of a run that was never killed; a third sync must change nothing.

The sweep is long (``-m slow`` selects it; CI runs it): every K of every call whose count is at most
``FULL``, and an even sample of ``FULL`` values of K (always the first and last) for a call made more
often. docs/reliability.md gives the counts and the time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helpers import Home, add_imaps_account, wait_for_indexer
from test_sync import msg

pytestmark = [pytest.mark.servers, pytest.mark.slow, pytest.mark.timeout(1800)]  # the full sweep: ~6 min

PASSWORD = "crash-sweep-Pw-41"
FOLDERS = ("INBOX", "Work", "Archive", "Trash", "Sent", "Drafts", "Junk")
FILE_CALLS = ("rename", "renameat", "renameat2", "fsync", "fdatasync", "unlink", "unlinkat")
INDEX_CALLS = ("write", "pwrite64")
FULL = int(os.environ.get("DESKMAIL_CRASH_SWEEP_FULL", "60"))  # every K up to this count; sampled above
STRACE = shutil.which("strace")


@dataclass
class Start:
    """The scenario's starting point: a local home and the server's Maildir, to be cloned."""

    root: Path
    home: Path
    maildir: Path
    email: str


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "DESKMAIL_HOME": str(home), "COLUMNS": "200", "DM_PW": PASSWORD}


def _deskmail(home: Path, *args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, "-m", "deskmail", *args], env=_env(home), capture_output=True,
                          text=True, timeout=180, check=False)


def _row_ids(home: Path) -> dict[str, int]:
    with sqlite3.connect(home / "data" / "index.sqlite3") as con:
        return {mid: rid for rid, mid in con.execute("SELECT id, message_id FROM messages")}


def _build(sandbox: Any, root: Path) -> Start:
    from deskmail.app import Deskmail
    from deskmail.config import Paths

    email = f"crash-start-{os.urandom(4).hex()}@example.test"
    sandbox.add_user(email, PASSWORD)
    sandbox.doveadm("mailbox", "create", "-u", email, "Work", check=True)
    sandbox.fill_maildir(email, [msg(i, email, size=1500 + 37 * i) for i in range(1, 13)])
    sandbox.fill_maildir(email, [msg(i, email, size=1500 + 37 * i) for i in range(20, 24)], folder="Work")
    home = root / "home"
    h = Home(home, env={"DM_PW": PASSWORD})
    user = type("U", (), {"email": email, "password": PASSWORD})()
    add_imaps_account(h, sandbox, user)
    first = _deskmail(home, "sync", "--json")
    assert first.returncode == 0, first.stdout + first.stderr
    wait_for_indexer(home / "data")  # every clone starts from the same files

    def mid(i: int) -> str:
        return f"<m{i}-{1500 + 37 * i}@example.test>"

    # There: new mail, flags, a move, an expunge.
    sandbox.fill_maildir(email, [msg(i, email, size=1500 + 37 * i) for i in range(13, 16)])
    sandbox.fill_maildir(email, [msg(24, email, size=1500 + 37 * 24)], folder="Work")
    for verb, flag, i in (("add", "\\Flagged", 1), ("add", "\\Seen", 2), ("add", "$Label1", 20)):
        sandbox.doveadm("flags", verb, "-u", email, flag, "mailbox", "INBOX" if i < 20 else "Work",
                        "header", "Message-ID", mid(i), check=True)
    sandbox.doveadm("move", "-u", email, "Archive", "mailbox", "INBOX", "header", "Message-ID", mid(3), check=True)
    sandbox.doveadm("expunge", "-u", email, "mailbox", "INBOX", "header", "Message-ID", mid(4), check=True)
    for folder in ("INBOX", "Work", "Archive"):  # UIDs given now, so that every clone has the same
        sandbox.doveadm("mailbox", "status", "-u", email, "messages uidnext", folder, check=True)

    # Here: flags, a move, a delete to Trash, a delete for good, a message saved into Work.
    app = Deskmail(Paths(home / "config", home / "data"))
    rows = _row_ids(home)
    app.set_flags([rows[mid(5)]], add=["flagged"])
    app.set_flags([rows[mid(6)]], add=["seen"])
    app.set_flags([rows[mid(21)]], add=["seen", "answered"])
    app.move([rows[mid(7)]], "Archive")
    app.move([rows[mid(22)]], "INBOX")
    app.delete([rows[mid(8)]])
    app.delete([rows[mid(9)]], expunge=True, confirmed=True)
    work_cur = home / "data" / "mail" / "a" / ".Work" / "cur"
    (work_cur / "1700000000.saved-here.host:2,S").write_bytes(msg(90, email, size=2222))

    maildir = sandbox.user(email).home / "Maildir"
    return Start(root, home, maildir, email)


def _clone(sandbox: Any, start: Start, name: str) -> tuple[Path, str]:
    """A copy of the starting point under a fresh server user: (local home, email)."""
    email = f"crash-{name}-{os.urandom(3).hex()}@example.test"
    sandbox.add_user(email, PASSWORD)
    target = sandbox.user(email).home / "Maildir"
    subprocess.run(["cp", "-a", str(start.maildir), str(target)], check=True)
    home = start.root / f"home-{name}"
    shutil.rmtree(home, ignore_errors=True)
    subprocess.run(["cp", "-a", str(start.home), str(home)], check=True)
    config = home / "config" / "accounts.toml"
    config.write_text(config.read_text().replace(start.email, email))
    return home, email


def _server_state(sandbox: Any, email: str) -> dict[str, list[tuple[str, ...]]]:
    state: dict[str, list[tuple[str, ...]]] = {}
    for folder in FOLDERS:
        out = sandbox.doveadm("-f", "tab", "fetch", "-u", email, "uid flags hdr.message-id size.physical",
                              "mailbox", folder).stdout
        rows = []
        for line in out.splitlines()[1:]:
            if line.strip():
                uid, flags, mid, size = line.split("\t")
                kept = " ".join(sorted(f for f in flags.split() if f != "\\Recent"))
                rows.append((uid, kept, mid.strip(), size))
        state[folder] = sorted(rows)
    return state


_UID = re.compile(r",U=(\d+)")


def _local_state(home: Path) -> dict[str, Any]:
    """Every local file (folder, UID, flags, SHA-256), the index's rows, and the store's health."""
    mail = home / "data" / "mail" / "a"
    files = []
    leftovers = []
    for folder in FOLDERS:
        base = mail if folder == "INBOX" else mail / f".{folder}"
        for sub in ("cur", "new"):
            d = base / sub
            for path in sorted(d.iterdir()) if d.is_dir() else ():
                uid = _UID.search(path.name)
                flags = path.name.rpartition(":2,")[2] if ":2," in path.name else ""
                files.append((folder, uid.group(1) if uid else "-", flags,
                              hashlib.sha256(path.read_bytes()).hexdigest()))
        tmp = base / "tmp"
        leftovers += [str(p) for p in tmp.iterdir()] if tmp.is_dir() else []
    with sqlite3.connect(home / "data" / "index.sqlite3") as con:
        check = con.execute("PRAGMA integrity_check").fetchone()[0]
        rows = sorted(con.execute(
            "SELECT f.name, m.uid, m.message_id, m.flags FROM messages m JOIN folders f ON f.id = m.folder_id"
        ).fetchall())
        ops = con.execute("SELECT count(*) FROM ops").fetchone()[0]
    return {"files": sorted(files), "rows": [tuple(map(str, r)) for r in rows], "integrity": check,
            "tmp": leftovers, "ops": ops}


def _quiet(report: dict[str, Any]) -> bool:
    work = ("new", "flags_pushed", "flags_pulled", "removed", "deleted", "moved", "refetched", "uploaded")
    return all(not f[k] for f in report["a"]["folders"] for k in work)


@dataclass
class Golden:
    server: dict[str, list[tuple[str, ...]]]
    local: dict[str, Any]


@pytest.fixture(scope="module")
def scenario(sandbox: Any) -> Iterator[tuple[Start, Golden]]:
    root = Path(tempfile.mkdtemp(prefix="deskmail-crash-"))
    try:
        start = _build(sandbox, root)
        home, email = _clone(sandbox, start, "golden")
        done = _deskmail(home, "sync", "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        golden = Golden(_server_state(sandbox, email), _local_state(home))
        again = _deskmail(home, "sync", "--json")
        assert again.returncode == 0 and _quiet(json.loads(again.stdout)), again.stdout
        assert _server_state(sandbox, email) == golden.server and _local_state(home) == golden.local
        # The scenario does what it says: each kind of change reached its side.
        assert golden.local["integrity"] == "ok" and not golden.local["tmp"] and golden.local["ops"] == 0
        where = {mid: folder for folder, rows in golden.server.items() for _u, _f, mid, _s in rows}
        assert where["<m3-1611@example.test>"] == "Archive" and where["<m7-1759@example.test>"] == "Archive"
        assert where["<m8-1796@example.test>"] == "Trash" and where["<m22-2314@example.test>"] == "INBOX"
        assert "<m9-1833@example.test>" not in where and "<m4-1648@example.test>" not in where
        assert where["<m90-2222@example.test>"] == "Work"
        yield start, golden
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _indexer_pids(trace: str) -> set[str]:
    """The sync's indexer children (store.indexer) in an ``strace -f`` log that traced ``execve``."""
    return set(re.findall(r'^(\d+)\s+execve\(.*"deskmail\.store\.indexer"', trace, re.MULTILINE))


def _counts(sandbox: Any, start: Start) -> dict[str, int]:
    """How often an uninterrupted run's sync process makes each call (file calls anywhere, writes to the
    index files).

    strace counts ``when=K`` per traced process, and the sync leaves the new messages' indexing to a
    child process (store.indexer) whose calls interleave with its own: they are left out of the counts.
    (A kill that lands in the child too, at its own Kth call, is one more fault the sweep survives.)"""
    assert STRACE, "strace is missing (scripts/bootstrap test installs it)"
    counts: dict[str, int] = {}
    for calls, paths in ((FILE_CALLS, ()), (INDEX_CALLS, ("index.sqlite3", "index.sqlite3-wal",
                                                           "index.sqlite3-journal"))):
        home, _email = _clone(sandbox, start, "count")
        log = start.root / "strace.log"
        # execve names the children; -y names each descriptor's file (what -P selects in the killed runs).
        prefix = [STRACE, "-f", "-qq", "-y", "-o", str(log), "-e", "trace=execve," + ",".join(calls)]
        done = _deskmail(home, "sync", "--json", prefix=tuple(prefix))
        assert done.returncode == 0, done.stdout + done.stderr
        text = log.read_text()
        children = _indexer_pids(text)
        files = tuple(str(home / "data" / p) for p in paths)
        for call in calls:
            counts[call] = sum(1 for pid, fd_path in re.findall(rf"^(\d+)\s+{call}\((?:\d+<([^>]*)>)?", text,
                                                                 re.MULTILINE)
                               if pid not in children and (not files or fd_path in files))
    return counts


def _ks(count: int) -> list[int]:
    if count <= FULL:
        return list(range(1, count + 1))
    return sorted({1 + round(i * (count - 1) / (FULL - 1)) for i in range(FULL)})


def test_sync_killed_at_every_durable_step_ends_as_if_never_killed(sandbox: Any,
                                                                  scenario: tuple[Start, Golden]) -> None:
    start, golden = scenario
    counts = _counts(sandbox, start)
    assert counts["fsync"] + counts["fdatasync"] > 0 and sum(counts[c] for c in ("rename", "renameat",
                                                                                  "renameat2")) > 0, counts
    assert counts["write"] + counts["pwrite64"] > 0, counts
    failures: list[str] = []
    killed = 0
    for call, count in counts.items():
        for k in _ks(count):
            home, email = _clone(sandbox, start, f"{call}-{k}")
            prefix = [STRACE, "-f", "-qq", "-o", "/dev/null", "-e", f"trace={call}",
                      "-e", f"inject={call}:signal=KILL:when={k}"]
            if call in INDEX_CALLS:
                for p in ("index.sqlite3", "index.sqlite3-wal", "index.sqlite3-journal"):
                    prefix += ["-P", str(home / "data" / p)]
            cut = _deskmail(home, "sync", "--json", prefix=tuple(prefix))
            if cut.returncode == 0:
                failures.append(f"{call} #{k}: the run ended before its {k}th {call} (count was {count})")
                continue
            killed += 1
            where = f"{call} #{k}"
            after = _deskmail(home, "sync", "--json")
            if after.returncode != 0:
                failures.append(f"{where}: the sync after the kill failed ({after.returncode}): "
                                f"{(after.stdout + after.stderr)[-600:]}")
                continue
            server, local = _server_state(sandbox, email), _local_state(home)
            if server != golden.server:
                diff = {f: (golden.server[f], server[f]) for f in FOLDERS if server[f] != golden.server[f]}
                failures.append(f"{where}: the server differs from the uninterrupted run: {diff}")
            if local != golden.local:
                diff = {key: (golden.local[key], local[key]) for key in local if local[key] != golden.local[key]}
                failures.append(f"{where}: the local copies differ from the uninterrupted run: {diff}")
            third = _deskmail(home, "sync", "--json")
            if third.returncode != 0 or not _quiet(json.loads(third.stdout)):
                failures.append(f"{where}: a third sync still did something: {third.stdout[-800:]}")
            elif _server_state(sandbox, email) != server or _local_state(home) != local:
                failures.append(f"{where}: a third sync changed the state")
            shutil.rmtree(home, ignore_errors=True)
    print(f"\ncrash sweep: calls {counts}; {killed} kills")
    assert not failures, "\n".join(failures)


_CALL = re.compile(r'^(\d+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+)', re.MULTILINE)
_FD_PATH = re.compile(r"^\d+<(.*)>")


def test_durable_steps_come_in_order(sandbox: Any, scenario: tuple[Start, Golden]) -> None:
    """One uninterrupted run traced (``strace -f -y``): every message file renamed from tmp/ into the
    folder was synced (fsync/fdatasync of the file, or syncfs of its file system) before the rename,
    and the folder's directory was synced after it and before the index's next commit (the sync of its
    WAL or database file)."""
    assert STRACE, "strace is missing (scripts/bootstrap test installs it)"
    start, _golden = scenario
    home, _email = _clone(sandbox, start, "order")
    log = start.root / "order.log"
    prefix = (STRACE, "-f", "-qq", "-y", "-s", "4096", "-o", str(log),
              "-e", "trace=execve,fsync,fdatasync,syncfs,rename,renameat,renameat2")
    done = _deskmail(home, "sync", "--json", prefix=prefix)
    assert done.returncode == 0, done.stdout + done.stderr
    trace = log.read_text()
    children = _indexer_pids(trace)  # the indexer's commits are not the sync's
    calls: list[tuple[str, list[str]]] = []
    for pid, name, args, result in _CALL.findall(trace):
        if result != "0" or pid in children or name == "execve":
            continue
        if name in ("fsync", "fdatasync", "syncfs"):
            m = _FD_PATH.match(args)
            calls.append((name, [m.group(1)] if m else []))
        else:
            calls.append((name, re.findall(r'"([^"]*)"', args)))
    renames = [(i, paths) for i, (name, paths) in enumerate(calls)
               if name.startswith("rename") and len(paths) == 2 and re.search(r"/tmp/[^/]+$", paths[0])
               and re.search(r"/(cur|new)/[^/]+$", paths[1])]
    # 3 downloads into INBOX, 1 into Work; the message doveadm moved to Archive is taken from its local copy
    assert len(renames) >= 4, f"the scenario downloads 3 into INBOX and 1 into Work: {len(renames)}"
    problems = []
    # A local copy parked (a message gone from its folder there) and taken by the folder it was moved to:
    # both directories synced after each rename and before the index's next commit.
    parked = [(i, paths) for i, (name, paths) in enumerate(calls)
              if name.startswith("rename") and len(paths) == 2 and any("/deskmail-parked/" in x for x in paths)]
    assert len(parked) >= 2, f"the message doveadm moved is parked, then taken by Archive: {parked}"
    for i, (source, target) in parked:
        later = calls[i + 1:]
        commit = next((k for k, (name, paths) in enumerate(later) if name in ("fsync", "fdatasync") and paths
                       and re.search(r"index\.sqlite3(-wal|-journal)?$", paths[0])), len(later))
        synced = {paths[0] for name, paths in later[:commit] if name == "fsync" and paths}
        for folder in (source.rsplit("/", 1)[0], target.rsplit("/", 1)[0]):
            if folder not in synced:
                problems.append(f"{source} -> {target}: {folder} not synced before the index's commit")
    for i, (source, target) in renames:
        # Since the last directory sync (the previous batch's end): the file itself, or its whole file
        # system (syncfs, one flush for a batch), was synced.
        last_dir = max((k for k, (name, paths) in enumerate(calls[:i]) if name == "fsync" and paths
                        and paths[0].endswith(("/cur", "/new"))), default=-1)
        window = calls[last_dir + 1:i]
        if not any(name == "syncfs" or (name in ("fsync", "fdatasync") and paths == [source])
                   for name, paths in window):
            problems.append(f"{target}: not synced before its rename")
        folder = target.rsplit("/", 1)[0]
        later = calls[i + 1:]
        commit = next((k for k, (name, paths) in enumerate(later) if name in ("fsync", "fdatasync") and paths
                       and re.search(r"index\.sqlite3(-wal|-journal)?$", paths[0])), None)
        dir_sync = next((k for k, (name, paths) in enumerate(later) if name == "fsync" and paths
                         and paths[0] == folder), None)
        if dir_sync is None or (commit is not None and dir_sync > commit):
            problems.append(f"{target}: its folder was not synced between the rename and the index's commit")
    assert not problems, "\n".join(problems[:20])

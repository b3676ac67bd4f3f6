"""F-17: one folder of 100,000 messages, through a proxy that records the client's commands.

100,000 small generated messages are written into Dovecot's INBOX (``fill_maildir``: straight into the
Maildir, then ``doveadm force-resync``). The first `deskmail sync` is killed with SIGKILL once about half
of them are committed to the index; the resume completes the folder without fetching again what was
committed (each message once as a file and a row); both runs stay in bounded memory (peak RSS of the
process). Then 10 new messages: the incremental sync lists nothing (no ``UID FETCH 1:*``), asks for the
new bodies once, and a sync with nothing new asks for no message at all.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from helpers import Home
from test_reliability import WireProxy, plain_account

pytestmark = [pytest.mark.servers, pytest.mark.slow, pytest.mark.timeout(1500)]

TOTAL = 100_000
PEAK_KB = 150 * 1024  # the project's memory goal for a sync (bench/README.md)


def _small(i: int, to: str) -> bytes:
    return (f"From: gen@example.test\r\nTo: {to}\r\nSubject: small {i}\r\n"
            f"Message-ID: <s{i}@example.test>\r\nDate: Mon, 02 Jan 2023 10:00:00 +0000\r\n\r\n"
            f"body {i}\r\n").encode()


def _env(home: Home) -> dict[str, str]:
    return {**os.environ, "DESKMAIL_HOME": str(home.root), "COLUMNS": "200", **home.env}


def _rows(home: Home) -> int:
    index = home.root / "data" / "index.sqlite3"
    if not index.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{index}?mode=ro", uri=True, timeout=1) as con:
            return int(con.execute("SELECT count(*) FROM messages").fetchone()[0])
    except sqlite3.Error:
        return 0  # not created yet


def _peak_kb(pid: int) -> int:
    """VmHWM of process ``pid``: its own peak resident memory, in KB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for {pid}")


def _timed_sync(home: Home) -> tuple[dict[str, Any], int, float]:
    """(the INBOX result, peak RSS in KB, seconds) of one `deskmail sync --json`."""
    began = time.monotonic()
    proc = subprocess.run(["/usr/bin/time", "-f", "peak-kb=%M", sys.executable, "-m", "deskmail", "sync", "--json"],
                          env=_env(home), capture_output=True, text=True, timeout=900, check=False)
    took = time.monotonic() - began
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]
    peak = re.search(r"peak-kb=(\d+)", proc.stderr)
    assert peak, proc.stderr[-2000:]
    out = proc.stdout[:proc.stdout.rindex("}") + 1]
    inbox = next(f for f in json.loads(out)["a"]["folders"] if f["folder"] == "INBOX")
    return inbox, int(peak.group(1)), took


def _fetches(commands: list[bytes]) -> list[bytes]:
    return [c for c in commands if re.search(rb"^\S+ UID FETCH ", c)]


def test_100000_messages_killed_halfway_resumed_then_incremental(sandbox: Any, mail_user: Any,
                                                                 tmp_path: Path) -> None:
    email = mail_user.email
    filled = time.monotonic()
    sandbox.fill_maildir(email, (_small(i, email) for i in range(TOTAL)))
    print(f"\nfilled {TOTAL} in {time.monotonic() - filled:.1f} s")
    proxy = WireProxy((sandbox.host, sandbox.imap_port))
    try:
        home = plain_account(sandbox, mail_user, tmp_path, proxy.port)

        # First sync, killed once half the messages are committed (the index is polled read-only).
        began = time.monotonic()
        child = subprocess.Popen([sys.executable, "-m", "deskmail", "sync"], env=_env(home),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while (at_kill := _rows(home)) < TOTAL // 2 and child.poll() is None and time.monotonic() - began < 600:
            time.sleep(0.05)
        # The peaks (VmHWM) of the sync process and of its indexer child, read just before the kill. wait4's
        # ru_maxrss also counts any child the sync reaped: ~94 MB here while the two were 28 + 20 MB, and
        # once 397 MB in a CI run (not understood yet: printed, not asserted).
        own_peak = _peak_kb(child.pid) + sum(_peak_kb(int(kid)) for kids in Path("/proc").glob(
            f"{child.pid}/task/*/children") for kid in kids.read_text().split())  # (+ the indexer process)
        os.kill(child.pid, signal.SIGKILL)
        _pid, status, usage = os.wait4(child.pid, 0)
        assert os.waitstatus_to_exitcode(status) == -signal.SIGKILL, "the first sync ended before half"
        at_kill = _rows(home)
        print(f"killed at {at_kill} rows after {time.monotonic() - began:.1f} s, peak {own_peak} KB "
              f"(ru_maxrss {usage.ru_maxrss} KB)")
        assert TOTAL // 2 <= at_kill < TOTAL and own_peak < PEAK_KB, (at_kill, own_peak, usage.ru_maxrss)

        # The resume downloads only what was not committed, and ends with every message once.
        inbox, peak, took = _timed_sync(home)
        print(f"resume: {inbox['new']} new in {took:.1f} s, peak {peak} KB")
        assert inbox["codes"] == [] and peak < PEAK_KB, (inbox, peak)
        assert 0 < inbox["new"] <= TOTAL - at_kill, (inbox["new"], at_kill)
        cur = home.root / "data" / "mail" / "a" / "cur"
        names = os.listdir(cur)
        assert len(names) == TOTAL and _rows(home) == TOTAL
        uids = [int(m.group(1)) for n in names if (m := re.search(r",U=(\d+)", n))]
        assert sorted(uids) == list(range(1, TOTAL + 1)), "each message once"
        assert not os.listdir(home.root / "data" / "mail" / "a" / "tmp")

        # 10 new: no listing of the folder, one FETCH of bodies.
        sandbox.fill_maildir(email, (_small(i, email) for i in range(TOTAL, TOTAL + 10)))
        since = len(proxy.commands)
        inbox, peak, took = _timed_sync(home)
        sent = proxy.commands[since:]
        print(f"incremental: {took:.2f} s, peak {peak} KB, commands {[c.split(b' ', 2)[1] for c in sent]}")
        assert inbox["new"] == 10 and _rows(home) == TOTAL + 10, inbox
        fetches = _fetches(sent)
        assert len(fetches) == 1 and re.search(rb"UID FETCH 100001:\* \(.*BODY\.PEEK\[\]", fetches[0]), fetches
        assert any(re.search(rb"SELECT \S+ \(QRESYNC", c) for c in sent), sent

        # Nothing new: no FETCH at all.
        since = len(proxy.commands)
        inbox, peak, took = _timed_sync(home)
        print(f"no change: {took:.2f} s, peak {peak} KB")
        assert inbox["new"] == 0 and _fetches(proxy.commands[since:]) == [], proxy.commands[since:]
    finally:
        proxy.close()

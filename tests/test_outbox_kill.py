"""`deskmail send` killed for real at every durable step of the outbox, then a flush: sent once, filed once.

A clean `deskmail send` is traced first (``strace -f``: every rename, unlink and fsync, in order). Then, for
each of those calls, a new `deskmail send` runs under ``strace -f -e inject=CALL:signal=KILL:when=K``: the
kernel kills the process as it enters the K-th such call, before the call takes effect. No test hook in
deskmail. A separate `deskmail outbox flush --all` follows, and the real servers are asked what they hold.

The invariants (FAULT_MATRIX F-21, I6): Dovecot's INBOX (the message is sent to its own sender) holds the
message at most once; exactly once when the kill came after the outbox record was written (before it, the
command never said "queued", and the outbox is empty); the outbox is then either empty (sent and filed) or
holds the message as *uncertain* (only when the kill came after the data step was recorded: then the server
has it at most once, and a kill between that record and the final dot leaves it unsent — the price of
recording before sending, the user decides); the copy in Sent exists exactly once for every sent message,
never for an uncertain one.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import Home, add_imaps_account

pytestmark = pytest.mark.servers

CALLS = ("rename", "unlink", "fsync")
_LINE = re.compile(r"^(?:\[pid\s+\d+\]\s+|\d+\s+)?(rename|unlink|fsync)\((.*)$")


def _send(home: Home, subject: str, *strace: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DESKMAIL_HOME": str(home.root), **home.env}
    cmd = [sys.executable, "-m", "deskmail", "send", "--to", home.env["DM_USER"], "--subject", subject,
           "--body", f"body of {subject}\n"]
    return subprocess.run(["strace", "-f", "-qq", *strace, *cmd], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def _count(sandbox: Any, user: Any, folder: str, subject: str) -> int:
    found = sandbox.doveadm("search", "-u", user.email, "mailbox", folder, "subject", subject)
    return len(found.stdout.split()) // 2


def test_sigkill_at_every_durable_step_then_flush_sends_once_and_files_once(sandbox: Any, mail_user: Any,
                                                                             tmp_path: Path) -> None:
    home = Home(tmp_path / "home", env={"DM_PW": mail_user.password, "DM_USER": mail_user.email})
    add_imaps_account(home, sandbox, mail_user, name="acct")
    # The first sends write the command line's start-up caches (cli/fastpath.py: renames of their own; the
    # accounts' once the data folder exists, after the first), which later runs do not: the calls are counted
    # in a run like theirs.
    for n in range(2):
        warm = home.run("send", "--to", mail_user.email, "--subject", f"warm-up {n}", "--body", "x")
        assert warm.returncode == 0, warm.stderr
    trace = tmp_path / "clean.trace"
    clean = _send(home, "kill clean run", "-o", str(trace), "-e", f"trace={','.join(CALLS)}")
    assert clean.returncode == 0, clean.stderr
    steps: list[tuple[str, int, str]] = []  # (call, its ordinal among calls of that name, argument text)
    seen: dict[str, int] = {}
    for line in trace.read_text().splitlines():
        m = _LINE.match(line)
        if m:
            seen[m.group(1)] = seen.get(m.group(1), 0) + 1
            steps.append((m.group(1), seen[m.group(1)], m.group(2)))
    # The enqueue is committed by the first rename onto a record (state/ID.json).
    committed = next(i for i, (call, _k, arg) in enumerate(steps)
                     if call == "rename" and re.search(r'/outbox/state/[^/."]+\.json"', arg))
    assert seen.get("rename", 0) >= 6 and seen.get("unlink", 0) >= 2, steps  # the queue's life is all in there

    outcomes = []
    for i, (call, k, arg) in enumerate(steps):
        subject = f"kill {i} {call} {k}"
        killed = _send(home, subject, "-o", "/dev/null", "-e", f"inject={call}:signal=KILL:when={k}")
        assert killed.returncode == -9 or "killed by SIGKILL" in killed.stderr or killed.returncode == 137, (
            i, call, k, killed.returncode, killed.stderr[-500:])
        flushed = home.run("outbox", "flush", "--all")
        assert flushed.returncode in (0, 9), flushed.stderr  # 9: an uncertain message is reported
        box = json.loads(home.run("outbox", "--json").stdout)
        inbox = _count(sandbox, mail_user, "INBOX", subject)
        sent = _count(sandbox, mail_user, "Sent", subject)
        states = [e["state"] for e in box]
        outcomes.append((i, call, k, inbox, sent, states))
        where = f"killed at {call} #{k} ({arg[:90]}): inbox {inbox}, Sent {sent}, outbox {states}"
        if i <= committed:
            assert (inbox, sent, states) == (0, 0, []), where  # never queued, never told so
            continue
        assert states in ([], ["uncertain"]), where
        if not states:
            assert (inbox, sent) == (1, 1), where  # delivered once, filed once
            continue
        # Uncertain: the data step was recorded, so the dot may have gone out (a kill between the record and
        # the dot leaves it unsent: the write-ahead's price, for which the user decides). Never twice, no copy.
        assert inbox <= 1 and sent == 0, where
        if states:
            home.run("outbox", "cancel", box[0]["id"])  # (the user's choice; keeps the next round's box clean)
    kinds = {tuple(o[5]) for o in outcomes}
    assert ("uncertain",) in kinds and () in kinds, outcomes  # both windows were really hit
    assert any(o[5] == ["uncertain"] and o[3] == 1 for o in outcomes), outcomes  # killed after the dot went out
    assert any(o[0] > committed and o[5] == [] for o in outcomes), outcomes  # resumed and sent by the flush

"""Issue 12's data-loss paths, each closed with a fault injected for real (docs/reliability.md lists them).

No test hook in the program: the clock is shifted for the deskmail process only (faketime), the
other client is doveadm, and faults on the wire come from a small proxy in this file that reads
the client's commands and acts at exactly the moment named (runs doveadm before forwarding a
command, cuts or garbles the server's answer in one folder).
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helpers import Home
from test_sync import db, local, maildir_files, maildir_files_pop, msg, pop_account, server, sync

pytestmark = pytest.mark.servers

FAKETIME = shutil.which("faketime")


# ---- 1. POP3 after the local copy is gone -------------------------------------------------------


def test_pop3_never_deletes_from_the_server_once_the_local_copy_is_gone(sandbox: Any, mail_user: Any,
                                                                         tmp_path: Path) -> None:
    """delete_after_days = 1, the account's mail folder removed, the next sync two days later (the
    clock of the deskmail process moved by faketime): it stops with store_missing, the server keeps
    every message; after a redownload the copies are back and only then do the DELEs go out."""
    assert FAKETIME, "faketime is missing (scripts/bootstrap test installs it)"
    email = mail_user.email
    home = pop_account(sandbox, mail_user, tmp_path)
    cfg = home.root / "config" / "accounts.toml"
    cfg.write_text(cfg.read_text() + "\n[accounts.p.options]\ndelete_after_days = 1\n")
    sandbox.fill_maildir(email, [msg(i, email) for i in range(1, 6)])
    assert sync(home)["p"]["folders"][0]["new"] == 5
    shutil.rmtree(home.root / "data" / "mail" / "p")

    later = ["faketime", "-f", "+2d"]
    proc = _run_at(home, later, "sync", "--json")
    assert proc.returncode == 10, proc.stdout + proc.stderr
    assert '"code": "store_missing"' in proc.stdout, proc.stdout
    assert len(server(sandbox, email)) == 5, "no DELE may follow from a missing store"
    assert not (home.root / "data" / "mail" / "p" / "cur").exists(), "the missing store is not recreated"

    # Files gone one by one (the folder is still there): those are not deleted on the server either.
    proc = _run_at(home, later, "sync", "--json", "--redownload")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(maildir_files_pop(home)) == 5 and len(server(sandbox, email)) == 5  # downloaded again today
    cur = home.root / "data" / "mail" / "p" / "cur"
    gone = sorted(cur.iterdir())[:2]
    for path in gone:
        path.unlink()
    proc = _run_at(home, ["faketime", "-f", "+4d"], "sync", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"deleted": 3' in proc.stdout and "left on the server" in proc.stdout, proc.stdout
    assert len(server(sandbox, email)) == 2, "only the three messages whose copy is here were deleted there"


def _run_at(home: Home, clock: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    """The deskmail CLI with its clock shifted (faketime preloads into that process only)."""
    import os
    import sys

    env = {**os.environ, "DESKMAIL_HOME": str(home.root), "COLUMNS": "200", **home.env}
    return subprocess.run([*clock, sys.executable, "-m", "deskmail", *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)

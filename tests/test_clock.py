"""A computer whose clock is behind: the sync's connection says "check your clock" (code clock_wrong).

The clock is moved for the deskmail process only (faketime); the sandbox's certificates started at
most a few days ago, so 400 days back every one of them is "not valid yet".
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import Home, add_imaps_account

pytestmark = pytest.mark.servers


def test_sync_with_the_clock_behind_says_check_your_clock(sandbox: Any, mail_user: Any, tmp_path: Path) -> None:
    faketime = shutil.which("faketime")
    assert faketime, "faketime is missing (scripts/bootstrap test installs it)"
    home = Home(tmp_path / "home", env={"DM_PW": mail_user.password})
    add_imaps_account(home, sandbox, mail_user)
    env = {**os.environ, "DESKMAIL_HOME": str(home.root), "COLUMNS": "200", **home.env}
    proc = subprocess.run([faketime, "-f", "-400d", sys.executable, "-m", "deskmail", "sync", "--json"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0, proc.stdout
    report = json.loads(proc.stdout)
    text = json.dumps(report)
    assert '"code": "clock_wrong"' in text, text
    assert "check your clock" in text and "not valid yet" in text
    assert mail_user.password not in proc.stdout + proc.stderr
    # With the right clock the same account syncs.
    assert home.run("sync", "--json").returncode == 0

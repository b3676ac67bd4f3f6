"""Shared fixtures: one real Dovecot + SMTP sandbox per test session, a fresh user per test.

The sandbox lives in a directory under /tmp rather than pytest's tmp_path: Dovecot's
unprivileged processes must traverse every parent directory, and pytest's
``/tmp/pytest-of-root`` is mode 0700. Set DESKMAIL_KEEP_SANDBOX=1 to keep it (logs!)
after the session.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from deskmail.sandbox import MailUser, Sandbox, SandboxError, start_sandbox


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """Dovecot (IMAP/POP3/LMTP) and the SMTP submission server, running for the whole session."""
    root = Path(tempfile.mkdtemp(prefix="deskmail-sandbox-"))
    try:
        sb = start_sandbox(root)
    except SandboxError as exc:
        problem = str(exc)
    else:
        problem = ""
    if problem:
        shutil.rmtree(root, ignore_errors=True)
        # A missing Dovecot must show as a failure, never as a silently skipped suite.
        pytest.fail(f"could not start the mail sandbox: {problem}", pytrace=False)
    try:
        yield sb
    finally:
        sb.stop()
        if os.environ.get("DESKMAIL_KEEP_SANDBOX"):
            print(f"\nsandbox kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def mail_user(sandbox: Sandbox, request: pytest.FixtureRequest) -> MailUser:
    """A user nobody else has seen: unique address (named after the test), random password."""
    return sandbox.create_user(hint=request.node.name[:30])

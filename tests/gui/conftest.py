"""GUI tests: pytest-qt on Qt's offscreen platform, against the real sandbox servers."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Before Qt is imported: no display here (CI has none), and a private 0700 runtime directory.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="deskmail-qt-"))

from deskmail.app import Deskmail
from deskmail.config import Paths
from deskmail.model import Account, PasswordSource, Protocol, Security, ServerSettings


@pytest.fixture
def dm(tmp_path: Path, sandbox: Any, mail_user: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deskmail]:
    """A façade over a fresh home with one IMAP account of the sandbox (password from the environment)."""
    monkeypatch.setenv("DM_GUI_PW", mail_user.password)
    app = Deskmail(Paths(tmp_path / "config", tmp_path / "data"), keep_connections=True)
    app.add_account(Account(
        name="a", email=mail_user.email, display_name="Test User",
        incoming=ServerSettings(Protocol.IMAP, sandbox.host, sandbox.imaps_port, Security.SSL, mail_user.email),
        outgoing=ServerSettings(Protocol.SMTP, sandbox.host, sandbox.submission_port, Security.STARTTLS,
                                mail_user.email),
        password=PasswordSource("env", env="DM_GUI_PW"), ca_file=str(sandbox.ca_file)))
    yield app
    app.close()

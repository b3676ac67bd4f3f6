"""Where deskmail keeps its files: the configuration and data directories.

Imports nothing but ``os`` and ``sys``: the command-line fast path reads these first thing,
to start connecting while the rest of deskmail is imported (:mod:`deskmail.cli.fastpath`).
:mod:`deskmail.config` builds on them.
"""

from __future__ import annotations

import os
import sys

ACCOUNTS_FILE = "accounts.toml"  # in the config directory


def dirs() -> tuple[str, str] | None:
    """(config directory, data directory), or None where only platformdirs knows (not Linux)."""
    home = os.environ.get("DESKMAIL_HOME")
    if home:
        root = os.path.expanduser(home)
        if not os.path.isabs(root):
            root = os.path.join(os.getcwd(), root)
        return os.path.join(root, "config"), os.path.join(root, "data")
    if sys.platform.startswith("linux"):
        # The XDG base directories, as platformdirs computes them on Linux; importing
        # platformdirs costs ~8 ms, a fifth of a no-change sync.
        def xdg(var: str, default: str) -> str:
            value = os.environ.get(var, "").strip()
            return os.path.join(value if value else os.path.expanduser(default), "deskmail")

        return xdg("XDG_CONFIG_HOME", "~/.config"), xdg("XDG_DATA_HOME", "~/.local/share")
    return None

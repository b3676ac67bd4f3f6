"""Where deskmail keeps its files, and the accounts document cached from their last parse.

Imports nothing but ``os``, ``sys`` and ``marshal``: `deskmail sync` reads these first
thing, to start connecting while the rest of deskmail is imported
(:func:`deskmail.sync.early.dial_early`). :mod:`deskmail.config` builds on them.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

ACCOUNTS_FILE = "accounts.toml"  # in the config directory
ACCOUNTS_CACHE = os.path.join("cache", "accounts.marshal")  # in the data directory


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


def cached_document(text: str, cache: str) -> dict[str, Any] | None:
    """The TOML document parsed from ``text``, if the cache at ``cache`` was made from exactly ``text``.

    Any edit to the accounts file, however small or quick, misses the cache: it holds the
    whole text it was parsed from. A cache that cannot be read counts as a miss.
    """
    import marshal

    try:
        with open(cache, "rb") as fh:
            cached_text, doc = marshal.loads(fh.read())
    except (OSError, ValueError, EOFError, TypeError):
        return None
    return doc if cached_text == text and isinstance(doc, dict) else None

from __future__ import annotations

import pytest

from deskmail.cli.fastpath import applies as _lean_sync


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["sync"], (None, False)),
        (["sync", "-q"], (None, True)),
        (["sync", "work", "--quiet"], ("work", True)),
        (["sync", "--json"], None),
        (["sync", "--watch"], None),
        (["sync", "a", "b"], None),
        (["--debug", "sync"], None),
        (["list"], None),
        ([], None),
    ],
)
def test_only_plain_sync_takes_the_lean_path(args: list[str], expected: object) -> None:
    # pytest's stdout is not a terminal, as under cron or a systemd timer.
    assert _lean_sync(args) == expected

"""The search and thread index kept up during a sync by a second process, on the second core.

Indexing a message (reading its file back, extracting its text, the FTS5 insert: ~0.35 ms)
on the download's thread made the first sync of 10,000 messages ~2.5x slower. A thread would
not help: the extraction is Python and would take the interpreter lock from the download. So a
sync that stores messages, even a few, starts :class:`Follower`, a child process (``python -m
deskmail.store.indexer DATA_DIR``) that runs :func:`~deskmail.store.search.catch_up` on every
batch the sync commits, in short transactions of its own, while the download goes on. When the
sync is done it closes the child's stdin and returns at once; the child indexes what is left and
exits. The sync does not wait for it: on 2 cores shared with the download (and a local server),
the indexing's ~0.3 ms a message outlasts the download, and waiting made a first sync of 10,000
messages 2.4x slower. Whoever needs the index complete before the child is done (a search, a
thread) catches up first (:meth:`deskmail.app.Deskmail.search`): the two share the work exactly.

Nothing depends on the child succeeding: whatever it did not index (it failed, was killed, could
not start) is indexed by the next catch-up: the sync's own when no child started, else a search's,
a thread's or the next sync's indexer (the high-water mark makes that exact). Its output goes
nowhere: it has no user to speak to.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

POLL = 0.05  # seconds between looks for newly committed rows


class Follower:
    """The child process indexing behind a sync in ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        import deskmail

        env = dict(os.environ)
        # The child imports this deskmail, wherever it was imported from (an unpacked source tree too).
        root = str(Path(deskmail.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            [sys.executable, "-m", "deskmail.store.indexer", str(data_dir)], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def detach(self) -> None:
        """Tell the child the sync is over and leave it to index the rest on its own."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass  # it is gone already: whatever it did not index, a later catch-up does
        _DETACHED.append(proc)
        reap()


_DETACHED: list[subprocess.Popen[bytes]] = []  # children left to finish: reaped once they have (no zombies)


def reap() -> None:
    """Forget the detached children that have exited (a long-running program starts one a sync that stores mail)."""
    _DETACHED[:] = [p for p in _DETACHED if p.poll() is None]


def main(argv: list[str]) -> int:
    from deskmail.store import Store

    done = threading.Event()

    def wait_for_eof() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            done.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    with Store.open_writer(Path(argv[0])) as store:
        while True:
            over = done.is_set()  # read before the catch-up: rows committed before the end are all seen
            if store.catch_up() == 0:
                if over:
                    return 0
                done.wait(POLL)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

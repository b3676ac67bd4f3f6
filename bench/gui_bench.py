"""The desktop application's speed (issue 15): start to the inbox painted, memory, opening a message,
and the longest stall while scrolling a 100,000-row list.

    xvfb-run -a -s '-screen 0 1280x800x24 -nolisten tcp' .venv/bin/python bench/gui_bench.py \
        --messages 50000 --runs 5 [--json out.json]

Without a DISPLAY it runs on Qt's offscreen platform (and says so). Needs root (the sandbox Dovecot).

1. A sandbox user gets ``--messages`` generated messages (bench/mailbox_gen.py); deskmail syncs them into a
   fresh home, as a person's first sync would.
2. **Start → inbox painted**: the parent takes the time, then spawns ``deskmail-gui`` as the console script
   would (``from deskmail.gui.main import main``) inside a small child wrapper. The wrapper adds, from
   outside, an event filter on the message list's viewport: the first paint with rows in the model stops
   the clock. Resident memory (VmRSS) is read at that moment. Median of ``--runs``.
3. **Open a message**: in the same kind of child, 4 s after the paint (the start-up sync over), 30 rows are
   selected one after the other, then the 3 with the largest HTML among the newest 3,000; each is timed from
   the selection until the reader pane shows that message
   (what a click does). Median and maximum.
4. **Search**: in the same kind of child, after the start-up sync, queries are typed into the search box
   (key events, as a person types, in a burst); each is timed from its last keystroke until the list has
   been repainted with its results. This includes the box's pause before it searches (60 ms: a burst of
   keys is one search). Median and maximum over the query set, 3 rounds.
5. **Scroll stall**: an index of ``--scroll-rows`` messages in one folder (rows written straight into the
   SQLite index, as bench/store_bench.py does: the list reads only the index), then the list is scrolled
   page by page and by jumps to random positions (dragging the scroll bar); each step is timed from
   the scroll to the end of the repaint it causes. The longest step is the longest stall.

No production code carries a hook for this: the child wraps the application from outside.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mailbox_gen  # sibling module; bench/ is not a package

CHILD = r'''
import json, os, sys, time
t0 = float(sys.argv[1]); mode = sys.argv[2]
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication
from deskmail.gui import mainwindow

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0

class Painted(QObject):
    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.done = False
    def eventFilter(self, obj, event):
        if not self.done and event.type() == QEvent.Type.Paint and self.window.model.rowCount() > 0:
            self.done = True
            result = {"painted_s": time.time() - t0, "rss_mb": rss_mb(), "rows": self.window.model.rowCount()}
            QTimer.singleShot(0, lambda: finish(self.window, result))
        return False

def finish(window, result):
    if mode in ("settle", "open", "search"):  # once the start-up sync is over and the window is idle
        end = time.time() + 4
        while time.time() < end:
            QApplication.processEvents()
            time.sleep(0.01)
        result["rss_settled_mb"] = rss_mb()
    if mode == "open":
        times = []
        # The 30 newest, then the 3 with the largest HTML among the newest 3,000 (newsletters: the slow case).
        html_size = {row: len(window.app.read_message(window.model.summary(row).id, prefer_html=True).reading.html)
                     for row in range(31, 3000)}
        biggest = sorted(html_size, key=html_size.__getitem__, reverse=True)[:3]
        result["big_html_kb"] = [html_size[row] / 1024 for row in biggest]
        for row in [*range(1, 31), *biggest]:
            t = time.perf_counter()
            window.list.selectRow(row)
            wanted = window.model.summary(row).id
            while window.shown_id != wanted:  # read on a worker, shown by the GUI thread
                QApplication.processEvents()
            times.append((time.perf_counter() - t) * 1000)
            result.setdefault("open_sizes", []).append(window.model.summary(row).size)
        result["open_ms"] = times
    if mode == "search":
        from PySide6.QtCore import Qt
        from PySide6.QtGui import QKeyEvent
        def type_text(widget, text):  # one key press and release a character (QTest.keyClicks is ASCII-only)
            for ch in text:
                key = ord(ch.upper()) if ch.isascii() else 0
                for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
                    QApplication.sendEvent(widget, QKeyEvent(kind, key, Qt.KeyboardModifier.NoModifier, ch))
        painted = []
        class Paints(QObject):
            def eventFilter(self, obj, event):
                if event.type() == QEvent.Type.Paint:
                    painted.append(time.perf_counter())
                return False
        paints = Paints(window)
        window.list.viewport().installEventFilter(paints)
        resets = []
        window.model.modelReset.connect(lambda: resets.append(time.perf_counter()))
        times, counts = {}, {}
        for _round in range(3):
            for query in QUERIES:
                window.end_search()
                QApplication.processEvents()
                window.search_box.setFocus()
                type_text(window.search_box, query)
                t = time.perf_counter()
                resets.clear()
                while not (resets and window.model.searching and painted and painted[-1] > resets[-1]):
                    QApplication.processEvents()
                    time.sleep(0.0005)
                times.setdefault(query, []).append((painted[-1] - t) * 1000)
                counts[query] = window.model.rowCount()
        result["search_ms"] = times
        result["search_rows"] = counts
    print(json.dumps(result), flush=True)
    os._exit(0)

QUERIES = ["smörgåsbord", "deadline", "from:kwame", "subject:invoice", "date:2019-03..2019-04",
           "budget from:ada -review", "is:unread has:attachment"]

original = mainwindow.MainWindow.__init__
def init(self, *args, **kwargs):
    original(self, *args, **kwargs)
    self.list.viewport().installEventFilter(Painted(self))
mainwindow.MainWindow.__init__ = init
from deskmail.gui.main import main
sys.exit(main([]))
'''


def child_env(home: Path, extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, "DESKMAIL_HOME": str(home), **extra}


def run_child(home: Path, mode: str, env: dict[str, str]) -> dict[str, object]:
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", CHILD, str(t0), mode], env=child_env(home, env),
                         capture_output=True, text=True, timeout=120, check=False)
    line = next((x for x in out.stdout.splitlines() if x.startswith("{")), None)
    if line is None:
        Path("/tmp/gui-bench-child.err").write_text(out.stderr)
        raise SystemExit(f"the application did not paint its list (its stderr: /tmp/gui-bench-child.err): "
                         f"{out.stderr[-2000:]}")
    result: dict[str, object] = json.loads(line)
    return result


def scroll_stalls(rows: int, workdir: Path) -> dict[str, float]:
    """Scroll a ``rows``-message folder in this process; the longest scroll-to-repainted step, in ms."""
    from PySide6.QtWidgets import QApplication

    from deskmail.app import Deskmail
    from deskmail.config import Paths
    from deskmail.gui.mainwindow import MainWindow
    from deskmail.gui.models import View
    from deskmail.store import Store

    paths = Paths(workdir / "scroll-config", workdir / "scroll-data")
    paths.data_dir.mkdir(parents=True)
    store = Store.open_writer(paths.data_dir)
    try:
        with store.transaction():
            fid = store.ensure_folder("a", "INBOX").id
        rnd = random.Random(7)
        batch = []
        for n in range(rows):
            date = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(1_400_000_000 + rnd.randrange(10**8)))
            batch.append((fid, 1, str(n + 1), f"{n}.M1P1Q1.host,U={n + 1}:2,", "\\Seen", "\\Seen", 1000 + n % 5000,
                          date, f"Person {n % 500} <p{n % 500}@example.test>", "me@example.test",
                          f"Subject {rnd.randrange(10**6):06d}", f"<{n}@x>"))
        with store.transaction() as db:  # (bench only: the store has no bulk-insert API)
            db.executemany("INSERT INTO messages (folder_id, uidvalidity, uid, filename, flags, synced_flags, size,"
                           " date, sender, recipients, subject, message_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", batch)
    finally:
        store.close()
    from deskmail.model import Account, PasswordSource, Protocol, Security, ServerSettings

    qapp = QApplication.instance() or QApplication(["gui-bench"])
    app = Deskmail(paths)
    app.add_account(Account(  # never contacted: the scroll test only reads the index
        "a", "a@example.test", "", ServerSettings(Protocol.IMAP, "localhost", 993, Security.SSL, "a"),
        ServerSettings(Protocol.SMTP, "localhost", 587, Security.STARTTLS, "a"), PasswordSource("env", env="NONE")))
    window = MainWindow(app)
    window.sync_timer.stop()
    window.show()
    window.model.show(View("a", "INBOX"))
    QApplication.processEvents()
    bar = window.list.verticalScrollBar()
    steps: list[float] = []

    def step(value: int) -> None:
        t = time.perf_counter()
        bar.setValue(value)
        window.list.viewport().repaint()
        QApplication.processEvents()
        steps.append((time.perf_counter() - t) * 1000)

    for value in range(0, min(bar.maximum(), 200 * bar.pageStep()), bar.pageStep()):  # page by page
        step(value)
    rnd = random.Random(3)
    for _ in range(200):  # the thumb dragged anywhere
        step(rnd.randrange(bar.maximum() + 1))
    step(bar.maximum())
    window.index_timer.stop()
    window.sync_timer.stop()
    window.hide()
    app.close()
    del qapp
    return {"steps": len(steps), "median_ms": statistics.median(steps), "max_ms": max(steps),
            "p99_ms": sorted(steps)[int(len(steps) * 0.99) - 1]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=50000)
    parser.add_argument("--scroll-rows", type=int, default=100000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp"))
    args = parser.parse_args(argv)
    platform = "xcb (Xvfb)" if os.environ.get("DISPLAY") else "offscreen"
    env = {"QT_QPA_PLATFORM": "xcb" if os.environ.get("DISPLAY") else "offscreen",
           "XDG_RUNTIME_DIR": tempfile.mkdtemp(prefix="gui-bench-rt-")}
    os.environ.update(env)
    # As an installed program has: byte-compiled modules (this machine sets PYTHONDONTWRITEBYTECODE).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(__file__).resolve().parents[1] / "src")],
                   check=False, stdout=subprocess.DEVNULL)

    from deskmail.app import Deskmail
    from deskmail.config import Paths
    from deskmail.sandbox import start_sandbox
    from deskmail.setup import ManualSettings

    root = Path(tempfile.mkdtemp(prefix="deskmail-guibench-", dir=args.workdir))
    os.chmod(root, 0o755)
    sb = start_sandbox(root / "sandbox")
    results: dict[str, object] = {"platform": platform, "messages": args.messages}
    try:
        user = sb.create_user("guibench")
        t = time.perf_counter()
        sb.fill_maildir(user.email, mailbox_gen.messages(args.messages))
        print(f"mailbox of {args.messages} generated in {time.perf_counter() - t:.1f} s", flush=True)
        home = root / "home"
        password_file = root / "pw"
        password_file.write_text(user.password)
        app = Deskmail(Paths(home / "config", home / "data"))
        app.add_account(app.build_account(ManualSettings(
            email=user.email, name="bench", in_host=sb.host, in_port=sb.imaps_port, in_security="ssl",
            smtp_host=sb.host, smtp_port=sb.submission_port, smtp_security="starttls", ca_file=str(sb.ca_file),
            password_command=f"cat {password_file}")))
        t = time.perf_counter()
        run = app.sync()
        assert not run.failures, run.failures
        print(f"first sync of {app.count_messages()} messages: {time.perf_counter() - t:.1f} s", flush=True)
        app.close()

        starts = [run_child(home, "paint", env) for _ in range(args.runs)]
        painted = [float(s["painted_s"]) for s in starts]  # type: ignore[arg-type]
        rss = [float(s["rss_mb"]) for s in starts]  # type: ignore[arg-type]
        results["start_to_painted_s"] = {"runs": painted, "median": statistics.median(painted)}
        results["rss_mb"] = {"runs": rss, "median": statistics.median(rss)}
        print(f"start → inbox painted ({starts[0]['rows']} rows, {platform}): median "
              f"{statistics.median(painted):.3f} s over {args.runs} (min {min(painted):.3f}, max {max(painted):.3f}); "
              f"RSS {statistics.median(rss):.1f} MB", flush=True)
        settled = run_child(home, "settle", env)
        results["rss_settled_mb"] = settled["rss_settled_mb"]
        print(f"RSS 4 s after the paint (start-up sync done): {settled['rss_settled_mb']:.1f} MB", flush=True)
        opened = run_child(home, "open", env)
        times = [float(x) for x in opened["open_ms"]]  # type: ignore[attr-defined]
        results["open_message_ms"] = {"runs": times, "median": statistics.median(times), "max": max(times)}
        print(f"open a message: median {statistics.median(times):.1f} ms, max {max(times):.1f} ms "
              f"({len(times)} messages)", flush=True)
        big = times[-3:]
        results["open_big_html_ms"] = {"runs": big, "html_kb": opened["big_html_kb"]}
        print("  the 3 largest HTML bodies among the newest 3,000: " + ", ".join(
            f"{t:.0f} ms ({kb:.0f} KB of HTML)" for t, kb in zip(big, opened["big_html_kb"], strict=True)), flush=True)
        slowest = sorted(zip(times, opened["open_sizes"], strict=True), reverse=True)[:3]  # type: ignore[call-overload]
        print("  slowest: " + ", ".join(f"{t:.0f} ms ({size / 1024:.0f} KB)" for t, size in slowest), flush=True)
        searched = run_child(home, "search", env)
        every = [t for runs in searched["search_ms"].values() for t in runs]  # type: ignore[attr-defined]
        results["search_ms"] = {"runs": searched["search_ms"], "rows": searched["search_rows"],
                                "median": statistics.median(every), "max": max(every)}
        print(f"search, last key to results painted: median {statistics.median(every):.1f} ms, max "
              f"{max(every):.1f} ms ({len(every)} searches)", flush=True)
        for query, runs in searched["search_ms"].items():  # type: ignore[attr-defined]
            print(f"  {query!r}: {searched['search_rows'][query]} rows, "  # type: ignore[index]
                  f"{', '.join(f'{t:.0f}' for t in runs)} ms", flush=True)
    finally:
        sb.stop()
    stalls = scroll_stalls(args.scroll_rows, root)
    results["scroll"] = stalls
    print(f"scrolling {args.scroll_rows} rows: {stalls['steps']:.0f} steps, median {stalls['median_ms']:.1f} ms, "
          f"p99 {stalls['p99_ms']:.1f} ms, longest stall {stalls['max_ms']:.1f} ms", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    subprocess.run(["rm", "-rf", str(root)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

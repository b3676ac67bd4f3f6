"""Opening the largest HTML messages of a generated mailbox (issue 15: opening a message under 100 ms).

    xvfb-run -a -s '-screen 0 1280x800x24 -nolisten tcp' .venv/bin/python bench/html_open_bench.py 50000

Among the first N messages of :mod:`mailbox_gen` (the mailbox gui_bench syncs), the 60 with the largest
HTML part are rendered; the 5 largest renderings are then timed: "render" (the engine's part, done on a
worker in the application: parse, sanitize) and "show" (the GUI thread's part: the reader pane's
``SafeBrowser.setHtml`` until its next paint has been handled), under a real X server.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication

from deskmail.gui.reader import SafeBrowser
from deskmail.render import render

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mailbox_gen  # (a sibling module; bench/ is not a package)


def html_part_size(raw: bytes) -> int:
    """The encoded size of the message's HTML part (0: none), to pick the candidates cheaply."""
    at = raw.find(b"Content-Type: text/html")
    return raw.find(b"\n--", at) - at if at >= 0 else 0


class Painted(QObject):
    """Notes when the watched widget last handled a paint event."""

    at = 0.0

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            self.at = time.perf_counter()
        return False


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
    by_part = sorted(((html_part_size(mailbox_gen.message(i)), i) for i in range(count)), reverse=True)
    rendered = sorted(((len(render(mailbox_gen.message(i), prefer_html=True).html), i) for _, i in by_part[:60]),
                      reverse=True)
    app = QApplication([])
    browser = SafeBrowser()
    browser.resize(900, 500)
    browser.show()
    for _ in range(20):
        app.processEvents()
    painted = Painted()
    browser.viewport().installEventFilter(painted)
    for html_size, i in rendered[:5]:
        raw = mailbox_gen.message(i)
        start = time.perf_counter()
        reading = render(raw, prefer_html=True)
        rendered_at = time.perf_counter()
        painted.at = 0.0
        browser.setHtml(reading.html)
        while painted.at == 0.0:
            app.processEvents()
        print(f"message {i}: {len(raw) // 1024} KB, {html_size // 1024} KB of HTML: render "
              f"{(rendered_at - start) * 1000:.0f} ms, show {(painted.at - rendered_at) * 1000:.0f} ms", flush=True)
        browser.clear()
        app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())

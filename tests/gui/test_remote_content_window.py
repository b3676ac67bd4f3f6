"""F-33 in the desktop application: every message of the hostile-HTML set (tests/remote_sink.py) shown in
the reader, laid out whole and painted, while the local HTTP sink all their references point at records
each connection: zero until "Load remote content" is clicked for one message, then only that message's
image."""

from __future__ import annotations

from typing import Any

import pytest
from gui_helpers import synced_window
from PySide6.QtWidgets import QApplication

from deskmail.app import Deskmail
from remote_sink import Sink, messages

pytestmark = pytest.mark.servers


def test_hostile_html_set_in_the_reader_requests_nothing_until_allowed(qtbot: Any, dm: Deskmail, sandbox: Any,
                                                                       mail_user: Any) -> None:
    sink = Sink()
    try:
        corpus = messages(sink.url)
        assert sandbox.fill_maildir(mail_user.email, list(corpus.values())) == len(corpus)
        window = synced_window(qtbot, dm)
        assert window.model.rowCount() == len(corpus)
        pane, browser = window.reader_pane, window.reader
        rows: dict[str, int] = {}
        refused: set[str] = set()
        for row in range(window.model.rowCount()):
            s = window.model.summary(row)
            assert s is not None
            rows[s.subject.removeprefix("remote ")] = row
            window.list.selectRow(row)
            qtbot.waitUntil(lambda s=s: window.shown_id == s.id, timeout=10_000)  # type: ignore[misc]
            browser.document().size()  # the whole document laid out: every image asked for
            browser.grab()  # and painted
            QApplication.processEvents()
            assert "PWNED" not in browser.toHtml() and "PWNED" not in browser.documentTitle(), s.subject
            assert "PWNED" not in browser.toPlainText() and "PWNED" not in pane.header.text(), s.subject
            refused.update(browser.refused)
        assert set(rows) == set(corpus)
        qtbot.wait(500)  # time for anything Qt might have started on its own
        assert sink.requests == [] and sink.connections == 0
        assert not any(f":{sink.port}" in url for url in refused)  # the engine already took them out

        # The tracker's bar offers to load it; once clicked, the sink sees its one <img>, nothing else.
        tracker = window.model.summary(rows["tracker"])
        assert tracker is not None
        window.list.selectRow(rows["tracker"])
        qtbot.waitUntil(lambda: window.shown_id == tracker.id and pane.remote_bar.isVisibleTo(pane), timeout=10_000)
        pane.remote_once.click()
        qtbot.waitUntil(lambda: bool(browser.remote), timeout=10_000)
        browser.document().size()
        browser.grab()
        qtbot.wait(500)
        assert sink.requests == ["/tracker/pixel.png"] and sink.connections == 1
        assert list(browser.remote) == [f"{sink.url}/tracker/pixel.png"]

        # Another message shown after that loads nothing again (allowed per message, not remembered).
        window.list.selectRow(rows["svg"])
        qtbot.waitUntil(lambda: window.shown_id == window.model.summary(rows["svg"]).id,  # type: ignore[union-attr]
                        timeout=10_000)
        browser.document().size()
        browser.grab()
        qtbot.wait(300)
        assert sink.requests == ["/tracker/pixel.png"] and sink.connections == 1
        assert sink.alive()
    finally:
        sink.close()

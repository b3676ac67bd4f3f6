"""Search and conversations in the main window, against the sandbox's Dovecot."""

from __future__ import annotations

import os
from email.message import EmailMessage
from typing import Any

import pytest
from gui_helpers import message, synced_window
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtTest import QAbstractItemModelTester

from deskmail.app import Deskmail
from deskmail.gui.mainwindow import MainWindow
from deskmail.gui.models import View

pytestmark = pytest.mark.servers


def subjects(window: MainWindow) -> list[str]:
    return [window.model.data(window.model.index(r, 2)) for r in range(window.model.rowCount())]


def conversation_message(i: int, subject: str, *, reply_to: int | None = None, day: int = 1) -> bytes:
    m = EmailMessage()
    m["From"] = f"Person {i} <p{i}@example.org>"
    m["To"] = "you@example.test"
    m["Subject"] = subject if reply_to is None else f"Re: {subject}"
    m["Date"] = f"Mon, {day:02d} Jun 2026 10:{i:02d}:00 +0000"
    m["Message-ID"] = f"<conv-{i}-{os.getpid()}@example.org>"
    if reply_to is not None:
        m["In-Reply-To"] = f"<conv-{reply_to}-{os.getpid()}@example.org>"
        m["References"] = f"<conv-{reply_to}-{os.getpid()}@example.org>"
    m.set_content(f"Message {i} of the conversation.\n")
    return m.as_bytes().replace(b"\n", b"\r\n")


def test_search_box_finds_shows_and_ends(qtbot: Any, dm: Deskmail, sandbox: Any, mail_user: Any) -> None:
    sandbox.fill_maildir(mail_user.email, [
        message(1, subject="Flamingo budget for June", body="The pink birds cost more this year."),
        message(2, subject="Lunch", body="Shall we meet at noon?"),
        message(3, subject="Re: the budget", body="Flamingo numbers attached.", sender="Ada <ada@example.org>"),
    ])
    window = synced_window(qtbot, dm)
    assert window.model.rowCount() == 3
    QAbstractItemModelTester(window.model, QAbstractItemModelTester.FailureReportingMode.Fatal)

    # Ctrl+K goes to the box; typing runs the search once the typing pauses, off the GUI thread.
    qtbot.keyClick(window.list, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
    assert window.search_box.hasFocus()
    qtbot.keyClicks(window.search_box, "flamingo")
    qtbot.waitUntil(lambda: window.model.searching and window.model.rowCount() == 2, timeout=10_000)
    assert sorted(subjects(window)) == ["Flamingo budget for June", "Re: the budget"]
    assert window.search_status.text() == "2 found"
    # Columns do not re-sort results; the tooltip says where the message is and what matched.
    assert not window.list.isSortingEnabled()
    tip = window.model.data(window.model.index(0, 2), Qt.ItemDataRole.ToolTipRole)
    assert "a › INBOX" in tip and "flamingo" in tip.lower()

    # Fields narrow it; choosing a result reads it.
    window.search_box.setText("flamingo from:ada")
    qtbot.waitUntil(lambda: subjects(window) == ["Re: the budget"], timeout=10_000)
    window.list.selectRow(0)
    found = window.model.summary(0)
    assert found is not None
    qtbot.waitUntil(lambda: window.shown_id == found.id, timeout=5_000)
    assert "Flamingo numbers attached." in window.reader.toPlainText()
    # The index changing under the results (the message read, a flag set elsewhere) runs the search again;
    # the message read and its selection stay.
    before = window.last_token
    dm.set_flags([found.id], add=["flagged"])
    window.refresh_if_changed()
    assert window.last_token != before
    qtbot.waitUntil(lambda: "\\Flagged" in (window.model.summary(0) or found).flags, timeout=10_000)
    assert window.shown_id == found.id and window.selected_ids() == [found.id]
    assert "Flamingo numbers attached." in window.reader.toPlainText()

    # A query that cannot be read says why in the box and the status line, and the list stays.
    window.search_box.setText('"unclosed')
    qtbot.waitUntil(lambda: window.search_box.property("bad") is True, timeout=10_000)
    assert "quote" in window.search_status.text().lower() or "quote" in window.search_box.toolTip().lower()
    assert subjects(window) == ["Re: the budget"]

    # Nothing found is said so.
    window.search_box.setText("zeppelin")
    qtbot.waitUntil(lambda: window.model.searching and window.model.rowCount() == 0, timeout=10_000)
    assert window.search_status.text() == "Nothing found" and window.search_box.property("bad") is False

    # Escape ends the search: the folder again, sortable again.
    qtbot.keyClick(window.search_box, Qt.Key.Key_Escape)
    assert not window.model.searching and window.search_box.text() == ""
    assert window.model.rowCount() == 3 and window.list.isSortingEnabled() and window.search_status.text() == ""

    # A search, then a folder chosen: the folder wins and the box empties.
    window.search_box.setText("lunch")
    qtbot.waitUntil(lambda: window.model.searching and window.model.rowCount() == 1, timeout=10_000)
    account = window.folders.topLevelItem(1)  # (after All Inboxes)
    inbox = account.child(0)
    assert inbox.text(0).startswith("Inbox")
    window.folders.setCurrentItem(inbox)
    assert window.model.view == View("a", "INBOX") and not window.model.searching
    assert window.search_box.text() == "" and window.model.rowCount() == 3


def test_results_follow_new_mail(qtbot: Any, dm: Deskmail, sandbox: Any, mail_user: Any) -> None:
    sandbox.fill_maildir(mail_user.email, [message(1, subject="Kayak trip", body="Paddles ready.")])
    window = synced_window(qtbot, dm)
    window.search_box.setText("kayak")
    qtbot.waitUntil(lambda: window.model.searching and window.model.rowCount() == 1, timeout=10_000)
    sandbox.fill_maildir(mail_user.email, [message(2, subject="Kayak photos", body="From the trip.")])
    before = window.syncs_done
    window.get_mail()
    qtbot.waitUntil(lambda: window.syncs_done > before, timeout=60_000)
    window.refresh_if_changed()
    qtbot.waitUntil(lambda: window.model.rowCount() == 2, timeout=10_000)
    assert window.model.searching and sorted(subjects(window)) == ["Kayak photos", "Kayak trip"]


def test_conversations_group_and_open(qtbot: Any, dm: Deskmail, sandbox: Any, mail_user: Any,
                                      tmp_path: Any) -> None:
    sandbox.fill_maildir(mail_user.email, [
        conversation_message(1, "Boat plans", day=1),
        conversation_message(2, "Boat plans", reply_to=1, day=2),
        conversation_message(3, "Boat plans", reply_to=2, day=3),
        conversation_message(4, "Garden", day=2),
    ])
    window = synced_window(qtbot, dm)
    assert window.model.rowCount() == 4

    # G groups by conversation: two rows, the newest first; the conversation's row counts its messages.
    qtbot.keyClick(window.list, Qt.Key.Key_G)
    assert window.threads_action.isChecked() and window.model.threaded
    QAbstractItemModelTester(window.model, QAbstractItemModelTester.FailureReportingMode.Fatal)
    assert subjects(window) == ["Re: Boat plans  (3)", "Garden"]
    assert window.model.data(window.model.index(0, 2), Qt.ItemDataRole.FontRole).bold()
    assert not window.list.isSortingEnabled()

    # Choosing it reads the newest message and lists the conversation above the reader; choosing an
    # older message there reads that one.
    window.list.selectRow(0)
    newest = window.model.summary(0)
    assert newest is not None
    qtbot.waitUntil(lambda: window.shown_id == newest.id, timeout=5_000)
    qtbot.waitUntil(lambda: window.conversation.count() == 3 and window.conversation.isVisible(), timeout=5_000)
    assert window.conversation.currentRow() == 2
    window.conversation.setCurrentRow(0)
    qtbot.waitUntil(lambda: "Message 1 of the conversation." in window.reader.toPlainText(), timeout=5_000)

    # A single message's row shows no conversation list.
    window.list.selectRow(1)
    qtbot.waitUntil(lambda: not window.conversation.isVisible(), timeout=5_000)

    # Back to single messages: four rows again, sortable.
    qtbot.keyClick(window.list, Qt.Key.Key_G)
    assert not window.model.threaded and window.model.rowCount() == 4 and window.list.isSortingEnabled()
    assert window.model.rowCount(QModelIndex()) == 4

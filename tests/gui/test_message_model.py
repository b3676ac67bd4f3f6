"""The message list model: virtual paging over the index, checked with Qt's own model tester."""

from __future__ import annotations

from typing import Any

import pytest
from gui_helpers import message
from PySide6.QtCore import Qt
from PySide6.QtTest import QAbstractItemModelTester

from deskmail.app import Deskmail
from deskmail.gui.models import COLUMNS, MessageListModel, View, short_date

pytestmark = pytest.mark.servers


def test_model_pages_sorts_and_filters_in_sql(qtbot: Any, dm: Deskmail, sandbox: Any, mail_user: Any) -> None:
    n = 450  # more than two pages of 200
    sandbox.fill_maildir(mail_user.email, [message(i) for i in range(n)])
    run = dm.sync()
    assert not run.failures
    model = MessageListModel(dm)
    QAbstractItemModelTester(model, QAbstractItemModelTester.FailureReportingMode.Fatal)
    model.show(View("a", "INBOX"))
    assert model.rowCount() == n and model.columnCount() == len(COLUMNS)
    # Newest first by default; the last row comes from the third page.
    first = model.summary(0)
    last = model.summary(n - 1)
    assert first is not None and last is not None
    assert first.date >= last.date
    subject = model.index(n - 1, COLUMNS.index("subject")).data()
    assert subject == last.subject and subject.startswith("Message number")
    assert len(model._pages) <= model.KEPT_PAGES
    assert model.index(0, COLUMNS.index("sender")).data(Qt.ItemDataRole.FontRole).bold()  # unread: bold

    # Reading on page after page (keyset from the page before) gives exactly the index's order.
    model.show(View("a", "INBOX"))
    in_order = [model.summary(r).id for r in range(n)]  # type: ignore[union-attr]
    assert in_order == [m.id for m in dm.list_messages(account="a", folder="INBOX", limit=n)]

    model.sort(COLUMNS.index("subject"), Qt.SortOrder.AscendingOrder)
    subjects = [model.index(r, COLUMNS.index("subject")).data() for r in range(n)]
    assert subjects == sorted(subjects, key=str.casefold)

    # Read one: it leaves the unread filter, and it is no longer bold.
    dm.mark_read([first.id])
    model.show(View("a", "INBOX", unread_only=True))
    assert model.rowCount() == n - 1
    assert all(model.summary(r).id != first.id for r in range(n - 1))  # type: ignore[union-attr]
    model.show(View(None, "INBOX"))  # the unified inbox: every account's INBOX
    assert model.rowCount() == n
    row = model.row_of(first.id)
    assert row is not None and not model.index(row, 1).data(Qt.ItemDataRole.FontRole)


def test_short_date() -> None:
    import datetime as dt

    today = dt.date(2026, 12, 4)
    assert short_date("", today) == ""
    assert short_date("not a date", today) == "not a date"
    assert short_date("2019-03-01T10:00:00", today) == "2019-03-01"
    assert short_date("2026-06-01T10:00:00", today) == "01 Jun 10:00"
    assert short_date("2026-12-04T09:05:00", today) == "09:05"


def test_qt_keeps_none_alive(qtbot: Any) -> None:
    """Qt reading cells a Python model leaves empty (None), as the message list does for every role it does
    not draw, must not eat references to None: PySide6 6.12.0 did, and the program died after some
    thousands of cells ("deallocating None"). pyproject.toml keeps that version out."""
    import sys

    from PySide6.QtCore import QAbstractTableModel, QModelIndex

    class Empty(QAbstractTableModel):
        def rowCount(self, parent: Any = QModelIndex()) -> int:  # noqa: B008
            return 10

        def columnCount(self, parent: Any = QModelIndex()) -> int:  # noqa: B008
            return 2

        def data(self, index: Any, role: int = 0) -> None:
            return None

    model = Empty()
    before = sys.getrefcount(None)
    for i in range(20000):
        model.index(i % 10, 1).data(Qt.ItemDataRole.FontRole)  # through C++ into the Python data()
    assert sys.getrefcount(None) >= before - 100

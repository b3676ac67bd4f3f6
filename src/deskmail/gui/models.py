"""The message list as a virtual model: rows are fetched from the index a page at a time.

Qt asks for cells of the visible rows only; the model keeps a few pages of
:class:`~deskmail.model.MessageSummary` rows and asks the façade for the page a row falls in
(``offset``/``limit``; sorting and filtering happen in SQL). A 100,000-row folder therefore costs
one COUNT and the pages actually looked at, never a list of every message.

The same model shows a folder by conversation (one row per thread, its newest message standing for
it: :class:`~deskmail.model.ThreadSummary` pages, likewise read lazily) and the results of a search
(a ranked list of at most a few hundred hits, held whole).
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import QAbstractTableModel, QByteArray, QMimeData, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QFont

from deskmail.app import Deskmail
from deskmail.gui.common import tr
from deskmail.model import MessageSummary, SearchHit, ThreadSummary

Index = QModelIndex | QPersistentModelIndex

IDS_MIME = "application/x-deskmail-message-ids"
COLUMNS = ("flags", "sender", "subject", "date", "size")
# Sorting a column asks the index for this order; columns without one keep the current order.
SORT_KEYS = {("sender", Qt.SortOrder.AscendingOrder): "sender", ("sender", Qt.SortOrder.DescendingOrder): "sender",
             ("subject", Qt.SortOrder.AscendingOrder): "subject", ("subject", Qt.SortOrder.DescendingOrder): "subject",
             ("date", Qt.SortOrder.AscendingOrder): "date_asc", ("date", Qt.SortOrder.DescendingOrder): "date"}


@dataclass(frozen=True, slots=True)
class View:
    """Which messages the list shows: an account's folder, or a folder of every account (``account=None``)."""

    account: str | None
    folder: str | None
    unread_only: bool = False
    flagged_only: bool = False


def short_date(iso: str, today: dt.date | None = None) -> str:
    """Today's mail by time, this year's by day and month, older by full date (like Thunderbird)."""
    if not iso:
        return ""
    try:
        when = dt.datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if when.tzinfo is not None:
        when = when.astimezone()
    today = today or dt.date.today()
    if when.date() == today:
        return when.strftime("%H:%M")
    if when.year == today.year:
        return when.strftime("%d %b %H:%M")
    return when.strftime("%Y-%m-%d")


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def flag_marks(flags: str) -> str:
    return ("★" if "\\Flagged" in flags else "") + ("↩" if "\\Answered" in flags else "")


class MessageListModel(QAbstractTableModel):
    PAGE = 200
    KEPT_PAGES = 20

    def __init__(self, app: Deskmail, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._app = app
        self._view: View | None = None
        self._sort = "date"
        self._threaded = False
        self._hits: list[SearchHit] | None = None  # a search's results, shown instead of the view
        self._count = 0
        self._pages: OrderedDict[int, list[MessageSummary] | list[ThreadSummary]] = OrderedDict()
        self._bold = QFont()
        self._bold.setBold(True)

    # --- what is shown ---------------------------------------------------------------------------

    @property
    def view(self) -> View | None:
        return self._view

    @property
    def threaded(self) -> bool:
        return self._threaded

    @property
    def searching(self) -> bool:
        return self._hits is not None

    def show(self, view: View | None) -> None:
        """The messages of ``view`` (a search shown until now ends)."""
        self.beginResetModel()
        self._view = view
        self._hits = None
        self._reload()
        self.endResetModel()

    def show_hits(self, hits: list[SearchHit]) -> None:
        """A search's results, in the search's order (newest first), instead of the view's messages."""
        self.beginResetModel()
        self._hits = list(hits)
        self._pages.clear()
        self._count = len(self._hits)
        self.endResetModel()

    def set_threaded(self, threaded: bool) -> None:
        """One row per conversation (newest first), or one per message."""
        if threaded == self._threaded:
            return
        self.beginResetModel()
        self._threaded = threaded
        if self._hits is None:
            self._reload()
        self.endResetModel()

    def refresh(self) -> None:
        """Read the list again (after a sync or a change); the view stays."""
        self.beginResetModel()
        self._reload()
        self.endResetModel()

    def _reload(self) -> None:
        self._pages.clear()
        v = self._view
        if v is None:
            self._count = 0
        elif self._threaded:
            self._count = self._app.count_threads(account=v.account, folder=v.folder)
        else:
            self._count = self._app.count_messages(
                account=v.account, folder=v.folder, unread_only=v.unread_only, flagged_only=v.flagged_only)

    def summary(self, row: int) -> MessageSummary | None:
        """The message a row shows (a conversation's row: its newest message here)."""
        if self._hits is not None:
            return self._hits[row].message if 0 <= row < len(self._hits) else None
        found = self._row(row)
        return found.latest if isinstance(found, ThreadSummary) else found

    def conversation(self, row: int) -> ThreadSummary | None:
        """The conversation a row shows, when the list is by conversation."""
        found = self._row(row) if self._hits is None and self._threaded else None
        return found if isinstance(found, ThreadSummary) else None

    def hit(self, row: int) -> SearchHit | None:
        return self._hits[row] if self._hits is not None and 0 <= row < len(self._hits) else None

    def _row(self, row: int) -> MessageSummary | ThreadSummary | None:
        if not 0 <= row < self._count or self._view is None:
            return None
        page_no = row // self.PAGE
        page = self._pages.get(page_no)
        if page is None:
            page = self._read_page(self._view, page_no)
            self._pages[page_no] = page
            while len(self._pages) > self.KEPT_PAGES:
                self._pages.popitem(last=False)
        else:
            self._pages.move_to_end(page_no)
        i = row - page_no * self.PAGE
        return page[i] if i < len(page) else None

    def _read_page(self, v: View, page_no: int) -> list[MessageSummary] | list[ThreadSummary]:
        # Scrolling on from a page already read: keyset paging from its last row (as fast deep in the
        # list as at the top). A jump (the scroll bar's thumb dragged far): an offset.
        before = self._pages.get(page_no - 1)
        last = before[-1] if before is not None and len(before) == self.PAGE else None
        offset = 0 if last is not None else page_no * self.PAGE
        if self._threaded:
            return self._app.list_threads(account=v.account, folder=v.folder, limit=self.PAGE, offset=offset,
                                          after=last if isinstance(last, ThreadSummary) else None)
        return self._app.list_messages(account=v.account, folder=v.folder, limit=self.PAGE, offset=offset,
                                       after=last if isinstance(last, MessageSummary) else None,
                                       sort=self._sort, unread_only=v.unread_only, flagged_only=v.flagged_only)

    def row_of(self, message_id: int, *, search_rows: int = 2000) -> int | None:
        """The row showing ``message_id`` among the first ``search_rows`` (to keep a selection)."""
        return self.rows_of({message_id}, search_rows=search_rows).get(message_id)

    def rows_of(self, message_ids: set[int], *, search_rows: int = 2000) -> dict[int, int]:
        """message id -> the row showing it, for those of ``message_ids`` among the first ``search_rows``."""
        found: dict[int, int] = {}
        for row in range(min(self._count, search_rows)):
            s = self.summary(row)
            if s is not None and s.id in message_ids:
                found[s.id] = row
                if len(found) == len(message_ids):
                    break
        return found

    # --- Qt's side --------------------------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's default argument
        return 0 if parent.isValid() else self._count

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if orientation is Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole \
                and 0 <= section < len(COLUMNS):
            return {"flags": "", "sender": tr("From"), "subject": tr("Subject"), "date": tr("Date"),
                    "size": tr("Size")}[COLUMNS[section]]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        s = self.summary(index.row())
        if s is None:
            return None
        column = COLUMNS[index.column()]
        conversation = self.conversation(index.row()) if self._threaded else None
        if role == Qt.ItemDataRole.DisplayRole:
            if column == "flags":
                return flag_marks(s.flags)
            if column == "sender":
                return s.sender
            if column == "subject":
                subject = s.subject or tr("(no subject)")
                if conversation is not None and conversation.messages > 1:
                    return f"{subject}  ({conversation.messages})"
                return subject
            if column == "date":
                return short_date(s.date)
            return human_size(s.size)
        unread = conversation.unread > 0 if conversation is not None else "\\Seen" not in s.flags
        if role == Qt.ItemDataRole.FontRole and unread:
            return self._bold
        if role == Qt.ItemDataRole.ToolTipRole and column in ("sender", "subject"):
            if column == "sender":
                return s.sender
            found = self.hit(index.row())
            where = f"{s.account} › {s.folder}"
            return "\n".join(x for x in (s.subject, where, found.snippet if found is not None else "") if x)
        if role == Qt.ItemDataRole.TextAlignmentRole and column == "size":
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.UserRole:
            return s.id
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        base = super().flags(index)
        return base | Qt.ItemFlag.ItemIsDragEnabled if index.isValid() else base

    def mimeTypes(self) -> list[str]:
        return [IDS_MIME]

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:
        """The dragged messages' ids (to drop them on a folder)."""
        ids = []
        for row in sorted({i.row() for i in indexes}):
            s = self.summary(row)
            if s is not None:
                ids.append(str(s.id))
        data = QMimeData()
        data.setData(IDS_MIME, QByteArray(",".join(ids).encode()))
        return data

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Re-sort by a column, in SQL. Conversations and search results keep their order (newest first)."""
        key = SORT_KEYS.get((COLUMNS[column], order)) if 0 <= column < len(COLUMNS) else None
        if key is None or key == self._sort:
            return
        if self._threaded or self._hits is not None:
            self._sort = key  # (taken up when the list shows single messages of a folder again)
            return
        self.beginResetModel()  # every row moves: a reset is honest and as cheap (pages are re-read lazily)
        self._sort = key
        self._pages.clear()
        self.endResetModel()

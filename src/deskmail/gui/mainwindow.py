"""The main window: folders of every account, the message list, the reader pane, the status line.

The list and the folder counts follow the index: a timer compares the façade's change token
and refreshes only when something changed (a sync here or in another process, a flag set from
the terminal). Getting mail runs on a worker thread; its progress events become the status line.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import (
    QByteArray,
    QEvent,
    QItemSelection,
    QItemSelectionModel,
    QMimeData,
    QModelIndex,
    QObject,
    QPoint,
    QSettings,
    Qt,
    QThreadPool,
    QTimer,
    QUrl,
    Signal,
)
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QFont,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStyle,
    QTableView,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from deskmail import events
from deskmail.app import Deskmail, MessageView, SentMessage
from deskmail.codes import Code
from deskmail.errors import DeskmailError
from deskmail.gui.common import app_icon, show_error, std_icon, tr
from deskmail.gui.models import COLUMNS, IDS_MIME, MessageListModel, View, short_date
from deskmail.gui.reader import Reader, open_folder
from deskmail.gui.tasks import Task
from deskmail.mailbox import MASS_DELETE, FolderInfo

if TYPE_CHECKING:  # (types only: the renderer and the sync engine load when first used, after the window shows)
    from deskmail.gui.composer import ComposeWindow
    from deskmail.gui.outbox import OutboxDialog
    from deskmail.model import MessageSummary, SearchHit
    from deskmail.outbox.compose import Draft
    from deskmail.outbox.queue import OutboxEntry
    from deskmail.render import AttachmentInfo
    from deskmail.sync.runner import SyncRun

# Special folders first, in Thunderbird's order; then the rest by name.
SPECIAL_ORDER = {"INBOX": 0, "\\Drafts": 1, "\\Sent": 2, "\\Archive": 3, "\\Junk": 4, "\\Trash": 5}
SPECIAL_ICONS = {
    "INBOX": QStyle.StandardPixmap.SP_DriveNetIcon,
    "\\Drafts": QStyle.StandardPixmap.SP_FileDialogDetailedView,
    "\\Sent": QStyle.StandardPixmap.SP_ArrowForward,
    "\\Archive": QStyle.StandardPixmap.SP_DirClosedIcon,
    "\\Junk": QStyle.StandardPixmap.SP_MessageBoxWarning,
    "\\Trash": QStyle.StandardPixmap.SP_TrashIcon,
}
SYNC_EVERY_MS = 5 * 60 * 1000
SIGN_IN_AGAIN = frozenset({Code.OAUTH_SIGN_IN_AGAIN, Code.OAUTH_TOKEN_EXPIRED, Code.OAUTH_SCOPE_MISSING})
WATCH_INDEX_MS = 1500
SEARCH_LIMIT = 500  # results shown at most; more: the person is asked to narrow the search
# Typing pauses for this long before the search runs: a burst of keys (or a paste) is one search, and a
# person who stops typing sees results well inside the 200 ms.
SEARCH_PAUSE_MS = 60


def folder_key(f: FolderInfo) -> tuple[int, str]:
    kind = "INBOX" if f.name.upper() == "INBOX" else f.special_use
    return SPECIAL_ORDER.get(kind, 9), f.name.casefold()


def folder_label(name: str, unread: int) -> str:
    return f"{name} ({unread})" if unread else name


def dropped_ids(mime: QMimeData) -> list[int]:
    if not mime.hasFormat(IDS_MIME):
        return []
    text = bytes(mime.data(IDS_MIME).data()).decode("ascii", "replace")
    return [int(x) for x in text.split(",") if x.isdigit()]


class FolderTree(QTreeWidget):
    """The folders; messages dropped on a folder of their own account are moved there."""

    dropped = Signal(list, object)  # message ids, the View of the folder

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.setDropIndicatorShown(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DropOnly)

    def _target(self, event: QDropEvent | QDragMoveEvent) -> View | None:
        item = self.itemAt(event.position().toPoint())
        view = item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None
        return view if isinstance(view, View) and view.account else None

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasFormat(IDS_MIME):
            event.acceptProposedAction()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if self._target(event) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        target = self._target(event)
        ids = dropped_ids(event.mimeData())
        if target is not None and ids:
            event.acceptProposedAction()
            self.dropped.emit(ids, target)


class MainWindow(QMainWindow):
    def __init__(self, app: Deskmail, settings: QSettings | None = None) -> None:
        super().__init__()
        self.app = app
        self.settings = settings
        self.sync_task: Task | None = None
        self.watch_task: Task | None = None
        self.watch_stop = threading.Event()
        self.sync_after_watch = False
        self.push = True  # after each sync, watch the inboxes (IDLE) until the next one
        self.tasks: list[Task] = []
        self.last_token: tuple[int, int] | None = None
        self.online: bool | None = None
        self.closing = False
        self.notified: list[str] = []  # the new-mail notices given (newest last)
        self.syncs_done = 0  # finished "get mail" runs, failed ones included
        self.composers: list[ComposeWindow] = []
        self.draft_folders: set[tuple[str, str]] = set()  # (account, folder) of each account's Drafts
        self._first_paint_watchers: list[QObject] = []
        self.wanted_id: int | None = None  # the message chosen in the list
        self.shown_id: int | None = None  # the message in the reader pane
        self.setWindowTitle("deskmail")
        self.setWindowIcon(app_icon())
        # The pool's default is one thread per core; a watch holds one for as long as it runs, and work
        # mostly waits on the network, not the processor: room for a sync, a send and reads at once.
        pool = QThreadPool.globalInstance()
        pool.setMaxThreadCount(max(pool.maxThreadCount(), 8))

        self.folders = FolderTree()
        self.folders.setHeaderHidden(True)
        self.folders.setMinimumWidth(180)
        self.model = MessageListModel(app, self)
        self.list = QTableView()
        self.list.setModel(self.model)
        self.list.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setSortingEnabled(True)
        self.list.sortByColumn(COLUMNS.index("date"), Qt.SortOrder.DescendingOrder)
        self.list.verticalHeader().hide()
        self.list.verticalHeader().setDefaultSectionSize(self.list.fontMetrics().height() + 8)
        self.list.setShowGrid(False)
        self.list.setWordWrap(False)
        self.list.setAlternatingRowColors(True)
        self.list.setDragEnabled(True)
        self.list.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._list_menu)
        self.list.activated.connect(self._activated)  # double-click or Enter
        header = self.list.horizontalHeader()
        header.setSectionResizeMode(COLUMNS.index("subject"), QHeaderView.ResizeMode.Stretch)
        header.resizeSection(COLUMNS.index("flags"), 36)
        header.resizeSection(COLUMNS.index("sender"), 220)
        header.resizeSection(COLUMNS.index("date"), 130)
        header.resizeSection(COLUMNS.index("size"), 70)
        header.setHighlightSections(False)

        self.reader_pane = Reader()
        self.reader = self.reader_pane.browser
        self.reader_pane.load_remote.connect(self.load_remote)
        self.reader_pane.save_attachment.connect(self.save_attachment)
        self.reader_pane.open_attachment.connect(self.open_attachment)
        # A conversation's messages, above the reader when the list is by conversation and the chosen
        # one has more than one: choosing one reads it.
        self.conversation = QListWidget()
        self.conversation.setObjectName("conversation")
        self.conversation.setAlternatingRowColors(True)
        self.conversation.hide()
        self.conversation.currentItemChanged.connect(self._conversation_chosen)
        self.conversation_of: int | None = None  # the thread shown there
        reader_box = QWidget()
        reader_layout = QVBoxLayout(reader_box)
        reader_layout.setContentsMargins(0, 0, 0, 0)
        reader_layout.setSpacing(0)
        reader_layout.addWidget(self.conversation)
        reader_layout.addWidget(self.reader_pane, 1)

        self.right = QSplitter(Qt.Orientation.Vertical)
        self.right.addWidget(self.list)
        self.right.addWidget(reader_box)
        self.right.setSizes([300, 400])
        self.split = QSplitter(Qt.Orientation.Horizontal)
        self.split.addWidget(self.folders)
        self.split.addWidget(self.right)
        self.split.setStretchFactor(1, 1)
        self.split.setSizes([220, 900])
        self.setCentralWidget(self.split)

        self.progress = QLabel()
        # What a search found, apart from progress: a sync's "Up to date" must not replace it.
        self.search_status = QLabel()
        self.search_status.setObjectName("search_status")
        self.state = QLabel()
        self.outbox_button = QPushButton()
        self.outbox_button.setFlat(True)
        self.outbox_button.hide()
        self.outbox_button.clicked.connect(self.show_outbox)
        self.outbox_dialog: OutboxDialog | None = None
        self.outbox_entries: list[OutboxEntry] = []
        self.sign_in_button = QPushButton()
        self.sign_in_button.hide()
        self.sign_in_button.clicked.connect(self.sign_in_again)
        self.sign_in_account = ""
        self.statusBar().addWidget(self.search_status)
        self.statusBar().addWidget(self.progress, 1)
        self.statusBar().addPermanentWidget(self.sign_in_button)
        self.statusBar().addPermanentWidget(self.outbox_button)
        self.statusBar().addPermanentWidget(self.state)
        self._actions()
        self.folders.currentItemChanged.connect(self._folder_chosen)
        self.folders.dropped.connect(self.move_to)
        self.list.selectionModel().currentRowChanged.connect(self._message_chosen)

        self.index_timer = QTimer(self)
        self.index_timer.timeout.connect(self.refresh_if_changed)
        self.index_timer.start(WATCH_INDEX_MS)
        # Without push (the watch stopped by an error), mail is still fetched every few minutes.
        self.sync_timer = QTimer(self)
        self.sync_timer.timeout.connect(self._timed_sync)
        self.sync_timer.start(SYNC_EVERY_MS)
        self._restore()
        self.reload_folders()

    def after_first_paint(self, work: Callable[[], None]) -> None:
        """Run ``work`` once the message list has been painted: the start-up sync (which loads the sync
        engine and opens connections) must not delay the first sight of the mail already here."""
        viewport = self.list.viewport()

        class FirstPaint(QObject):
            def eventFilter(self, obj: QObject, event: QEvent) -> bool:
                if event.type() == QEvent.Type.Paint:
                    viewport.removeEventFilter(self)
                    QTimer.singleShot(0, work)
                return False

        watcher = FirstPaint(self)
        self._first_paint_watchers.append(watcher)
        viewport.installEventFilter(watcher)

    # --- actions and keys ---------------------------------------------------------------------

    def _actions(self) -> None:
        def action(text: str, keys: Sequence[QKeySequence | QKeySequence.StandardKey | str], slot: object,
                   icon: QStyle.StandardPixmap | None = None) -> QAction:
            a = QAction(text, self)
            a.setShortcuts([QKeySequence(k) for k in keys])
            a.triggered.connect(slot)
            if icon is not None:
                a.setIcon(std_icon(self, icon))
            self.addAction(a)
            return a

        self.get_mail_action = action(tr("Get Mail"), ["F5"], self.get_mail, QStyle.StandardPixmap.SP_BrowserReload)
        self.delete_action = action(tr("Delete"), [QKeySequence.StandardKey.Delete], self.delete_selected,
                                    QStyle.StandardPixmap.SP_TrashIcon)
        self.read_action = action(tr("Mark as Read/Unread"), ["M"], self.toggle_read)
        self.flag_action = action(tr("Star"), ["S"], self.toggle_flag)
        self.next_unread_action = action(tr("Next Unread Message"), ["N"], self.next_unread)
        self.write_action = action(tr("Write"), ["Ctrl+N"], self.write, QStyle.StandardPixmap.SP_FileIcon)
        self.reply_action = action(tr("Reply"), ["Ctrl+R"], lambda: self.reply(False),
                                   QStyle.StandardPixmap.SP_ArrowBack)
        self.reply_all_action = action(tr("Reply All"), ["Ctrl+Shift+R"], lambda: self.reply(True))
        self.forward_action = action(tr("Forward"), ["Ctrl+L"], self.forward, QStyle.StandardPixmap.SP_ArrowRight)
        self.add_account_action = action(tr("Add Mail Account…"), [], self.add_account)
        self.settings_action = action(tr("Account Settings…"), [], self.account_settings)
        self.quit_action = action(tr("Quit"), [QKeySequence.StandardKey.Quit], self.close)
        self.outbox_action = action(tr("Outbox…"), [], self.show_outbox)
        self.search_action = action(tr("Search"), ["Ctrl+F", "Ctrl+K"], self.focus_search)
        self.threads_action = action(tr("Group by Conversation"), ["G"], self.set_threaded)
        self.threads_action.setCheckable(True)

        self.search_box = QLineEdit()
        self.search_box.setObjectName("search")
        self.search_box.setPlaceholderText(tr("Search all mail (words, from:, subject:, is:unread, date:…)"))
        self.search_box.setToolTip(tr("Words, \"a phrase\", from:, to:, subject:, has:attachment, is:unread, "
                                      "date:2026-01..2026-03, folder:, account:, -word, OR"))
        self.search_box.setClearButtonEnabled(True)
        self.search_box.setMinimumWidth(340)
        self.search_timer = QTimer(self)
        self.search_timer.setSingleShot(True)
        self.search_timer.setInterval(SEARCH_PAUSE_MS)
        self.search_timer.timeout.connect(self.run_search)
        self.search_box.textChanged.connect(lambda _text: self.search_timer.start())
        self.search_box.returnPressed.connect(self.run_search)
        self.search_generation = 0  # only the newest search's results are shown
        escape = QAction(self.search_box)
        escape.setShortcut(QKeySequence(Qt.Key.Key_Escape))
        escape.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        escape.triggered.connect(self.end_search)
        self.search_box.addAction(escape)

        bar = self.addToolBar(tr("Mail"))
        bar.setObjectName("mail-toolbar")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for a in (self.get_mail_action, self.write_action, self.reply_action, self.reply_all_action,
                  self.forward_action, self.delete_action):
            bar.addAction(a)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        bar.addWidget(spacer)
        bar.addWidget(self.search_box)
        menu = self.menuBar()
        file_menu = menu.addMenu(tr("&File"))
        for a in (self.get_mail_action, self.add_account_action, self.settings_action):
            file_menu.addAction(a)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        message_menu = menu.addMenu(tr("&Message"))
        for a in (self.write_action, self.reply_action, self.reply_all_action, self.forward_action, self.read_action,
                  self.flag_action, self.next_unread_action, self.delete_action):
            message_menu.addAction(a)
        message_menu.addSeparator()
        message_menu.addAction(self.outbox_action)
        view_menu = menu.addMenu(tr("&View"))
        view_menu.addAction(self.threads_action)
        view_menu.addAction(self.search_action)

    # --- folders ----------------------------------------------------------------------------

    def reload_folders(self) -> None:
        """Rebuild the folder tree (counts included), keeping the chosen folder."""
        current = self._current_view()
        self.folders.blockSignals(True)
        self.folders.clear()
        bold = QFont()
        bold.setBold(True)
        unified = QTreeWidgetItem([tr("All Inboxes")])
        unified.setData(0, Qt.ItemDataRole.UserRole, View(None, "INBOX"))
        unified.setIcon(0, std_icon(self, QStyle.StandardPixmap.SP_DriveNetIcon))
        self.folders.addTopLevelItem(unified)
        total_unread = 0
        select: QTreeWidgetItem | None = None
        self.draft_folders = set()
        for name, account in self.app.accounts().items():
            top = QTreeWidgetItem([account.email if account.email != name else name])
            top.setData(0, Qt.ItemDataRole.UserRole, None)
            top.setIcon(0, std_icon(self, QStyle.StandardPixmap.SP_ComputerIcon))
            self.folders.addTopLevelItem(top)
            try:
                infos = self.app.folders(name)
            except DeskmailError:
                infos = []
            items: dict[str, QTreeWidgetItem] = {}
            self.draft_folders |= {(name, f.name) for f in infos if f.special_use == "\\Drafts"}
            for f in sorted(infos, key=folder_key):
                if not f.sync:
                    continue
                parent_name, _, leaf = f.name.rpartition(f.delimiter) if f.delimiter else ("", "", f.name)
                label = tr("Inbox") if f.name.upper() == "INBOX" else leaf
                item = QTreeWidgetItem([folder_label(label, f.unread)])
                view = View(name, f.name)
                item.setData(0, Qt.ItemDataRole.UserRole, view)
                kind = "INBOX" if f.name.upper() == "INBOX" else f.special_use
                item.setIcon(0, std_icon(self, SPECIAL_ICONS.get(kind, QStyle.StandardPixmap.SP_DirIcon)))
                if f.unread:
                    item.setFont(0, bold)
                if f.name.upper() == "INBOX":
                    total_unread += f.unread
                # Inside its parent folder when that is shown (sorted parents come first), else at the top.
                (items.get(parent_name) or top).addChild(item)
                items[f.name] = item
                if view == current:
                    select = item
            top.setExpanded(True)
        self.folders.expandAll()
        unified.setText(0, folder_label(tr("All Inboxes"), total_unread))
        if total_unread:
            unified.setFont(0, bold)
        if current == View(None, "INBOX") or select is None:
            select = unified
        self.folders.setCurrentItem(select)
        self.folders.blockSignals(False)
        if self.model.view != select.data(0, Qt.ItemDataRole.UserRole):
            self._folder_chosen(select, None)

    def _current_view(self) -> View | None:
        item = self.folders.currentItem()
        view = item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None
        return view if isinstance(view, View) else None

    def _folder_chosen(self, item: QTreeWidgetItem | None, _previous: QTreeWidgetItem | None) -> None:
        view = item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None
        if not isinstance(view, View):
            return
        if self.search_box.text():
            self.search_box.blockSignals(True)  # choosing a folder ends the search
            self.search_box.clear()
            self.search_box.blockSignals(False)
            self._query_problem(None)
        self.model.show(view)
        self._list_shape_changed()
        self._show_message(None)
        self.list.scrollToTop()

    # --- search and conversations -----------------------------------------------------------

    def focus_search(self) -> None:
        self.search_box.setFocus()
        self.search_box.selectAll()

    def run_search(self, *, again: bool = False) -> None:
        """Search every account for what the box says, off the GUI thread; the list shows the results.
        An empty box shows the folder again. ``again``: the same query once more, the index having changed
        (a message read, new mail): the selection and the message shown stay."""
        self.search_timer.stop()
        query = self.search_box.text().strip()
        self.search_generation += 1
        generation = self.search_generation
        if not query:
            self.end_search()
            return

        def shown(hits: list[SearchHit]) -> None:
            if generation != self.search_generation:
                return  # typed on since: a newer search is coming
            self._query_problem(None)
            kept = self._selection() if again else None
            self.model.show_hits(hits)
            self._list_shape_changed()
            if kept is not None:
                self._reselect(*kept)
            else:
                self._show_message(None)
            if len(hits) >= SEARCH_LIMIT:
                self.search_status.setText(tr("The first {n} found are shown: add words to narrow the search.")
                                           .format(n=len(hits)))
            else:
                self.search_status.setText(tr("{n} found").format(n=len(hits)) if hits else tr("Nothing found"))

        def failed(exc: DeskmailError) -> None:
            if generation == self.search_generation:
                self._query_problem(exc)

        task = Task(lambda _task: self.app.search(query, limit=SEARCH_LIMIT))
        task.done.connect(shown)
        task.failed.connect(failed)
        self._run(task)

    def end_search(self) -> None:
        """Back to the chosen folder's messages (Escape in the box, or the box emptied)."""
        self.search_generation += 1
        self._query_problem(None)
        if self.search_box.text():
            self.search_box.blockSignals(True)
            self.search_box.clear()
            self.search_box.blockSignals(False)
        if self.model.searching:
            self.model.show(self._current_view())
            self._list_shape_changed()
            self._show_message(None)
        self.search_status.clear()

    def _query_problem(self, exc: DeskmailError | None) -> None:
        """A query that cannot be read: the box says so (red edge, the reason as its tooltip and in the
        status line); the list keeps what it showed."""
        self.search_box.setProperty("bad", exc is not None)
        self.search_box.setStyleSheet("" if exc is None else "QLineEdit#search { border: 2px solid #c62828; }")
        if exc is not None:
            self.search_box.setToolTip(f"{exc.what}\n{exc.remedy}" if exc.remedy else exc.what)
            self.search_status.setText(exc.what)

    def set_threaded(self, threaded: bool) -> None:
        """One row per conversation, or one per message (View ▸ Group by Conversation; remembered)."""
        if self.threads_action.isChecked() != threaded:
            self.threads_action.setChecked(threaded)
        self.model.set_threaded(threaded)
        self._list_shape_changed()
        self._show_message(None)
        if self.settings is not None:
            self.settings.setValue("main/threaded", threaded)

    def _list_shape_changed(self) -> None:
        """Columns sort a folder's single messages; conversations and search results come newest first."""
        sortable = not self.model.threaded and not self.model.searching
        self.list.setSortingEnabled(sortable)
        self.list.horizontalHeader().setSortIndicatorShown(sortable)

    def _show_conversation(self, row: int, summary: MessageSummary) -> None:
        """Above the reader: the conversation's messages, when the row stands for more than one."""
        thread = self.model.conversation(row)
        if thread is None or thread.messages < 2:
            self.conversation_of = None
            self.conversation.hide()
            return
        if self.conversation_of == thread.thread:
            return
        self.conversation_of = thread.thread
        number = thread.thread

        def listed(messages: list[MessageSummary]) -> None:
            if self.conversation_of != number:
                return
            self.conversation.blockSignals(True)
            self.conversation.clear()
            bold = QFont()
            bold.setBold(True)
            for m in messages:
                item = QListWidgetItem(f"{short_date(m.date)}   {m.sender}   —   {m.subject or tr('(no subject)')}")
                item.setData(Qt.ItemDataRole.UserRole, m)
                item.setToolTip(f"{m.account} › {m.folder}")
                if "\\Seen" not in m.flags:
                    item.setFont(bold)
                self.conversation.addItem(item)
                if m.id == summary.id:
                    self.conversation.setCurrentItem(item)
            self.conversation.blockSignals(False)
            # As tall as its rows, up to six: a two-message conversation leaves the reader its room.
            rows = min(self.conversation.count(), 6)
            self.conversation.setFixedHeight(rows * max(self.conversation.sizeHintForRow(0), 1)
                                             + 2 * self.conversation.frameWidth())
            self.conversation.show()

        task = Task(lambda _task: self.app.thread(summary.id))
        task.done.connect(listed)
        task.failed.connect(lambda _exc: self.conversation.hide())
        self._run(task)

    def _conversation_chosen(self, item: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        m = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        if m is not None:
            self._read(m)

    # --- the message list and the reader ----------------------------------------------------

    def selected_ids(self) -> list[int]:
        rows = sorted({i.row() for i in self.list.selectionModel().selectedRows()})
        ids = []
        for row in rows:
            s = self.model.summary(row)
            if s is not None:
                ids.append(s.id)
        return ids

    def _activated(self, index: QModelIndex) -> None:
        """A draft, opened as a person opens one: in the composer, to go on writing."""
        s = self.model.summary(index.row())
        if s is not None and (s.account, s.folder) in self.draft_folders:
            self.resume_draft(s.account, s.message_id)

    def resume_draft(self, account: str, ref: str) -> None:
        task = Task(lambda _task: self.app.open_draft(ref, account))
        task.done.connect(lambda found: self.write(found[1], found[0], draft_ref=ref))
        task.failed.connect(lambda exc: show_error(self, exc))
        self._run(task)

    def _message_chosen(self, current: object, _previous: object) -> None:
        """Read the chosen message off the GUI thread (a 20 MB message must not freeze the window); only the
        last one chosen is shown when several reads overlap (arrowing quickly down the list)."""
        row = self.list.currentIndex().row()
        s = self.model.summary(row) if row >= 0 else None
        if s is None:
            self.wanted_id = None
            self.conversation_of = None
            self.conversation.hide()
            self._show_message(None)
            return
        if self.model.threaded:
            self._show_conversation(row, s)
        self._read(s)

    def _read(self, s: MessageSummary) -> None:
        self.wanted_id = s.id

        def shown(view: MessageView) -> None:
            if self.wanted_id == s.id:
                self._show_message(view)

        def failed(exc: DeskmailError) -> None:
            if self.wanted_id == s.id:
                self._show_message(None)
                self.reader.setPlainText(str(exc))

        task = Task(lambda _task: self.app.read_message(s.id, prefer_html=True))
        task.done.connect(shown)
        task.failed.connect(failed)
        self._run(task)
        if "\\Seen" not in s.flags:
            self._change(lambda: self.app.mark_read([s.id]))

    def _show_message(self, view: MessageView | None, remote: dict[str, tuple[str, bytes]] | None = None) -> None:
        self.shown_id = view.summary.id if view is not None else None
        self.reader_pane.show_message(view, remote)

    def load_remote(self, always: bool) -> None:
        """The person allowed remote images (for this message, or for its sender from now on): read the
        message again with them allowed, fetch them off the GUI thread, show them."""
        view = self.reader_pane.view
        if view is None:
            return
        message_id, sender = view.summary.id, view.reading.sender

        def work(_task: Task) -> tuple[MessageView, dict[str, tuple[str, bytes]]]:
            if always and sender:
                self.app.allow_remote_content(sender)
            again = self.app.read_message(message_id, prefer_html=True, allow_remote=True)
            return again, self.app.remote_images(again.reading)

        def shown(result: tuple[MessageView, dict[str, tuple[str, bytes]]]) -> None:
            if self.wanted_id == message_id:
                self._show_message(*result)

        task = Task(work)
        task.done.connect(shown)
        task.failed.connect(lambda exc: show_error(self, exc))
        self._run(task)

    def save_attachment(self, attachment: AttachmentInfo | None, folder: str) -> None:
        """Save one attachment (None: all) into ``folder`` under a safe new name; nothing is overwritten."""
        view = self.reader_pane.view
        if view is None:
            return
        which = None if attachment is None else [attachment.index]
        message_id = view.summary.id
        task = Task(lambda _task: self.app.save_attachments(message_id, Path(folder), which=which))
        task.done.connect(lambda paths: self.statusBar().showMessage(
            tr("Saved {names}").format(names=", ".join(p.name for p in paths)), 8000))
        task.failed.connect(lambda exc: show_error(self, exc))
        self._run(task)

    def open_attachment(self, attachment: AttachmentInfo) -> None:
        """Open with the desktop's program for its type, from a private temporary folder."""
        view = self.reader_pane.view
        if view is None:
            return
        message_id = view.summary.id
        task = Task(lambda _task: self.app.save_attachments(message_id, open_folder(), which=[attachment.index]))
        task.done.connect(lambda paths: [QDesktopServices.openUrl(QUrl.fromLocalFile(str(p))) for p in paths])
        task.failed.connect(lambda exc: show_error(self, exc))
        self._run(task)

    def _change(self, work: Callable[[], object], *, send_now: bool = False) -> None:
        """A change to messages (flags, delete), off the GUI thread; the index timer shows the result.
        ``send_now``: get mail at once after it (a delete or move is carried out by the next sync, and only
        then leaves the list)."""
        task = Task(lambda _task: work())
        task.failed.connect(lambda exc: show_error(self, exc))
        task.done.connect(lambda _result: self.get_mail() if send_now else self.refresh_if_changed())
        self._run(task)

    # --- writing ---------------------------------------------------------------------------

    def write(self, draft: Draft | None = None, account: str | None = None, *, draft_ref: str = "") -> ComposeWindow:
        from deskmail.gui.composer import ComposeWindow

        view = self._current_view()
        window = ComposeWindow(self.app, draft, account or (view.account if view is not None else None), self,
                               draft_ref=draft_ref)
        window.setWindowFlag(Qt.WindowType.Window)
        window.sent.connect(self._message_sent)
        self.composers.append(window)
        window.show()
        return window

    def _message_sent(self, result: SentMessage) -> None:
        entry = result.entry
        if entry.state == "sent" and result.error is None:
            self.statusBar().showMessage(tr("Message sent"), 8000)
        elif entry.state in ("queued", "deferred"):
            self.statusBar().showMessage(tr("Not sent yet; it stays in the outbox and goes out as soon as the "
                                            "server can be reached."), 15_000)
        elif entry.state == "uncertain":
            self.decide_uncertain(entry)
        elif result.error is not None:
            show_error(self, result.error, tr("Outbox"))
        self.refresh_outbox()

    def decide_uncertain(self, entry: OutboxEntry) -> None:
        """Ask whether to send again a message the server may have taken; the answer is carried out off
        the GUI thread. Without an answer it waits in the outbox."""
        from deskmail.gui.outbox import ask_uncertain

        what = ask_uncertain(self, entry)
        if not what:
            return
        task = Task(lambda _task: self.app.retry(entry.id) if what == "retry" else self.app.mark_sent(entry.id))
        task.failed.connect(lambda exc: show_error(self, exc))
        task.ended.connect(self.refresh_outbox)
        self._run(task)

    def show_outbox(self) -> None:
        from deskmail.gui.outbox import OutboxDialog

        if self.outbox_dialog is None:
            self.outbox_dialog = OutboxDialog(self.app, self._run, self)
            self.outbox_dialog.changed.connect(self.refresh_outbox)
        self.outbox_dialog.refresh()
        self.outbox_dialog.show()
        self.outbox_dialog.raise_()

    def refresh_outbox(self) -> None:
        """The status bar's outbox button: hidden when nothing waits, red when something needs a decision."""
        from deskmail.gui.outbox import needs_attention

        try:
            entries = self.app.outbox()
        except DeskmailError:
            entries = []
        self.outbox_entries = entries
        attention = sum(1 for e in entries if needs_attention(e))
        self.outbox_button.setVisible(bool(entries))
        self.outbox_button.setText(tr("Outbox: {n}").format(n=len(entries)))
        self.outbox_button.setStyleSheet("color: red" if attention else "")
        self.outbox_button.setToolTip(tr("{n} need your decision").format(n=attention) if attention
                                      else tr("Waiting to be sent"))
        if self.outbox_dialog is not None and self.outbox_dialog.isVisible():
            self.outbox_dialog.refresh()

    def reply(self, reply_all: bool) -> None:
        self._start_from(lambda mid: self.app.reply(mid, reply_all=reply_all))

    def forward(self) -> None:
        self._start_from(self.app.forward)

    def _start_from(self, make: Callable[[int], tuple[str, Draft]]) -> None:
        message_id = self.shown_id
        if message_id is None:
            return
        task = Task(lambda _task: make(message_id))
        task.done.connect(lambda made: self.write(made[1], made[0]))
        task.failed.connect(lambda exc: show_error(self, exc))
        self._run(task)

    def toggle_read(self) -> None:
        ids = self.selected_ids()
        if not ids:
            return
        first = self.model.summary(self.list.currentIndex().row())
        read = first is None or "\\Seen" not in first.flags
        self._change(lambda: self.app.mark_read(ids, read))

    def toggle_flag(self) -> None:
        ids = self.selected_ids()
        if not ids:
            return
        first = self.model.summary(self.list.currentIndex().row())
        starred = first is not None and "\\Flagged" in first.flags
        self._change(lambda: self.app.set_flags(ids, remove=["flagged"]) if starred
                     else self.app.set_flags(ids, add=["flagged"]))

    def move_to(self, ids: list[int], target: View) -> None:
        """Move messages into a folder of their account (sent at once, like a delete)."""
        if not ids or target.folder is None:
            return
        folder = target.folder
        self._change(lambda: self.app.move(ids, folder), send_now=True)

    def _list_menu(self, where: QPoint) -> None:
        ids = self.selected_ids()
        first = self.model.summary(self.list.indexAt(where).row())
        if not ids or first is None:
            return
        menu = QMenu(self)
        for a in (self.reply_action, self.reply_all_action, self.forward_action):
            menu.addAction(a)
        menu.addSeparator()
        for a in (self.read_action, self.flag_action):
            menu.addAction(a)
        move = menu.addMenu(tr("Move To"))
        try:
            names = [f.name for f in sorted(self.app.folders(first.account), key=folder_key) if f.sync]
        except DeskmailError:
            names = []
        for name in names:
            if name != first.folder:
                move.addAction(name, partial(self.move_to, ids, View(first.account, name)))
        menu.addSeparator()
        menu.addAction(self.delete_action)
        menu.popup(self.list.viewport().mapToGlobal(where))

    def delete_selected(self) -> None:
        ids = self.selected_ids()
        if not ids:
            return
        # Delete on a few selected messages is its own confirmation (Thunderbird asks nothing either); on
        # many (a Ctrl+A too far) it asks, with the count, as the engine and the command line do.
        if len(ids) > MASS_DELETE:
            answer = QMessageBox.question(
                self, tr("Delete messages"),
                tr("Delete {n} messages? They go to the Trash (on the server at the next sync).").format(n=len(ids)),
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                return
        self._change(lambda: self.app.delete(ids, confirmed=True), send_now=True)

    def next_unread(self) -> None:
        start = self.list.currentIndex().row() + 1
        for row in range(start, self.model.rowCount()):
            s = self.model.summary(row)
            if s is not None and "\\Seen" not in s.flags:
                self.list.selectRow(row)
                return

    def refresh_if_changed(self) -> None:
        try:
            token = self.app.change_token()
        except DeskmailError:
            return
        if token == self.last_token:
            return
        self.last_token = token
        self.reload_folders()
        if self.model.searching:
            self.run_search(again=True)  # the results follow the index too
            return
        kept = self._selection()
        self.model.refresh()
        self._reselect(*kept)

    def _selection(self) -> tuple[int | None, set[int]]:
        """(the current message's id, the ids selected), to keep across a reload of the list."""
        current = self.list.currentIndex()
        keep = self.model.summary(current.row()) if current.isValid() else None
        return (keep.id if keep is not None else None), set(self.selected_ids())

    def _reselect(self, keep: int | None, chosen: set[int]) -> None:
        """The selection :meth:`_selection` noted, on the reloaded list's rows. The whole selection stays (a
        message read or new mail arriving must not undo a Ctrl+A), quietly: the reader keeps what it shows."""
        if keep is None and not chosen:
            return
        rows = self.model.rows_of(chosen | ({keep} if keep is not None else set()))
        selection = QItemSelection()
        last = self.model.columnCount() - 1
        for row in sorted(rows[i] for i in chosen if i in rows):
            selection.select(self.model.index(row, 0), self.model.index(row, last))
        model = self.list.selectionModel()
        model.blockSignals(True)
        if keep is not None and keep in rows:
            model.setCurrentIndex(self.model.index(rows[keep], 0), QItemSelectionModel.SelectionFlag.NoUpdate)
        model.select(selection, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        model.blockSignals(False)
        self.list.viewport().update()

    # --- getting mail -----------------------------------------------------------------------

    def warm_up(self) -> None:
        """Load the renderer in the background once the window is up, so the first message opened does not
        wait ~0.3 s for it (its HTML sanitizer and text converter are large)."""

        def work(_task: Task) -> None:
            import deskmail.render  # noqa: F401 - loading is the point

        self._run(Task(work))

    def get_mail(self) -> None:
        """Sync every account now. A running watch holds the store, so it is stopped first (within half a
        second) and started again after the sync."""
        if self.sync_task is not None and self.sync_task.running:
            return
        if not self.app.accounts():
            return
        if self.watch_task is not None and self.watch_task.running:
            self.sync_after_watch = True
            self.watch_stop.set()
            return

        def work(task: Task) -> SyncRun:
            return self.app.sync(listener=task.report, cancel=task.cancel)

        task = Task(work)
        task.progress.connect(self._sync_event)
        task.done.connect(self._synced)
        task.failed.connect(self._sync_failed)
        self.sync_task = task
        self.progress.setText(tr("Getting mail…"))
        self._run(task)

    def _timed_sync(self) -> None:
        if self.watch_task is None or not self.watch_task.running:
            self.get_mail()

    def start_watch(self) -> None:
        """Push: the inboxes wait in IDLE and sync as mail arrives (every folder every five minutes)."""
        if not self.push or (self.watch_task is not None and self.watch_task.running) or self.closing:
            return
        stop = self.watch_stop = threading.Event()

        def work(task: Task) -> dict[str, DeskmailError]:
            return self.app.watch(None, stop, lambda text: task.report(text), listener=task.report,
                                  interval=SYNC_EVERY_MS / 1000, notify_desktop=False)

        task = Task(work)
        task.progress.connect(self._sync_event)
        task.done.connect(self._watch_ended)
        task.failed.connect(self._sync_failed)
        task.ended.connect(self._after_watch)
        self.watch_task = task
        self._run(task)

    def _watch_ended(self, failures: dict[str, DeskmailError]) -> None:
        for name, exc in failures.items():
            self._set_online(False, f"{name}: {exc.what}")
            self.progress.setText(f"{name}: {exc.what}")
            self._offer_sign_in(name, exc)

    def _offer_sign_in(self, account: str, exc: DeskmailError) -> None:
        """An OAuth2 sign-in that stopped working is mended by signing in again, never by retrying: a button."""
        if exc.code not in SIGN_IN_AGAIN:
            return
        self.sign_in_account = account
        self.sign_in_button.setText(tr("Sign in again to {account}…").format(account=account))
        self.sign_in_button.setToolTip(exc.what)
        self.sign_in_button.show()

    def sign_in_again(self) -> None:
        name = self.sign_in_account
        if not name:
            return
        self.sign_in_button.setEnabled(False)
        self.progress.setText(tr("Waiting for the sign-in in your browser…"))
        task = Task(lambda t: self.app.oauth2_sign_in(name, open_url=t.report))
        task.progress.connect(lambda url: QDesktopServices.openUrl(QUrl(str(url))))
        task.done.connect(lambda _account: self._signed_in_again())
        task.failed.connect(lambda exc: show_error(self, exc))
        task.ended.connect(lambda: self.sign_in_button.setEnabled(True))
        self._run(task)

    def _signed_in_again(self) -> None:
        self.sign_in_button.hide()
        self.sign_in_account = ""
        self.statusBar().showMessage(tr("Signed in again"), 8000)
        self.get_mail()

    def _after_watch(self) -> None:
        if self.sync_after_watch and not self.closing:
            self.sync_after_watch = False
            self.get_mail()

    def _sync_event(self, event: events.Event | str) -> None:
        if isinstance(event, str):  # the watch's words for a person (watching, reconnecting…)
            self.progress.setText(event)
            return
        if isinstance(event, events.FolderStarted):
            self.progress.setText(tr("{account}: checking {folder}").format(account=event.account,
                                                                           folder=event.folder))
        elif isinstance(event, events.MessagesDownloaded):
            of = f" / {event.total}" if event.total else ""
            self.progress.setText(tr("{account}: {folder}: {done}{of} messages downloaded").format(
                account=event.account, folder=event.folder, done=event.done, of=of))
        elif isinstance(event, events.FolderFinished):
            if event.new and event.folder.upper() == "INBOX":
                self.new_mail(event.account, event.new)
            self.refresh_if_changed()
        elif isinstance(event, events.OutboxProgress):
            if event.state == "sending":
                self.progress.setText(tr("{account}: sending “{subject}”").format(account=event.account,
                                                                                  subject=event.subject))
            else:
                self.refresh_outbox()
                if event.state == "uncertain":
                    uncertain = [e for e in self.outbox_entries if e.id == event.id]
                    if uncertain:
                        self.decide_uncertain(uncertain[0])

    def new_mail(self, account: str, count: int) -> None:
        """Tell the person: a desktop notification, or the status line when the desktop has none."""
        from deskmail.gui.notify import desktop_notify

        text = (tr("1 new message in {account}") if count == 1 else tr("{n} new messages in {account}")).format(
            n=count, account=account)
        self.notified.append(text)
        if self.isActiveWindow() or not desktop_notify("deskmail", text):
            self.statusBar().showMessage(text, 10_000)

    def _synced(self, run: SyncRun) -> None:
        self.syncs_done += 1
        new = sum(r.new for results in run.results.values() for r in results)
        for failed_name, failure in run.failures.items():
            self._offer_sign_in(failed_name, failure)
        if run.failures:
            name, exc = next(iter(run.failures.items()))
            self._set_online(False, f"{name}: {exc.what}")
            self.progress.setText(tr("{account}: {what}").format(account=name, what=exc.what))
        else:
            self._set_online(True)
            self.progress.setText(tr("Up to date") if not new else tr("1 new message") if new == 1
                                  else tr("{n} new messages").format(n=new))
        self.refresh_if_changed()
        self.refresh_outbox()
        if not run.failures:
            self.start_watch()

    def _sync_failed(self, exc: DeskmailError) -> None:
        self.syncs_done += 1
        self._set_online(False, exc.what)
        self.progress.setText(exc.what)

    def _set_online(self, online: bool, why: str = "") -> None:
        self.online = online
        self.state.setText(tr("Online") if online else tr("Offline"))
        self.state.setToolTip(why)

    # --- accounts ---------------------------------------------------------------------------

    def add_account(self) -> None:
        from deskmail.gui.wizard import SetupWizard

        wizard = SetupWizard(self.app, self, ca_file=str(self.property("ca_file") or ""))
        wizard.account_added.connect(self._account_added)
        wizard.open()

    def _account_added(self, _account: object) -> None:
        self.reload_folders()
        self.get_mail()

    def account_settings(self) -> None:
        from deskmail.gui.settings import AccountSettings

        view = self._current_view()
        names = list(self.app.accounts())
        if not names:
            return
        name = view.account if view is not None and view.account else names[0]
        AccountSettings(self.app, name, self).open()

    # --- life ------------------------------------------------------------------------------

    def _run(self, task: Task) -> None:
        task.setParent(self)
        self.tasks = [t for t in self.tasks if t.running]
        self.tasks.append(task)
        task.start()

    def _restore(self) -> None:
        if self.settings is None:
            self.resize(1180, 760)
            return
        geometry = self.settings.value("main/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        else:
            self.resize(1180, 760)
        for key, widget in (("main/split", self.split), ("main/right", self.right)):
            state = self.settings.value(key)
            if isinstance(state, QByteArray):
                widget.restoreState(state)
        columns = self.settings.value("main/columns")
        if isinstance(columns, QByteArray):
            self.list.horizontalHeader().restoreState(columns)
        if self.settings.value("main/threaded") in (True, "true"):
            self.set_threaded(True)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Stop background work at its next safe point (nothing half-done is kept), then remember the layout."""
        self.closing = True
        self.watch_stop.set()
        for task in self.tasks:
            task.cancel.cancel()
        self.index_timer.stop()
        self.sync_timer.stop()
        QThreadPool.globalInstance().waitForDone(30_000)
        if self.settings is not None:
            self.settings.setValue("main/geometry", self.saveGeometry())
            self.settings.setValue("main/split", self.split.saveState())
            self.settings.setValue("main/right", self.right.saveState())
            self.settings.setValue("main/columns", self.list.horizontalHeader().saveState())
            self.settings.sync()
        super().closeEvent(event)

"""The outbox as a person sees it: what waits, what failed and why, and the one decision the engine never
takes alone — sending again a message that may already have been delivered."""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from deskmail.app import Deskmail
from deskmail.errors import DeskmailError
from deskmail.gui.common import esc, show_error, tr
from deskmail.gui.tasks import Task
from deskmail.outbox.queue import OutboxEntry


def state_text(entry: OutboxEntry, now: float | None = None) -> str:
    """The state in words, with what happens next."""
    if entry.state == "queued":
        return tr("Waiting to be sent")
    if entry.state == "sending":
        return tr("Sending…")
    if entry.state == "deferred":
        minutes = max(1, round((entry.next_attempt - (now or time.time())) / 60))
        return tr("Not sent yet: tried again in {n} min").format(n=minutes)
    if entry.state == "uncertain":
        return tr("Maybe sent: the server did not confirm")
    if entry.state == "failed":
        return tr("Not sent: refused")
    if entry.refused:
        return tr("Sent, but some recipients were refused")
    return tr("Sent; saving the copy in Sent")


def needs_attention(entry: OutboxEntry) -> bool:
    return entry.state in ("failed", "uncertain") or bool(entry.refused)


def ask_uncertain(parent: QWidget | None, entry: OutboxEntry) -> str:
    """"retry", "mark_sent" or "" (decide later) for a message the server may or may not have taken."""
    box = QMessageBox(QMessageBox.Icon.Question, tr("Was your message delivered?"), "",
                      QMessageBox.StandardButton.NoButton, parent)
    box.setTextFormat(Qt.TextFormat.RichText)
    what = tr("The connection ended before the server confirmed “{subject}”.").format(subject=entry.subject)
    why = tr("It may have been delivered. Sending it again could give the recipients two copies; ask one of "
             "them if unsure. It stays in the outbox until you decide.")
    box.setText(f"<b>{esc(what)}</b><p>{esc(why)}</p>")
    again = box.addButton(tr("Send Again"), QMessageBox.ButtonRole.AcceptRole)
    arrived = box.addButton(tr("It Was Delivered"), QMessageBox.ButtonRole.AcceptRole)
    box.addButton(tr("Decide Later"), QMessageBox.ButtonRole.RejectRole)
    box.exec()
    clicked = box.clickedButton()
    return "retry" if clicked is again else "mark_sent" if clicked is arrived else ""


class OutboxDialog(QDialog):
    """Every message of the outbox with its state; send now, send again, mark as delivered, remove."""

    changed = Signal()

    def __init__(self, app: Deskmail, run: Callable[[Task], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.app = app
        self._run = run  # the main window's way of starting a task (it keeps it alive)
        self.entries: list[OutboxEntry] = []
        self.busy = False
        self.setWindowTitle(tr("Outbox"))
        self.resize(760, 320)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels([tr("To"), tr("Subject"), tr("State")])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.setColumnWidth(0, 200)
        self.table.setColumnWidth(2, 260)
        self.table.itemSelectionChanged.connect(self._chosen)
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.send_now = QPushButton(tr("Send Now"))
        self.again = QPushButton(tr("Send Again"))
        self.delivered = QPushButton(tr("It Was Delivered"))
        self.remove = QPushButton(tr("Remove"))
        self.send_now.clicked.connect(self.flush)
        self.again.clicked.connect(lambda: self._act("retry"))
        self.delivered.clicked.connect(lambda: self._act("mark_sent"))
        self.remove.clicked.connect(self._remove)
        row = QHBoxLayout()
        for b in (self.send_now, self.again, self.delivered, self.remove):
            row.addWidget(b)
        row.addStretch(1)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        row.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.detail)
        layout.addLayout(row)
        self.refresh()

    def refresh(self) -> None:
        chosen = self.current()
        try:
            self.entries = self.app.outbox()
        except DeskmailError as exc:
            self.entries = []
            self.detail.setText(str(exc))
        self.table.setRowCount(len(self.entries))
        now = time.time()
        for row, e in enumerate(self.entries):
            for column, text in enumerate((", ".join(e.recipients or e.delivered), e.subject or tr("(no subject)"),
                                           state_text(e, now))):
                item = QTableWidgetItem(text)  # plain text: message data is never markup here
                if column == 2 and needs_attention(e):
                    item.setForeground(Qt.GlobalColor.red)
                self.table.setItem(row, column, item)
            if chosen is not None and e.id == chosen.id:
                self.table.selectRow(row)
        self._chosen()

    def current(self) -> OutboxEntry | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        return self.entries[rows[0].row()] if rows and rows[0].row() < len(self.entries) else None

    def _chosen(self) -> None:
        e = self.current()
        idle = not self.busy
        self.send_now.setEnabled(idle and any(x.state in ("queued", "deferred") for x in self.entries))
        self.again.setEnabled(idle and e is not None and e.state in ("failed", "uncertain", "deferred"))
        self.delivered.setEnabled(idle and e is not None and e.state == "uncertain")
        self.remove.setEnabled(idle and e is not None and e.state != "sending")
        if e is None:
            self.detail.setText(tr("{n} messages in the outbox.").format(n=len(self.entries)) if self.entries
                                else tr("The outbox is empty."))
            return
        lines = [state_text(e)]
        if e.last_error:
            lines.append(e.last_error)
        lines += [f"{who}: {why}" for who, why in e.refused.items()]
        self.detail.setText("\n".join(lines))

    def flush(self) -> None:
        self._start(Task(lambda _task: self.app.flush_outbox(everything=True)))

    def _act(self, what: str) -> None:
        e = self.current()
        if e is None:
            return
        if what == "retry" and e.state == "uncertain" and QMessageBox.question(
                self, tr("Send again?"),
                tr("“{subject}” may already have been delivered; the recipients could get it twice. Send it "
                   "again?").format(subject=e.subject)) != QMessageBox.StandardButton.Yes:
            return
        entry_id = e.id
        work = (lambda _task: self.app.retry(entry_id)) if what == "retry" else (
            lambda _task: self.app.mark_sent(entry_id))
        self._start(Task(work))

    def _remove(self) -> None:
        e = self.current()
        if e is None or QMessageBox.question(
                self, tr("Remove from the outbox?"),
                tr("“{subject}” will not be sent.").format(subject=e.subject)) != QMessageBox.StandardButton.Yes:
            return
        entry_id = e.id
        self._start(Task(lambda _task: self.app.remove_from_outbox(entry_id)))

    def _start(self, task: Task) -> None:
        self.busy = True
        self._chosen()
        task.failed.connect(lambda exc: show_error(self, exc))
        task.ended.connect(self._ended)
        self._run(task)

    def _ended(self) -> None:
        self.busy = False
        self.refresh()
        self.changed.emit()

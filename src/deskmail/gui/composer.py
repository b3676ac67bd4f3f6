"""Writing a message: recipients with completion, the identity to send from, text, attachments, Send.

The From chooser lists every identity of every account; choosing another swaps the signature (the engine's
``change_sender``), never the words typed. The cursor starts where the draft says the person writes
(``Draft.write_at``: below a reply's quote, above the signature).

Sending runs on a worker; on failure the window stays open with everything typed and the error with its
remedy above the text, so nothing is lost. (Drafts and the outbox queue come with the sending issue.)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QStringListModel, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QCompleter,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from deskmail.app import Deskmail, SentMessage
from deskmail.errors import DeskmailError
from deskmail.gui.common import app_icon, error_html, tr, wrapping_label
from deskmail.gui.tasks import Task
from deskmail.outbox.compose import Draft

if TYPE_CHECKING:
    from deskmail.outbox.drafts import DraftInfo


class AddressCompleter(QCompleter):
    """Completes the address being typed after the last comma."""

    def __init__(self, addresses: Sequence[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setModel(QStringListModel(list(addresses), self))
        self.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setFilterMode(Qt.MatchFlag.MatchContains)

    def splitPath(self, path: str) -> list[str]:
        return [path.rsplit(",", 1)[-1].strip()]

    def pathFromIndex(self, index: object) -> str:
        chosen = str(super().pathFromIndex(index))  # type: ignore[arg-type]
        line = self.widget()
        typed = line.text() if isinstance(line, QLineEdit) else ""
        head = typed.rsplit(",", 1)[0] + ", " if "," in typed else ""
        return head + chosen


class ComposeWindow(QMainWindow):
    sent = Signal(object)  # SentMessage

    def __init__(self, app: Deskmail, draft: Draft | None = None, account: str | None = None,
                 parent: QWidget | None = None, *, draft_ref: str = "") -> None:
        super().__init__(parent)
        self.app = app
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.resize(760, 620)
        self.sending: Task | None = None
        self.in_flight = False  # handed to the engine, no answer yet
        self.draft: Draft | None = None  # what the window was opened with (a reply's threading headers)
        self.draft_ref = draft_ref  # the saved draft this window continues ("" if none): replaced on each save
        self.saving: Task | None = None
        self.force_close = False  # closing without the "save the draft?" question (after a send)
        self.identity = QComboBox()  # every identity of every account; data: (account name, address)
        for name, a in app.accounts().items():
            for i in a.all_identities():
                self.identity.addItem(f"{i.label()} — {name}", (name, i.address))
        self._choose_identity(account, draft.sender if draft is not None else "")
        self.from_identity = self._chosen()  # the identity whose signature the text holds
        self.to, self.cc, self.bcc, self.subject = QLineEdit(), QLineEdit(), QLineEdit(), QLineEdit()
        try:
            known = app.correspondents()
        except DeskmailError:
            known = []
        for line in (self.to, self.cc, self.bcc):
            line.setCompleter(AddressCompleter(known, line))
            line.setPlaceholderText(tr("name@example.com, Name <name@example.com>"))
        self.body = QPlainTextEdit()
        self.attachments = QListWidget()
        self.attachments.setMaximumHeight(80)
        self.attachments.setVisible(False)  # shown once there is something attached
        self.attachments.model().rowsInserted.connect(self._attachments_changed)
        self.attachments.model().rowsRemoved.connect(self._attachments_changed)
        self.problem = wrapping_label(rich=True)
        self.problem.setStyleSheet("color: #c62828")
        self.send_button = QPushButton(tr("Send"))
        self.send_button.setDefault(True)
        self.save_button = QPushButton(tr("Save Draft"))
        self.save_button.setToolTip(tr("Keep it in Drafts to finish later (Ctrl+S)"))
        attach = QPushButton(tr("Attach…"))
        attach.setToolTip(tr("Or drop files on this window"))
        remove = QPushButton(tr("Remove attachment"))

        form = QFormLayout()
        form.addRow(tr("From:"), self.identity)
        form.addRow(tr("To:"), self.to)
        form.addRow(tr("Cc:"), self.cc)
        form.addRow(tr("Bcc:"), self.bcc)
        form.addRow(tr("Subject:"), self.subject)
        buttons = QHBoxLayout()
        buttons.addWidget(attach)
        buttons.addWidget(remove)
        buttons.addStretch(1)
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.send_button)
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addWidget(self.body, 1)
        layout.addWidget(self.attachments)
        layout.addLayout(buttons)
        self.setCentralWidget(box)

        send_action = QAction(tr("Send"), self)
        send_action.setShortcuts([QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")])
        send_action.triggered.connect(self.send)
        self.addAction(send_action)
        self.send_button.clicked.connect(self.send)
        save_action = QAction(tr("Save Draft"), self)
        save_action.setShortcuts([QKeySequence("Ctrl+S")])
        save_action.triggered.connect(self.save_draft)
        self.addAction(save_action)
        self.save_button.clicked.connect(self.save_draft)
        attach.clicked.connect(self._choose_files)
        remove.clicked.connect(lambda: [self.attachments.takeItem(self.attachments.row(i))
                                        for i in self.attachments.selectedItems()])
        self.subject.textChanged.connect(self._title)
        if draft is None and self.from_identity[0]:
            try:
                draft = app.new_draft(self.from_identity[0], sender=self.from_identity[1])
            except DeskmailError:
                draft = None  # (an accounts file changed under us: then no signature, nothing worse)
        if draft is not None:
            self.load(draft)
        self.identity.currentIndexChanged.connect(self._sender_changed)
        self._title()
        self.saved_as = self.current_draft()  # what is safe: closing without changes asks nothing

    def load(self, draft: Draft) -> None:
        self.draft = draft
        self.to.setText(", ".join(draft.to))
        self.cc.setText(", ".join(draft.cc))
        self.bcc.setText(", ".join(draft.bcc))
        self.subject.setText(draft.subject)
        self.body.setPlainText(draft.body)
        for path in draft.attachments:
            self.attachments.addItem(str(path))
        self._put_cursor(draft.body, draft.write_at)
        (self.to if not draft.to else self.body).setFocus()

    def _choose_identity(self, account: str | None, sender: str) -> None:
        """Select ``sender`` of ``account`` (its own address when ``sender`` is "" or not one of its identities)."""
        rows = [self.identity.itemData(n) for n in range(self.identity.count())]
        want = sender.lower()
        for n, (name, address) in enumerate(rows):
            if name == account and (address.lower() == want or not want):
                self.identity.setCurrentIndex(n)
                return
        for n, (name, _address) in enumerate(rows):
            if name == account:
                self.identity.setCurrentIndex(n)
                return

    def _chosen(self) -> tuple[str, str]:
        data = self.identity.currentData()
        return (str(data[0]), str(data[1])) if data else ("", "")

    @property
    def account_name(self) -> str:
        """The account the message goes out through (that of the chosen identity)."""
        return self._chosen()[0]

    def _put_cursor(self, body: str, at: int) -> None:
        cursor = self.body.textCursor()
        cursor.setPosition(_qt_position(body, at))
        self.body.setTextCursor(cursor)

    def add_signature(self) -> None:
        """Sign the text as it stands with the chosen identity's signature (a message begun elsewhere)."""
        name, address = self.from_identity
        if not name:
            return
        try:
            signed = self.app.sign(self.current_draft(sender=address), name)
        except DeskmailError as exc:
            self.problem.setText(error_html(exc))
            return
        self.body.setPlainText(signed.body)
        self._put_cursor(signed.body, signed.write_at)
        self.saved_as = self.current_draft()

    def _sender_changed(self) -> None:
        """Another identity: its signature replaces the old one's; what was typed and the cursor stay."""
        name, address = self._chosen()
        if not name or (name, address) == self.from_identity:
            return
        current = self.current_draft(sender=self.from_identity[1])
        try:
            changed = self.app.change_sender(current, address, name)
        except DeskmailError as exc:
            self.problem.setText(error_html(exc))
            return
        self.from_identity = (name, address)
        if changed.body != current.body:
            self.body.setPlainText(changed.body)
            self._put_cursor(changed.body, changed.write_at)

    def _attachments_changed(self) -> None:
        self.attachments.setVisible(self.attachments.count() > 0)

    def _title(self) -> None:
        self.setWindowTitle(tr("Write: {subject}").format(subject=self.subject.text() or tr("(no subject)")))

    def _choose_files(self) -> None:
        files, _filter = QFileDialog.getOpenFileNames(self, tr("Attach files"))
        for f in files:
            self.attachments.addItem(f)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        for url in event.mimeData().urls():
            if url.isLocalFile():
                self.attachments.addItem(url.toLocalFile())
        event.acceptProposedAction()

    def current_draft(self, *, sender: str | None = None) -> Draft:
        def split(line: QLineEdit) -> tuple[str, ...]:
            return tuple(a.strip() for a in line.text().split(",") if a.strip())

        previous = self.draft
        body = self.body.toPlainText()
        return Draft(to=split(self.to), cc=split(self.cc), bcc=split(self.bcc), subject=self.subject.text(),
                     body=body,
                     attachments=tuple(Path(self.attachments.item(i).text()) for i in range(self.attachments.count())),
                     in_reply_to=previous.in_reply_to if previous else "",
                     references=tuple(previous.references) if previous else (),
                     sender=self._chosen()[1] if sender is None else sender,
                     write_at=_str_position(body, self.body.textCursor().position()))

    def send(self) -> None:
        if self.in_flight:
            return
        draft = self.current_draft()
        account = self.account_name
        self.problem.clear()
        self.send_button.setEnabled(False)
        self.statusBar().showMessage(tr("Sending…"))
        task = Task(lambda _task: self.app.send(draft, account), self)
        task.done.connect(self._sent)
        task.failed.connect(self._failed)
        self.sending = task
        self.in_flight = True
        task.start()

    def save_draft(self) -> None:
        """Store the message as it stands in the account's Drafts (off the GUI thread); the saved version
        replaces the one this window came from, once it is stored."""
        if self.in_flight or (self.saving is not None and self.saving.running):
            return
        draft, account, replaces = self.current_draft(), self.account_name, self.draft_ref
        self.statusBar().showMessage(tr("Saving the draft…"))
        task = Task(lambda _task: self.app.save_draft(draft, account, replaces=replaces), self)
        task.done.connect(lambda info: self._draft_saved(info, draft))
        task.failed.connect(self._draft_failed)
        self.saving = task
        task.start()

    def _draft_saved(self, info: DraftInfo, draft: Draft) -> None:
        self.draft_ref = info.ref
        self.saved_as = draft
        self.statusBar().showMessage(tr("Draft saved in {where}").format(where=info.where), 8000)

    def _draft_failed(self, exc: DeskmailError) -> None:
        self.statusBar().showMessage(tr("The draft was not saved"))
        self.problem.setText(error_html(exc))

    def _discard_saved_draft(self) -> None:
        """After sending: the draft it came from is not needed any more (best effort, off the GUI thread)."""
        ref, account = self.draft_ref, self.account_name
        if not ref:
            return
        self.draft_ref = ""
        task = Task(lambda _task: self.app.discard_draft(ref, account), self.parent() or self)
        task.start()

    def _sent(self, result: SentMessage) -> None:
        """The message is in the outbox whatever happened. Refused outright with nothing delivered: it is
        taken out again and this window stays open to put it right; otherwise the window's work is done
        (the main window says what became of it, and asks about an uncertain one)."""
        self.in_flight = False
        entry = result.entry
        if entry.state == "failed" and not entry.delivered:
            try:
                self.app.remove_from_outbox(entry.id)  # local files only: nothing waits on the network
            except DeskmailError:
                pass  # then it stays listed in the outbox as refused, which is true too
            self.send_button.setEnabled(True)
            self.statusBar().showMessage(tr("Not sent"))
            if result.error is not None:
                self.problem.setText(error_html(result.error))
            return
        self.sent.emit(result)
        self._discard_saved_draft()
        if result.copy_error is not None:
            QMessageBox.warning(self, tr("Sent, but not saved in Sent"),
                                tr("The message went out, but its copy could not be saved in Sent.") + "\n\n"
                                + str(result.copy_error))
        self.force_close = True
        self.close()

    def _failed(self, exc: DeskmailError) -> None:
        self.in_flight = False
        self.send_button.setEnabled(True)
        self.statusBar().showMessage(tr("Not sent"))
        self.problem.setText(error_html(exc))

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.in_flight:
            event.ignore()  # a message half-handed to the server must not lose its window
            return
        if not self.force_close and self.current_draft() != self.saved_as:
            answer = QMessageBox.question(
                self, tr("Save this message as a draft?"),
                tr("“{subject}” has changes that are not saved.").format(subject=self.subject.text()
                                                                           or tr("(no subject)")),
                QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Save)
            if answer == QMessageBox.StandardButton.Cancel:
                event.ignore()
                return
            if answer == QMessageBox.StandardButton.Save:
                self.save_draft()
                # The save runs on; the window goes once it is stored (or stays to show why not).
                assert self.saving is not None
                self.saving.done.connect(lambda _info: self._close_now())
                event.ignore()
                return
        super().closeEvent(event)

    def _close_now(self) -> None:
        self.force_close = True
        self.close()


def _qt_position(text: str, index: int) -> int:
    """A position in ``text`` as Qt counts it (UTF-16 code units: a character beyond the BMP, such as an
    emoji, counts twice)."""
    return len(text[:index].encode("utf-16-le")) // 2


def _str_position(text: str, position: int) -> int:
    """The inverse of :func:`_qt_position`."""
    return len(text.encode("utf-16-le")[:position * 2].decode("utf-16-le", errors="ignore"))

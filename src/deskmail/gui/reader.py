"""The reader pane: headers, the sanitized message, the remote-content bar, the attachment bar.

The message arrives rendered by the engine (:meth:`deskmail.app.Deskmail.read_message`): HTML already
sanitized, remote images already withheld unless allowed. The browser widget adds a second wall: it
answers only ``cid:`` and ``data:`` resources from the message itself, and remote images only after
the person allowed them and the engine fetched them off the GUI thread. Nothing is ever requested by
Qt itself.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from deskmail.app import MessageView
from deskmail.gui.common import esc, tr
from deskmail.gui.models import human_size, short_date

if TYPE_CHECKING:
    from deskmail.render import AttachmentInfo


class SafeBrowser(QTextBrowser):
    """Shows a message; fetches nothing from the network, ever.

    Qt asks ``loadResource`` for every image and style sheet the document names. Only what the message
    carries (``cid:`` parts, ``data:`` URLs) and remote images the engine fetched after the person allowed
    them are returned; any other URL gets nothing, so no tracking pixel is requested.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)  # a click opens the desktop's browser (after a look at the address), never here
        # A scroll bar that comes and goes makes Qt lay out the whole document up front to decide on it;
        # always there, only the visible part is laid out before the first paint (the rest follows in
        # small steps). Opening a 60-100 KB newsletter: median 68-80 ms -> 24-30 ms here.
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        self.inline: dict[str, tuple[str, bytes]] = {}  # content-id -> (type, bytes)
        self.remote: dict[str, tuple[str, bytes]] = {}  # url -> (type, bytes), fetched on request only
        self.refused: list[str] = []

    def loadResource(self, kind: int, url: QUrl | str) -> object:
        u = QUrl(url) if isinstance(url, str) else url
        scheme = u.scheme().lower()
        if scheme == "cid":
            part = self.inline.get(u.toString(QUrl.ComponentFormattingOption.FullyDecoded)[4:].strip("<>"))
            return QByteArray(part[1]) if part is not None else None
        if scheme == "data":
            return super().loadResource(kind, u)
        fetched = self.remote.get(u.toString())
        if fetched is not None:
            return QByteArray(fetched[1])
        self.refused.append(u.toString())
        return None


class Reader(QWidget):
    """Everything below the message list."""

    load_remote = Signal(bool)  # True: for this sender from now on; False: this message only
    save_attachment = Signal(object, str)  # the AttachmentInfo (None: all of them), the folder chosen
    open_attachment = Signal(object)  # the AttachmentInfo

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view: MessageView | None = None
        self.header = QLabel()
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.header.setWordWrap(True)
        self.header.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.header.setContentsMargins(8, 6, 8, 6)

        self.remote_bar = QFrame()
        self.remote_bar.setObjectName("remote-bar")
        self.remote_bar.setStyleSheet("#remote-bar { background: #fff4d6; border-bottom: 1px solid #e0c988; }"
                                      "#remote-bar QLabel { color: #4a3b00; }")
        self.remote_text = QLabel()
        self.remote_once = QPushButton(tr("Load remote content"))
        self.remote_always = QPushButton()
        bar = QHBoxLayout(self.remote_bar)
        bar.setContentsMargins(8, 4, 8, 4)
        bar.addWidget(self.remote_text, 1)
        bar.addWidget(self.remote_once)
        bar.addWidget(self.remote_always)
        self.remote_once.clicked.connect(lambda: self.load_remote.emit(False))
        self.remote_always.clicked.connect(lambda: self.load_remote.emit(True))

        self.warning = QLabel()
        self.warning.setWordWrap(True)
        self.warning.setTextFormat(Qt.TextFormat.PlainText)
        self.warning.setStyleSheet("background: #fde7e7; color: #7a1010; padding: 4px 8px;")

        self.browser = SafeBrowser()
        self.browser.anchorClicked.connect(self._link)

        self.attachment_bar = QWidget()
        self.attachment_row = QHBoxLayout(self.attachment_bar)
        self.attachment_row.setContentsMargins(8, 4, 8, 4)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        for w in (self.header, self.remote_bar, self.warning):
            layout.addWidget(w)
        layout.addWidget(self.browser, 1)
        layout.addWidget(self.attachment_bar)
        self.show_message(None)

    def show_message(self, view: MessageView | None, remote: dict[str, tuple[str, bytes]] | None = None) -> None:
        self.view = view
        self.browser.inline = {}
        self.browser.remote = remote or {}
        self.remote_bar.hide()
        self.warning.hide()
        self.attachment_bar.hide()
        if view is None:
            self.header.clear()
            self.browser.clear()
            return
        r = view.reading
        h = {k.lower(): v for k, v in r.headers.items()}
        rows = [(tr("From"), h.get("from", view.summary.sender)),
                (tr("Subject"), h.get("subject", view.summary.subject)),
                (tr("Date"), short_date(view.summary.date)), (tr("To"), h.get("to", view.summary.to))]
        if h.get("cc"):
            rows.append((tr("Cc"), h["cc"]))
        self.header.setText("<table>" + "".join(
            f"<tr><td style='color: gray'>{esc(k)}:&nbsp;</td><td>{esc(v)}</td></tr>" for k, v in rows) + "</table>")
        if r.blocked_remote and not r.remote_allowed:
            self.remote_text.setText((tr("To protect your privacy, deskmail did not load the remote image in this "
                                         "message.") if r.blocked_remote == 1 else
                                      tr("To protect your privacy, deskmail did not load {n} remote images in this "
                                         "message.")).format(n=r.blocked_remote))
            self.remote_always.setText(tr("Always for {sender}").format(sender=r.sender) if r.sender
                                       else tr("Always"))
            self.remote_always.setVisible(bool(r.sender))
            self.remote_bar.show()
        notes = [w.text for w in r.warnings]
        notes += [tr("This link shows “{text}” but leads to {href}").format(text=s.text, href=s.href)
                  for s in r.suspicious_links]
        if notes:
            self.warning.setText("\n".join(dict.fromkeys(notes)))
            self.warning.show()
        self.browser.inline = dict(r.inline_images)
        if r.is_html:
            self.browser.setHtml(r.html)
        else:
            self.browser.setPlainText(r.text)
        self._attachments(r.attachments)

    def _attachments(self, items: tuple[AttachmentInfo, ...]) -> None:
        while self.attachment_row.count():
            item = self.attachment_row.takeAt(0)
            w = item.widget() if item is not None else None
            if w is not None:
                w.deleteLater()
        shown = [a for a in items if a.disposition != "inline" or not a.content_id]
        if not shown:
            return
        self.attachment_row.addWidget(QLabel(tr("Attachments:")))
        for a in shown:
            button = QToolButton()
            button.setText(f"{a.filename or a.safe_name} ({human_size(a.size)})")
            button.setToolTip(f"{a.content_type}" + (f" — {a.note}" if a.note else ""))
            button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
            menu = QMenu(button)
            menu.addAction(tr("Open"), self._emit_open(a))
            menu.addAction(tr("Save As…"), self._emit_save(a))
            button.setMenu(menu)
            self.attachment_row.addWidget(button)
        if len(shown) > 1:
            all_button = QPushButton(tr("Save All…"))
            all_button.clicked.connect(self._emit_save(None))
            self.attachment_row.addWidget(all_button)
        self.attachment_row.addStretch(1)
        self.attachment_bar.show()

    def _emit_open(self, a: AttachmentInfo) -> Callable[[], None]:
        return lambda: self.open_attachment.emit(a)

    def _emit_save(self, a: AttachmentInfo | None) -> Callable[[], None]:
        def save() -> None:
            folder = QFileDialog.getExistingDirectory(self, tr("Save attachments into"))
            if folder:
                self.save_attachment.emit(a, folder)
        return save

    def _link(self, url: QUrl) -> None:
        """Web and mailto links open in the desktop's programs; any other kind (file:, javascript:…) does nothing."""
        if url.scheme().lower() in ("http", "https", "mailto"):
            QDesktopServices.openUrl(url)


def open_folder() -> Path:
    """Where attachments opened with the desktop's programs are saved first (a private temporary folder)."""
    return Path(tempfile.mkdtemp(prefix="deskmail-open-"))

"""Messages for the GUI tests, and a person answering a question box."""

from __future__ import annotations

import os
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QAbstractButton, QApplication, QMessageBox


def message(i: int, *, subject: str = "", body: str = "", sender: str = "", html: str = "") -> bytes:
    m = EmailMessage()
    m["From"] = sender or f"Sender {i % 7} <s{i % 7}@example.org>"
    m["To"] = "you@example.test"
    m["Subject"] = subject or f"Message number {i:05d}"
    m["Date"] = f"Mon, {1 + i % 28:02d} Jun 2026 {i % 24:02d}:{i % 60:02d}:00 +0000"
    m["Message-ID"] = f"<gui-{i}-{os.getpid()}@example.org>"
    m.set_content(body or f"Body of message {i}.\n")
    if html:
        m.add_alternative(html, subtype="html")
    return m.as_bytes().replace(b"\n", b"\r\n")


def answer_next_box(button_text: str, seen: list[str], first: Callable[[], None] = lambda: None) -> None:
    """Click ``button_text`` in the next modal message box, as a person would, noting what it said
    (and doing ``first`` once it is up)."""
    def click() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(50, click)
            return
        first()
        seen.append(box.text())
        buttons = [b for b in box.findChildren(QAbstractButton) if b.text().replace("&", "") == button_text]
        assert buttons, f"no button {button_text!r} in {box.text()!r}"
        buttons[0].click()
    QTimer.singleShot(50, click)


def synced_window(qtbot: Any, dm: Any) -> Any:
    """The main window on ``dm``, shown, after its first Get Mail has finished and the list has caught up."""
    from deskmail.gui.mainwindow import MainWindow

    window = MainWindow(dm)
    qtbot.addWidget(window)
    window.show()
    window.get_mail()
    qtbot.waitUntil(lambda: window.syncs_done == 1, timeout=60_000)
    window.refresh_if_changed()
    return window

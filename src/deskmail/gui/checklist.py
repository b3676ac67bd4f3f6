"""A list of checks as they happen: one line each, a mark for how it went, the remedy under a failure."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QPalette
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QWidget

from deskmail.doctor.report import Finding, Report, Status
from deskmail.errors import DeskmailError
from deskmail.gui.common import tr

CODE_ROLE = Qt.ItemDataRole.UserRole + 1
MARKS = {"ok": "✓", "failed": "✗", "warning": "!", "skipped": "–", "info": "→"}


class CheckList(QListWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setSelectionMode(QListWidget.SelectionMode.NoSelection)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.setUniformItemSizes(False)

    def add(self, status: str, text: str, detail: str = "", code: str = "") -> QListWidgetItem:
        """A line (plain text: server words and message data are never markup here)."""
        item = QListWidgetItem(f"{MARKS.get(status, '')}  {text}" + (f"\n     {detail}" if detail else ""))
        item.setData(Qt.ItemDataRole.UserRole, status)
        item.setData(CODE_ROLE, code)
        color = {"failed": QColor("#c62828"), "warning": QColor("#b26a00")}.get(status)
        if color is not None:
            item.setForeground(QBrush(color))
        elif status == "skipped":
            item.setForeground(self.palette().brush(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text))
        self.addItem(item)
        self.scrollToBottom()
        return item

    def add_error(self, exc: DeskmailError) -> None:
        self.add("failed", exc.what.rstrip(".") + ".", _cause_remedy(exc.cause, exc.remedy), exc.code)

    def add_finding(self, f: Finding) -> None:
        detail = _cause_remedy(f.cause, f.remedy) if f.status in (Status.FAILED, Status.WARNING) else ""
        self.add(f.status.value, f"{f.server.heading}: {f.text.rstrip('.')}.", detail, f.code.value)

    def add_report(self, report: Report) -> None:
        self.add("ok" if report.ok else "failed", report.summary())

    def statuses(self) -> list[str]:
        return [str(self.item(i).data(Qt.ItemDataRole.UserRole)) for i in range(self.count())]

    def codes(self) -> list[str]:
        return [str(self.item(i).data(CODE_ROLE)) for i in range(self.count())]

    def texts(self) -> list[str]:
        return [self.item(i).text() for i in range(self.count())]


def _cause_remedy(cause: str, remedy: str) -> str:
    lines = []
    if cause:
        lines.append(f"{tr('Likely cause:')} {cause.rstrip('.')}.")
    if remedy:
        lines.append(f"{tr('What to do:')} {remedy.rstrip('.')}.")
    return "\n     ".join(lines)

"""Small pieces every window uses: showing an error in words, escaping text, icons."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QLibraryInfo, QLocale, Qt, QTranslator
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QLabel, QMessageBox, QStyle, QWidget

from deskmail.errors import DeskmailError

ICON_FILE = Path(__file__).with_name("deskmail.svg")
TRANSLATIONS = Path(__file__).with_name("translations")  # deskmail_<language>.qm, made by scripts/translations


def tr(text: str) -> str:
    """Translatable text. The context is empty because that is where pyside6-lupdate files a call of a
    plain function named ``tr`` (scripts/translations extracts them; the argument must be a literal)."""
    return QCoreApplication.translate("", text)


def install_translations(app: QCoreApplication, locale: QLocale | None = None,
                         folder: Path = TRANSLATIONS) -> list[QTranslator]:
    """Load deskmail's translation for the desktop's language, and Qt's own (the wizard's Next and
    Back, the dialogs' buttons); returns those found. A language without
    a translation simply stays in English. The translators are children of ``app``, which keeps them."""
    locale = locale or QLocale.system()
    loaded = []
    for name, where in (("qtbase", QLibraryInfo.path(QLibraryInfo.LibraryPath.TranslationsPath)),
                        ("deskmail", str(folder))):
        translator = QTranslator(app)
        if translator.load(locale, name, "_", where):
            app.installTranslator(translator)
            loaded.append(translator)
    return loaded


def esc(text: str) -> str:
    """Message data or server words made safe to put inside a rich-text label: shown, never interpreted."""
    return html.escape(text, quote=True)


def error_html(exc: DeskmailError) -> str:
    """What happened, the likely cause and what to do, as rich text built from escaped parts."""
    parts = [f"<b>{esc(exc.what.rstrip('.'))}.</b>"]
    if exc.cause:
        parts.append(f"{esc(tr('Likely cause:'))} {esc(exc.cause.rstrip('.'))}.")
    if exc.remedy:
        parts.append(f"{esc(tr('What to do:'))} {esc(exc.remedy.rstrip('.'))}.")
    return "<br>".join(parts)


def show_error(parent: QWidget | None, exc: DeskmailError, title: str = "") -> None:
    box = QMessageBox(QMessageBox.Icon.Warning, title or tr("deskmail"), "", QMessageBox.StandardButton.Ok, parent)
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setText(error_html(exc))
    box.exec()


def wrapping_label(text: str = "", *, rich: bool = False) -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText if rich else Qt.TextFormat.PlainText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                  | Qt.TextInteractionFlag.LinksAccessibleByMouse)
    label.setOpenExternalLinks(True)
    label.setText(text)
    return label


def app_icon() -> QIcon:
    return QIcon(str(ICON_FILE))


def std_icon(widget: QWidget, which: QStyle.StandardPixmap) -> QIcon:
    return widget.style().standardIcon(which)

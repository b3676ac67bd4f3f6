"""The desktop application's texts are translatable: extracted by Qt's own tool, loaded for the desktop's
language, and Qt's own buttons follow."""

from __future__ import annotations

import ast
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QLocale
from PySide6.QtWidgets import QWizard

from deskmail.app import Deskmail
from deskmail.config import Paths
from deskmail.gui import common
from deskmail.gui.common import install_translations
from deskmail.gui.wizard import SetupWizard

GUI = Path(common.__file__).parent
BIN = Path(sys.executable).parent


def sources(ts: Path) -> set[str]:
    return {s.text or "" for s in ET.parse(ts).getroot().iter("source")}


def test_every_tr_argument_is_a_literal_the_extractor_can_read() -> None:
    unreadable = []
    for path in sorted(GUI.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            called = isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "tr"
            if called and not (len(node.args) == 1 and isinstance(node.args[0], ast.Constant)
                               and isinstance(node.args[0].value, str)):
                unreadable.append(f"{path.name}:{node.lineno}")
    assert unreadable == []


def test_the_shipped_catalogue_has_every_text(tmp_path: Path) -> None:
    """`bash scripts/translations` was run after the last change of a text (else translators miss it)."""
    fresh = tmp_path / "fresh.ts"
    subprocess.run([str(BIN / "pyside6-lupdate"), "-silent", *map(str, sorted(GUI.glob("*.py"))), "-ts", str(fresh)],
                   check=True, timeout=120)
    found = sources(fresh)
    assert len(found) > 100
    assert found == sources(GUI / "translations" / "deskmail.ts")


def test_a_translation_is_loaded_for_the_desktops_language(qtbot: Any, tmp_path: Path) -> None:
    ts = tmp_path / "deskmail_es.ts"
    ts.write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE TS>\n<TS version="2.1" language="es">\n<context>\n'
        "<name></name>\n<message>\n<source>Set up your mail account</source>\n"
        "<translation>Configure su cuenta de correo</translation>\n</message>\n</context>\n</TS>\n",
        encoding="utf-8")
    subprocess.run([str(BIN / "pyside6-lrelease"), "-silent", str(ts)], check=True, timeout=60)
    app = QCoreApplication.instance()
    assert app is not None
    loaded = install_translations(app, QLocale("es_ES"), folder=tmp_path)
    try:
        assert len(loaded) == 2  # Qt's own Spanish, and ours
        wizard = SetupWizard(Deskmail(Paths(tmp_path / "config", tmp_path / "data")))
        qtbot.addWidget(wizard)
        assert wizard.windowTitle() == "Configure su cuenta de correo"
        assert wizard.buttonText(QWizard.WizardButton.CancelButton) == "Cancelar"
    finally:
        for translator in loaded:
            app.removeTranslator(translator)
    english = install_translations(app, QLocale("en_US"), folder=tmp_path)  # no deskmail_en: stays as written
    try:
        wizard = SetupWizard(Deskmail(Paths(tmp_path / "config", tmp_path / "data")))
        qtbot.addWidget(wizard)
        assert wizard.windowTitle() == "Set up your mail account"
    finally:
        for translator in english:
            app.removeTranslator(translator)

"""Account settings: the doctor live, then Repair applies its recommendation after a yes; Save keeps it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from PySide6.QtWidgets import QMessageBox

from deskmail.app import Deskmail
from deskmail.doctor.report import Server
from deskmail.gui.settings import AccountSettings, Repair
from deskmail.model import Security

pytestmark = pytest.mark.servers


def test_repair_applies_the_doctors_fix_and_save_keeps_it(qtbot: Any, dm: Deskmail, sandbox: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    account = dm.account("a")
    # Broken on purpose: STARTTLS chosen on the port that speaks TLS at once.
    dm.update_account(replace(account, incoming=replace(account.incoming, security=Security.STARTTLS)))
    dialog = AccountSettings(dm, "a")
    qtbot.addWidget(dialog)
    assert dialog.below.currentWidget() is dialog.identities  # until a test runs
    dialog.run_test()
    assert dialog.below.currentWidget() is dialog.checks  # its findings come in view
    qtbot.waitUntil(lambda: dialog.test.isEnabled() and dialog.checks.count() > 0, timeout=60_000)
    assert "tls_mode_mismatch" in dialog.checks.codes(), dialog.checks.texts()
    assert dialog.repair.isEnabled()
    assert dialog.fixes == [Repair(Server.INCOMING, sandbox.imaps_port, Security.SSL)]
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)  # the person agrees
    dialog.repair.click()
    assert dialog.form.in_security.currentData() == "ssl" and dialog.form.in_port.value() == sandbox.imaps_port
    assert dm.account("a").incoming.security is Security.STARTTLS  # nothing saved before Save
    dialog.run_test()
    qtbot.waitUntil(lambda: dialog.test.isEnabled() and dialog.checks.count() > 0, timeout=60_000)
    assert "tls_mode_mismatch" not in dialog.checks.codes() and not dialog.repair.isEnabled()
    dialog.buttons.button(dialog.buttons.StandardButton.Save).click()
    assert dm.account("a").incoming.security is Security.SSL


def test_a_refused_repair_changes_nothing(qtbot: Any, dm: Deskmail, monkeypatch: pytest.MonkeyPatch) -> None:
    dialog = AccountSettings(dm, "a")
    qtbot.addWidget(dialog)
    dialog.fixes = [Repair(Server.OUTGOING, 465, Security.SSL)]
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.No)
    dialog.apply_repairs()
    assert dialog.form.smtp_security.currentData() == "starttls" and dialog.form.smtp_port.value() != 465

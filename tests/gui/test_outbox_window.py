"""The outbox in the desktop application: what a person sees when sending fails in each way, against the
scripted submission server of tests/smtpkit.py (faults after the final dot, refusals) and a closed port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gui_helpers import answer_next_box

from deskmail.app import Deskmail
from deskmail.config import Paths
from deskmail.gui.mainwindow import MainWindow
from deskmail.model import Account, PasswordSource, ServerSettings
from helpers import closed_port
from smtpkit import ScriptedSmtp


def app_sending_to(root: Path, sandbox: Any, user: Any, smtp_port: int) -> Deskmail:
    app = Deskmail(Paths(root / "config", root / "data"), keep_connections=True)
    app.add_account(Account(
        "a", user.email, "Outbox Tester",
        incoming=ServerSettings("imap", sandbox.host, sandbox.imaps_port, "ssl", user.email),
        outgoing=ServerSettings("smtp", sandbox.host, smtp_port, "starttls", user.email),
        password=PasswordSource("env", env="DM_GUI_PW"), ca_file=str(sandbox.ca_file), options={"send_timeout": 2}))
    return app


@pytest.fixture
def smtp(sandbox: Any, mail_user: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedSmtp]:
    monkeypatch.setenv("DM_GUI_PW", mail_user.password)
    server = ScriptedSmtp(sandbox, mail_user, closed_port()).start()
    try:
        yield server
    finally:
        server.stop()


def send(qtbot: Any, window: MainWindow, subject: str, to: str = "u@far.example") -> Any:
    composer = window.write()
    composer.to.setText(to)
    composer.subject.setText(subject)
    composer.body.setPlainText("hello")
    composer.send_button.click()
    return composer


def window_for(qtbot: Any, app: Deskmail) -> MainWindow:
    window = MainWindow(app)
    window.push = False
    qtbot.addWidget(window)
    window.show()
    return window


def wait(qtbot: Any, condition: Callable[[], bool]) -> None:
    qtbot.waitUntil(condition, timeout=30_000)


def test_uncertain_delivery_asks_and_send_again_delivers_the_same_message(
        qtbot: Any, tmp_path: Path, sandbox: Any, mail_user: Any, smtp: ScriptedSmtp) -> None:
    app = app_sending_to(tmp_path, sandbox, mail_user, smtp.port)
    window = window_for(qtbot, app)
    smtp.script.after_dot = "drop"
    seen: list[str] = []

    def reachable_again() -> None:
        smtp.script.after_dot = ""

    answer_next_box("Send Again", seen, reachable_again)
    composer = send(qtbot, window, "Maybe delivered")
    wait(qtbot, lambda: not composer.isVisible() and bool(seen))
    assert "may have been delivered" in seen[0] and "Maybe delivered" in seen[0]
    wait(qtbot, lambda: app.outbox() == [] and not window.outbox_button.isVisible())
    assert smtp.count(b"Maybe delivered") == 2  # sent again, at the person's word only
    app.close()


def test_uncertain_left_for_later_waits_in_the_outbox_and_is_marked_delivered_there(
        qtbot: Any, tmp_path: Path, sandbox: Any, mail_user: Any, smtp: ScriptedSmtp) -> None:
    app = app_sending_to(tmp_path, sandbox, mail_user, smtp.port)
    window = window_for(qtbot, app)
    smtp.script.after_dot = "drop"
    seen: list[str] = []
    answer_next_box("Decide Later", seen)
    composer = send(qtbot, window, "Ask me later")
    wait(qtbot, lambda: not composer.isVisible() and bool(seen))
    wait(qtbot, window.outbox_button.isVisible)
    assert window.outbox_button.text() == "Outbox: 1" and "red" in window.outbox_button.styleSheet()

    window.outbox_button.click()
    dialog = window.outbox_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.table.rowCount() == 1
    assert dialog.table.item(0, 1).text() == "Ask me later"
    assert dialog.table.item(0, 2).text() == "Maybe sent: the server did not confirm"
    dialog.table.selectRow(0)
    assert dialog.delivered.isEnabled() and dialog.again.isEnabled()
    smtp.script.after_dot = ""
    dialog.delivered.click()  # "It Was Delivered": recorded as sent, its copy saved in Sent, nothing resent
    wait(qtbot, lambda: dialog.table.rowCount() == 0 and not window.outbox_button.isVisible())
    assert smtp.count(b"Ask me later") == 1
    assert "Ask me later" in sandbox.doveadm("fetch", "-u", mail_user.email, "hdr", "mailbox", "Sent",
                                             check=True).stdout
    app.close()


def test_a_refused_message_keeps_its_window_open_with_the_servers_reason(
        qtbot: Any, tmp_path: Path, sandbox: Any, mail_user: Any, smtp: ScriptedSmtp) -> None:
    app = app_sending_to(tmp_path, sandbox, mail_user, smtp.port)
    window = window_for(qtbot, app)
    smtp.script.rcpt["nobody@far.example"] = "550 5.1.1 no such user here"
    composer = send(qtbot, window, "Refused", to="nobody@far.example")
    wait(qtbot, lambda: bool(composer.problem.text()))
    assert "no such user here" in composer.problem.text()
    assert composer.isVisible() and composer.send_button.isEnabled()
    assert app.outbox() == []  # nothing went out: nothing waits, the window holds the message
    composer.to.setText("somebody@far.example")
    composer.send_button.click()
    wait(qtbot, lambda: not composer.isVisible())
    assert smtp.count(b"Refused") == 1
    app.close()


def test_without_a_connection_the_message_waits_and_can_be_removed(
        qtbot: Any, tmp_path: Path, sandbox: Any, mail_user: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DM_GUI_PW", mail_user.password)
    app = app_sending_to(tmp_path, sandbox, mail_user, closed_port())
    window = window_for(qtbot, app)
    composer = send(qtbot, window, "Offline draft")
    wait(qtbot, lambda: not composer.isVisible())
    wait(qtbot, window.outbox_button.isVisible)
    assert "outbox" in window.statusBar().currentMessage().lower()
    assert "red" not in window.outbox_button.styleSheet()  # it waits; nothing to decide
    window.show_outbox()
    dialog = window.outbox_dialog
    assert dialog is not None
    assert dialog.table.item(0, 2).text().startswith("Not sent yet: tried again in")
    dialog.table.selectRow(0)
    seen: list[str] = []
    answer_next_box("Yes", seen)
    dialog.remove.click()
    wait(qtbot, lambda: app.outbox() == [] and dialog.table.rowCount() == 0)
    assert "will not be sent" in seen[0]
    app.close()

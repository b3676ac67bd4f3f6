"""Drafts in the desktop application, against the sandbox Dovecot: saved into the server's Drafts, opened
again from the Drafts folder, gone once sent; a window with unsaved words asks before it closes."""

from __future__ import annotations

from typing import Any

from gui_helpers import answer_next_box

from deskmail.app import Deskmail
from deskmail.gui.mainwindow import MainWindow
from deskmail.gui.models import View


def drafts_on_server(sandbox: Any, user: Any, needle: str) -> int:
    found = sandbox.doveadm("search", "-u", user.email, "mailbox", "Drafts", "undeleted", "subject", needle)
    return len(found.stdout.split()) // 2 if found.returncode == 0 else 0


def window_for(qtbot: Any, dm: Deskmail) -> MainWindow:
    window = MainWindow(dm)
    window.push = False
    qtbot.addWidget(window)
    window.show()
    window.get_mail()
    qtbot.waitUntil(lambda: window.syncs_done == 1, timeout=60_000)
    return window


def test_a_draft_is_saved_opened_again_from_drafts_and_gone_once_sent(qtbot: Any, dm: Deskmail, sandbox: Any,
                                                                    mail_user: Any) -> None:
    window = window_for(qtbot, dm)
    composer = window.write()
    composer.to.setText("ada@harbour.example")
    composer.subject.setText("Half-written letter")
    composer.body.setPlainText("Dear Ada,\n\nthe tide tables")
    assert any("Ctrl+S" in [k.toString() for k in a.shortcuts()] for a in composer.actions())
    composer.save_button.click()
    qtbot.waitUntil(lambda: "Draft saved" in composer.statusBar().currentMessage() or bool(composer.problem.text()),
                    timeout=30_000)
    assert not composer.problem.text(), composer.problem.text()
    assert drafts_on_server(sandbox, mail_user, "Half-written letter") == 1
    composer.close()  # saved as it stands: no question
    assert not composer.isVisible()

    # The Drafts folder, after a sync: opening the draft continues it in the composer.
    before = window.syncs_done
    window.get_mail()
    qtbot.waitUntil(lambda: window.syncs_done > before, timeout=60_000)
    window.reload_folders()
    window.model.show(View("a", "Drafts"))
    assert window.model.rowCount() == 1
    count = len(window.composers)
    window.list.activated.emit(window.model.index(0, 0))
    qtbot.waitUntil(lambda: len(window.composers) > count, timeout=30_000)
    again = window.composers[-1]
    assert again.subject.text() == "Half-written letter" and "the tide tables" in again.body.toPlainText()
    assert again.to.text() == "ada@harbour.example"

    again.body.setPlainText(again.body.toPlainText() + " you asked for are attached.\n")
    again.send_button.click()
    qtbot.waitUntil(lambda: not again.isVisible(), timeout=30_000)
    qtbot.waitUntil(lambda: drafts_on_server(sandbox, mail_user, "Half-written letter") == 0, timeout=30_000)
    sent = sandbox.doveadm("fetch", "-u", mail_user.email, "body", "mailbox", "Sent", check=True).stdout
    assert "you asked for are attached" in sent


def test_closing_with_unsaved_words_asks_and_saves(qtbot: Any, dm: Deskmail, sandbox: Any, mail_user: Any) -> None:
    window = window_for(qtbot, dm)
    composer = window.write()
    composer.subject.setText("Not lost")
    composer.body.setPlainText("Words worth keeping.")
    seen: list[str] = []
    answer_next_box("Save", seen)
    composer.close()
    qtbot.waitUntil(lambda: not composer.isVisible(), timeout=30_000)  # once the draft is stored
    assert "“Not lost” has changes that are not saved" in seen[0]
    assert drafts_on_server(sandbox, mail_user, "Not lost") == 1

    untouched = window.write()
    untouched.close()  # nothing typed: nothing asked, nothing saved
    assert not untouched.isVisible()

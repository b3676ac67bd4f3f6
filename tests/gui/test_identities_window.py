"""Identities in the desktop application: the composer's From chooser swaps signatures and sends as the chosen
identity (checked in what Dovecot received); the cursor starts at write_at; account settings add, edit and
remove identities through the engine."""

from __future__ import annotations

from email.parser import HeaderParser
from email.policy import default
from typing import Any

import pytest
from gui_helpers import message
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from deskmail.app import Deskmail
from deskmail.gui.composer import ComposeWindow
from deskmail.gui.mainwindow import MainWindow
from deskmail.gui.settings import AccountSettings
from deskmail.model import Identity
from deskmail.outbox.compose import Draft

pytestmark = pytest.mark.servers

ALIAS = Identity("alias@ident.example", "Alias Me", "", "Alias\nsignature")


def test_the_from_chooser_swaps_the_signature_and_sends_as_that_identity(qtbot: Any, dm: Deskmail, sandbox: Any,
                                                                          mail_user: Any) -> None:
    dm.update_identity("a", Identity(mail_user.email, "Test User", "", "Own signature"))
    dm.add_identity("a", ALIAS)
    window = MainWindow(dm)
    qtbot.addWidget(window)
    composer = window.write(account="a")
    items = [composer.identity.itemText(n) for n in range(composer.identity.count())]
    assert items == [f"Test User <{mail_user.email}> — a", "Alias Me <alias@ident.example> — a"]
    assert composer.body.toPlainText() == "\n\n-- \nOwn signature\n"
    assert composer.body.textCursor().position() == 0  # the person writes above the signature
    qtbot.keyClicks(composer.body, "Typed by me")
    composer.body.insertPlainText(" ✓")  # (QTest types ASCII only)
    composer.identity.setCurrentIndex(1)
    assert composer.body.toPlainText() == "Typed by me ✓\n\n-- \nAlias\nsignature\n"
    assert composer.body.textCursor().position() == len("Typed by me ✓")  # the cursor stayed
    composer.to.setText(mail_user.email)
    composer.subject.setText("sent as the alias")
    composer.send_button.click()
    qtbot.waitUntil(lambda: not composer.isVisible(), timeout=30_000)
    got = sandbox.doveadm("fetch", "-u", mail_user.email, "hdr", "mailbox", "INBOX", "subject", "sent as the alias",
                          check=True).stdout
    headers = HeaderParser(policy=default).parsestr(got.removeprefix("hdr:\n"))
    assert str(headers["From"]) == "Alias Me <alias@ident.example>"
    assert str(headers["Return-Path"]) == "<alias@ident.example>"


def test_a_reply_opens_with_the_cursor_below_the_quote_from_the_addressed_identity(qtbot: Any, dm: Deskmail,
                                                                                   sandbox: Any,
                                                                                   mail_user: Any) -> None:
    dm.add_identity("a", ALIAS)
    sandbox.deliver(mail_user.email, message(7, subject="To the alias 😀", body="Quoted 😀 line",
                                             sender="Ada <ada@harbour.example>").replace(
        b"To: you@example.test", b"To: alias@ident.example"))
    run = dm.sync()
    assert not run.failures
    original = next(m for m in dm.list_messages(folder="INBOX") if "alias" in m.subject)
    account, draft = dm.reply(original.id)
    assert draft.sender == "alias@ident.example"
    composer = ComposeWindow(dm, draft, account)
    qtbot.addWidget(composer)
    assert composer.identity.currentData() == ("a", "alias@ident.example")
    text = composer.body.toPlainText()
    cursor = composer.body.textCursor().position()
    before = text.encode("utf-16-le")[:cursor * 2].decode("utf-16-le")
    assert before.endswith("> Quoted 😀 line\n\n") and text[len(before):] == "\n\n-- \nAlias\nsignature\n"
    assert composer.current_draft() == draft  # opened and not touched: nothing to save on closing


def test_settings_add_edit_and_remove_identities(qtbot: Any, dm: Deskmail, mail_user: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    dialog = AccountSettings(dm, "a")
    qtbot.addWidget(dialog)
    dialog.show()  # (laid out as a person sees it: a click lands where the button is)
    qtbot.waitExposed(dialog)
    part = dialog.identities
    assert part.list.count() == 1
    part.list.setCurrentRow(0)
    assert not part.remove_button.isEnabled()  # the account's own address stays
    add = part.open_dialog(None)
    add.address.setText("not an address")
    add.buttons.button(add.buttons.StandardButton.Ok).click()
    assert "is not an e-mail address" in add.problem.text() and dm.identities("a")[1:] == []
    add.address.setText("alias@ident.example")
    add.name.setText("Alias Me")
    add.signature.setPlainText("Alias\nsignature")
    add.buttons.button(add.buttons.StandardButton.Ok).click()
    assert dm.identities("a")[1] == ALIAS and part.list.count() == 2
    again = part.open_dialog(None)
    again.address.setText("ALIAS@ident.example")
    again.buttons.button(again.buttons.StandardButton.Ok).click()
    assert "already sends as" in again.problem.text()
    part.list.setCurrentRow(0)
    own = part.open_dialog(part.selected())
    assert own.address.isReadOnly()
    own.name.setText("Renamed")
    own.signature.setPlainText("My own sig")
    own.buttons.button(own.buttons.StandardButton.Ok).click()
    assert dm.account("a").display_name == "Renamed" and dm.account("a").signature == "My own sig"
    assert dialog.display_name.text() == "Renamed"
    dialog.buttons.button(dialog.buttons.StandardButton.Save).click()  # the form's Save keeps them
    assert dm.account("a").identities == (ALIAS,) and dm.account("a").signature == "My own sig"
    part.list.setCurrentRow(1)
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    qtbot.mouseClick(part.remove_button, Qt.MouseButton.LeftButton)
    assert dm.identities("a") == [dm.account("a").primary] and part.list.count() == 1


def test_a_draft_without_identity_starts_from_the_accounts_own(qtbot: Any, dm: Deskmail, mail_user: Any) -> None:
    composer = ComposeWindow(dm, Draft(to=("x@example.org",), body="hi"), "a")
    qtbot.addWidget(composer)
    assert composer.identity.currentData() == ("a", mail_user.email) and composer.body.toPlainText() == "hi"


def test_a_mailto_link_opens_a_signed_message(qtbot: Any, dm: Deskmail, mail_user: Any) -> None:
    from deskmail.gui.main import open_mailto

    dm.update_identity("a", Identity(mail_user.email, "Test User", "", "Own signature"))
    window = MainWindow(dm)
    qtbot.addWidget(window)
    open_mailto(window, "mailto:ada@harbour.example?subject=Tides&body=Dear%20Ada%2C%0A")
    composer = window.composers[-1]
    assert composer.body.toPlainText() == "Dear Ada,\n\n-- \nOwn signature\n"
    assert composer.current_draft() == composer.saved_as  # nothing typed yet: closing asks nothing

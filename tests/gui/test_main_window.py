"""The main window against the sandbox: folders and counts, reading, keyboard actions, closing mid-sync."""

from __future__ import annotations

from typing import Any

import pytest
from gui_helpers import answer_next_box, message, synced_window
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from deskmail.app import Deskmail
from deskmail.gui.main import instance_key, listen, raise_running
from deskmail.gui.mainwindow import MainWindow
from deskmail.gui.models import View

pytestmark = pytest.mark.servers


def get_mail(qtbot: Any, window: MainWindow) -> None:
    """F5, and wait until that sync (not an earlier one) has finished."""
    before = window.syncs_done
    qtbot.keyClick(window.list, Qt.Key.Key_F5)
    qtbot.waitUntil(lambda: window.syncs_done > before, timeout=60_000)


def folder_texts(window: MainWindow) -> list[str]:
    """Every label of the folder tree, depth first."""
    out: list[str] = []

    def walk(item: Any) -> None:
        out.append(item.text(0))
        for j in range(item.childCount()):
            walk(item.child(j))

    for i in range(window.folders.topLevelItemCount()):
        walk(window.folders.topLevelItem(i))
    return out


def test_read_flag_delete_and_counts(qtbot: Any, dm: Deskmail, sandbox: Any, mail_user: Any) -> None:
    sandbox.fill_maildir(mail_user.email, [message(i, subject=f"Note {i}", body=f"The body of note {i}.")
                                           for i in range(3)])
    window = synced_window(qtbot, dm)
    assert window.state.text() == "Online"
    assert "All Inboxes (3)" in folder_texts(window) and "Inbox (3)" in folder_texts(window)
    assert window.model.view == View(None, "INBOX") and window.model.rowCount() == 3

    # Reading the newest message shows its headers and body, and marks it read.
    window.list.selectRow(0)
    first = window.model.summary(0)
    assert first is not None
    qtbot.waitUntil(lambda: window.shown_id == first.id, timeout=5_000)
    assert "The body of" in window.reader.toPlainText()
    assert first.subject in window.reader_pane.header.text()
    qtbot.waitUntil(lambda: "Inbox (2)" in folder_texts(window), timeout=10_000)

    # S stars it, M marks it unread again; N goes to the next unread message.
    qtbot.keyClick(window.list, Qt.Key.Key_S)
    qtbot.waitUntil(lambda: "\\Flagged" in dm.message(first.id).flags, timeout=10_000)
    qtbot.keyClick(window.list, Qt.Key.Key_M)
    qtbot.waitUntil(lambda: "\\Seen" not in dm.message(first.id).flags, timeout=10_000)
    qtbot.keyClick(window.list, Qt.Key.Key_N)
    assert window.list.currentIndex().row() == 1

    # Delete moves it to Trash (a sync starts at once to do it); Get Mail (F5) sends the star.
    second = window.model.summary(1)
    assert second is not None
    window.list.selectRow(1)
    qtbot.keyClick(window.list, Qt.Key.Key_Delete)
    qtbot.waitUntil(lambda: window.model.rowCount() == 2, timeout=20_000)
    get_mail(qtbot, window)
    fetched = sandbox.doveadm("fetch", "-u", mail_user.email, "mailbox flags", "ALL", check=True).stdout
    assert "mailbox: Trash" in fetched and fetched.count("mailbox: INBOX") == 2
    assert "\\Flagged" in fetched


def test_deleting_many_asks_first_with_the_count(qtbot: Any, dm: Deskmail, sandbox: Any, mail_user: Any) -> None:
    sandbox.fill_maildir(mail_user.email, [message(i) for i in range(60)])
    window = synced_window(qtbot, dm)
    assert window.model.rowCount() == 60
    window.list.setFocus()
    qtbot.keyClick(window.list, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    assert len(window.selected_ids()) == 60

    # "No" keeps every message, here and on the server.
    said: list[str] = []
    answer_next_box("No", said)
    qtbot.keyClick(window.list, Qt.Key.Key_Delete)
    assert said and "Delete 60 messages?" in said[0]
    qtbot.wait(300)
    assert window.model.rowCount() == 60 and dm.count_messages() == 60
    # The selection stays whole while the index changes under it (a flag changed, as by another client).
    chosen = window.selected_ids()
    before = window.last_token
    dm.set_flags([chosen[-1]], add=["flagged"])
    window.refresh_if_changed()
    assert window.last_token != before and sorted(window.selected_ids()) == sorted(chosen)

    # "Yes" deletes them all: into the server's Trash.
    window.activateWindow()  # (the box had been the active window: shortcuts go to the active one)
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
    window.list.setFocus()
    answer_next_box("Yes", said)
    qtbot.keyClick(window.list, Qt.Key.Key_Delete)
    assert len(said) == 2, said
    qtbot.waitUntil(lambda: window.model.rowCount() == 0, timeout=20_000)
    get_mail(qtbot, window)
    fetched = sandbox.doveadm("fetch", "-u", mail_user.email, "mailbox", "ALL", check=True).stdout
    assert fetched.count("mailbox: Trash") == 60 and "mailbox: INBOX" not in fetched


def test_closing_mid_sync_cancels_at_a_safe_point(qtbot: Any, dm: Deskmail, sandbox: Any, mail_user: Any) -> None:
    n = 3000
    sandbox.fill_maildir(mail_user.email, [message(i) for i in range(n)])
    window = MainWindow(dm)
    qtbot.addWidget(window)
    window.show()
    window.get_mail()
    task = window.sync_task
    assert task is not None
    qtbot.waitUntil(lambda: "downloaded" in window.progress.text(), timeout=60_000)
    window.close()  # returns once the worker stopped
    assert task.finished.is_set() and task.cancel.cancelled
    assert dm.count_messages() < n  # it really was stopped part-way
    run = dm.sync()  # a normal sync then finishes the exact mailbox
    assert not run.failures and dm.count_messages() == n


def test_a_second_instance_brings_the_first_forward(qtbot: Any, dm: Deskmail) -> None:
    window = MainWindow(dm)
    qtbot.addWidget(window)
    window.showMinimized()
    key = instance_key(dm)
    server = listen(key, window)
    try:
        assert raise_running(key)
        qtbot.waitUntil(lambda: not window.isMinimized(), timeout=5_000)
        # `deskmail-gui mailto:…` while it runs: the running window opens the composer.
        assert raise_running(key, "mailto:ada@harbour.example?subject=Tide%20tables")
        qtbot.waitUntil(lambda: bool(window.composers), timeout=5_000)
        assert window.composers[-1].to.text() == "ada@harbour.example"
        assert window.composers[-1].subject.text() == "Tide tables"
        window.composers[-1].close()
    finally:
        server.close()
    assert not raise_running(key)  # nobody listening: this one would start
    QApplication.processEvents()


def test_new_mail_is_pushed_and_announced(qtbot: Any, dm: Deskmail, sandbox: Any, mail_user: Any) -> None:
    window = synced_window(qtbot, dm)
    qtbot.waitUntil(lambda: window.watch_task is not None and window.watch_task.running, timeout=10_000)
    qtbot.waitUntil(lambda: "watching" in window.progress.text(), timeout=20_000)  # in IDLE now
    sandbox.deliver(mail_user.email, message(7, subject="Pushed to you"))
    # No timer and no key: the server's IDLE notice brings it (the periodic sync is minutes away).
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=20_000)
    assert window.model.summary(0).subject == "Pushed to you"  # type: ignore[union-attr]
    assert window.notified and "1 new message in" in window.notified[-1]
    # F5 while watching: the watch steps aside, the sync runs, the watch comes back.
    get_mail(qtbot, window)
    qtbot.waitUntil(lambda: window.watch_task is not None and window.watch_task.running, timeout=10_000)


def test_a_reply_is_sent_threaded_and_saved_in_sent(qtbot: Any, dm: Deskmail, sandbox: Any, mail_user: Any) -> None:
    sandbox.deliver(mail_user.email, message(3, subject="Lunch on Friday?", body="Shall we meet at noon?",
                                             sender="Ada Keeper <ada@harbour.example>"))
    window = synced_window(qtbot, dm)
    window.list.selectRow(0)
    original = window.model.summary(0)
    assert original is not None
    qtbot.waitUntil(lambda: window.shown_id == original.id, timeout=5_000)
    qtbot.keyClick(window.list, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: bool(window.composers), timeout=10_000)
    composer = window.composers[-1]
    assert composer.to.text() == "Ada Keeper <ada@harbour.example>"
    assert composer.subject.text() == "Re: Lunch on Friday?"
    assert "> Shall we meet at noon?" in composer.body.toPlainText()
    composer.body.setPlainText("Noon is fine.\n\n" + composer.body.toPlainText())
    composer.send_button.click()
    qtbot.waitUntil(lambda: not composer.isVisible(), timeout=30_000)
    # The copy in Sent carries the thread's headers; the message itself went to the submission server.
    sent = sandbox.doveadm("fetch", "-u", mail_user.email, "hdr", "mailbox", "Sent", check=True).stdout
    assert "Subject: Re: Lunch on Friday?" in sent
    assert "In-Reply-To: <gui-3-" in sent and "Noon is fine" not in sent  # (headers only were fetched)
    body = sandbox.doveadm("fetch", "-u", mail_user.email, "body", "mailbox", "Sent", check=True).stdout
    assert "Noon is fine." in body and "> Shall we meet at noon?" in body


def test_sending_fails_clearly_and_keeps_what_was_typed(qtbot: Any, dm: Deskmail) -> None:
    window = MainWindow(dm)
    qtbot.addWidget(window)
    composer = window.write()
    composer.to.setText("not an address")
    composer.subject.setText("Kept")
    composer.body.setPlainText("Every word I typed.")
    composer.send_button.click()
    qtbot.waitUntil(lambda: bool(composer.problem.text()), timeout=10_000)
    assert "is not an e-mail address" in composer.problem.text() and "What to do" in composer.problem.text()
    assert composer.isVisible() and composer.body.toPlainText() == "Every word I typed."
    seen: list[str] = []
    answer_next_box("Discard", seen)
    composer.close()  # typed and never saved: the window asks first
    assert "“Kept” has changes that are not saved" in seen[0] and not composer.isVisible()


class ImageServer:
    """A local HTTP server that serves one PNG and counts the requests (the tracking pixel's point of view)."""

    PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                        "1f15c4890000000d49444154789c6360f8ffff3f0005fe02fea7d6a4f30000000049454e44ae426082")

    def __init__(self) -> None:
        import http.server
        import threading

        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(outer.PNG)))
                self.end_headers()
                self.wfile.write(outer.PNG)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_remote_images_are_not_fetched_until_allowed(qtbot: Any, dm: Deskmail, sandbox: Any,
                                                     mail_user: Any) -> None:
    images = ImageServer()
    try:
        html = (f'<p>Your <b>pass</b> is ready.</p><img src="{images.url}/pixel.png" width="1" height="1">'
                f'<div style="background: url({images.url}/bg.png)">x</div><script>alert(1)</script>')
        sandbox.deliver(mail_user.email, message(5, subject="Newsletter", html=html,
                                                 sender="News <news@shop.example>"))
        window = synced_window(qtbot, dm)
        window.list.selectRow(0)
        s = window.model.summary(0)
        assert s is not None
        qtbot.waitUntil(lambda: window.shown_id == s.id, timeout=5_000)
        pane = window.reader_pane
        assert "pass" in window.reader.toPlainText() and "alert" not in window.reader.toHtml()
        assert pane.remote_bar.isVisibleTo(pane) and "did not load the remote image" in pane.remote_text.text()
        QApplication.processEvents()
        assert images.requests == []  # nothing was fetched: not by the engine, not by Qt
        # Allowed for this message: the image is fetched (once) and shown; the sender is not remembered.
        pane.remote_once.click()
        qtbot.waitUntil(lambda: bool(window.reader.remote), timeout=10_000)
        assert images.requests == ["/pixel.png"] and not pane.remote_bar.isVisibleTo(pane)
        assert dm.remote_content_senders() == frozenset()
        # "Always for news@shop.example": remembered for the sender's next message.
        window.list.clearSelection()
        window.list.selectRow(0)
        pane.remote_always.click()
        qtbot.waitUntil(lambda: dm.remote_content_senders() == frozenset({"news@shop.example"}), timeout=10_000)
    finally:
        images.close()


def test_attachments_are_listed_and_saved_under_safe_names(qtbot: Any, dm: Deskmail, sandbox: Any,
                                                           mail_user: Any, tmp_path: Any) -> None:
    from email.message import EmailMessage

    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "a@example.org", mail_user.email, "Files"
    m.set_content("see attached")
    m.add_attachment(b"month,visitors\n", maintype="text", subtype="csv", filename="../../etc/figures.csv")
    sandbox.deliver(mail_user.email, m.as_bytes().replace(b"\n", b"\r\n"))
    window = synced_window(qtbot, dm)
    window.list.selectRow(0)
    s = window.model.summary(0)
    assert s is not None
    qtbot.waitUntil(lambda: window.shown_id == s.id, timeout=5_000)
    pane = window.reader_pane
    assert pane.attachment_bar.isVisibleTo(pane)
    view = pane.view
    assert view is not None
    (attachment,) = view.reading.attachments
    folder = tmp_path / "saved"
    folder.mkdir()
    window.save_attachment(attachment, str(folder))
    # (the worker creates the file, then writes it: wait for the whole of it, not just the name)
    qtbot.waitUntil(lambda: (folder / "figures.csv").exists()
                    and (folder / "figures.csv").read_bytes() == b"month,visitors\n", timeout=10_000)
    assert [p.name for p in folder.iterdir()] == ["figures.csv"]  # inside the folder chosen, nowhere else


def test_offline_is_shown_with_the_reason(qtbot: Any, dm: Deskmail) -> None:
    from dataclasses import replace

    from helpers import closed_port

    account = dm.account("a")
    dm.update_account(replace(account, incoming=replace(account.incoming, port=closed_port())))
    window = synced_window(qtbot, dm)
    assert window.state.text() == "Offline"
    assert "refused" in window.state.toolTip() and "refused" in window.progress.text()


def test_window_layout_is_remembered(qtbot: Any, dm: Deskmail, tmp_path: Any) -> None:
    from PySide6.QtCore import QSettings

    settings = QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat)
    first = MainWindow(dm, settings)
    qtbot.addWidget(first)
    first.show()
    first.resize(700, 500)  # (inside the offscreen screen, 800x600)
    first.split.setSizes([250, 450])
    first.list.horizontalHeader().resizeSection(1, 321)
    QApplication.processEvents()
    first.close()
    again = MainWindow(dm, QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(again)
    again.show()
    QApplication.processEvents()
    assert (again.width(), again.height()) == (700, 500)
    assert again.split.sizes()[0] == first.split.sizes()[0]
    assert again.list.horizontalHeader().sectionSize(1) == 321


def test_start_up_work_waits_for_the_first_paint(qtbot: Any, dm: Deskmail) -> None:
    window = MainWindow(dm)
    qtbot.addWidget(window)
    ran: list[bool] = []
    window.after_first_paint(lambda: ran.append(window.list.viewport().isVisible()))
    QApplication.processEvents()
    assert ran == []  # not shown, not painted: not yet
    window.show()
    qtbot.waitUntil(lambda: ran == [True], timeout=5_000)


def test_moving_by_drop_and_nested_folders(qtbot: Any, dm: Deskmail, sandbox: Any, mail_user: Any) -> None:
    from deskmail.gui.mainwindow import dropped_ids

    sandbox.doveadm("mailbox", "create", "-u", mail_user.email, "Archive/2026", check=True)
    sandbox.deliver(mail_user.email, message(9, subject="Keep this"))
    window = synced_window(qtbot, dm)
    texts = folder_texts(window)
    assert "2026" in texts and "Archive/2026" not in texts  # shown inside Archive, by its own name
    archive = next(window.folders.topLevelItem(1).child(j) for j in range(window.folders.topLevelItem(1).childCount())
                   if window.folders.topLevelItem(1).child(j).text(0) == "Archive")
    assert archive.child(0).text(0) == "2026"
    # What the list hands to a drag is what the folder tree reads from a drop.
    window.list.selectRow(0)
    ids = window.selected_ids()
    mime = window.model.mimeData([window.model.index(0, 0)])
    assert dropped_ids(mime) == ids
    window.move_to(ids, View("a", "Archive/2026"))
    qtbot.waitUntil(lambda: window.model.rowCount() == 0, timeout=20_000)
    fetched = sandbox.doveadm("fetch", "-u", mail_user.email, "mailbox hdr.subject", "ALL", check=True).stdout
    assert "mailbox: Archive/2026" in fetched and "Keep this" in fetched

"""Drive the desktop application through its screens and photograph each from the X server.

Run by scripts/screenshots under Xvfb. Every picture is taken with ImageMagick's `import` from the
root window (what a person would see), cropped to the window.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from PySide6.QtWidgets import QApplication, QWidget

from deskmail.app import Deskmail
from deskmail.errors import AuthError
from deskmail.gui.common import show_error
from deskmail.gui.mainwindow import MainWindow
from deskmail.gui.settings import AccountSettings
from deskmail.gui.wizard import SetupWizard
from deskmail.model import Security
from deskmail.sandbox.demo import DEMO_EMAIL, start_demo
from deskmail.sandbox.servers import load_sandbox

OUT = Path(sys.argv[1])


def settle(seconds: float = 0.4) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def wait(condition: Callable[[], bool], timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            # Not SystemExit: Qt's teardown with workers still running can hang instead of exiting.
            print(f"timed out waiting for {condition}", file=sys.stderr)
            os._exit(1)
        settle(0.1)


def shot(widget: QWidget, name: str) -> None:
    widget.move(0, 0)
    settle()
    g = widget.frameGeometry()
    target = OUT / f"{name}.png"
    subprocess.run(["import", "-window", "root", "-crop", f"{g.width()}x{g.height()}+{g.x()}+{g.y()}", "+repage",
                    str(target)], check=True)
    print(f"saved {target}")


def provider_file(app: Deskmail) -> None:
    """The sandbox's domain in the provider database's drop-in folder, so the wizard discovers it."""
    sb = load_sandbox(Path(os.environ["DESKMAIL_HOME"]))
    assert sb is not None
    d = app.paths.config_dir / "providers"
    d.mkdir(parents=True, exist_ok=True)
    (d / "example.test.xml").write_text(f"""<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1"><emailProvider id="example.test"><domain>example.test</domain>
<displayName>Example Test Mail</displayName><displayShortName>Example</displayShortName>
<incomingServer type="imap"><hostname>localhost</hostname><port>{sb.imaps_port}</port>
<socketType>SSL</socketType><username>%EMAILADDRESS%</username>
<authentication>password-cleartext</authentication></incomingServer>
<outgoingServer type="smtp"><hostname>localhost</hostname><port>{sb.submission_port}</port>
<socketType>STARTTLS</socketType><username>%EMAILADDRESS%</username>
<authentication>password-cleartext</authentication></outgoingServer>
</emailProvider></clientConfig>""")


def html_message() -> bytes:
    m = EmailMessage()
    m["From"] = "Harbour Office <office@harbour.example>"
    m["To"] = DEMO_EMAIL
    m["Subject"] = "Your harbour pass is ready (HTML, with a remote image)"
    m["Date"] = format_datetime(__import__("datetime").datetime.now().astimezone())
    m["Message-ID"] = make_msgid(domain="harbour.example")
    m.set_content("Your pass is ready. Collect it at the office.\n")
    m.add_alternative('<html><body><h2>Your pass is ready</h2><p>Collect it at the <b>office</b>.</p>'
                      '<img src="https://tracker.example/pixel.gif" width="1" height="1"></body></html>',
                      subtype="html")
    return m.as_bytes().replace(b"\n", b"\r\n")


def main() -> None:
    home = Path(os.environ["DESKMAIL_HOME"])
    qapp = QApplication(["deskmail"])
    app = Deskmail(keep_connections=True)
    start_demo(app, home)
    sb = load_sandbox(home)
    assert sb is not None
    sb.deliver(DEMO_EMAIL, html_message())
    provider_file(app)
    newcomer = sb.create_user("sam")
    sb.deliver(newcomer.email, html_message())

    # The wizard: a new account found, checked and saved.
    wizard = SetupWizard(app, ca_file=str(sb.ca_file))
    wizard.show()
    wizard.address_page.name.setText("Sam Newcomer")
    wizard.address_page.email.setText(newcomer.email)
    shot(wizard, "01-wizard-address")
    wizard.next()
    wait(lambda: bool(wizard.candidates))
    wizard.found_page.password.setText(newcomer.password)
    shot(wizard, "02-wizard-found")
    wizard.next()
    wait(wizard.verify_page.isComplete)
    shot(wizard, "03-wizard-verified")
    wizard.next()
    shot(wizard, "04-wizard-done")
    wizard.close()

    # The wizard again, with a wrong password: the doctor's findings, then the manual settings.
    wizard = SetupWizard(app, ca_file=str(sb.ca_file))
    wizard.show()
    other = sb.create_user("pat")
    wizard.address_page.email.setText(other.email)
    wizard.next()
    wait(lambda: bool(wizard.candidates))
    wizard.found_page.password.setText("wrong password")
    wizard.next()
    wait(wizard.verify_page.isComplete)
    shot(wizard, "05-wizard-wrong-password")
    wizard.next()
    page = wizard.manual_page
    page.form.in_security.setCurrentIndex(page.form.in_security.findData(Security.STARTTLS.value))
    page.form.in_port.setValue(sb.imaps_port)
    page.password.setText(other.password)
    page.test.click()
    settle(0.2)
    wait(lambda: not page.testing)
    shot(wizard, "06-wizard-manual-settings")
    wizard.close()

    # The main window with mail, a plain message and an HTML one in the reader.
    window = MainWindow(app)
    window.show()
    window.get_mail()
    wait(lambda: window.sync_task is not None and not window.sync_task.running)
    window.refresh_if_changed()
    window.list.selectRow(0)
    settle(0.5)
    shot(window, "07-main-window")
    for row in range(window.model.rowCount()):
        s = window.model.summary(row)
        if s is not None and "HTML" in s.subject:
            window.list.selectRow(row)
    settle(0.5)
    shot(window, "08-reader-html")
    for row in range(window.model.rowCount()):
        s = window.model.summary(row)
        if s is not None and "figures attached" in s.subject:
            window.list.selectRow(row)
    settle(0.5)
    shot(window, "08b-reader-attachments")

    # Search from the box above the list, then the list by conversation.
    window.search_box.setText("tides OR figures")
    wait(lambda: window.model.searching and window.model.rowCount() > 0)
    window.list.selectRow(0)
    settle(0.5)
    shot(window, "08c-search")
    window.end_search()
    window.set_threaded(True)
    for row in range(window.model.rowCount()):
        c = window.model.conversation(row)
        if c is not None and c.messages > 1:
            window.list.selectRow(row)
    wait(window.conversation.isVisible)
    settle(0.5)
    shot(window, "08d-conversations")
    window.set_threaded(False)
    for row in range(window.model.rowCount()):
        s = window.model.summary(row)
        if s is not None and "figures attached" in s.subject:
            window.list.selectRow(row)
    wait(lambda: window.shown_id is not None)

    # The composer: a reply, quoted and addressed.
    window.reply(False)
    wait(lambda: bool(window.composers))
    composer = window.composers[-1]
    # Typed where the cursor opens: below the quote (replies are bottom-posted).
    composer.body.insertPlainText("Thank you, I will collect it on Monday.\n")
    settle(0.5)
    shot(composer, "09-composer-reply")
    composer.force_close = True  # the screenshot is taken; what was typed is not kept
    composer.close()

    # The outbox: messages written while the server is out of reach wait there, with their state.
    from deskmail.outbox.compose import Draft

    for subject in ("Minutes of Tuesday's meeting", "Re: Tide tables"):
        app.send(Draft(to=["ada@harbour.example"], subject=subject, body="See you then.\n"), "demo",
                 queue_only=True)
    window.refresh_outbox()
    window.show_outbox()
    assert window.outbox_dialog is not None
    window.outbox_dialog.table.selectRow(0)
    settle(0.5)
    shot(window.outbox_dialog, "09b-outbox")
    for entry in app.outbox():
        app.remove_from_outbox(entry.id)
    window.outbox_dialog.close()
    window.refresh_outbox()

    # Account settings: the doctor live, with a setting made wrong on purpose, and Repair offered.
    dialog = AccountSettings(app, "demo", window)
    dialog.form.in_security.setCurrentIndex(dialog.form.in_security.findData(Security.STARTTLS.value))
    dialog.form.in_port.setValue(sb.imaps_port)
    dialog.show()
    settle(0.5)
    shot(dialog, "10a-settings-identities")  # as it opens: the identities tab below the servers
    dialog.run_test()
    wait(lambda: dialog.test.isEnabled())
    settle(0.5)
    shot(dialog, "10-settings-doctor")
    dialog.close()

    # An error, as a person sees it.
    from PySide6.QtCore import QTimer

    def grab_box() -> None:
        box = QApplication.activeModalWidget()
        if box is not None:
            shot(box, "11-error")
            box.close()

    QTimer.singleShot(800, grab_box)
    show_error(window, AuthError("imap.example.com refused the login for sam@example.com",
                                 "the password is wrong, or the provider wants an app password",
                                 "check the password; for this provider create an app password and use it here"))
    window.close()
    app.close()
    qapp.quit()


if __name__ == "__main__":
    main()

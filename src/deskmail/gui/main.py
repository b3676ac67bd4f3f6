"""Start the desktop application: ``deskmail-gui`` or ``deskmail gui``.

One instance per mail store: a second start finds the first through a local socket, asks it to
come to the front and exits, so the store is never opened by two windows. With no account yet,
the setup wizard opens over the main window.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from types import TracebackType

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtNetwork import QLocalServer, QLocalSocket
from PySide6.QtWidgets import QApplication, QWidget

from deskmail.app import Deskmail
from deskmail.errors import DeskmailError
from deskmail.gui.common import app_icon, install_translations, show_error, tr
from deskmail.gui.mainwindow import MainWindow
from deskmail.gui.tasks import unexpected

log = logging.getLogger("deskmail.gui")


def instance_key(app: Deskmail) -> str:
    return "deskmail-" + hashlib.sha256(str(app.paths.data_dir.resolve()).encode()).hexdigest()[:16]


def raise_running(key: str, mailto: str = "") -> bool:
    """True if another instance listens on ``key``: it was asked to come to the front (and to open a
    composer for ``mailto``)."""
    sock = QLocalSocket()
    sock.connectToServer(key)
    if not sock.waitForConnected(500):
        return False
    sock.write((mailto or "raise").encode() + b"\n")
    sock.flush()
    sock.waitForBytesWritten(500)
    sock.disconnectFromServer()
    return True


def listen(key: str, window: MainWindow) -> QLocalServer:
    server = QLocalServer(window)
    QLocalServer.removeServer(key)  # a socket file left by a crashed instance
    server.listen(key)

    def come_forward() -> None:
        conn = server.nextPendingConnection()
        request = b""
        if conn is not None:
            if conn.waitForReadyRead(500):
                request = bytes(conn.readLine(4096).data()).strip()
            conn.close()
        window.showNormal()
        window.raise_()
        window.activateWindow()
        if request.lower().startswith(b"mailto:"):
            open_mailto(window, request.decode("utf-8", "replace"))

    server.newConnection.connect(come_forward)
    return server


def open_mailto(window: MainWindow, url: str) -> None:
    from deskmail.outbox.mailto import parse_mailto

    try:
        draft = parse_mailto(url)
    except DeskmailError as exc:
        show_error(window, exc)
        return
    window.write(draft).add_signature()  # a link's text is the start of a new message: signed as one


def _log_to_file(app: Deskmail) -> None:
    app.paths.log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(app.paths.log_dir / "gui.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)


def _excepthook(window: QWidget | None) -> None:
    """A bug inside a slot: logged with its traceback, shown in words."""

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        log.error("unexpected error", exc_info=(kind, exc, tb))
        show_error(window, exc if isinstance(exc, DeskmailError) else unexpected(exc))

    sys.excepthook = hook


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deskmail-gui", description="deskmail, the desktop application")
    parser.add_argument("--ca-file", default="", help="an extra trusted certificate authority for self-hosted servers")
    parser.add_argument("mailto", nargs="?", default="", help="a mailto: link to write to (the desktop's handler)")
    args, qt_args = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return run(ca_file=args.ca_file, mailto=args.mailto, qt_args=qt_args)


def run(*, ca_file: str = "", mailto: str = "", qt_args: list[str] | None = None) -> int:
    qapp = QApplication.instance() or QApplication(["deskmail", *(qt_args or [])])
    assert isinstance(qapp, QApplication)
    qapp.setApplicationName("deskmail")
    qapp.setApplicationDisplayName("deskmail")
    qapp.setDesktopFileName("deskmail")
    qapp.setWindowIcon(app_icon())
    install_translations(qapp)
    dm = Deskmail(keep_connections=True)
    key = instance_key(dm)
    if raise_running(key, mailto):
        return 0
    _log_to_file(dm)
    try:
        accounts = dm.accounts()
    except DeskmailError as exc:
        show_error(None, exc, tr("deskmail cannot start"))
        return 1
    settings = QSettings(str(dm.paths.config_dir / "gui.ini"), QSettings.Format.IniFormat)
    window = MainWindow(dm, settings)
    window.setProperty("ca_file", ca_file)
    _excepthook(window)
    server = listen(key, window)
    window.show()
    window.after_first_paint(window.warm_up)
    window.after_first_paint(window.refresh_outbox)  # what an earlier run left waiting (or undecided)
    if accounts:
        window.after_first_paint(window.get_mail)
        if mailto:
            QTimer.singleShot(0, lambda: open_mailto(window, mailto))
    else:
        QTimer.singleShot(0, window.add_account)
    try:
        return qapp.exec()
    finally:
        server.close()
        dm.close()


if __name__ == "__main__":
    sys.exit(main())

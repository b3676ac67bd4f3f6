"""New-mail notices reach a freedesktop notification service over a real (private) session bus."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

SERVER = r'''
import sys
from PySide6.QtCore import QCoreApplication, QObject, Slot, ClassInfo
from PySide6.QtDBus import QDBusConnection

app = QCoreApplication([])
log = open(sys.argv[1], "a", buffering=1)

@ClassInfo({"D-Bus Interface": "org.freedesktop.Notifications"})
class Notifications(QObject):
    @Slot(str, "uint", str, str, str, "QStringList", "QVariantMap", int, result="uint")
    def Notify(self, app_name, replaces, icon, summary, body, actions, hints, timeout):
        log.write(f"{app_name}|{summary}|{body}\n")
        return 1

bus = QDBusConnection.sessionBus()
service = Notifications()
assert bus.registerObject("/org/freedesktop/Notifications", service, QDBusConnection.RegisterOption.ExportAllSlots)
assert bus.registerService("org.freedesktop.Notifications")
log.write("ready\n")
app.exec()
'''

CLIENT = r'''
from PySide6.QtCore import QCoreApplication
from deskmail.gui.notify import desktop_notify
app = QCoreApplication([])
print(desktop_notify("deskmail", "2 new messages in work"))
'''


def test_a_notice_reaches_the_desktops_notification_service(tmp_path: Path) -> None:
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    assert bus.stdout is not None
    env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": bus.stdout.readline().strip(), "QT_QPA_PLATFORM": "offscreen"}
    log = tmp_path / "notices"
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(log)], env=env)
    try:
        for _ in range(100):
            if log.exists() and "ready" in log.read_text():
                break
            time.sleep(0.1)
        else:
            pytest.fail("the notification service did not start")
        out = subprocess.run([sys.executable, "-c", CLIENT], env=env, capture_output=True, text=True, timeout=60)
        assert out.stdout.strip() == "True", out.stderr
        assert "deskmail|deskmail|2 new messages in work" in log.read_text()
        # No service on the bus: the call says so (the window then shows the notice itself).
        server.terminate()
        server.wait(10)
        out = subprocess.run([sys.executable, "-c", CLIENT], env=env, capture_output=True, text=True, timeout=60)
        assert out.stdout.strip() == "False", out.stderr
    finally:
        for proc in (server, bus):
            proc.terminate()
            proc.wait(10)

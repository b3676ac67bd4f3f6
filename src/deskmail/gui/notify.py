"""New-mail notices on the desktop: freedesktop notifications over D-Bus, else inside the window.

Uses Qt's own D-Bus module (no extra dependency). Without a session bus or a notification service
the call fails, and the caller shows the notice in its status bar instead.
"""

from __future__ import annotations

from PySide6.QtDBus import QDBusConnection, QDBusMessage

SERVICE = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"


def desktop_notify(title: str, body: str, *, timeout_ms: int = 8000) -> bool:
    """True if a notification service took the notice."""
    bus = QDBusConnection.sessionBus()
    if not bus.isConnected():
        return False
    msg = QDBusMessage.createMethodCall(SERVICE, PATH, SERVICE, "Notify")
    # app_name, replaces_id, app_icon, summary, body, actions, hints, expire_timeout
    msg.setArguments(["deskmail", 0, "mail-unread", title, body, [], {}, timeout_ms])
    reply = bus.call(msg)
    return reply.type() == QDBusMessage.MessageType.ReplyMessage

"""New-mail notices on the desktop: freedesktop notifications over D-Bus, else inside the window.

The call is made with jeepney (already there for the keyring's Secret Service) rather than Qt's D-Bus
module: Notify's signature is ``susssasa{sv}i``, and PySide6 sends Python's 0 as an int32 and ``[]`` as a
variant list, which notification services refuse ("no slot matched"). jeepney takes the signature as
written. Without a session bus or a notification service the call fails, and the caller shows the notice
in its status bar instead.
"""

from __future__ import annotations

SERVICE = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"


def desktop_notify(title: str, body: str, *, timeout_ms: int = 8000) -> bool:
    """True if a notification service took the notice."""
    try:
        from jeepney import DBusAddress, MessageType, new_method_call
        from jeepney.io.blocking import open_dbus_connection
    except ImportError:
        return False
    address = DBusAddress(PATH, bus_name=SERVICE, interface=SERVICE)
    message = new_method_call(address, "Notify", "susssasa{sv}i",
                              ("deskmail", 0, "mail-unread", title, body, [], {}, timeout_ms))
    try:
        with open_dbus_connection(bus="SESSION") as bus:
            reply = bus.send_and_get_reply(message, timeout=2)
    except (OSError, KeyError, ValueError, TimeoutError):  # no bus (KeyError: no address), refused, or slow
        return False
    return bool(reply.header.message_type is MessageType.method_return)

"""Messages for the GUI tests."""

from __future__ import annotations

import os
from email.message import EmailMessage


def message(i: int, *, subject: str = "", body: str = "", sender: str = "", html: str = "") -> bytes:
    m = EmailMessage()
    m["From"] = sender or f"Sender {i % 7} <s{i % 7}@example.org>"
    m["To"] = "you@example.test"
    m["Subject"] = subject or f"Message number {i:05d}"
    m["Date"] = f"Mon, {1 + i % 28:02d} Jun 2026 {i % 24:02d}:{i % 60:02d}:00 +0000"
    m["Message-ID"] = f"<gui-{i}-{os.getpid()}@example.org>"
    m.set_content(body or f"Body of message {i}.\n")
    if html:
        m.add_alternative(html, subtype="html")
    return m.as_bytes().replace(b"\n", b"\r\n")

from __future__ import annotations

import pytest

from deskmail.model import Protocol, Security, ServerSettings


def test_strings_become_enums() -> None:
    s = ServerSettings("imap", "imap.example.com", 993, "ssl", "u")  # type: ignore[arg-type]
    assert s.protocol is Protocol.IMAP and s.security is Security.SSL


@pytest.mark.parametrize("port", [0, 70000, -1, True])
def test_bad_port_refused(port: int) -> None:
    with pytest.raises(ValueError, match="port"):
        ServerSettings(Protocol.IMAP, "h", port, Security.SSL, "u")


def test_bad_host_refused() -> None:
    with pytest.raises(ValueError, match="host"):
        ServerSettings(Protocol.IMAP, "bad host", 993, Security.SSL, "u")


def test_bad_security_refused() -> None:
    with pytest.raises(ValueError):
        ServerSettings(Protocol.IMAP, "h", 993, "tls9", "u")  # type: ignore[arg-type]

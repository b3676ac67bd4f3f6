"""Fixtures for the discovery tests: a DNS server, web servers and a test CA, all on 127.0.0.1.

Every test uses its own domain names under ``.test`` (RFC 2606), so the
session-wide DNS server can be shared; ``options(...)`` builds
:class:`DiscoveryOptions` that send all DNS to it, trust the test CA and use
short timeouts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from discoverykit import BlackHole, CertShop, DNSServer, FakeMailServer, WebServer

from deskmail.discovery import DiscoveryOptions

FAST = {
    "deadline": 5.0,
    "dns_timeout": 1.0,
    "connect_timeout": 1.0,
    "greeting_timeout": 0.4,
    "read_timeout": 1.0,
    "http_timeout": 2.0,
}


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="session")
def certs(ca: trustme.CA) -> CertShop:
    return CertShop(ca)


@pytest.fixture(scope="session")
def dns_server() -> Iterator[DNSServer]:
    server = DNSServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def https_server(certs: CertShop) -> Iterator[WebServer]:
    server = WebServer(certs)
    yield server
    server.close()


@pytest.fixture(scope="session")
def http_server() -> Iterator[WebServer]:
    server = WebServer()
    yield server
    server.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


@pytest.fixture
def options(
    dns_server: DNSServer, https_server: WebServer, http_server: WebServer, ca_file: str
) -> Callable[..., DiscoveryOptions]:
    """``options(port_overrides={...}, deadline=...)``: test options; 443/80 go to the test web servers."""

    def make(**changes: Any) -> DiscoveryOptions:
        ports = {443: https_server.port, 80: http_server.port, **changes.pop("port_overrides", {})}
        base: dict[str, Any] = {
            **FAST,
            "nameservers": ("127.0.0.1",),
            "dns_port": dns_server.port,
            "ca_file": ca_file,
            "port_overrides": ports,
        }
        base.update(changes)
        return DiscoveryOptions(**base)

    return make


@pytest.fixture
def mail_servers(certs: CertShop) -> Iterator[Callable[..., FakeMailServer]]:
    """``mail_servers("imap", "ssl")`` starts a fake server; all are closed after the test.

    ``names=`` fixes the certificate's names (default: whatever name the client asks for).
    """
    started: list[FakeMailServer] = []

    def start(protocol: str, mode: str, names: tuple[str, ...] = (), greeting_delay: float = 0.0) -> FakeMailServer:
        ctx = certs.context_for(*names) if names else certs.sni_context()
        server = FakeMailServer(protocol, mode, ctx, greeting_delay)
        started.append(server)
        return server

    yield start
    for s in started:
        s.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every discovery test must finish well inside a deadline of its own; a hang is a bug.
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.timeout(60))

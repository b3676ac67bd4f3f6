"""Fixtures for the doctor's fault tests: fake servers, certificates, dead ports, a DNS server.

The servers themselves are in doctorkit.py (importable by the tests); this file
only starts them for a test and stops them afterwards.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator

import postfixkit
import pytest
from doctorkit import EMAIL, HOST, PASSWORD, Certs, FakeServer, Handler, NxDomainServer, make_certs


@pytest.fixture
def serve() -> Iterator[Callable[..., FakeServer]]:
    """Start fake servers for one test; all are stopped afterwards."""
    servers: list[FakeServer] = []

    def start(handler: Handler, *, tls: ssl.SSLContext | None = None) -> FakeServer:
        server = FakeServer(handler, tls=tls)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()



@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("doctor-certs"))


@pytest.fixture
def closed_port() -> int:
    sock = socket.socket()
    sock.bind((HOST, 0))
    port: int = sock.getsockname()[1]
    sock.close()  # nothing listens any more: connecting gets RST (connection refused)
    return port


@pytest.fixture
def blackholed_port() -> Iterator[int]:
    """A port whose SYNs are dropped: a listener with a full accept queue that never accepts."""
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(0)
    port: int = listener.getsockname()[1]
    filler = socket.create_connection((HOST, port), timeout=1)  # fills the queue (backlog 0 → 1)
    probe = socket.socket()
    probe.settimeout(0.3)
    try:
        probe.connect((HOST, port))
        pytest.skip("this kernel does not drop SYNs on a full accept queue")
    except TimeoutError:
        pass
    finally:
        probe.close()
    yield port
    filler.close()
    listener.close()


@pytest.fixture
def dns_server() -> Iterator[Callable[..., NxDomainServer]]:
    servers: list[NxDomainServer] = []

    def start(known: dict[str, str] | None = None) -> NxDomainServer:
        server = NxDomainServer(known)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()




@pytest.fixture(scope="module")
def postfix(certs: Certs) -> Iterator[postfixkit.PostfixSubmission]:
    """A private Postfix submission service (see postfixkit.py), stopped after the module."""
    if not postfixkit.available():
        pytest.fail("Debian's postfix package is missing: run `bash scripts/bootstrap test`")
    server = postfixkit.start({EMAIL: PASSWORD}, certs.ca)
    yield server
    server.stop()

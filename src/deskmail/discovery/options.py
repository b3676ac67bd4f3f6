"""Knobs for one discovery run, the deadline every step obeys, and the thread fan-out.

Every network step takes ``min(its own timeout, time left before the
deadline)``, so no step outlives the run: when :func:`discover` returns, its
threads are at most finishing a socket call that is about to time out. The
threads are daemons, so a stuck system resolver (``getaddrinfo`` cannot be
interrupted) never keeps the program from exiting.

Test hooks are ordinary options, not special code paths: ``nameservers`` /
``dns_port`` choose the DNS server, ``host_addresses`` pins names to
addresses, ``port_overrides`` maps a standard port (993, 443 …) to the port
actually dialled, and ``ca_file`` adds a trust anchor. Results always report
the standard port: the overrides only change where the connection goes.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from deskmail.discovery.candidates import Origin
from deskmail.discovery.ispdb import MAX_CONFIG_BYTES
from deskmail.model import Protocol

T = TypeVar("T")

ALL_SOURCES: frozenset[Origin] = frozenset(Origin)

# RFC 8314: implicit TLS first. The order is the order of preference.
STANDARD_PROBE_PORTS: Mapping[Protocol, tuple[int, ...]] = MappingProxyType(
    {Protocol.IMAP: (993, 143), Protocol.POP3: (995, 110), Protocol.SMTP: (465, 587)}
)
# "" is the bare domain.
STANDARD_PROBE_HOSTS: Mapping[Protocol, tuple[str, ...]] = MappingProxyType(
    {
        Protocol.IMAP: ("imap", "mail", ""),
        Protocol.POP3: ("pop", "pop3", "mail", ""),
        Protocol.SMTP: ("smtp", "mail", ""),
    }
)


class ProbePolicy(StrEnum):
    NEVER = "never"
    IF_UNKNOWN = "if-unknown"  # only when the provider database has no entry for the domain
    ALWAYS = "always"


@dataclass(frozen=True)
class DiscoveryOptions:
    """How one discovery run behaves. All times in seconds."""

    deadline: float = 8.0  # the whole chain; what is not done by then is reported unfinished
    dns_timeout: float = 2.0
    connect_timeout: float = 3.0
    greeting_timeout: float = 1.5  # wait for a plain-text greeting before trying TLS
    read_timeout: float = 3.0  # TLS handshake, each protocol reply
    http_timeout: float = 4.0  # one autoconfig fetch, start to finish
    max_config_bytes: int = MAX_CONFIG_BYTES
    sources: frozenset[Origin] = ALL_SOURCES
    probe: ProbePolicy = ProbePolicy.IF_UNKNOWN
    plain_http: bool = True  # try http:// autoconfig when both https:// URLs fail
    ispdb_url: str = "https://autoconfig.thunderbird.net/v1.1/"  # Thunderbird's ISPDB web service
    provider_dirs: tuple[str, ...] = ()  # drop-in clientConfig files, after the bundled ones
    nameservers: tuple[str, ...] = ()  # empty: the system's resolver configuration
    dns_port: int = 53
    host_addresses: Mapping[str, str] = field(default_factory=dict)
    port_overrides: Mapping[int, int] = field(default_factory=dict)
    ca_file: str = ""
    probe_ports: Mapping[Protocol, tuple[int, ...]] = field(default_factory=lambda: STANDARD_PROBE_PORTS)
    probe_hosts: Mapping[Protocol, tuple[str, ...]] = field(default_factory=lambda: STANDARD_PROBE_HOSTS)
    max_probe_workers: int = 24

    def clone(self, **changes: Any) -> DiscoveryOptions:
        return replace(self, **changes)


class Deadline:
    """A point in monotonic time; hands out timeouts that never reach past it."""

    def __init__(self, seconds: float) -> None:
        self.start = time.monotonic()
        self.expires = self.start + max(0.0, seconds)

    def remaining(self) -> float:
        return max(0.0, self.expires - time.monotonic())

    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def timeout(self, step: float) -> float:
        """``min(step, remaining)``; raises :class:`TimeoutError` when nothing is left."""
        left = self.remaining()
        if left <= 0.0:
            raise TimeoutError("the discovery deadline has passed")
        return min(step, left)

    def sub(self, step: float) -> Deadline:
        """A deadline for one step: ``step`` seconds from now, never past this one."""
        d = Deadline(0)
        d.start = time.monotonic()
        d.expires = min(self.expires, d.start + step)
        return d


@dataclass
class Outcome(Generic[T]):
    """What one task of :func:`run_all` gave: its value or its error, or neither if it did not finish."""

    value: T | None = None
    error: BaseException | None = None
    done: bool = False


def run_all(tasks: Mapping[str, Callable[[], T]], deadline: Deadline) -> dict[str, Outcome[T]]:
    """Run every task in its own daemon thread; return what finished before the deadline.

    A task still running at the deadline is reported with ``done=False`` and
    left to end on its own (its sockets carry deadline-bounded timeouts).
    """
    results: dict[str, Outcome[T]] = {name: Outcome() for name in tasks}
    finished: queue.Queue[tuple[str, Outcome[T]]] = queue.Queue()

    def worker(name: str, fn: Callable[[], T]) -> None:
        try:
            finished.put((name, Outcome(value=fn(), done=True)))
        except BaseException as exc:  # reported to the caller, never lost in a thread
            finished.put((name, Outcome(error=exc, done=True)))

    for name, fn in tasks.items():
        threading.Thread(target=worker, args=(name, fn), name=f"discovery-{name}", daemon=True).start()
    pending = len(tasks)
    while pending:
        try:
            name, outcome = finished.get(timeout=max(0.001, deadline.remaining()))
        except queue.Empty:
            break
        results[name] = outcome
        pending -= 1
        if deadline.expired():
            # Drain what has already arrived, then stop waiting.
            while True:
                try:
                    name, outcome = finished.get_nowait()
                except queue.Empty:
                    break
                results[name] = outcome
                pending -= 1
            break
    return results

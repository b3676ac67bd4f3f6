"""DNS queries, address lookup, connections and TLS for one discovery run.

All of discovery's network access goes through one :class:`Network`, which
applies the run's options (resolver, pinned addresses, port overrides, CA
file) and bounds every call by the run's deadline. TLS contexts come from
:func:`deskmail.net.tls.client_context`, as everywhere in deskmail.
"""

from __future__ import annotations

import socket
import ssl
import threading
from typing import Any

import dns.exception
import dns.name
import dns.resolver

from deskmail.discovery.options import Deadline, DiscoveryOptions
from deskmail.net.tls import client_context


class StepFailed(Exception):
    """One step of one source failed; the message is the reason shown to the user."""


class Network:
    def __init__(self, options: DiscoveryOptions, deadline: Deadline) -> None:
        self.options = options
        self.deadline = deadline
        self._lock = threading.Lock()
        self._addresses: dict[str, list[str] | StepFailed] = {}
        self._resolver: dns.resolver.Resolver | None = None
        self._context: ssl.SSLContext | None = None

    # ------------------------------------------------------------------ DNS

    def resolver(self) -> dns.resolver.Resolver:
        with self._lock:
            if self._resolver is None:
                if self.options.nameservers:
                    r = dns.resolver.Resolver(configure=False)
                    r.port = self.options.dns_port
                    r.nameservers = list(self.options.nameservers)
                else:
                    try:
                        r = dns.resolver.Resolver()
                    except dns.resolver.NoResolverConfiguration as exc:
                        raise StepFailed("this computer has no DNS resolver configured") from exc
                self._resolver = r
            return self._resolver

    def query(self, name: str, rdtype: str) -> list[Any]:
        """Records of one type; ``[]`` when the name or the type does not exist."""
        lifetime = self._timeout(self.options.dns_timeout, f"DNS {rdtype} {name}")
        try:
            answer = self.resolver().resolve(
                dns.name.from_text(name), rdtype, lifetime=lifetime, search=False, raise_on_no_answer=False
            )
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.Timeout as exc:
            raise StepFailed(f"no DNS answer for {name} ({rdtype}) within {lifetime:.1f} s") from exc
        except dns.resolver.NoNameservers as exc:
            raise StepFailed(f"the DNS servers failed to answer for {name} ({rdtype})") from exc
        except (dns.exception.DNSException, ValueError) as exc:
            raise StepFailed(f"DNS lookup of {name} ({rdtype}) failed: {exc}") from exc
        return list(answer.rrset) if answer.rrset is not None else []

    def addresses(self, host: str) -> list[str]:
        """IP addresses for a host name (pinned, then the configured resolver)."""
        host = host.lower().rstrip(".")
        pinned = self.options.host_addresses.get(host)
        if pinned:
            return [pinned]
        with self._lock:
            cached = self._addresses.get(host)
        if isinstance(cached, StepFailed):
            raise cached  # a failure is remembered too: one slow name costs one timeout per run
        if cached is not None:
            return cached
        try:
            if self.options.nameservers:
                found = [r.address for r in self.query(host, "A")]
                if not found:
                    found = [r.address for r in self.query(host, "AAAA")]
            else:
                found = self._system_lookup(host)
        except StepFailed as exc:
            with self._lock:
                self._addresses[host] = exc
            raise
        with self._lock:
            self._addresses[host] = found
        return found

    def _system_lookup(self, host: str) -> list[str]:
        # getaddrinfo honours /etc/hosts and the OS's resolver; it cannot be given a
        # timeout, which is why discovery runs it in a daemon thread under the deadline.
        self._timeout(self.options.dns_timeout, f"address of {host}")
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
                return []
            raise StepFailed(f"looking up {host} failed ({exc.strerror or exc})") from None
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    # ---------------------------------------------------------- connections

    def dial_port(self, port: int) -> int:
        return self.options.port_overrides.get(port, port)

    def connect(self, host: str, port: int) -> socket.socket:
        """A TCP connection to ``host:port`` (after port overrides), deadline-bounded."""
        addresses = self.addresses(host)
        if not addresses:
            raise StepFailed(f"{host} does not exist (no address in DNS)")
        real_port = self.dial_port(port)
        last: OSError | None = None
        for address in addresses:
            timeout = self._timeout(self.options.connect_timeout, f"connecting to {host}:{port}")
            try:
                return socket.create_connection((address, real_port), timeout=timeout)
            except TimeoutError as exc:
                last = exc
            except OSError as exc:
                last = exc
        if isinstance(last, TimeoutError):
            raise StepFailed(f"{host}:{port} did not accept a connection in time")
        reason = getattr(last, "strerror", None) or str(last)
        raise StepFailed(f"{host}:{port} refused the connection ({reason})")

    def tls_context(self) -> ssl.SSLContext:
        with self._lock:
            if self._context is None:
                self._context = client_context(self.options.ca_file or None)
            return self._context

    def names_context(self) -> ssl.SSLContext:
        """A context that verifies the chain but not the host name.

        Only used to *read* which names a certificate is valid for after the
        verified handshake failed on the name; nothing is sent over it.
        """
        ctx = client_context(self.options.ca_file or None)
        ctx.check_hostname = False
        return ctx

    def timeout(self, step: float, what: str = "") -> float:
        return self._timeout(step, what)

    def _timeout(self, step: float, what: str) -> float:
        try:
            return self.deadline.timeout(step)
        except TimeoutError:
            raise StepFailed(f"the deadline passed before {what or 'this step'}") from None

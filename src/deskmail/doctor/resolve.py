"""Name resolution for the doctor, with answers precise enough to explain.

``socket.getaddrinfo`` collapses "no such name", "no address" and "no DNS
server answered" into one EAI error whose meaning differs by platform, so the
doctor asks DNS itself with dnspython and only then falls back to the system
(hosts file, mDNS, a VPN's split DNS) before declaring a name dead.

The resolver is a parameter of :func:`deskmail.doctor.run_doctor`: tests point
a :class:`DnsResolver` at a throw-away DNS server on 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Protocol as TypingProtocol

import dns.exception
import dns.resolver


class DnsFailure(Exception):
    """kind: "not_found" (NXDOMAIN), "no_address" (name without A/AAAA) or "failed"."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class Resolver(TypingProtocol):
    def resolve(self, host: str, timeout: float) -> list[str]:
        """IP addresses of ``host`` (IPv4 first), or raise :class:`DnsFailure`."""
        ...


def ip_literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


@dataclass(frozen=True)
class DnsResolver:
    """dnspython lookups of A and AAAA.

    nameservers: None for the system configuration (/etc/resolv.conf, Windows
    registry); a list to ask specific servers. use_system_fallback: also try
    getaddrinfo before reporting a failure, so names from the hosts file work.
    """

    nameservers: tuple[str, ...] | None = None
    port: int = 53
    use_system_fallback: bool = True

    def _resolver(self) -> dns.resolver.Resolver | None:
        if self.nameservers is None:
            try:
                return dns.resolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                return None  # no resolv.conf: only the system resolver can help
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = list(self.nameservers)
        resolver.port = self.port
        return resolver

    def resolve(self, host: str, timeout: float) -> list[str]:
        literal = ip_literal(host)
        if literal is not None:
            return [literal]
        failure: DnsFailure | None = None
        addresses: list[str] = []
        resolver = self._resolver()
        if resolver is None:
            failure = DnsFailure("failed", "no DNS servers are configured on this computer")
        else:
            resolver.lifetime = max(timeout, 0.05)
            resolver.timeout = max(timeout, 0.05)
            exists = False
            for rdtype in ("A", "AAAA"):
                try:
                    answer = resolver.resolve(host, rdtype, search=False)
                    exists = True
                    addresses.extend(str(r) for r in answer)
                except dns.resolver.NXDOMAIN:
                    failure = DnsFailure("not_found", f"the name {host} does not exist (NXDOMAIN)")
                    break
                except dns.resolver.NoAnswer:
                    exists = True
                except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
                    failure = DnsFailure("failed", f"no DNS server answered for {host} ({type(exc).__name__})")
                    break
                except dns.exception.DNSException as exc:
                    failure = DnsFailure("failed", f"the lookup of {host} failed ({exc})")
                    break
            if addresses:
                return addresses
            if exists and failure is None:
                failure = DnsFailure("no_address", f"the name {host} exists but has no IPv4 or IPv6 address")
        if self.use_system_fallback:
            try:
                infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
            except OSError:
                infos = []
            found = sorted({str(info[4][0]) for info in infos}, key=lambda a: ":" in a)
            if found:
                return found
        assert failure is not None
        raise failure

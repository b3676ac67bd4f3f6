"""RFC 6186 SRV records (with RFC 8314's ``_submissions``): the domain names its servers.

Six names are asked at once::

    _imaps._tcp.D   IMAP, implicit TLS        _imap._tcp.D        IMAP, STARTTLS
    _pop3s._tcp.D   POP3, implicit TLS        _pop3._tcp.D        POP3, STARTTLS
    _submissions._tcp.D  SMTP, implicit TLS   _submission._tcp.D  SMTP, STARTTLS

A target of ``.`` means "this service is not offered" (RFC 2782) and is
reported, not used. Records are ordered by priority (lower first; RFC 6186
§3.4 lets the priority express the preferred access protocol), implicit TLS
before STARTTLS at equal priority (RFC 8314 §5.1), then by weight (higher
first — deterministic instead of RFC 2782's weighted random choice, so the
same domain always gives the same answer).

Plain DNS is not authenticated, so a target outside the address's domain that
the provider database does not know is marked ``needs_confirmation`` (RFC 6186
§6 asks clients to check this).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from deskmail.discovery.candidates import Candidate, Confidence, Origin, Skipped
from deskmail.discovery.database import ProviderDatabase
from deskmail.discovery.domains import same_organization
from deskmail.discovery.options import run_all
from deskmail.discovery.transport import Network, StepFailed
from deskmail.model import Protocol, Security, ServerSettings

SERVICES: tuple[tuple[str, Protocol, Security], ...] = (
    ("_imaps._tcp", Protocol.IMAP, Security.SSL),
    ("_imap._tcp", Protocol.IMAP, Security.STARTTLS),
    ("_pop3s._tcp", Protocol.POP3, Security.SSL),
    ("_pop3._tcp", Protocol.POP3, Security.STARTTLS),
    ("_submissions._tcp", Protocol.SMTP, Security.SSL),
    ("_submission._tcp", Protocol.SMTP, Security.STARTTLS),
)
_MAX_CANDIDATES = 4


@dataclass(frozen=True)
class SrvRecord:
    name: str  # the queried name, e.g. _imaps._tcp.example.com
    protocol: Protocol
    security: Security
    priority: int
    weight: int
    port: int
    target: str  # without the trailing dot; "" means "not offered"


def lookup(net: Network, domain: str) -> tuple[list[SrvRecord], list[Skipped]]:
    """Ask the six names concurrently; every failure becomes a :class:`Skipped`."""

    def ask(service: str, protocol: Protocol, security: Security) -> list[SrvRecord]:
        name = f"{service}.{domain}"
        return [
            SrvRecord(
                name,
                protocol,
                security,
                int(r.priority),
                int(r.weight),
                int(r.port),
                r.target.to_text(omit_final_dot=True).lower().rstrip("."),
            )
            for r in net.query(name, "SRV")
        ]

    tasks = {s: functools.partial(ask, s, p, sec) for s, p, sec in SERVICES}
    outcomes = run_all(tasks, net.deadline)
    records: list[SrvRecord] = []
    skipped: list[Skipped] = []
    for service, _, _ in SERVICES:
        out = outcomes[service]
        if out.value is not None:
            records.extend(out.value)
        elif isinstance(out.error, StepFailed):
            skipped.append(Skipped(Origin.SRV, f"{service}.{domain}", str(out.error)))
        elif out.error is not None:
            skipped.append(Skipped(Origin.SRV, f"{service}.{domain}", f"lookup failed: {out.error!r}"))
        else:
            skipped.append(Skipped(Origin.SRV, f"{service}.{domain}", "no answer before the deadline"))
    return records, skipped


def candidates(
    records: list[SrvRecord], email: str, domain: str, db: ProviderDatabase
) -> tuple[list[Candidate], list[Skipped]]:
    """Pure: SRV records → ranked candidates (incoming × best outgoing)."""
    if not records:
        return [], [Skipped(Origin.SRV, domain, "the domain publishes no mail SRV records (RFC 6186)")]
    skipped: list[Skipped] = []
    usable: list[SrvRecord] = []
    for r in records:
        if r.target in ("", "."):
            skipped.append(Skipped(Origin.SRV, r.name, 'the domain states this service is not offered (target ".")'))
        elif not 0 < r.port < 65536:
            skipped.append(Skipped(Origin.SRV, r.name, f"port {r.port} is not valid"))
        else:
            usable.append(r)

    def order(r: SrvRecord) -> tuple[int, int, int]:
        return (r.priority, 0 if r.security is Security.SSL else 1, -r.weight)

    incoming = sorted((r for r in usable if r.protocol is not Protocol.SMTP), key=order)
    outgoing = sorted((r for r in usable if r.protocol is Protocol.SMTP), key=order)
    if not incoming or not outgoing:
        if usable:
            missing = "outgoing (_submissions/_submission)" if incoming else "incoming (IMAP/POP3)"
            skipped.append(Skipped(Origin.SRV, domain, f"records found, but none for the {missing} server"))
        return [], skipped
    pairs = [(i, outgoing[0]) for i in incoming] + [(incoming[0], o) for o in outgoing[1:]]
    out: list[Candidate] = []
    for inc, smtp in pairs[:_MAX_CANDIDATES]:
        try:
            i = ServerSettings(inc.protocol, inc.target, inc.port, inc.security, email)
            o = ServerSettings(Protocol.SMTP, smtp.target, smtp.port, smtp.security, email)
        except ValueError as exc:
            skipped.append(Skipped(Origin.SRV, inc.name, str(exc)))
            continue
        foreign = [
            h for h in dict.fromkeys((i.host, o.host)) if not same_organization(h, domain) and not db.vouches_for(h)
        ]
        notes = [f"From the SRV records {inc.name} and {smtp.name}"]
        if foreign:
            notes.append(
                f"The DNS records send your password to {', '.join(foreign)}, outside {domain}; "
                "DNS answers can be forged, so confirm this is your provider"
            )
        out.append(
            Candidate(
                i, o, Origin.SRV, Origin.SRV.label(), Confidence.MEDIUM, tuple(notes), needs_confirmation=bool(foreign)
            )
        )
    return out, skipped

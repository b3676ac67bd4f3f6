"""MX records → provider database: a domain whose mail goes to Google is a Google domain.

The MX hosts are tried in preference order (at most three); for each, the
host name and then its parent domains are looked up in the database's MX
index (``dm:mxDomain``), then among e-mail domains, as Thunderbird does. A
"null MX" (RFC 7505: one record with target ``.``) means the domain receives
no mail at all, which is reported.

The settings themselves come from the database (servers deskmail knows);
only the inference "this domain is hosted there" rests on unauthenticated
DNS, hence confidence medium.
"""

from __future__ import annotations

from dataclasses import replace

from deskmail.discovery.candidates import Candidate, Confidence, Origin, Skipped, provider_candidates
from deskmail.discovery.database import ProviderDatabase
from deskmail.discovery.ispdb import SourceKind
from deskmail.discovery.transport import Network

_MAX_HOSTS = 3


def lookup(net: Network, domain: str) -> list[tuple[int, str]]:
    """``(preference, host)`` pairs, best first; ``host`` is "" for a null MX."""
    rows = [
        (int(r.preference), r.exchange.to_text(omit_final_dot=True).lower().rstrip("."))
        for r in net.query(domain, "MX")
    ]
    return sorted(rows)


def candidates(
    mx_hosts: list[tuple[int, str]], email: str, domain: str, db: ProviderDatabase
) -> tuple[list[Candidate], list[Skipped]]:
    """Pure: MX hosts → the database provider that runs them, as candidates."""
    if not mx_hosts:
        return [], [Skipped(Origin.MX, domain, "the domain has no MX records")]
    if len(mx_hosts) == 1 and mx_hosts[0][1] in ("", "."):
        return [], [Skipped(Origin.MX, domain, "the domain publishes a null MX: it receives no e-mail")]
    skipped: list[Skipped] = []
    for _, host in mx_hosts[:_MAX_HOSTS]:
        match = db.lookup_mx(host)
        if match is None:
            continue
        p = match.provider
        found, bad = provider_candidates(
            p,
            email,
            origin=Origin.MX,
            source=Origin.MX.label(p.operator),
            default_kind=SourceKind.COMMUNITY_DATABASE,
            extra_notes=[f"Mail for {domain} is received by {host}, which is run by {p.operator}"],
        )
        skipped.extend(bad)
        return [replace(c, confidence=Confidence.MEDIUM) for c in found], skipped
    hosts = ", ".join(h for _, h in mx_hosts[:_MAX_HOSTS])
    skipped.append(Skipped(Origin.MX, domain, f"the mail exchangers ({hosts}) belong to no known provider"))
    return [], skipped

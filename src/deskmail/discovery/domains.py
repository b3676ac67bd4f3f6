"""Domain-name arithmetic: parent domains and "does this host belong to that domain".

No public-suffix list is shipped: deskmail only needs to know whether a server
name lies under the address's own domain (so a password may go there without
asking) and which parent domains to try in the provider database. A short list
of two-label public suffixes (``co.uk``, ``com.au`` …) keeps ``example.co.uk``
from being treated as a subdomain of ``co.uk``.
"""

from __future__ import annotations

# Second-level labels that are registries under a country code (co.uk, com.au, ne.jp …).
_REGISTRY_LABELS = frozenset({"co", "com", "net", "org", "ac", "gov", "edu", "ne", "or", "go", "gv", "ltd"})


def normalize(domain: str) -> str:
    return domain.strip().lower().rstrip(".")


def parents(domain: str) -> list[str]:
    """``nc.rr.com`` → ``["nc.rr.com", "rr.com"]``: the domain, then each parent down to
    the registrable domain (never a bare public suffix such as ``com`` or ``co.uk``)."""
    labels = normalize(domain).split(".")
    floor = len(base_domain(domain).split("."))
    return [".".join(labels[i:]) for i in range(0, max(1, len(labels) - floor + 1))]


def base_domain(host: str) -> str:
    """The registrable domain of a host: ``aspmx.l.google.com`` → ``google.com``,
    ``mx.example.co.uk`` → ``example.co.uk``."""
    labels = normalize(host).split(".")
    if len(labels) <= 2:
        return ".".join(labels)
    if len(labels[-1]) == 2 and labels[-2] in _REGISTRY_LABELS:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def within(host: str, domain: str) -> bool:
    """True when ``host`` is ``domain`` itself or a name under it."""
    host, domain = normalize(host), normalize(domain)
    return host == domain or host.endswith("." + domain)


def same_organization(host: str, domain: str) -> bool:
    """True when ``host`` lies under the registrable domain of ``domain``
    (``imap.example.com`` for an address at ``dept.example.com``)."""
    return within(host, base_domain(domain))

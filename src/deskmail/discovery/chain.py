"""The discovery chain: every source at once, one deadline, one ranked answer.

See the package docstring (``deskmail.discovery``) for the lookup order and
the trust rules; this module only schedules the sources and gathers what they
return before the deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from deskmail.discovery.candidates import (
    Candidate,
    DiscoveryResult,
    Origin,
    Skipped,
    provider_candidates,
    rank,
)
from deskmail.discovery.database import ProviderDatabase, ProviderMatch, load_database
from deskmail.discovery.ispdb import Provider, SourceKind
from deskmail.discovery.options import Deadline, DiscoveryOptions, ProbePolicy, run_all
from deskmail.errors import UsageError
from deskmail.model import email_domain, valid_email

if TYPE_CHECKING:
    from deskmail.discovery.transport import Network

_Found = tuple[list[Candidate], list[Skipped]]


def discover(email: str, *, options: DiscoveryOptions | None = None) -> DiscoveryResult:
    """Find server settings for ``email``; returns within ``options.deadline`` seconds.

    Raises :class:`~deskmail.errors.UsageError` for an address that is not
    one, and :class:`~deskmail.errors.ConfigError` for an unreadable
    ``ca_file``; every network failure is reported in ``result.skipped``.
    """
    opts = options or DiscoveryOptions()
    address = email.strip()
    if not valid_email(address):
        raise UsageError(
            f"{address!r} is not an e-mail address",
            "discovery needs the full address, with the part after the @",
            "give the address as name@example.com",
        )
    domain = ascii_domain(email_domain(address))
    deadline = Deadline(opts.deadline)
    if opts.ca_file:
        from deskmail.net.tls import client_context

        client_context(opts.ca_file)  # a bad CA file is the caller's error, reported before any work
    db = load_database(opts.provider_dirs)
    found: list[Candidate] = []
    skipped: list[Skipped] = [Skipped(Origin.DATABASE, "", p) for p in db.problems]

    match = db.lookup(domain) if Origin.DATABASE in opts.sources else None
    if match is not None:
        cands, bad = database_candidates(match, address)
        found += cands
        skipped += bad
    elif Origin.DATABASE in opts.sources:
        skipped.append(Skipped(Origin.DATABASE, domain, "the provider database has no entry for this domain"))

    if not opts.sources - {Origin.DATABASE}:
        # Offline: the network modules (DNS, TLS, HTTP) are not even imported.
        return DiscoveryResult(
            email=address,
            candidates=rank(found),
            skipped=tuple(skipped),
            provider=match.provider if match else None,
            elapsed=deadline.elapsed(),
        )
    from deskmail.discovery import autoconfig, ispdb_online, probe
    from deskmail.discovery.transport import Network, StepFailed

    net = Network(opts, deadline)
    tasks: dict[Origin, Callable[[], _Found]] = {}
    if Origin.AUTOCONFIG in opts.sources:
        tasks[Origin.AUTOCONFIG] = lambda: autoconfig.discover(net, address, domain, db)
    if Origin.ISPDB in opts.sources and match is None:
        # The bundled copy answers for every domain the ISPDB had at release time.
        tasks[Origin.ISPDB] = lambda: ispdb_online.by_domain(net, address, domain)
    if Origin.SRV in opts.sources:
        tasks[Origin.SRV] = lambda: _srv(net, address, domain, db)
    if Origin.MX in opts.sources:
        ask_ispdb = Origin.ISPDB in opts.sources
        tasks[Origin.MX] = lambda: _mx(net, address, domain, db, ask_ispdb)
    probing = opts.probe is ProbePolicy.ALWAYS or (opts.probe is ProbePolicy.IF_UNKNOWN and match is None)
    if Origin.PROBE in opts.sources and probing:
        tasks[Origin.PROBE] = lambda: probe.discover(net, address, domain)

    outcomes = run_all({o.value: fn for o, fn in tasks.items()}, deadline)
    unfinished: list[Origin] = []
    for origin in tasks:
        out = outcomes[origin.value]
        if out.value is not None:
            found += out.value[0]
            skipped += out.value[1]
        elif isinstance(out.error, StepFailed):
            skipped.append(Skipped(origin, domain, str(out.error)))
        elif out.error is not None:
            # A bug in a source must not cost the user the other sources' answers.
            skipped.append(Skipped(origin, domain, f"failed unexpectedly: {out.error!r}"))
        else:
            unfinished.append(origin)
            skipped.append(Skipped(origin, domain, f"did not finish within the {opts.deadline:g} s deadline"))
    return DiscoveryResult(
        email=address,
        candidates=rank(found),
        skipped=tuple(skipped),
        provider=match.provider if match else None,
        elapsed=deadline.elapsed(),
        unfinished=tuple(unfinished),
    )


def ascii_domain(domain: str) -> str:
    """The DNS (IDNA / punycode) form of a domain: ``bücher.example`` → ``xn--bcher-kva.example``."""
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise UsageError(
            f"{domain!r} is not a valid domain name",
            "the part after the @ contains characters or labels DNS does not allow",
            "check the address for typing mistakes",
        ) from None


def database_candidates(match: ProviderMatch, email: str) -> _Found:
    extra = []
    if not match.exact:
        extra.append(f"{match.asked} is not listed itself; these are the settings for {match.matched}")
    cands, bad = provider_candidates(
        match.provider,
        email,
        origin=Origin.DATABASE,
        source=Origin.DATABASE.label(),
        default_kind=SourceKind.COMMUNITY_DATABASE,
        extra_notes=extra,
    )
    return cands, bad


def _srv(net: Network, email: str, domain: str, db: ProviderDatabase) -> _Found:
    from deskmail.discovery import srv

    records, skipped = srv.lookup(net, domain)
    cands, bad = srv.candidates(records, email, domain, db)
    return cands, skipped + bad


def _mx(net: Network, email: str, domain: str, db: ProviderDatabase, ask_ispdb: bool) -> _Found:
    from deskmail.discovery import ispdb_online, mx

    hosts = mx.lookup(net, domain)
    found, skipped = mx.candidates(hosts, email, domain, db)
    if not found and ask_ispdb:
        # No provider the bundled database knows runs these MX hosts: ask the ISPDB
        # about the preferred one's base domain, as Thunderbird does.
        more, why = ispdb_online.by_mx(net, email, domain, hosts)
        found += more
        skipped += why
    return found, skipped


def lookup_provider(domain: str, *, provider_dirs: tuple[str, ...] = ()) -> Provider | None:
    """The provider database's entry for a domain (or an address), offline and instant.

    Exact domain first, then parent domains (``socal.rr.com`` → ``rr.com``).
    The :class:`Provider` gives ``display_name``, ``recommended(email)`` (the
    settings in order of preference), ``advice()`` (notes to show) and
    ``help_url``.
    """
    db = load_database(provider_dirs)
    name = email_domain(domain) if "@" in domain else domain.strip().lower().rstrip(".")
    try:
        match = db.lookup(ascii_domain(name))
    except UsageError:
        return None
    return match.provider if match else None

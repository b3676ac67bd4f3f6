"""Thunderbird's ISPDB web service: by the address's domain, and by the MX host's base domain.

The bundled copy (``providers/ispdb/``) answers offline for every domain it had
when deskmail was released; the web service (``https://autoconfig.thunderbird.net
/v1.1/<domain>``, :attr:`DiscoveryOptions.ispdb_url`) knows what was added since.
Two questions, as Thunderbird asks them:

* **by domain** — only when the bundled database has no entry for the domain;
* **by MX** — when the domain's MX hosts belong to no provider the bundled
  database knows: the base domain of the preferred MX host (``aspmx.l.google.com``
  → ``google.com``, ``in1-smtp.messagingengine.com`` → ``messagingengine.com``), so a
  custom domain hosted at Google, Microsoft 365, Fastmail, Zoho, Yahoo … gets that
  provider's settings, with its user-name form.

Trust: the service is fetched over verified HTTPS only (an ``ispdb_url`` that is not
``https://`` is refused, redirects never go down to HTTP); its content is curated by
Thunderbird's maintainers, so its servers need no confirmation, but it is second-hand:
confidence medium. ``dm:`` extensions in a fetched file are dropped, as for autoconfig
files. Every fetch is bounded by ``http_timeout`` and the run's deadline; answers
(including "not listed") are cached for the process's lifetime, one hour at most.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from deskmail.discovery.autoconfig import http_get
from deskmail.discovery.candidates import Candidate, Confidence, Origin, Skipped, provider_candidates
from deskmail.discovery.domains import base_domain, normalize
from deskmail.discovery.ispdb import InvalidClientConfig, Provider, SourceKind, parse_client_config
from deskmail.discovery.transport import Network, StepFailed

CACHE_SECONDS = 3600.0
_cache: dict[str, tuple[float, Provider | None]] = {}
_cache_lock = threading.Lock()

_Found = tuple[list[Candidate], list[Skipped]]


def url_for(base: str, domain: str) -> str:
    return base.rstrip("/") + "/" + normalize(domain)


def fetch(net: Network, domain: str) -> tuple[Provider | None, str]:
    """The service's entry for ``domain`` (None when it has none) and the URL asked.

    Raises :class:`StepFailed` when the service cannot be asked or answers nonsense.
    """
    base = net.options.ispdb_url
    url = url_for(base, domain)
    if not base.startswith("https://"):
        raise StepFailed(f"{base} is not an https:// address; deskmail asks the ISPDB only over HTTPS")
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(url)
    if hit is not None and now - hit[0] < CACHE_SECONDS:
        return hit[1], url
    try:
        fetched = http_get(net, url)
    except StepFailed as exc:
        if "HTTP 404" not in str(exc):
            raise
        provider = None  # not listed: an answer, cached like one
    else:
        if not fetched.secure:
            raise StepFailed(f"{url} was answered over plain HTTP")
        try:
            config = parse_client_config(fetched.body, origin=fetched.url, max_bytes=net.options.max_config_bytes)
        except InvalidClientConfig as exc:
            raise StepFailed(exc.reason) from None
        provider = replace(config.provider, sources=(), notes=(), mx_domains=(), operator="", origin=fetched.url)
    with _cache_lock:
        _cache[url] = (now, provider)
    return provider, url


def by_domain(net: Network, email: str, domain: str) -> _Found:
    try:
        provider, url = fetch(net, domain)
    except StepFailed as exc:
        return [], [Skipped(Origin.ISPDB, url_for(net.options.ispdb_url, domain), str(exc))]
    if provider is None:
        return [], [Skipped(Origin.ISPDB, url, "Thunderbird's ISPDB has no entry for this domain")]
    return _candidates(provider, email, Origin.ISPDB, Origin.ISPDB.label(), [f"From {url}"])


def by_mx(net: Network, email: str, domain: str, mx_hosts: list[tuple[int, str]]) -> _Found:
    """The ISPDB entry of the preferred MX host's base domain, as MX candidates."""
    hosts = [h for _, h in mx_hosts if h not in ("", ".")]
    if not hosts:
        return [], []
    host = hosts[0]
    base = base_domain(host)
    if base == base_domain(domain):
        return [], [Skipped(Origin.ISPDB, host, f"the mail exchanger is {domain}'s own server")]
    try:
        provider, url = fetch(net, base)
    except StepFailed as exc:
        return [], [Skipped(Origin.ISPDB, url_for(net.options.ispdb_url, base), str(exc))]
    if provider is None:
        return [], [Skipped(Origin.ISPDB, url, f"Thunderbird's ISPDB has no entry for {base}, where the MX is")]
    name = provider.short_name or provider.display_name
    notes = [
        f"Mail for {domain} is received by {host}; Thunderbird's ISPDB lists {base} as {name} ({url})",
    ]
    found, skipped = _candidates(provider, email, Origin.MX, Origin.MX.label(name), notes)
    return found, skipped


def _candidates(provider: Provider, email: str, origin: Origin, source: str, notes: list[str]) -> _Found:
    found, skipped = provider_candidates(
        provider,
        email,
        origin=origin,
        source=source,
        default_kind=SourceKind.COMMUNITY_DATABASE,
        extra_notes=notes,
    )
    return [replace(c, confidence=Confidence.MEDIUM) for c in found], skipped


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()

"""Account discovery: find the server settings for an e-mail address by itself.

Public API::

    discover(email, *, options=None) -> DiscoveryResult     # network, bounded by options.deadline
    lookup_provider(domain_or_email) -> Provider | None     # provider database only, offline, < 1 ms
    describe_candidate(candidate) -> list[str]              # human-readable lines
    DiscoveryResult.to_json() -> dict                       # `deskmail discover --json`
    Candidate.incoming_settings() / .outgoing_settings() -> deskmail.model.ServerSettings

Lookup order (all network sources run at the same time, under one deadline —
8 s by default — each step with its own short timeout; the order below is
the order of trust, which is how the answers are ranked):

1. **Provider database** — clientConfig files bundled in
   ``discovery/providers/`` plus any drop-in directory; the exact domain,
   then its parent domains (``socal.rr.com`` → ``rr.com``). Instant and
   offline. Source ``"provider database"``.
2. **The domain's autoconfig file** — ``https://autoconfig.<domain>/mail/
   config-v1.1.xml?emailaddress=…`` and ``https://<domain>/.well-known/
   autoconfig/mail/config-v1.1.xml``; plain HTTP only if both fail, and then
   every candidate needs confirmation. Source ``"the domain's autoconfig file"``.
3. **DNS SRV records** (RFC 6186, RFC 8314 ``_submissions``). Source
   ``"DNS SRV records"``.
4. **MX records** whose host belongs to a provider in the database
   (Google Workspace, Microsoft 365 …). Source ``"MX → Google"``.
5. **Probing** the usual host names and ports, reading greetings and
   capabilities, never sending a password. Only when the database does not
   know the domain (``ProbePolicy.IF_UNKNOWN``, the default). Source
   ``"found by probing"``.

Ranking: candidates needing no confirmation first, then by confidence
(high / medium / low), then by the order above, unencrypted last, then each
source's own order. The same settings found twice are merged, with an
"Also found by: …" note.

Confirmation (``needs_confirmation``): a candidate is marked when deskmail
cannot vouch for where the password would go — probing results, autoconfig
fetched over plain HTTP, and any server outside the address's domain (SRV
target, autoconfig file, certificate name) that the provider database does
not list. The caller must ask the user before sending a password there.

JSON shape of :meth:`DiscoveryResult.to_json` (best candidate first)::

    {"email": "bob@spectrum.net",
     "before_password": [{"code": str, "text": str, "url": str}, ...],
     "candidates": [
       {"incoming": {"protocol": "imap"|"pop3", "host": str, "port": int,
                     "security": "ssl"|"starttls"|"none", "username": str},
        "outgoing": {"host": str, "port": int, "security": "ssl"|"starttls"|"none",
                     "username": str, "auth_required": bool},
        "source": str, "confidence": "high"|"medium"|"low",
        "notes": [str, ...], "needs_confirmation": bool}, ...]}

Everything is documented at more length in ``docs/discovery.md``.
"""

from __future__ import annotations

from deskmail.discovery.candidates import (
    Candidate,
    Confidence,
    DiscoveryResult,
    Origin,
    Skipped,
    describe_candidate,
)
from deskmail.discovery.chain import discover, lookup_provider
from deskmail.discovery.database import ProviderDatabase, ProviderMatch, load_database
from deskmail.discovery.ispdb import (
    InvalidClientConfig,
    OAuth2Support,
    PasswordPolicy,
    Provider,
    Requirement,
    ServerTemplate,
    Setup,
    SourceInfo,
    parse_client_config,
)
from deskmail.discovery.options import DiscoveryOptions, ProbePolicy

__all__ = [
    "Candidate",
    "Confidence",
    "DiscoveryOptions",
    "DiscoveryResult",
    "InvalidClientConfig",
    "OAuth2Support",
    "Origin",
    "PasswordPolicy",
    "ProbePolicy",
    "Provider",
    "ProviderDatabase",
    "ProviderMatch",
    "Requirement",
    "ServerTemplate",
    "Setup",
    "Skipped",
    "SourceInfo",
    "describe_candidate",
    "discover",
    "load_database",
    "lookup_provider",
    "parse_client_config",
]

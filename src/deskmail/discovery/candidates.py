"""What discovery returns: candidates with provenance, ranked; and their two renderings.

Pure values and pure functions: building candidates from a provider entry,
ranking, merging duplicates, the JSON shape and the human-readable lines.
Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from deskmail.discovery.ispdb import Provider, Requirement, SourceKind
from deskmail.model import Protocol, ServerSettings


class Origin(StrEnum):
    """The discovery step a candidate comes from, in order of trust."""

    DATABASE = "database"
    AUTOCONFIG = "autoconfig"
    ISPDB = "ispdb"  # Thunderbird's ISPDB web service, by domain (by MX: reported as MX)
    SRV = "srv"
    MX = "mx"
    PROBE = "probe"

    def label(self, operator: str = "") -> str:
        """The ``source`` text of the JSON output."""
        if self is Origin.MX:
            return f"MX → {operator}" if operator else "MX records"
        return _LABELS[self]


_LABELS = {
    Origin.DATABASE: "provider database",
    Origin.AUTOCONFIG: "the domain's autoconfig file",
    Origin.ISPDB: "Thunderbird's ISPDB (online)",
    Origin.SRV: "DNS SRV records",
    Origin.PROBE: "found by probing",
}
_ORIGIN_RANK = {o: i for i, o in enumerate(Origin)}


class Confidence(StrEnum):
    HIGH = "high"  # the provider's or the domain's own statement, over a verified channel
    MEDIUM = "medium"  # second-hand (community database) or unauthenticated DNS
    LOW = "low"  # guessed, or fetched where an attacker could have written it


_CONFIDENCE_RANK = {Confidence.HIGH: 0, Confidence.MEDIUM: 1, Confidence.LOW: 2}


@dataclass(frozen=True)
class Candidate:
    """One complete way to set the account up: incoming + outgoing server."""

    incoming: ServerSettings
    outgoing: ServerSettings
    origin: Origin
    source: str  # human label, e.g. "provider database", "MX → Google"
    confidence: Confidence
    notes: tuple[str, ...] = ()
    needs_confirmation: bool = False  # ask the user before sending a password
    provider: Provider | None = field(default=None, compare=False)

    def incoming_settings(self) -> ServerSettings:
        return self.incoming

    def outgoing_settings(self) -> ServerSettings:
        return self.outgoing

    @property
    def key(self) -> tuple[object, ...]:
        """Identity for merging: the same servers found by two sources are one candidate."""
        i, o = self.incoming, self.outgoing
        return (i.protocol, i.host, i.port, i.security, i.username, o.host, o.port, o.security, o.username)

    def to_json(self) -> dict[str, Any]:
        i, o = self.incoming, self.outgoing
        return {
            "incoming": {
                "protocol": i.protocol.value,
                "host": i.host,
                "port": i.port,
                "security": i.security.value,
                "username": i.username,
            },
            "outgoing": {
                "host": o.host,
                "port": o.port,
                "security": o.security.value,
                "username": o.username,
                "auth_required": o.auth_required,
            },
            "source": self.source,
            "confidence": self.confidence.value,
            "notes": list(self.notes),
            "needs_confirmation": self.needs_confirmation,
        }


@dataclass(frozen=True)
class Skipped:
    """Something a source found or tried and did not use, and why (for `--verbose` and the doctor)."""

    origin: Origin
    what: str
    reason: str

    def describe(self) -> str:
        return (
            f"{self.origin.label()}: {self.what}: {self.reason}"
            if self.what
            else (f"{self.origin.label()}: {self.reason}")
        )


@dataclass(frozen=True)
class DiscoveryResult:
    """Everything one discovery found for an address: the candidates, best first, and what was left out."""

    email: str
    candidates: tuple[Candidate, ...]
    skipped: tuple[Skipped, ...] = ()
    provider: Provider | None = None  # the database's entry for the domain, if any
    elapsed: float = 0.0  # seconds
    unfinished: tuple[Origin, ...] = ()  # sources cut off by the deadline

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    @property
    def before_password(self) -> tuple[Requirement, ...]:
        """What the user must know or do before typing a password (OAuth2 only, app password,
        access to switch on in web settings, a local bridge), from the provider of the domain
        or, failing that, of the best candidate (an MX hit)."""
        provider = self.provider or (self.best.provider if self.best else None)
        return provider.requirements() if provider is not None else ()

    def to_json(self) -> dict[str, Any]:
        """The documented ``deskmail discover --json`` shape (docs/discovery.md)."""
        return {
            "email": self.email,
            "before_password": [{"code": r.code.value, "text": r.text, "url": r.url} for r in self.before_password],
            "candidates": [c.to_json() for c in self.candidates],
        }


def confidence_for(kind: SourceKind) -> Confidence:
    if kind in (SourceKind.FOUNDING_DOCUMENT, SourceKind.PROVIDER_DOCUMENTATION, SourceKind.DOMAIN_AUTOCONFIG):
        return Confidence.HIGH
    return Confidence.MEDIUM


def provider_candidates(
    provider: Provider,
    email: str,
    *,
    origin: Origin,
    source: str,
    default_kind: SourceKind,
    extra_notes: Sequence[str] = (),
) -> tuple[list[Candidate], list[Skipped]]:
    """One candidate per recommended setup of ``provider``, filled in for ``email``.

    The confidence of each comes from the ``dm:source`` its servers cite;
    servers citing none get ``default_kind``.
    """
    out: list[Candidate] = []
    skipped: list[Skipped] = []
    advice = provider.advice()
    for setup in provider.setups():
        try:
            incoming = setup.incoming.settings_for(email)
            outgoing = setup.outgoing.settings_for(email)
        except ValueError as exc:  # a placeholder expanded into something invalid
            skipped.append(Skipped(origin, provider.display_name, str(exc)))
            continue
        info = provider.source(setup.incoming.source_id)
        kind = info.kind if info and info.kind is not SourceKind.UNSPECIFIED else default_kind
        notes = [*extra_notes, *advice]
        if info is not None:
            notes.append("Settings from: " + info.describe())
        out.append(
            Candidate(
                incoming=incoming,
                outgoing=outgoing,
                origin=origin,
                source=source,
                confidence=confidence_for(kind),
                notes=tuple(notes),
                provider=provider,
            )
        )
    return out, skipped


def rank(candidates: Iterable[Candidate]) -> tuple[Candidate, ...]:
    """Best first; duplicates merged into the better one with an "also found by" note.

    Order: candidates that need no confirmation before those that do, then by
    confidence, then by source (database, autoconfig, SRV, MX, probing), then
    unencrypted last, then the order each source gave.
    """
    indexed = list(enumerate(candidates))
    indexed.sort(
        key=lambda ic: (
            ic[1].needs_confirmation,
            _CONFIDENCE_RANK[ic[1].confidence],
            _ORIGIN_RANK[ic[1].origin],
            _plaintext(ic[1]),
            ic[0],
        )
    )
    merged: dict[tuple[object, ...], Candidate] = {}
    for _, c in indexed:
        first = merged.get(c.key)
        if first is None:
            merged[c.key] = c
        elif c.source != first.source:
            note = f"Also found by: {c.source}"
            if note not in first.notes:
                merged[c.key] = replace(first, notes=(*first.notes, note))
    return tuple(merged.values())


def _plaintext(c: Candidate) -> bool:
    return c.incoming.security.value == "none" or c.outgoing.security.value == "none"


def describe_candidate(candidate: Candidate) -> list[str]:
    """Lines for a person (``deskmail discover``), e.g.

    .. code-block:: text

        Spectrum (Charter Communications) — provider database, confidence high
          Incoming: IMAP imap.spectrum.net:993 (SSL/TLS), user bob@spectrum.net
          Outgoing: SMTP smtp.spectrum.net:587 (STARTTLS), user bob@spectrum.net, authentication required
          Note: …
    """
    c = candidate
    title = c.provider.display_name + " — " if c.provider is not None else ""
    lines = [f"{title}{c.source}, confidence {c.confidence.value}"]
    i, o = c.incoming, c.outgoing
    lines.append(f"  Incoming: {i.describe()}, user {i.username}" + _oauth(i))
    auth = "authentication required" if o.auth_required else "no authentication"
    lines.append(f"  Outgoing: {o.describe()}, user {o.username}, {auth}" + _oauth(o))
    if c.needs_confirmation:
        lines.append("  Needs your confirmation before deskmail sends your password there")
    lines.extend(f"  Note: {n}" for n in c.notes)
    return lines


def _oauth(s: ServerSettings) -> str:
    return ", OAuth2 sign-in" if s.auth == "oauth2" else ""


def is_incoming(protocol: Protocol) -> bool:
    return protocol in (Protocol.IMAP, Protocol.POP3)

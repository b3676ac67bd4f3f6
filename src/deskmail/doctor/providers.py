"""What the doctor needs to know about a provider, from the discovery database.

``deskmail.discovery.lookup_provider(domain)`` owns the provider database. The
doctor reads it through :func:`provider_hint`, which turns whatever it returns
into the small :class:`ProviderHint` below, so a change in discovery's
classes costs one adapter here and the doctor keeps working (with the tiny
built-in table) when discovery is not installed or fails.

The built-in table holds only the founding document's provider (Spectrum) and
the few providers whose rules the doctor's texts mention by name; it is a
fallback, not a second database.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from deskmail.model import Protocol, Security, email_domain


@dataclass(frozen=True)
class Recommendation:
    protocol: Protocol
    host: str
    port: int
    security: Security
    auth_required: bool = True

    def describe(self) -> str:
        return f"{self.host} port {self.port} with {self.security.label}"


@dataclass(frozen=True)
class ProviderHint:
    name: str
    recommended: tuple[Recommendation, ...]  # in the provider's order of preference
    notes: tuple[str, ...] = ()
    app_password: bool = False  # app passwords needed (always, or with 2-step verification)
    oauth_only: bool = False

    def for_protocol(self, protocol: Protocol) -> list[Recommendation]:
        return [r for r in self.recommended if r.protocol is protocol]

    def hosts(self) -> set[str]:
        return {r.host.lower() for r in self.recommended}


def _rec(protocol: Protocol, host: str, port: int, security: Security) -> Recommendation:
    return Recommendation(protocol, host, port, security)


_SPECTRUM = ProviderHint(
    "Spectrum",
    (
        _rec(Protocol.IMAP, "imap.spectrum.net", 993, Security.SSL),
        _rec(Protocol.POP3, "pop.spectrum.net", 995, Security.SSL),
        _rec(Protocol.SMTP, "smtp.spectrum.net", 587, Security.STARTTLS),
    ),
    ("Use the full email address as the user name.",),
    app_password=True,
)
_GMAIL = ProviderHint(
    "Gmail",
    (
        _rec(Protocol.IMAP, "imap.gmail.com", 993, Security.SSL),
        _rec(Protocol.POP3, "pop.gmail.com", 995, Security.SSL),
        _rec(Protocol.SMTP, "smtp.gmail.com", 465, Security.SSL),
        _rec(Protocol.SMTP, "smtp.gmail.com", 587, Security.STARTTLS),
    ),
    ("With 2-step verification on, create an app password at myaccount.google.com/apppasswords.",),
    app_password=True,
)
_YAHOO = ProviderHint(
    "Yahoo Mail",
    (
        _rec(Protocol.IMAP, "imap.mail.yahoo.com", 993, Security.SSL),
        _rec(Protocol.POP3, "pop.mail.yahoo.com", 995, Security.SSL),
        _rec(Protocol.SMTP, "smtp.mail.yahoo.com", 465, Security.SSL),
        _rec(Protocol.SMTP, "smtp.mail.yahoo.com", 587, Security.STARTTLS),
    ),
    ("Mail programs need an app password (Account security → Generate app password).",),
    app_password=True,
)
_FALLBACK: dict[str, ProviderHint] = {
    "spectrum.net": _SPECTRUM,
    "charter.net": _SPECTRUM,
    "twc.com": _SPECTRUM,
    "roadrunner.com": _SPECTRUM,
    "gmail.com": _GMAIL,
    "googlemail.com": _GMAIL,
    "yahoo.com": _YAHOO,
}


def _enum_value(value: Any) -> str:
    return str(getattr(value, "value", value))


def _from_discovery(provider: Any, email: str) -> ProviderHint:
    """Adapt discovery's Provider (display_name, incoming/outgoing templates, notes)."""
    recommended: list[Recommendation] = []
    templates: Iterable[Any] = (*getattr(provider, "incoming", ()), *getattr(provider, "outgoing", ()))
    for template in templates:
        if hasattr(template, "settings_for"):
            settings = template.settings_for(email)
            host, port, security = settings.host, settings.port, settings.security
            auth_required = bool(getattr(settings, "auth_required", True))
        else:
            host = str(getattr(template, "hostname", getattr(template, "host", "")))
            port = int(template.port)
            security = Security(_enum_value(template.security))
            auth_required = bool(getattr(template, "auth_required", True))
        protocol = Protocol(_enum_value(template.protocol))
        recommended.append(Recommendation(protocol, host.lower(), port, security, auth_required))
    password = _enum_value(getattr(provider, "password", ""))
    return ProviderHint(
        # short_name ("Spectrum") reads better in sentences than display_name
        # ("Spectrum (Charter Communications)").
        name=str(
            getattr(provider, "short_name", "")
            or getattr(provider, "display_name", "")
            or getattr(provider, "name", "")
            or "your provider"
        ),
        recommended=tuple(recommended),
        notes=tuple(str(n) for n in (provider.advice() if callable(getattr(provider, "advice", None))
                                      else getattr(provider, "notes", ()))),
        app_password=password.startswith("app-password"),
        oauth_only=bool(getattr(provider, "oauth2_only", False)),
    )


def _discovery_lookup() -> Callable[[str], Any] | None:
    try:
        module = importlib.import_module("deskmail.discovery")
    except ImportError:
        return None
    lookup = getattr(module, "lookup_provider", None)
    return lookup if callable(lookup) else None


def provider_hint(email: str) -> ProviderHint | None:
    """The provider of ``email``'s domain, from discovery if available, else the built-in table."""
    domain = email_domain(email)
    lookup = _discovery_lookup()
    if lookup is not None:
        try:
            provider = lookup(domain)
            if provider is not None:
                hint = _from_discovery(provider, email)
                if hint.recommended:
                    return hint
        except Exception:
            # The doctor must keep diagnosing even if the database is broken;
            # the built-in table is good enough for the review step.
            pass
    return _FALLBACK.get(domain)

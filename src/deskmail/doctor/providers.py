"""What the doctor needs to know about a provider, from the discovery database.

``deskmail.discovery.lookup_provider(domain)`` owns the provider database (the
only one). The doctor reads it through :func:`provider_hint`, which turns a
provider into the small :class:`ProviderHint` below, so a change in discovery's
classes costs one adapter here.
"""

from __future__ import annotations

from collections.abc import Iterable
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
    local_bridge: bool = False  # the servers are a program on this computer (Proton Mail Bridge)

    def for_protocol(self, protocol: Protocol) -> list[Recommendation]:
        return [r for r in self.recommended if r.protocol is protocol]

    def hosts(self) -> set[str]:
        return {r.host.lower() for r in self.recommended}


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
        local_bridge=password == "bridge",
    )


def provider_hint(email: str) -> ProviderHint | None:
    """The provider of ``email``'s domain, from the discovery database (None when it is unknown)."""
    from deskmail.discovery import lookup_provider

    provider = lookup_provider(email_domain(email))
    if provider is None:
        return None
    hint = _from_discovery(provider, email)
    return hint if hint.recommended else None

"""Providers that cannot be set up by host names and a password alone: Proton Mail (Bridge),
Microsoft consumer accounts (OAuth2 only), providers that want access switched on or an app
password. What the user must know comes with the discovery result, before any password."""

from __future__ import annotations

import json

import pytest

from deskmail.discovery import DiscoveryOptions, Origin, discover, lookup_provider
from deskmail.discovery.ispdb import PasswordPolicy
from deskmail.model import Protocol, Security

OFFLINE = DiscoveryOptions(sources=frozenset({Origin.DATABASE}), deadline=2)


@pytest.mark.parametrize("domain", ["proton.me", "protonmail.com", "protonmail.ch", "pm.me"])
def test_proton_mail_goes_through_bridge(domain: str) -> None:
    email = f"kim@{domain}"
    result = discover(email, options=OFFLINE)
    assert result.provider is not None and result.provider.password is PasswordPolicy.BRIDGE
    (best,) = result.candidates  # Bridge is the only way in: no other host to offer
    i, o = best.incoming, best.outgoing
    assert (i.protocol, i.host, i.port, i.security, i.username) == (
        Protocol.IMAP, "127.0.0.1", 1143, Security.STARTTLS, email
    )
    assert (o.host, o.port, o.security, o.username, o.auth_required) == (
        "127.0.0.1", 1025, Security.STARTTLS, email, True
    )
    codes = [r.code for r in result.before_password]
    assert codes == ["local_bridge", "local_bridge"]
    text = " ".join(r.text for r in result.before_password)
    assert "Proton Mail Bridge" in text and "password Bridge shows" in text
    assert "127.0.0.1 and nowhere else" in text  # Bridge's certificate: this account, loopback only
    assert all(r.url.startswith("https://proton.me/") for r in result.before_password)
    assert any("Bridge" in n for n in best.notes)  # also on the candidate, for `deskmail discover`


@pytest.mark.parametrize("domain", ["outlook.com", "hotmail.com", "hotmail.de", "live.com", "live.co.uk",
                                    "msn.com"])
def test_microsoft_consumer_accounts_are_oauth2_only(domain: str) -> None:
    result = discover(f"sam@{domain}", options=OFFLINE)
    assert [r.code for r in result.before_password] == ["oauth_required"]
    assert "passwords are refused" in result.before_password[0].text
    best = result.best
    assert best is not None and best.incoming.auth == "oauth2" and best.outgoing.auth == "oauth2"
    data = json.loads(json.dumps(result.to_json()))
    assert data["before_password"][0]["code"] == "oauth_required"


@pytest.mark.parametrize(
    ("domain", "code", "words"),
    [
        ("gmail.com", "app_password_required", "app password"),
        ("yahoo.com", "app_password_required", "app password"),
        ("cox.net", "app_password_required", "app password"),
        ("spectrum.net", "app_password_if_two_step", "2-step verification"),
        ("t-online.de", "enable_in_web_settings", "E-Mail-Password"),
    ],
)
def test_notes_before_the_password(domain: str, code: str, words: str) -> None:
    result = discover(f"lee@{domain}", options=OFFLINE)
    found = [r for r in result.before_password if r.code == code]
    assert found and words in found[0].text, result.before_password


def test_imap_to_enable_comes_with_the_providers_link() -> None:
    # ISPDB's <enable visiturl> for an imported provider with an instruction to switch IMAP on.
    provider = lookup_provider("jazztel.es")  # ISPDB's Google Mail entry (gmail.com itself is deskmail's own)
    assert provider is not None
    (req,) = [r for r in provider.requirements() if r.code == "enable_in_web_settings"]
    assert req.text.startswith("You need to enable IMAP access")
    assert req.url.startswith("https://mail.google.com/")
    assert req.url in req.text


def test_unknown_domain_has_nothing_before_the_password() -> None:
    result = discover("x@unknown-domain.example", options=OFFLINE)
    assert result.before_password == () and result.to_json()["before_password"] == []

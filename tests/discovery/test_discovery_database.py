"""The bundled provider database: coverage, the Spectrum family, provenance, speed, drop-in files."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from deskmail.discovery import (
    DiscoveryOptions,
    OAuth2Support,
    Origin,
    PasswordPolicy,
    ProbePolicy,
    discover,
    load_database,
    lookup_provider,
)
from deskmail.discovery.database import bundled_database
from deskmail.discovery.ispdb import SourceKind
from deskmail.model import Protocol, Security

FOUNDING = [
    ("imap", "imap.spectrum.net", 993, "ssl", "smtp.spectrum.net", 587, "starttls"),
    ("pop3", "pop.spectrum.net", 995, "ssl", "smtp.spectrum.net", 587, "starttls"),
]
CHARTER_ALTERNATIVES = [
    ("imap", "mobile.charter.net", 993, "ssl", "mobile.charter.net", 587, "ssl"),
    ("pop3", "mobile.charter.net", 995, "ssl", "mobile.charter.net", 587, "ssl"),
]
TWC_ALTERNATIVES = [
    ("imap", "mail.twc.com", 993, "ssl", "mail.twc.com", 587, "starttls"),
    ("pop3", "mail.twc.com", 995, "ssl", "mail.twc.com", 587, "starttls"),
]
SPECTRUM_FAMILY = {
    "spectrum.net": CHARTER_ALTERNATIVES,
    "charter.net": CHARTER_ALTERNATIVES,
    "bresnan.net": CHARTER_ALTERNATIVES,
    "twc.com": TWC_ALTERNATIVES,
    "roadrunner.com": TWC_ALTERNATIVES,
    "rr.com": TWC_ALTERNATIVES,
    "brighthouse.com": TWC_ALTERNATIVES,
    "nc.rr.com": TWC_ALTERNATIVES,
    "socal.rr.com": TWC_ALTERNATIVES,
    "tampabay.rr.com": TWC_ALTERNATIVES,
    "some-new-region.rr.com": TWC_ALTERNATIVES,  # not listed: found through the parent rr.com
}


def rows(pairs: object) -> list[tuple[object, ...]]:
    return [
        (i.protocol.value, i.host, i.port, i.security.value, o.host, o.port, o.security.value)
        for i, o in pairs  # type: ignore[attr-defined]
    ]


def test_every_bundled_file_loads_without_problems() -> None:
    db = bundled_database()
    assert db.problems == ()
    assert len(db) >= 20


@pytest.mark.parametrize("domain", sorted(SPECTRUM_FAMILY))
def test_spectrum_family_gets_founding_settings_first_then_alternatives(domain: str) -> None:
    email = f"bob@{domain}"
    provider = lookup_provider(domain)
    assert provider is not None and provider.short_name == "Spectrum"
    assert rows(provider.recommended(email)) == FOUNDING + SPECTRUM_FAMILY[domain]
    for incoming, outgoing in provider.recommended(email):
        assert incoming.username == email and outgoing.username == email  # full address
        assert outgoing.auth_required
    assert any("app password" in a for a in provider.advice())


@pytest.mark.parametrize("domain", ["spectrum.net", "socal.rr.com"])
def test_spectrum_offline_discovery_ranks_founding_first(domain: str) -> None:
    # Offline: the database alone, no network source at all.
    opts = DiscoveryOptions(sources=frozenset({Origin.DATABASE}), deadline=2)
    started = time.monotonic()
    result = discover(f"carol@{domain}", options=opts)
    assert time.monotonic() - started < 0.5
    got = [(c.incoming_settings(), c.outgoing_settings()) for c in result.candidates]
    assert rows(got) == FOUNDING + SPECTRUM_FAMILY[domain]
    first = result.candidates[0]
    assert (first.source, first.confidence.value, first.needs_confirmation) == ("provider database", "high", False)
    assert any("founding document" in n for n in first.notes)
    # The community-database alternatives are ranked below, at medium confidence.
    assert [c.confidence.value for c in result.candidates] == ["high", "high", "medium", "medium"]


def test_charter_alternative_is_implicit_tls_on_587() -> None:
    provider = lookup_provider("charter.net")
    assert provider is not None
    smtp = next(o for _, o in provider.recommended("a@charter.net") if o.host == "mobile.charter.net")
    assert (smtp.port, smtp.security) == (587, Security.SSL)


@pytest.mark.parametrize(
    ("domain", "provider_id", "imap_host"),
    [
        ("gmail.com", "gmail.com", "imap.gmail.com"),
        ("googlemail.com", "gmail.com", "imap.gmail.com"),
        ("outlook.com", "outlook.com", "outlook.office365.com"),
        ("hotmail.com", "outlook.com", "outlook.office365.com"),
        ("live.com", "outlook.com", "outlook.office365.com"),
        ("msn.com", "outlook.com", "outlook.office365.com"),
        ("hotmail.co.uk", "outlook.com", "outlook.office365.com"),
        ("yahoo.com", "yahoo.com", "imap.mail.yahoo.com"),
        ("ymail.com", "yahoo.com", "imap.mail.yahoo.com"),
        ("rocketmail.com", "yahoo.com", "imap.mail.yahoo.com"),
        ("aol.com", "aol.com", "imap.aol.com"),
        ("icloud.com", "icloud.com", "imap.mail.me.com"),
        ("me.com", "icloud.com", "imap.mail.me.com"),
        ("mac.com", "icloud.com", "imap.mail.me.com"),
        ("comcast.net", "comcast.net", "imap.comcast.net"),
        ("att.net", "att.net", "imap.mail.att.net"),
        ("sbcglobal.net", "att.net", "imap.mail.att.net"),
        ("bellsouth.net", "att.net", "imap.mail.att.net"),
        ("verizon.net", "verizon.net", "imap.aol.com"),
        ("cox.net", "cox.net", "imap.mail.yahoo.com"),  # Cox mail moved to Yahoo (2024)
        ("gmx.net", "gmx.net", "imap.gmx.net"),
        ("gmx.de", "gmx.net", "imap.gmx.net"),
        ("gmx.com", "gmx.com", "imap.gmx.com"),
        ("web.de", "web.de", "imap.web.de"),
        ("yandex.ru", "yandex.ru", "imap.yandex.com"),
        ("yandex.com", "yandex.ru", "imap.yandex.com"),
        ("mail.ru", "mail.ru", "imap.mail.ru"),
        ("zoho.com", "zoho.com", "imap.zoho.com"),
        ("fastmail.com", "fastmail.com", "imap.fastmail.com"),
        ("contoso.onmicrosoft.com", "microsoft365", "outlook.office365.com"),
    ],
)
def test_large_providers(domain: str, provider_id: str, imap_host: str) -> None:
    provider = lookup_provider(f"someone@{domain}")
    assert provider is not None and provider.id == provider_id
    first_in, _ = provider.recommended(f"someone@{domain}")[0]
    assert (first_in.protocol, first_in.host, first_in.port, first_in.security) == (
        Protocol.IMAP,
        imap_host,
        993,
        Security.SSL,
    )
    assert provider.help_url.startswith("https://")


def test_provider_facts_used_by_account_add_and_the_doctor() -> None:
    outlook = lookup_provider("hotmail.com")
    gmail = lookup_provider("gmail.com")
    icloud = lookup_provider("icloud.com")
    assert outlook is not None and gmail is not None and icloud is not None
    assert outlook.oauth2_only and outlook.password is PasswordPolicy.NONE
    assert outlook.recommended("a@hotmail.com")[0][0].auth == "oauth2"
    assert not gmail.oauth2_only and gmail.password is PasswordPolicy.APP_PASSWORD
    assert gmail.oauth2 is OAuth2Support.YES
    assert any("OAuth2" in a for a in gmail.advice())
    assert icloud.username_form == "local part"
    imap, smtp = icloud.recommended("jo@icloud.com")[0]
    assert (imap.username, smtp.username) == ("jo", "jo@icloud.com")


def test_every_bundled_entry_states_its_provenance() -> None:
    for p in bundled_database().providers:
        assert p.sources, p.id
        ids = {s.id for s in p.sources}
        for server in (*p.incoming, *p.outgoing):
            assert server.source_id in ids, (p.id, server.hostname)
        for s in p.sources:
            assert s.kind is not SourceKind.UNSPECIFIED, p.id
            assert s.description
            assert s.url or s.kind is SourceKind.FOUNDING_DOCUMENT, p.id


@pytest.mark.parametrize(
    ("mx_host", "provider_id", "operator"),
    [
        ("aspmx.l.google.com", "google-workspace", "Google"),
        ("alt1.aspmx.l.google.com", "google-workspace", "Google"),
        ("smtp.googlemail.com", "google-workspace", "Google"),
        ("contoso-com.mail.protection.outlook.com", "microsoft365", "Microsoft"),
        ("mx.zoho.com", "zoho-organization", "Zoho"),
        ("in1-smtp.messagingengine.com", "fastmail.com", "Fastmail"),
        ("mx.yandex.net", "yandex.ru", "Yandex"),
    ],
)
def test_mx_hosts_map_to_providers(mx_host: str, provider_id: str, operator: str) -> None:
    match = bundled_database().lookup_mx(mx_host)
    assert match is not None
    assert (match.provider.id, match.provider.operator) == (provider_id, operator)


def test_unknown_domains() -> None:
    assert lookup_provider("example.com") is None
    assert lookup_provider("com") is None
    assert bundled_database().lookup_mx("mx.example.com") is None


def test_database_hit_is_fast() -> None:
    lookup_provider("warmup.rr.com")
    times = []
    for _ in range(200):
        started = time.perf_counter()
        assert lookup_provider("socal.rr.com") is not None
        times.append(time.perf_counter() - started)
    times.sort()
    assert times[len(times) // 2] < 0.05  # median
    assert times[int(len(times) * 0.95)] < 0.05  # and nearly always


def test_drop_in_directory_adds_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "corp.xml").write_text(
        """<clientConfig version="1.1"><emailProvider id="corp.test"><domain>corp.test</domain>
        <domain>gmail.com</domain><displayName>Corp</displayName>
        <incomingServer type="imap"><hostname>imap.corp.test</hostname><port>993</port><socketType>SSL</socketType>
        <username>%EMAILADDRESS%</username></incomingServer>
        <outgoingServer type="smtp"><hostname>smtp.corp.test</hostname><port>465</port><socketType>SSL</socketType>
        <username>%EMAILADDRESS%</username></outgoingServer></emailProvider></clientConfig>"""
    )
    (tmp_path / "broken.xml").write_text("<clientConfig><emailProvider>")
    (tmp_path / "notes.txt").write_text("ignored: not .xml")
    db = load_database([str(tmp_path)])
    assert db.lookup("corp.test") is not None
    corp = db.lookup("gmail.com")
    assert corp is not None and corp.provider.display_name == "Corp"  # a later file wins
    assert db.lookup("yahoo.com") is not None  # bundled entries still there
    assert len(db.problems) == 1 and "broken.xml" in db.problems[0]
    assert lookup_provider("corp.test", provider_dirs=(str(tmp_path),)) is not None
    # The drop-in is used by discover() too; a broken file is reported, not fatal.
    opts = DiscoveryOptions(
        sources=frozenset({Origin.DATABASE}), provider_dirs=(str(tmp_path),), probe=ProbePolicy.NEVER
    )
    result = discover("x@corp.test", options=opts)
    assert result.candidates[0].incoming.host == "imap.corp.test"
    assert any("broken.xml" in s.reason for s in result.skipped)


def test_oversized_drop_in_file_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "huge.xml").write_bytes(b"<clientConfig>" + b" " * (1024 * 1024 + 10) + b"</clientConfig>")
    db = load_database([str(tmp_path)])
    assert len(db.problems) == 1 and "larger than" in db.problems[0]

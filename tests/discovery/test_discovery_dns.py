"""RFC 6186 SRV records and MX → provider, against the test DNS server."""

from __future__ import annotations

from collections.abc import Callable

from discoverykit import DNSServer

from deskmail.discovery import DiscoveryOptions, Origin, discover
from deskmail.discovery.database import bundled_database
from deskmail.discovery.srv import SrvRecord, candidates
from deskmail.model import Protocol, Security

Options = Callable[..., DiscoveryOptions]
SRV_ONLY = frozenset({Origin.SRV})
MX_ONLY = frozenset({Origin.MX})


def summary(c: object) -> tuple[object, ...]:
    i, o = c.incoming, c.outgoing  # type: ignore[attr-defined]
    return (i.protocol.value, i.host, i.port, i.security.value, o.host, o.port, o.security.value)


def test_srv_records_become_ranked_candidates(dns_server: DNSServer, options: Options) -> None:
    d = "srv1.test"
    dns_server.add(f"_imaps._tcp.{d}", "SRV", "0 1 993 imap.srv1.test.")
    dns_server.add(f"_imap._tcp.{d}", "SRV", "10 1 143 imap.srv1.test.")
    dns_server.add(f"_pop3s._tcp.{d}", "SRV", "0 0 0 .")
    dns_server.add(f"_submissions._tcp.{d}", "SRV", "0 1 465 smtp.srv1.test.")
    dns_server.add(f"_submission._tcp.{d}", "SRV", "5 1 587 smtp.srv1.test.")
    result = discover(f"ann@{d}", options=options(sources=SRV_ONLY))
    assert [summary(c) for c in result.candidates] == [
        ("imap", "imap.srv1.test", 993, "ssl", "smtp.srv1.test", 465, "ssl"),
        ("imap", "imap.srv1.test", 143, "starttls", "smtp.srv1.test", 465, "ssl"),
        ("imap", "imap.srv1.test", 993, "ssl", "smtp.srv1.test", 587, "starttls"),
    ]
    best = result.candidates[0]
    assert (best.source, best.confidence.value, best.needs_confirmation) == ("DNS SRV records", "medium", False)
    assert best.incoming.username == "ann@srv1.test"
    assert any("not offered" in s.reason and "_pop3s" in s.what for s in result.skipped)


def test_srv_target_outside_the_domain_needs_confirmation(dns_server: DNSServer, options: Options) -> None:
    d = "srvforeign.test"
    dns_server.add(f"_imaps._tcp.{d}", "SRV", "0 1 993 mail.elsewhere.test.")
    dns_server.add(f"_submission._tcp.{d}", "SRV", "0 1 587 mail.elsewhere.test.")
    result = discover(f"ann@{d}", options=options(sources=SRV_ONLY))
    (c,) = result.candidates
    assert c.needs_confirmation
    assert any("mail.elsewhere.test" in n and "outside srvforeign.test" in n for n in c.notes)


def test_srv_target_known_to_the_database_is_vouched_for(dns_server: DNSServer, options: Options) -> None:
    d = "srvgoogle.test"
    dns_server.add(f"_imaps._tcp.{d}", "SRV", "0 1 993 imap.gmail.com.")
    dns_server.add(f"_submissions._tcp.{d}", "SRV", "0 1 465 smtp.gmail.com.")
    (c,) = discover(f"ann@{d}", options=options(sources=SRV_ONLY)).candidates
    assert not c.needs_confirmation


def test_srv_with_only_incoming_records_gives_no_candidate(dns_server: DNSServer, options: Options) -> None:
    d = "srvhalf.test"
    dns_server.add(f"_imaps._tcp.{d}", "SRV", "0 1 993 imap.srvhalf.test.")
    result = discover(f"ann@{d}", options=options(sources=SRV_ONLY))
    assert result.candidates == ()
    assert any("none for the outgoing" in s.reason for s in result.skipped)


def test_srv_ordering_priority_then_tls_then_weight() -> None:
    def rec(proto: Protocol, sec: Security, prio: int, weight: int, target: str, port: int) -> SrvRecord:
        return SrvRecord(f"_x.{target}", proto, sec, prio, weight, port, target)

    records = [
        rec(Protocol.POP3, Security.SSL, 0, 0, "pop.o.test", 995),  # POP3 preferred by priority (RFC 6186 §3.4)
        rec(Protocol.IMAP, Security.STARTTLS, 5, 0, "imap.o.test", 143),
        rec(Protocol.IMAP, Security.SSL, 5, 0, "imap.o.test", 993),  # same priority: implicit TLS first
        rec(Protocol.IMAP, Security.SSL, 5, 50, "imap2.o.test", 993),  # heavier weight first
        rec(Protocol.SMTP, Security.STARTTLS, 0, 0, "smtp.o.test", 587),
    ]
    cands, _ = candidates(records, "a@o.test", "o.test", bundled_database())
    assert [(c.incoming.host, c.incoming.port) for c in cands] == [
        ("pop.o.test", 995),
        ("imap2.o.test", 993),
        ("imap.o.test", 993),
        ("imap.o.test", 143),
    ]


def test_mx_at_google_gives_gmail_settings(dns_server: DNSServer, options: Options) -> None:
    d = "workspace.test"
    dns_server.add(d, "MX", "10 aspmx.l.google.com.", "20 alt1.aspmx.l.google.com.")
    result = discover(f"ceo@{d}", options=options(sources=MX_ONLY))
    best = result.candidates[0]
    assert best.source == "MX → Google"
    assert (best.incoming.host, best.incoming.port, best.outgoing.host) == ("imap.gmail.com", 993, "smtp.gmail.com")
    assert best.incoming.username == "ceo@workspace.test"
    assert best.confidence.value == "medium" and not best.needs_confirmation
    assert any("aspmx.l.google.com" in n for n in best.notes)


def test_mx_at_microsoft_365(dns_server: DNSServer, options: Options) -> None:
    d = "m365.test"
    dns_server.add(d, "MX", "0 m365-test.mail.protection.outlook.com.")
    best = discover(f"ceo@{d}", options=options(sources=MX_ONLY)).candidates[0]
    assert best.source == "MX → Microsoft"
    assert best.provider is not None and best.provider.id == "microsoft365"
    assert (best.incoming.host, best.outgoing.host) == ("outlook.office365.com", "smtp.office365.com")
    assert best.incoming.auth == "oauth2"


def test_null_mx_and_unknown_mx_are_reported(dns_server: DNSServer, options: Options) -> None:
    dns_server.add("nullmx.test", "MX", "0 .")
    dns_server.add("ownmx.test", "MX", "10 mx.ownmx.test.")
    r1 = discover("a@nullmx.test", options=options(sources=MX_ONLY))
    r2 = discover("a@ownmx.test", options=options(sources=MX_ONLY))
    assert r1.candidates == () and any("null MX" in s.reason for s in r1.skipped)
    assert r2.candidates == () and any("no known provider" in s.reason for s in r2.skipped)


def test_database_and_mx_agreeing_are_merged(dns_server: DNSServer, options: Options) -> None:
    # googlemail.com is in the database *and* its MX points to Google: one candidate, two sources.
    dns_server.add("googlemail.com", "MX", "5 gmail-smtp-in.l.google.com.")
    result = discover("x@googlemail.com", options=options(sources=frozenset({Origin.DATABASE, Origin.MX})))
    best = result.candidates[0]
    assert best.source == "provider database"
    assert "Also found by: MX → Google" in best.notes
    assert len({c.key for c in result.candidates}) == len(result.candidates)

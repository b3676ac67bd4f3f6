"""Thunderbird's ISPDB web service, by domain and by the MX host's base domain, against the
tests' own DNS and HTTPS servers (the service's address is an option)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from discoverykit import DNSServer, Route, WebServer

from deskmail.discovery import DiscoveryOptions, Origin, ProbePolicy, discover, ispdb_online

ISPDB_HOST = "ispdb.test"
ISPDB_URL = f"https://{ISPDB_HOST}/v1.1/"


def entry(domain: str, name: str, host: str, username: str = "%EMAILADDRESS%") -> bytes:
    return f"""<?xml version="1.0"?>
<clientConfig version="1.1"><emailProvider id="{domain}"><domain>{domain}</domain>
<displayName>{name} Mail</displayName><displayShortName>{name}</displayShortName>
<incomingServer type="imap"><hostname>imap.{host}</hostname><port>993</port><socketType>SSL</socketType>
<username>{username}</username><authentication>password-cleartext</authentication></incomingServer>
<outgoingServer type="smtp"><hostname>smtp.{host}</hostname><port>587</port><socketType>STARTTLS</socketType>
<username>{username}</username><authentication>password-cleartext</authentication></outgoingServer>
<enable visiturl="https://{host}/settings"><instruction>Switch IMAP on first</instruction></enable>
<dm:note xmlns:dm="urn:x-deskmail:clientconfig:1">a web server may not speak for deskmail</dm:note>
</emailProvider></clientConfig>""".encode()


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    ispdb_online.clear_cache()
    yield
    ispdb_online.clear_cache()


@pytest.fixture
def online(options: Callable[..., DiscoveryOptions], dns_server: DNSServer) -> Callable[..., DiscoveryOptions]:
    dns_server.add_host(ISPDB_HOST)

    def make(**changes: object) -> DiscoveryOptions:
        base: dict[str, object] = {"ispdb_url": ISPDB_URL, "probe": ProbePolicy.NEVER}
        base.update(changes)
        return options(**base)

    return make


def asked(server: WebServer, domain: str) -> int:
    return sum(1 for host, path in server.requests if host == ISPDB_HOST and path == f"/v1.1/{domain}")


def test_by_domain(online: Callable[..., DiscoveryOptions], https_server: WebServer) -> None:
    https_server.serve(ISPDB_HOST, "/v1.1/fresh-isp.test", Route(entry("fresh-isp.test", "Fresh", "fresh-isp.test")))
    result = discover("ann@fresh-isp.test", options=online())
    best = result.best
    assert best is not None and best.origin is Origin.ISPDB
    assert best.source == "Thunderbird's ISPDB (online)" and best.confidence.value == "medium"
    assert (best.incoming.host, best.incoming.username, best.outgoing.host) == (
        "imap.fresh-isp.test", "ann@fresh-isp.test", "smtp.fresh-isp.test"
    )
    assert not best.needs_confirmation
    assert f"From {ISPDB_URL}fresh-isp.test" in best.notes
    assert any(n.startswith("Switch IMAP on first") for n in best.notes)
    assert not any("deskmail" in n for n in best.notes)  # dm: extensions from the web are dropped
    assert [r.code for r in result.before_password] == ["enable_in_web_settings"]
    # Cached: a second run does not ask again.
    discover("bob@fresh-isp.test", options=online())
    assert asked(https_server, "fresh-isp.test") == 1


def test_by_mx_base_domain(
    online: Callable[..., DiscoveryOptions], https_server: WebServer, dns_server: DNSServer
) -> None:
    # A custom domain whose mail goes to a hosting provider the bundled database does not know.
    dns_server.add("acme-corp.test", "MX", "10 mx1.eu.hosted-mail.test.", "20 mx2.eu.hosted-mail.test.")
    https_server.serve(
        ISPDB_HOST, "/v1.1/hosted-mail.test",
        Route(entry("hosted-mail.test", "Hosted", "hosted-mail.test", username="%EMAILLOCALPART%")),
    )
    result = discover("cleo@acme-corp.test", options=online())
    best = result.best
    assert best is not None and best.origin is Origin.MX and best.source == "MX → Hosted"
    assert (best.incoming.host, best.incoming.username) == ("imap.hosted-mail.test", "cleo")  # its user-name form
    assert any("mx1.eu.hosted-mail.test" in n and "hosted-mail.test as Hosted" in n for n in best.notes)
    assert asked(https_server, "acme-corp.test") == 1  # by domain first: not listed (404)
    assert any(s.origin is Origin.ISPDB and "no entry" in s.reason for s in result.skipped)


def test_mx_at_a_bundled_provider_needs_no_online_lookup(
    online: Callable[..., DiscoveryOptions], https_server: WebServer, dns_server: DNSServer
) -> None:
    dns_server.add("gsuite-customer.test", "MX", "1 aspmx.l.google.com.")
    result = discover("dee@gsuite-customer.test", options=online())
    best = result.best
    assert best is not None and best.source == "MX → Google" and best.incoming.host == "imap.gmail.com"
    assert asked(https_server, "google.com") == 0


def test_the_service_is_asked_only_over_https(
    online: Callable[..., DiscoveryOptions], http_server: WebServer
) -> None:
    http_server.serve(ISPDB_HOST, "/v1.1/plain-isp.test", Route(entry("plain-isp.test", "Plain", "plain-isp.test")))
    result = discover("eve@plain-isp.test", options=online(ispdb_url=f"http://{ISPDB_HOST}/v1.1/"))
    assert not any(c.origin is Origin.ISPDB for c in result.candidates)
    assert any(s.origin is Origin.ISPDB and "only over HTTPS" in s.reason for s in result.skipped)
    assert not any(host == ISPDB_HOST for host, _ in http_server.requests)


def test_a_domain_in_the_bundled_copy_is_not_asked_online(
    online: Callable[..., DiscoveryOptions], https_server: WebServer
) -> None:
    result = discover("fay@t-online.de", options=online(sources=frozenset({Origin.DATABASE, Origin.ISPDB})))
    assert result.best is not None and result.best.origin is Origin.DATABASE
    assert asked(https_server, "t-online.de") == 0


def test_an_unanswering_service_is_time_boxed(
    online: Callable[..., DiscoveryOptions], dns_server: DNSServer
) -> None:
    dns_server.make_silent("silent-ispdb.test")  # its own name: the DNS server is shared by the session
    opts = online(deadline=2.0, dns_timeout=0.5, ispdb_url="https://silent-ispdb.test/v1.1/")
    result = discover("gus@silent-isp.test", options=opts)
    assert result.elapsed < 2.5
    assert any(s.origin is Origin.ISPDB for s in result.skipped)

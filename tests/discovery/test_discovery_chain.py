"""The whole chain: deadlines, ranking across sources, the public API and its JSON shape."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from discoverykit import BlackHole, DNSServer, FakeMailServer, Route, WebServer, closed_port

import deskmail.discovery as discovery
from deskmail.discovery import (
    Candidate,
    DiscoveryOptions,
    Origin,
    ProbePolicy,
    describe_candidate,
    discover,
)
from deskmail.errors import ConfigError, UsageError
from deskmail.model import ServerSettings

Options = Callable[..., DiscoveryOptions]
Servers = Callable[..., FakeMailServer]


def test_unknown_domain_with_nothing_anywhere_is_quick(dns_server: DNSServer, options: Options) -> None:
    started = time.monotonic()
    result = discover("nobody@unknown-everywhere.test", options=options(deadline=8.0))
    assert time.monotonic() - started < 2.0
    assert result.candidates == () and result.unfinished == ()
    assert {s.origin for s in result.skipped} == set(Origin)  # every source says why it found nothing


def test_unknown_domain_with_silent_dns_finishes_within_the_default_deadline(dns_server: DNSServer) -> None:
    dns_server.make_silent("silent-dns.test")
    opts = DiscoveryOptions(nameservers=("127.0.0.1",), dns_port=dns_server.port)  # all defaults otherwise
    started = time.monotonic()
    result = discover("nobody@silent-dns.test", options=opts)
    assert time.monotonic() - started < opts.deadline + 0.5 < 10
    assert result.candidates == ()
    assert any("no DNS answer" in s.reason for s in result.skipped)


def test_worst_case_every_server_hangs_still_under_ten_seconds(dns_server: DNSServer, black_hole: BlackHole) -> None:
    # Every name exists and every port accepts and then says nothing: the deadline must end it.
    d = "hangs.test"
    for h in ("", "autoconfig.", "imap.", "mail.", "pop.", "pop3.", "smtp."):
        dns_server.add_host(f"{h}{d}")
    hang = dict.fromkeys((80, 443, 993, 143, 995, 110, 465, 587), black_hole.port)
    opts = DiscoveryOptions(nameservers=("127.0.0.1",), dns_port=dns_server.port, port_overrides=hang)
    started = time.monotonic()
    result = discover(f"nobody@{d}", options=opts)
    elapsed = time.monotonic() - started
    assert elapsed < 10.0
    assert elapsed < opts.deadline + 0.5
    assert result.candidates == ()


def test_short_deadline_is_obeyed(dns_server: DNSServer) -> None:
    dns_server.make_silent("short-deadline.test")
    opts = DiscoveryOptions(nameservers=("127.0.0.1",), dns_port=dns_server.port, deadline=0.5)
    started = time.monotonic()
    result = discover("x@short-deadline.test", options=opts)
    assert time.monotonic() - started < 1.0
    assert set(result.unfinished) <= set(Origin) and result.unfinished
    assert any("deadline" in s.reason for s in result.skipped)


def test_bad_input_is_the_callers_error(options: Options) -> None:
    with pytest.raises(UsageError):
        discover("not an address")
    with pytest.raises(ConfigError):
        discover("a@b.test", options=options(ca_file="/nonexistent/ca.pem"))


def test_spectrum_with_every_source_running(options: Options) -> None:
    result = discover("dave@socal.rr.com", options=options())
    hosts = [(c.incoming.host, c.outgoing.host) for c in result.candidates]
    assert hosts[:2] == [("imap.spectrum.net", "smtp.spectrum.net"), ("pop.spectrum.net", "smtp.spectrum.net")]
    assert hosts[2:4] == [("mail.twc.com", "mail.twc.com")] * 2
    assert result.provider is not None and result.provider.id == "rr.com"
    assert not any(s.origin is Origin.PROBE for s in result.skipped)  # known domain: no probing by default


def test_sources_are_ranked_and_duplicates_merged(
    dns_server: DNSServer, https_server: WebServer, options: Options, mail_servers: Servers
) -> None:
    d = "ranked.test"
    for h in ("autoconfig.", "imap.", "smtp."):
        dns_server.add_host(f"{h}{d}")
    https_server.serve(
        f"autoconfig.{d}",
        "/mail/config-v1.1.xml",
        Route(
            f"""<clientConfig version="1.1">
      <emailProvider id="{d}"><domain>{d}</domain>
      <incomingServer type="imap"><hostname>imap.{d}</hostname><port>993</port><socketType>SSL</socketType>
        <username>%EMAILADDRESS%</username></incomingServer>
      <outgoingServer type="smtp"><hostname>smtp.{d}</hostname><port>465</port><socketType>SSL</socketType>
        <username>%EMAILADDRESS%</username></outgoingServer></emailProvider></clientConfig>""".encode()
        ),
    )
    dns_server.add(f"_imaps._tcp.{d}", "SRV", f"0 0 993 imap.{d}.")
    dns_server.add(f"_submission._tcp.{d}", "SRV", f"0 0 587 smtp.{d}.")
    imaps, smtps = mail_servers("imap", "ssl"), mail_servers("smtp", "ssl")
    refused = closed_port()
    port_map = {993: imaps.port, 465: smtps.port, 143: refused, 995: refused, 110: refused, 587: refused}
    result = discover(f"fay@{d}", options=options(port_overrides=port_map))
    sources = [c.source for c in result.candidates]
    assert sources == ["the domain's autoconfig file", "DNS SRV records"]
    best = result.candidates[0]
    assert "Also found by: found by probing" in best.notes  # the probe confirmed the autoconfig answer
    assert not best.needs_confirmation
    assert imaps.secrets_received() == [] and smtps.secrets_received() == []


def test_probe_policy(dns_server: DNSServer, options: Options) -> None:
    never = discover("x@probe-policy.test", options=options(probe=ProbePolicy.NEVER))
    assert not any(s.origin is Origin.PROBE for s in never.skipped)
    always = discover("x@gmail.com", options=options(probe=ProbePolicy.ALWAYS, sources=frozenset({Origin.PROBE})))
    assert any(s.origin is Origin.PROBE for s in always.skipped)


JSON_CANDIDATE_KEYS = {"incoming", "outgoing", "source", "confidence", "notes", "needs_confirmation"}


def test_json_shape_is_exactly_the_documented_one() -> None:
    result = discover("gus@spectrum.net", options=DiscoveryOptions(sources=frozenset({Origin.DATABASE})))
    data = json.loads(json.dumps(result.to_json()))
    assert set(data) == {"email", "before_password", "candidates"} and data["email"] == "gus@spectrum.net"
    assert [r["code"] for r in data["before_password"]] == ["app_password_if_two_step"]
    first = data["candidates"][0]
    assert set(first) == JSON_CANDIDATE_KEYS
    assert first["incoming"] == {
        "protocol": "imap",
        "host": "imap.spectrum.net",
        "port": 993,
        "security": "ssl",
        "username": "gus@spectrum.net",
    }
    assert first["outgoing"] == {
        "host": "smtp.spectrum.net",
        "port": 587,
        "security": "starttls",
        "username": "gus@spectrum.net",
        "auth_required": True,
    }
    assert first["source"] == "provider database" and first["confidence"] == "high"
    assert first["needs_confirmation"] is False and all(isinstance(n, str) for n in first["notes"])
    for c in data["candidates"]:
        assert set(c) == JSON_CANDIDATE_KEYS
        assert c["incoming"]["protocol"] in ("imap", "pop3")
        assert c["incoming"]["security"] in ("ssl", "starttls", "none")
        assert c["confidence"] in ("high", "medium", "low")


def test_candidates_convert_to_model_settings_and_describe_themselves() -> None:
    result = discover("gus@gmail.com", options=DiscoveryOptions(sources=frozenset({Origin.DATABASE})))
    best: Candidate = result.candidates[0]
    assert isinstance(best.incoming_settings(), ServerSettings)
    assert best.outgoing_settings().protocol.value == "smtp"
    lines = describe_candidate(best)
    assert lines[0] == "Gmail (Google) — provider database, confidence high"
    assert lines[1] == "  Incoming: IMAP imap.gmail.com:993 (SSL/TLS), user gus@gmail.com"
    assert lines[2].startswith("  Outgoing: SMTP smtp.gmail.com:465 (SSL/TLS), user gus@gmail.com")
    assert any("app password" in line for line in lines)


def test_public_surface() -> None:
    for name in (
        "discover",
        "lookup_provider",
        "describe_candidate",
        "DiscoveryOptions",
        "DiscoveryResult",
        "Candidate",
        "Provider",
        "ProbePolicy",
        "Origin",
        "Confidence",
    ):
        assert name in discovery.__all__
        assert hasattr(discovery, name)
    assert discovery.__doc__ is not None and "Lookup order" in discovery.__doc__


def test_international_domains_are_looked_up_in_their_dns_form(dns_server: DNSServer, options: Options) -> None:
    dns_server.add("_imaps._tcp.xn--bcher-kva.test", "SRV", "0 0 993 imap.xn--bcher-kva.test.")
    dns_server.add("_submissions._tcp.xn--bcher-kva.test", "SRV", "0 0 465 smtp.xn--bcher-kva.test.")
    result = discover("jürgen@bücher.test", options=options(sources=frozenset({Origin.SRV})))
    assert result.email == "jürgen@bücher.test"
    assert result.candidates[0].incoming.host == "imap.xn--bcher-kva.test"
    assert result.candidates[0].incoming.username == "jürgen@bücher.test"
    with pytest.raises(UsageError):
        discover("a@" + "x" * 70 + ".test")
    assert discovery.lookup_provider("not a domain at all..") is None

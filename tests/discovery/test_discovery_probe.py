"""Probing against scripted IMAP/POP3/SMTP servers: TLS mode detection, STARTTLS, certificates, silence.

Every test ends by checking that no server ever received a password, a user
name or an AUTH command.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from discoverykit import BlackHole, DNSServer, FakeMailServer, closed_port

from deskmail.discovery import DiscoveryOptions, Origin, discover

Options = Callable[..., DiscoveryOptions]
Servers = Callable[..., FakeMailServer]
PROBE_ONLY = frozenset({Origin.PROBE})
STANDARD = (993, 143, 995, 110, 465, 587)


def ports(**mapping: int) -> dict[int, int]:
    """Standard port → test server port; every standard port not given is refused."""
    refused = closed_port()
    out = dict.fromkeys(STANDARD, refused)
    out.update({int(k[1:]): v for k, v in mapping.items()})
    return out


def summary(c: object) -> tuple[object, ...]:
    i, o = c.incoming, c.outgoing  # type: ignore[attr-defined]
    return (i.protocol.value, i.host, i.port, i.security.value, o.host, o.port, o.security.value)


def no_secrets(*servers: FakeMailServer) -> None:
    for s in servers:
        assert s.secrets_received() == [], s.lines


def test_implicit_tls_servers(dns_server: DNSServer, options: Options, mail_servers: Servers) -> None:
    d = "probe-ssl.test"
    dns_server.add_host(f"imap.{d}")
    dns_server.add_host(f"smtp.{d}")
    imaps, smtps = mail_servers("imap", "ssl"), mail_servers("smtp", "ssl")
    result = discover(
        f"eve@{d}", options=options(sources=PROBE_ONLY, port_overrides=ports(p993=imaps.port, p465=smtps.port))
    )
    assert [summary(c) for c in result.candidates] == [("imap", f"imap.{d}", 993, "ssl", f"smtp.{d}", 465, "ssl")]
    c = result.candidates[0]
    assert (c.source, c.confidence.value, c.needs_confirmation) == ("found by probing", "low", True)
    assert c.incoming.username == f"eve@{d}" and c.outgoing.auth_required
    assert any("password has not been tried" in n for n in c.notes)
    assert imaps.lines[0] == "A1 CAPABILITY" and smtps.lines[0].startswith("EHLO [127.0.0.1]")
    no_secrets(imaps, smtps)


def test_starttls_is_completed(dns_server: DNSServer, options: Options, mail_servers: Servers) -> None:
    d = "probe-starttls.test"
    for h in ("imap", "pop", "smtp"):
        dns_server.add_host(f"{h}.{d}")
    imap, pop, smtp = (mail_servers(p, "starttls") for p in ("imap", "pop3", "smtp"))
    opts = options(sources=PROBE_ONLY, port_overrides=ports(p143=imap.port, p110=pop.port, p587=smtp.port))
    result = discover(f"eve@{d}", options=opts)
    assert [summary(c) for c in result.candidates] == [
        ("imap", f"imap.{d}", 143, "starttls", f"smtp.{d}", 587, "starttls"),
        ("pop3", f"pop.{d}", 110, "starttls", f"smtp.{d}", 587, "starttls"),
    ]
    for server in (imap, pop, smtp):
        assert server.tls_sessions >= 1  # the upgrade really happened
    # Capabilities were asked again over TLS (AUTH is only listed there).
    assert imap.lines.count("A1 CAPABILITY") == 2 and pop.lines.count("CAPA") == 2
    # (QUIT follows, but the probe does not wait to see it arrive.)
    assert [line.split()[0] for line in smtp.lines][:3] == ["EHLO", "STARTTLS", "EHLO"]
    no_secrets(imap, pop, smtp)


def test_implicit_tls_on_587_is_detected_not_assumed(
    dns_server: DNSServer, options: Options, mail_servers: Servers
) -> None:
    # Spectrum's mobile.charter.net: TLS from the first byte on the submission port.
    d = "probe-587.test"
    dns_server.add_host(f"imap.{d}")
    dns_server.add_host(f"smtp.{d}")
    imaps, smtp587 = mail_servers("imap", "ssl"), mail_servers("smtp", "ssl")
    opts = options(sources=PROBE_ONLY, port_overrides=ports(p993=imaps.port, p587=smtp587.port))
    (c,) = discover(f"eve@{d}", options=opts).candidates
    assert (c.outgoing.host, c.outgoing.port, c.outgoing.security.value) == (f"smtp.{d}", 587, "ssl")
    no_secrets(imaps, smtp587)


def test_plaintext_only_servers_are_reported_as_such(
    dns_server: DNSServer, options: Options, mail_servers: Servers
) -> None:
    d = "probe-plain.test"
    dns_server.add_host(f"mail.{d}")
    imap, smtp = mail_servers("imap", "plain"), mail_servers("smtp", "plain")
    opts = options(sources=PROBE_ONLY, port_overrides=ports(p143=imap.port, p587=smtp.port))
    (c,) = discover(f"eve@{d}", options=opts).candidates
    assert (c.incoming.security.value, c.outgoing.security.value) == ("none", "none")
    assert c.needs_confirmation
    assert any("offers no encryption" in n for n in c.notes)
    no_secrets(imap, smtp)


def test_certificate_for_another_name_offers_that_name(
    dns_server: DNSServer, options: Options, mail_servers: Servers
) -> None:
    d = "probe-alias.test"
    dns_server.add_host(f"imap.{d}")
    dns_server.add_host(f"smtp.{d}")
    imaps = mail_servers("imap", "ssl", names=("imap.hoster.test", "smtp.hoster.test"))
    smtp = mail_servers("smtp", "starttls", names=("smtp.hoster.test",))
    opts = options(sources=PROBE_ONLY, port_overrides=ports(p993=imaps.port, p587=smtp.port))
    (c,) = discover(f"eve@{d}", options=opts).candidates
    assert (c.incoming.host, c.outgoing.host) == ("imap.hoster.test", "smtp.hoster.test")
    assert (c.incoming.security.value, c.outgoing.security.value) == ("ssl", "starttls")
    assert c.needs_confirmation
    assert any(f"certificate of imap.{d}:993 is issued for imap.hoster.test" in n for n in c.notes)
    no_secrets(imaps, smtp)


def test_untrusted_certificate_is_skipped(dns_server: DNSServer, options: Options, mail_servers: Servers) -> None:
    d = "probe-untrusted.test"
    dns_server.add_host(f"imap.{d}")
    dns_server.add_host(f"smtp.{d}")
    imaps, smtps = mail_servers("imap", "ssl"), mail_servers("smtp", "ssl")
    opts = options(sources=PROBE_ONLY, ca_file="", port_overrides=ports(p993=imaps.port, p465=smtps.port))
    result = discover(f"eve@{d}", options=opts)
    assert result.candidates == ()
    assert any("not trusted" in s.reason and s.what == f"IMAP imap.{d}:993" for s in result.skipped)
    no_secrets(imaps, smtps)


def test_silent_and_slow_servers(
    dns_server: DNSServer, options: Options, mail_servers: Servers, black_hole: BlackHole
) -> None:
    d = "probe-silent.test"
    dns_server.add_host(f"imap.{d}")
    dns_server.add_host(f"smtp.{d}")
    slow_greeter = mail_servers("smtp", "starttls", greeting_delay=0.7)  # longer than greeting_timeout
    opts = options(
        sources=PROBE_ONLY,
        greeting_timeout=0.4,
        read_timeout=1.5,
        port_overrides=ports(p993=black_hole.port, p143=black_hole.port, p587=slow_greeter.port),
    )
    started = time.monotonic()
    result = discover(f"eve@{d}", options=opts)
    assert time.monotonic() - started < 4.0
    assert result.candidates == ()  # no incoming server answered
    reasons = {s.what: s.reason for s in result.skipped}
    assert "TLS handshake" in reasons[f"IMAP imap.{d}:993"]
    assert any("servers answered, but no incoming" in s.reason for s in result.skipped)
    no_secrets(slow_greeter)
    assert slow_greeter.tls_sessions == 1  # the retry found it: plain greeting, then STARTTLS


@pytest.mark.parametrize("deadline", [1.0, 2.0])
def test_probing_respects_the_deadline(
    dns_server: DNSServer, options: Options, black_hole: BlackHole, deadline: float
) -> None:
    d = f"probe-deadline{int(deadline)}.test"
    for h in ("imap", "mail", "pop", "pop3", "smtp"):
        dns_server.add_host(f"{h}.{d}")
    every = {f"p{p}": black_hole.port for p in STANDARD}
    opts = options(
        sources=PROBE_ONLY,
        deadline=deadline,
        connect_timeout=5,
        greeting_timeout=5,
        read_timeout=5,
        port_overrides=ports(**every),
    )
    started = time.monotonic()
    result = discover(f"eve@{d}", options=opts)
    assert time.monotonic() - started < deadline + 0.75
    assert result.candidates == ()
    assert result.unfinished == (Origin.PROBE,) or any("deadline" in s.reason for s in result.skipped)

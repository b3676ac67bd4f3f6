"""Probing the real sandbox servers (Dovecot IMAP/POP3, aiosmtpd SMTP) through test DNS names.

The sandbox certificate is issued for ``localhost``: probing ``bob@localhost``
verifies it directly, probing ``sbx.test`` names meets a certificate valid for
another name — the real-server version of the "hosting company" case. Both
end by reading the servers' logs: not one authentication attempt.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
from discoverykit import DNSServer

from deskmail.discovery import DiscoveryOptions, DiscoveryResult, Origin, discover
from deskmail.sandbox import Sandbox

pytestmark = pytest.mark.servers
Options = Callable[..., DiscoveryOptions]


def sandbox_ports(sb: Sandbox) -> dict[int, int]:
    return {
        993: sb.imaps_port,
        143: sb.imap_port,
        995: sb.pop3s_port,
        110: sb.pop3_port,
        465: sb.smtps_port,
        587: sb.submission_port,
    }


def probe_sandbox(sb: Sandbox, email: str, options: Options) -> tuple[DiscoveryResult, str, str]:
    dovecot_start = sb.dovecot_log_file.stat().st_size
    smtp_start = sb.smtp_log_file.stat().st_size
    opts = options(
        sources=frozenset({Origin.PROBE}),
        ca_file=str(sb.ca_file),
        port_overrides=sandbox_ports(sb),
        greeting_timeout=0.5,
        deadline=8.0,
    )
    result = discover(email, options=opts)
    # The servers log a disconnect a moment after it happens: wait until the logs stop growing.
    sizes = (-1, -1)
    for _ in range(30):
        now = (sb.dovecot_log_file.stat().st_size, sb.smtp_log_file.stat().st_size)
        if now == sizes:
            break
        sizes = now
        time.sleep(0.1)
    return (result, sb.dovecot_log_file.read_text()[dovecot_start:], sb.smtp_log_file.read_text()[smtp_start:])


def assert_no_authentication(dovecot_log: str, smtp_log: str) -> None:
    # Only our probes connect to 127.0.0.1 from 127.0.0.1; other lines (the sandbox's own
    # readiness checks on 127.0.0.2) may land in the same stretch of log.
    ours = [line for line in dovecot_log.splitlines() if "Disconnected" in line and "lip=127.0.0.1," in line]
    assert ours, dovecot_log  # the probes did reach Dovecot
    for line in ours:
        # Dovecot words a probe that hung up as "no auth attempts", or, when it closed during the TLS
        # handshake or before the greeting was read, "disconnected before auth was ready".
        assert "no auth attempts" in line or "before auth was ready" in line, line
    # Dovecot's words for an attempt: "Login:", "auth failed", "N (authentication) attempts" with N > 0.
    assert "Login:" not in dovecot_log and "auth failed" not in dovecot_log
    assert not re.search(r"\b[1-9]\d* (authentication |auth )?attempts", dovecot_log), dovecot_log
    assert ">>> EHLO" in smtp_log  # the probes did reach the SMTP server
    assert not re.search(r">>> (AUTH|MAIL|RCPT)", smtp_log), smtp_log


def test_probing_the_sandbox_finds_every_service(sandbox: Sandbox, dns_server: DNSServer, options: Options) -> None:
    dns_server.add_host("localhost")
    result, dovecot_log, smtp_log = probe_sandbox(sandbox, "bob@localhost", options)
    got = [
        (
            c.incoming.protocol.value,
            c.incoming.host,
            c.incoming.port,
            c.incoming.security.value,
            c.outgoing.host,
            c.outgoing.port,
            c.outgoing.security.value,
        )
        for c in result.candidates
    ]
    assert got == [
        ("imap", "localhost", 993, "ssl", "localhost", 465, "ssl"),  # implicit TLS preferred (RFC 8314)
        ("imap", "localhost", 993, "ssl", "localhost", 587, "starttls"),
        ("pop3", "localhost", 995, "ssl", "localhost", 465, "ssl"),
    ]
    assert all(c.needs_confirmation and c.source == "found by probing" for c in result.candidates)
    assert result.candidates[0].outgoing.auth_required
    # The STARTTLS listeners were found too, upgraded and all (they rank below implicit TLS).
    assert dovecot_log.count("TLS, session") >= 4, dovecot_log
    assert "STARTTLS done" in smtp_log
    assert_no_authentication(dovecot_log, smtp_log)


def test_probing_the_sandbox_under_another_name_offers_the_certificate_name(
    sandbox: Sandbox, dns_server: DNSServer, options: Options
) -> None:
    for h in ("imap", "pop", "smtp"):
        dns_server.add_host(f"{h}.sbx.test")
    result, dovecot_log, smtp_log = probe_sandbox(sandbox, "bob@sbx.test", options)
    best = result.candidates[0]
    assert (best.incoming.host, best.incoming.port, best.incoming.security.value) == ("localhost", 993, "ssl")
    assert best.outgoing.host == "localhost"
    assert any("imap.sbx.test:993 is issued for localhost" in n for n in best.notes)
    assert_no_authentication(dovecot_log, smtp_log)

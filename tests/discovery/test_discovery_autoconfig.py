"""The domain's autoconfig file over a real HTTPS (test CA) and plain HTTP server."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from discoverykit import BlackHole, DNSServer, Route, WebServer

from deskmail.discovery import DiscoveryOptions, Origin, discover

Options = Callable[..., DiscoveryOptions]
AUTOCONFIG_ONLY = frozenset({Origin.AUTOCONFIG})
PATH = "/mail/config-v1.1.xml"
WELL_KNOWN = "/.well-known/autoconfig/mail/config-v1.1.xml"


def config(domain: str, imap: str = "", smtp: str = "", extra: str = "") -> bytes:
    imap = imap or f"imap.{domain}"
    smtp = smtp or f"smtp.{domain}"
    return f"""<?xml version="1.0"?>
<clientConfig version="1.1" xmlns:dm="urn:x-deskmail:clientconfig:1">
  <emailProvider id="{domain}">
    <domain>{domain}</domain><displayName>{domain} mail</displayName>
    <incomingServer type="imap"><hostname>{imap}</hostname><port>993</port><socketType>SSL</socketType>
      <username>%EMAILADDRESS%</username><authentication>password-cleartext</authentication></incomingServer>
    <outgoingServer type="smtp"><hostname>{smtp}</hostname><port>465</port><socketType>SSL</socketType>
      <username>%EMAILADDRESS%</username><authentication>password-cleartext</authentication></outgoingServer>
    {extra}
  </emailProvider>
</clientConfig>""".encode()


def host(dns_server: DNSServer, *names: str) -> None:
    for n in names:
        dns_server.add_host(n)


def test_https_autoconfig_is_trusted(dns_server: DNSServer, https_server: WebServer, options: Options) -> None:
    d = "ac-https.test"
    host(dns_server, f"autoconfig.{d}")
    https_server.serve(f"autoconfig.{d}", PATH, Route(config(d, extra="<dm:note>trust me</dm:note>")))
    result = discover(f"dan@{d}", options=options(sources=AUTOCONFIG_ONLY))
    c = result.candidates[0]
    assert (c.source, c.confidence.value, c.needs_confirmation) == ("the domain's autoconfig file", "high", False)
    assert (c.incoming.host, c.incoming.port, c.incoming.security.value) == ("imap.ac-https.test", 993, "ssl")
    assert c.incoming.username == "dan@ac-https.test"
    assert any(f"https://autoconfig.{d}{PATH}?emailaddress=dan@{d}" in n for n in c.notes)
    assert not any("trust me" in n for n in c.notes)  # dm: extensions from the web are ignored
    assert (f"autoconfig.{d}", f"{PATH}?emailaddress=dan@{d}") in https_server.requests


def test_well_known_url_is_used_when_autoconfig_host_is_missing(
    dns_server: DNSServer, https_server: WebServer, options: Options
) -> None:
    d = "ac-wellknown.test"
    host(dns_server, d)
    https_server.serve(d, WELL_KNOWN, Route(config(d)))
    c = discover(f"dan@{d}", options=options(sources=AUTOCONFIG_ONLY)).candidates[0]
    assert not c.needs_confirmation and c.confidence.value == "high"
    assert any(WELL_KNOWN in n for n in c.notes)


def test_plain_http_needs_confirmation(dns_server: DNSServer, http_server: WebServer, options: Options) -> None:
    d = "ac-plain.test"
    host(dns_server, f"autoconfig.{d}", d)
    # Nothing over HTTPS (404 there), the file only over plain HTTP.
    http_server.serve(f"autoconfig.{d}", PATH, Route(config(d)))
    result = discover(f"dan@{d}", options=options(sources=AUTOCONFIG_ONLY))
    c = result.candidates[0]
    assert c.needs_confirmation and c.confidence.value == "low"
    assert any("plain HTTP" in n for n in c.notes)
    assert any("HTTP 404" in s.reason for s in result.skipped)
    # ...and never when the caller forbids plain HTTP.
    assert discover(f"dan@{d}", options=options(sources=AUTOCONFIG_ONLY, plain_http=False)).candidates == ()


def test_hostile_autoconfig_pointing_outside_the_domain(
    dns_server: DNSServer, https_server: WebServer, options: Options
) -> None:
    d = "ac-hostile.test"
    host(dns_server, f"autoconfig.{d}")
    https_server.serve(f"autoconfig.{d}", PATH, Route(config(d, imap="collect.evil.test", smtp=f"smtp.{d}")))
    c = discover(f"dan@{d}", options=options(sources=AUTOCONFIG_ONLY)).candidates[0]
    assert c.needs_confirmation and c.confidence.value == "low"
    assert any("collect.evil.test" in n and "outside ac-hostile.test" in n for n in c.notes)


def test_autoconfig_pointing_to_a_known_provider_is_vouched_for(
    dns_server: DNSServer, https_server: WebServer, options: Options
) -> None:
    d = "ac-hosted.test"
    host(dns_server, f"autoconfig.{d}")
    https_server.serve(f"autoconfig.{d}", PATH, Route(config(d, imap="imap.gmail.com", smtp="smtp.gmail.com")))
    c = discover(f"dan@{d}", options=options(sources=AUTOCONFIG_ONLY)).candidates[0]
    assert not c.needs_confirmation


def test_broken_files_are_skipped_with_reasons(
    dns_server: DNSServer, https_server: WebServer, http_server: WebServer, options: Options
) -> None:
    cases = {
        "ac-malformed.test": Route(b"<clientConfig><emailProvider>"),
        "ac-doctype.test": Route(
            b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><clientConfig>&e;</clientConfig>'
        ),
        "ac-huge.test": Route(b"<clientConfig>" + b" " * (1024 * 1024 + 100) + b"</clientConfig>"),
        "ac-huge-chunked.test": Route(
            b"<clientConfig>" + b" " * (1024 * 1024 + 100) + b"</clientConfig>", chunked=True
        ),
        "ac-html.test": Route(b"<html><body>Welcome to our shop!</body></html>"),
        "ac-noservers.test": Route(b"<clientConfig><emailProvider id='x'/></clientConfig>"),
    }
    expected = {
        "ac-malformed.test": "not well-formed",
        "ac-doctype.test": "DOCTYPE",
        "ac-huge.test": "larger than 1024 KiB",
        "ac-huge-chunked.test": "larger than 1024 KiB",
        "ac-html.test": "root element is <html>",
        "ac-noservers.test": "no usable incoming server",
    }
    for d, route in cases.items():
        host(dns_server, f"autoconfig.{d}")
        https_server.serve(f"autoconfig.{d}", PATH, route)
        http_server.serve(f"autoconfig.{d}", PATH, route)
        result = discover(f"dan@{d}", options=options(sources=AUTOCONFIG_ONLY))
        assert result.candidates == (), d
        reasons = [s.reason for s in result.skipped if s.what.startswith(f"https://autoconfig.{d}")]
        assert any(expected[d] in r for r in reasons), (d, reasons)


def test_slow_web_server_is_abandoned_in_time(dns_server: DNSServer, black_hole: BlackHole, options: Options) -> None:
    d = "ac-slow.test"
    host(dns_server, f"autoconfig.{d}", d)
    opts = options(
        sources=AUTOCONFIG_ONLY,
        http_timeout=1.0,
        deadline=4.0,
        port_overrides={443: black_hole.port, 80: black_hole.port},
    )
    started = time.monotonic()
    result = discover(f"dan@{d}", options=opts)
    elapsed = time.monotonic() - started
    assert result.candidates == ()
    assert elapsed < 3.5  # https pair (1 s, concurrent) + http pair (1 s), never the deadline
    assert any(
        "did not answer" in s.reason or "too slow" in s.reason or "handshake" in s.reason for s in result.skipped
    ), [s.reason for s in result.skipped]


def test_trickling_server_is_cut_off(dns_server: DNSServer, http_server: WebServer, options: Options) -> None:
    d = "ac-trickle.test"
    host(dns_server, f"autoconfig.{d}")

    def trickle(sock: socket.socket) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        for _ in range(40):
            time.sleep(0.1)
            try:
                sock.sendall(b"<")
            except OSError:
                return

    http_server.serve(f"autoconfig.{d}", PATH, Route(raw=trickle))
    opts = options(sources=AUTOCONFIG_ONLY, http_timeout=1.0)
    started = time.monotonic()
    result = discover(f"dan@{d}", options=opts)
    assert time.monotonic() - started < 2.5
    assert result.candidates == ()


def test_untrusted_certificate_is_refused(dns_server: DNSServer, https_server: WebServer, options: Options) -> None:
    d = "ac-untrusted.test"
    host(dns_server, f"autoconfig.{d}")
    https_server.serve(f"autoconfig.{d}", PATH, Route(config(d)))
    result = discover(f"dan@{d}", options=options(sources=AUTOCONFIG_ONLY, ca_file="", plain_http=False))
    assert result.candidates == ()
    assert any("certificate" in s.reason for s in result.skipped)


def test_redirects(dns_server: DNSServer, https_server: WebServer, options: Options) -> None:
    d = "ac-redirect.test"
    host(dns_server, f"autoconfig.{d}", f"config.{d}")
    https_server.serve(f"autoconfig.{d}", PATH, Route(status=301, headers={"Location": f"https://config.{d}/x.xml"}))
    https_server.serve(f"config.{d}", "/x.xml", Route(config(d)))
    c = discover(f"dan@{d}", options=options(sources=AUTOCONFIG_ONLY)).candidates[0]
    assert not c.needs_confirmation and any(f"https://config.{d}/x.xml" in n for n in c.notes)

    d2 = "ac-downgrade.test"
    host(dns_server, f"autoconfig.{d2}")
    https_server.serve(f"autoconfig.{d2}", PATH, Route(status=302, headers={"Location": f"http://autoconfig.{d2}/x"}))
    result = discover(f"dan@{d2}", options=options(sources=AUTOCONFIG_ONLY, plain_http=False))
    assert result.candidates == ()
    assert any("downgrade" in s.reason for s in result.skipped)


def test_address_is_never_sent_in_clear(dns_server: DNSServer, http_server: WebServer, options: Options) -> None:
    d = "ac-privacy.test"
    host(dns_server, f"autoconfig.{d}")
    http_server.serve(f"autoconfig.{d}", PATH, Route(config(d)))
    discover(f"dan@{d}", options=options(sources=AUTOCONFIG_ONLY))
    sent = [path for h, path in http_server.requests if h == f"autoconfig.{d}"]
    assert sent == [PATH]

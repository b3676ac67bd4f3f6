"""Proton Mail through Bridge: discovery's settings work against a Bridge-like server whose
self-signed certificate (issued for 127.0.0.1, as Bridge's is) is trusted explicitly, as the
account's certificate file, and only that way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from doctorkit import Certs, FakeServer, ImapScript, SmtpScript, diagnose, expect, rendered

from deskmail.discovery import DiscoveryOptions, Origin, discover
from deskmail.doctor import Code, Server, Status, Step
from deskmail.model import Account

Serve = Callable[..., FakeServer]
EMAIL = "kim@proton.me"
BRIDGE_PASSWORD = "bridge-generated-Xy7"


def bridge_account(imap: FakeServer, smtp: FakeServer, ca_file: str) -> Account:
    result = discover(EMAIL, options=DiscoveryOptions(sources=frozenset({Origin.DATABASE})))
    best = result.best
    assert best is not None
    assert (best.incoming.host, best.incoming.port, best.outgoing.port) == ("127.0.0.1", 1143, 1025)
    # Bridge's own ports here are the fake servers'; everything else is discovery's.
    return Account(
        name="proton", email=EMAIL, display_name="Kim",
        incoming=replace(best.incoming_settings(), port=imap.port),
        outgoing=replace(best.outgoing_settings(), port=smtp.port),
        ca_file=ca_file,
    )


def test_bridge_with_its_certificate_trusted_for_the_account(serve: Serve, certs: Certs) -> None:
    users = {EMAIL: BRIDGE_PASSWORD}
    imap = serve(ImapScript(users=users, tls=certs.self_signed))
    smtp = serve(SmtpScript(users=users, tls=certs.self_signed))
    bridge_cert = str(Path(certs.ca_file).with_name("self-signed.pem"))
    report = diagnose(bridge_account(imap, smtp, bridge_cert), BRIDGE_PASSWORD)
    steps = {(f.server, f.step): f for f in report.findings}
    for server in (Server.INCOMING, Server.OUTGOING):
        assert steps[(server, Step.TLS)].status is Status.OK, rendered(report)
        assert steps[(server, Step.LOGIN)].status is Status.OK, rendered(report)
    assert steps[(Server.OUTGOING, Step.SEND)].status is Status.OK, rendered(report)


def test_bridge_certificate_is_not_trusted_without_being_given(serve: Serve, certs: Certs) -> None:
    imap = serve(ImapScript(tls=certs.self_signed))
    smtp = serve(SmtpScript(tls=certs.self_signed))
    report = diagnose(bridge_account(imap, smtp, ""), BRIDGE_PASSWORD)
    finding = expect(report, Code.CERTIFICATE_SELF_SIGNED, text="Bridge's own",
                     remedy="give it as this account's certificate file")
    assert finding.data["bridge"] is True
    assert report.find(Code.TLS_INTERCEPTION) is None, rendered(report)
    assert not any(f.step is Step.LOGIN and f.status is Status.OK for f in report.findings)

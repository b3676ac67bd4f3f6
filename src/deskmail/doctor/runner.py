"""run_doctor(): check an account's incoming and outgoing servers, streaming findings.

Order: the incoming server's chain and settings review, the outgoing server's
chain (with the relaying check, and the test message when asked) and settings
review, then the round trip. Incoming goes first because the round trip needs
it and because "can I read my mail" is what people ask first.

The run is synchronous and bounded: every wait is the smaller of its own
timeout and what is left of ``timeouts.total``. The GUI runs it in a worker
thread and receives each finding through ``on_step`` as soon as it is known.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from deskmail.doctor.checks import ServerCheck
from deskmail.doctor.context import DEFAULT_ALTERNATIVES, Alternatives, Diagnosis, Run, Timeouts
from deskmail.doctor.providers import ProviderHint, provider_hint
from deskmail.doctor.report import Code, Finding, Report, Server, Status, Step
from deskmail.doctor.resolve import DnsResolver, Resolver
from deskmail.doctor.wire import ImapSession, Pop3Session, WireError
from deskmail.model import Account
from deskmail.secrets import Secret


def run_doctor(
    account: Account,
    password: Secret | None,
    *,
    send_test: bool = False,
    round_trip: bool = False,
    timeouts: Timeouts | None = None,
    on_step: Callable[[Finding], None] | None = None,
    resolver: Resolver | None = None,
    alternatives: Alternatives | None = None,
    provider: ProviderHint | None = None,
) -> Report:
    """Check ``account``'s servers and return every finding.

    password: None skips the login checks (reported as not checked, so
    ``Report.ok`` stays false). send_test: send a message to the account's own
    address. round_trip: also wait for that message to arrive (implies
    send_test). resolver / alternatives: the DNS resolver and the ports tried
    when the configured one cannot be reached (defaults: system DNS,
    :data:`DEFAULT_ALTERNATIVES`). provider: the provider's recommended
    settings; looked up from the email domain when not given.
    """
    timeouts = timeouts or Timeouts()
    send_test = send_test or round_trip
    started = time.monotonic()
    run = Run(
        account=account,
        password=password,
        timeouts=timeouts,
        resolver=resolver or DnsResolver(),
        alternatives=DEFAULT_ALTERNATIVES if alternatives is None else alternatives,
        provider=provider if provider is not None else provider_hint(account.email),
        on_step=on_step,
        deadline=started + timeouts.total,
    )
    incoming = ServerCheck(run, Server.INCOMING, account.incoming)
    outgoing = ServerCheck(run, Server.OUTGOING, account.outgoing, send_test=send_test)
    try:
        incoming.run_chain()
        incoming.close()
        incoming.review_settings()
        outgoing.run_chain()
        outgoing.close()
        outgoing.review_settings()
        if round_trip:
            _round_trip(run, incoming, outgoing)
    finally:
        incoming.close()
        outgoing.close()
    duration_ms = int((time.monotonic() - started) * 1000)
    return Report(account=account.name, findings=tuple(run.findings), duration_ms=duration_ms)


def _round_trip(run: Run, incoming: ServerCheck, outgoing: ServerCheck) -> None:
    """Wait for the test message to show up in the inbox; report the delay."""
    started = time.monotonic()
    if not outgoing.test_message_id:
        outgoing.emit(Step.ROUND_TRIP, Status.SKIPPED, Code.NOT_CHECKED,
                      "Not checked because no test message was sent", started=started)
        return
    if incoming.working is None:
        outgoing.emit(Step.ROUND_TRIP, Status.SKIPPED, Code.NOT_CHECKED,
                      "Not checked because the incoming server does not work", started=started)
        return
    sent_at = outgoing.sent_at
    limit = run.timeouts.round_trip
    deadline = min(sent_at + limit, run.deadline)
    while True:
        if _arrived(incoming, outgoing.test_message_id):
            delay = time.monotonic() - sent_at
            outgoing.emit(
                Step.ROUND_TRIP,
                Status.OK,
                Code.OK,
                f"The test message arrived in the inbox {delay:.1f} s after it was sent",
                started=sent_at,
                data={"delay_ms": int(delay * 1000), "message_id": outgoing.test_message_id},
            )
            return
        if time.monotonic() + run.timeouts.poll_interval > deadline:
            break
        time.sleep(run.timeouts.poll_interval)
    outgoing.emit(
        Step.ROUND_TRIP,
        Status.WARNING,
        Code.ROUND_TRIP_TIMEOUT,
        f"The test message was accepted but had not arrived in the inbox after {limit:g} s",
        "delivery is slow, the message was filtered (spam or a rule moved it), or the incoming server "
        "belongs to another mailbox",
        "look for “deskmail connection test” in the spam folder in a few minutes; if it never arrives, "
        "check that incoming and outgoing settings belong to the same address",
        started=sent_at,
        data={"message_id": outgoing.test_message_id},
    )


def _arrived(incoming: ServerCheck, message_id: str) -> bool:
    target = incoming.working
    if target is None:
        return False
    try:
        session = incoming.establish(target, None, report=False)
    except Diagnosis:
        return False
    try:
        reply = incoming.login_reply(session, incoming.working_username)
        if not reply.ok:
            return False
        client = session.client
        if isinstance(client, ImapSession | Pop3Session):
            return client.find_header("Message-ID", message_id)
        return False
    except (Diagnosis, WireError):
        return False
    finally:
        session.close()

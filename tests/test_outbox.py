"""The outbox against real servers, faults injected for real (docs/outbox.md, docs/reliability.md).

A scripted aiosmtpd (tests/smtpkit.py: STARTTLS + AUTH, per-test replies, drops and hangs after the final dot)
stands in for the submission server where a fault is needed; the account's incoming server is the sandbox's
Dovecot, so the copy in Sent is checked on a real IMAP server (``doveadm search``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deskmail.app import Deskmail
from deskmail.codes import Code
from deskmail.config import Paths
from deskmail.events import OutboxProgress
from deskmail.model import Account, PasswordSource, ServerSettings
from deskmail.outbox.compose import Draft
from helpers import Home, add_imaps_account, closed_port
from smtpkit import Script, ScriptedSmtp

pytestmark = pytest.mark.servers


def make_app(root: Path, sandbox: Any, user: Any, smtp_port: int, *, timeout: int = 5) -> Deskmail:
    account = Account(
        "acct", user.email, "Outbox Tester",
        incoming=ServerSettings("imap", sandbox.host, sandbox.imaps_port, "ssl", user.email),
        outgoing=ServerSettings("smtp", sandbox.host, smtp_port, "starttls", user.email),
        password=PasswordSource("env", env="DM_OUTBOX_PW"), ca_file=str(sandbox.ca_file),
        options={"send_timeout": timeout})
    app = Deskmail(Paths(root / "config", root / "data"))
    app.add_account(account)
    return app


def in_sent(sandbox: Any, user: Any, needle: str) -> int:
    """How many messages of the user's Sent folder (on the server) have ``needle`` in their subject."""
    found = sandbox.doveadm("search", "-u", user.email, "mailbox", "Sent", "subject", needle)
    return len(found.stdout.split()) // 2 if found.returncode == 0 else 0


@pytest.fixture
def env_password(mail_user: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DM_OUTBOX_PW", mail_user.password)


@pytest.fixture
def smtp(sandbox: Any, mail_user: Any) -> Iterator[ScriptedSmtp]:
    server = ScriptedSmtp(sandbox, mail_user, closed_port()).start()
    try:
        yield server
    finally:
        server.stop()


def draft(subject: str, *to: str, body: str = "hello\n", bcc: tuple[str, ...] = ()) -> Draft:
    return Draft(to=list(to), subject=subject, body=body, bcc=bcc)


@pytest.mark.usefixtures("env_password")
def test_queued_while_offline_kept_across_restarts_then_delivered_once(tmp_path: Path, sandbox: Any,
                                                                       mail_user: Any) -> None:
    port = closed_port()  # nothing listens: the network is "down"
    app = make_app(tmp_path, sandbox, mail_user, port)
    sent = app.send(draft("offline one", "friend@far.example"))
    assert sent.state == "deferred" and sent.error is not None and sent.error.code == Code.CONNECTION_REFUSED
    assert sent.entry.next_attempt > sent.entry.created  # backed off, not hammering
    assert (tmp_path / "data" / "outbox" / "new" / f"{sent.entry.id}.eml").is_file()

    later = Deskmail(Paths(tmp_path / "config", tmp_path / "data"))  # a restart: a new program, same files
    [waiting] = later.outbox()
    assert (waiting.id, waiting.state, waiting.attempts) == (sent.entry.id, "deferred", 1)
    server = ScriptedSmtp(sandbox, mail_user, port).start()  # the network is back
    try:
        assert later.flush_outbox().entries == ()  # not due yet: the back-off holds
        assert server.transactions == 0
        result = later.flush_outbox(everything=True)
        assert [e.state for e in result.entries] == ["sent"] and not result.errors
        assert later.flush_outbox(everything=True).entries == ()  # nothing left to send
        assert server.count(b"Subject: offline one") == 1 and server.transactions == 1
    finally:
        server.stop()
    assert later.outbox() == []
    assert in_sent(sandbox, mail_user, "offline one") == 1


@pytest.mark.usefixtures("env_password")
def test_4xx_deferred_then_delivered_once_and_partial_acceptance(tmp_path: Path, sandbox: Any, mail_user: Any,
                                                                 smtp: ScriptedSmtp) -> None:
    app = make_app(tmp_path, sandbox, mail_user, smtp.port)
    a, b, c = "a@far.example", "b@far.example", "c@far.example"
    smtp.script.rcpt = {b: "451 4.7.1 Greylisted, try again later", c: "550 5.1.1 <c@far.example>: no such user"}
    sent = app.send(draft("partial", a, b, c))
    e = sent.entry
    assert e.state == "deferred" and e.error_code == Code.SEND_DEFERRED
    assert e.delivered == (a,) and e.recipients == (b,)  # a got it; only b is tried again; c never
    assert e.replies[c].startswith("550 5.1.1") and e.replies[b].startswith("451")
    assert [r.recipients for r in smtp.received] == [[a]]

    smtp.script.rcpt = {c: smtp.script.rcpt[c]}  # the greylisting is over
    result = app.flush_outbox(everything=True)
    [done] = result.entries
    assert done.state == "sent" and done.delivered == (a, b) and set(done.refused) == {c}
    assert [r.recipients for r in smtp.received] == [[a], [b]]  # each exactly once
    assert app.flush_outbox(everything=True).entries == ()
    assert len(smtp.received) == 2
    [kept] = app.outbox()  # kept, so that the refusal can be read; sent, its copy saved once
    assert kept.state == "sent" and kept.sent_copy == "saved" and kept.refused == done.refused
    assert in_sent(sandbox, mail_user, "partial") == 1
    app.remove_from_outbox(kept.id)
    assert app.outbox() == []


@pytest.mark.parametrize("fault", ["cut_after_rcpt", "451_to_data", "451_after_the_dot"])
@pytest.mark.usefixtures("env_password")
def test_failure_before_acceptance_is_retried_with_back_off_then_delivered_once(
        tmp_path: Path, sandbox: Any, mail_user: Any, smtp: ScriptedSmtp, fault: str) -> None:
    """F-20 (a) the connection cut once the RCPT reached the server, before its reply; (b) 451 to the DATA
    command, or to the final dot: each time deferred with a growing back-off, never failed, never
    uncertain; delivered exactly once when the fault is gone."""
    app = make_app(tmp_path, sandbox, mail_user, smtp.port)
    if fault == "cut_after_rcpt":
        smtp.script.after_rcpt = "drop"
    elif fault == "451_to_data":
        smtp.script.data_command_reply = "451 4.3.0 Queue full, try again later"
    else:
        smtp.script.data_reply = "451 4.3.0 Temporary local problem"
    sent = app.send(draft(f"before acceptance {fault}", "r@far.example"))
    waits = []
    for attempt in range(1, 5):
        e = sent.entry if attempt == 1 else app.outbox()[0]
        assert e.state == "deferred" and e.attempts == attempt and not e.data_sent, (attempt, e)
        assert e.error_code == (Code.NETWORK if fault == "cut_after_rcpt" else Code.SEND_DEFERRED), e.error_code
        if fault != "cut_after_rcpt":
            assert "451 4.3.0" in e.last_error
        waits.append(e.next_attempt - time.time())
        assert app.flush_outbox().entries == ()  # not due yet: the back-off holds
        app.flush_outbox(everything=True)  # "send now": the fault is still there
    assert waits == sorted(waits) and waits[0] > 0 and waits[-1] > waits[0]  # growing, no give-up
    assert smtp.received == [] and smtp.transactions == 5

    smtp.script = Script()  # the fault is gone
    [done] = app.flush_outbox(everything=True).entries
    assert done.state == "sent" and done.delivered == ("r@far.example",)
    assert smtp.count(f"before acceptance {fault}".encode()) == 1
    assert app.flush_outbox(everything=True).entries == () and len(smtp.received) == 1
    assert in_sent(sandbox, mail_user, f"before acceptance {fault}") == 1


@pytest.mark.usefixtures("env_password")
def test_5xx_for_every_recipient_fails_with_each_reason_and_is_not_retried(tmp_path: Path, sandbox: Any,
                                                                           mail_user: Any, smtp: ScriptedSmtp) -> None:
    app = make_app(tmp_path, sandbox, mail_user, smtp.port)
    smtp.script.rcpt = {"x@far.example": "550 5.1.1 no such user x",
                        "y@far.example": "553 5.7.1 y: sender not allowed to write here"}
    sent = app.send(draft("refused", "x@far.example", "y@far.example"))
    assert sent.state == "failed" and sent.error is not None and sent.error.code == Code.RECIPIENT_REFUSED
    assert sent.entry.refused == {"x@far.example": "550 5.1.1 no such user x",
                                  "y@far.example": "553 5.7.1 y: sender not allowed to write here"}
    before = smtp.transactions
    assert app.flush_outbox(everything=True).entries == ()  # failed stays failed: no loop
    assert smtp.transactions == before and smtp.received == []
    assert [e.state for e in app.outbox()] == ["failed"]

    smtp.script.rcpt = {}
    smtp.script.data_reply = "552 5.3.4 Message size exceeds fixed limit"  # (F-23c) permanent after DATA
    sent = app.send(draft("too big after data", "z@far.example"))
    assert sent.state == "failed" and sent.entry.error_code == Code.MESSAGE_REFUSED
    assert "552 5.3.4" in sent.entry.last_error
    assert app.flush_outbox(everything=True).entries == ()


@pytest.mark.parametrize("after_dot", ["drop", "hang"])
@pytest.mark.usefixtures("env_password")
def test_connection_lost_after_the_final_dot_is_uncertain_never_resent_by_flush(
        tmp_path: Path, sandbox: Any, mail_user: Any, smtp: ScriptedSmtp, after_dot: str) -> None:
    app = make_app(tmp_path, sandbox, mail_user, smtp.port, timeout=2)
    smtp.script.after_dot = after_dot
    sent = app.send(draft(f"uncertain {after_dot}", "u@far.example"))
    assert sent.state == "uncertain" and sent.error is not None and sent.error.code == Code.SEND_UNCERTAIN
    assert "may have been sent" in sent.entry.last_error
    assert smtp.count(b"uncertain") == 1  # the server did get it
    smtp.script.after_dot = ""
    for _ in range(2):
        assert app.flush_outbox(everything=True).entries == ()
    assert smtp.count(b"uncertain") == 1 and smtp.transactions == 1  # never sent again by itself
    assert in_sent(sandbox, mail_user, f"uncertain {after_dot}") == 0

    again = app.retry(sent.entry.id)  # the user chose to send it again
    assert again.state == "sent"
    assert smtp.count(b"uncertain") == 2
    message_ids = {r.data.split(b"Message-ID: ")[1].split(b"\r\n")[0] for r in smtp.received}
    assert len(message_ids) == 1  # the same message, the same Message-ID
    assert in_sent(sandbox, mail_user, f"uncertain {after_dot}") == 1
    assert app.outbox() == []


@pytest.mark.usefixtures("env_password")
def test_uncertain_marked_sent_saves_its_copy_and_sends_nothing(tmp_path: Path, sandbox: Any, mail_user: Any,
                                                                smtp: ScriptedSmtp) -> None:
    app = make_app(tmp_path, sandbox, mail_user, smtp.port, timeout=2)
    smtp.script.after_dot = "drop"
    sent = app.send(draft("marked as sent", "m@far.example"))
    assert sent.state == "uncertain"
    smtp.script.after_dot = ""
    assert app.mark_sent(sent.entry.id).state == "sent"
    assert smtp.count(b"marked as sent") == 1 and smtp.transactions == 1
    assert in_sent(sandbox, mail_user, "marked as sent") == 1 and app.outbox() == []


@pytest.mark.usefixtures("env_password")
def test_one_connection_one_auth_for_a_batch(tmp_path: Path, sandbox: Any, mail_user: Any,
                                             smtp: ScriptedSmtp) -> None:
    app = make_app(tmp_path, sandbox, mail_user, smtp.port)
    queued = [app.send(draft(f"batch {i}", f"r{i}@far.example", bcc=("hidden@far.example",)), queue_only=True)
              for i in range(5)]
    assert {q.state for q in queued} == {"queued"} and smtp.transactions == 0
    events: list[Any] = []
    result = app.flush_outbox(listener=events.append)
    assert [e.state for e in result.entries] == ["sent"] * 5 and not result.errors
    assert (smtp.connections, smtp.auths, smtp.transactions) == (1, 1, 5)
    assert [r.recipients for r in smtp.received] == [[f"r{i}@far.example", "hidden@far.example"] for i in range(5)]
    assert not any(b"hidden@" in r.data for r in smtp.received)  # Bcc: in the envelope only
    progress = [(e.state, e.done, e.total) for e in events if isinstance(e, OutboxProgress)]
    assert progress == [s for i in range(5) for s in (("sending", i, 5), ("sent", i + 1, 5))]
    assert app.outbox() == []
    for i in range(5):
        assert in_sent(sandbox, mail_user, f"batch {i}") == 1
    copy = sandbox.doveadm("fetch", "-u", mail_user.email, "hdr", "mailbox", "Sent", "subject", "batch 0").stdout
    assert "Bcc: hidden@far.example" in copy  # but kept in the copy in Sent


@pytest.mark.usefixtures("env_password")
def test_too_large_for_size_is_refused_before_upload(tmp_path: Path, sandbox: Any, mail_user: Any) -> None:
    server = ScriptedSmtp(sandbox, mail_user, closed_port(), size_limit=5000).start()
    try:
        app = make_app(tmp_path, sandbox, mail_user, server.port)
        sent = app.send(draft("large", "big@far.example", body="x" * 70 + "\n" * 200 + "y" * 8000))
        assert sent.state == "failed" and sent.entry.error_code == Code.MESSAGE_TOO_LARGE
        assert "at most 5,000 bytes" in sent.entry.last_error
        assert server.transactions == 0  # no MAIL FROM, no upload
        ok = app.send(draft("small", "big@far.example"))
        assert ok.state == "sent" and server.mail_options[-1][0].startswith("SIZE=")
    finally:
        server.stop()


@pytest.mark.usefixtures("env_password")
def test_international_address_without_smtputf8_is_refused_clearly(tmp_path: Path, sandbox: Any, mail_user: Any,
                                                                   smtp: ScriptedSmtp) -> None:
    app = make_app(tmp_path, sandbox, mail_user, smtp.port)
    sent = app.send(draft("intl", "jürgen@münchen.example"))
    assert sent.state == "sent"  # the scripted server offers SMTPUTF8
    assert "SMTPUTF8" in smtp.mail_options[-1] and smtp.received[-1].recipients == ["jürgen@münchen.example"]
    plain = ScriptedSmtp(sandbox, mail_user, closed_port(), smtputf8=False).start()
    try:
        other = make_app(tmp_path / "other", sandbox, mail_user, plain.port)
        refused = other.send(draft("intl", "a@far.example", "jürgen@münchen.example"))
        assert refused.state == "failed" and refused.entry.error_code == Code.INTERNATIONAL_ADDRESS
        assert "does not accept international addresses (jürgen@münchen.example)" in refused.entry.last_error
        assert plain.transactions == 0  # refused before MAIL FROM, nothing rewritten or half-sent
    finally:
        plain.stop()


def test_cli_send_queue_list_sync_flushes_and_cancel(sandbox: Any, mail_user: Any, tmp_path: Path) -> None:
    home = Home(tmp_path / "home", env={"DM_PW": mail_user.password})
    add_imaps_account(home, sandbox, mail_user, name="acct")
    queued = home.run("send", "--to", mail_user.email, "--subject", "queued by cli", "--body", "b", "--queue")
    assert queued.returncode == 0, queued.stderr
    kept = home.run("send", "--to", mail_user.email, "--subject", "cancel me", "--body", "b", "--queue", "--json")
    cancel_id = json.loads(kept.stdout)["id"]
    listed = json.loads(home.run("outbox", "--json").stdout)
    assert [(e["subject"], e["state"]) for e in listed] == [("queued by cli", "queued"), ("cancel me", "queued")]
    assert "Removed" in home.run("outbox", "cancel", cancel_id).stdout
    synced = home.run("sync")  # a sync sends what is due
    assert synced.returncode == 0, synced.stderr
    assert json.loads(home.run("outbox", "--json").stdout) == []
    found = sandbox.doveadm("search", "-u", mail_user.email, "mailbox", "INBOX", "subject", "queued by cli")
    assert len(found.stdout.split()) == 2  # one message (guid uid)
    assert sandbox.doveadm("search", "-u", mail_user.email, "mailbox", "INBOX", "subject",
                           "cancel me").stdout.strip() == ""
    missing = home.run("outbox", "retry", "nope")
    assert missing.returncode == 4 and "no message 'nope'" in missing.stderr


@pytest.mark.usefixtures("env_password")
def test_copy_to_sent_fails_after_the_send_is_retried_without_resending(tmp_path: Path, sandbox: Any,
                                                                         mail_user: Any, smtp: ScriptedSmtp) -> None:
    from dataclasses import replace

    app = make_app(tmp_path, sandbox, mail_user, smtp.port)
    account = app.account("acct")
    app.update_account(replace(account, incoming=replace(account.incoming, port=closed_port())))  # IMAP down
    sent = app.send(draft("copy later", "c@far.example"))
    assert sent.state == "sent" and sent.error is None  # it went out: not an error of the message
    assert sent.copy_error is not None and sent.copy_error.code == Code.CONNECTION_REFUSED
    [waiting] = app.outbox()
    assert (waiting.state, waiting.sent_copy) == ("sent", "pending")  # "sent, copy to Sent pending"
    still = app.flush_outbox()  # still down: still pending, nothing resent
    assert still.entries == () and still.errors["acct"].code == Code.CONNECTION_REFUSED
    assert [e.sent_copy for e in app.outbox()] == ["pending"]
    app.update_account(account)  # IMAP is back
    result = app.flush_outbox()
    assert [(e.state, e.sent_copy, e.sent_folder) for e in result.entries] == [("sent", "saved", "Sent")]
    assert smtp.transactions == 1 and smtp.count(b"copy later") == 1  # never sent again
    assert in_sent(sandbox, mail_user, "copy later") == 1 and app.outbox() == []


@pytest.mark.usefixtures("env_password")
def test_a_watch_sends_what_the_outbox_holds(tmp_path: Path, sandbox: Any, mail_user: Any,
                                            smtp: ScriptedSmtp) -> None:
    import threading
    import time

    app = make_app(tmp_path, sandbox, mail_user, smtp.port)
    queued = app.send(draft("sent by the watch", "w@far.example"), queue_only=True)
    events: list[Any] = []
    stop = threading.Event()
    watcher = threading.Thread(target=app.watch, args=(None, stop, lambda _said: None),
                               kwargs={"listener": events.append})
    watcher.start()
    try:
        deadline = time.monotonic() + 30
        while app.outbox() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        watcher.join(30)
    assert app.outbox() == [] and smtp.count(b"sent by the watch") == 1
    assert [(e.id, e.state) for e in events if isinstance(e, OutboxProgress)] == [(queued.entry.id, "sending"),
                                                                                  (queued.entry.id, "sent")]
    assert in_sent(sandbox, mail_user, "sent by the watch") == 1

"""A mailbox over its quota, on a real Dovecot with its quota plugin (issue 16, point 6).

The doctor reads the inbox's quota (GETQUOTAROOT) after a working login and names a full mailbox
(``over_quota``, a warning: the login works, new mail does not). The sync's upload of a message saved
here gets Dovecot's own ``NO [OVERQUOTA]`` for its APPEND: the folder's result carries ``over_quota``
and a note, the file stays here, and once space is freed on the server the next sync uploads it.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import Home, add_imaps_account
from test_sync import local, msg, server, sync

sys.path.insert(0, str(Path(__file__).parent / "doctor"))
from doctorkit import diagnose, expect, rendered

from deskmail.doctor import Code, Server, Status, Step, Timeouts
from deskmail.model import Account, Protocol, Security, ServerSettings

pytestmark = pytest.mark.servers

QUOTA_CONF = """\
mail_plugins = quota
protocol imap {
  mail_plugins = quota imap_quota
}
plugin {
  quota = count:User quota
  quota_rule = *:storage=40K
  quota_vsizes = yes
}
"""


@pytest.fixture(scope="module")
def quota_sandbox() -> Iterator[Any]:
    """A second Dovecot whose every mailbox has a 40 KB quota (etc/local.conf of its sandbox)."""
    from deskmail.sandbox import start_sandbox

    root = Path(tempfile.mkdtemp(prefix="deskmail-quota-"))
    sb = start_sandbox(root)
    try:
        sb.stop()
        (root / "etc" / "local.conf").write_text(QUOTA_CONF)
        sb = start_sandbox(root)
        yield sb
    finally:
        sb.stop()
        shutil.rmtree(root, ignore_errors=True)


def _fill(sb: Any, email: str) -> None:
    """50 KB of mail in INBOX: over the 40 KB quota (written behind Dovecot's back, then counted)."""
    sb.fill_maildir(email, [msg(i, email, size=10_000) for i in range(1, 6)])
    sb.doveadm("force-resync", "-u", email, "INBOX", check=True)
    sb.doveadm("quota", "recalc", "-u", email, check=True)
    quota = sb.doveadm("-f", "tab", "quota", "get", "-u", email, check=True).stdout
    storage = next(line.split("\t") for line in quota.splitlines() if "STORAGE" in line)
    assert int(storage[2]) > int(storage[3]) > 0, quota  # value > limit (KB)


def test_doctor_names_a_full_mailbox(quota_sandbox: Any) -> None:
    sb = quota_sandbox
    user = sb.create_user("full")
    _fill(sb, user.email)
    account = Account(
        name="q", email=user.email, display_name="Q",
        incoming=ServerSettings(Protocol.IMAP, sb.host, sb.imaps_port, Security.SSL, user.email),
        outgoing=ServerSettings(Protocol.SMTP, sb.host, sb.submission_port, Security.STARTTLS, user.email),
        ca_file=str(sb.ca_file),
    )
    timeouts = Timeouts(dns=2, connect=2, sniff=0.5, greeting=3, tls=3, command=5, alternative=1,
                        round_trip=15, poll_interval=0.25, total=60)
    report = diagnose(account, user.password, timeouts=timeouts)
    finding = expect(report, Code.OVER_QUOTA, text="is full", cause="storage limit", remedy="delete messages")
    assert finding.step is Step.LOGIN and finding.status is Status.WARNING and finding.server is Server.INCOMING
    assert finding.data["resource"] == "STORAGE" and finding.data["used"] > finding.data["limit"] == 40
    login = next(f for f in report.for_server(Server.INCOMING) if f.step is Step.LOGIN and f.code is Code.OK)
    assert "5 messages" in login.text, rendered(report)

    # A mailbox with room gets no such finding.
    roomy = sb.create_user("roomy")
    account = Account(
        name="r", email=roomy.email, display_name="R",
        incoming=ServerSettings(Protocol.IMAP, sb.host, sb.imaps_port, Security.SSL, roomy.email),
        outgoing=account.outgoing, ca_file=str(sb.ca_file),
    )
    assert diagnose(account, roomy.password, timeouts=timeouts).find(Code.OVER_QUOTA) is None


def test_upload_refused_over_quota_is_named_and_kept_until_there_is_room(quota_sandbox: Any,
                                                                         tmp_path: Path) -> None:
    sb = quota_sandbox
    user = sb.create_user("upload")
    email = user.email
    sb.fill_maildir(email, [msg(i, email, size=10_000) for i in range(1, 4)])  # 30 KB of 40
    home = Home(tmp_path / "home", env={"DM_PW": user.password})
    add_imaps_account(home, sb, user)
    assert sync(home)["a"]["folders"][0]["new"] == 3
    # A 20 KB message saved here (another program, or a draft): the APPEND would pass the quota.
    cur = home.root / "data" / "mail" / "a" / "cur"
    (cur / "1700000000.saved.host:2,S").write_bytes(msg(50, email, size=20_000))

    result = sync(home)
    inbox = next(f for f in result["a"]["folders"] if f["folder"] == "INBOX")
    assert "over_quota" in inbox["codes"], inbox
    assert any("mailbox on the server is full" in note and "OVERQUOTA" in note for note in inbox["notes"]), inbox
    assert len(server(sb, email)) == 3
    assert (cur / "1700000000.saved.host:2,S").exists(), "the refused message stays here"

    # Space freed on the server by another client: the next sync uploads it, once.
    sb.doveadm("expunge", "-u", email, "mailbox", "INBOX", "header", "Message-ID", "<m1-10000@example.test>",
               check=True)
    result = sync(home)
    inbox = next(f for f in result["a"]["folders"] if f["folder"] == "INBOX")
    assert "over_quota" not in inbox["codes"] and inbox["uploaded"] == 1, inbox
    on_server = server(sb, email)
    assert "<m50-20000@example.test>" in on_server and len(on_server) == 3
    assert "<m50-20000@example.test>" in local(home)


def test_copy_to_sent_refused_over_quota_stays_pending_never_resends(quota_sandbox: Any, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """F-22: the message goes out through a scripted submission server; Dovecot answers the Sent copy's
    APPEND with its own ``NO [OVERQUOTA]``. The message is sent (once), its copy pending; a flush while the
    mailbox is still full resends nothing; once another client freed space the copy is saved, once."""
    from deskmail.app import Deskmail
    from deskmail.codes import Code as ErrorCode
    from deskmail.config import Paths
    from deskmail.model import PasswordSource
    from deskmail.outbox.compose import Draft
    from helpers import closed_port
    from smtpkit import ScriptedSmtp

    sb = quota_sandbox
    user = sb.create_user("sentcopy")
    _fill(sb, user.email)
    monkeypatch.setenv("DM_QUOTA_PW", user.password)
    smtp = ScriptedSmtp(sb, user, closed_port()).start()
    try:
        app = Deskmail(Paths(tmp_path / "config", tmp_path / "data"))
        app.add_account(Account(
            "q", user.email, "Quota Tester",
            incoming=ServerSettings(Protocol.IMAP, sb.host, sb.imaps_port, Security.SSL, user.email),
            outgoing=ServerSettings(Protocol.SMTP, sb.host, smtp.port, Security.STARTTLS, user.email),
            password=PasswordSource("env", env="DM_QUOTA_PW"), ca_file=str(sb.ca_file)))

        def in_sent() -> int:
            found = sb.doveadm("search", "-u", user.email, "mailbox", "Sent", "subject", "quota copy")
            return len(found.stdout.split()) // 2 if found.returncode == 0 else 0

        sent = app.send(Draft(to=["far@far.example"], subject="quota copy", body="hello\n"))
        assert sent.state == "sent" and sent.error is None  # delivered: not an error of the message
        assert sent.copy_error is not None and sent.copy_error.code == ErrorCode.OVER_QUOTA, sent.copy_error
        [waiting] = app.outbox()
        assert (waiting.state, waiting.sent_copy) == ("sent", "pending")  # "sent, copy to Sent pending"
        assert smtp.transactions == 1 and in_sent() == 0

        for _ in range(2):  # still full: still pending, nothing sent again
            still = app.flush_outbox(everything=True)
            assert still.entries == () and still.errors["q"].code == ErrorCode.OVER_QUOTA, still
            assert [(e.state, e.sent_copy) for e in app.outbox()] == [("sent", "pending")]
        assert smtp.transactions == 1 and in_sent() == 0

        # Another client frees space: the next flush saves the copy, once, and sends nothing.
        sb.doveadm("expunge", "-u", user.email, "mailbox", "INBOX", "all", check=True)
        sb.doveadm("quota", "recalc", "-u", user.email, check=True)
        result = app.flush_outbox()
        assert [(e.state, e.sent_copy, e.sent_folder) for e in result.entries] == [("sent", "saved", "Sent")]
        assert smtp.transactions == 1 and smtp.count(b"quota copy") == 1 and in_sent() == 1
        assert app.outbox() == [] and app.flush_outbox(everything=True).entries == () and in_sent() == 1
    finally:
        smtp.stop()

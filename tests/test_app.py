"""The façade (deskmail.app.Deskmail) as a front-end uses it: no prompts, no printing, against the real servers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deskmail.app import Deskmail
from deskmail.config import Paths
from deskmail.errors import AuthError, NotFoundError, UsageError
from deskmail.outbox.compose import Draft
from deskmail.secrets import Secret
from deskmail.setup import Candidate, Checked, DidNotWork, ManualSettings, SetupEvent, Trying, Worked

pytestmark = pytest.mark.servers


@pytest.fixture
def app(tmp_path: Path) -> Deskmail:
    return Deskmail(Paths(tmp_path / "config", tmp_path / "data"))


def _settings(sandbox: Any, user: Any, *, password_env: str | None = "DM_APP_PW", **changes: Any) -> ManualSettings:
    values: dict[str, Any] = dict(
        email=user.email, name="acct", in_host=sandbox.host, in_port=sandbox.imaps_port, in_security="ssl",
        smtp_host=sandbox.host, smtp_port=sandbox.submission_port, smtp_security="starttls",
        ca_file=str(sandbox.ca_file), password_env=password_env,
    )
    values.update(changes)
    return ManualSettings(**values)


def test_setup_sync_read_flag_move_delete_send_remove(app: Deskmail, sandbox: Any, mail_user: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DM_APP_PW", mail_user.password)
    candidates = app.candidates(_settings(sandbox, mail_user))
    assert [c.source for c in candidates] == ["the settings you gave"]
    seen: list[SetupEvent] = []
    outcome = app.verify_candidates(candidates, Secret(mail_user.password), confirm=lambda c: False,
                                    on_event=seen.append)
    assert outcome.ok and [type(e) for e in seen] == [Trying, Checked, Checked, Worked]
    assert [e.server for e in seen if isinstance(e, Checked)] == ["incoming", "outgoing"]
    assert outcome.account is not None
    account = app.add_account(outcome.account)
    assert app.account().name == "acct" == account.name
    with pytest.raises(UsageError) as exists:
        app.candidates(_settings(sandbox, mail_user))
    assert exists.value.code == "account_exists"

    for n in range(3):
        sandbox.deliver(mail_user.email, (f"From: a{n}@example.test\r\nTo: {mail_user.email}\r\n"
                                          f"Subject: app test {n}\r\nMessage-ID: <app{n}@example.test>\r\n\r\n"
                                          f"body {n}\r\n").encode())
    run = app.sync()
    assert not run.failures and sum(r.new for r in run.results["acct"]) == 3
    listed = app.list_messages(folder="INBOX")
    assert sorted(m.subject for m in listed) == ["app test 0", "app test 1", "app test 2"]
    first = next(m for m in listed if m.subject == "app test 0")
    view = app.read_message(first.id)
    assert view.reading.headers["Subject"] == "app test 0" and "body 0" in view.reading.text
    assert b"Message-ID: <app0@example.test>" in app.raw_message(first.id)

    assert app.mark_read([first.id]) == 1
    assert "\\Seen" in app.message(first.id).flags
    folders = {f.name: f for f in app.folders()}
    assert folders["INBOX"].messages == 3 and folders["INBOX"].sync
    second = next(m for m in listed if m.subject == "app test 1")
    third = next(m for m in listed if m.subject == "app test 2")
    assert app.move([second.id], "Archive" if "Archive" in folders else "Trash") == 1
    assert app.delete([third.id]) == 1
    with pytest.raises(NotFoundError):
        app.move([first.id], "No Such Folder")
    run = app.sync()
    assert not run.failures
    inbox = {m.subject: m for m in app.list_messages(folder="INBOX")}
    assert set(inbox) == {"app test 0"} and "\\Seen" in inbox["app test 0"].flags

    sent = app.send(Draft(to=[mail_user.email], subject="from the façade", body="hello"))
    assert sent.copy_error is None and sent.sent_folder and sent.recipients == (mail_user.email,)
    app.sync()
    assert any(m.subject == "from the façade" for m in app.list_messages(folder="INBOX"))

    report = app.doctor(app.account(), app.password(app.account()))
    assert report.ok

    removed = app.remove_account("acct")
    assert removed.mail_dir is not None and removed.mail_dir.is_dir()  # the mail stays
    assert app.accounts() == {}
    with pytest.raises(NotFoundError):
        app.account("acct")


def test_wrong_password_stops_at_the_first_server_that_answers(app: Deskmail, sandbox: Any, mail_user: Any) -> None:
    good = app.candidates(_settings(sandbox, mail_user, password_env=None))[0]
    unvouched = Candidate(good.account, "found by probing", needs_confirmation=True)
    asked: list[Candidate] = []
    events: list[SetupEvent] = []

    def confirm(c: Candidate) -> bool:
        asked.append(c)
        return True

    outcome = app.verify_candidates([unvouched, good], Secret("wrong"), confirm=confirm, on_event=events.append)
    assert not outcome.ok and isinstance(outcome.rejected, AuthError)
    assert asked == [unvouched]  # asked before the password was sent there
    assert [type(e) for e in events] == [Trying, DidNotWork]  # and never tried the second candidate
    assert app.accounts() == {}


def test_refused_confirmation_sends_nothing(app: Deskmail, sandbox: Any, mail_user: Any) -> None:
    good = app.candidates(_settings(sandbox, mail_user, password_env=None))[0]
    unvouched = Candidate(good.account, "found by probing", needs_confirmation=True)
    outcome = app.verify_candidates([unvouched], Secret(mail_user.password), confirm=lambda c: False)
    assert not outcome.ok and outcome.failures == [] and outcome.rejected is None


def test_unknown_domain_asks_for_servers_by_code(app: Deskmail) -> None:
    with pytest.raises(UsageError) as unknown:
        app.build_account(ManualSettings(email="me@unknown-domain.invalid"))
    assert unknown.value.code == "servers_unknown"
    assert "--" not in str(unknown.value)  # no command-line option names below the CLI


def test_kept_sessions_are_reused_and_replaced_when_the_server_dropped_them(
        tmp_path: Path, sandbox: Any, mail_user: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DM_APP_PW", mail_user.password)
    def logins() -> int:
        return sum(1 for line in sandbox.dovecot_log().splitlines()
                   if "imap-login:" in line and f"Login: user=<{mail_user.email}>" in line)

    with Deskmail(Paths(tmp_path / "config", tmp_path / "data"), keep_connections=True) as app:
        app.add_account(app.build_account(_settings(sandbox, mail_user)))
        assert not app.sync().failures
        assert logins() == 1
        for _ in range(3):
            assert not app.sync().failures
        assert logins() == 1  # the session was kept

        kicked = sandbox.doveadm("kick", mail_user.email)
        assert kicked.returncode == 0, kicked.stderr
        sandbox.deliver(mail_user.email, b"From: a@example.test\r\nSubject: after the kick\r\n"
                                         b"Message-ID: <kick@example.test>\r\n\r\nx\r\n")
        run = app.sync()
        assert not run.failures, run.failures  # the dead session was noticed (NOOP) and replaced
        assert [m.subject for m in app.list_messages()] == ["after the kick"]
        assert logins() == 2


def test_a_keyword_the_server_would_not_keep_is_refused_when_set(app: Deskmail, sandbox: Any, mail_user: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from deskmail.store import Store

    monkeypatch.setenv("DM_APP_PW", mail_user.password)
    app.add_account(app.build_account(_settings(sandbox, mail_user)))
    sandbox.deliver(mail_user.email, b"From: a@example.test\r\nSubject: kw\r\n"
                                     b"Message-ID: <kw@example.test>\r\n\r\nx\r\n")
    assert not app.sync().failures
    message = app.list_messages()[0]
    with Store.open_reader(app.paths.data_dir) as store:
        inbox = store.folder("acct", "INBOX")
    assert inbox is not None and "\\*" in (inbox.permanent_flags or "").split()  # Dovecot keeps any keyword
    assert app.set_flags([message.id], add=["sparkly"]) == 1  # so this one is kept, and sent at the next sync
    assert not app.sync().failures
    fetched = sandbox.doveadm("fetch", "-u", mail_user.email, "flags", "mailbox", "INBOX")
    assert "sparkly" in fetched.stdout, fetched.stdout + fetched.stderr  # a keyword alone reached the server

    # A server that keeps only the system flags (as its SELECT's PERMANENTFLAGS would say):
    with Store.open_writer(app.paths.data_dir) as store, store.transaction():
        store.update_folder(inbox.id, permanent_flags="\\Answered \\Flagged \\Deleted \\Seen \\Draft")
    with pytest.raises(UsageError) as refused:
        app.set_flags([message.id], add=["$Label1"])
    assert refused.value.code == "flag_not_kept" and "$Label1" in str(refused.value)
    assert "seen, flagged, answered, draft" in str(refused.value)
    assert "$Label1" not in app.message(message.id).flags  # nothing half-done
    assert app.set_flags([message.id], add=["flagged"]) == 1  # system flags still work


def test_list_filters_and_sort_through_the_cli(sandbox: Any, mail_user: Any, tmp_path: Path) -> None:
    import json

    from helpers import Home, add_imaps_account

    home = Home(tmp_path / "home", env={"DM_PW": mail_user.password})
    add_imaps_account(home, sandbox, mail_user)
    for n, subject in enumerate(("banana", "apple", "cherry")):
        sandbox.deliver(mail_user.email, (f"From: a@example.test\r\nSubject: {subject}\r\n"
                                          f"Message-ID: <f{n}@example.test>\r\n\r\nx\r\n").encode())
    assert home.run("sync").returncode == 0
    rows = json.loads(home.run("list", "--sort", "subject", "--json").stdout)
    assert [r["subject"] for r in rows] == ["apple", "banana", "cherry"]
    apple = rows[0]["id"]
    assert home.run("flag", str(apple), "--set", "seen", "--set", "flagged").returncode == 0
    unread = json.loads(home.run("list", "--unread", "--sort", "subject", "--json").stdout)
    assert [r["subject"] for r in unread] == ["banana", "cherry"]
    assert [r["subject"] for r in json.loads(home.run("list", "--flagged", "--json").stdout)] == ["apple"]
    bad = home.run("list", "--sort", "size")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_watch_reports_new_mail_as_typed_events(app: Deskmail, sandbox: Any, mail_user: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    from deskmail.events import Event, FolderFinished, FolderStarted

    monkeypatch.setenv("DM_APP_PW", mail_user.password)
    app.add_account(app.build_account(_settings(sandbox, mail_user)))
    events: list[Event] = []
    said: list[str] = []
    stop = threading.Event()
    watcher = threading.Thread(target=app.watch, args=(None, stop, said.append), kwargs={"listener": events.append})
    watcher.start()
    try:
        deadline = time.monotonic() + 20
        while not any("watching" in s for s in said) and time.monotonic() < deadline:
            time.sleep(0.05)
        sandbox.deliver(mail_user.email, b"From: a@example.test\r\nSubject: pushed\r\n"
                                         b"Message-ID: <push@example.test>\r\n\r\nx\r\n")
        while time.monotonic() < deadline and not any(
                isinstance(e, FolderFinished) and e.folder == "INBOX" and e.new == 1 for e in events):
            time.sleep(0.05)
    finally:
        stop.set()
        watcher.join(30)
    assert any(isinstance(e, FolderStarted) for e in events)
    assert any(isinstance(e, FolderFinished) and e.folder == "INBOX" and e.new == 1 for e in events), events
    assert [m.subject for m in app.list_messages()] == ["pushed"]

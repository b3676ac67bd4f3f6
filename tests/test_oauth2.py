"""OAuth2 sign-in end to end, with real parts: the tests' authorization server (tests/oauth_server.py),
Dovecot's ``oauth2`` passdb and the sandbox SMTP server checking every token by introspection, and a real
Secret Service holding the tokens. An HTTP client plays the browser and follows the redirect.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from deskmail.app import Deskmail
from deskmail.config import Paths
from deskmail.errors import AuthError, DeskmailError
from deskmail.model import Account, PasswordSource, Protocol, Security, ServerSettings
from deskmail.oauth2 import tokens
from deskmail.outbox.compose import Draft
from helpers import Home, secret_service
from oauth_server import MAILSERVER_SECRET, AuthServer

pytestmark = pytest.mark.servers


@pytest.fixture(scope="module")
def auth_server(sandbox: Any) -> Iterator[AuthServer]:
    """One authorization server for the module; the session's Dovecot and SMTP server check tokens there."""
    server = AuthServer()
    sandbox.enable_oauth2(server.url + "/introspect", "mailserver", MAILSERVER_SECRET)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def keyring_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real Secret Service for the module, used by this process and by the CLI subprocesses."""
    import keyring
    from keyring.backends import SecretService

    with secret_service(tmp_path_factory.mktemp("keyring")) as env:
        saved = {k: os.environ.get(k) for k in env}
        previous = keyring.get_keyring()
        os.environ.update(env)
        keyring.set_keyring(SecretService.Keyring())
        try:
            yield env
        finally:
            keyring.set_keyring(previous)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture
def home(tmp_path: Path, auth_server: AuthServer, keyring_env: dict[str, str],
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Home]:
    """A deskmail home whose deskmail.toml registers the local provider (client ``deskmail``)."""
    h = Home(tmp_path / "home", env=dict(keyring_env))
    write_settings(h, auth_server)
    monkeypatch.setenv("DESKMAIL_HOME", str(h.root))
    yield h
    tokens.forget("acct")  # the keyring is the module's: the next test starts signed out


def write_settings(home: Home, auth: AuthServer, *, client: str = "deskmail", scope: str = "mail",
                   mechanism: str = "XOAUTH2") -> None:
    (home.root / "config").mkdir(parents=True, exist_ok=True)
    (home.root / "config" / "deskmail.toml").write_text(
        f'[oauth2.local]\nname = "Local test server"\nauthorization_url = "{auth.url}/authorize"\n'
        f'token_url = "{auth.url}/token"\ndevice_authorization_url = "{auth.url}/device_authorization"\n'
        f'revocation_url = "{auth.url}/revoke"\nscope = "{scope}"\nmechanism = "{mechanism}"\n'
        f'client_id = "{client}"\n')


def app_for(home: Home) -> Deskmail:
    return Deskmail(Paths(home.root / "config", home.root / "data"))


def account(sandbox: Any, user: Any, *, protocol: Protocol = Protocol.IMAP, mechanism: str = "XOAUTH2",
            name: str = "acct") -> Account:
    pop = protocol is Protocol.POP3
    incoming = ServerSettings(protocol, sandbox.host, sandbox.pop3s_port if pop else sandbox.imaps_port,
                              Security.SSL, user.email, auth="oauth2")
    outgoing = ServerSettings(Protocol.SMTP, sandbox.host, sandbox.submission_port, Security.STARTTLS, user.email,
                              auth="oauth2")
    return Account(name, user.email, "", incoming, outgoing, PasswordSource("keyring"), ca_file=str(sandbox.ca_file),
                   options={"oauth2_provider": "local", "oauth2_mechanism": mechanism})


def browser(url: str) -> None:
    """The person's browser: follows the authorization page's redirect to deskmail's loopback listener."""
    threading.Thread(target=lambda: requests.get(url, timeout=30), daemon=True).start()


def deliver(sandbox: Any, user: Any, subject: str) -> None:
    sandbox.deliver(user.email, (f"From: a@example.test\r\nTo: {user.email}\r\nSubject: {subject}\r\n"
                                 f"Message-ID: <{subject.replace(' ', '.')}@example.test>\r\n\r\nbody\r\n").encode())


def subjects(app: Deskmail) -> set[str]:
    return {m.subject for m in app.list_messages(limit=100)}


@pytest.mark.parametrize(("protocol", "mechanism"), [(Protocol.IMAP, "XOAUTH2"), (Protocol.POP3, "OAUTHBEARER")])
def test_sign_in_sync_and_send(sandbox: Any, mail_user: Any, home: Home, auth_server: AuthServer,
                               protocol: Protocol, mechanism: str) -> None:
    app = app_for(home)
    new = account(sandbox, mail_user, protocol=protocol, mechanism=mechanism)
    signed_in = app.oauth2_sign_in(new, open_url=browser)  # verifies: both servers accept the token
    app.add_account(signed_in)
    stored = tokens.load("acct")
    assert stored is not None and stored.refresh_token and stored.scope == "mail"
    deliver(sandbox, mail_user, f"oauth {mechanism}")
    run = app.sync()
    assert not run.failures, run.failures
    assert f"oauth {mechanism}" in subjects(app)
    app.send(Draft(to=[mail_user.email], subject="sent with a token", body="hi"))
    assert f"AUTH {mechanism} user='{mail_user.email}' result=ok" in sandbox.smtp_log()


def test_device_code_sign_in(sandbox: Any, mail_user: Any, home: Home) -> None:
    app = app_for(home)
    shown = []

    def show(code: Any) -> None:  # the person types the code on another device
        shown.append(code)
        requests.get(code.verification_uri_complete, params={"user": mail_user.email}, timeout=10)

    app.oauth2_sign_in(account(sandbox, mail_user), device=True, show_code=show)
    assert len(shown) == 1 and shown[0].user_code


def test_expired_token_is_refreshed_silently(sandbox: Any, mail_user: Any, home: Home,
                                             auth_server: AuthServer) -> None:
    app = app_for(home)
    app.add_account(app.oauth2_sign_in(account(sandbox, mail_user), open_url=browser))
    before = tokens.load("acct")
    assert before is not None and not before.expiring()
    # The server ends the token's life early (revoked there, or a clock that disagrees): deskmail still thinks
    # it valid, the server refuses it, and one refresh must carry the sync through.
    requests.post(auth_server.url + "/_test/expire", data={"username": mail_user.email}, timeout=10)
    refreshes = auth_server.store.refreshes
    deliver(sandbox, mail_user, "after expiry")
    run = app.sync()
    assert not run.failures, run.failures
    assert "after expiry" in subjects(app)
    assert auth_server.store.refreshes == refreshes + 1
    after = tokens.load("acct")
    assert after is not None and after.refresh_token != before.refresh_token  # rotated, and kept


def test_token_about_to_expire_is_refreshed_before_use(sandbox: Any, mail_user: Any, home: Home,
                                                       auth_server: AuthServer) -> None:
    write_settings(home, auth_server, client="deskmail-short")  # 5-second tokens
    app = app_for(home)
    app.add_account(app.oauth2_sign_in(account(sandbox, mail_user), open_url=browser, verify=False))
    refreshes, failed = auth_server.store.refreshes, sandbox.dovecot_log().count("oauth2 failed")
    run = app.sync()
    assert not run.failures, run.failures
    assert auth_server.store.refreshes == refreshes + 1
    assert sandbox.dovecot_log().count("oauth2 failed") == failed  # refreshed before, not after a refusal


def test_revoked_sign_in_asks_to_sign_in_again_once(sandbox: Any, mail_user: Any, home: Home,
                                                    auth_server: AuthServer) -> None:
    app = app_for(home)
    app.add_account(app.oauth2_sign_in(account(sandbox, mail_user), open_url=browser))
    stored = tokens.load("acct")
    assert stored is not None
    answer = requests.post(auth_server.url + "/revoke", data={"token": stored.refresh_token, "client_id": "deskmail"},
                           timeout=10)
    assert answer.status_code == 200
    checks = auth_server.store.introspections
    run = app.sync()
    assert list(run.failures) == ["acct"]
    error = run.failures["acct"]
    assert error.code == "oauth_sign_in_again"
    assert "sign in again" in str(error).lower()
    # One refused login (the revoked access token), one refused refresh, and no more.
    assert auth_server.store.introspections - checks <= 1
    # Signing in again makes the account work.
    app.oauth2_sign_in("acct", open_url=browser)
    assert not app.sync().failures


def test_missing_scope_is_named(sandbox: Any, mail_user: Any, home: Home, auth_server: AuthServer) -> None:
    write_settings(home, auth_server, scope="profile")
    app = app_for(home)
    with pytest.raises(AuthError) as imap:
        app.oauth2_sign_in(account(sandbox, mail_user), open_url=browser)
    assert imap.value.code == "oauth_scope_missing"
    from deskmail.protocol.smtp import open_smtp

    with pytest.raises(AuthError) as smtp, open_smtp(account(sandbox, mail_user), app.password(
            account(sandbox, mail_user))):
        pass
    assert smtp.value.code == "oauth_scope_missing"
    assert "result=failed (scope missing)" in sandbox.smtp_log()


def test_state_is_checked_and_one_request_only(sandbox: Any, mail_user: Any, home: Home) -> None:
    from urllib.parse import parse_qs, urlsplit

    app = app_for(home)
    seen: list[str] = []

    def forged(url: str) -> None:  # a request to the listener that is not the provider's redirect
        listener = parse_qs(urlsplit(url).query)["redirect_uri"][0]

        def attack() -> None:
            seen.append(requests.get(listener, params={"code": "stolen", "state": "forged"}, timeout=10).text)
            time.sleep(0.5)
            try:  # exactly one request: the listener is closed by now
                requests.get(listener, params={"code": "x"}, timeout=5)
            except requests.ConnectionError:
                seen.append("closed")

        threading.Thread(target=attack, daemon=True).start()

    with pytest.raises(DeskmailError) as failed:
        app.oauth2_sign_in(account(sandbox, mail_user), open_url=forged)
    assert failed.value.code == "oauth_sign_in_failed" and "state" in str(failed.value)
    deadline = time.monotonic() + 10
    while len(seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "did not complete" in seen[0] and seen[1] == "closed"
    assert tokens.load("acct") is None  # nothing was exchanged, nothing kept


def run_with_browser(home: Home, *args: str) -> str:
    """Run the CLI; play the browser for the sign-in address it prints (--no-browser). Its stderr."""
    import subprocess
    import sys

    env = {**os.environ, "DESKMAIL_HOME": str(home.root), "COLUMNS": "200", **home.env}
    proc = subprocess.Popen([sys.executable, "-m", "deskmail", *args, "--no-browser"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # the address is printed on a line of its own
        if line.strip().startswith("http"):
            browser(line.strip())
            break
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    assert "Traceback" not in err
    return err


def test_cli_add_login_and_nothing_secret_on_disk(sandbox: Any, mail_user: Any, home: Home,
                                                  auth_server: AuthServer) -> None:
    run_with_browser(home, "--debug", "account", "add", mail_user.email, "--name", "acct", "--imap-host",
                     sandbox.host, "--imap-port", str(sandbox.imaps_port), "--imap-security", "ssl", "--smtp-host",
                     sandbox.host, "--smtp-port", str(sandbox.submission_port), "--smtp-security", "starttls",
                     "--ca-file", str(sandbox.ca_file), "--oauth2-provider", "local")
    deliver(sandbox, mail_user, "cli oauth")
    sync = home.run("--debug", "sync")
    assert sync.returncode == 0, sync.stderr
    assert "AUTHENTICATE XOAUTH2 ****" in (home.root / "data" / "logs" / "debug.log").read_text()
    assert home.run("sync").returncode == 0  # the command line's fast start-up path signs in too

    # Revoked at the provider: the sync says to sign in again (and how); `account login` mends it.
    stored = tokens.load("acct")
    assert stored is not None
    requests.post(auth_server.url + "/revoke", data={"token": stored.refresh_token, "client_id": "deskmail"},
                  timeout=10)
    failed = home.run("sync")
    assert failed.returncode != 0 and "deskmail account login" in failed.stderr
    assert "sign in again" in failed.stderr.lower() and "Traceback" not in failed.stderr
    run_with_browser(home, "--debug", "account", "login", "acct")
    assert home.run("--debug", "sync").returncode == 0

    secrets = [s for t in auth_server.tokens_of(mail_user.email) for s in (t.access_token, t.refresh_token) if s]
    assert len(secrets) >= 4
    everything = home.all_bytes()
    assert b"#oauth2" not in everything and b"Bearer" not in everything
    for secret in secrets:
        xoauth2 = f"user={mail_user.email}\x01auth=Bearer {secret}\x01\x01".encode()
        for form in (secret.encode(), base64.b64encode(xoauth2), base64.b64encode(secret.encode())):
            assert form not in everything


def login_codes(app: Deskmail, acct: Account) -> dict[str, str]:
    try:
        token = app.password(acct)
    except DeskmailError:
        token = None
    report = app.doctor(acct, token)
    return {f.server.value: f.code.value for f in report.findings if f.step.value == "login"}


def test_doctor_checks_the_sign_in(sandbox: Any, mail_user: Any, home: Home, auth_server: AuthServer) -> None:
    app = app_for(home)
    acct = app.add_account(app.oauth2_sign_in(account(sandbox, mail_user), open_url=browser))
    assert set(login_codes(app, acct).values()) == {"ok"}

    stored = tokens.load("acct")
    assert stored is not None
    requests.post(auth_server.url + "/revoke", data={"token": stored.refresh_token, "client_id": "deskmail"},
                  timeout=10)
    assert set(login_codes(app, acct).values()) == {"oauth_token_expired"}

    write_settings(home, auth_server, client="")
    assert set(login_codes(app, acct).values()) == {"oauth_client_missing"}


def test_doctor_names_a_missing_scope(sandbox: Any, mail_user: Any, home: Home, auth_server: AuthServer) -> None:
    write_settings(home, auth_server, scope="profile")
    app = app_for(home)
    acct = app.add_account(app.oauth2_sign_in(account(sandbox, mail_user), open_url=browser, verify=False))
    write_settings(home, auth_server)  # the provider needs "mail"; the sign-in was granted "profile" only
    assert set(login_codes(app, acct).values()) == {"oauth_scope_missing"}

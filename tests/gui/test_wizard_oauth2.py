"""The setup wizard and the main window with an OAuth2 provider, against the tests' authorization server
(tests/oauth_server.py), Dovecot's oauth2 passdb and a real Secret Service. A QDesktopServices URL handler
plays the browser: it follows the sign-in page's redirect to deskmail's loopback listener."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from PySide6.QtCore import QObject, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from test_wizard import provider_file

from deskmail.app import Deskmail
from deskmail.config import Paths
from deskmail.gui.mainwindow import MainWindow
from deskmail.gui.wizard import DONE, FOUND, SetupWizard
from deskmail.oauth2 import tokens
from helpers import Home
from oauth_server import AuthServer
from test_oauth2 import auth_server, browser, keyring_env, write_settings  # noqa: F401 - fixtures used here

pytestmark = pytest.mark.servers


class Browser(QObject):
    """The desktop's web browser, for http: and https: links opened by the application."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: list[str] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.opened.append(url.toString())
        browser(url.toString())


@pytest.fixture
def web() -> Iterator[Browser]:
    b = Browser()
    QDesktopServices.setUrlHandler("http", b, "open")
    try:
        yield b
    finally:
        QDesktopServices.unsetUrlHandler("http")


@pytest.fixture
def app(tmp_path: Path, sandbox: Any, mail_user: Any, auth_server: AuthServer,  # noqa: F811
        keyring_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Deskmail]:  # noqa: F811
    """A fresh home that knows the sandbox's domain, and a registered client for the local provider, which
    issues the tokens of the sandbox's servers."""
    home = Home(tmp_path / "home", env=dict(keyring_env))
    write_settings(home, auth_server)
    with (home.root / "config" / "deskmail.toml").open("a") as f:
        f.write('hosts = ["localhost"]\n')
    monkeypatch.setenv("DESKMAIL_HOME", str(home.root))
    dm = Deskmail(Paths(home.root / "config", home.root / "data"))
    provider_file(dm.paths.config_dir, mail_user.email.split("@")[1], sandbox)
    yield dm
    tokens.forget(mail_user.email)
    dm.close()


def test_the_wizard_signs_in_with_the_providers_page_instead_of_a_password(
        qtbot: Any, app: Deskmail, sandbox: Any, mail_user: Any, web: Browser) -> None:
    wizard = SetupWizard(app, ca_file=str(sandbox.ca_file))
    qtbot.addWidget(wizard)
    wizard.show()
    wizard.address_page.email.setText(mail_user.email)
    wizard.next()
    assert wizard.currentId() == FOUND
    page = wizard.found_page
    qtbot.waitUntil(lambda: bool(wizard.candidates), timeout=20_000)
    assert page.sign_in.isVisibleTo(page) and page.sign_in.text() == "Sign in with Local test server…"
    assert not page.password.isVisibleTo(page) and not page.isComplete()
    assert "deskmail never sees it" in page.sign_in_note.text()

    page.sign_in.click()
    qtbot.waitUntil(lambda: page.signed_in is not None or "What to do" in page.sign_in_note.text(), timeout=60_000)
    assert page.signed_in is not None, page.sign_in_note.text()
    assert len(web.opened) == 1 and "code_challenge=" in web.opened[0]  # the provider's page, with PKCE
    assert page.isComplete()
    wizard.next()
    assert wizard.currentId() == DONE and wizard.done_page.saved, wizard.done_page.message.text()
    account = app.accounts()[mail_user.email]
    assert account.incoming.auth == "oauth2" and account.outgoing.auth == "oauth2"
    kept = tokens.load(mail_user.email)
    assert kept is not None and kept.refresh_token
    for f in Path(app.paths.config_dir).rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert kept.refresh_token.encode() not in data and kept.access_token.encode() not in data
    sandbox.deliver(mail_user.email, b"From: a@example.test\r\nSubject: signed in\r\n\r\nhi\r\n")
    run = app.sync()
    assert not run.failures, run.failures


def test_a_revoked_sign_in_offers_sign_in_again_which_mends_it(
        qtbot: Any, app: Deskmail, sandbox: Any, mail_user: Any, web: Browser,
        auth_server: AuthServer) -> None:  # noqa: F811
    wizard = SetupWizard(app, ca_file=str(sandbox.ca_file))
    qtbot.addWidget(wizard)
    wizard.address_page.email.setText(mail_user.email)
    wizard.show()
    wizard.next()
    qtbot.waitUntil(lambda: bool(wizard.candidates), timeout=20_000)
    wizard.found_page.sign_in.click()
    qtbot.waitUntil(lambda: wizard.found_page.signed_in is not None, timeout=60_000)
    wizard.next()
    assert wizard.done_page.saved
    wizard.close()

    kept = tokens.load(mail_user.email)
    assert kept is not None
    withdrawn = requests.post(auth_server.url + "/revoke",  # the provider withdrew the sign-in
                              data={"token": kept.refresh_token, "client_id": "deskmail"}, timeout=10)
    assert withdrawn.status_code == 200
    window = MainWindow(app)
    window.push = False
    qtbot.addWidget(window)
    window.show()
    window.get_mail()
    qtbot.waitUntil(lambda: window.syncs_done == 1, timeout=60_000)
    assert window.sign_in_button.isVisible(), window.progress.text()
    assert window.sign_in_button.text() == f"Sign in again to {mail_user.email}…"

    before = window.syncs_done
    window.sign_in_button.click()
    qtbot.waitUntil(lambda: window.syncs_done > before, timeout=60_000)  # signed in, then mail fetched
    assert not window.sign_in_button.isVisible() and window.state.text() == "Online"
    assert len(web.opened) == 2

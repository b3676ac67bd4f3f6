"""The setup wizard end to end against the sandbox: discovery, live check, save, first sync; and failures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gui_helpers import message
from PySide6.QtWidgets import QWizard

from deskmail.app import Deskmail
from deskmail.config import Paths
from deskmail.gui.mainwindow import MainWindow
from deskmail.gui.wizard import DONE, FOUND, MANUAL, VERIFY, SetupWizard
from deskmail.model import Security
from helpers import secret_service  # tests/helpers.py (tests/ is on the path through its conftest)

pytestmark = pytest.mark.servers


def provider_file(config_dir: Path, domain: str, sandbox: Any) -> None:
    """The provider database's drop-in folder knows the sandbox's domain (discovery without a network)."""
    d = config_dir / "providers"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{domain}.xml").write_text(f"""<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1"><emailProvider id="{domain}"><domain>{domain}</domain>
<displayName>Sandbox Mail</displayName><displayShortName>Sandbox</displayShortName>
<incomingServer type="imap"><hostname>localhost</hostname><port>{sandbox.imaps_port}</port>
<socketType>SSL</socketType><username>%EMAILADDRESS%</username>
<authentication>password-cleartext</authentication></incomingServer>
<outgoingServer type="smtp"><hostname>localhost</hostname><port>{sandbox.submission_port}</port>
<socketType>STARTTLS</socketType><username>%EMAILADDRESS%</username>
<authentication>password-cleartext</authentication></outgoingServer>
</emailProvider></clientConfig>""")


@pytest.fixture
def keyring_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A real Secret Service (GNOME Keyring) for this process's keyring calls."""
    import keyring
    from keyring.backends import SecretService

    before = keyring.get_keyring()
    (tmp_path / "keyring").mkdir()
    with secret_service(tmp_path / "keyring") as env:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        # Chosen by name: keyring's detection ran once already in this process, without a bus.
        keyring.set_keyring(SecretService.Keyring())
        try:
            yield
        finally:
            keyring.set_keyring(before)


@pytest.fixture
def empty(tmp_path: Path, sandbox: Any, mail_user: Any) -> Iterator[Deskmail]:
    app = Deskmail(Paths(tmp_path / "config", tmp_path / "data"), keep_connections=True)
    provider_file(app.paths.config_dir, mail_user.email.split("@")[1], sandbox)
    yield app
    app.close()


def start(qtbot: Any, app: Deskmail, sandbox: Any, email: str, password: str) -> SetupWizard:
    wizard = SetupWizard(app, ca_file=str(sandbox.ca_file))
    qtbot.addWidget(wizard)
    wizard.show()
    wizard.address_page.name.setText("Test User")
    wizard.address_page.email.setText(email)
    wizard.next()
    assert wizard.currentId() == FOUND
    qtbot.waitUntil(lambda: bool(wizard.candidates), timeout=20_000)
    assert "Sandbox Mail" in wizard.found_page.status.text()  # where the settings came from
    assert f"localhost:{sandbox.imaps_port}" in wizard.found_page.servers.text()
    wizard.found_page.password.setText(password)
    assert wizard.found_page.isComplete()
    wizard.next()
    assert wizard.currentId() == VERIFY
    qtbot.waitUntil(lambda: wizard.verify_page.isComplete(), timeout=60_000)
    return wizard


def test_wizard_sets_up_saves_and_first_sync_starts(qtbot: Any, empty: Deskmail, sandbox: Any, mail_user: Any,
                                                    keyring_env: None) -> None:
    sandbox.deliver(mail_user.email, message(1, subject="Welcome to the sandbox"))
    window = MainWindow(empty)
    qtbot.addWidget(window)
    window.show()
    window.add_account()
    wizard = window.findChild(SetupWizard)
    assert isinstance(wizard, SetupWizard)
    wizard.close()  # the test drives its own wizard over the same window, to keep the steps visible here
    wizard = start(qtbot, empty, sandbox, mail_user.email, mail_user.password)
    wizard.account_added.connect(window._account_added)
    checks = wizard.verify_page.checks
    assert checks.statuses() == ["info", "ok", "ok"], checks.texts()  # trying; incoming; outgoing
    assert "Incoming server" in checks.texts()[1] and "Outgoing server" in checks.texts()[2]
    wizard.next()
    assert wizard.currentId() == DONE and wizard.done_page.saved, wizard.done_page.message.text()
    account = empty.accounts()[mail_user.email]
    assert account.incoming.port == sandbox.imaps_port and account.password.kind == "keyring"
    assert empty.password(account).reveal() == mail_user.password  # in the Secret Service, not in a file
    assert mail_user.password.encode() not in (empty.paths.accounts_file.read_bytes())
    wizard.button(QWizard.WizardButton.FinishButton).click()
    # The first sync started by itself and the message is listed.
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=30_000)
    assert window.model.summary(0).subject == "Welcome to the sandbox"  # type: ignore[union-attr]
    qtbot.waitUntil(lambda: window.state.text() == "Online", timeout=30_000)  # the sync finished


def test_wrong_password_shows_the_doctors_cause_then_manual_settings(qtbot: Any, empty: Deskmail, sandbox: Any,
                                                                   mail_user: Any) -> None:
    wizard = start(qtbot, empty, sandbox, mail_user.email, "not-the-password")
    checks = wizard.verify_page.checks
    assert wizard.account is None
    assert "auth_failed" in checks.codes(), checks.texts()  # the doctor's finding, with its remedy
    assert any("What to do:" in t for t in checks.texts())
    assert "refused the login" in wizard.verify_page.verdict.text()
    wizard.next()
    assert wizard.currentId() == MANUAL
    page = wizard.manual_page
    assert page.form.in_host.text() == "localhost" and page.form.in_port.value() == sandbox.imaps_port
    assert not page.isComplete()
    assert not empty.accounts()  # nothing saved


def test_manual_starttls_on_an_implicit_tls_port_is_named(qtbot: Any, empty: Deskmail, sandbox: Any,
                                                          mail_user: Any) -> None:
    wizard = start(qtbot, empty, sandbox, mail_user.email, "wrong")
    wizard.next()
    page = wizard.manual_page
    page.password.setText(mail_user.password)
    page.form.in_security.setCurrentIndex(page.form.in_security.findData(Security.STARTTLS.value))
    page.form.in_port.setValue(sandbox.imaps_port)  # STARTTLS chosen, but the port speaks TLS at once
    page.test.click()
    assert page.testing
    qtbot.waitUntil(lambda: not page.testing, timeout=60_000)  # tested, and the doctor has said why
    assert "tls_mode_mismatch" in page.checks.codes(), page.checks.texts()
    assert not page.isComplete()
    # Put right by hand: SSL/TLS on that port works, and the account can be saved.
    page.form.in_security.setCurrentIndex(page.form.in_security.findData(Security.SSL.value))
    page.form.in_port.setValue(sandbox.imaps_port)
    page.test.click()
    qtbot.waitUntil(page.isComplete, timeout=60_000)
    assert wizard.account is not None and wizard.account.incoming.security is Security.SSL


def test_what_the_provider_wants_is_said_before_the_password(qtbot: Any, tmp_path: Path) -> None:
    app = Deskmail(Paths(tmp_path / "config", tmp_path / "data"))
    wizard = SetupWizard(app)
    qtbot.addWidget(wizard)
    wizard.show()
    wizard.address_page.email.setText("someone@yahoo.com")  # in the bundled provider database: no network
    wizard.next()
    qtbot.waitUntil(lambda: bool(wizard.candidates), timeout=20_000)
    hint = wizard.found_page.password_hint.text()
    assert "app password" in hint.lower() and "<a href=" in hint
    assert "imap.mail.yahoo.com" in wizard.found_page.servers.text()

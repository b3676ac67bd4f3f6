from __future__ import annotations

import base64
import logging

import pytest

from deskmail.errors import SecretError
from deskmail.model import Account, PasswordSource, Protocol, Security, ServerSettings
from deskmail.net.log import redact_command
from deskmail.secrets import RedactingFilter, Secret, get_password, redact, remember_secret


def _account(source: PasswordSource) -> Account:
    return Account(
        name="a", email="alice@example.com", display_name="",
        incoming=ServerSettings(Protocol.IMAP, "h", 993, Security.SSL, "alice@example.com"),
        outgoing=ServerSettings(Protocol.SMTP, "h", 587, Security.STARTTLS, "alice@example.com"),
        password=source,
    )


def test_secret_hides_itself() -> None:
    s = Secret("hunter2-Zq9")
    assert "hunter2" not in repr(s) and "hunter2" not in str(s) and "hunter2" not in f"{s}"
    assert s.reveal() == "hunter2-Zq9"


def test_redact_covers_auth_plain_blob() -> None:
    remember_secret("pw-Zq9-secret", "alice")
    blob = base64.b64encode(b"\0alice\0pw-Zq9-secret").decode()
    text = redact(f"AUTH PLAIN {blob} and pw-Zq9-secret")
    assert "pw-Zq9-secret" not in text and blob not in text


def test_filter_redacts_log_records(caplog: pytest.LogCaptureFixture) -> None:
    remember_secret("filtered-Zq9")
    logger = logging.getLogger("deskmail.test")
    handler = logging.Handler()
    records: list[str] = []
    handler.emit = lambda r: records.append(r.getMessage())  # type: ignore[method-assign]
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    try:
        logger.warning("password is %s", "filtered-Zq9")
    finally:
        logger.removeHandler(handler)
    assert records == ["password is ****"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("A1 LOGIN alice secret", "A1 LOGIN alice ****"),
        ("AUTH PLAIN AGFsaWNlAHNlY3JldA==", "AUTH PLAIN ****"),
        ("PASS secret", "PASS ****"),
        ("A2 SELECT INBOX", "A2 SELECT INBOX"),
    ],
)
def test_redact_command(line: str, expected: str) -> None:
    assert redact_command(line) == expected


def test_env_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DM_TEST_PW", "from-env")
    assert get_password(_account(PasswordSource("env", env="DM_TEST_PW"))).reveal() == "from-env"
    monkeypatch.delenv("DM_TEST_PW")
    with pytest.raises(SecretError, match="DM_TEST_PW"):
        get_password(_account(PasswordSource("env", env="DM_TEST_PW")))


def test_command_source() -> None:
    assert get_password(_account(PasswordSource("command", command="echo from-cmd"))).reveal() == "from-cmd"
    with pytest.raises(SecretError, match="exit code 3"):
        get_password(_account(PasswordSource("command", command="exit 3")))
    with pytest.raises(SecretError, match="printed nothing"):
        get_password(_account(PasswordSource("command", command="true")))


def test_no_keyring_names_the_alternatives(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring
    from keyring.backends import fail

    monkeypatch.setattr(keyring, "get_keyring", lambda: fail.Keyring())
    with pytest.raises(SecretError) as info:
        get_password(_account(PasswordSource("keyring")))
    assert "--password-command" in str(info.value) and "--password-env" in str(info.value)

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyrings.alt.file import PlaintextKeyring

from deskmail.errors import SecretError
from deskmail.model import Account, PasswordSource, Protocol, Security, ServerSettings
from deskmail.secrets import Secret, get_password, store_in_keyring


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
    from keyring.backends import fail

    monkeypatch.setattr(keyring, "get_keyring", lambda: fail.Keyring())
    with pytest.raises(SecretError) as info:
        get_password(_account(PasswordSource("keyring")))
    # The engine names the settings; the CLI adds its options by the code (tests/test_slice.py).
    assert "password_command" in str(info.value) and "password_env" in str(info.value)
    assert info.value.code == "no_keyring"


class MemoryKeyring(KeyringBackend):
    """A test keyring that keeps passwords in this process's memory (never on disk)."""

    priority = 10  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.entries.pop((service, username), None)


@pytest.fixture
def restore_keyring() -> Iterator[None]:
    before = keyring.get_keyring()
    yield
    keyring.set_keyring(before)


def test_store_and_read_with_a_real_keyring(restore_keyring: None) -> None:
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    store_in_keyring("a", "e")
    assert backend.entries == {("deskmail", "a"): "e"}
    assert get_password(_account(PasswordSource("keyring"))).reveal() == "e"


def test_plaintext_keyring_is_refused(restore_keyring: None, tmp_path: Path) -> None:
    plain = PlaintextKeyring()
    plain.file_path = str(tmp_path / "keyring_pass.cfg")  # type: ignore[misc]
    keyring.set_keyring(plain)
    with pytest.raises(SecretError) as info:
        store_in_keyring("a", "password")
    message = str(info.value)
    assert "insecure keyring" in message and "PlaintextKeyring" in message and "plain file" in message
    assert "password_command" in message and "password_env" in message
    assert not (tmp_path / "keyring_pass.cfg").exists()


class _LowPriority(MemoryKeyring):
    priority = 0.5  # type: ignore[assignment]


def test_fallback_and_chained_plaintext_keyrings_are_refused(restore_keyring: None,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from keyring.backends import chainer

    keyring.set_keyring(_LowPriority())
    with pytest.raises(SecretError, match="low-priority fallback"):
        store_in_keyring("a", "x")
    # A chainer stores in its first backend: a plaintext one first is refused, a real one first is fine.
    monkeypatch.setattr(chainer.ChainerBackend, "backends", [PlaintextKeyring(), MemoryKeyring()])
    keyring.set_keyring(chainer.ChainerBackend())
    with pytest.raises(SecretError, match="plain file"):
        store_in_keyring("a", "x")
    first = MemoryKeyring()
    monkeypatch.setattr(chainer.ChainerBackend, "backends", [first, PlaintextKeyring()])
    store_in_keyring("a", "x")
    assert first.entries == {("deskmail", "a"): "x"}

"""Passwords: where they come from, and making sure they never leak.

Secrets live in the OS keyring. Headless machines can use a command whose
stdout is the password (like msmtp's ``passwordeval``) or an environment
variable (scripts). Whatever the source, every password that deskmail has
seen is registered with :func:`remember_secret`; the :class:`RedactingFilter`
on every log handler replaces it (and its base64 AUTH forms) by ``****``.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from deskmail.codes import Code
from deskmail.errors import SecretError
from deskmail.model import Account, PasswordSource

if TYPE_CHECKING:
    import logging

KEYRING_SERVICE = "deskmail"

_known_secrets: set[str] = set()


@dataclass(frozen=True, slots=True, repr=False)
class Secret:
    """A password that does not show itself in repr/str (tracebacks, debug dumps)."""

    value: str

    def __repr__(self) -> str:
        return "Secret('****')"

    __str__ = __repr__

    def reveal(self) -> str:
        return self.value


def remember_secret(value: str, *usernames: str) -> None:
    """Register a secret (and the base64 forms an AUTH exchange gives it) for redaction."""
    if not value:
        return
    _known_secrets.add(value)
    _known_secrets.add(base64.b64encode(value.encode()).decode())
    for user in usernames:
        for blob in (f"\0{user}\0{value}", f"{user}\0{user}\0{value}"):
            _known_secrets.add(base64.b64encode(blob.encode()).decode())


def redact(text: str) -> str:
    for s in sorted(_known_secrets, key=len, reverse=True):
        if s and s in text:
            text = text.replace(s, "****")
    return text


class RedactingFilter:
    """A logging filter (any object with ``filter`` will do: logging is imported only for --debug)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not hide the log line
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        return True


def _keyring_backend_usable() -> bool:
    import keyring
    from keyring.backends import fail

    backend = keyring.get_keyring()
    return not isinstance(backend, fail.Keyring) and "fail" not in type(backend).__module__


_NO_KEYRING_REMEDY = (
    "install and unlock a keyring (GNOME Keyring / KWallet / macOS Keychain / Windows Credential "
    "Manager), or re-add the account with --password-command 'pass show mail' (any command that "
    "prints the password) or, for scripts, --password-env VARIABLE"
)


def check_keyring() -> None:
    """Raise a clear SecretError when no usable keyring can hold a password."""
    if not _keyring_backend_usable():
        raise SecretError(
            "No usable system keyring was found to store the password",
            "this machine has no keyring service (common on servers and minimal desktops)",
            _NO_KEYRING_REMEDY,
            code=Code.NO_KEYRING,
        )


def store_in_keyring(account_name: str, password: str) -> None:
    import keyring
    from keyring.errors import KeyringError

    check_keyring()
    try:
        keyring.set_password(KEYRING_SERVICE, account_name, password)
    except KeyringError as exc:
        raise SecretError(
            f"The keyring refused to store the password ({type(exc).__name__})",
            "the keyring is locked or not running",
            _NO_KEYRING_REMEDY,
        ) from exc


def delete_from_keyring(account_name: str) -> None:
    try:
        import keyring
        from keyring.errors import KeyringError, PasswordDeleteError

        if _keyring_backend_usable():
            keyring.delete_password(KEYRING_SERVICE, account_name)
    except (PasswordDeleteError, KeyringError):
        pass  # nothing stored, or keyring gone: nothing to clean up


def _from_keyring(account_name: str) -> str:
    import keyring
    from keyring.errors import KeyringError

    if not _keyring_backend_usable():
        raise SecretError(
            f"The password of account {account_name!r} should be in the system keyring, "
            "but no usable keyring was found",
            "this machine has no keyring service, or it is not unlocked in this session",
            _NO_KEYRING_REMEDY,
        )
    try:
        value = keyring.get_password(KEYRING_SERVICE, account_name)
    except KeyringError as exc:
        raise SecretError(
            f"The keyring could not be read ({type(exc).__name__})",
            "the keyring is locked",
            "unlock your keyring and try again",
        ) from exc
    if value is None:
        raise SecretError(
            f"No password is stored for account {account_name!r}",
            "the keyring entry was removed, or the account was added on another machine",
            "store the password again",
            code=Code.NO_PASSWORD_STORED, account=account_name,
        )
    return value


def _from_command(source: PasswordSource) -> str:
    import subprocess  # only this password source needs it: keeps `deskmail sync` start-up short

    try:
        proc = subprocess.run(
            source.command, shell=True, capture_output=True, text=True, timeout=60, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise SecretError(
            "The password command did not finish within 60 seconds",
            "it may be waiting for input (a GPG passphrase prompt, for example)",
            "make sure the command runs without a terminal, e.g. with gpg-agent running",
        ) from exc
    if proc.returncode != 0:
        # stderr may echo arguments but never the password (we did not give it one).
        raise SecretError(
            f"The password command failed with exit code {proc.returncode}",
            (proc.stderr.strip().splitlines() or ["it printed nothing on stderr"])[-1],
            "run the password_command by hand to see what is wrong",
        )
    value = proc.stdout.rstrip("\r\n")
    if not value:
        raise SecretError(
            "The password command printed nothing",
            "the command ran but produced an empty password",
            "run the password_command by hand; it must print the password on its first line",
        )
    return value.splitlines()[0]


def get_password(account: Account) -> Secret:
    source = account.password
    if source.kind == "env":
        value = os.environ.get(source.env, "")
        if not value:
            raise SecretError(
                f"The environment variable {source.env} is not set or empty",
                f"account {account.name!r} reads its password from ${source.env}",
                f"export {source.env}=... before running deskmail",
            )
    elif source.kind == "command":
        value = _from_command(source)
    else:
        value = _from_keyring(account.name)
    remember_secret(value, account.incoming.username, account.outgoing.username, account.email)
    return Secret(value)

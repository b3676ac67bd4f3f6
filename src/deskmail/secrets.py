"""Passwords: where they come from.

Secrets live in the OS keyring, never in a plaintext one (see
:func:`store_in_keyring`). Headless machines can use a command whose stdout is
the password (like msmtp's ``passwordeval``) or an environment variable
(scripts). Logs and the doctor's output are kept free of passwords by
structure (:mod:`deskmail.protocol.core`), not by masking text afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from deskmail.codes import Code
from deskmail.errors import SecretError
from deskmail.model import Account, PasswordSource

KEYRING_SERVICE = "deskmail"


@dataclass(frozen=True, slots=True, repr=False)
class Secret:
    """A password (or an OAuth2 access token) that does not show itself in repr/str (tracebacks, debug dumps).

    For an access token, ``renew`` gives a fresh one: a protocol adapter asks for it once when a server
    refuses this one, never more (no loop of failed logins). ``scope``: the scopes the token was granted
    (space-separated, "" when unknown), to name a missing scope when a server refuses the token.
    """

    value: str
    renew: Callable[[], Secret] | None = field(default=None, compare=False)
    scope: str = field(default="", compare=False)

    def __repr__(self) -> str:
        return "Secret('****')"

    __str__ = __repr__

    def reveal(self) -> str:
        return self.value


def _keyring_readable() -> bool:
    import keyring
    from keyring.backends import fail

    backend = keyring.get_keyring()
    return not isinstance(backend, fail.Keyring) and "fail" not in type(backend).__module__


def _insecure_backend(backend: object) -> str | None:
    """Why ``backend`` must not receive a password (it keeps it readable on disk), or None if it is fit."""
    from keyring.backends import chainer, fail

    if isinstance(backend, chainer.ChainerBackend):
        # The chainer stores in its first backend (highest priority first): that one decides.
        first = next(iter(backend.backends), None)
        return "no keyring" if first is None else _insecure_backend(first)
    kind = type(backend)
    name = f"{kind.__module__}.{kind.__qualname__}"
    if isinstance(backend, fail.Keyring) or "fail" in kind.__module__:
        return "no keyring"
    if kind.__module__.startswith("keyrings.alt.file") or kind.__qualname__ == "PlaintextKeyring":
        return f"the keyring backend {name} keeps passwords in a plain file on disk"
    try:
        priority = float(getattr(kind, "priority", 0))
    except Exception:  # keyring backends compute priority and may raise when unusable
        priority = 0
    if priority < 1:
        return f"the keyring backend {name} is a low-priority fallback, not a system keyring"
    return None


_NO_KEYRING_REMEDY = (
    "install and unlock a keyring (GNOME Keyring / KWallet / macOS Keychain / Windows Credential "
    "Manager), or give the account a password command (any command that prints the password, e.g. "
    "'pass show mail') or, for scripts, an environment variable (password_command / password_env)"
)

_PLAINTEXT_REMEDY = (
    "give the account a password command or an environment variable (password_command / "
    "password_env) instead, or install and unlock a system keyring (GNOME Keyring / KWallet / "
    "macOS Keychain / Windows Credential Manager)"
)


def check_keyring() -> None:
    """Raise a clear SecretError now when no keyring can safely hold a password (before anyone types one)."""
    import keyring

    problem = _insecure_backend(keyring.get_keyring())
    if problem == "no keyring":
        raise SecretError(
            "No usable system keyring was found to store the password",
            "this machine has no keyring service (common on servers and minimal desktops)",
            _NO_KEYRING_REMEDY,
            code=Code.NO_KEYRING,
        )
    if problem is not None:
        raise SecretError(
            "deskmail will not store the password in an insecure keyring",
            f"{problem}, where anyone who can read your files can read it",
            _PLAINTEXT_REMEDY,
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
            code=Code.NO_KEYRING,
        ) from exc


def delete_from_keyring(account_name: str) -> None:
    try:
        import keyring
        from keyring.errors import KeyringError, PasswordDeleteError

        if _keyring_readable():
            keyring.delete_password(KEYRING_SERVICE, account_name)
    except (PasswordDeleteError, KeyringError):
        pass  # nothing stored, or keyring gone: nothing to clean up


def _from_keyring(account_name: str) -> str:
    import keyring
    from keyring.errors import KeyringError

    if not _keyring_readable():
        raise SecretError(
            f"The password of account {account_name!r} should be in the system keyring, "
            "but no usable keyring was found",
            "this machine has no keyring service, or it is not unlocked in this session",
            _NO_KEYRING_REMEDY,
            code=Code.NO_KEYRING, account=account_name,
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
    """The password, or for an OAuth2 account its access token.

    An OAuth2 account with a password command or variable gets its access token from there (an
    external token helper); otherwise from its sign-in in the keyring, refreshed as needed.
    """
    source = account.password
    if account.incoming.auth == "oauth2" and source.kind == "keyring":
        from deskmail.config import paths
        from deskmail.oauth2.tokens import access_token

        return access_token(account, paths())
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
    return Secret(value)

"""Tokens: kept in the OS keyring, refreshed before they expire, renewed once when refused.

One keyring entry per account (``<account>#oauth2`` in deskmail's service) holds the refresh token, the
current access token, its expiry and the granted scopes as JSON: nothing of it is ever written to a
config or log file. A refresh the provider refuses (``invalid_grant``: revoked, expired, password
changed) raises the one "sign in again" error (``oauth_sign_in_again``); a protocol adapter asks for a
renewed token at most once per login, so a dead grant never turns into a loop of failed logins.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from deskmail.codes import Code
from deskmail.config import Paths
from deskmail.errors import DeskmailError, NetworkError, SecretError
from deskmail.model import Account
from deskmail.oauth2.providers import OAuth2Client, OAuth2Provider, client_for, provider_for
from deskmail.secrets import KEYRING_SERVICE, Secret, store_in_keyring

# Refresh this long before the provider's expiry: a sync must not start with a token that dies mid-login.
EARLY = 120.0
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


@dataclass(frozen=True, slots=True, repr=False)
class Tokens:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float  # epoch seconds; 0 when the provider did not say
    scope: str = ""

    def __repr__(self) -> str:
        return f"Tokens(expires_at={self.expires_at}, scope={self.scope!r})"

    def expiring(self, now: float | None = None) -> bool:
        return bool(self.expires_at) and self.expires_at - (now or time.time()) < EARLY

    def to_json(self) -> str:
        return json.dumps({"access_token": self.access_token, "refresh_token": self.refresh_token,
                           "expires_at": self.expires_at, "scope": self.scope})

    @classmethod
    def from_response(cls, token: Mapping[str, Any], asked_scope: str, previous: Tokens | None = None) -> Tokens:
        """From a token endpoint's answer; a refresh may omit the refresh token (kept) and the scope (same)."""
        expires_at = float(token.get("expires_at") or 0)
        if not expires_at and token.get("expires_in"):
            expires_at = time.time() + float(token["expires_in"])
        scope = token.get("scope")
        if isinstance(scope, list):
            scope = " ".join(scope)
        return cls(str(token["access_token"]),
                   str(token.get("refresh_token") or (previous.refresh_token if previous else "")),
                   expires_at, str(scope or (previous.scope if previous else asked_scope)))


def keyring_key(account_name: str) -> str:
    return f"{account_name}#oauth2"


def save(account_name: str, tokens: Tokens) -> None:
    store_in_keyring(keyring_key(account_name), tokens.to_json())


def load(account_name: str) -> Tokens | None:
    import keyring
    from keyring.errors import KeyringError

    try:
        raw = keyring.get_password(KEYRING_SERVICE, keyring_key(account_name))
    except KeyringError as exc:
        raise SecretError(f"The keyring could not be read ({type(exc).__name__})", "the keyring is locked",
                          "unlock your keyring and try again", code=Code.NO_KEYRING,
                          account=account_name) from exc
    if not raw:
        return None
    try:
        d = json.loads(raw)
        return Tokens(str(d["access_token"]), str(d.get("refresh_token", "")), float(d.get("expires_at", 0)),
                      str(d.get("scope", "")))
    except (ValueError, KeyError, TypeError):
        return None  # unreadable: as good as none, and a new sign-in replaces it


def forget(account_name: str) -> None:
    from deskmail.secrets import delete_from_keyring

    delete_from_keyring(keyring_key(account_name))


def sign_in_again(account: Account, why: str) -> SecretError:
    return SecretError(
        f"The OAuth2 sign-in of account {account.name!r} ({account.email}) must be done again",
        why,
        "sign in again in the browser; nothing else of the account changes",
        code=Code.OAUTH_SIGN_IN_AGAIN, account=account.name,
    )


def _lock(name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(name, threading.Lock())


def session(provider: OAuth2Provider, client: OAuth2Client, **kwargs: Any) -> Any:
    """An authlib OAuth2Session for ``client`` (a public client when it has no secret)."""
    from authlib.integrations.requests_client import OAuth2Session

    method = "client_secret_post" if client.client_secret else "none"
    return OAuth2Session(client.client_id, client.client_secret or None, token_endpoint_auth_method=method,
                         **kwargs)


def _refresh(account: Account, provider: OAuth2Provider, client: OAuth2Client, tokens: Tokens) -> Tokens:
    from authlib.integrations.base_client.errors import OAuthError
    from requests import RequestException

    if not tokens.refresh_token:
        raise sign_in_again(account, "the provider gave no refresh token at the last sign-in")
    try:
        with session(provider, client) as s:
            answer = s.refresh_token(provider.token_url, refresh_token=tokens.refresh_token, timeout=30)
    except OAuthError as exc:
        if exc.error in ("invalid_grant", "invalid_client", "unauthorized_client"):
            raise sign_in_again(account, f"{provider.name} no longer accepts the sign-in ({exc.error}): it was "
                                "revoked, expired, or the password changed") from None
        raise DeskmailError(f"{provider.name} refused to refresh the sign-in ({exc.error})",
                            exc.description or "", "try again later", code=Code.OAUTH_SIGN_IN_FAILED,
                            account=account.name) from None
    except RequestException as exc:
        raise NetworkError(f"{provider.name}'s token service ({provider.token_url}) cannot be reached",
                           type(exc).__name__, "check the network and try again", account=account.name) from None
    fresh = Tokens.from_response(answer, tokens.scope, tokens)
    save(account.name, fresh)
    return fresh


def access_token(account: Account, paths: Paths, *, force: bool = False) -> Secret:
    """A valid access token for ``account`` (refreshed when it expires soon, or when ``force``).

    The returned secret's ``renew`` forces one refresh; the renewed one has none (one retry per login).
    """
    provider = provider_for(account, paths)
    if provider is None:
        raise sign_in_again(account, "no OAuth2 provider is known for its servers")
    with _lock(account.name):
        tokens = load(account.name)
        if tokens is None:
            raise sign_in_again(account, "no sign-in is stored in the keyring for it")
        if force or tokens.expiring():
            client = client_for(provider, paths)
            try:
                tokens = _refresh(account, provider, client, tokens)
            except SecretError as exc:
                # Another deskmail process may have refreshed (and rotated) the refresh token meanwhile.
                latest = load(account.name)
                if exc.code != Code.OAUTH_SIGN_IN_AGAIN or latest is None or \
                        latest.refresh_token == tokens.refresh_token:
                    raise
                tokens = latest if not force and not latest.expiring() else _refresh(account, provider, client,
                                                                                      latest)
    renew = None if force else (lambda: access_token(account, paths, force=True))
    return Secret(tokens.access_token, renew=renew, scope=tokens.scope)

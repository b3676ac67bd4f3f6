"""Signing in with an OAuth2 access token: what the IMAP, POP3 and SMTP adapters share.

Each adapter sends the SASL message (:func:`deskmail.protocol.core.sasl_bearer`) its own way and
reports the outcome as None (logged in) or the server's :class:`~deskmail.protocol.core.BearerRefusal`;
:func:`sign_in` asks the token's ``renew`` for a fresh token once when the server refused it, and
turns a second refusal into one clear error. A temporary failure at the server (its token check is
down) is not a refusal: the adapter raises that itself, and the token is kept.
"""

from __future__ import annotations

from collections.abc import Callable

from deskmail.codes import Code
from deskmail.errors import AuthError
from deskmail.model import Account, ServerSettings
from deskmail.protocol import core
from deskmail.secrets import Secret

Attempt = Callable[[Secret], "core.BearerRefusal | None"]


def preferred_mechanism(account: Account) -> str:
    """The account's bearer mechanism (``oauth2_mechanism`` option, from its provider); XOAUTH2 by default."""
    chosen = str(account.options.get("oauth2_mechanism", "")).upper()
    return chosen if chosen in core.BEARER_MECHANISMS else core.XOAUTH2


def cause_of(refusal: core.BearerRefusal, granted: str) -> str:
    """The refusal's cause, sharpened by the scopes the token was granted.

    Dovecot and Google answer every refused token with status 401 and the scope they need; when the
    token was granted none of those scopes, the cause is the scope, not the token.
    """
    if refusal.cause != "invalid_token" or not refusal.scope or not granted:
        return refusal.cause
    return "invalid_token" if set(refusal.scope.split()) & set(granted.split()) else "insufficient_scope"


def refused(cause: str, server: ServerSettings, granted: str = "") -> AuthError:
    where = f"{server.protocol.value.upper()} server {server.host}:{server.port}"
    if cause == "insufficient_scope":
        return AuthError(
            f"The {where} refused the sign-in of {server.username}: the token lacks the permission for mail",
            "the sign-in asked for (or was granted) other scopes than the server needs"
            + (f" (granted: {granted})" if granted else ""),
            "sign in again and allow access to mail; check the scopes of the account's OAuth2 provider",
            code=Code.OAUTH_SCOPE_MISSING, host=server.host, port=server.port,
        )
    return AuthError(
        f"The {where} refused the OAuth2 sign-in of {server.username}, also with a freshly refreshed token",
        "the token was revoked or expired, the account was signed in as another user, or mail access "
        "(IMAP/POP/SMTP) is switched off for it at the provider",
        "sign in again (with the account's own address); check that mail access is switched on",
        code=Code.OAUTH_TOKEN_EXPIRED, host=server.host, port=server.port,
    )


def sign_in(password: Secret, attempt: Attempt, server: ServerSettings) -> None:
    """Log in with ``password`` (an access token); once more with a renewed token if it is refused."""
    refusal = attempt(password)
    if refusal is None:
        return
    cause = cause_of(refusal, password.scope)
    if cause == "invalid_token" and password.renew is not None:
        password = password.renew()
        refusal = attempt(password)
        if refusal is None:
            return
        cause = cause_of(refusal, password.scope)
    raise refused(cause, server, password.scope)

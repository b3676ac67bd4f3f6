"""The login step of an account that signs in with OAuth2: client, sign-in, scopes, then the server itself.

The doctor's own wire speaks passwords; a bearer token is checked with the account's protocol adapter on a
connection of its own, so what is tested is exactly what sync and send do. Codes: ``oauth_client_missing``
(no client ID registered for the provider), ``oauth_token_expired`` (no sign-in kept, the provider refused
to refresh it, or the server refused the token), ``oauth_scope_missing`` (the token was not granted what
the server needs).
"""

from __future__ import annotations

from dataclasses import replace

from deskmail.codes import DOCTOR_CODES, Code
from deskmail.config import Paths
from deskmail.doctor.context import Diagnosis
from deskmail.doctor.report import Step
from deskmail.errors import AuthError, ConfigError, DeskmailError
from deskmail.model import Account, Protocol, ServerSettings
from deskmail.secrets import Secret


def check_login(account: Account, settings: ServerSettings, token: Secret | None, paths: Paths,
                timeout: float) -> str:
    """Sign in to ``settings``' server with the account's token; the finding's text, or raises a Diagnosis."""
    from deskmail.oauth2.providers import DOCS, client_for, provider_for
    from deskmail.oauth2.tokens import access_token

    where = f"{settings.host}:{settings.port}"
    provider = provider_for(account, paths)
    if provider is None:
        raise Diagnosis(Step.LOGIN, Code.OAUTH_CLIENT_MISSING,
                        f"No OAuth2 provider is known for {settings.host}",
                        "the account signs in with OAuth2, but neither the built-in providers nor deskmail.toml "
                        "name this server", f"add the provider under [oauth2.<name>] in deskmail.toml ({DOCS})")
    try:
        client_for(provider, paths)
    except ConfigError as exc:
        raise Diagnosis(Step.LOGIN, Code.OAUTH_CLIENT_MISSING, exc.what, exc.cause, exc.remedy) from None
    if token is None:
        try:
            token = access_token(account, paths)
        except DeskmailError as exc:
            raise Diagnosis(Step.LOGIN, Code.OAUTH_TOKEN_EXPIRED, exc.what, exc.cause,
                            "sign in again in the browser") from None
    needed = set(provider.scopes.get(settings.protocol, ()))
    granted = set(token.scope.split())
    if needed and granted and not needed & granted:
        raise Diagnosis(Step.LOGIN, Code.OAUTH_SCOPE_MISSING,
                        f"The sign-in was not granted access to {settings.protocol.value.upper()} at {provider.name}",
                        f"granted: {' '.join(sorted(granted))}; needed: {' '.join(sorted(needed))}",
                        "sign in again and allow access to mail")
    try:
        if settings.protocol is Protocol.SMTP:
            from deskmail.protocol.smtp import open_smtp

            with open_smtp(replace(account, outgoing=settings), token, timeout=timeout):
                pass
        elif settings.protocol is Protocol.IMAP:
            from deskmail.protocol.imap import open_imap

            with open_imap(replace(account, incoming=settings), token, timeout=timeout):
                pass
        else:
            from deskmail.protocol.pop3 import open_pop3

            with open_pop3(replace(account, incoming=settings), token, timeout=timeout):
                pass
    except AuthError as exc:
        code = Code(exc.code) if exc.code in (Code.OAUTH_SCOPE_MISSING, Code.OAUTH_TOKEN_EXPIRED) else \
            Code.OAUTH_TOKEN_EXPIRED
        raise Diagnosis(Step.LOGIN, code, exc.what, exc.cause, exc.remedy) from None
    except DeskmailError as exc:  # the refusal's renewal failed (sign in again), or the server's own trouble
        code = Code.OAUTH_TOKEN_EXPIRED if exc.code == Code.OAUTH_SIGN_IN_AGAIN else \
            Code(exc.code) if exc.code in DOCTOR_CODES else Code.PROTOCOL_ERROR
        raise Diagnosis(Step.LOGIN, code, exc.what, exc.cause, exc.remedy) from None
    return f"Signed in to {where} as {settings.username} with OAuth2 ({provider.name})"

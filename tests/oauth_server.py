"""A local OAuth2 authorization server for the tests (Flask + Authlib, in memory, in a thread).

Auto-approves: the user is the ``login_hint`` (or, at ``/device``, the ``user`` parameter). Clients:

- ``deskmail``: public (no secret, PKCE S256 required), authorization code, refresh (rotating), device;
- ``deskmail-short``: the same with 5-second access tokens;
- ``mailserver``: confidential, may introspect (RFC 7662): Dovecot's ``oauth2`` passdb and the sandbox's
  SMTP server check every token here.

Endpoints: ``/authorize``, ``/token``, ``/device_authorization``, ``/device?user_code=&user=`` (approves),
``/introspect``, ``/revoke`` (RFC 7009: an access token revokes itself, a refresh token its whole grant),
``/.well-known/oauth-authorization-server``; ``POST /_test/expire`` (form ``username``) ends the life of
that user's access tokens. Only access tokens are ever active at introspection.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc8628 import DeviceAuthorizationEndpoint, DeviceCodeGrant
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise

MAILSERVER_SECRET = "mailserver-" + secrets.token_hex(8)


@dataclass
class Client:
    client_id: str
    client_secret: str = ""
    lifetime: int = 3600
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token",
                                    "urn:ietf:params:oauth:grant-type:device_code")

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return ""

    def get_allowed_scope(self, scope: str) -> str:
        return scope

    def check_redirect_uri(self, uri: str) -> bool:  # RFC 8252 §7.3: any port on the loopback
        parts = urlsplit(uri)
        return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")

    def check_client_secret(self, secret: str) -> bool:
        return bool(self.client_secret) and secrets.compare_digest(secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.client_secret:
            return method in ("client_secret_basic", "client_secret_post")
        return method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and not self.client_secret

    def check_grant_type(self, grant_type: str) -> bool:
        return not self.client_secret and grant_type in self.grant_types


@dataclass
class Token:
    client_id: str
    user: str
    scope: str
    access_token: str
    refresh_token: str
    issued_at: float
    expires_in: int
    grant: str  # one sign-in: the tokens refreshed from it share it
    revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.revoked


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: str
    code_challenge: str
    code_challenge_method: str
    created: float = field(default_factory=time.time)

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class DeviceCredential:
    client_id: str
    scope: str
    user_code: str
    device_code: str
    expires_at: float

    def get_client_id(self) -> str:
        return self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_user_code(self) -> str:
        return self.user_code

    def is_expired(self) -> bool:
        return time.time() > self.expires_at


class Store:
    """Everything the server knows, behind one lock (Flask serves requests on several threads)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.clients = {c.client_id: c for c in (
            Client("deskmail"), Client("deskmail-short", lifetime=5), Client("mailserver", MAILSERVER_SECRET))}
        self.tokens: list[Token] = []
        self.codes: dict[str, Code] = {}
        self.devices: dict[str, DeviceCredential] = {}
        self.approved: dict[str, str] = {}  # user code -> user
        self.introspections = 0
        self.refreshes = 0

    def find(self, value: str, kind: str | None = None) -> Token | None:
        with self.lock:
            for t in self.tokens:
                if kind in (None, "access_token") and t.access_token == value:
                    return t
                if kind in (None, "refresh_token") and t.refresh_token == value:
                    return t
        return None


S256Only = type("S256Only", (CodeChallenge,), {"SUPPORTED_CODE_CHALLENGE_METHOD": ["S256"]})


class PKCE(S256Only):  # type: ignore[misc, valid-type]
    """RFC 7636 with S256 demanded at /authorize (authlib lets a request without any challenge through)."""

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge") or data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE with S256 is required")
        super().validate_code_challenge(grant, redirect_uri)


def build(store: Store) -> Flask:
    app = Flask("oauth_server")
    server = AuthorizationServer(app, query_client=store.clients.get, save_token=lambda t, r: _save(store, t, r))
    app.config["OAUTH2_REFRESH_TOKEN_GENERATOR"] = True
    server.register_token_generator("default", BearerTokenGenerator(
        lambda **kw: "at-" + secrets.token_urlsafe(24), lambda **kw: "rt-" + secrets.token_urlsafe(24),
        lambda client, grant_type: client.lifetime))

    class CodeGrant(grants.AuthorizationCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["none"]  # noqa: RUF012 (authlib reads it so)

        def save_authorization_code(self, code: str, req: Any) -> None:
            data = req.payload.data
            with store.lock:
                store.codes[code] = Code(code, req.client.client_id, req.payload.redirect_uri, req.payload.scope or "",
                                         req.user, data.get("code_challenge", ""),
                                         data.get("code_challenge_method", ""))

        def query_authorization_code(self, code: str, client: Client) -> Code | None:
            found = store.codes.get(code)
            return found if found and found.client_id == client.client_id else None

        def delete_authorization_code(self, code: Code) -> None:
            store.codes.pop(code.code, None)

        def authenticate_user(self, code: Code) -> str:
            return code.user

    class Refresh(grants.RefreshTokenGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["none"]  # noqa: RUF012 (authlib reads it so)
        INCLUDE_NEW_REFRESH_TOKEN = True

        def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
            t = store.find(refresh_token, "refresh_token")
            if t is None or t.revoked:
                return None
            self.request.grant_id = t.grant  # type: ignore[attr-defined]  # the new tokens belong to the same sign-in
            return t

        def authenticate_user(self, credential: Token) -> str:
            return credential.user

        def revoke_old_credential(self, credential: Token) -> None:
            with store.lock:
                credential.refresh_token = ""  # rotated: the old one never works again
                store.refreshes += 1

    class Device(DeviceCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["none"]  # noqa: RUF012 (authlib reads it so)

        def query_device_credential(self, device_code: str) -> DeviceCredential | None:
            return store.devices.get(device_code)

        def query_user_grant(self, user_code: str) -> tuple[str, bool] | None:
            user = store.approved.get(user_code)
            if user is None:
                return None
            for dc, cred in list(store.devices.items()):  # used once
                if cred.user_code == user_code:
                    del store.devices[dc]
            return user, True

        def should_slow_down(self, credential: DeviceCredential) -> bool:
            return False

    class DeviceEndpoint(DeviceAuthorizationEndpoint):
        CLIENT_AUTH_METHODS = ["none"]  # noqa: RUF012 (authlib reads it so)
        INTERVAL = 1

        def get_verification_uri(self) -> str:
            return request.host_url + "device"

        def save_device_credential(self, client_id: str, scope: str, data: dict[str, Any]) -> None:
            store.devices[data["device_code"]] = DeviceCredential(client_id, scope or "", data["user_code"],
                                                                  data["device_code"], time.time() + 600)

    class Introspect(IntrospectionEndpoint):
        CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]  # noqa: RUF012 (authlib reads it so)

        def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
            store.introspections += 1
            return store.find(token_string, "access_token")  # a refresh token must not log in

        def check_permission(self, token: Token, client: Client, req: Any) -> bool:
            return client.client_id == "mailserver"

        def introspect_token(self, token: Token) -> dict[str, Any]:
            return {"active": True, "client_id": token.client_id, "token_type": "Bearer", "username": token.user,
                    "email": token.user, "sub": token.user, "scope": token.scope,
                    "exp": int(token.issued_at + token.expires_in), "iat": int(token.issued_at),
                    "iss": request.host_url.rstrip("/")}

    class Revoke(RevocationEndpoint):
        CLIENT_AUTH_METHODS = ["none"]  # noqa: RUF012 (authlib reads it so)

        def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
            return store.find(token_string)

        def revoke_token(self, token: Token, req: Any) -> None:
            with store.lock:
                if token.refresh_token == req.form["token"]:  # the whole grant
                    for t in store.tokens:
                        if t.grant == token.grant:
                            t.revoked = True
                else:
                    token.revoked = True

    server.register_grant(CodeGrant, [PKCE(required=True)])
    server.register_grant(Refresh)
    server.register_grant(Device)
    server.register_endpoint(DeviceEndpoint)
    server.register_endpoint(Introspect)
    server.register_endpoint(Revoke)

    @app.get("/authorize")
    def authorize() -> Any:
        user = request.args.get("login_hint") or "nobody@example.test"
        try:  # what a consent page would validate before showing itself (PKCE included)
            grant = server.get_consent_grant(end_user=user)
        except OAuth2Error as error:
            return server.handle_error_response(None, error)
        return server.create_authorization_response(grant_user=user, grant=grant)

    @app.post("/token")
    def token() -> Any:
        return server.create_token_response()

    @app.post("/device_authorization")
    def device_authorization() -> Any:
        return server.create_endpoint_response("device_authorization")

    @app.get("/device")
    def device() -> Any:
        store.approved[request.args["user_code"]] = request.args.get("user", "nobody@example.test")
        return "approved"

    @app.post("/introspect")
    def introspect() -> Any:
        return server.create_endpoint_response("introspection")

    @app.post("/revoke")
    def revoke() -> Any:
        return server.create_endpoint_response("revocation")

    @app.post("/_test/expire")
    def expire() -> Any:
        with store.lock:
            for t in store.tokens:
                if t.user == request.form["username"]:
                    t.expires_in = 0
        return "expired"

    @app.get("/.well-known/oauth-authorization-server")
    @app.get("/.well-known/openid-configuration")
    def metadata() -> Any:
        base = request.host_url.rstrip("/")
        return jsonify({"issuer": base, "authorization_endpoint": base + "/authorize",
                        "token_endpoint": base + "/token",
                        "device_authorization_endpoint": base + "/device_authorization",
                        "introspection_endpoint": base + "/introspect", "revocation_endpoint": base + "/revoke",
                        "code_challenge_methods_supported": ["S256"]})

    return app


def _save(store: Store, token: dict[str, Any], req: Any) -> None:
    grant = getattr(req, "grant_id", "") or secrets.token_hex(8)
    with store.lock:
        store.tokens.append(Token(req.client.client_id, req.user, token.get("scope", ""), token["access_token"],
                                  token.get("refresh_token", ""), time.time(), int(token["expires_in"]), grant))


class AuthServer:
    """The server on 127.0.0.1 and a free port, serving from a daemon thread until :meth:`stop`."""

    def __init__(self) -> None:
        self.store = Store()
        self._http = make_server("127.0.0.1", 0, build(self.store), threaded=True)
        self.url = f"http://127.0.0.1:{self._http.server_port}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._http.shutdown()
        self._thread.join(10)

    def tokens_of(self, user: str) -> list[Token]:
        with self.store.lock:
            return [t for t in self.store.tokens if t.user == user]

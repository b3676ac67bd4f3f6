"""The two ways to sign in: in a browser (authorization code + PKCE, loopback redirect) or with a device code.

Authorization code (RFC 6749 §4.1 with PKCE S256, RFC 7636): a listener on 127.0.0.1 and a port the
system picks (RFC 8252 §7.3) receives the browser's redirect. It accepts exactly one request and
closes: that request must carry the ``state`` deskmail sent, and the code is exchanged together with
the PKCE verifier, so a code intercepted on the way is worthless. Device authorization (RFC 8628)
shows a code to type on another device and polls the token endpoint at the pace the provider asks.

Who shows the URL or the code is the caller's business (``open_url``, ``show_code``): the CLI prints
and opens a browser, the desktop application opens it from its own thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from deskmail.codes import Code
from deskmail.errors import Cancelled, DeskmailError, NetworkError
from deskmail.oauth2.providers import OAuth2Client, OAuth2Provider
from deskmail.oauth2.tokens import session

if TYPE_CHECKING:
    from deskmail.events import CancelToken

_PAGE = (b"<!doctype html><meta charset=utf-8><title>deskmail</title>"
         b"<p style='font:16px sans-serif;margin:3em'>%s</p>")


@dataclass(frozen=True, slots=True)
class DeviceCode:
    """What a person types where: ``user_code`` at ``verification_uri`` (before ``expires_at``)."""

    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_at: float
    message: str = ""  # the provider's own sentence, when it sends one (Microsoft does)


def failed(provider: OAuth2Provider, what: str, cause: str = "", remedy: str = "sign in again") -> DeskmailError:
    return DeskmailError(f"Signing in at {provider.name} did not complete: {what}", cause, remedy,
                         code=Code.OAUTH_SIGN_IN_FAILED)


def _network(provider: OAuth2Provider, exc: Exception) -> NetworkError:
    return NetworkError(f"{provider.name}'s sign-in service cannot be reached ({type(exc).__name__})",
                        "the network is down, or a proxy or firewall blocks it", "check the network and try again")


def _receive_one(server: Any, cancel: CancelToken | None, deadline: float) -> dict[str, str] | None:
    """Wait for the redirect; exactly one request is handled (the caller then closes the listener)."""
    server.timeout = 0.25
    while not server.handled:
        if cancel is not None and cancel.cancelled:
            raise Cancelled("The sign-in was cancelled", "", "")
        if time.monotonic() > deadline:
            return None
        server.handle_request()  # returns after one request or the timeout
    return server.query  # type: ignore[no-any-return]


def _listener(state: str) -> Any:
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            owner: Any = self.server
            owner.handled = True
            query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
            owner.query = query
            good = query.get("state") == state and ("code" in query)
            text = (b"Signed in. You can close this page and go back to deskmail." if good else
                    b"The sign-in did not complete; go back to deskmail for the reason.")
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(_PAGE % text)

        def log_message(self, format: str, *args: Any) -> None:  # the URL holds the code: never logged
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.handled = False  # type: ignore[attr-defined]
    server.query = {}  # type: ignore[attr-defined]
    return server


def authorize_in_browser(provider: OAuth2Provider, client: OAuth2Client, scope: str, *, login_hint: str = "",
                         open_url: Callable[[str], None], cancel: CancelToken | None = None,
                         timeout: float = 300.0) -> dict[str, Any]:
    """Authorization code + PKCE through the system browser; the token endpoint's answer."""
    from authlib.common.security import generate_token
    from authlib.integrations.base_client.errors import OAuthError
    from requests import RequestException

    verifier = generate_token(64)
    state = generate_token(32)
    server = _listener(state)
    try:
        redirect_uri = f"http://127.0.0.1:{server.server_address[1]}/"
        with session(provider, client, scope=scope, redirect_uri=redirect_uri, code_challenge_method="S256") as s:
            extra = dict(provider.authorize_params)
            if login_hint:
                extra["login_hint"] = login_hint
            url, _ = s.create_authorization_url(provider.authorization_url, state=state, code_verifier=verifier,
                                                **extra)
            open_url(url)
            query = _receive_one(server, cancel, time.monotonic() + timeout)
            server.server_close()
            if query is None:
                raise failed(provider, f"no answer from the browser within {timeout:.0f} seconds",
                             "the page was closed, or the sign-in was not finished",
                             "sign in again and finish the steps in the browser")
            if query.get("state") != state:
                raise failed(provider, "the answer that reached deskmail is not the one it asked for (state)",
                             "another page or program sent a request to deskmail's sign-in listener",
                             "sign in again")
            if "error" in query:
                raise failed(provider, f"{query['error']} {query.get('error_description', '')}".strip(),
                             "the sign-in was refused or cancelled in the browser",
                             "sign in again and allow deskmail access to mail")
            if "code" not in query:
                raise failed(provider, "the browser's answer carries no authorization code")
            try:
                return dict(s.fetch_token(provider.token_url, code=query["code"], code_verifier=verifier,
                                          redirect_uri=redirect_uri, timeout=30))
            except OAuthError as exc:
                raise failed(provider, f"the code was not accepted ({exc.error})", exc.description or "") from None
            except RequestException as exc:
                raise _network(provider, exc) from None
    finally:
        server.server_close()


def authorize_on_device(provider: OAuth2Provider, client: OAuth2Client, scope: str, *,
                        show_code: Callable[[DeviceCode], None], cancel: CancelToken | None = None,
                        sleep: Callable[[float], object] = time.sleep) -> dict[str, Any]:
    """Device authorization grant (RFC 8628); the token endpoint's answer."""
    import requests

    if not provider.device_authorization_url:
        raise DeskmailError(f"{provider.name} does not offer sign-in with a device code for mail", "",
                            "sign in in a browser instead", code=Code.USAGE)
    form = {"client_id": client.client_id, "scope": scope}
    if client.client_secret:
        form["client_secret"] = client.client_secret
    try:
        answer = requests.post(provider.device_authorization_url, data=form, timeout=30)
        data = answer.json()
    except (requests.RequestException, ValueError) as exc:
        raise _network(provider, exc) from None
    if not answer.ok or "device_code" not in data:
        raise failed(provider, f"the device code was refused ({data.get('error', answer.status_code)})",
                     str(data.get("error_description", "")))
    expires_at = time.time() + float(data.get("expires_in", 900))
    interval = float(data.get("interval", 5))
    uri = str(data.get("verification_uri") or data.get("verification_url", ""))
    show_code(DeviceCode(str(data["user_code"]), uri, str(data.get("verification_uri_complete", "")), expires_at,
                         str(data.get("message", ""))))
    grant = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": data["device_code"],
             **{k: v for k, v in form.items() if k != "scope"}}
    while True:
        if cancel is not None and cancel.wait(interval):
            raise Cancelled("The sign-in was cancelled", "", "")
        if cancel is None:
            sleep(interval)
        if time.time() > expires_at:
            raise failed(provider, "the device code expired before it was entered", "", "sign in again")
        try:
            answer = requests.post(provider.token_url, data=grant, timeout=30)
            token = answer.json()
        except (requests.RequestException, ValueError) as exc:
            raise _network(provider, exc) from None
        error = token.get("error") if isinstance(token, dict) else "invalid_response"
        if not error and "access_token" in token:
            return dict(token)
        if error == "authorization_pending":
            continue
        if error == "slow_down":  # RFC 8628 §3.5: five seconds more from now on
            interval += 5
            continue
        raise failed(provider, f"{error}", str(token.get("error_description", "")) if isinstance(token, dict) else "",
                     "sign in again" if error != "access_denied" else "sign in again and allow access")

"""OAuth2's pure parts: SASL messages, the servers' error challenges, providers and client registration."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deskmail.config import Paths
from deskmail.errors import ConfigError
from deskmail.model import Account, PasswordSource, Protocol, Security, ServerSettings
from deskmail.oauth2 import providers
from deskmail.oauth2.tokens import Tokens
from deskmail.protocol import bearer, core
from deskmail.setup import with_oauth2


def test_sasl_messages_as_rfc_7628_and_google_write_them() -> None:
    assert core.sasl_bearer("XOAUTH2", "a@b.test", "tok", "h", 993) == b"user=a@b.test\x01auth=Bearer tok\x01\x01"
    assert core.sasl_bearer("OAUTHBEARER", "a,b=c@d.test", "tok", "imap.d.test", 993) == (
        b"n,a=a=2Cb=3Dc@d.test,\x01host=imap.d.test\x01port=993\x01auth=Bearer tok\x01\x01")
    assert core.sasl_abort("XOAUTH2") == b"" and core.sasl_abort("OAUTHBEARER") == b"AQ=="


def test_authenticate_hides_the_token_in_what_is_shown() -> None:
    [inline] = core.imap_authenticate(b"D3", "XOAUTH2", b"secret-token", sasl_ir=True)
    assert inline.shown == "D3 AUTHENTICATE XOAUTH2 ****" and b"secret" not in inline.shown.encode()
    first, second = core.imap_authenticate(b"D3", "XOAUTH2", b"secret-token", sasl_ir=False)
    assert first.data == b"D3 AUTHENTICATE XOAUTH2\r\n" and second.after_go_ahead and second.shown == "****"
    assert core.pop3_auth("OAUTHBEARER", b"x").shown == "AUTH OAUTHBEARER ****"


def test_mechanism_follows_the_offer() -> None:
    assert core.bearer_mechanism("XOAUTH2", ["PLAIN", "XOAUTH2", "OAUTHBEARER"]) == "XOAUTH2"
    assert core.bearer_mechanism("XOAUTH2", ["PLAIN", "OAUTHBEARER"]) == "OAUTHBEARER"
    assert core.bearer_mechanism("OAUTHBEARER", ["XOAUTH2"]) == "XOAUTH2"
    assert core.bearer_mechanism("OAUTHBEARER", []) == "OAUTHBEARER"  # nothing advertised: as configured


def challenge(data: object) -> bytes:
    return base64.b64encode(json.dumps(data).encode())


def test_error_challenges_decoded_into_a_cause() -> None:
    # Dovecot 2.3's XOAUTH2 and OAUTHBEARER challenges, as the recipe recorded them.
    dovecot = core.bearer_refusal(challenge({"status": "401", "schemes": "bearer", "scope": "mail"}))
    assert dovecot.cause == "invalid_token" and dovecot.scope == "mail"
    assert core.bearer_refusal(challenge({"status": "invalid_token"})).cause == "invalid_token"
    assert core.bearer_refusal(challenge({"status": "insufficient_scope"})).cause == "insufficient_scope"
    assert core.bearer_refusal(b"").cause == "invalid_token"
    # Status 401 with a scope the token was never granted: the scope is the cause.
    assert bearer.cause_of(dovecot, "profile openid") == "insufficient_scope"
    assert bearer.cause_of(dovecot, "mail profile") == "invalid_token"
    assert bearer.cause_of(dovecot, "") == "invalid_token"


@given(st.binary(max_size=200))
def test_any_challenge_decodes_without_raising(raw: bytes) -> None:
    assert core.bearer_refusal(raw).cause in ("invalid_token", "insufficient_scope", "invalid_request")


def gmail_account(**options: object) -> Account:
    inc = ServerSettings(Protocol.IMAP, "imap.gmail.com", 993, Security.SSL, "me@gmail.com")
    out = ServerSettings(Protocol.SMTP, "smtp.gmail.com", 465, Security.SSL, "me@gmail.com")
    return Account("me", "me@gmail.com", "", inc, out, PasswordSource("keyring"), options=dict(options))


def paths(tmp_path: Path, text: str = "") -> Paths:
    p = Paths(tmp_path / "config", tmp_path / "data")
    p.config_dir.mkdir(parents=True, exist_ok=True)
    if text:
        (p.config_dir / "deskmail.toml").write_text(text)
    return p


def test_builtin_providers_by_host_and_their_scopes(tmp_path: Path) -> None:
    p = paths(tmp_path)
    google = providers.provider_for(gmail_account(), p)
    assert google is not None and google.id == "google" and google.mechanism == "XOAUTH2"
    assert google.scope_for(gmail_account()) == "https://mail.google.com/"
    microsoft = providers.BUILTIN["microsoft"]
    pop = Account("o", "o@outlook.com", "", ServerSettings(Protocol.POP3, "outlook.office365.com", 995, Security.SSL,
                                                           "o@outlook.com"),
                  ServerSettings(Protocol.SMTP, "smtp-mail.outlook.com", 587, Security.STARTTLS, "o@outlook.com"))
    assert providers.provider_for(pop, p) == microsoft
    assert microsoft.scope_for(pop).split() == ["https://outlook.office.com/POP.AccessAsUser.All",
                                                "https://outlook.office.com/SMTP.Send", "offline_access"]
    assert microsoft.flows == ("authorization_code", "device") and google.flows == ("authorization_code",)


def test_no_client_id_is_a_clear_error_pointing_to_the_docs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as missing:
        providers.client_for(providers.BUILTIN["google"], paths(tmp_path))
    assert missing.value.code == "oauth_client_missing"
    assert "docs/oauth2.md" in str(missing.value) and "DESKMAIL_OAUTH2_GOOGLE_CLIENT_ID" in str(missing.value)
    with pytest.raises(ConfigError) as setup_error:
        with_oauth2(gmail_account(), True, paths(tmp_path))
    assert setup_error.value.code == "oauth_client_missing"


def test_client_from_the_file_or_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = paths(tmp_path, '[oauth2.google]\nclient_id = "file-id"\nclient_secret = "file-secret"\n')
    assert providers.client_for(providers.BUILTIN["google"], p) == providers.OAuth2Client("file-id", "file-secret")
    assert "file-secret" not in repr(providers.client_for(providers.BUILTIN["google"], p))
    monkeypatch.setenv("DESKMAIL_OAUTH2_GOOGLE_CLIENT_ID", "env-id")
    assert providers.client_for(providers.BUILTIN["google"], p).client_id == "env-id"


def test_setup_chooses_oauth2_when_a_client_is_configured(tmp_path: Path) -> None:
    none = paths(tmp_path / "a")
    assert with_oauth2(gmail_account(), None, none).incoming.auth == "password"  # no client: app password
    p = paths(tmp_path / "b", '[oauth2.google]\nclient_id = "id"\n')
    chosen = with_oauth2(gmail_account(), None, p)
    assert chosen.incoming.auth == chosen.outgoing.auth == "oauth2"
    assert chosen.options == {"oauth2_provider": "google", "oauth2_mechanism": "XOAUTH2"}
    back = with_oauth2(chosen, False, p)
    assert back.incoming.auth == "password" and back.options == {}


def test_custom_provider_needs_its_endpoints(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as bad:
        providers.providers(paths(tmp_path, '[oauth2.corp]\nclient_id = "x"\n'))
    assert "[oauth2.corp] needs" in str(bad.value) and "not a built-in provider" in str(bad.value)


def test_tokens_keep_the_refresh_token_a_refresh_leaves_out() -> None:
    first = Tokens.from_response({"access_token": "a1", "refresh_token": "r1", "expires_in": 3600}, "mail")
    assert first.scope == "mail" and not first.expiring()
    second = Tokens.from_response({"access_token": "a2", "expires_in": 60}, "mail", first)
    assert second.refresh_token == "r1" and second.expiring()
    assert "a2" not in repr(second) and "r1" not in repr(second)


def test_a_typed_password_is_never_sent_to_an_oauth2_only_server() -> None:
    from deskmail.secrets import Secret
    from deskmail.setup import Candidate, verify_candidates

    inc = ServerSettings(Protocol.IMAP, "outlook.office365.com", 993, Security.SSL, "o@outlook.com", auth="oauth2")
    out = ServerSettings(Protocol.SMTP, "smtp-mail.outlook.com", 587, Security.STARTTLS, "o@outlook.com",
                         auth="oauth2")
    # An unroutable port: a connection attempt would fail with a network error, not the code below.
    candidate = Candidate(Account("o", "o@outlook.com", "", replace_port(inc), out), "the provider database")
    outcome = verify_candidates([candidate], Secret("pw"), confirm=lambda c: True)
    assert not outcome.ok and outcome.rejected is not None and outcome.rejected.code == "oauth_required"


def replace_port(s: ServerSettings) -> ServerSettings:
    from dataclasses import replace

    return replace(s, host="127.0.0.1", port=9)

"""Who issues tokens for which mail servers, and the client registration deskmail signs in as.

The built-in providers are written from the providers' public documentation (URLs below); the
endpoints agree with Thunderbird's ISPDB ``<oAuth2>`` blocks in the provider database. The client ID
(and, where a provider insists on one for desktop programs, the client secret) is never built in:
it comes from ``[oauth2.<provider>]`` in ``deskmail.toml`` or from ``DESKMAIL_OAUTH2_<PROVIDER>_CLIENT_ID``
/ ``_CLIENT_SECRET``. A ``[oauth2.<id>]`` table with endpoints of its own adds a provider (a
self-hosted server's authorization server, the tests' local one).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from deskmail.codes import Code
from deskmail.config import Paths
from deskmail.errors import ConfigError
from deskmail.model import Account, Protocol

SETTINGS_FILE = "deskmail.toml"  # in the config directory, beside accounts.toml
DOCS = "docs/oauth2.md"
AUTHORIZATION_CODE, DEVICE = "authorization_code", "device"


@dataclass(frozen=True, slots=True)
class OAuth2Provider:
    """An authorization server and what mail needs from it."""

    id: str
    name: str
    authorization_url: str
    token_url: str
    scopes: dict[Protocol, tuple[str, ...]]  # per protocol
    mechanism: str  # the SASL mechanism its servers expect first: XOAUTH2 or OAUTHBEARER
    hosts: tuple[str, ...] = ()  # the mail servers whose tokens it issues
    device_authorization_url: str = ""  # RFC 8628; "" where the provider refuses mail scopes on devices
    revocation_url: str = ""  # RFC 7009
    extra_scopes: tuple[str, ...] = ()  # e.g. offline_access, without which Microsoft gives no refresh token
    authorize_params: tuple[tuple[str, str], ...] = ()
    register_url: str = ""  # where a client is registered
    source: str = ""  # the public documentation this was written from

    @property
    def flows(self) -> tuple[str, ...]:
        return (AUTHORIZATION_CODE, DEVICE) if self.device_authorization_url else (AUTHORIZATION_CODE,)

    def scope_for(self, account: Account) -> str:
        """The scopes to ask for: the account's incoming protocol, SMTP, and the provider's extras."""
        wanted = [*self.scopes.get(account.incoming.protocol, ()), *self.scopes.get(Protocol.SMTP, ()),
                  *self.extra_scopes]
        return " ".join(dict.fromkeys(wanted))


@dataclass(frozen=True, slots=True)
class OAuth2Client:
    """The registration deskmail signs in as (given by the user or the packager)."""

    client_id: str
    client_secret: str = field(default="", repr=False)


_MS = "https://outlook.office.com/"
BUILTIN: dict[str, OAuth2Provider] = {p.id: p for p in (
    OAuth2Provider(
        id="google", name="Google",
        authorization_url="https://accounts.google.com/o/oauth2/v2/auth",
        token_url="https://oauth2.googleapis.com/token",
        # One scope for IMAP, POP and SMTP; Google's device flow does not allow it (limited-input scopes).
        scopes={p: ("https://mail.google.com/",) for p in Protocol},
        mechanism="XOAUTH2",
        hosts=("imap.gmail.com", "pop.gmail.com", "smtp.gmail.com"),
        revocation_url="https://oauth2.googleapis.com/revoke",
        authorize_params=(("access_type", "offline"), ("prompt", "consent")),
        register_url="https://console.cloud.google.com/apis/credentials",
        source="https://developers.google.com/gmail/imap/xoauth2-protocol, "
               "https://developers.google.com/identity/protocols/oauth2/native-app",
    ),
    OAuth2Provider(
        id="microsoft", name="Microsoft (Outlook.com, Hotmail, Microsoft 365)",
        authorization_url="https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
        token_url="https://login.microsoftonline.com/common/oauth2/v2.0/token",
        scopes={Protocol.IMAP: (_MS + "IMAP.AccessAsUser.All",), Protocol.POP3: (_MS + "POP.AccessAsUser.All",),
                Protocol.SMTP: (_MS + "SMTP.Send",)},
        extra_scopes=("offline_access",),
        mechanism="XOAUTH2",
        hosts=("outlook.office365.com", "smtp.office365.com", "smtp-mail.outlook.com", "imap-mail.outlook.com",
               "pop-mail.outlook.com"),
        device_authorization_url="https://login.microsoftonline.com/common/oauth2/v2.0/devicecode",
        register_url="https://entra.microsoft.com (App registrations)",
        source="https://learn.microsoft.com/exchange/client-developer/legacy-protocols/"
               "how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth",
    ),
    OAuth2Provider(
        id="yahoo", name="Yahoo",
        authorization_url="https://api.login.yahoo.com/oauth2/request_auth",
        token_url="https://api.login.yahoo.com/oauth2/get_token",
        scopes={p: ("mail-w",) for p in Protocol},
        mechanism="XOAUTH2",
        hosts=("imap.mail.yahoo.com", "pop.mail.yahoo.com", "smtp.mail.yahoo.com"),
        register_url="https://developer.yahoo.com/apps/",
        source="https://developer.yahoo.com/oauth2/guide/",
    ),
    OAuth2Provider(
        id="aol", name="AOL",
        authorization_url="https://api.login.aol.com/oauth2/request_auth",
        token_url="https://api.login.aol.com/oauth2/get_token",
        scopes={p: ("mail-w",) for p in Protocol},
        mechanism="XOAUTH2",
        hosts=("imap.aol.com", "pop.aol.com", "smtp.aol.com"),
        register_url="https://developer.yahoo.com/apps/ (AOL shares Yahoo's sign-in)",
        source="ISPDB aol.com <oAuth2> (login.aol.com), https://developer.yahoo.com/oauth2/guide/",
    ),
)}


def settings_file(paths: Paths) -> Any:
    return paths.config_dir / SETTINGS_FILE


def _tables(paths: Paths) -> dict[str, dict[str, Any]]:
    """The ``[oauth2.<id>]`` tables of deskmail.toml (none when the file does not exist)."""
    import tomllib

    file = settings_file(paths)
    try:
        doc = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{file} cannot be read ({exc})", "the file was edited by hand and is not valid TOML",
                          "fix the file (https://toml.io explains the syntax)") from exc
    tables = doc.get("oauth2", {})
    if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
        raise ConfigError(f"{file}: 'oauth2' must hold one table per provider", "",
                          "write [oauth2.google] (or another provider's id) tables")
    return tables


def _custom(pid: str, table: dict[str, Any], file: Any) -> OAuth2Provider:
    def text(key: str, default: str | None = None) -> str:
        value = table.get(key, default)
        if not isinstance(value, str) or (default is None and not value):
            raise ConfigError(f"{file}: [oauth2.{pid}] needs '{key}' (a string)",
                              f"{pid} is not a built-in provider, so its endpoints must be given", f"see {DOCS}")
        return value

    scope = tuple(text("scope").split())
    hosts = table.get("hosts", [])
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise ConfigError(f"{file}: [oauth2.{pid}] 'hosts' must be a list of host names", "", f"see {DOCS}")
    mechanism = text("mechanism", "XOAUTH2").upper()
    if mechanism not in ("XOAUTH2", "OAUTHBEARER"):
        raise ConfigError(f"{file}: [oauth2.{pid}] 'mechanism' must be XOAUTH2 or OAUTHBEARER", "", f"see {DOCS}")
    return OAuth2Provider(
        id=pid, name=text("name", pid), authorization_url=text("authorization_url"), token_url=text("token_url"),
        scopes={p: scope for p in Protocol}, mechanism=mechanism, hosts=tuple(h.lower() for h in hosts),
        device_authorization_url=text("device_authorization_url", ""), revocation_url=text("revocation_url", ""),
    )


def providers(paths: Paths) -> dict[str, OAuth2Provider]:
    """The built-in providers and those ``deskmail.toml`` adds."""
    found = dict(BUILTIN)
    for pid, table in _tables(paths).items():
        if pid not in BUILTIN:
            found[pid] = _custom(pid, table, settings_file(paths))
    return found


def provider_for(account: Account, paths: Paths) -> OAuth2Provider | None:
    """The account's provider: its ``oauth2_provider`` option, else the one serving its hosts."""
    known = providers(paths)
    chosen = account.options.get("oauth2_provider")
    if chosen:
        return known.get(str(chosen))
    hosts = {account.incoming.host.lower(), account.outgoing.host.lower()}
    return next((p for p in known.values() if hosts & set(p.hosts)), None)


def _env_name(pid: str, what: str) -> str:
    return f"DESKMAIL_OAUTH2_{re.sub(r'[^A-Za-z0-9]', '_', pid).upper()}_{what}"


def client_for(provider: OAuth2Provider, paths: Paths) -> OAuth2Client:
    """The registered client for ``provider``: environment variables first, then deskmail.toml."""
    table = _tables(paths).get(provider.id, {})
    client_id = os.environ.get(_env_name(provider.id, "CLIENT_ID")) or table.get("client_id", "")
    secret = os.environ.get(_env_name(provider.id, "CLIENT_SECRET")) or table.get("client_secret", "")
    if not isinstance(client_id, str) or not isinstance(secret, str):
        raise ConfigError(f"{settings_file(paths)}: [oauth2.{provider.id}] client_id and client_secret must be "
                          "strings", "", f"see {DOCS}")
    if not client_id:
        raise ConfigError(
            f"No OAuth2 client ID is configured for {provider.name}",
            "signing in with OAuth2 needs a desktop client registered with the provider, and deskmail does not "
            "borrow another program's",
            f"register one as {DOCS} explains, then put client_id under [oauth2.{provider.id}] in "
            f"{settings_file(paths)} or set {_env_name(provider.id, 'CLIENT_ID')}",
            code=Code.OAUTH_CLIENT_MISSING,
        )
    return OAuth2Client(client_id, secret)

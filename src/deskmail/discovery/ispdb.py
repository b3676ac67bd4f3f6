"""Thunderbird's ``clientConfig`` XML (ISPDB and autoconfig files), read safely.

One format serves three purposes: the provider files bundled in
``discovery/providers/``, the files a user or packager drops into a provider
directory, and the file a domain publishes at
``https://autoconfig.<domain>/mail/config-v1.1.xml``. The format is Mozilla's
version 1.1 (``<clientConfig version="1.1"><emailProvider>…``); elements
deskmail does not use (``webMail``, ``pop3`` …) are ignored, as
Thunderbird ignores ours.

Safety. Autoconfig files come from the network, so the parser assumes hostile
input:

* more than ``MAX_CONFIG_BYTES`` (1 MiB) is refused before parsing;
* any DOCTYPE, ENTITY or external-entity declaration is refused (expat is
  driven directly with those handlers raising, which is what ``defusedxml``
  does; stdlib ElementTree would not fetch external entities, but it would
  expand internal ones — the "billion laughs");
* element count and nesting depth are bounded;
* every value is checked (type, port range, host name syntax, known
  placeholders); a bad server is skipped with a reason, a provider without
  one usable incoming *and* one usable outgoing server is refused.

The only exception that leaves this module is :class:`InvalidClientConfig`.

Extensions. Facts the format has no field for live in our namespace
``urn:x-deskmail:clientconfig:1`` (prefix ``dm`` by convention)::

    <dm:source id="founding" kind="founding-document" url="…">text</dm:source>
    <incomingServer type="imap" dm:source="founding">   (which source a server comes from;
                                                          also groups incoming with outgoing)
    <dm:login password="account|app-password-if-2fa|app-password|none"
              oauth2="no|yes|only"/>
    <dm:operator>Google</dm:operator>                   (who runs the servers, for "MX → Google")
    <dm:mxDomain>google.com</dm:mxDomain>               (MX host domains that mean this provider)
    <dm:note>free text shown to the user</dm:note>

Source kinds: ``founding-document``, ``provider-documentation`` (confidence
high) and ``community-database`` (Thunderbird's ISPDB and similar; medium).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import xml.parsers.expat as expat
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import NamedTuple, TypeVar

from deskmail.codes import Code
from deskmail.errors import ProtocolError
from deskmail.model import Protocol, Security, ServerSettings, email_domain

EXT_NS = "urn:x-deskmail:clientconfig:1"
MAX_CONFIG_BYTES = 1024 * 1024
_MAX_ELEMENTS = 20_000
_MAX_DEPTH = 32

_PLACEHOLDER_RE = re.compile(r"%[A-Z]+%")
_KNOWN_PLACEHOLDERS = frozenset({"%EMAILADDRESS%", "%EMAILLOCALPART%", "%EMAILDOMAIN%"})
_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
_IPV4_RE = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")

_SOCKET_TYPES = {"ssl": Security.SSL, "starttls": Security.STARTTLS, "plain": Security.NONE}
_INCOMING_TYPES = {"imap": Protocol.IMAP, "pop3": Protocol.POP3}
# ISPDB authentication values that mean "the user's password goes to the server".
_PASSWORD_AUTH = frozenset({"password-cleartext", "plain", "password-encrypted", "secure", "ntlm"})
# Outgoing servers with only these need no SMTP AUTH at all.
_NO_AUTH = frozenset({"none", "client-ip-address", "smtp-after-pop"})

_E = TypeVar("_E", bound=Enum)


class InvalidClientConfig(ProtocolError):
    """A clientConfig file that cannot be used; ``what`` names the file, ``cause`` says why."""

    def __init__(self, origin: str, cause: str) -> None:
        super().__init__(
            f"The mail settings file {origin} cannot be used",
            cause,
            "ignore it and use another source of settings; if it is your own file, fix it",
        )
        self.origin = origin
        self.reason = cause


class SourceKind(StrEnum):
    """Where a provider's facts come from; decides the confidence deskmail gives them."""

    FOUNDING_DOCUMENT = "founding-document"
    PROVIDER_DOCUMENTATION = "provider-documentation"
    COMMUNITY_DATABASE = "community-database"
    DOMAIN_AUTOCONFIG = "domain-autoconfig"  # assigned by the fetcher, never read from a file
    UNSPECIFIED = "unspecified"


class PasswordPolicy(StrEnum):
    ACCOUNT = "account"  # the normal account password works
    APP_PASSWORD_IF_2FA = "app-password-if-2fa"  # …unless 2-step verification is on
    APP_PASSWORD = "app-password"  # always an app password (Yahoo, iCloud, Fastmail …)
    NONE = "none"  # passwords are refused: OAuth2 only
    BRIDGE = "bridge"  # the password a local bridge program shows (Proton Mail Bridge), not the account's


class OAuth2Support(StrEnum):
    NO = "no"
    YES = "yes"
    ONLY = "only"


@dataclass(frozen=True)
class SourceInfo:
    """A ``dm:source`` of a deskmail entry: where its settings come from, and how far to trust that."""

    id: str
    kind: SourceKind
    url: str
    description: str

    def describe(self) -> str:
        return f"{self.description} ({self.url})" if self.url else self.description


@dataclass(frozen=True, slots=True)
class OAuth2Endpoints:
    """The ``<oAuth2>`` block of an ISPDB file: who issues tokens and where (kept for OAuth2 sign-in)."""

    issuer: str
    scope: str = ""
    auth_url: str = ""
    token_url: str = ""


@dataclass(frozen=True, slots=True)
class Requirement:
    """Something the user must know or do before typing a password, with a stable code.

    Codes (``deskmail.codes.Code``): ``oauth_required`` (passwords are refused: browser
    sign-in only), ``app_password_required``, ``app_password_if_two_step``,
    ``enable_in_web_settings`` (IMAP/POP access or a mail password must be switched on at
    the provider), ``local_bridge`` (a program on this computer is the server: Proton Mail
    Bridge).
    """

    code: Code
    text: str
    url: str = ""


@dataclass(frozen=True)
class Documentation:
    """A ``<documentation>`` link of a clientConfig file: the provider's own page about these settings."""

    url: str
    description: str


@dataclass(frozen=True)
class ServerTemplate:
    """One server as a clientConfig file states it; host and username may hold placeholders."""

    protocol: Protocol
    hostname: str
    port: int
    security: Security
    username: str
    authentication: tuple[str, ...]
    source_id: str = ""

    @property
    def auth(self) -> str:
        """deskmail's auth method: "oauth2" only when no password mechanism is listed."""
        if any(a.lower() in _PASSWORD_AUTH for a in self.authentication):
            return "password"
        if any(a.lower() == "oauth2" for a in self.authentication):
            return "oauth2"
        return "password"

    @property
    def auth_required(self) -> bool:
        return not self.authentication or not all(a.lower() in _NO_AUTH for a in self.authentication)

    def settings_for(self, email: str) -> ServerSettings:
        return ServerSettings(
            protocol=self.protocol,
            host=expand(self.hostname, email).lower(),
            port=self.port,
            security=self.security,
            username=expand(self.username, email),
            auth=self.auth,
            auth_required=self.auth_required if self.protocol is Protocol.SMTP else True,
        )


class Setup(NamedTuple):
    """A recommended incoming + outgoing pair, in the provider's order of preference."""

    incoming: ServerTemplate
    outgoing: ServerTemplate


@dataclass(frozen=True)
class Provider:
    """A mail provider as the database (or a domain's autoconfig file) describes it."""

    id: str
    display_name: str
    short_name: str
    domains: tuple[str, ...]
    incoming: tuple[ServerTemplate, ...]
    outgoing: tuple[ServerTemplate, ...]
    documentation: tuple[Documentation, ...] = ()
    instructions: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    sources: tuple[SourceInfo, ...] = ()
    mx_domains: tuple[str, ...] = ()
    operator: str = ""
    password: PasswordPolicy = PasswordPolicy.ACCOUNT
    oauth2: OAuth2Support = OAuth2Support.NO
    origin: str = ""  # file or URL this came from
    enable_url: str = ""  # <enable visiturl>: the web page where access is switched on
    oauth2_endpoints: OAuth2Endpoints | None = None

    @property
    def help_url(self) -> str:
        return self.documentation[0].url if self.documentation else ""

    @property
    def oauth2_only(self) -> bool:
        return self.oauth2 is OAuth2Support.ONLY or self.password is PasswordPolicy.NONE

    @property
    def username_form(self) -> str:
        """How the login name is written: "full address", "local part" or "other"."""
        template = self.incoming[0].username if self.incoming else "%EMAILADDRESS%"
        return {"%EMAILADDRESS%": "full address", "%EMAILLOCALPART%": "local part"}.get(template, "other")

    def source(self, source_id: str) -> SourceInfo | None:
        for s in self.sources:
            if s.id == source_id:
                return s
        return None

    def setups(self) -> tuple[Setup, ...]:
        """Incoming and outgoing servers paired, best first.

        Each incoming server gets the first outgoing server of its group (the
        ``dm:source`` attribute; files without it form one group). Outgoing
        servers left over are offered with the first incoming server of their
        group. Order: by incoming position, then outgoing position — so the
        file's order is the order of preference.
        """
        if not self.incoming or not self.outgoing:
            return ()
        pairs: list[tuple[int, int]] = []
        used: set[int] = set()
        for i, inc in enumerate(self.incoming):
            o = _first_of_group(self.outgoing, inc.source_id)
            pairs.append((i, o))
            used.add(o)
        for o, out in enumerate(self.outgoing):
            if o not in used:
                pairs.append((_first_of_group(self.incoming, out.source_id), o))
        pairs.sort()
        return tuple(Setup(self.incoming[i], self.outgoing[o]) for i, o in pairs)

    def recommended(self, email: str) -> tuple[tuple[ServerSettings, ServerSettings], ...]:
        """The setups filled in for one address, as ``(incoming, outgoing)`` settings."""
        return tuple((s.incoming.settings_for(email), s.outgoing.settings_for(email)) for s in self.setups())

    def requirements(self) -> tuple[Requirement, ...]:
        """What the user must know or do before typing a password, most important first."""
        name = self.short_name or self.display_name
        out: list[Requirement] = []
        if self.oauth2_only:
            out.append(
                Requirement(
                    Code.OAUTH_REQUIRED,
                    f"{name} accepts only OAuth2 sign-in (through the provider's web page) for mail "
                    "programs; passwords are refused, so a password cannot work here, whichever it is",
                    self.help_url,
                )
            )
        elif self.password is PasswordPolicy.BRIDGE:
            out.append(
                Requirement(
                    Code.LOCAL_BRIDGE,
                    f"{name} is reached through Proton Mail Bridge, a program from Proton that must be installed "
                    "and signed in on this computer; deskmail talks to Bridge on 127.0.0.1 (IMAP port 1143, SMTP "
                    "port 1025, STARTTLS; Bridge shows the ports it really uses under the account's mailbox "
                    "details)",
                    self.help_url,
                )
            )
            out.append(
                Requirement(
                    Code.LOCAL_BRIDGE,
                    "Use the password Bridge shows for the account (its mailbox details), not your Proton "
                    "password; Bridge's TLS certificate is its own (self-signed): export it from Bridge's settings "
                    "and give it as the account's certificate file, so deskmail trusts it for this account's "
                    "connections to 127.0.0.1 and nowhere else",
                    self.help_url,
                )
            )
        elif self.password is PasswordPolicy.APP_PASSWORD:
            text = f"{name} requires an app password for mail programs: create one in the account's "
            text += "security settings and use it instead of your normal password"
            if self.oauth2 is OAuth2Support.YES:
                text += f"; without an app password {name} accepts only OAuth2 sign-in"
            out.append(Requirement(Code.APP_PASSWORD_REQUIRED, text, self.help_url))
        elif self.password is PasswordPolicy.APP_PASSWORD_IF_2FA:
            out.append(
                Requirement(
                    Code.APP_PASSWORD_IF_TWO_STEP,
                    f"If 2-step verification is on for this {name} account, use an app password "
                    "instead of your normal password",
                    self.help_url,
                )
            )
        if self.instructions or self.enable_url:
            text = " ".join(self.instructions) or (
                f"Access for mail programs must be switched on in {name}'s web settings first"
            )
            if self.enable_url:
                text += f" (where: {self.enable_url})"
            out.append(Requirement(Code.ENABLE_IN_WEB_SETTINGS, text, self.enable_url))
        return tuple(out)

    def advice(self) -> tuple[str, ...]:
        """What the user must know before typing a password, then the provider's notes."""
        return (*(r.text for r in self.requirements()), *self.notes)


def _first_of_group(servers: tuple[ServerTemplate, ...], group: str) -> int:
    for i, s in enumerate(servers):
        if s.source_id == group:
            return i
    return 0


@dataclass(frozen=True)
class ClientConfig:
    """A parsed file: the provider, and the servers that were skipped with the reason."""

    provider: Provider
    problems: tuple[str, ...]


def expand(template: str, email: str) -> str:
    """Fill ISPDB placeholders for one address."""
    local, _, _ = email.rpartition("@")
    return (
        template.replace("%EMAILADDRESS%", email)
        .replace("%EMAILLOCALPART%", local)
        .replace("%EMAILDOMAIN%", email_domain(email))
    )


def valid_hostname(host: str) -> bool:
    """A DNS host name or IPv4 literal, as a mail server may be named."""
    if not host or len(host) > 253:
        return False
    if _IPV4_RE.match(host):
        return all(int(p) < 256 for p in host.split("."))
    labels = host.rstrip(".").split(".")
    return len(labels) >= 1 and all(_LABEL_RE.match(label) for label in labels)


# ---------------------------------------------------------------- safe parsing


class _Refused(Exception):
    pass


def safe_parse_xml(data: bytes, *, max_bytes: int = MAX_CONFIG_BYTES) -> ET.Element:
    """Parse XML into an ElementTree element, refusing DTDs, entities and size bombs.

    Raises :class:`_Refused` or ``expat.ExpatError``; :func:`parse_client_config`
    turns both into :class:`InvalidClientConfig`.
    """
    if len(data) > max_bytes:
        raise _Refused(f"the file is larger than {max_bytes // 1024} KiB")
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")
    depth = 0
    count = 0

    def qname(name: str) -> str:
        return "{" + name if "}" in name else name

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal depth, count
        depth += 1
        count += 1
        if depth > _MAX_DEPTH:
            raise _Refused(f"elements are nested more than {_MAX_DEPTH} deep")
        if count > _MAX_ELEMENTS:
            raise _Refused(f"the file has more than {_MAX_ELEMENTS} elements")
        builder.start(qname(name), {qname(k): v for k, v in attrs.items()})

    def end(name: str) -> None:
        nonlocal depth
        depth -= 1
        builder.end(qname(name))

    def refuse_doctype(*_args: object) -> None:
        raise _Refused("it contains a DOCTYPE declaration, which settings files never need")

    def refuse_entity(*_args: object) -> None:
        raise _Refused("it declares XML entities, which settings files never need")

    def refuse_external(*_args: object) -> int:
        raise _Refused("it refers to an external entity")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = refuse_doctype
    parser.EntityDeclHandler = refuse_entity
    parser.UnparsedEntityDeclHandler = refuse_entity
    parser.ExternalEntityRefHandler = refuse_external
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.buffer_text = True
    parser.Parse(data, True)
    root = builder.close()
    return root


def parse_client_config(data: bytes, *, origin: str, max_bytes: int = MAX_CONFIG_BYTES) -> ClientConfig:
    """Read one clientConfig document. Raises only :class:`InvalidClientConfig`."""
    try:
        root = safe_parse_xml(data, max_bytes=max_bytes)
    except _Refused as exc:
        raise InvalidClientConfig(origin, str(exc)) from None
    except (expat.ExpatError, ValueError, UnicodeError) as exc:
        raise InvalidClientConfig(origin, f"it is not well-formed XML ({exc})") from None
    except RecursionError:
        raise InvalidClientConfig(origin, "it is nested too deeply") from None
    if root.tag != "clientConfig":
        raise InvalidClientConfig(origin, f"its root element is <{_show(root.tag)}>, not <clientConfig>")
    providers = root.findall("emailProvider")
    if not providers:
        raise InvalidClientConfig(origin, "it has no <emailProvider> element")
    # Version 1.1 allows exactly one; taking the first is what Thunderbird does.
    problems = ["only the first of several <emailProvider> elements was read"] if len(providers) > 1 else []
    return _read_provider(providers[0], root, origin, problems)


def _read_provider(el: ET.Element, root: ET.Element, origin: str, problems: list[str]) -> ClientConfig:
    pid = (el.get("id") or "").strip().lower()
    domains = tuple(
        dict.fromkeys(d for d in (_text(x).lower().rstrip(".") for x in el.findall("domain")) if valid_hostname(d))
    )
    display = _text(el.find("displayName")) or pid or (domains[0] if domains else origin)
    short = _text(el.find("displayShortName")) or display
    sources = tuple(_read_source(s) for s in el.findall(f"{{{EXT_NS}}}source"))
    incoming: list[ServerTemplate] = []
    outgoing: list[ServerTemplate] = []
    for n, server in enumerate(el.findall("incomingServer"), 1):
        _collect(server, f"incoming server #{n}", True, incoming, problems)
    for n, server in enumerate(el.findall("outgoingServer"), 1):
        _collect(server, f"outgoing server #{n}", False, outgoing, problems)
    if not incoming:
        raise InvalidClientConfig(origin, _no_server("incoming", problems))
    if not outgoing:
        raise InvalidClientConfig(origin, _no_server("outgoing", problems))
    docs = tuple(
        Documentation(url, _text(d.find("descr")))
        for d in el.findall("documentation")
        if (url := (d.get("url") or "").strip()).startswith(("https://", "http://"))
    )
    enables = [*el.findall("enable"), *root.findall("enable")]
    instructions = _in_english([i for enable in enables for i in enable.findall("instruction")])
    enable_url = next(
        (u for e in enables if (u := (e.get("visiturl") or "").strip()).startswith(("https://", "http://"))), ""
    )
    oauth_el = root.find("oAuth2")
    endpoints = None
    if oauth_el is not None and _text(oauth_el.find("issuer")):
        endpoints = OAuth2Endpoints(
            _text(oauth_el.find("issuer")),
            _text(oauth_el.find("scope")),
            _text(oauth_el.find("authURL")),
            _text(oauth_el.find("tokenURL")),
        )
    login = el.find(f"{{{EXT_NS}}}login")
    password = _enum(PasswordPolicy, login.get("password") if login is not None else None, problems)
    oauth2 = _enum(OAuth2Support, login.get("oauth2") if login is not None else None, problems)
    provider = Provider(
        id=pid or (domains[0] if domains else origin),
        display_name=display,
        short_name=short,
        domains=domains,
        incoming=tuple(incoming),
        outgoing=tuple(outgoing),
        documentation=docs,
        instructions=instructions,
        notes=tuple(t for t in (_text(x) for x in el.findall(f"{{{EXT_NS}}}note")) if t),
        sources=sources,
        mx_domains=tuple(
            d for d in (_text(x).lower().rstrip(".") for x in el.findall(f"{{{EXT_NS}}}mxDomain")) if valid_hostname(d)
        ),
        operator=_text(el.find(f"{{{EXT_NS}}}operator")) or short,
        password=password or PasswordPolicy.ACCOUNT,
        oauth2=oauth2 or OAuth2Support.NO,
        origin=origin,
        enable_url=enable_url,
        oauth2_endpoints=endpoints,
    )
    return ClientConfig(provider, tuple(problems))


def _in_english(elements: list[ET.Element]) -> tuple[str, ...]:
    """The texts without a language or in English; all of them when none is (ISPDB files
    repeat one instruction per language, and a person needs it once)."""
    texts = [((e.get("lang") or "en").lower(), _text(e)) for e in elements]
    english = [t for lang, t in texts if t and lang.startswith("en")]
    return tuple(dict.fromkeys(english or [t for _, t in texts if t]))


def _no_server(kind: str, problems: list[str]) -> str:
    detail = "; ".join(p for p in problems if p.startswith(kind))
    return f"it has no usable {kind} server" + (f" ({detail})" if detail else "")


def _collect(el: ET.Element, label: str, incoming: bool, out: list[ServerTemplate], problems: list[str]) -> None:
    try:
        out.append(_read_server(el, incoming))
    except ValueError as exc:
        problems.append(f"{label} skipped: {exc}")


def _read_server(el: ET.Element, incoming: bool) -> ServerTemplate:
    kind = (el.get("type") or "").strip().lower()
    if incoming:
        if kind not in _INCOMING_TYPES:
            raise ValueError(f"type {_show(kind)!r} is not one deskmail speaks (imap, pop3)")
        protocol = _INCOMING_TYPES[kind]
    else:
        if kind != "smtp":
            raise ValueError(f"type {_show(kind)!r} is not smtp")
        protocol = Protocol.SMTP
    hostname = _required(el, "hostname")
    unknown = set(_PLACEHOLDER_RE.findall(hostname)) - _KNOWN_PLACEHOLDERS
    if unknown or not valid_hostname(expand(hostname, "user@example.com")):
        raise ValueError(f"host name {_show(hostname)!r} is not valid")
    port_text = _required(el, "port")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"port {_show(port_text)!r} is not a number from 1 to 65535")
    socket_type = _required(el, "socketType")
    security = _SOCKET_TYPES.get(socket_type.lower())
    if security is None:
        raise ValueError(f"socketType {_show(socket_type)!r} is not SSL, STARTTLS or plain")
    username = _text(el.find("username")) or "%EMAILADDRESS%"
    unknown = set(_PLACEHOLDER_RE.findall(username)) - _KNOWN_PLACEHOLDERS
    if unknown or len(username) > 320 or any(c.isspace() for c in username):
        raise ValueError(f"username {_show(username)!r} is not valid")
    auth = tuple(a for a in (_text(x) for x in el.findall("authentication")) if a)
    return ServerTemplate(
        protocol=protocol,
        hostname=hostname,
        port=int(port_text),
        security=security,
        username=username,
        authentication=auth,
        source_id=(el.get(f"{{{EXT_NS}}}source") or "").strip(),
    )


def _read_source(el: ET.Element) -> SourceInfo:
    kind_text = (el.get("kind") or "").strip()
    try:
        kind = SourceKind(kind_text)
    except ValueError:
        kind = SourceKind.UNSPECIFIED
    if kind is SourceKind.DOMAIN_AUTOCONFIG:
        kind = SourceKind.UNSPECIFIED  # a file may not claim the fetcher's own provenance
    url = (el.get("url") or "").strip()
    return SourceInfo(
        id=(el.get("id") or "").strip(),
        kind=kind,
        url=url if url.startswith(("https://", "http://")) else "",
        description=_text(el),
    )


def _required(el: ET.Element, tag: str) -> str:
    value = _text(el.find(tag))
    if not value:
        raise ValueError(f"<{tag}> is missing or empty")
    return value


def _text(el: ET.Element | None) -> str:
    if el is None or el.text is None:
        return ""
    return " ".join(el.text.split())


def _show(value: str) -> str:
    """A value quoted in a reason, shortened: files can be hostile."""
    return value if len(value) <= 60 else value[:57] + "..."


def _enum(cls: type[_E], value: str | None, problems: list[str]) -> _E | None:
    if value is None:
        return None
    try:
        return cls(value.strip())
    except ValueError:
        problems.append(f"dm:login value {_show(value)!r} is not understood and was ignored")
        return None

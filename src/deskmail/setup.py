"""Account setup as a service: settings from what the user gave, from discovery, then verified live.

No prompts and no printing: where a person must decide (which protocol, whether to send the
password to a server deskmail cannot vouch for), the caller passes a function that asks; what
happens along the way is reported as :class:`SetupEvent` values to a callback. The CLI asks on
the terminal, the desktop application in its wizard.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from deskmail.codes import Code
from deskmail.errors import AuthError, DeskmailError, UsageError
from deskmail.model import Account, PasswordSource, Protocol, Security, ServerSettings, default_port, email_domain
from deskmail.secrets import Secret

if TYPE_CHECKING:
    from deskmail.discovery.ispdb import Requirement


@dataclass(frozen=True, slots=True)
class ManualSettings:
    """What a person may give by hand; every server field left empty is found (database, discovery)."""

    email: str
    name: str | None = None
    display_name: str = ""
    protocol: str | None = None  # "imap" | "pop3"; None: IMAP where the provider offers it
    in_host: str | None = None
    in_port: int | None = None
    in_security: str | None = None
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_security: str | None = None
    smtp_auth: bool = True
    username: str | None = None
    ca_file: str | None = None
    password_env: str | None = None
    password_command: str | None = None
    allow_plaintext: bool = False

    @property
    def has_servers(self) -> bool:
        """True when the person gave any server setting: then discovery is not used."""
        return any(v is not None for v in (self.in_host, self.in_port, self.in_security, self.smtp_host,
                                           self.smtp_port, self.smtp_security))


@dataclass(frozen=True, slots=True)
class Candidate:
    """Settings to try: the account they make, where they came from, whether a person must agree first."""

    account: Account
    source: str
    needs_confirmation: bool = False
    notes: tuple[str, ...] = ()
    # What the person must know or do before typing a password (an app password, IMAP to switch on in the
    # webmail, OAuth2 only…): discovery's requirements, each with a code, a sentence and a link.
    before_password: tuple[Requirement, ...] = ()


@dataclass(frozen=True, slots=True)
class Checked:
    """One server of the candidate accepted the login (``server``: "incoming" or "outgoing")."""

    candidate: Candidate
    server: str


# --- what happens during verification, for the caller to show ------------------------------------

@dataclass(frozen=True, slots=True)
class Trying:
    candidate: Candidate


@dataclass(frozen=True, slots=True)
class Skipped:
    """Not confirmed by the person: the password was not sent there."""

    candidate: Candidate


@dataclass(frozen=True, slots=True)
class DidNotWork:
    candidate: Candidate
    error: DeskmailError


@dataclass(frozen=True, slots=True)
class Worked:
    candidate: Candidate
    after_failures: bool


SetupEvent = Trying | Checked | Skipped | DidNotWork | Worked


@dataclass(slots=True)
class Verification:
    """The outcome of :func:`verify_candidates`: the account that worked, or why none did."""

    account: Account | None
    failures: list[tuple[Candidate, DeskmailError]] = field(default_factory=list)
    rejected: AuthError | None = None  # a server answered and refused the login: the settings were right

    @property
    def ok(self) -> bool:
        return self.account is not None


def parse_security(value: str | None, fallback: Security, what: str) -> Security:
    if value is None:
        return fallback
    v = value.lower().replace("/", "").replace("-", "")
    v = {"tls": "ssl", "ssltls": "ssl", "plain": "none"}.get(v, v)
    try:
        return Security(v)
    except ValueError:
        raise UsageError(f"{what} must be ssl, starttls or none, not {value!r}", code=Code.BAD_SECURITY) from None


def parse_protocol(value: str | None) -> Protocol:
    try:
        proto = Protocol((value or "imap").lower())
    except ValueError:
        proto = Protocol.SMTP
    if proto is Protocol.SMTP:
        raise UsageError(f"The incoming protocol must be imap or pop3, not {value!r}", code=Code.BAD_PROTOCOL)
    return proto


def check_address(address: str) -> None:
    if "@" not in address:
        raise UsageError(f"{address!r} is not an e-mail address", "", "give the full address, like you@example.com",
                         code=Code.NOT_AN_ADDRESS)


def provider_defaults(email: str, protocol: Protocol, provider_dirs: Sequence[str] = ()
                      ) -> tuple[ServerSettings, ServerSettings] | None:
    """The provider database's first recommended settings for this protocol, if the domain is known.

    For the Spectrum family these are the founding document's (imap.spectrum.net:993 SSL/TLS,
    smtp.spectrum.net:587 STARTTLS), which the database lists before the public alternatives.
    """
    from deskmail.discovery import lookup_provider

    provider = lookup_provider(email_domain(email), provider_dirs=tuple(provider_dirs))
    if provider is None:
        return None
    for incoming, outgoing in provider.recommended(email):
        if incoming.protocol is protocol:
            return incoming, outgoing
    return None


def build_account(s: ManualSettings, provider_dirs: Sequence[str] = ()) -> Account:
    """An Account from hand-given settings, filling the gaps from the provider database."""
    proto = parse_protocol(s.protocol)
    check_address(s.email)
    preset = provider_defaults(s.email, proto, provider_dirs)
    user = s.username or s.email
    in_host, in_port, smtp_host, smtp_port = s.in_host, s.in_port, s.smtp_host, s.smtp_port
    if preset:
        p_in, p_out = preset
        in_sec = parse_security(s.in_security, p_in.security, "The incoming security")
        out_sec = parse_security(s.smtp_security, p_out.security, "The outgoing (SMTP) security")
        in_host = in_host or p_in.host
        smtp_host = smtp_host or p_out.host
        in_port = in_port or (p_in.port if in_sec is p_in.security else default_port(proto, in_sec))
        smtp_port = smtp_port or (p_out.port if out_sec is p_out.security else default_port(Protocol.SMTP, out_sec))
    else:
        in_sec = parse_security(s.in_security, Security.SSL, "The incoming security")
        out_sec = parse_security(s.smtp_security, Security.STARTTLS, "The outgoing (SMTP) security")
        if not in_host or not smtp_host:
            raise UsageError(
                f"deskmail does not know the servers for {email_domain(s.email)}",
                "the domain is not in the provider database",
                "give the incoming and the outgoing server names (your provider's help pages list them)",
                code=Code.SERVERS_UNKNOWN,
            )
        in_port = in_port or default_port(proto, in_sec)
        smtp_port = smtp_port or default_port(Protocol.SMTP, out_sec)
    if s.password_env and s.password_command:
        raise UsageError("Give either a password variable or a password command, not both",
                         code=Code.TWO_PASSWORD_SOURCES)
    source = (
        PasswordSource("env", env=s.password_env) if s.password_env
        else PasswordSource("command", command=s.password_command) if s.password_command
        else PasswordSource("keyring")
    )
    try:
        return Account(
            name=s.name or s.email,
            email=s.email,
            display_name=s.display_name,
            incoming=ServerSettings(proto, in_host, in_port, in_sec, user),
            outgoing=ServerSettings(Protocol.SMTP, smtp_host, smtp_port, out_sec, user, auth_required=s.smtp_auth),
            password=source,
            ca_file=str(Path(s.ca_file).expanduser().absolute()) if s.ca_file else "",
            allow_plaintext_password=s.allow_plaintext,
        )
    except ValueError as exc:
        raise UsageError(f"Invalid account settings: {exc}", code=Code.BAD_SETTINGS) from None


def discover_candidates(
    s: ManualSettings,
    provider_dirs: Sequence[str] = (),
    *,
    choose_protocol: Callable[[frozenset[str]], str] | None = None,
    on_network: Callable[[], None] | None = None,
) -> list[Candidate]:
    """Accounts built from discovery, best first.

    A provider-database hit is used alone (instant, offline, vouched for); otherwise the whole
    chain runs (autoconfig, SRV, MX, probing) under its deadline, after ``on_network()``.
    When both IMAP and POP3 are found and no protocol was given, ``choose_protocol`` picks
    (default: IMAP).
    """
    from deskmail.discovery import DiscoveryOptions, Origin, discover

    check_address(s.email)
    domain = email_domain(s.email)
    options = DiscoveryOptions(provider_dirs=tuple(provider_dirs), ca_file=s.ca_file or "")
    result = discover(s.email, options=options.clone(sources=frozenset({Origin.DATABASE})))
    if not result.candidates:
        if on_network is not None:
            on_network()
        result = discover(s.email, options=options)
    if not result.candidates:
        raise UsageError(
            f"deskmail could not find the servers for {domain}",
            "the domain is not in the provider database and publishes no autoconfig, SRV or MX hints",
            "give the incoming and the outgoing server names from your provider's help pages",
            code=Code.SERVERS_UNKNOWN,
        )
    found = frozenset(c.incoming.protocol.value for c in result.candidates)
    chosen = (s.protocol or "").lower()
    if not chosen:
        chosen = "imap" if "imap" in found else "pop3"
        if choose_protocol is not None and found == {"imap", "pop3"}:
            chosen = choose_protocol(found)
    picked = [c for c in result.candidates if c.incoming.protocol.value == chosen]
    if not picked:
        raise UsageError(f"No {chosen.upper()} server was found for {domain}",
                         "", f"try {'POP3' if chosen == 'imap' else 'IMAP'}, or give the servers by hand",
                         code=Code.PROTOCOL_NOT_OFFERED)
    out: list[Candidate] = []
    for c in picked:
        inc, outg = c.incoming_settings(), c.outgoing_settings()
        a = build_account(ManualSettings(
            email=s.email, name=s.name, display_name=s.display_name, protocol=chosen, in_host=inc.host,
            in_port=inc.port, in_security=inc.security.value, smtp_host=outg.host, smtp_port=outg.port,
            smtp_security=outg.security.value, smtp_auth=s.smtp_auth, username=s.username, ca_file=s.ca_file,
            password_env=s.password_env, password_command=s.password_command, allow_plaintext=s.allow_plaintext,
        ), provider_dirs)
        a = replace(a, incoming=replace(a.incoming, username=s.username or inc.username, auth=inc.auth),
                    outgoing=replace(a.outgoing, username=s.username or outg.username, auth=outg.auth,
                                              auth_required=s.smtp_auth and outg.auth_required))
        label = f"{c.provider.display_name}: {c.source}" if c.provider is not None else c.source
        out.append(Candidate(a, label, c.needs_confirmation, tuple(c.notes), result.before_password))
    return out


def candidates_for(
    s: ManualSettings,
    provider_dirs: Sequence[str] = (),
    *,
    choose_protocol: Callable[[frozenset[str]], str] | None = None,
    on_network: Callable[[], None] | None = None,
) -> list[Candidate]:
    """The settings to try for ``s``: exactly those given by hand, else those discovery finds."""
    if s.has_servers:
        return [Candidate(build_account(s, provider_dirs), "the settings you gave")]
    return discover_candidates(s, provider_dirs, choose_protocol=choose_protocol, on_network=on_network)


def verify_account(account: Account, password: Secret, *, timeout: float = 30.0,
                   on_checked: Callable[[str], None] = lambda server: None) -> None:
    """Log in to both servers; raises the first failure. ``on_checked("incoming")`` then
    ``on_checked("outgoing")`` as each login is accepted."""
    from deskmail.protocol.smtp import open_smtp

    if account.incoming.protocol is Protocol.IMAP:
        from deskmail.protocol.imap import open_imap

        with open_imap(account, password, timeout=timeout):
            pass
    else:
        from deskmail.protocol.pop3 import open_pop3

        with open_pop3(account, password, timeout=timeout):
            pass
    on_checked("incoming")
    with open_smtp(account, password, timeout=timeout):
        pass
    on_checked("outgoing")


def verify_candidates(
    candidates: Sequence[Candidate],
    password: Secret,
    *,
    confirm: Callable[[Candidate], bool],
    on_event: Callable[[SetupEvent], None] = lambda event: None,
    timeout: float = 30.0,
) -> Verification:
    """Log in with each candidate in turn; the first that works is the account.

    A candidate that needs confirmation is tried only if ``confirm(candidate)`` says yes. A
    server that answered and rejected the password proves the settings right: then the password
    is the problem, and trying other servers would only spread it further, so this stops there.
    """
    outcome = Verification(None)
    for candidate in candidates:
        if candidate.needs_confirmation and not confirm(candidate):
            on_event(Skipped(candidate))
            continue
        on_event(Trying(candidate))
        try:
            verify_account(candidate.account, password, timeout=timeout,
                           on_checked=partial(_report_checked, on_event, candidate))
        except AuthError as exc:
            outcome.rejected = exc
            outcome.failures.append((candidate, exc))
            on_event(DidNotWork(candidate, exc))
            return outcome
        except DeskmailError as exc:
            outcome.failures.append((candidate, exc))
            on_event(DidNotWork(candidate, exc))
            continue
        on_event(Worked(candidate, bool(outcome.failures)))
        outcome.account = candidate.account
        return outcome
    return outcome


def _report_checked(on_event: Callable[[SetupEvent], None], candidate: Candidate, server: str) -> None:
    on_event(Checked(candidate, server))

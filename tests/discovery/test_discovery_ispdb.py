"""The clientConfig parser: valid files, every kind of broken or hostile file, and fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deskmail.discovery import InvalidClientConfig, OAuth2Support, PasswordPolicy, parse_client_config
from deskmail.discovery.ispdb import MAX_CONFIG_BYTES, ClientConfig
from deskmail.model import Protocol, Security

GOOD = b"""<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1" xmlns:dm="urn:x-deskmail:clientconfig:1">
  <emailProvider id="example.test">
    <domain>example.test</domain>
    <displayName>Example Mail</displayName>
    <displayShortName>Example</displayShortName>
    <incomingServer type="imap">
      <hostname>imap.%EMAILDOMAIN%</hostname>
      <port>993</port>
      <socketType>SSL</socketType>
      <username>%EMAILLOCALPART%</username>
      <authentication>password-cleartext</authentication>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>SMTP.example.test</hostname>
      <port>587</port>
      <socketType>STARTTLS</socketType>
      <username>%EMAILADDRESS%</username>
      <authentication>password-cleartext</authentication>
    </outgoingServer>
    <documentation url="https://help.example.test/mail"><descr lang="en">Help</descr></documentation>
    <dm:login password="app-password" oauth2="yes"/>
    <dm:note>Be nice.</dm:note>
  </emailProvider>
</clientConfig>
"""


def config_with(incoming: str = "", outgoing: str = "", extra: str = "") -> bytes:
    inc = (
        incoming
        or """<incomingServer type="imap"><hostname>imap.x.test</hostname><port>993</port>
        <socketType>SSL</socketType><username>%EMAILADDRESS%</username></incomingServer>"""
    )
    out = (
        outgoing
        or """<outgoingServer type="smtp"><hostname>smtp.x.test</hostname><port>465</port>
        <socketType>SSL</socketType><username>%EMAILADDRESS%</username></outgoingServer>"""
    )
    return f"""<clientConfig version="1.1"><emailProvider id="x.test"><domain>x.test</domain>
        {inc}{out}{extra}</emailProvider></clientConfig>""".encode()


def test_good_file_is_read_completely() -> None:
    cfg = parse_client_config(GOOD, origin="test")
    p = cfg.provider
    assert cfg.problems == ()
    assert (p.id, p.display_name, p.short_name) == ("example.test", "Example Mail", "Example")
    assert p.domains == ("example.test",)
    assert p.help_url == "https://help.example.test/mail"
    assert p.password is PasswordPolicy.APP_PASSWORD and p.oauth2 is OAuth2Support.YES
    assert p.notes == ("Be nice.",)
    assert p.username_form == "local part"
    ((incoming, outgoing),) = p.recommended("bob@example.test")
    assert (incoming.protocol, incoming.host, incoming.port, incoming.security, incoming.username) == (
        Protocol.IMAP,
        "imap.example.test",
        993,
        Security.SSL,
        "bob",
    )
    assert (outgoing.host, outgoing.port, outgoing.security, outgoing.username, outgoing.auth_required) == (
        "smtp.example.test",
        587,
        Security.STARTTLS,
        "bob@example.test",
        True,
    )
    assert any("app password" in line for line in p.advice())


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not well-formed"),
        (b"<clientConfig><emailProvider>", "not well-formed"),
        (b"\xff\xfe\x00garbage", "not well-formed"),
        (b"<html><body>Not found</body></html>", "root element is <html>"),
        (b"<clientConfig version='1.1'/>", "no <emailProvider>"),
        (b'<?xml version="1.0"?><!DOCTYPE clientConfig><clientConfig/>', "DOCTYPE"),
        (b'<!DOCTYPE x [<!ENTITY a "aaaa">]><clientConfig>&a;</clientConfig>', "DOCTYPE"),
        (b'<!DOCTYPE x SYSTEM "file:///etc/passwd"><clientConfig/>', "DOCTYPE"),
        ("<!DOCTYPE x><clientConfig/>".encode("utf-16"), "DOCTYPE"),
        (b"<a>" * 40 + b"</a>" * 40, "nested"),
        (b"<clientConfig>" + b"<x/>" * 25_000 + b"</clientConfig>", "elements"),
        (b"<clientConfig>" + b" " * (MAX_CONFIG_BYTES + 1) + b"</clientConfig>", "larger than 1024 KiB"),
    ],
)
def test_bad_files_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidClientConfig) as err:
        parse_client_config(data, origin="https://autoconfig.x.test/mail/config-v1.1.xml")
    assert reason in err.value.reason
    assert "autoconfig.x.test" in str(err.value)  # what/cause/remedy text names the file


def test_billion_laughs_is_refused_quickly() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(
            f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i else "&lol;" * 10}">'.encode()
            for i in range(1, 10)
        )
        + b"]><clientConfig>&lol9;</clientConfig>"
    )
    with pytest.raises(InvalidClientConfig, match="DOCTYPE"):
        parse_client_config(bomb, origin="bomb")


@pytest.mark.parametrize(
    ("server", "problem"),
    [
        ("<hostname>imap.x.test</hostname><port>993</port><socketType>SSL</socketType>", "type"),
        ("<port>993</port><socketType>SSL</socketType>", "<hostname> is missing"),
        ("<hostname>imap.x.test</hostname><socketType>SSL</socketType>", "<port> is missing"),
        ("<hostname>imap.x.test</hostname><port>abc</port><socketType>SSL</socketType>", "port 'abc'"),
        ("<hostname>imap.x.test</hostname><port>70000</port><socketType>SSL</socketType>", "port '70000'"),
        ("<hostname>imap.x.test</hostname><port>-1</port><socketType>SSL</socketType>", "port '-1'"),
        ("<hostname>imap.x.test</hostname><port>993</port><socketType>TLS1.3</socketType>", "socketType"),
        ("<hostname>imap.x.test</hostname><port>993</port>", "<socketType> is missing"),
        ("<hostname>evil host</hostname><port>993</port><socketType>SSL</socketType>", "host name"),
        ("<hostname>imap.%FOO%</hostname><port>993</port><socketType>SSL</socketType>", "host name"),
        ("<hostname><b>x</b></hostname><port>993</port><socketType>SSL</socketType>", "<hostname> is missing"),
        (
            "<hostname>imap.x.test</hostname><port>993</port><socketType>SSL</socketType>"
            "<username>%REALNAME%</username>",
            "username",
        ),
    ],
)
def test_bad_server_is_skipped_with_reason_and_rest_is_used(server: str, problem: str) -> None:
    kind = "" if problem == "type" else ' type="imap"'
    bad = f"<incomingServer{kind}>{server}</incomingServer>"
    good = """<incomingServer type="pop3"><hostname>pop.x.test</hostname><port>995</port>
        <socketType>SSL</socketType></incomingServer>"""
    cfg = parse_client_config(config_with(incoming=bad + good), origin="t")
    assert [s.hostname for s in cfg.provider.incoming] == ["pop.x.test"]
    assert len(cfg.problems) == 1 and problem in cfg.problems[0], cfg.problems
    assert cfg.problems[0].startswith("incoming server #1 skipped")


def test_only_bad_servers_means_unusable_file() -> None:
    bad = '<incomingServer type="exchange"><hostname>x.test</hostname></incomingServer>'
    with pytest.raises(InvalidClientConfig, match="no usable incoming server"):
        parse_client_config(config_with(incoming=bad), origin="t")
    bad_out = '<outgoingServer type="smtp"><hostname>smtp.x.test</hostname></outgoingServer>'
    with pytest.raises(InvalidClientConfig, match="no usable outgoing server"):
        parse_client_config(config_with(outgoing=bad_out), origin="t")


def test_defaults_and_lenient_values() -> None:
    inc = """<incomingServer type="IMAP"><hostname>IMAP.X.TEST</hostname><port>143</port>
        <socketType>starttls</socketType></incomingServer>"""
    out = """<outgoingServer type="smtp"><hostname>smtp.x.test</hostname><port>25</port>
        <socketType>plain</socketType><authentication>none</authentication></outgoingServer>"""
    login = "<dm:login xmlns:dm='urn:x-deskmail:clientconfig:1' password='bogus'/>"
    cfg = parse_client_config(config_with(inc, out, login), origin="t")
    i, o = cfg.provider.recommended("a@x.test")[0]
    assert (i.host, i.security, i.username) == ("imap.x.test", Security.STARTTLS, "a@x.test")
    assert (o.security, o.auth_required) == (Security.NONE, False)
    # An unknown extension value is reported and the default kept.
    assert cfg.provider.password is PasswordPolicy.ACCOUNT
    assert any("bogus" in p for p in cfg.problems)


def test_oauth_only_server_maps_to_oauth2_auth() -> None:
    inc = """<incomingServer type="imap"><hostname>i.x.test</hostname><port>993</port><socketType>SSL</socketType>
        <authentication>OAuth2</authentication></incomingServer>"""
    i, _ = parse_client_config(config_with(incoming=inc), origin="t").provider.recommended("a@x.test")[0]
    assert i.auth == "oauth2"


def server(kind: str, proto: str, group: str, host: str, port: int, sock: str) -> str:
    return (
        f'<{kind} type="{proto}" dm:source="{group}"><hostname>{host}</hostname><port>{port}</port>'
        f"<socketType>{sock}</socketType></{kind}>"
    )


def test_setups_pair_servers_by_source_group_in_file_order() -> None:
    inc, out = "incomingServer", "outgoingServer"
    servers = "".join(
        [
            server(inc, "imap", "a", "i1.g.test", 993, "SSL"),
            server(inc, "pop3", "a", "p1.g.test", 995, "SSL"),
            server(out, "smtp", "a", "s1.g.test", 465, "SSL"),
            server(out, "smtp", "a", "s1.g.test", 587, "STARTTLS"),
            server(inc, "imap", "b", "i2.g.test", 993, "SSL"),
            server(out, "smtp", "b", "s2.g.test", 587, "SSL"),
        ]
    )
    xml = f"""<clientConfig xmlns:dm="urn:x-deskmail:clientconfig:1"><emailProvider id="g">{servers}
        </emailProvider></clientConfig>""".encode()
    setups = parse_client_config(xml, origin="t").provider.setups()
    assert [(s.incoming.hostname, s.outgoing.hostname, s.outgoing.port) for s in setups] == [
        ("i1.g.test", "s1.g.test", 465),
        ("i1.g.test", "s1.g.test", 587),
        ("p1.g.test", "s1.g.test", 465),
        ("i2.g.test", "s2.g.test", 587),
    ]


def test_file_cannot_claim_provenance_of_the_fetcher() -> None:
    extra = '<dm:source xmlns:dm="urn:x-deskmail:clientconfig:1" id="s" kind="domain-autoconfig">x</dm:source>'
    cfg = parse_client_config(config_with(extra=extra), origin="t")
    assert cfg.provider.sources[0].kind.value == "unspecified"


# ----------------------------------------------------------------------------- fuzzing

_tags = st.sampled_from(
    [
        "clientConfig",
        "emailProvider",
        "incomingServer",
        "outgoingServer",
        "hostname",
        "port",
        "socketType",
        "username",
        "authentication",
        "domain",
        "displayName",
        "documentation",
        "enable",
        "instruction",
        "x",
    ]
)
_texts = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ["993", "SSL", "STARTTLS", "plain", "imap", "smtp", "pop3", "%EMAILADDRESS%", "imap.x.test", "-1", "0"]
    ),
)


@st.composite
def xml_trees(draw: st.DrawFn, depth: int = 0) -> str:
    tag = draw(_tags)
    attrs = ""
    if draw(st.booleans()):
        attrs = f' type="{draw(st.sampled_from(["imap", "pop3", "smtp", "exchange", ""]))}"'
    if depth > 4 or draw(st.booleans()):
        inner = "".join(c for c in draw(_texts) if c not in "<&")
    else:
        inner = "".join(draw(st.lists(xml_trees(depth + 1), max_size=4)))
    return f"<{tag}{attrs}>{inner}</{tag}>"


def _parse_or_refuse(data: bytes) -> None:
    try:
        result = parse_client_config(data, origin="fuzz")
    except InvalidClientConfig as exc:
        assert exc.reason
        return
    assert isinstance(result, ClientConfig)
    assert result.provider.incoming and result.provider.outgoing
    for inc, out in result.provider.recommended("fuzz@example.test"):
        assert 0 < inc.port < 65536 and 0 < out.port < 65536


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_wild_bytes_never_crash_the_parser(data: bytes) -> None:
    _parse_or_refuse(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(xml_trees())
def test_wild_trees_never_crash_the_parser(tree: str) -> None:
    _parse_or_refuse(tree.encode())
    _parse_or_refuse(f"<clientConfig><emailProvider>{tree}</emailProvider></clientConfig>".encode())


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=500))
def test_wild_text_inside_a_valid_skeleton_never_crashes(text: str) -> None:
    body = GOOD.replace(b"<port>993</port>", f"<port>{text}</port>".encode(errors="replace"))
    _parse_or_refuse(body)

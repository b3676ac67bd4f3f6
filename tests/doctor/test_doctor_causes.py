"""More causes the doctor names (issue 16, point 6), each injected for real on loopback.

Scripted servers (doctorkit) for what a script plays faithfully: a connection limit at the greeting,
OAuth-only mechanisms, a TLS 1.1-only server, SMTP 552 for a full mailbox, port 25 blocked. A real
Dovecot with its quota plugin for the full mailbox (GETQUOTAROOT; APPEND ``NO [OVERQUOTA]`` in the
sync). The computer's clock is moved for the doctor's process only (faketime); a machine without an
IPv6 route is a network namespace holding only the loopback interface (``unshare -n``).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from doctorkit import (
    Certs,
    FakeServer,
    ImapScript,
    SmtpScript,
    _server_context,
    diagnose,
    expect,
    make_account,
    rendered,
)

from deskmail.doctor import Code, Server, Status, Step
from deskmail.model import Protocol, Security

Serve = Callable[..., FakeServer]
HERE = Path(__file__).parent
SRC = HERE.parent.parent / "src"


# --------------------------------------------------------------------------- too many connections


@pytest.mark.parametrize(
    ("protocol", "greeting"),
    [
        (Protocol.IMAP, "* BYE [UNAVAILABLE] Too many simultaneous connections from your address"),
        (Protocol.SMTP, "421 4.7.0 fake.example Error: too many connections from 127.0.0.1"),
    ],
)
def test_too_many_connections_at_the_greeting(serve: Serve, certs: Certs, closed_port: int, protocol: Protocol,
                                              greeting: str) -> None:
    script = ImapScript(greeting=greeting) if protocol is Protocol.IMAP else SmtpScript(greeting=greeting)
    server = serve(script, tls=certs.good)
    side = {"incoming" if protocol is Protocol.IMAP else "outgoing": (server.port, Security.SSL)}
    report = diagnose(make_account(**side, ca_file=certs.ca_file, unused_port=closed_port))  # type: ignore[arg-type]
    finding = expect(report, Code.TOO_MANY_CONNECTIONS, text="too many", cause="too many connections",
                     remedy="close other mail programs")
    assert finding.step is Step.GREETING and finding.status is Status.FAILED
    assert finding.server is (Server.INCOMING if protocol is Protocol.IMAP else Server.OUTGOING)
    # Not blamed on the password: nothing was sent after the greeting.
    assert not any(line.upper().startswith(("LOGIN", "AUTH", "A1 LOGIN")) for line in server.received)


# --------------------------------------------------------------------------- TLS 1.0/1.1 only


def test_this_machine_can_serve_tls_1_1_for_the_test(certs: Certs) -> None:
    """The old-TLS server below needs SECLEVEL=0 on this OpenSSL (3.x refuses TLS 1.1 at level 1)."""
    assert certs.legacy_tls.maximum_version is ssl.TLSVersion.TLSv1_1
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        client.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        client.maximum_version = ssl.TLSVersion.TLSv1_1
    client.set_ciphers("DEFAULT:@SECLEVEL=0")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    result: list[str] = []

    def serve_one() -> None:
        conn, _ = listener.accept()
        try:
            with certs.legacy_tls.wrap_socket(conn, server_side=True) as tls:
                result.append(str(tls.version()))
        except (ssl.SSLError, OSError) as exc:
            result.append(repr(exc))

    thread = threading.Thread(target=serve_one)
    thread.start()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, client.wrap_socket(raw) as tls:
        version = tls.version()
    thread.join(5)
    listener.close()
    assert version == "TLSv1.1" and result == ["TLSv1.1"]


@pytest.mark.parametrize("protocol", [Protocol.IMAP, Protocol.SMTP])
def test_server_speaking_only_tls_1_1(serve: Serve, certs: Certs, closed_port: int, protocol: Protocol) -> None:
    script = ImapScript() if protocol is Protocol.IMAP else SmtpScript()
    server = serve(script, tls=certs.legacy_tls)
    side = {"incoming" if protocol is Protocol.IMAP else "outgoing": (server.port, Security.SSL)}
    report = diagnose(make_account(**side, ca_file=certs.ca_file, unused_port=closed_port))  # type: ignore[arg-type]
    finding = expect(report, Code.TLS_VERSION, text="requires TLS 1.2", cause="outdated", remedy="TLS 1.2")
    assert finding.step is Step.TLS
    assert not any("LOGIN" in line.upper() or line.upper().startswith("AUTH") for line in server.received)


# --------------------------------------------------------------------------- OAuth2 only


@pytest.mark.parametrize("variant", ["imap_logindisabled", "imap_login_refused", "smtp"])
def test_server_offering_only_oauth2(serve: Serve, certs: Certs, closed_port: int, variant: str) -> None:
    """Only AUTH=XOAUTH2 / OAUTHBEARER offered: the doctor says OAuth2 is needed, never "wrong password"."""
    if variant == "smtp":
        server = serve(SmtpScript(auth="XOAUTH2 OAUTHBEARER"), tls=certs.good)
        account = make_account(outgoing=(server.port, Security.SSL), ca_file=certs.ca_file, unused_port=closed_port)
    else:
        server = serve(ImapScript(users={}, mechanisms=("XOAUTH2", "OAUTHBEARER"),
                                  login_disabled=variant == "imap_logindisabled",
                                  login_failure="NO [AUTHENTICATIONFAILED] Authentication failed."),
                       tls=certs.good)
        account = make_account(incoming=(server.port, Security.SSL), ca_file=certs.ca_file, unused_port=closed_port)
    report = diagnose(account)
    finding = expect(report, Code.OAUTH_REQUIRED, text="only accepts OAuth", cause="OAuth2", remedy="OAuth")
    assert finding.step is Step.LOGIN and finding.data["auth_mechanisms"] == ["OAUTHBEARER", "XOAUTH2"]
    assert report.find(Code.AUTH_FAILED) is None and report.find(Code.USERNAME_FORM) is None
    sent_login = [line for line in server.received if " LOGIN " in f" {line.upper()} "
                  or line.upper().startswith("AUTH")]
    if variant == "imap_login_refused":
        assert len(sent_login) == 1  # LOGIN is outside SASL: tried once, no other user-name form
    else:
        assert sent_login == []  # the password never left


# --------------------------------------------------------------------------- mailbox over quota


def test_smtp_552_mailbox_full_is_over_quota(serve: Serve, certs: Certs) -> None:
    imap = serve(ImapScript(), tls=certs.good)
    smtp = serve(SmtpScript(data_reply="552 5.2.2 <alice@example.org>: Mailbox is full"), tls=certs.good)
    account = make_account(incoming=(imap.port, Security.SSL), outgoing=(smtp.port, Security.SSL),
                           ca_file=certs.ca_file)
    report = diagnose(account, send_test=True)
    finding = expect(report, Code.OVER_QUOTA, text="mailbox is full", cause="storage limit", remedy="delete")
    assert finding.step is Step.SEND and finding.server is Server.OUTGOING
    assert report.find(Code.SEND_REFUSED) is None


def test_smtp_552_message_too_big_is_not_over_quota(serve: Serve, certs: Certs) -> None:
    imap = serve(ImapScript(), tls=certs.good)
    smtp = serve(SmtpScript(data_reply="552 5.3.4 Message size exceeds fixed limit"), tls=certs.good)
    account = make_account(incoming=(imap.port, Security.SSL), outgoing=(smtp.port, Security.SSL),
                           ca_file=certs.ca_file)
    report = diagnose(account, send_test=True)
    assert report.find(Code.OVER_QUOTA) is None
    expect(report, Code.SEND_REFUSED)


# --------------------------------------------------------------------------- port 25 blocked


PORT25_HOST = "127.0.0.25"  # loopback too; its own address so that port 25 is free for the test


@pytest.fixture
def port25_blackholed() -> Iterator[int]:
    """Port 25 of 127.0.0.25 with a full accept queue: SYNs dropped, as an ISP's filter does."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((PORT25_HOST, 25))
    except OSError as exc:
        pytest.fail(f"port 25 of {PORT25_HOST} is not free for the test: {exc}")
    listener.listen(0)
    filler = socket.create_connection((PORT25_HOST, 25), timeout=1)
    probe = socket.socket()
    probe.settimeout(0.3)
    with pytest.raises(TimeoutError):
        probe.connect((PORT25_HOST, 25))
    probe.close()
    yield 25
    filler.close()
    listener.close()


def test_port_25_blocked_while_submission_ports_work(serve: Serve, certs: Certs, closed_port: int,
                                                     port25_blackholed: int) -> None:
    context = _server_context(certs.ca.issue_cert(PORT25_HOST))
    submission = serve(SmtpScript(tls=context), host=PORT25_HOST)  # "587": STARTTLS
    smtps = serve(SmtpScript(), tls=context, host=PORT25_HOST)  # "465": implicit TLS
    account = make_account(outgoing=(port25_blackholed, Security.NONE), outgoing_host=PORT25_HOST,
                           ca_file=certs.ca_file, unused_port=closed_port)
    alternatives = {Protocol.SMTP: [(submission.port, Security.STARTTLS), (smtps.port, Security.SSL)]}
    report = diagnose(account, alternatives=alternatives)
    expect(report, Code.CONNECTION_TIMEOUT, text="port 25")
    finding = expect(report, Code.PORT25_BLOCKED, text=f"submission port {submission.port} with STARTTLS works",
                     cause="most internet providers block it", remedy=f"port to {submission.port}")
    assert finding.data["blocked_port"] == 25 and finding.data["port"] == submission.port
    assert report.find(Code.PORT_BLOCKED) is None
    login = next(f for f in report.for_server(Server.OUTGOING) if f.step is Step.LOGIN)
    assert login.status is Status.OK, rendered(report)
    assert "Outgoing fails: port 25 is blocked" in report.summary()


# --------------------------------------------------------------------------- the child process


CHILD = """
import json, sys
sys.path[:0] = [{here!r}, {src!r}]
from doctorkit import FAST, NxDomainServer, diagnose, make_account
from deskmail.model import Security
args = json.loads(sys.argv[1])
options = {{}}
if args.get("aaaa"):
    dns = NxDomainServer({{args["host"]: args["aaaa"]}})
    options["resolver"] = dns.resolver()
account = make_account(incoming=(args["port"], Security.SSL), host=args["host"], ca_file=args["ca_file"],
                       unused_port=args["unused_port"])
report = diagnose(account, **options)
print(report.to_json())
"""


def run_child(prefix: list[str], **args: object) -> dict[str, object]:
    code = CHILD.format(here=str(HERE), src=str(SRC))
    done = subprocess.run([*prefix, sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout)
    return result


def finding_of(report: dict[str, object], code: Code) -> dict[str, object]:
    findings = report["findings"]
    assert isinstance(findings, list)
    found = [f for f in findings if f["code"] == code.value]
    assert found, [(f["step"], f["code"], f["text"]) for f in findings]
    first: dict[str, object] = found[0]
    return first


def test_certificate_not_yet_valid_because_the_clock_is_behind(serve: Serve, certs: Certs, closed_port: int) -> None:
    """The server's certificate started yesterday; the doctor runs with its clock 40 days behind."""
    faketime = shutil.which("faketime")
    assert faketime, "faketime is missing (scripts/bootstrap test installs it)"
    now = dt.datetime.now(dt.UTC)
    fresh = certs.ca.issue_cert("127.0.0.1", not_before=now - dt.timedelta(days=1),
                                not_after=now + dt.timedelta(days=90))
    imap = serve(ImapScript(), tls=_server_context(fresh))
    report = run_child([faketime, "-f", "-40d"], host="127.0.0.1", port=imap.port, ca_file=certs.ca_file,
                       unused_port=closed_port)
    finding = finding_of(report, Code.CLOCK_WRONG)
    assert finding["step"] == "tls" and finding["status"] == "failed"
    assert "check your clock" in str(finding["remedy"]).lower()
    assert "not valid yet" in str(finding["text"])
    data = finding["data"]
    assert isinstance(data, dict)
    seen = dt.datetime.fromisoformat(str(data["computer_time"]))
    assert dt.timedelta(days=39) < now - seen < dt.timedelta(days=41)  # the clock the child had
    assert not any("LOGIN" in line.upper() for line in imap.received)
    # With the right clock, the same server is fine: the certificate was never the problem.
    right = diagnose(make_account(incoming=(imap.port, Security.SSL), ca_file=certs.ca_file,
                                  unused_port=closed_port))
    tls = next(f for f in right.for_server(Server.INCOMING) if f.step is Step.TLS)
    assert tls.status is Status.OK


def test_name_with_only_an_ipv6_address_on_a_machine_without_ipv6(closed_port: int) -> None:
    """A network namespace with only `lo` up: IPv4 loopback works, no IPv6 route leaves it. The DNS
    server (dnspython, inside the namespace) answers AAAA only for the name."""
    unshare = shutil.which("unshare")
    assert unshare, "util-linux's unshare is missing"
    prefix = [unshare, "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
    report = run_child(prefix, host="imap.v6only.test", aaaa="2001:db8::25", port=993, ca_file="",
                       unused_port=closed_port)
    finding = finding_of(report, Code.IPV6_UNREACHABLE)
    assert finding["step"] == "tcp"
    assert "only IPv6 addresses (2001:db8::25)" in str(finding["text"])
    assert "no IPv6 route" in str(finding["cause"])
    assert "IPv4" in str(finding["remedy"])
    dns = next(f for f in report["findings"] if f["step"] == "dns")  # type: ignore[union-attr]
    assert dns["status"] == "ok"
    # No alternative ports are tried: without an IPv6 route none can work.
    assert not [f for f in report["findings"] if f["step"] == "ports"]  # type: ignore[union-attr]

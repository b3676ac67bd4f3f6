"""Fault servers for the doctor's tests (fixtures in conftest.py), all on 127.0.0.1, all owned by these tests.

* :class:`FakeServer`: a threaded TCP server running a scripted handler per
  connection, optionally behind implicit TLS. It records every line clients
  send (``server.received``), so a test can prove the password never arrived.
* Scripted IMAP, POP3 and SMTP handlers (:class:`ImapScript`, :class:`Pop3Script`,
  :class:`SmtpScript`): just enough protocol to play a server with one fault.
* Certificates from trustme: a trusted CA (``certs.ca_file``) issuing good,
  expired and wrong-name certificates; a self-signed one; and a CA named like
  an antivirus mail shield.
* :class:`NxDomainServer`: a dnspython UDP DNS server answering NXDOMAIN for
  every name it does not know.
* ``closed_port``, ``silent_port`` (accepts, never speaks) and
  ``blackholed_port`` (a full accept queue: Linux drops the SYN, so connects
  time out exactly like a firewall DROP rule).
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import ipaddress
import re
import socket
import ssl
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from rich.console import Console

from deskmail.cli.doctor_render import render_report
from deskmail.doctor import Code, DnsResolver, Finding, Report, Timeouts, run_doctor
from deskmail.model import Account, Protocol, Security, ServerSettings
from deskmail.secrets import Secret

HOST = "127.0.0.1"
PASSWORD = "test-password-Zq9"
EMAIL = "alice@example.org"

# Small but not flaky: every wait in a fault test is at most a couple of seconds.
FAST = Timeouts(
    dns=1.0,
    connect=1.0,
    sniff=0.3,
    greeting=1.5,
    tls=1.5,
    command=3.0,
    alternative=0.5,
    round_trip=8.0,
    poll_interval=0.2,
    total=30.0,
)


# --------------------------------------------------------------------------- fake servers


class FakeConn:
    """The server side of one connection."""

    def __init__(self, sock: socket.socket, server: FakeServer) -> None:
        self.sock = sock
        self.server = server
        self.buf = b""
        self.sock.settimeout(10)

    @property
    def is_tls(self) -> bool:
        return isinstance(self.sock, ssl.SSLSocket)

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def readline(self) -> str | None:
        while b"\n" not in self.buf:
            try:
                chunk = self.sock.recv(4096)
            except (OSError, ValueError):
                return None
            if not chunk:
                return None
            self.buf += chunk
        raw, _, self.buf = self.buf.partition(b"\n")
        line = raw.rstrip(b"\r").decode("utf-8", "replace")
        self.server.received.append(line)
        return line

    def start_tls(self, context: ssl.SSLContext) -> None:
        self.sock = context.wrap_socket(self.sock, server_side=True)


Handler = Callable[[FakeConn], None]


class FakeServer:
    """A scripted TCP server on 127.0.0.1; ``tls`` makes it implicit TLS (IMAPS/SMTPS)."""

    def __init__(self, handler: Handler, *, tls: ssl.SSLContext | None = None, host: str = HOST) -> None:
        self.handler = handler
        self.tls = tls
        self.received: list[str] = []
        self.connections = 0
        self._listener = socket.socket()
        self._listener.bind((host, 0))
        self._listener.listen(16)
        self.port: int = self._listener.getsockname()[1]
        self._socks: list[socket.socket] = []
        self._stopped = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._stopped:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self._socks.append(sock)
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            if self.tls is not None:
                sock.settimeout(10)
                sock = self.tls.wrap_socket(sock, server_side=True)
                self._socks.append(sock)
            self.handler(FakeConn(sock, self))
        except (OSError, ssl.SSLError, ValueError):
            pass  # clients of a fault test hang up in the middle all the time
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def text(self) -> str:
        return "\n".join(self.received)

    def stop(self) -> None:
        self._stopped = True
        self._listener.close()
        for sock in self._socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass


# --------------------------------------------------------------------------- scripts


@dataclass
class Mailbox:
    """Messages the fake SMTP server accepted, visible to the fake IMAP/POP3 servers."""

    messages: list[bytes] = field(default_factory=list)


def _imap_args(text: str) -> list[str]:
    return [
        (q.replace('\\"', '"').replace("\\\\", "\\") if q or not a else a)
        for q, a in re.findall(r'"((?:[^"\\]|\\.)*)"|(\S+)', text)
    ]


@dataclass
class ImapScript:
    users: dict[str, str] = field(default_factory=lambda: {EMAIL: PASSWORD})
    greeting: str = "* OK fake IMAP ready"
    starttls: bool = True  # offer STARTTLS on the plain port
    starttls_reply: str = "OK Begin TLS negotiation now"
    tls: ssl.SSLContext | None = None  # context for STARTTLS
    inject_after_starttls: bytes = b""
    login_disabled_before_tls: bool = False
    login_disabled: bool = False  # LOGINDISABLED even over TLS (an OAuth-only server)
    mechanisms: tuple[str, ...] = ("PLAIN",)  # AUTH= capabilities
    login_failure: str = "NO [AUTHENTICATIONFAILED] Authentication failed."
    mailbox: Mailbox = field(default_factory=Mailbox)

    def __call__(self, conn: FakeConn) -> None:
        conn.send(self.greeting)
        while (line := conn.readline()) is not None:
            tag, _, rest = line.partition(" ")
            command, _, args = rest.partition(" ")
            command = command.upper()
            if command == "CAPABILITY":
                caps = ["IMAP4rev1", *(f"AUTH={m}" for m in self.mechanisms)]
                if self.starttls and not conn.is_tls:
                    caps.append("STARTTLS")
                if self.login_disabled or (self.login_disabled_before_tls and not conn.is_tls):
                    caps.append("LOGINDISABLED")
                conn.send("* CAPABILITY " + " ".join(caps))
                conn.send(f"{tag} OK CAPABILITY completed")
            elif command == "STARTTLS" and self.tls is not None and not conn.is_tls:
                if not self.starttls_reply.startswith("OK"):
                    conn.send(f"{tag} {self.starttls_reply}")
                    continue
                conn.send_raw(f"{tag} {self.starttls_reply}\r\n".encode() + self.inject_after_starttls)
                conn.start_tls(self.tls)
            elif command == "LOGIN":
                user, password = [*_imap_args(args), "", ""][:2]
                if self.login_disabled:
                    conn.send(f"{tag} BAD LOGIN is disabled")
                elif self.login_disabled_before_tls and not conn.is_tls:
                    conn.send(f"{tag} NO [PRIVACYREQUIRED] Plaintext authentication disallowed")
                elif self.users.get(user) == password:
                    conn.send(f"{tag} OK [CAPABILITY IMAP4rev1] Logged in")
                else:
                    conn.send(f"{tag} {self.login_failure}")
            elif command in ("EXAMINE", "SELECT"):
                conn.send(f"* {len(self.mailbox.messages)} EXISTS")
                conn.send(f"{tag} OK [READ-ONLY] done")
            elif command == "UID" and args.upper().startswith("SEARCH"):
                wanted = _imap_args(args)[-1]
                hits = [str(i + 1) for i, m in enumerate(self.mailbox.messages) if wanted.encode() in m]
                conn.send("* SEARCH" + "".join(" " + h for h in hits))
                conn.send(f"{tag} OK SEARCH completed")
            elif command == "NOOP":
                conn.send(f"{tag} OK NOOP completed")
            elif command == "LOGOUT":
                conn.send("* BYE bye")
                conn.send(f"{tag} OK LOGOUT completed")
                return
            else:
                conn.send(f"{tag} BAD unknown command")


@dataclass
class Pop3Script:
    users: dict[str, str] = field(default_factory=lambda: {EMAIL: PASSWORD})
    tls: ssl.SSLContext | None = None  # context for STLS
    login_failure: str = "-ERR [AUTH] Authentication failed."
    mailbox: Mailbox = field(default_factory=Mailbox)

    def __call__(self, conn: FakeConn) -> None:
        conn.send("+OK fake POP3 ready")
        user = ""
        while (line := conn.readline()) is not None:
            command, _, arg = line.partition(" ")
            command = command.upper()
            if command == "CAPA":
                conn.send("+OK")
                for cap in ("USER", "SASL PLAIN", *(("STLS",) if self.tls and not conn.is_tls else ())):
                    conn.send(cap)
                conn.send(".")
            elif command == "STLS" and self.tls is not None:
                conn.send("+OK Begin TLS")
                conn.start_tls(self.tls)
            elif command == "USER":
                user = arg
                conn.send("+OK")
            elif command == "PASS":
                conn.send("+OK Logged in." if self.users.get(user) == arg else self.login_failure)
            elif command == "STAT":
                conn.send(f"+OK {len(self.mailbox.messages)} 0")
            elif command == "TOP":
                number = int(arg.split()[0])
                head = self.mailbox.messages[number - 1].split(b"\r\n\r\n")[0].decode()
                conn.send("+OK")
                for header in head.split("\r\n"):
                    conn.send(header)
                conn.send(".")
            elif command == "QUIT":
                conn.send("+OK bye")
                return
            else:
                conn.send("-ERR unknown command")


@dataclass
class SmtpScript:
    users: dict[str, str] = field(default_factory=lambda: {EMAIL: PASSWORD})
    greeting: str = "220 fake.example ESMTP ready"
    starttls: bool = True
    tls: ssl.SSLContext | None = None  # context for STARTTLS
    auth: str = "PLAIN LOGIN"  # advertised mechanisms; "" for none
    auth_failure: tuple[str, ...] = ("535 5.7.8 Error: authentication failed",)
    require_auth: bool = True  # "530 5.7.0 Authentication required" on MAIL without login
    relay_without_auth: bool = False
    local_domains: tuple[str, ...] = ("example.org",)
    data_reply: str = "250 2.0.0 Ok: queued as FAKE1"
    mailbox: Mailbox = field(default_factory=Mailbox)

    def __call__(self, conn: FakeConn) -> None:
        conn.send(self.greeting)
        authed = False
        while (line := conn.readline()) is not None:
            command = line[:4].upper()
            if command in ("EHLO", "HELO"):
                lines = ["fake.example"]
                if self.starttls and self.tls is not None and not conn.is_tls:
                    lines.append("STARTTLS")
                if self.auth:
                    lines.append("AUTH " + self.auth)
                lines.append("8BITMIME")
                for i, text in enumerate(lines):
                    conn.send(("250 " if i == len(lines) - 1 else "250-") + text)
            elif line.upper() == "STARTTLS" and self.tls is not None:
                conn.send("220 2.0.0 Ready to start TLS")
                conn.start_tls(self.tls)
            elif line.upper().startswith("AUTH PLAIN "):
                _, user, password = base64.b64decode(line[11:]).decode().split("\0")
                authed = self._auth(conn, user, password)
            elif line.upper() == "AUTH LOGIN":
                conn.send("334 VXNlcm5hbWU6")
                user = base64.b64decode(conn.readline() or "").decode()
                conn.send("334 UGFzc3dvcmQ6")
                password = base64.b64decode(conn.readline() or "").decode()
                authed = self._auth(conn, user, password)
            elif command == "MAIL":
                if self.require_auth and not authed:
                    conn.send("530 5.7.0 Authentication required")
                else:
                    conn.send("250 2.1.0 Ok")
            elif command == "RCPT":
                domain = line.rpartition("@")[2].rstrip(">").lower()
                if not authed and not self.relay_without_auth and domain not in self.local_domains:
                    conn.send(f"554 5.7.1 <{line[9:-1]}>: Relay access denied")
                else:
                    conn.send("250 2.1.5 Ok")
            elif command == "DATA":
                conn.send("354 End data with <CR><LF>.<CR><LF>")
                body: list[str] = []
                while (data := conn.readline()) not in (".", None):
                    body.append(data)
                if self.data_reply.startswith("250"):
                    self.mailbox.messages.append("\r\n".join(body).encode())
                conn.send(self.data_reply)
            elif command == "RSET":
                conn.send("250 2.0.0 Ok")
            elif command == "QUIT":
                conn.send("221 2.0.0 Bye")
                return
            else:
                conn.send("502 5.5.2 Error: command not recognized")

    def _auth(self, conn: FakeConn, user: str, password: str) -> bool:
        if self.users.get(user) == password:
            conn.send("235 2.7.0 Authentication successful")
            return True
        for line in self.auth_failure:
            conn.send(line)
        return False


def silent(conn: FakeConn) -> None:
    """Accept, never say a word, wait for the client to go away."""
    while conn.readline() is not None:
        pass


# --------------------------------------------------------------------------- certificates


@dataclass
class Certs:
    ca: trustme.CA
    ca_file: str
    good: ssl.SSLContext
    expired: ssl.SSLContext
    wrong_name: ssl.SSLContext
    self_signed: ssl.SSLContext
    antivirus: ssl.SSLContext
    antivirus_ca_file: str
    legacy_tls: ssl.SSLContext


def _server_context(leaf: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(context)
    return context


def _self_signed_context(directory: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.self-signed.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / "self-signed.pem"
    key_file = directory / "self-signed.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


def make_certs(directory: Path) -> Certs:
    ca = trustme.CA(organization_name="deskmail doctor test CA")
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    now = dt.datetime.now(dt.UTC)
    expired = ca.issue_cert(HOST, not_before=now - dt.timedelta(days=90), not_after=now - dt.timedelta(days=2))
    antivirus_ca = trustme.CA(organization_name="Avast Web/Mail Shield Root")
    antivirus_ca_file = directory / "avast.pem"
    antivirus_ca.cert_pem.write_to_path(str(antivirus_ca_file))
    legacy = _server_context(ca.issue_cert(HOST))
    with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point of this server
        warnings.simplefilter("ignore", DeprecationWarning)
        legacy.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        legacy.maximum_version = ssl.TLSVersion.TLSv1_1
    legacy.set_ciphers("DEFAULT:@SECLEVEL=0")
    return Certs(
        ca=ca,
        ca_file=str(ca_file),
        good=_server_context(ca.issue_cert(HOST, "localhost")),
        expired=_server_context(expired),
        wrong_name=_server_context(ca.issue_cert("mail.other-provider.test")),
        self_signed=_self_signed_context(directory),
        antivirus=_server_context(antivirus_ca.issue_cert(HOST)),
        antivirus_ca_file=str(antivirus_ca_file),
        legacy_tls=legacy,
    )



# --------------------------------------------------------------------------- ports and DNS


class NxDomainServer:
    """A UDP DNS server (dnspython): A records for ``known`` names (AAAA for an IPv6 address),
    NXDOMAIN for the rest."""

    def __init__(self, known: dict[str, str] | None = None) -> None:
        self.known = {k.rstrip(".").lower(): v for k, v in (known or {}).items()}
        self.queries: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.port: int = self.sock.getsockname()[1]
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            query = dns.message.from_wire(data)
            response = dns.message.make_response(query)
            question = query.question[0]
            name = question.name.to_text().rstrip(".").lower()
            self.queries.append(name)
            if name not in self.known:
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif self.known[name]:  # "" = name without address
                kind = "AAAA" if ":" in self.known[name] else "A"
                if question.rdtype == dns.rdatatype.from_text(kind):
                    response.answer.append(dns.rrset.from_text(question.name, 60, "IN", kind, self.known[name]))
            self.sock.sendto(response.to_wire(), peer)

    def resolver(self) -> DnsResolver:
        return DnsResolver(nameservers=(HOST,), port=self.port, use_system_fallback=False)

    def close(self) -> None:
        self.sock.close()


# --------------------------------------------------------------------------- accounts


def make_account(
    *,
    incoming: tuple[int, Security] | None = None,
    outgoing: tuple[int, Security] | None = None,
    incoming_protocol: Protocol = Protocol.IMAP,
    host: str = HOST,
    outgoing_host: str | None = None,
    username: str = EMAIL,
    email: str = EMAIL,
    ca_file: str = "",
    auth_required: bool = True,
    allow_plaintext_password: bool = False,
    unused_port: int = 9,
) -> Account:
    """An account for the doctor; a side left as None points at ``unused_port`` (refused)."""
    in_port, in_sec = incoming or (unused_port, Security.SSL)
    out_port, out_sec = outgoing or (unused_port, Security.SSL)
    return Account(
        name="test",
        email=email,
        display_name="Alice",
        incoming=ServerSettings(incoming_protocol, host, in_port, in_sec, username),
        outgoing=ServerSettings(
            Protocol.SMTP, outgoing_host or host, out_port, out_sec, username, auth_required=auth_required
        ),
        ca_file=ca_file,
        allow_plaintext_password=allow_plaintext_password,
    )


# --------------------------------------------------------------------------- running the doctor


def diagnose(account: Account, password: str | None = PASSWORD, **options: Any) -> Report:
    """run_doctor with test timeouts, no alternative ports unless given, and a secret check."""
    options.setdefault("timeouts", FAST)
    options.setdefault("alternatives", {})
    seen: list[Finding] = []
    report = run_doctor(account, Secret(password) if password is not None else None, on_step=seen.append,
                        **options)
    assert list(report.findings) == seen, "on_step must stream every finding, in order"
    if password is not None:
        assert_no_secret(report, password)
    return report


def rendered(report: Report) -> str:
    console = Console(record=True, width=200, file=io.StringIO())
    render_report(report, console)
    return console.export_text()


def assert_no_secret(report: Report, password: str) -> None:
    """The password and its AUTH forms appear nowhere the doctor writes."""
    forms = {password, base64.b64encode(password.encode()).decode()}
    for user in (EMAIL, EMAIL.partition("@")[0]):
        forms.add(base64.b64encode(f"\0{user}\0{password}".encode()).decode())
    outputs = [report.to_json(), rendered(report), report.summary()]
    for output in outputs:
        for form in forms:
            assert form not in output


def expect(report: Report, code: Code | str, *, cause: str = "", remedy: str = "", text: str = "") -> Finding:
    """The finding with ``code``; its cause/remedy/text must mention the given words (case-insensitive)."""
    finding = report.find(code)
    assert finding is not None, f"no {code} finding in: " + "\n".join(f.line + f" [{f.code}]" for f in report.findings)
    for wanted, got in ((cause, finding.cause), (remedy, finding.remedy), (text, finding.text)):
        assert wanted.lower() in got.lower(), f"{wanted!r} not in {got!r}"
    return finding

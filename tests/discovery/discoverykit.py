"""Real servers on 127.0.0.1 for the discovery tests: DNS, HTTP(S), fake mail servers, a black hole.

* :class:`DNSServer` — an authoritative DNS server (UDP and TCP on one port) built on
  dnspython's message API; records are added per test, names can be made silent.
* :class:`WebServer` — HTTP or HTTPS (certificates issued on the fly for whatever
  name the client asks for, via SNI) serving per-host routes.
* :class:`FakeMailServer` — scripted IMAP / POP3 / SMTP servers in three modes
  (implicit TLS, STARTTLS, plain) that record every line a client sends, so a
  test can prove no password, user name or AUTH ever arrived.
* :class:`BlackHole` — accepts connections and never says a word.
"""

from __future__ import annotations

import contextlib
import http.server
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import trustme

# ----------------------------------------------------------------------------- TLS


class CertShop:
    """Server certificates from one test CA, issued on demand per SNI name."""

    def __init__(self, ca: trustme.CA) -> None:
        self.ca = ca
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._lock = threading.Lock()

    def context_for(self, *names: str) -> ssl.SSLContext:
        key = ",".join(names)
        with self._lock:
            ctx = self._contexts.get(key)
            if ctx is None:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                self.ca.issue_cert(*names).configure_cert(ctx)
                self._contexts[key] = ctx
            return ctx

    def sni_context(self) -> ssl.SSLContext:
        """A server context that presents a certificate for whichever name the client asked."""
        base = self.context_for("default.invalid")

        def pick(sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
            if name:
                sock.context = self.context_for(name)

        base.sni_callback = pick  # type: ignore[assignment]
        return base


# ----------------------------------------------------------------------------- DNS


class DNSServer:
    """Authoritative answers for whatever was :meth:`add`-ed; NXDOMAIN for other names."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[str]] = {}
        self.silent: set[str] = set()  # names (and everything under them) never answered
        self.queries: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        for _ in range(20):
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", 0))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind(("127.0.0.1", self.port))
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
        self.tcp.listen(16)
        self.udp.settimeout(0.2)
        self.tcp.settimeout(0.2)
        threading.Thread(target=self._serve_udp, daemon=True).start()
        threading.Thread(target=self._serve_tcp, daemon=True).start()

    def add(self, name: str, rdtype: str, *values: str) -> None:
        with self._lock:
            self.records.setdefault((name.lower().rstrip("."), rdtype.upper()), []).extend(values)

    def add_host(self, name: str, address: str = "127.0.0.1") -> None:
        self.add(name, "A", address)

    def make_silent(self, name: str) -> None:
        with self._lock:
            self.silent.add(name.lower().rstrip("."))

    def answer(self, wire: bytes) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        if not query.question:
            return None
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        with self._lock:
            self.queries.append((name, rdtype))
            if any(name == s or name.endswith("." + s) for s in self.silent):
                return None
            values = list(self.records.get((name, rdtype), ()))
            exists = any(n == name for n, _ in self.records)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if values:
            response.answer.append(dns.rrset.from_text_list(question.name, 60, "IN", rdtype, values))
        elif not exists:
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response.to_wire()

    def _serve_udp(self) -> None:
        while not self._stop.is_set():
            try:
                wire, peer = self.udp.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            reply = self.answer(wire)
            if reply is not None:
                with contextlib.suppress(OSError):
                    self.udp.sendto(reply, peer)

    def _serve_tcp(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._tcp_client, args=(conn,), daemon=True).start()

    def _tcp_client(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                size = int.from_bytes(_recv_exact(conn, 2), "big")
                reply = self.answer(_recv_exact(conn, size))
                if reply is not None:
                    conn.sendall(len(reply).to_bytes(2, "big") + reply)
                else:
                    self._stop.wait(10)
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        self.udp.close()
        self.tcp.close()


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise OSError("closed")
        data += chunk
    return data


# ----------------------------------------------------------------------------- HTTP(S)


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False  # send the body with Transfer-Encoding: chunked, no Content-Length
    raw: Callable[[socket.socket], None] | None = None  # write the whole answer yourself


class WebServer:
    """HTTP or HTTPS on 127.0.0.1; ``routes[(host, path)]`` answers, everything else is 404."""

    def __init__(self, certs: CertShop | None = None) -> None:
        self.routes: dict[tuple[str, str], Route] = {}
        self.requests: list[tuple[str, str]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                host = (self.headers.get("Host") or "").split(":")[0].lower()
                path = urlsplit(self.path).path
                server.requests.append((host, self.path))
                route = server.routes.get((host, path))
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if route.raw is not None:
                    self.wfile.flush()
                    route.raw(self.connection)
                    self.close_connection = True
                    return
                self.send_response(route.status)
                for k, v in route.headers.items():
                    self.send_header(k, v)
                if route.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    step = 64 * 1024
                    for i in range(0, len(route.body), step):
                        part = route.body[i : i + step]
                        self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.send_header("Content-Length", str(len(route.body)))
                    self.end_headers()
                    self.wfile.write(route.body)
                self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if certs is not None:
            self.httpd.socket = certs.sni_context().wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def serve(self, host: str, path: str, route: Route) -> None:
        self.routes[(host.lower(), path)] = route

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ----------------------------------------------------------------------------- silence


def closed_port() -> int:
    """A port nothing listens on (connections are refused at once)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


class BlackHole:
    """Accepts TCP connections and never answers (a hung server, a filtering firewall)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        for c in self.held:
            c.close()


# ----------------------------------------------------------------------------- mail servers

# What a client may never send to a server it is only probing.
SECRET_COMMANDS = ("LOGIN", "AUTHENTICATE", "AUTH", "USER", "PASS", "APOP")


class FakeMailServer:
    """A scripted IMAP, POP3 or SMTP server.

    mode: "ssl" (TLS from the first byte), "starttls" (plain greeting, STARTTLS offered),
    "plain" (no TLS at all). ``context`` is the server TLS context (needed for ssl and
    starttls). Every line received is kept in :attr:`lines`.
    """

    def __init__(
        self, protocol: str, mode: str, context: ssl.SSLContext | None = None, greeting_delay: float = 0.0
    ) -> None:
        self.protocol = protocol
        self.mode = mode
        self.greeting_delay = greeting_delay
        self.context = context
        self.lines: list[str] = []
        self.tls_sessions = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(32)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def secrets_received(self) -> list[str]:
        """Lines that carried (or would carry) a credential."""
        found = []
        for line in self.lines:
            words = line.upper().split()
            if self.protocol == "imap" and len(words) > 1:
                words = words[1:]  # drop the tag
            if words and words[0] in SECRET_COMMANDS:
                found.append(line)
        return found

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        sock: socket.socket = conn
        try:
            if self.mode == "ssl":
                assert self.context is not None
                sock = self.context.wrap_socket(conn, server_side=True)
                self.tls_sessions += 1
            self._dialogue(sock, tls=self.mode == "ssl")
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            with contextlib.suppress(OSError):
                sock.close()

    def _dialogue(self, sock: socket.socket, tls: bool) -> None:
        reader = _LineReader(sock)
        send = sock.sendall
        if self.greeting_delay:
            time.sleep(self.greeting_delay)
        greeting = {
            "imap": b"* OK fake IMAP ready\r\n",
            "pop3": b"+OK fake POP3 ready\r\n",
            "smtp": b"220 fake.test ESMTP ready\r\n",
        }[self.protocol]
        send(greeting)
        while True:
            line = reader.line()
            if line is None:
                return
            self.lines.append(line)
            words = line.split()
            if self.protocol == "imap":
                tag, cmd = [*words, "", ""][:2]
                cmd = cmd.upper()
                if cmd == "CAPABILITY":
                    caps = "IMAP4rev1 "
                    caps += "AUTH=PLAIN" if tls or self.mode == "plain" else "STARTTLS LOGINDISABLED"
                    send(f"* CAPABILITY {caps}\r\n{tag} OK done\r\n".encode())
                elif cmd == "STARTTLS" and self.mode == "starttls" and not tls:
                    send(f"{tag} OK begin TLS\r\n".encode())
                    sock = self._upgrade(sock)
                    reader, send, tls = _LineReader(sock), sock.sendall, True
                elif cmd == "LOGOUT":
                    send(f"* BYE\r\n{tag} OK bye\r\n".encode())
                    return
                else:
                    send(f"{tag} BAD no\r\n".encode())
            elif self.protocol == "pop3":
                cmd = words[0].upper() if words else ""
                if cmd == "CAPA":
                    caps = ["USER", "SASL PLAIN"] if tls or self.mode == "plain" else ["STLS"]
                    send(("+OK\r\n" + "".join(c + "\r\n" for c in caps) + ".\r\n").encode())
                elif cmd == "STLS" and self.mode == "starttls" and not tls:
                    send(b"+OK begin TLS\r\n")
                    sock = self._upgrade(sock)
                    reader, send, tls = _LineReader(sock), sock.sendall, True
                elif cmd == "QUIT":
                    send(b"+OK bye\r\n")
                    return
                else:
                    send(b"-ERR no\r\n")
            else:
                cmd = words[0].upper() if words else ""
                if cmd == "EHLO":
                    ext = ["fake.test"]
                    if self.mode == "starttls" and not tls:
                        ext.append("STARTTLS")
                    else:
                        ext.append("AUTH PLAIN LOGIN")
                    ext.append("8BITMIME")
                    text = "".join(f"250-{e}\r\n" for e in ext[:-1]) + f"250 {ext[-1]}\r\n"
                    send(text.encode())
                elif cmd == "STARTTLS" and self.mode == "starttls" and not tls:
                    send(b"220 go ahead\r\n")
                    sock = self._upgrade(sock)
                    reader, send, tls = _LineReader(sock), sock.sendall, True
                elif cmd == "QUIT":
                    send(b"221 bye\r\n")
                    return
                else:
                    send(b"502 no\r\n")

    def _upgrade(self, sock: socket.socket) -> socket.socket:
        assert self.context is not None
        tls = self.context.wrap_socket(sock, server_side=True)
        self.tls_sessions += 1
        return tls

    def close(self) -> None:
        self._stop = True
        self.sock.close()


class _LineReader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def line(self) -> str | None:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                return None
            self.buf += chunk
        raw, _, self.buf = self.buf.partition(b"\n")
        return raw.rstrip(b"\r").decode("utf-8", "replace")

"""The domain's own autoconfig file (Thunderbird's "autoconfig" protocol).

Order of the URLs, each fetched with a time budget and a 1 MiB size limit:

1. ``https://autoconfig.<domain>/mail/config-v1.1.xml?emailaddress=<address>``
2. ``https://<domain>/.well-known/autoconfig/mail/config-v1.1.xml``
   (1 and 2 are fetched at the same time; 1 wins when both answer)
3. only if both failed: the same two over plain ``http://`` (without the
   ``emailaddress`` parameter: the address is not sent in clear).

Trust. Over HTTPS (certificate checked by deskmail's one TLS policy) the file
is the domain owner's statement: confidence high. Over plain HTTP anyone on
the network path could have written it, and the first thing the file decides
is where the password goes — so those candidates are ``needs_confirmation``
and low confidence. Independently, a file that sends the password to a server
outside the address's domain, which the provider database does not vouch
for, is marked ``needs_confirmation`` too (a hijacked web server must not be
able to collect passwords silently). Redirects are followed (at most 3) but
never from HTTPS down to HTTP.

Deskmail-specific extension elements (``dm:…``) in a fetched file are
ignored: provenance and notes are ours to assert, not a web server's.

The HTTP client is deliberately tiny (GET, ``Connection: close``,
``Content-Length`` or chunked bodies): it must be bounded in time and size
at every read, which ``http.client``'s buffered reads do not guarantee.
"""

from __future__ import annotations

import functools
import socket
import ssl
from dataclasses import dataclass, replace
from urllib.parse import quote, urljoin, urlsplit

from deskmail.discovery.candidates import Candidate, Confidence, Origin, Skipped, provider_candidates
from deskmail.discovery.database import ProviderDatabase
from deskmail.discovery.domains import same_organization
from deskmail.discovery.ispdb import ClientConfig, InvalidClientConfig, SourceKind, parse_client_config
from deskmail.discovery.options import Deadline, run_all
from deskmail.discovery.transport import Network, StepFailed

MAX_REDIRECTS = 3
_MAX_HEADER_BYTES = 64 * 1024


def urls(email: str, domain: str, scheme: str = "https") -> list[str]:
    # The address goes only into the encrypted request: over plain HTTP it would be
    # readable by everyone on the path, for a file we will not fully trust anyway.
    query = f"?emailaddress={quote(email, safe='@')}" if scheme == "https" else ""
    return [
        f"{scheme}://autoconfig.{domain}/mail/config-v1.1.xml{query}",
        f"{scheme}://{domain}/.well-known/autoconfig/mail/config-v1.1.xml",
    ]


@dataclass(frozen=True)
class Fetched:
    url: str  # after redirects
    body: bytes
    secure: bool  # every hop was HTTPS


def discover(net: Network, email: str, domain: str, db: ProviderDatabase) -> tuple[list[Candidate], list[Skipped]]:
    skipped: list[Skipped] = []
    for scheme in ("https", "http"):
        if scheme == "http" and not net.options.plain_http:
            break
        found = _first_config(net, urls(email, domain, scheme), skipped)
        if found is not None:
            fetched, config = found
            cands, bad = candidates(config, fetched, email, domain, db)
            return cands, skipped + bad
    return [], skipped


def _first_config(net: Network, targets: list[str], skipped: list[Skipped]) -> tuple[Fetched, ClientConfig] | None:
    def attempt(url: str) -> tuple[Fetched, ClientConfig]:
        fetched = http_get(net, url)
        try:
            config = parse_client_config(fetched.body, origin=fetched.url, max_bytes=net.options.max_config_bytes)
        except InvalidClientConfig as exc:
            raise StepFailed(exc.reason) from None
        return fetched, config

    outcomes = run_all({u: functools.partial(attempt, u) for u in targets}, net.deadline)
    best: tuple[Fetched, ClientConfig] | None = None
    for url in targets:
        out = outcomes[url]
        if out.value is not None:
            if best is None:
                best = out.value
            for problem in out.value[1].problems:
                skipped.append(Skipped(Origin.AUTOCONFIG, url, problem))
        elif isinstance(out.error, StepFailed):
            skipped.append(Skipped(Origin.AUTOCONFIG, url, str(out.error)))
        elif out.error is not None:
            skipped.append(Skipped(Origin.AUTOCONFIG, url, f"failed: {out.error!r}"))
        else:
            skipped.append(Skipped(Origin.AUTOCONFIG, url, "no answer before the deadline"))
    return best


def candidates(
    config: ClientConfig, fetched: Fetched, email: str, domain: str, db: ProviderDatabase
) -> tuple[list[Candidate], list[Skipped]]:
    """Pure: a fetched file → candidates, with the trust rules of the module docstring."""
    provider = replace(config.provider, sources=(), notes=(), mx_domains=(), operator="")
    found, skipped = provider_candidates(
        provider,
        email,
        origin=Origin.AUTOCONFIG,
        source=Origin.AUTOCONFIG.label(),
        default_kind=SourceKind.DOMAIN_AUTOCONFIG,
        extra_notes=[f"From {fetched.url}"],
    )
    out: list[Candidate] = []
    for c in found:
        notes = list(c.notes)
        confirm = False
        if not fetched.secure:
            confirm = True
            notes.append(
                "This file came over plain HTTP: anyone on the network path could have changed it "
                "to collect your password"
            )
        foreign = [
            h
            for h in dict.fromkeys((c.incoming.host, c.outgoing.host))
            if not same_organization(h, domain) and not db.vouches_for(h)
        ]
        if foreign:
            confirm = True
            notes.append(
                f"The file sends your password to {', '.join(foreign)}, outside {domain}, and deskmail's "
                "provider database does not know that server: confirm it belongs to your provider"
            )
        out.append(
            replace(
                c,
                notes=tuple(notes),
                needs_confirmation=confirm,
                confidence=Confidence.LOW if confirm else c.confidence,
            )
        )
    return out, skipped


# ------------------------------------------------------------------ HTTP client


def http_get(net: Network, url: str) -> Fetched:
    """GET ``url`` within ``http_timeout`` (and the run's deadline), at most
    ``max_config_bytes`` of body, following up to :data:`MAX_REDIRECTS` redirects."""
    budget = net.deadline.sub(net.options.http_timeout)
    secure = True
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise StepFailed(f"{url} is not an http(s) URL")
        if parts.scheme == "http":
            secure = False
        status, headers, body = _request(net, url, budget)
        if status in (301, 302, 303, 307, 308):
            location = headers.get("location", "")
            if not location:
                raise StepFailed(f"HTTP {status} redirect without a Location")
            target = urljoin(url, location)
            if parts.scheme == "https" and not target.startswith("https://"):
                raise StepFailed(f"redirected from HTTPS to {target}; deskmail refuses to downgrade")
            url = target
            continue
        if status != 200:
            raise StepFailed(f"the server answered HTTP {status}")
        return Fetched(url, body, secure)
    raise StepFailed(f"more than {MAX_REDIRECTS} redirects")


def _request(net: Network, url: str, budget: Deadline) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    https = parts.scheme == "https"
    try:
        port = parts.port or (443 if https else 80)
    except ValueError:
        raise StepFailed(f"{url} has an invalid port") from None
    max_bytes = net.options.max_config_bytes
    sock = net.connect(host, port)
    try:
        if https:
            sock.settimeout(_left(budget, net, "the TLS handshake"))
            try:
                sock = net.tls_context().wrap_socket(sock, server_hostname=host)
            except ssl.SSLCertVerificationError as exc:
                raise StepFailed(f"the certificate of {host} is not valid ({exc.verify_message})") from None
            except (ssl.SSLError, OSError) as exc:
                raise StepFailed(f"TLS with {host} failed ({exc})") from None
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host_header = host if parts.port is None else f"{host}:{parts.port}"
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: deskmail-autoconfig/1\r\n"
            "Accept: application/xml, text/xml;q=0.9, */*;q=0.1\r\nAccept-Encoding: identity\r\n"
            "Connection: close\r\n\r\n"
        )
        try:
            sock.settimeout(_left(budget, net, "sending the request"))
            sock.sendall(request.encode("ascii", "strict"))
        except (OSError, UnicodeError) as exc:
            raise StepFailed(f"sending the request failed ({exc})") from None
        return _read_response(sock, net, budget, max_bytes)
    finally:
        sock.close()


def _read_response(
    sock: socket.socket, net: Network, budget: Deadline, max_bytes: int
) -> tuple[int, dict[str, str], bytes]:
    buf = bytearray()
    head_end = -1
    status = 0
    headers: dict[str, str] = {}
    length: int | None = None
    while True:
        try:
            sock.settimeout(_left(budget, net, "the answer arrived"))
            chunk = sock.recv(65536)
        except TimeoutError:
            raise StepFailed("the server was too slow to answer") from None
        except OSError as exc:
            raise StepFailed(f"reading the answer failed ({exc})") from None
        if not chunk:
            break
        buf += chunk
        if head_end < 0:
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                if len(buf) > _MAX_HEADER_BYTES:
                    raise StepFailed("the HTTP headers are too large")
                continue
            status, headers = _parse_head(bytes(buf[:head_end]))
            if "content-length" in headers:
                try:
                    length = int(headers["content-length"])
                except ValueError:
                    raise StepFailed("the Content-Length header is not a number") from None
                if length > max_bytes:
                    raise StepFailed(f"the file is larger than {max_bytes // 1024} KiB ({length} bytes)")
        if head_end >= 0:
            body_len = len(buf) - head_end - 4
            if body_len > max_bytes + (16 * 1024 if "chunked" in headers.get("transfer-encoding", "") else 0):
                raise StepFailed(f"the file is larger than {max_bytes // 1024} KiB")
            if length is not None and body_len >= length:
                break
    if head_end < 0:
        raise StepFailed("the server closed the connection without a complete HTTP answer")
    body = bytes(buf[head_end + 4 :])
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunk(body, max_bytes)
    elif length is not None:
        if len(body) < length:
            raise StepFailed("the server closed the connection before sending the whole file")
        body = body[:length]
    return status, headers, body


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("iso-8859-1").split("\r\n")
    fields = lines[0].split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
        raise StepFailed("the server's answer is not HTTP")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(fields[1]), headers


def _dechunk(data: bytes, max_bytes: int) -> bytes:
    out = bytearray()
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            raise StepFailed("the chunked answer is cut short")
        size_text = data[pos:eol].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise StepFailed("the chunked answer is malformed") from None
        if size == 0:
            return bytes(out)
        start = eol + 2
        if start + size > len(data):
            raise StepFailed("the chunked answer is cut short")
        out += data[start : start + size]
        if len(out) > max_bytes:
            raise StepFailed(f"the file is larger than {max_bytes // 1024} KiB")
        pos = start + size + 2


def _left(budget: Deadline, net: Network, what: str) -> float:
    try:
        return min(budget.timeout(net.options.read_timeout), net.timeout(net.options.read_timeout, what))
    except TimeoutError:
        raise StepFailed(f"the time for this fetch ran out before {what}") from None

"""Real mail servers on loopback: Dovecot (IMAP, POP3, LMTP) plus an aiosmtpd submission server.

Used by the test suite and by ``deskmail sandbox``. Nothing leaves the machine: mail for
local users goes to Dovecot, everything else into ``ROOT/outbound/*.eml``.

Theory of operation
-------------------
:func:`start_sandbox` owns one directory ``ROOT``::

    etc/dovecot.conf   complete config (rewritten at every start; no /etc/dovecot include)
    etc/local.conf     optional, included last: a test's variant of the server (e.g. fewer capabilities)
    etc/users.d/EMAIL  one passwd-file per user, read by Dovecot and the SMTP server
    etc/smtpd.json     the SMTP server's settings (see :class:`SmtpdConfig`)
    tls/               ca.crt (trust this), ca.key, server.key, server.crt, fullchain.crt
    mail/DOMAIN/LOCAL/ home of each user, Maildir inside, owned by the ``vmail`` user
    run/               Dovecot base_dir: sockets (lmtp, auth-userdb...) and master.pid
    state/  log/  pids/  outbound/
    state.json         ports and paths, so a later process can :func:`load_sandbox` and stop it

Ports are picked free at start, so several sandboxes run side by side. Both servers
daemonize (Dovecot by itself, the SMTP server by double fork) and outlive the process
that started them; :meth:`Sandbox.stop` sends SIGTERM to both.

Dovecot needs root (it drops to ``dovecot``/``dovenull``/``vmail`` per process), a mail
uid other than 0, and every directory above ROOT traversable by those users: ``/tmp``
or ``/var/tmp`` are fine, ``/root/...`` or pytest's ``/tmp/pytest-of-root`` (0700) are not.

The "secured loopback" quirk
----------------------------
Dovecot 2.3 treats a connection whose client IP equals the server IP as secured (as if
it were TLS): on ``127.0.0.1`` it advertises ``AUTH=PLAIN`` without ``LOGINDISABLED`` and
accepts ``LOGIN`` before STARTTLS, despite ``disable_plaintext_auth = yes``. So every
Dovecot listener also listens on ``127.0.0.2`` (same ports). Observed on Linux 6.x
(Debian 12, Dovecot 2.3.19.1):

* connecting to ``127.0.0.2`` with no explicit source: the kernel picks ``127.0.0.1``
  as source (the ``local 127.0.0.0/8 dev lo ... src 127.0.0.1`` route), so the client IP
  differs from the server IP and the session is *not* secured: ``LOGINDISABLED`` before
  STARTTLS, ``LOGIN`` refused with ``[PRIVACYREQUIRED]``, POP3 ``USER``/``PASS`` refused.
  This is :attr:`Sandbox.insecure_host`;
* binding the client to source ``127.0.0.2`` and connecting to ``127.0.0.1`` also works
  (IPs differ); source ``127.0.0.2`` to ``127.0.0.2`` is secured again.

Why one passwd-file per user
----------------------------
Dovecot 2.3 stats a passwd-file at most once per second (``passwd_file_sync()`` in
``src/auth/db-passwd-file.c``: ``if (pw->last_sync_time == ioloop_time) return``). With a
single file, a user added in the same second as any other login stays "unknown user" for
up to a second (seen here: the first test after start failed). With ``users.d/%u`` a new
user is a new file, which Dovecot has never cached, and a missing file is never cached;
so :meth:`Sandbox.add_user` takes effect at once. A *changed* password still goes through
the gate, so ``add_user`` waits for the next second in that (rare) case. Cost: ``doveadm
-A`` (iterate all users) does not work with a per-user path.

The certificate covers ``DNS:localhost, IP:127.0.0.1, IP:127.0.0.2``, so clients verify
the host name on both addresses. The SMTP server has no such exemption (it always
requires STARTTLS) but listens on both addresses as well, for symmetry.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import grp
import hashlib
import ipaddress
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import smtplib
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, make_msgid, parseaddr, parsedate_to_datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from deskmail.errors import DeskmailError

HOST = "127.0.0.1"
INSECURE_HOST = "127.0.0.2"
MAIL_USER = "vmail"  # owns every Maildir; Dovecot refuses uid 0 for mail processes
DATA_SIZE_LIMIT = 50 * 1024 * 1024
READY_TIMEOUT = 20.0  # seconds, wall clock, for the whole readiness check
STOP_TIMEOUT = 10.0  # seconds before SIGTERM becomes SIGKILL
STATE_VERSION = 1

# sun_path holds 108 bytes; base_dir gets suffixes like "/token-login/imap-urlauth".
_MAX_BASE_DIR = 70
_DH_FILE = Path("/usr/share/dovecot/dh.pem")  # shipped by Debian's dovecot-core
_DOVECOT_LIBEXEC = Path("/usr/lib/dovecot")
_SPECIAL_FOLDERS = (("Drafts", "\\Drafts"), ("Sent", "\\Sent"), ("Trash", "\\Trash"),
                    ("Junk", "\\Junk"), ("Archive", "\\Archive"))
_EMAIL_RE = re.compile(r"^[a-z0-9!#$%&'*+=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+=?^_`{|}~-]+)*@"
                       r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
_NO_USERS: Mapping[str, str] = MappingProxyType({})


class SandboxError(DeskmailError):
    """The local mail servers could not be set up, started, reached or stopped."""


# --------------------------------------------------------------------------- certificates

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
KeyType = Literal["ec", "rsa"]


def _new_key(key_type: KeyType) -> PrivateKey:
    # P-256 by default: generated in microseconds, and every client tried (Python ssl,
    # GnuTLS, OpenSSL) accepts it. RSA for code that wants to mimic an older server.
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


@dataclass(frozen=True)
class CertificateAuthority:
    """A throw-away CA: trust :attr:`cert_pem` in a client, sign leaves with :func:`issue_cert`."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return _key_pem(self.key)

    def write(self, cert_file: Path, key_file: Path | None = None) -> None:
        Path(cert_file).parent.mkdir(parents=True, exist_ok=True)
        Path(cert_file).write_bytes(self.cert_pem)
        if key_file is not None:
            _write_private(Path(key_file), self.key_pem)

    @classmethod
    def load(cls, cert_file: Path, key_file: Path) -> CertificateAuthority:
        cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
        key = serialization.load_pem_private_key(Path(key_file).read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise ValueError(f"{key_file}: unsupported key type {type(key).__name__}")
        return cls(cert, key)


@dataclass(frozen=True)
class IssuedCertificate:
    """A leaf certificate with its key and the CA that signed it."""

    cert: x509.Certificate
    key: PrivateKey
    issuer: CertificateAuthority

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return _key_pem(self.key)

    @property
    def chain_pem(self) -> bytes:
        """Leaf then CA: what a server sends (some clients need the intermediate-style chain)."""
        return self.cert_pem + self.issuer.cert_pem

    def write(self, cert_file: Path, key_file: Path) -> None:
        """Write the full chain to ``cert_file`` and the key (mode 0600) to ``key_file``."""
        Path(cert_file).parent.mkdir(parents=True, exist_ok=True)
        Path(cert_file).write_bytes(self.chain_pem)
        _write_private(Path(key_file), self.key_pem)

    def server_context(self) -> ssl.SSLContext:
        """A server-side TLS context presenting this certificate (e.g. for a MITM proxy)."""
        # load_cert_chain only reads files; keep them just long enough.
        with tempfile.TemporaryDirectory(prefix="deskmail-cert-") as tmp:
            cert_file, key_file = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
            self.write(cert_file, key_file)
            return server_ssl_context(cert_file, key_file)


def make_ca(
    common_name: str = "deskmail sandbox CA",
    *,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    key_type: KeyType = "ec",
) -> CertificateAuthority:
    """Create a CA certificate (basicConstraints CA:TRUE critical, keyUsage keyCertSign).

    Make a second one (e.g. ``make_ca("Antivirus Web Shield root")``) for a certificate
    that is well-formed but signed by an authority the client does not trust.
    """
    key = _new_key(key_type)
    now = _now()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "deskmail sandbox")])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(hours=1))
        .not_valid_after(not_after or now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(cert, key)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def issue_cert(
    ca: CertificateAuthority,
    names: Sequence[str],
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    *,
    key_type: KeyType = "ec",
) -> IssuedCertificate:
    """Issue a server certificate (CA:FALSE, serverAuth) for ``names`` (DNS names or IPs).

    Bad certificates for tests: ``issue_cert(ca, ["localhost"], not_after=past)`` is
    expired, ``issue_cert(ca, ["other.example"])`` has the wrong name.
    """
    if not names:
        raise ValueError("a certificate needs at least one name")
    key = _new_key(key_type)
    now = _now()
    ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(hours=1))
        .not_valid_after(not_after or now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False,
                key_encipherment=isinstance(key, rsa.RSAPrivateKey), data_encipherment=False,
                key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        # Python 3.13 verifies with VERIFY_X509_STRICT, which insists on the AKI.
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                       critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return IssuedCertificate(cert, key, ca)


def server_ssl_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """Server-side TLS context with the sandbox policy (TLS 1.2 or newer, no client certs)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx


SERVER_NAMES = ("localhost", HOST, INSECURE_HOST)


def _ensure_certificates(tls_dir: Path) -> Path:
    """Reuse ROOT/tls when it is still good; return the CA file clients must trust."""
    ca_file, ca_key = tls_dir / "ca.crt", tls_dir / "ca.key"
    leaf_file, leaf_key, chain_file = tls_dir / "server.crt", tls_dir / "server.key", tls_dir / "fullchain.crt"
    ca: CertificateAuthority | None = None
    if ca_file.is_file() and ca_key.is_file():
        try:
            ca = CertificateAuthority.load(ca_file, ca_key)
        except (ValueError, OSError):
            ca = None
        if ca is not None and ca.cert.not_valid_after_utc < _now() + dt.timedelta(days=2):
            ca = None
    if ca is None:
        ca = make_ca()
        ca.write(ca_file, ca_key)
    elif _leaf_still_good(leaf_file, leaf_key, chain_file, ca):
        return ca_file
    leaf = issue_cert(ca, SERVER_NAMES)
    leaf_file.write_bytes(leaf.cert_pem)
    leaf.write(chain_file, leaf_key)
    return ca_file


def _leaf_still_good(leaf_file: Path, key_file: Path, chain_file: Path, ca: CertificateAuthority) -> bool:
    if not (leaf_file.is_file() and key_file.is_file() and chain_file.is_file()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(leaf_file.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    have = {str(v) for v in san.get_values_for_type(x509.DNSName)}
    have |= {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    return (
        cert.issuer == ca.cert.subject
        and set(SERVER_NAMES) <= have
        and cert.not_valid_after_utc > _now() + dt.timedelta(days=1)
    )


# --------------------------------------------------------------------------- users file


@dataclass(frozen=True)
class UserRecord:
    """One line of the passwd-file: ``email:{PLAIN}password:uid:gid::home::``."""

    email: str
    password: str
    uid: int
    gid: int
    home: Path

    def line(self) -> str:
        return f"{self.email}:{{PLAIN}}{self.password}:{self.uid}:{self.gid}::{self.home}::"

    @classmethod
    def parse(cls, line: str) -> UserRecord | None:
        fields = line.rstrip("\n").split(":")
        if len(fields) < 6 or not fields[1].startswith("{PLAIN}"):
            return None
        try:
            return cls(fields[0], fields[1][len("{PLAIN}"):], int(fields[2]), int(fields[3]), Path(fields[5]))
        except ValueError:
            return None


def read_user(users_dir: Path, email: str) -> UserRecord | None:
    """The user ``email`` from ``users_dir/<email>``; None if there is no such user."""
    address = email.strip().lower()
    if not address or "/" in address or address.startswith("."):
        return None
    try:
        text = (Path(users_dir) / address).read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    for line in text.splitlines():
        record = UserRecord.parse(line)
        if record is not None and record.email == address:
            return record
    return None


def read_users(users_dir: Path) -> dict[str, UserRecord]:
    """Every user of a sandbox, by lower-case address."""
    if not Path(users_dir).is_dir():
        return {}
    records = (read_user(users_dir, p.name) for p in Path(users_dir).iterdir() if not p.name.startswith("."))
    return {r.email: r for r in records if r is not None}


def check_password(users_dir: Path, email: str, password: str) -> bool:
    """What Dovecot's passdb decides, for the SMTP server (constant-time comparison)."""
    record = read_user(users_dir, email)
    if record is None:
        return False
    return secrets.compare_digest(record.password.encode("utf-8"), password.encode("utf-8"))


def normalize_email(email: str) -> str:
    address = email.strip().lower()
    if not _EMAIL_RE.match(address) or len(address) > 200:
        raise ValueError(
            f"{email!r} is not a usable sandbox address (ASCII local@domain, no '/' or ':')"
        )
    return address


# --------------------------------------------------------------------------- SMTP server settings


@dataclass(frozen=True)
class SmtpdConfig:
    """What ``python -m deskmail.sandbox.smtpd CONFIG.json`` reads."""

    hosts: tuple[str, ...]
    submission_port: int
    smtps_port: int
    cert_file: Path
    key_file: Path
    users_dir: Path
    lmtp_socket: Path
    outbound_dir: Path
    log_file: Path
    pid_file: Path
    hostname: str = "localhost"
    data_size_limit: int = DATA_SIZE_LIMIT
    # JSON {introspection_url, client_id, client_secret, scope}, read at each bearer AUTH: absent, refused
    oauth2_file: Path | None = None

    def to_json(self) -> str:
        d: dict[str, Any] = asdict(self)
        for k, v in d.items():
            if isinstance(v, Path):
                d[k] = str(v)
        d["hosts"] = list(self.hosts)
        return json.dumps(d, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> SmtpdConfig:
        d = json.loads(text)
        paths = ("cert_file", "key_file", "users_dir", "lmtp_socket", "outbound_dir", "log_file", "pid_file")
        return cls(
            hosts=tuple(d["hosts"]),
            submission_port=int(d["submission_port"]),
            smtps_port=int(d["smtps_port"]),
            hostname=str(d.get("hostname", "localhost")),
            data_size_limit=int(d.get("data_size_limit", DATA_SIZE_LIMIT)),
            oauth2_file=Path(d["oauth2_file"]) if d.get("oauth2_file") else None,
            **{k: Path(d[k]) for k in paths},
        )


# --------------------------------------------------------------------------- process helpers


def _proc_state(pid: int) -> str | None:
    """The one-letter state from /proc/PID/stat, None when the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name may contain ") "; the state follows the *last* parenthesis.
    return raw.rpartition(")")[2].split()[0]


def _alive(pid: int) -> bool:
    # Orphans become children of PID 1, which reaps late on some hosts (the CI VM):
    # a zombie has exited, so it counts as stopped.
    state = _proc_state(pid)
    return state is not None and state not in ("Z", "X")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _find_binary(name: str, *extra_dirs: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in (*extra_dirs, "/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"):
        candidate = Path(d) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log yet)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _free_ports(count: int, hosts: Sequence[str]) -> list[int]:
    """Ports free on every host in ``hosts`` at once (Dovecot binds the same port on each)."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        for _ in range(count * 20):
            if len(ports) == count:
                break
            first = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(first)
            first.bind((hosts[0], 0))
            port = first.getsockname()[1]
            try:
                for host in hosts[1:]:
                    other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    held.append(other)
                    other.bind((host, port))
            except OSError:
                continue
            ports.append(port)
        if len(ports) < count:
            raise SandboxError(
                f"Could not find {count} free TCP ports on {', '.join(hosts)}",
                "the loopback port range is exhausted, or 127.0.0.2 is not usable on this host",
                "check `ip addr show lo` (127.0.0.0/8 must be on lo) and free some ports",
            )
        return ports
    finally:
        # Released together, so the kernel does not hand one port out twice above.
        for s in held:
            s.close()


def _mail_ids() -> tuple[int, int]:
    """uid/gid of the ``vmail`` user, created (system user, own group) if missing."""
    try:
        pw = pwd.getpwnam(MAIL_USER)
        return pw.pw_uid, pw.pw_gid
    except KeyError:
        pass
    useradd = _find_binary("useradd")
    if useradd is None:
        raise SandboxError(
            f"The system user {MAIL_USER!r} is missing and useradd is not available",
            "Dovecot refuses to run mail processes as root and needs a dedicated user",
            f"create it: `useradd --system --user-group {MAIL_USER}`",
        )
    result = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", MAIL_USER],
        capture_output=True, text=True, check=False,
    )
    try:  # a parallel start may have won the race; what counts is that the user exists
        pw = pwd.getpwnam(MAIL_USER)
    except KeyError:
        raise SandboxError(
            f"Could not create the system user {MAIL_USER!r}: {result.stderr.strip()}",
            "useradd failed",
            f"create it by hand: `useradd --system --user-group {MAIL_USER}`",
        ) from None
    return pw.pw_uid, pw.pw_gid


def _check_traversable(root: Path) -> None:
    # dovecot (auth), dovenull (login) and vmail (mail) all need to reach into ROOT.
    for parent in [root, *root.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            raise SandboxError(
                f"The sandbox directory {root} is inside {parent}, which other users cannot enter "
                f"(mode {stat.filemode(mode)})",
                "Dovecot's processes run as the users dovecot, dovenull and vmail, and must reach "
                "files under the sandbox directory",
                f"choose a directory under /tmp or /var/tmp, or run `chmod o+x {parent}`",
            )


def _imap_utf7(name: str) -> str:
    """Modified UTF-7 (RFC 3501 §5.1.3), the way Dovecot 2.3 names Maildir++ folders on disk."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


_DATE_RE = re.compile(rb"^Date:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)


def _message_time(raw: bytes) -> float | None:
    end = raw.find(b"\n\n")
    end_crlf = raw.find(b"\r\n\r\n")
    head = raw[: min(e for e in (end, end_crlf, len(raw)) if e >= 0)]
    m = _DATE_RE.search(head)
    if not m:
        return None
    try:
        return parsedate_to_datetime(m.group(1).decode("ascii", "replace").strip()).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _crlf(raw: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", raw)


# --------------------------------------------------------------------------- the sandbox


@dataclass(frozen=True)
class MailUser:
    """A sandbox account; ``password`` is a throw-away test secret."""

    email: str
    password: str


@dataclass(frozen=True)
class Sandbox:
    """A running (or stopped) pair of local mail servers under ``root``.

    Connect to :attr:`host` for normal use. :attr:`insecure_host` reaches the same
    Dovecot listeners from a *different* IP, so Dovecot shows its strict pre-TLS
    behaviour there (``LOGINDISABLED``; see the module docstring for why 127.0.0.1
    cannot show it).
    """

    root: Path
    host: str
    imaps_port: int  # IMAP, implicit TLS
    imap_port: int  # IMAP, plain greeting + STARTTLS
    pop3s_port: int  # POP3, implicit TLS
    pop3_port: int  # POP3, plain greeting + STLS
    submission_port: int  # SMTP: STARTTLS before AUTH/MAIL, AUTH required
    smtps_port: int  # SMTP, implicit TLS, AUTH required
    ca_file: Path  # PEM of the throw-away CA that signed the server certificate
    insecure_host: str = INSECURE_HOST
    run_dir: Path | None = None  # Dovecot base_dir; ROOT/run unless that path was too long

    # ---- paths

    @property
    def base_dir(self) -> Path:
        return self.run_dir or self.root / "run"

    @property
    def config_file(self) -> Path:
        return self.root / "etc" / "dovecot.conf"

    @property
    def users_dir(self) -> Path:
        return self.root / "etc" / "users.d"

    @property
    def lmtp_socket(self) -> Path:
        return self.base_dir / "lmtp"

    @property
    def outbound_dir(self) -> Path:
        return self.root / "outbound"

    @property
    def dovecot_log_file(self) -> Path:
        return self.root / "log" / "dovecot.log"

    @property
    def smtp_log_file(self) -> Path:
        return self.root / "log" / "smtp.log"

    @property
    def smtpd_config_file(self) -> Path:
        return self.root / "etc" / "smtpd.json"

    @property
    def _smtpd_pid_file(self) -> Path:
        return self.root / "pids" / "smtp.pid"

    @property
    def _dovecot_pid_file(self) -> Path:
        return self.root / "pids" / "dovecot.pid"

    @property
    def oauth2_file(self) -> Path:
        return self.root / "etc" / "smtpd-oauth2.json"

    def enable_oauth2(self, introspection_url: str, client_id: str, client_secret: str, *,
                      scope: str = "mail") -> None:
        """Accept XOAUTH2 and OAUTHBEARER (IMAP, POP3, SMTP), each token checked by RFC 7662 introspection.

        Dovecot's ``oauth2`` passdb and the SMTP server ask ``introspection_url`` (as ``client_id``); a
        token logs in when it is active, its ``username`` is the user's and its ``scope`` has ``scope``.
        Password logins go on as before. Takes effect at once (Dovecot reloads; the SMTP server reads
        its file at each AUTH).
        """
        etc = self.root / "etc"
        ext = etc / "dovecot-oauth2.conf.ext"
        _write_private(ext, (
            f"introspection_mode = post\nintrospection_url = {introspection_url}\nclient_id = {client_id}\n"
            f"client_secret = {client_secret}\nusername_attribute = username\nactive_attribute = active\n"
            f"active_value = true\nscope = {scope}\ntls_ca_cert_file = {self.ca_file}\ntimeout_msecs = 5000\n"
        ).encode())
        os.chown(ext, 0, grp.getgrnam("dovecot").gr_gid)
        os.chmod(ext, 0o640)
        # auth_cache_size stays 0: a cached token would log in after its revocation (recipe quirk 5).
        (etc / "oauth2.conf").write_text(
            "auth_mechanisms = plain login xoauth2 oauthbearer\nauth_cache_size = 0\n"
            f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {ext}\n}}\n")
        _write_private(self.oauth2_file, json.dumps({"introspection_url": introspection_url,
                                                     "client_id": client_id, "client_secret": client_secret,
                                                     "scope": scope}).encode())
        self.doveadm("reload", check=True)
        deadline = time.monotonic() + READY_TIMEOUT
        while self.doveadm("user", "readiness-probe@sandbox.invalid").returncode not in (0, 67):
            if time.monotonic() > deadline:
                raise SandboxError("Dovecot did not come back after reloading for OAuth2", _tail(self.dovecot_log_file),
                                   f"read {self.dovecot_log_file}")
            time.sleep(0.02)

    def client_ssl_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts the sandbox CA (and nothing else)."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    def outbound(self) -> list[Path]:
        """Messages for non-local recipients, oldest first."""
        return sorted(self.outbound_dir.glob("*.eml"))

    # ---- users and mail

    def add_user(self, email: str, password: str) -> None:
        """Create (or re-password) a user; usable at once for IMAP, POP3 and SMTP."""
        address = normalize_email(email)
        if not password or any(c in password for c in ":\r\n\0"):
            raise ValueError("sandbox passwords must be non-empty and contain no ':', CR, LF or NUL")
        uid, gid = _mail_ids()
        local, _, domain = address.partition("@")
        home = self.root / "mail" / domain / local
        home.parent.mkdir(parents=True, exist_ok=True)
        home.mkdir(mode=0o700, exist_ok=True)
        os.chown(home, uid, gid)
        record = UserRecord(address, password, uid, gid, home)
        old = read_user(self.users_dir, address)
        if old == record:
            return
        self._write_user(record)
        if old is not None:
            # Dovecot may have looked at this file during this very second and will not
            # look again before the next one (see "Why one passwd-file per user").
            time.sleep(1.02 - time.time() % 1.0)

    def create_user(self, hint: str = "user", domain: str = "example.test") -> MailUser:
        """A fresh account with a unique address (``hint-<8 hex>@domain``) and a random password."""
        local = re.sub(r"[^a-z0-9]+", "-", hint.lower()).strip("-")[:40] or "user"
        user = MailUser(f"{local}-{secrets.token_hex(4)}@{domain}", secrets.token_urlsafe(15))
        self.add_user(user.email, user.password)
        return user

    def _write_user(self, record: UserRecord) -> None:
        dovecot_gid = grp.getgrnam("dovecot").gr_gid
        self.users_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
        os.chown(self.users_dir, 0, dovecot_gid)
        path = self.users_dir / record.email
        try:
            old = path.stat()
        except FileNotFoundError:
            old = None
        tmp = self.users_dir / f".{record.email}.{secrets.token_hex(4)}.tmp"
        tmp.write_text(record.line() + "\n", encoding="utf-8")
        # Dovecot's auth process runs as the dovecot user (recipe pitfall 1).
        os.chown(tmp, 0, dovecot_gid)
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
        new = path.stat()
        # Dovecot re-reads a passwd-file when its mtime (whole seconds) or size changes; a
        # same-length password change within one second would otherwise go unnoticed.
        if old is not None and old.st_size == new.st_size and int(old.st_mtime) == int(new.st_mtime):
            os.utime(path, (old.st_mtime + 1, old.st_mtime + 1))

    def user(self, email: str) -> UserRecord:
        record = read_user(self.users_dir, email)
        if record is None:
            raise SandboxError(
                f"There is no sandbox user {email}",
                "the address was never added with add_user",
                "add it first: `sandbox.add_user(email, password)`",
            )
        return record

    def maildir(self, email: str, folder: str = "INBOX") -> Path:
        """The Maildir directory of ``folder`` (Maildir++ layout, '/' as hierarchy separator)."""
        base = self.user(email).home / "Maildir"
        if folder.upper() == "INBOX":
            return base
        parts = folder.split("/")
        if any(not p or "." in p for p in parts):
            raise ValueError(f"folder name {folder!r}: no empty parts, and no '.' (the on-disk separator)")
        return base / ("." + ".".join(_imap_utf7(p) for p in parts))

    def deliver(self, recipient: str, raw: bytes) -> None:
        """Deliver one message into the recipient's INBOX through Dovecot's LMTP socket."""
        address = normalize_email(recipient)
        sender = parseaddr(str(BytesHeaderParser().parsebytes(raw).get("From", "")))[1]
        if not sender.isascii() or "@" not in sender:
            sender = "sandbox@localhost"
        try:
            with smtplib.LMTP(str(self.lmtp_socket), timeout=30) as lmtp:
                lmtp.sendmail(sender, [address], _crlf(raw))
        except (smtplib.SMTPException, OSError) as exc:
            raise SandboxError(
                f"Dovecot LMTP did not take a message for {address} ({exc})",
                "the sandbox is not running, or the recipient is not a sandbox user",
                f"check is_running() and add_user(); details in {self.dovecot_log_file}",
            ) from exc

    def fill_maildir(
        self, email: str, messages: Iterable[bytes], folder: str = "INBOX", *, flags: str = ""
    ) -> int:
        """Write messages straight into a Maildir, then make Dovecot index them; returns the count.

        About 5x faster than LMTP or APPEND, and byte-exact (no added headers). File names
        carry ``,S=<size>,W=<size with CRLF>`` so Dovecot need not read the files;
        ``flags`` are Maildir info letters, e.g. "S" (\\Seen) or "FS". The mtime, hence
        INTERNALDATE, is taken from the Date header. UIDs follow the order given.
        """
        record = self.user(email)
        folder_dir = self.maildir(email, folder)
        maildir_root = record.home / "Maildir"
        flag_letters = "".join(sorted(set(flags)))
        if not re.fullmatch(r"[A-Za-z]*", flag_letters):
            raise ValueError(f"Maildir flags must be letters, got {flags!r}")
        for d in (record.home, maildir_root, folder_dir):
            d.mkdir(mode=0o700, exist_ok=True)
            os.chown(d, record.uid, record.gid)
        for sub in ("cur", "new", "tmp"):
            (folder_dir / sub).mkdir(mode=0o700, exist_ok=True)
            os.chown(folder_dir / sub, record.uid, record.gid)
        if folder_dir != maildir_root:
            marker = folder_dir / "maildirfolder"
            marker.touch()
            os.chown(marker, record.uid, record.gid)
        # One prefix per batch; the zero-padded counter keeps the names in the given order.
        prefix = f"{int(time.time())}.M{secrets.token_hex(4)}P{os.getpid()}Q"
        count = 0
        for count, raw in enumerate(messages, start=1):
            size = len(raw)
            crlf_size = size + raw.count(b"\n") - raw.count(b"\r\n")
            name = f"{prefix}{count:08d}.sandbox,S={size},W={crlf_size}:2,{flag_letters}"
            tmp = folder_dir / "tmp" / name
            tmp.write_bytes(raw)
            os.chown(tmp, record.uid, record.gid)
            when = _message_time(raw)
            if when is not None:
                os.utime(tmp, (when, when))
            os.rename(tmp, folder_dir / "cur" / name)
        mailbox = "INBOX" if folder.upper() == "INBOX" else folder
        self.doveadm("force-resync", "-u", record.email, mailbox, check=True)
        if mailbox != "INBOX":
            self.doveadm("mailbox", "subscribe", "-u", record.email, mailbox, check=True)
        return count

    def doveadm(self, *args: str, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run ``doveadm -c <this config> ARGS`` (never the system instance)."""
        doveadm = _find_binary("doveadm") or "doveadm"
        result = subprocess.run(
            [doveadm, "-c", str(self.config_file), *args],
            capture_output=True, text=True, check=False, timeout=timeout, stdin=subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise SandboxError(
                f"`doveadm {' '.join(args)}` failed with exit status {result.returncode}: "
                f"{(result.stderr or result.stdout).strip()}",
                "the sandbox is not running, or the user or mailbox does not exist",
                f"see {self.dovecot_log_file}",
            )
        return result

    # ---- logs

    def smtp_log(self) -> str:
        try:
            return self.smtp_log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def dovecot_log(self) -> str:
        try:
            return self.dovecot_log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # ---- processes

    def _dovecot_pid(self) -> int | None:
        pid = _read_pid(self.base_dir / "master.pid") or _read_pid(self._dovecot_pid_file)
        # Guard against PID reuse: only signal the master started with *this* config.
        if pid is not None and "dovecot" in _cmdline(pid) and str(self.config_file) in _cmdline(pid):
            return pid
        return None

    def _smtpd_pid(self) -> int | None:
        pid = _read_pid(self._smtpd_pid_file)
        if pid is not None and str(self.smtpd_config_file) in _cmdline(pid):
            return pid
        return None

    def is_running(self) -> bool:
        """Both servers are up (processes alive; not a check of every port)."""
        dovecot, smtpd = self._dovecot_pid(), self._smtpd_pid()
        return dovecot is not None and _alive(dovecot) and smtpd is not None and _alive(smtpd)

    def stop(self) -> None:
        """SIGTERM both servers and wait until they have exited (SIGKILL after 10 s)."""
        pids = [p for p in (self._dovecot_pid(), self._smtpd_pid()) if p is not None and _alive(p)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pids, STOP_TIMEOUT):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            _wait_gone(pids, 5.0)
        for path in (self._smtpd_pid_file, self._dovecot_pid_file):
            path.unlink(missing_ok=True)
        if self.run_dir is not None and self.run_dir != self.root / "run":
            shutil.rmtree(self.run_dir, ignore_errors=True)

    # ---- state

    def to_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "root": str(self.root),
            "host": self.host,
            "insecure_host": self.insecure_host,
            "imaps_port": self.imaps_port,
            "imap_port": self.imap_port,
            "pop3s_port": self.pop3s_port,
            "pop3_port": self.pop3_port,
            "submission_port": self.submission_port,
            "smtps_port": self.smtps_port,
            "ca_file": str(self.ca_file),
            "run_dir": str(self.base_dir),
        }


def _wait_gone(pids: Sequence[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def load_sandbox(root: Path) -> Sandbox | None:
    """The sandbox last started in ``root`` (running or not), or None if there never was one."""
    state_file = Path(root).absolute() / "state.json"
    try:
        d = json.loads(state_file.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SandboxError(
            f"The sandbox state file {state_file} is unreadable ({exc})",
            "it was damaged or written by an incompatible version",
            f"stop any leftover servers by hand and delete {state_file}",
        ) from exc
    return Sandbox(
        root=Path(d["root"]),
        host=d["host"],
        insecure_host=d.get("insecure_host", INSECURE_HOST),
        imaps_port=d["imaps_port"],
        imap_port=d["imap_port"],
        pop3s_port=d["pop3s_port"],
        pop3_port=d["pop3_port"],
        submission_port=d["submission_port"],
        smtps_port=d["smtps_port"],
        ca_file=Path(d["ca_file"]),
        run_dir=Path(d["run_dir"]),
    )


# --------------------------------------------------------------------------- starting


def _dovecot_conf(sb: Sandbox, uid: int, gid: int) -> str:
    root = sb.root
    tls = root / "tls"
    mailboxes = "\n".join(
        f"  mailbox {name} {{\n    special_use = {flag}\n    auto = subscribe\n  }}"
        for name, flag in _SPECIAL_FOLDERS
    )
    dh = f"ssl_dh = <{_DH_FILE}\n" if _DH_FILE.is_file() else ""
    users = sb.users_dir / "%u"  # one file per user: see the module docstring
    instance = hashlib.sha256(str(root).encode()).hexdigest()[:10]
    return f"""\
# Written by deskmail.sandbox at every start; edits are lost.
protocols = imap pop3 lmtp
listen = {sb.host}, {sb.insecure_host}
base_dir = {sb.base_dir}
state_dir = {root / "state"}
instance_name = deskmail-{instance}
log_path = {sb.dovecot_log_file}
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}

ssl = required
ssl_cert = <{tls / "fullchain.crt"}
ssl_key = <{tls / "server.key"}
ssl_min_protocol = TLSv1.2
{dh}disable_plaintext_auth = yes
# Must stay empty: trusted networks count as secured and would hide LOGINDISABLED.
login_trusted_networks =

auth_mechanisms = plain login
auth_username_format = %Lu
auth_verbose = yes
# Tests try wrong passwords on purpose; the default 2 s delay would only slow them down.
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {users}
  mechanisms = plain login
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {users}
}}

mail_location = maildir:~/Maildir
mail_max_userip_connections = 50
namespace inbox {{
  inbox = yes
  separator = /
{mailboxes}
}}

protocol imap {{
  mail_max_userip_connections = 50
}}
protocol pop3 {{
  mail_max_userip_connections = 50
}}
protocol lmtp {{
  postmaster_address = postmaster@localhost
}}

service imap-login {{
  inet_listener imap {{
    port = {sb.imap_port}
  }}
  inet_listener imaps {{
    port = {sb.imaps_port}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {sb.pop3_port}
  }}
  inet_listener pop3s {{
    port = {sb.pop3s_port}
    ssl = yes
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0660
  }}
}}
# Auth penalty: after a failed login Dovecot delays the next attempts from that IP (4.5 s
# each, measured) -- all tests come from 127.0.0.1. Auth turns the penalty off when it
# cannot connect to this socket.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-urlauth-login {{
  inet_listener imap-urlauth {{
    port = 0
  }}
}}
# Written by Sandbox.enable_oauth2: XOAUTH2/OAUTHBEARER checked at an authorization server.
!include_try {root / "etc" / "oauth2.conf"}
!include_try {root / "etc" / "local.conf"}
"""


def _preflight() -> str:
    if os.geteuid() != 0:
        raise SandboxError(
            "The sandbox mail servers must be started as root",
            "Dovecot switches to its own users (dovecot, dovenull, vmail) for each process",
            "run the tests or `deskmail sandbox start` as root (as CI does), e.g. in a container",
        )
    dovecot = _find_binary("dovecot")
    missing = [] if dovecot else ["dovecot-core"]
    if _DOVECOT_LIBEXEC.is_dir():
        missing += [pkg for binary, pkg in (("imap", "dovecot-imapd"), ("pop3", "dovecot-pop3d"),
                                            ("lmtp", "dovecot-lmtpd"))
                    if not (_DOVECOT_LIBEXEC / binary).exists()]
    if dovecot is None or missing:
        raise SandboxError(
            "Dovecot is not installed (needed for the local IMAP/POP3 test servers)",
            f"missing package(s): {', '.join(missing)}",
            "apt-get install -y --no-install-recommends dovecot-imapd dovecot-pop3d dovecot-lmtpd",
        )
    return dovecot


def _run_dir_for(root: Path) -> Path:
    run = root / "run"
    if len(str(run)) <= _MAX_BASE_DIR:
        return run
    return Path("/tmp") / f"dm-{hashlib.sha256(str(root).encode()).hexdigest()[:12]}"


def start_sandbox(root: Path, users: Mapping[str, str] = _NO_USERS) -> Sandbox:
    """Start Dovecot and the SMTP server under ``root``; returns once every port answers.

    Reuses the CA and keys already in ``root/tls``. If a sandbox from ``root`` is still
    running it is returned as is (with ``users`` added); half-dead leftovers are stopped
    and replaced. Raises :class:`SandboxError` with the log file's tail on failure.
    """
    started = time.monotonic()
    dovecot = _preflight()
    root = Path(root).absolute()
    previous = load_sandbox(root)
    if previous is not None:
        if previous.is_running():
            for email, password in users.items():
                previous.add_user(email, password)
            return previous
        previous.stop()

    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    _check_traversable(root)
    for sub in ("etc", "tls", "mail", "state", "log", "pids", "outbound"):
        (root / sub).mkdir(mode=0o755, exist_ok=True)
    run_dir = _run_dir_for(root)
    run_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    uid, gid = _mail_ids()
    os.chown(root / "mail", 0, 0)
    ca_file = _ensure_certificates(root / "tls")

    last_error: SandboxError | None = None
    for _attempt in range(3):
        ports = _free_ports(6, (HOST, INSECURE_HOST))
        sb = Sandbox(
            root=root, host=HOST, insecure_host=INSECURE_HOST,
            imaps_port=ports[0], imap_port=ports[1], pop3s_port=ports[2], pop3_port=ports[3],
            submission_port=ports[4], smtps_port=ports[5], ca_file=ca_file, run_dir=run_dir,
        )
        sb.users_dir.mkdir(mode=0o750, exist_ok=True)
        os.chown(sb.users_dir, 0, grp.getgrnam("dovecot").gr_gid)
        for email, password in users.items():
            sb.add_user(email, password)
        try:
            _launch(sb, dovecot, uid, gid)
            _wait_ready(sb, started + READY_TIMEOUT, probe=next(iter(users), None))
        except _PortTaken as exc:
            # Someone grabbed a port between picking and binding; pick again.
            sb.stop()
            last_error = exc.error
            continue
        except BaseException:
            sb.stop()
            raise
        (root / "state.json").write_text(json.dumps(sb.to_state(), indent=2) + "\n")
        return sb
    assert last_error is not None
    raise last_error


class _PortTaken(Exception):
    def __init__(self, error: SandboxError) -> None:
        super().__init__(str(error))
        self.error = error


def _launch(sb: Sandbox, dovecot: str, uid: int, gid: int) -> None:
    sb.config_file.write_text(_dovecot_conf(sb, uid, gid))
    smtpd = SmtpdConfig(
        hosts=(sb.host, sb.insecure_host),
        submission_port=sb.submission_port,
        smtps_port=sb.smtps_port,
        cert_file=sb.root / "tls" / "fullchain.crt",
        key_file=sb.root / "tls" / "server.key",
        users_dir=sb.users_dir,
        lmtp_socket=sb.lmtp_socket,
        outbound_dir=sb.outbound_dir,
        log_file=sb.smtp_log_file,
        pid_file=sb._smtpd_pid_file,
        oauth2_file=sb.oauth2_file,
    )
    sb.smtpd_config_file.write_text(smtpd.to_json())
    dovecot_log_size = sb.dovecot_log_file.stat().st_size if sb.dovecot_log_file.exists() else 0
    smtp_log_size = sb.smtp_log_file.stat().st_size if sb.smtp_log_file.exists() else 0
    # Both daemonize and return; their output goes to the log files, never to a pipe of
    # ours (Dovecot keeps the caller's stderr open, and a pipe would never reach EOF).
    with open(sb.dovecot_log_file, "ab") as dlog, open(sb.smtp_log_file, "ab") as slog:
        procs = [
            ("Dovecot", sb.dovecot_log_file, dovecot_log_size, subprocess.Popen(
                [dovecot, "-c", str(sb.config_file)], stdin=subprocess.DEVNULL, stdout=dlog,
                stderr=subprocess.STDOUT)),
            ("The SMTP server", sb.smtp_log_file, smtp_log_size, subprocess.Popen(
                [sys.executable, "-m", "deskmail.sandbox.smtpd", str(sb.smtpd_config_file)],
                stdin=subprocess.DEVNULL, stdout=slog, stderr=subprocess.STDOUT)),
        ]
    failures: list[tuple[str, Path, str]] = []
    for what, log, offset, proc in procs:
        try:
            status = proc.wait(timeout=READY_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            status = -1
            with open(log, "ab") as f:
                f.write(f"\n(did not detach within {READY_TIMEOUT:.0f} s; killed)\n".encode())
        if status != 0:
            with open(log, "rb") as f:
                f.seek(offset)
                failures.append((what, log, f.read().decode(errors="replace").strip()))
    if not failures:
        with contextlib.suppress(OSError):
            pid = _read_pid(sb.base_dir / "master.pid")
            if pid is not None:
                sb._dovecot_pid_file.write_text(f"{pid}\n")
        return
    what, log, text = failures[0]
    error = SandboxError(
        f"{what} did not start (see {log})",
        text[-1500:] or "it exited without saying why",
        f"read {log}; check that Dovecot's packages are installed and no other process holds the ports",
    )
    if all("Address already in use" in t for _, _, t in failures):
        raise _PortTaken(error)
    raise error


def _wait_ready(sb: Sandbox, deadline: float, probe: str | None) -> None:
    ports = [sb.imaps_port, sb.imap_port, sb.pop3s_port, sb.pop3_port, sb.submission_port, sb.smtps_port]
    pending = [(h, p) for p in ports for h in (sb.host, sb.insecure_host)]
    problem = ""
    while True:
        pending = [(h, p) for h, p in pending if not _port_open(h, p)]
        if not pending:
            # Open ports alone prove little: with an unreadable users file every port
            # answers and every login fails (recipe pitfall 1). Ask auth itself.
            who = probe or "readiness-probe@sandbox.invalid"
            result = sb.doveadm("user", who, timeout=max(1.0, deadline - time.monotonic()))
            if result.returncode == 0 or (probe is None and result.returncode == 67):
                return
            problem = f"`doveadm user {who}` exited {result.returncode}: {result.stderr.strip()}"
        else:
            problem = "not accepting connections: " + ", ".join(f"{h}:{p}" for h, p in pending)
        if time.monotonic() > deadline:
            raise SandboxError(
                f"The sandbox mail servers did not become ready within {READY_TIMEOUT:.0f} s ({problem})",
                "a server failed after starting; the log says why:\n" + _tail(sb.dovecot_log_file)
                + "\n" + _tail(sb.smtp_log_file, 5),
                f"read {sb.dovecot_log_file} and {sb.smtp_log_file}",
            )
        time.sleep(0.02)


# --------------------------------------------------------------------------- demo content

# A 1x1 transparent PNG: a real image attachment without shipping a binary file.
_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def sample_messages(recipient: str) -> list[bytes]:
    """A few realistic messages for ``recipient``: plain, HTML, a reply, non-ASCII, attachments.

    CRLF line ends, distinct Message-IDs on every call, dates spread over the last days.
    """
    now = _now().astimezone()
    messages: list[EmailMessage] = []

    def new(sender: str, subject: str, days_ago: float) -> EmailMessage:
        msg = EmailMessage(policy=SMTP_POLICY)
        msg["From"] = sender
        msg["To"] = recipient
        msg["Subject"] = subject
        msg["Date"] = format_datetime(now - dt.timedelta(days=days_ago))
        msg["Message-ID"] = make_msgid(domain="sandbox.localhost")
        messages.append(msg)
        return msg

    welcome = new("Deskmail Sandbox <sandbox@localhost>", "Welcome to the deskmail sandbox", 3)
    welcome.set_content(
        "Hello,\n\nthis mailbox lives on a Dovecot server running on your own machine.\n"
        "Nothing you send from here leaves the computer: mail to other addresses is kept\n"
        "in the sandbox's outbound folder.\n\n-- \nThe deskmail sandbox\n"
    )

    news = new("Lighthouse Weekly <news@lighthouse.example>", "This week: tides, lamps and logbooks", 2)
    news.set_content("Tides, lamps and logbooks.\n\nRead the full issue in an HTML-capable client.\n")
    news.add_alternative(
        "<html><body><h1>Lighthouse Weekly</h1><p>Tides, <b>lamps</b> and logbooks.</p>"
        '<p><a href="https://lighthouse.example/issue/42">Read online</a></p></body></html>\n',
        subtype="html",
    )
    news["List-Id"] = "Lighthouse Weekly <weekly.lighthouse.example>"
    news["List-Unsubscribe"] = "<mailto:unsubscribe@lighthouse.example>"

    report = new("Ada Keeper <ada@harbour.example>", "Quarterly report (figures attached)", 1.5)
    report.set_content("Hi,\n\nthe figures for the quarter are attached, plus the chart.\n\nAda\n")
    report.add_attachment(
        b"month,visitors\n2024-01,1200\n2024-02,1350\n2024-03,1580\n",
        maintype="text", subtype="csv", filename="figures-q1.csv",
    )
    report.add_attachment(_PNG, maintype="image", subtype="png", filename="chart.png")

    reply = new("Ada Keeper <ada@harbour.example>", "Re: Welcome to the deskmail sandbox", 1)
    reply["In-Reply-To"] = welcome["Message-ID"]
    reply["References"] = welcome["Message-ID"]
    reply.set_content("Thanks! Replying to check that threads look right.\n\n> Hello,\n> this mailbox lives...\n")

    greeting = new("Jürgen Müller <juergen@muenchen.example>", "Grüße aus München 🥨", 0.2)
    greeting.set_content("Servus!\n\nEin Gruß mit Umlauten (äöüß) und einem Emoji: 🏔️\n\nJürgen\n")

    return [bytes(m) for m in messages]

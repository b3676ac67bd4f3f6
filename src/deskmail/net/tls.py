"""The one TLS policy every connection goes through.

Python's imaplib/poplib/smtplib do *not* verify certificates unless handed a
context, so nothing in deskmail creates a socket-level TLS context anywhere
else: call :func:`client_context`.

Policy: certificates verified (system store, plus an optional CA file named by
the account), host names checked, TLS 1.2 or newer.
"""

from __future__ import annotations

import os
import ssl
import sys
import time
from typing import TYPE_CHECKING

from deskmail.codes import Code
from deskmail.errors import CertificateError, ConfigError

if TYPE_CHECKING:
    from pathlib import Path


def _load_system_trust(ctx: ssl.SSLContext) -> None:
    """The system's trusted CAs: the same set ``create_default_context`` loads, loaded lazily on Linux.

    OpenSSL's default paths are a bundle file, parsed whole at once (~15 ms for Debian's
    ~140 CAs, a third of a no-change sync), and a hashed directory, from which it reads
    only the CA a server's chain names. Where that directory is populated (Debian's
    update-ca-certificates writes both from the same CA list), it alone is used. An
    SSL_CERT_FILE naming any other bundle, or an empty directory, falls back to the default.
    """
    paths = ssl.get_default_verify_paths()
    cafile = os.environ.get(paths.openssl_cafile_env)
    custom_file = bool(cafile) and os.path.realpath(str(cafile)) != os.path.realpath(paths.openssl_cafile)
    capath = paths.capath  # SSL_CERT_DIR if set, else OpenSSL's default directory
    if sys.platform.startswith("linux") and not custom_file and capath and _has_hashed_certs(capath):
        ctx.load_verify_locations(capath=capath)
    else:
        ctx.load_default_certs()


def _has_hashed_certs(directory: str) -> bool:
    try:
        with os.scandir(directory) as entries:
            # c_rehash names: 8 hex digits, a dot, a number ("4042bcee.0")
            return any(len(e.name) >= 10 and e.name[8] == "." and e.name[9:].isdigit() for e in entries)
    except OSError:
        return False


def client_context(ca_file: str | Path | None = None) -> ssl.SSLContext:
    # PROTOCOL_TLS_CLIENT turns on certificate and host-name checking, as create_default_context does.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _load_system_trust(ctx)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file:
        # os.path, not pathlib: this runs in the early connection thread before pathlib is imported.
        path = os.path.expanduser(ca_file)
        if not os.path.isfile(path):
            raise ConfigError(
                f"The CA file {path} does not exist",
                "the account's ca_file setting points to a missing file",
                "fix the ca_file path in the account's settings, or remove it",
            )
        try:
            ctx.load_verify_locations(cafile=path)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"The CA file {path} could not be read as PEM certificates ({exc})",
                "the file is not a PEM certificate",
                "point ca_file at the server's CA certificate in PEM format",
            ) from exc
    return ctx


def certificate_error(exc: ssl.SSLError, host: str, port: int) -> CertificateError:
    """Translate a failed verification into words a person can act on."""
    detail = getattr(exc, "verify_message", "") or str(exc)
    code = getattr(exc, "verify_code", 0)
    where = f"{host}:{port}"
    if code == 9 or "not yet valid" in detail:
        # A certificate that starts in the future is almost never the server's fault: this computer's
        # clock is behind (a dead CMOS battery, a VM restored from a snapshot, a wrong time zone year).
        return CertificateError(
            f"The certificate of {where} is not valid yet by this computer's clock "
            f"({time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC)",
            "this computer's date and time are wrong (behind), so every certificate looks like it "
            "starts in the future",
            "check your clock: set this computer's date and time correctly (turn on automatic time), "
            "then try again. Do not send your password until it is fixed",
            code=Code.CLOCK_WRONG, host=host, port=port,
        )
    if code == 10 or "expired" in detail:
        return CertificateError(
            f"The certificate of {where} has expired",
            "the server's certificate is out of date, or this computer's clock is wrong",
            "check the date and time of this computer; if they are right, the provider must renew "
            "its certificate. Do not send your password until it is fixed",
            code=Code.CERTIFICATE_EXPIRED, host=host, port=port,
        )
    # 62 host name, 64 IP address (a server given by its address) mismatch; 63 is e-mail (never here).
    if code in (62, 63, 64) or "mismatch" in detail or "doesn't match" in detail:
        return CertificateError(
            f"The certificate of {where} is not valid for the name {host}",
            "the server name in the settings is not the one the certificate was issued for, "
            "or the connection is being intercepted",
            "use the exact server name from your provider's documentation",
            code=Code.CERTIFICATE_HOSTNAME_MISMATCH, host=host, port=port,
        )
    return CertificateError(
        f"The certificate of {where} is not trusted ({detail})",
        "the server uses a self-signed or private certificate, or antivirus / a proxy "
        "is intercepting encrypted connections",
        "if this is your own server, give deskmail its CA certificate (the account's ca_file); if an "
        "antivirus scans mail, turn off its e-mail (SSL) scanning for this program",
        code=Code.CERTIFICATE_UNTRUSTED, host=host, port=port,
    )

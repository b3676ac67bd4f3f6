"""Look at a server over extra connections that never carry credentials.

The checks in :mod:`deskmail.doctor.checks` talk to a server the way deskmail
will (verified TLS, then a login). When that fails, the useful answer is
usually one connection away: *who* issued the certificate that did not verify
(an antivirus?), *what* the port says when spoken to in plain text (a STARTTLS
port configured as SSL/TLS?), whether it answers a TLS handshake at all (an
SSL/TLS port configured as STARTTLS?), which old TLS version it insists on.
:class:`Inspector` opens those connections with :func:`inspection_context`
(no verification: it only looks) and turns what it sees into diagnoses.
"""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from typing import Any

from deskmail.doctor.certinfo import CertInfo, parse_certificate
from deskmail.doctor.context import (
    DEFAULT_ALTERNATIVES,
    EXPIRY_WARNING_DAYS,
    GREETING_PREFIXES,
    VERSION_REASONS,
    Diagnosis,
    Run,
    Target,
    client_for,
    inspection_context,
    legacy_context,
)
from deskmail.doctor.interception import interceptor_name
from deskmail.doctor.report import Code, Status, Step
from deskmail.doctor.wire import Capabilities, Wire, WireError, display
from deskmail.model import Security, ServerSettings


class Inspector:
    """Probes and TLS diagnoses for one server."""

    def __init__(self, run: Run, settings: ServerSettings) -> None:
        self.run = run
        self.timeouts = run.timeouts
        self.account = run.account
        self.settings = settings
        self.protocol = settings.protocol

    def detect_mode(self, address: str, port: int, hint: Security) -> Security | None:
        """Which security a port actually speaks: SSL, STARTTLS, NONE, or None (no mail service)."""
        order = (True, False) if hint is Security.SSL else (False, True)
        for try_tls in order:
            if try_tls:
                if self.speaks_tls(address, port):
                    return Security.SSL
            else:
                plain = self.plain_greeting(address, port, self.timeouts.sniff)
                if plain is not None:
                    return Security.STARTTLS if plain.starttls else Security.NONE
        return None

    def speaks_tls(self, address: str, port: int) -> bool:
        try:
            wire = Wire.connect(address, port, self.settings.host, self.run.limit(self.timeouts.connect))
        except OSError:
            return False
        try:
            wire.start_tls(inspection_context(self.account.ca_file), self.run.limit(self.timeouts.tls))
            return True
        except (ssl.SSLError, WireError, OSError):
            return False
        finally:
            wire.close()

    def plain_greeting(self, address: str, port: int, wait: float) -> Capabilities | None:
        """Connect in clear; if a greeting of this protocol comes, return its capabilities."""
        try:
            wire = Wire.connect(address, port, self.settings.host, self.run.limit(self.timeouts.connect))
        except OSError:
            return None
        try:
            first = wire.sniff(self.run.limit(wait))
            text = first.decode("latin-1")
            if not text.startswith(GREETING_PREFIXES[self.protocol]):
                return None
            client = client_for(self.protocol, wire, self.run.limit(self.timeouts.command))
            client.greeting(self.run.limit(self.timeouts.command))
            try:
                return client.capabilities()
            except WireError:
                return Capabilities()
        except WireError:
            return None
        finally:
            wire.close()

    def peek_certificate(self, target: Target) -> CertInfo | None:
        """The server's certificate, read over an unverified connection (diagnosis only)."""
        try:
            wire = Wire.connect(target.address, target.port, target.host, self.run.limit(self.timeouts.connect))
        except OSError:
            return None
        try:
            if target.security is not Security.SSL:
                client = client_for(self.protocol, wire, self.run.limit(self.timeouts.command))
                client.greeting(self.run.limit(self.timeouts.greeting))
                client.capabilities()
                if not client.starttls().ok:
                    return None
            wire.start_tls(inspection_context(self.account.ca_file), self.run.limit(self.timeouts.tls))
            return parse_certificate(wire.peer_cert_der) if wire.peer_cert_der else None
        except (ssl.SSLError, WireError, OSError, ValueError):
            return None
        finally:
            wire.close()

    def legacy_version(self, target: Target) -> str:
        try:
            wire = Wire.connect(target.address, target.port, target.host, self.run.limit(self.timeouts.connect))
        except OSError:
            return ""
        try:
            if target.security is not Security.SSL:
                client = client_for(self.protocol, wire, self.run.limit(self.timeouts.command))
                client.greeting(self.run.limit(self.timeouts.greeting))
                client.capabilities()
                if not client.starttls().ok:
                    return ""
            wire.start_tls(legacy_context(), self.run.limit(self.timeouts.tls))
            return wire.tls_version
        except (ssl.SSLError, WireError, OSError):
            return ""
        finally:
            wire.close()

    def mode_mismatch_expected_ssl(self, target: Target, evidence: str) -> Diagnosis:
        return Diagnosis(
            Step.TLS,
            Code.TLS_MODE_MISMATCH,
            f"{target.where} expects SSL/TLS from the first byte, but the account uses "
            f"{target.security.label}: {evidence}",
            "the encryption setting does not match the port (SSL/TLS ports: 993, 995, 465)",
            f"change the encryption to SSL/TLS and keep port {target.port}",
            data={"port": target.port, "security": Security.SSL.value},
        )

    def tls_success(self, target: Target, wire: Wire) -> Diagnosis:
        """The TLS finding for a verified connection: ok, interception or expiring."""
        version = wire.tls_version or "TLS"
        cert: CertInfo | None = None
        try:
            cert = parse_certificate(wire.peer_cert_der) if wire.peer_cert_der else None
        except ValueError:
            cert = None
        data: dict[str, Any] = {"tls_version": version, "port": target.port, "security": target.security.value}
        if cert is None:
            return Diagnosis(Step.TLS, Code.OK, f"Encrypted with {version}", status=Status.OK, data=data)
        data.update(
            issuer=cert.issuer_text, not_after=cert.not_after.isoformat(), sha256=cert.sha256,
            names=list(cert.names()),
        )
        product = interceptor_name(cert)
        if product is not None:
            return Diagnosis(
                Step.TLS,
                Code.TLS_INTERCEPTION,
                f"Encrypted, but the certificate of {target.where} was issued by “{cert.issuer_text}”: "
                f"{product} is inspecting your mail connections",
                f"{product}'s mail protection decrypts mail traffic to scan it and re-encrypts it with "
                "its own certificate; deskmail then cannot see the server's real certificate",
                f"in {product}'s settings, turn off scanning of encrypted mail (e.g. 'Mail Shield' / "
                "'Scan SSL connections') or add an exception for deskmail",
                status=Status.WARNING,
                data={**data, "product": product},
            )
        days_left = (cert.not_after - datetime.now(UTC)).days
        if days_left < EXPIRY_WARNING_DAYS:
            return Diagnosis(
                Step.TLS,
                Code.CERTIFICATE_EXPIRING,
                f"Encrypted with {version}, but the certificate of {target.where} expires on "
                f"{cert.not_after:%Y-%m-%d} ({max(days_left, 0)} days)",
                "the provider has not renewed its certificate yet",
                "nothing to do now; if connections fail after that date, tell the provider",
                status=Status.WARNING,
                data=data,
            )
        return Diagnosis(
            Step.TLS,
            Code.OK,
            f"Encrypted with {version}; certificate issued by {cert.issuer_text}, valid until "
            f"{cert.not_after:%Y-%m-%d}",
            status=Status.OK,
            data=data,
        )

    def certificate_diagnosis(self, target: Target, exc: ssl.SSLCertVerificationError) -> Diagnosis:
        cert = self.peek_certificate(target)
        code = exc.verify_code
        detail = exc.verify_message or str(exc)
        where = target.where
        data: dict[str, Any] = {"verify_code": code, "verify_message": detail}
        if cert is not None:
            data.update(issuer=cert.issuer_text, names=list(cert.names()),
                        not_after=cert.not_after.isoformat(), sha256=cert.sha256)
        product = interceptor_name(cert) if cert is not None else None
        provider = self.run.provider
        if (
            provider is not None
            and provider.local_bridge
            and target.host in ("127.0.0.1", "::1", "localhost")
            and code in (2, 18, 19, 20, 21)
        ):
            # A bridge on this computer makes its own certificate: expected, and trusted
            # only when the user hands it over; never "interception".
            return Diagnosis(
                Step.TLS,
                Code.CERTIFICATE_SELF_SIGNED,
                f"The certificate of {where} is {provider.name} Bridge's own (self-signed), which deskmail "
                "trusts only when it is given to it",
                f"{provider.name} Bridge runs on this computer and makes its own certificate; no public "
                "authority vouches for it",
                "export the certificate from Bridge's settings and give it as this account's certificate "
                "file (ca_file): deskmail then trusts it for this account's connections to this computer "
                "only. deskmail did not send your password",
                data={**data, "bridge": True},
            )
        provider_host = provider is not None and target.host.lower() in provider.hosts()
        if product is None and provider_host and code in (2, 18, 19, 20, 21) and provider is not None:
            product = "a program or proxy on this network"
            data["provider"] = provider.name
        if product is not None:
            issuer = cert.issuer_text if cert is not None else "an unknown issuer"
            expected = (
                f" {provider.name}'s servers use certificates from a public authority." if provider else ""
            )
            return Diagnosis(
                Step.TLS,
                Code.TLS_INTERCEPTION,
                f"The certificate of {where} was issued by “{issuer}”, not by a public certificate "
                f"authority: {product} is intercepting your mail connections.{expected}",
                "antivirus mail protection (or a company proxy) decrypts mail traffic to inspect it "
                "and presents its own certificate, which this program does not trust",
                (
                    f"in {product}'s settings, turn off scanning of encrypted mail (e.g. 'Mail Shield' / "
                    "'Scan SSL connections') or add an exception for deskmail; on a company network, ask IT"
                    if not product.startswith("a program")
                    else "check which antivirus or security program is installed and turn off its "
                    "e-mail / SSL scanning; on a company network, ask IT. Do not accept the certificate"
                ),
                data={**data, "product": product},
            )
        if code in (9, 10):
            when = f" on {cert.not_after:%Y-%m-%d}" if cert is not None and code == 10 else ""
            state = "expired" + when if code == 10 else "is not valid yet"
            return Diagnosis(
                Step.TLS,
                Code.CERTIFICATE_EXPIRED,
                f"The certificate of {where} {'has ' if code == 10 else ''}{state}",
                "the server's certificate is out of date, or this computer's date and time are wrong",
                "check this computer's date and time; if they are right, the provider must renew its "
                "certificate. deskmail did not send your password",
                data=data,
            )
        if code in (62, 63, 64):  # host name / email / IP address mismatch
            names = ", ".join(cert.names()[:5]) if cert is not None else "other names"
            suggestion = next((n for n in cert.names() if "*" not in n), "") if cert is not None else ""
            if suggestion:
                data["suggested_host"] = suggestion
            return Diagnosis(
                Step.TLS,
                Code.CERTIFICATE_HOSTNAME_MISMATCH,
                f"The certificate of {where} is valid for {names}, not for {target.host}",
                "the server name in the settings is an alias the certificate does not cover, or the "
                "connection is being redirected",
                "use the exact server name from your provider's help pages"
                + (f" (the certificate names {suggestion})" if suggestion else "")
                + ". deskmail did not send your password",
                data=data,
            )
        if code == 18:
            return Diagnosis(
                Step.TLS,
                Code.CERTIFICATE_SELF_SIGNED,
                f"The certificate of {where} is self-signed (issued by the server to itself)",
                "a private or test server, or someone impersonating the server",
                "if this is your own server, give deskmail its certificate (the account's ca_file setting); "
                "otherwise do not connect. deskmail did not send your password",
                data=data,
            )
        issuer = cert.issuer_text if cert is not None else "an unknown issuer"
        return Diagnosis(
            Step.TLS,
            Code.CERTIFICATE_UNTRUSTED,
            f"The certificate of {where} was issued by “{issuer}”, which this computer does not "
            f"trust ({detail})",
            "the server uses a private certificate authority, or antivirus / a proxy is intercepting "
            "encrypted connections",
            "if this is your own or your company's server, give deskmail the CA certificate (the "
            "account's ca_file setting); if an antivirus scans mail, turn off its e-mail (SSL) scanning. deskmail did "
            "not send your password",
            data=data,
        )

    def tls_error_diagnosis(self, target: Target, exc: Exception) -> Diagnosis:
        reason = str(getattr(exc, "reason", "") or "")
        message = str(exc)
        if reason in VERSION_REASONS or "protocol version" in message or "unsupported protocol" in message:
            legacy = self.legacy_version(target)
            offered = legacy or "a TLS version older than 1.2"
            return Diagnosis(
                Step.TLS,
                Code.TLS_VERSION,
                f"{target.where} only offers {offered}; deskmail requires TLS 1.2 or newer",
                "the server's software is outdated (TLS 1.0 and 1.1 are broken and were retired in "
                "2021), or an old antivirus / proxy sits in between",
                "ask the provider to enable TLS 1.2 or 1.3; check for an outdated antivirus mail scanner",
                data={"tls_version": legacy},
            )
        if target.security is Security.SSL:
            plain = self.plain_greeting(target.address, target.port, self.timeouts.sniff)
            if plain is not None:
                prefix = GREETING_PREFIXES[self.protocol][0]
                better = Security.STARTTLS if plain.starttls else None
                remedy = (
                    f"change the encryption to STARTTLS and keep port {target.port}"
                    if better is not None
                    else "use the provider's SSL/TLS port ("
                    + ", ".join(str(p) for p, s in DEFAULT_ALTERNATIVES[self.protocol] if s is Security.SSL)
                    + ") with SSL/TLS"
                )
                return Diagnosis(
                    Step.TLS,
                    Code.TLS_MODE_MISMATCH,
                    f"{target.where} starts in plain text (STARTTLS port), but the account uses SSL/TLS: "
                    f"the server sent a plain-text greeting (“{prefix} …”) where a TLS handshake was "
                    "expected",
                    "the encryption setting does not match the port (STARTTLS ports: 143, 110, 587)",
                    remedy,
                    data={"port": target.port, "security": better.value if better else ""},
                )
        return Diagnosis(
            Step.TLS,
            Code.TLS_HANDSHAKE_FAILED,
            f"The encrypted connection to {target.where} could not be set up ({display(message)})",
            "the server and deskmail have no TLS settings in common, or something on the way "
            "(antivirus, proxy) broke the handshake",
            "check the port and encryption settings against the provider's; turn off antivirus mail "
            "scanning to test",
            data={"reason": reason},
        )

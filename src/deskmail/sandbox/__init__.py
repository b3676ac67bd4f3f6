"""Local, throw-away mail servers (Dovecot + an SMTP submission server) for tests and the demo.

    from deskmail.sandbox import start_sandbox, load_sandbox

    sb = start_sandbox(Path("/tmp/deskmail-demo"), {"alice@example.test": "secret"})
    ...connect to sb.host:sb.imaps_port trusting sb.ca_file...
    load_sandbox(Path("/tmp/deskmail-demo")).stop()   # from any later process

Needs root and Debian's dovecot-imapd, dovecot-pop3d and dovecot-lmtpd; see
:mod:`deskmail.sandbox.servers` for the layout and the 127.0.0.2 trick.
"""

from deskmail.sandbox.servers import (
    HOST,
    INSECURE_HOST,
    CertificateAuthority,
    IssuedCertificate,
    MailUser,
    Sandbox,
    SandboxError,
    issue_cert,
    load_sandbox,
    make_ca,
    sample_messages,
    server_ssl_context,
    start_sandbox,
)

__all__ = [
    "HOST",
    "INSECURE_HOST",
    "CertificateAuthority",
    "IssuedCertificate",
    "MailUser",
    "Sandbox",
    "SandboxError",
    "issue_cert",
    "load_sandbox",
    "make_ca",
    "sample_messages",
    "server_ssl_context",
    "start_sandbox",
]

"""The sandbox servers themselves, exercised with the stdlib clients (imaplib, poplib, smtplib)."""

from __future__ import annotations

import base64
import datetime as dt
import imaplib
import poplib
import re
import shutil
import smtplib
import socket
import ssl
import tempfile
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest
from cryptography import x509

from deskmail.sandbox import (
    MailUser,
    Sandbox,
    issue_cert,
    load_sandbox,
    make_ca,
    sample_messages,
    start_sandbox,
)

pytestmark = pytest.mark.servers
TIMEOUT = 10


def message(sender: str, to: str, subject: str, body: str = "Hello.\n") -> bytes:
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    msg["Message-ID"] = make_msgid(domain="test.example")
    msg.set_content(body)
    return bytes(msg)


def imaps(sb: Sandbox, user: MailUser) -> imaplib.IMAP4_SSL:
    m = imaplib.IMAP4_SSL(sb.host, sb.imaps_port, ssl_context=sb.client_ssl_context(), timeout=TIMEOUT)
    m.login(user.email, user.password)
    return m


def wait_for_messages(sb: Sandbox, user: MailUser, count: int, folder: str = "INBOX") -> imaplib.IMAP4_SSL:
    """Poll until ``folder`` holds ``count`` messages; returns the session, folder selected."""
    m = imaps(sb, user)
    deadline = time.monotonic() + 5
    while True:
        typ, data = m.select(folder)
        assert typ == "OK"
        if int(data[0] or 0) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert int(data[0] or 0) == count, f"{folder} holds {data[0]!r} messages, expected {count}"
    return m


def fetch_body(m: imaplib.IMAP4_SSL, seq: int) -> bytes:
    typ, data = m.fetch(str(seq), "(BODY.PEEK[])")
    assert typ == "OK"
    item = data[0]
    assert isinstance(item, tuple)
    return item[1]


# ----------------------------------------------------------------------------- IMAP


def test_imaps_login_and_select(sandbox: Sandbox, mail_user: MailUser) -> None:
    m = imaps(sandbox, mail_user)
    typ, data = m.select("INBOX")
    assert (typ, data) == ("OK", [b"0"])
    typ, caps = m.capability()
    assert typ == "OK"
    for cap in ("IDLE", "CONDSTORE", "QRESYNC", "SPECIAL-USE", "UIDPLUS", "MOVE"):
        assert cap in caps[0].decode().split(), cap
    m.logout()


def test_special_use_folders_are_auto_subscribed(sandbox: Sandbox, mail_user: MailUser) -> None:
    m = imaps(sandbox, mail_user)
    typ, lines = m.lsub()
    assert typ == "OK"
    listed = b"\n".join(line for line in lines if isinstance(line, bytes)).decode()
    typ, lines = m.list()
    flags = b"\n".join(line for line in lines if isinstance(line, bytes)).decode()
    for name in ("Drafts", "Sent", "Trash", "Junk", "Archive"):
        assert f'"/" {name}' in listed
        assert f"\\{name}" in flags
    m.logout()


def test_imap_starttls(sandbox: Sandbox, mail_user: MailUser) -> None:
    m = imaplib.IMAP4(sandbox.host, sandbox.imap_port, timeout=TIMEOUT)
    assert "STARTTLS" in m.capabilities
    m.starttls(ssl_context=sandbox.client_ssl_context())
    m.login(mail_user.email, mail_user.password)
    assert m.select("INBOX")[0] == "OK"
    m.logout()


def test_loopback_same_ip_counts_as_secured(sandbox: Sandbox) -> None:
    """Dovecot's quirk on 127.0.0.1 (client IP == server IP), kept visible on purpose."""
    m = imaplib.IMAP4(sandbox.host, sandbox.imap_port, timeout=TIMEOUT)
    assert "LOGINDISABLED" not in m.capabilities
    assert "AUTH=PLAIN" in m.capabilities
    m.logout()


def test_logindisabled_before_starttls_on_insecure_host(sandbox: Sandbox, mail_user: MailUser) -> None:
    m = imaplib.IMAP4(sandbox.insecure_host, sandbox.imap_port, timeout=TIMEOUT)
    # The kernel picks 127.0.0.1 as source: the IPs differ, so Dovecot is strict here.
    assert m.sock.getsockname()[0] == sandbox.host
    assert "LOGINDISABLED" in m.capabilities
    assert "AUTH=PLAIN" not in m.capabilities
    with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
        m.login(mail_user.email, mail_user.password)
    # The certificate carries IP:127.0.0.2, so verification with the host name works.
    m.starttls(ssl_context=sandbox.client_ssl_context())
    assert "LOGINDISABLED" not in m.capabilities
    assert "AUTH=PLAIN" in m.capabilities
    m.login(mail_user.email, mail_user.password)
    m.logout()


def test_wrong_imap_password_is_refused_quickly(sandbox: Sandbox, mail_user: MailUser) -> None:
    # Twice: Dovecot's auth penalty (seconds per retry) must be off in the sandbox.
    for _ in range(2):
        started = time.monotonic()
        m = imaplib.IMAP4_SSL(sandbox.host, sandbox.imaps_port, ssl_context=sandbox.client_ssl_context(),
                              timeout=TIMEOUT)
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            m.login(mail_user.email, "not-the-password")
        m.logout()
        assert time.monotonic() - started < 2


# ----------------------------------------------------------------------------- POP3


def test_pop3s_retrieves_delivered_message(sandbox: Sandbox, mail_user: MailUser) -> None:
    raw = message("Ada <ada@harbour.example>", mail_user.email, "pop3 check")
    sandbox.deliver(mail_user.email, raw)
    p = poplib.POP3_SSL(sandbox.host, sandbox.pop3s_port, context=sandbox.client_ssl_context(), timeout=TIMEOUT)
    p.user(mail_user.email)
    p.pass_(mail_user.password)
    count, _size = p.stat()
    assert count == 1
    _resp, lines, _octets = p.retr(1)
    assert b"Subject: pop3 check" in lines
    p.quit()


def test_pop3_stls_required_on_insecure_host(sandbox: Sandbox, mail_user: MailUser) -> None:
    p = poplib.POP3(sandbox.insecure_host, sandbox.pop3_port, timeout=TIMEOUT)
    assert "STLS" in p.capa()
    with pytest.raises(poplib.error_proto, match="Plaintext authentication disallowed"):
        p.user(mail_user.email)
        p.pass_(mail_user.password)
    p.stls(context=sandbox.client_ssl_context())
    p.user(mail_user.email)
    p.pass_(mail_user.password)
    assert p.stat()[0] == 0
    p.quit()


# ----------------------------------------------------------------------------- SMTP


@pytest.fixture
def submission(sandbox: Sandbox) -> Iterator[smtplib.SMTP]:
    s = smtplib.SMTP(sandbox.host, sandbox.submission_port, timeout=TIMEOUT)
    try:
        yield s
    finally:
        s.close()


def test_submission_refuses_mail_and_auth_before_starttls(submission: smtplib.SMTP) -> None:
    submission.ehlo("client.test")
    assert submission.has_extn("starttls")
    assert not submission.has_extn("auth")
    code, text = submission.docmd("MAIL", "FROM:<someone@example.test>")
    assert (code, text) == (530, b"Must issue a STARTTLS command first")
    code, _ = submission.docmd("AUTH", "PLAIN")
    assert code == 530


def test_submission_requires_auth_after_starttls(sandbox: Sandbox, submission: smtplib.SMTP) -> None:
    submission.starttls(context=sandbox.client_ssl_context())
    submission.ehlo("client.test")
    offered = set(submission.esmtp_features["auth"].split())
    # Bearer tokens too once the session's OAuth2 tests have called Sandbox.enable_oauth2 (as Dovecot then does).
    expected = {"LOGIN", "PLAIN"} | ({"XOAUTH2", "OAUTHBEARER"} if sandbox.oauth2_file.exists() else set())
    assert offered == expected
    assert not submission.has_extn("starttls")
    code, text = submission.docmd("MAIL", "FROM:<someone@example.test>")
    assert code == 530 and b"Authentication required" in text


def test_relay_without_auth_is_refused(sandbox: Sandbox, submission: smtplib.SMTP) -> None:
    before = sandbox.outbound()
    submission.starttls(context=sandbox.client_ssl_context())
    raw = message("spam@example.test", "victim@elsewhere.example", "relay attempt")
    with pytest.raises(smtplib.SMTPSenderRefused) as info:
        submission.sendmail("spam@example.test", ["victim@elsewhere.example"], raw)
    assert info.value.smtp_code == 530
    assert sandbox.outbound() == before


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_submission_wrong_password_is_535_and_not_logged(
    sandbox: Sandbox, submission: smtplib.SMTP, mail_user: MailUser, mechanism: str
) -> None:
    submission.starttls(context=sandbox.client_ssl_context())
    submission.ehlo("client.test")
    wrong = "Wr0ng-" + mail_user.password
    submission.user, submission.password = mail_user.email, wrong
    auth = submission.auth_plain if mechanism == "PLAIN" else submission.auth_login
    with pytest.raises(smtplib.SMTPAuthenticationError) as info:
        submission.auth(mechanism, auth)
    assert info.value.smtp_code == 535
    log = sandbox.smtp_log()
    assert f"AUTH {mechanism} user={mail_user.email!r} result=failed" in log
    assert wrong not in log
    assert base64.b64encode(f"\0{mail_user.email}\0{wrong}".encode()).decode() not in log
    assert base64.b64encode(wrong.encode()).decode() not in log


def test_submission_delivers_to_local_inbox(sandbox: Sandbox, submission: smtplib.SMTP, mail_user: MailUser) -> None:
    submission.starttls(context=sandbox.client_ssl_context())
    submission.login(mail_user.email, mail_user.password)
    raw = message(mail_user.email, mail_user.email, "round trip")
    assert submission.sendmail(mail_user.email, [mail_user.email], raw) == {}
    m = wait_for_messages(sandbox, mail_user, 1)
    body = fetch_body(m, 1)
    assert b"Subject: round trip" in body
    assert re.search(rb"Received: from client|Received: from \S+ \(\[127\.0\.0\.1\]\)", body)
    assert b"with ESMTPSA" in body
    m.logout()
    log = sandbox.smtp_log()
    assert f"AUTH PLAIN user={mail_user.email!r} result=ok" in log
    assert f"delivered to {mail_user.email} via LMTP" in log
    assert mail_user.password not in log


def test_authenticated_mail_to_other_domains_goes_to_outbound(
    sandbox: Sandbox, submission: smtplib.SMTP, mail_user: MailUser
) -> None:
    submission.starttls(context=sandbox.client_ssl_context())
    submission.login(mail_user.email, mail_user.password)
    subject = f"outbound {mail_user.email}"
    raw = message(mail_user.email, "friend@elsewhere.example", subject)
    submission.sendmail(mail_user.email, ["friend@elsewhere.example"], raw)
    files = [p for p in sandbox.outbound() if subject.encode() in p.read_bytes()]
    assert len(files) == 1
    stored = files[0].read_bytes()
    assert stored.startswith(f"Return-Path: <{mail_user.email}>\r\nReceived: ".encode())
    assert b"for <friend@elsewhere.example>" in stored


def test_smtps_implicit_tls(sandbox: Sandbox, mail_user: MailUser) -> None:
    s = smtplib.SMTP_SSL(sandbox.host, sandbox.smtps_port, context=sandbox.client_ssl_context(), timeout=TIMEOUT)
    s.ehlo("client.test")
    assert s.has_extn("auth") and not s.has_extn("starttls")
    code, _ = s.docmd("MAIL", "FROM:<x@example.test>")
    assert code == 530  # AUTH is required here too
    s.login(mail_user.email, mail_user.password)
    s.sendmail(mail_user.email, [mail_user.email], message(mail_user.email, mail_user.email, "via smtps"))
    s.quit()
    m = wait_for_messages(sandbox, mail_user, 1)
    assert b"Subject: via smtps" in fetch_body(m, 1)
    m.logout()


# ----------------------------------------------------------------------------- helpers


def test_fill_maildir_is_byte_exact_and_ordered(sandbox: Sandbox, mail_user: MailUser) -> None:
    raws = [message("a@example.test", mail_user.email, f"bulk {i}", f"body {i}\n" * (i + 1)) for i in range(25)]
    assert sandbox.fill_maildir(mail_user.email, raws) == 25
    assert sandbox.fill_maildir(mail_user.email, raws[:3], folder="Archive/2023", flags="S") == 3
    m = wait_for_messages(sandbox, mail_user, 25)
    for seq in (1, 13, 25):
        assert fetch_body(m, seq) == raws[seq - 1]
    typ, data = m.status("Archive/2023", "(MESSAGES UNSEEN)")
    assert typ == "OK" and b"MESSAGES 3 UNSEEN 0" in data[0]
    files = list((sandbox.maildir(mail_user.email) / "cur").iterdir())
    assert all(f.stat().st_uid == sandbox.user(mail_user.email).uid for f in files)
    m.logout()


def test_sample_messages_arrive(sandbox: Sandbox, mail_user: MailUser) -> None:
    samples = sample_messages(mail_user.email)
    assert len(samples) >= 4
    assert any(b"Content-Disposition: attachment" in raw for raw in samples)
    for raw in samples:
        sandbox.deliver(mail_user.email, raw)
    m = wait_for_messages(sandbox, mail_user, len(samples))
    m.logout()


def test_add_user_password_change_takes_effect_at_once(sandbox: Sandbox, mail_user: MailUser) -> None:
    imaps(sandbox, mail_user).logout()
    # Same length on purpose: Dovecot notices passwd-file changes by mtime and size only.
    new = MailUser(mail_user.email, mail_user.password[::-1])
    sandbox.add_user(new.email, new.password)
    imaps(sandbox, new).logout()
    with pytest.raises(imaplib.IMAP4.error):
        imaps(sandbox, mail_user)


# ----------------------------------------------------------------------------- certificates


def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, host: str) -> None:
    """A TLS handshake in memory: no sockets, just the verification logic."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=host)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (client, server):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    client.do_handshake()


def test_sandbox_certificate_chain(sandbox: Sandbox) -> None:
    ca = x509.load_pem_x509_certificate(sandbox.ca_file.read_bytes())
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    leaf = x509.load_pem_x509_certificate((sandbox.root / "tls" / "server.crt").read_bytes())
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "127.0.0.2"}
    for host in ("localhost", "127.0.0.1", "127.0.0.2"):
        s = socket.create_connection((sandbox.host, sandbox.imaps_port), timeout=TIMEOUT)
        with sandbox.client_ssl_context().wrap_socket(s, server_hostname=host) as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_issue_cert_makes_bad_certificates_on_demand() -> None:
    ca = make_ca()
    client = ssl.create_default_context(cadata=ca.cert_pem.decode())
    now = dt.datetime.now(dt.UTC)

    handshake(issue_cert(ca, ["localhost"]).server_context(), client, "localhost")

    expired = issue_cert(ca, ["localhost"], not_before=now - dt.timedelta(days=30),
                         not_after=now - dt.timedelta(days=1))
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        handshake(expired.server_context(), client, "localhost")
    assert info.value.verify_code == 10  # X509_V_ERR_CERT_HAS_EXPIRED

    with pytest.raises(ssl.SSLCertVerificationError) as info:
        handshake(issue_cert(ca, ["other.example"]).server_context(), client, "localhost")
    assert info.value.verify_code == 62  # X509_V_ERR_HOSTNAME_MISMATCH

    antivirus = make_ca("Antivirus Web Shield root")
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        handshake(issue_cert(antivirus, ["localhost"]).server_context(), client, "localhost")
    # 19 (self-signed certificate in chain) because server_context() sends the CA too; 20 without it.
    assert info.value.verify_code in (19, 20)


# ----------------------------------------------------------------------------- lifecycle


def test_second_sandbox_load_stop_restart(sandbox: Sandbox) -> None:
    """A second sandbox beside the session one: state file, stop from 'another process', restart."""
    root = Path(tempfile.mkdtemp(prefix="deskmail-sandbox-2-"))
    try:
        assert load_sandbox(root) is None
        started = time.monotonic()
        sb = start_sandbox(root, {"carol@example.test": "carol-pw"})
        assert time.monotonic() - started < 5
        assert sb.imaps_port != sandbox.imaps_port and sb.is_running() and sandbox.is_running()

        loaded = load_sandbox(root)
        assert loaded == sb
        ports = [sb.imaps_port, sb.imap_port, sb.pop3s_port, sb.pop3_port, sb.submission_port, sb.smtps_port]
        imaps(loaded, MailUser("carol@example.test", "carol-pw")).logout()
        ca_before = sb.ca_file.read_bytes()

        loaded.stop()
        assert not loaded.is_running()
        for port in ports:
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((sb.host, port), timeout=TIMEOUT).close()
        assert sandbox.is_running()  # the session sandbox is untouched

        again = start_sandbox(root)
        try:
            assert again.ca_file.read_bytes() == ca_before  # CA reused, so clients keep trusting it
            assert start_sandbox(root) == again  # already running: returned as is
            imaps(again, MailUser("carol@example.test", "carol-pw")).logout()
        finally:
            again.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)

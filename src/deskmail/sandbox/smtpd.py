"""The sandbox's SMTP submission server: aiosmtpd behind STARTTLS and AUTH.

``python -m deskmail.sandbox.smtpd CONFIG.json`` binds its ports, detaches (double fork,
own session, pid file) and returns 0; ``--foreground`` stays attached for debugging.
CONFIG.json is a :class:`~deskmail.sandbox.servers.SmtpdConfig`.

One process serves, on every configured host:

* the submission port: plain greeting, STARTTLS required before anything but
  EHLO/NOOP/QUIT (``530``), AUTH PLAIN/LOGIN only after it, AUTH required for MAIL;
* the SMTPS port: implicit TLS, AUTH required.

Passwords are checked against the Dovecot passwd-file. Mail for a user in that file is
handed to Dovecot LMTP, one transaction per recipient; other recipients are written to
``outbound/*.eml``. The log records connections, commands' replies, AUTH mechanism +
user + result, MAIL/RCPT and deliveries; never a password or an AUTH blob.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import itertools
import json
import logging
import os
import secrets
import signal
import smtplib
import socket
import ssl
import sys
import warnings
from collections.abc import Sequence
from email.utils import format_datetime
from pathlib import Path
from typing import Any, AnyStr

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session

from deskmail.sandbox.servers import SmtpdConfig, check_password, read_user, server_ssl_context

log = logging.getLogger("deskmail.sandbox.smtpd")
_conn_ids = itertools.count(1)


def _tls_active(server: SMTP) -> bool:
    transport = server.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


class SandboxSMTP(SMTP):
    """aiosmtpd's SMTP with a per-connection log (connect, every reply, disconnect)."""

    def __init__(self, handler: Delivery, *, listener: str, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.listener = listener
        self.conn_id = next(_conn_ids)

    def note(self, message: str) -> None:
        log.info("conn=%d %s %s", self.conn_id, self.listener, message)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        after_starttls = self._original_transport is not None
        super().connection_made(transport)
        if after_starttls:
            return
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        self.note(f"connect from {peer[0]}:{peer[1]} to {local[0]}:{local[1]}")

    def connection_lost(self, error: Exception | None) -> None:
        self.note("disconnect" + (f" ({error})" if error else ""))
        super().connection_lost(error)

    async def push(self, status: AnyStr) -> None:
        text = status.decode("utf-8", "replace") if isinstance(status, bytes) else str(status)
        # 334 lines are AUTH challenges; harmless, but keep the log about decisions.
        self.note("<<< " + ("334 (auth challenge)" if text.startswith("334") else text))
        await super().push(status)


class Delivery:
    """aiosmtpd handler: logs the dialogue and delivers accepted mail (LMTP or outbound/)."""

    def __init__(self, config: SmtpdConfig) -> None:
        self.config = config

    # Hooks are found by name (handle_*); aiosmtpd calls them with the server first.

    async def handle_EHLO(
        self, server: SandboxSMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname  # the 5-argument hook must set it itself
        server.note(f">>> EHLO {hostname} (tls={'yes' if _tls_active(server) else 'no'})")
        return responses

    def handle_STARTTLS(self, server: SandboxSMTP, session: Session, envelope: Envelope) -> bool:
        # Called synchronously once the handshake is done; True accepts the session.
        ssl_object = server.transport.get_extra_info("ssl_object") if server.transport else None
        version = ssl_object.version() if isinstance(ssl_object, ssl.SSLObject) else "?"
        server.note(f"STARTTLS done ({version})")
        return True

    async def handle_AUTH(self, server: SandboxSMTP, session: Session, envelope: Envelope, args: list[str]) -> Any:
        # args[1], when present, is the initial response: base64 of the secret. Never log it.
        server.note(f">>> AUTH {args[0].upper()} attempt")
        return MISSING  # let aiosmtpd run the mechanism, which ends in authenticate()

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        note = server.note if isinstance(server, SandboxSMTP) else log.info
        if not isinstance(auth_data, LoginPassword):
            note(f"AUTH {mechanism} refused: unsupported credentials")
            return AuthResult(success=False, handled=False)
        user = auth_data.login.decode("utf-8", "replace")
        if not _tls_active(server):  # cannot happen with the settings below; keep it that way
            note(f"AUTH {mechanism} user={user!r} result=refused (no TLS)")
            return AuthResult(success=False, handled=False)
        ok = check_password(self.config.users_dir, user, auth_data.password.decode("utf-8", "replace"))
        note(f"AUTH {mechanism} user={user!r} result={'ok' if ok else 'failed'}")
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)

    # Bearer tokens (RFC 7628): aiosmtpd offers every auth_<MECH> method of the handler.

    async def auth_XOAUTH2(self, server: SandboxSMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, args, "XOAUTH2")

    async def auth_OAUTHBEARER(self, server: SandboxSMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, args, "OAUTHBEARER")

    async def _bearer(self, server: SandboxSMTP, args: list[str], mechanism: str) -> AuthResult:
        if len(args) > 1:
            try:
                message = base64.b64decode(args[1], validate=True)
            except ValueError:
                message = b""
        else:
            answer = await server.challenge_auth("")
            message = answer if isinstance(answer, bytes) else b""
        user, token = _bearer_fields(message, mechanism)
        settings = self._oauth2_settings()
        if not _tls_active(server) or settings is None or not token:
            why = "no TLS" if not _tls_active(server) else "not set up" if settings is None else "no token"
            server.note(f"AUTH {mechanism} user={user!r} result=refused ({why})")
            return AuthResult(success=False, handled=False)
        try:
            info = await asyncio.get_running_loop().run_in_executor(None, _introspect, settings, token)
        except (OSError, ValueError) as exc:
            server.note(f"AUTH {mechanism} user={user!r} result=temporary failure (introspection: {exc})")
            await server.push("454 4.7.0 Temporary authentication failure")
            return AuthResult(success=False, handled=True)
        scopes = str(info.get("scope", "")).split()
        if info.get("active") is not True or str(info.get("username", "")).lower() != user.lower():
            error = {"status": "invalid_token", "schemes": "bearer", "scope": settings["scope"]}
            why = "inactive token" if info.get("active") is not True else "another user's token"
        elif settings["scope"] not in scopes:
            error = {"status": "insufficient_scope", "schemes": "bearer", "scope": settings["scope"]}
            why = "scope missing"
        else:
            server.note(f"AUTH {mechanism} user={user!r} result=ok")
            return AuthResult(success=True, handled=False, auth_data=LoginPassword(user.encode(), b""))
        server.note(f"AUTH {mechanism} user={user!r} result=failed ({why})")
        await server.challenge_auth(json.dumps(error))  # the client's answer ends the exchange
        return AuthResult(success=False, handled=False)

    def _oauth2_settings(self) -> dict[str, str] | None:
        if self.config.oauth2_file is None:
            return None
        try:
            data = json.loads(self.config.oauth2_file.read_text())
        except (OSError, ValueError):
            return None
        return {k: str(data.get(k, "")) for k in ("introspection_url", "client_id", "client_secret", "scope")}

    async def handle_MAIL(
        self, server: SandboxSMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        server.note(f">>> MAIL FROM:<{address}> {' '.join(options)}".rstrip())
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SandboxSMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        server.note(f">>> RCPT TO:<{address}>")
        if not session.authenticated:  # auth_required already stops MAIL; never relay anyway
            return "550 5.7.1 Relaying denied: authenticate first"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SandboxSMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        queue_id = secrets.token_hex(6).upper()
        server.note(f">>> DATA {len(content)} bytes, {len(envelope.rcpt_tos)} recipient(s), id {queue_id}")
        failed = 0
        for n, rcpt in enumerate(envelope.rcpt_tos, start=1):
            data = self._received(server, session, rcpt, queue_id) + content
            if read_user(self.config.users_dir, rcpt) is not None:
                error = await asyncio.to_thread(self._lmtp, envelope, rcpt.lower(), data)
                if error is None:
                    server.note(f"delivered to {rcpt} via LMTP (id {queue_id})")
                    continue
                failed += 1
                path = self._write_outbound(envelope, rcpt, data, queue_id, n, prefix="undeliverable-")
                server.note(f"LMTP delivery to {rcpt} FAILED ({error}); kept in {path}")
            else:
                path = self._write_outbound(envelope, rcpt, data, queue_id, n)
                server.note(f"relayed {rcpt} to {path}")
        if failed and failed == len(envelope.rcpt_tos):
            return "451 4.3.0 Local delivery failed; see the sandbox smtp.log"
        return f"250 2.0.0 OK queued as {queue_id}"

    def _received(self, server: SandboxSMTP, session: Session, rcpt: str, queue_id: str) -> bytes:
        tls = _tls_active(server)
        proto = "ESMTP" + ("S" if tls else "") + ("A" if session.authenticated else "")  # RFC 3848
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        now = format_datetime(dt.datetime.now(dt.UTC).astimezone())
        header = (
            f"Received: from {session.host_name} ([{peer}])\r\n"
            f"\tby {self.config.hostname} (deskmail sandbox) with {proto} id {queue_id}\r\n"
            f"\tfor <{rcpt}>; {now}\r\n"
        )
        return header.encode("utf-8")

    def _lmtp(self, envelope: Envelope, rcpt: str, data: bytes) -> str | None:
        """Deliver one recipient through Dovecot LMTP; the error text, or None on success."""
        try:
            with smtplib.LMTP(str(self.config.lmtp_socket), timeout=60) as lmtp:
                lmtp.ehlo_or_helo_if_needed()
                options = [o for o in envelope.mail_options
                           if o.upper() in ("SMTPUTF8", "BODY=8BITMIME") and lmtp.has_extn(o.split("=")[0])]
                sender = envelope.mail_from or ""
                if not sender.isascii() and "SMTPUTF8" not in (o.upper() for o in options):
                    sender = ""  # LMTP cannot carry it; a null sender beats losing the mail
                lmtp.sendmail(sender, [rcpt], data, mail_options=options)
        except (smtplib.SMTPException, OSError) as exc:
            return str(exc)
        return None

    def _write_outbound(
        self, envelope: Envelope, rcpt: str, data: bytes, queue_id: str, n: int, prefix: str = ""
    ) -> Path:
        outbound = self.config.outbound_dir
        outbound.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
        path = outbound / f"{prefix}{stamp}-{queue_id}-{n}.eml"
        tmp = path.with_suffix(".tmp")
        # Return-Path keeps the envelope sender; Received already names the recipient.
        tmp.write_bytes(f"Return-Path: <{envelope.mail_from or ''}>\r\n".encode() + data)
        os.replace(tmp, path)
        return path


def _bearer_fields(message: bytes, mechanism: str) -> tuple[str, str]:
    """(user, token) of an XOAUTH2 or OAUTHBEARER message; empty strings where a field is missing."""
    text = message.decode("utf-8", "replace")
    parts = text.split("\x01")
    user = ""
    if mechanism == "XOAUTH2":
        user = next((p[5:] for p in parts if p.startswith("user=")), "")
    else:
        gs2 = parts[0].split(",")
        user = next((g[2:] for g in gs2 if g.startswith("a=")), "").replace("=2C", ",").replace("=3D", "=")
    auth = next((p[5:] for p in parts if p.startswith("auth=")), "")
    token = auth[7:] if auth.lower().startswith("bearer ") else ""
    return user, token


def _introspect(settings: dict[str, str], token: str) -> dict[str, Any]:
    """RFC 7662 at the authorization server, as Dovecot's oauth2 passdb does it (form POST, client in the form)."""
    import urllib.parse
    import urllib.request

    form = urllib.parse.urlencode({"token": token, "client_id": settings["client_id"],
                                   "client_secret": settings["client_secret"]}).encode()
    with urllib.request.urlopen(settings["introspection_url"], data=form, timeout=5) as answer:
        data = json.loads(answer.read())
    if not isinstance(data, dict):
        raise ValueError("introspection answer is not a JSON object")
    return data


def _bind(hosts: Sequence[str], port: int) -> list[socket.socket]:
    socks = []
    for host in hosts:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(100)
        s.setblocking(False)
        socks.append(s)
    return socks


async def serve(config: SmtpdConfig, submission: list[socket.socket], smtps: list[socket.socket]) -> None:
    tls = server_ssl_context(config.cert_file, config.key_file)
    handler = Delivery(config)
    common: dict[str, Any] = {
        "hostname": config.hostname,
        "data_size_limit": config.data_size_limit,
        "enable_SMTPUTF8": True,
        "auth_required": True,
        "authenticator": handler.authenticate,
    }

    def bearer_off() -> list[str]:
        # XOAUTH2 / OAUTHBEARER are offered once Sandbox.enable_oauth2 wrote the file, as Dovecot offers them.
        enabled = config.oauth2_file is not None and config.oauth2_file.exists()
        return [] if enabled else ["XOAUTH2", "OAUTHBEARER"]

    def submission_factory() -> SandboxSMTP:
        return SandboxSMTP(handler, listener="submission", tls_context=tls, require_starttls=True,
                           auth_require_tls=True, auth_exclude_mechanism=bearer_off(), **common)

    def smtps_factory() -> SandboxSMTP:
        # The whole connection is TLS, but aiosmtpd only knows about STARTTLS: without
        # auth_require_tls=False it would refuse AUTH here. authenticate() still checks TLS.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return SandboxSMTP(handler, listener="smtps", tls_context=None, require_starttls=False,
                               auth_require_tls=False, auth_exclude_mechanism=bearer_off(), **common)

    loop = asyncio.get_running_loop()
    servers = [await loop.create_server(submission_factory, sock=s) for s in submission]
    servers += [await loop.create_server(smtps_factory, sock=s, ssl=tls) for s in smtps]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("listening: submission %s, smtps %s",
             ", ".join(f"{s.getsockname()[0]}:{s.getsockname()[1]}" for s in submission),
             ", ".join(f"{s.getsockname()[0]}:{s.getsockname()[1]}" for s in smtps))
    await stop.wait()
    log.info("stopping (signal)")
    for server in servers:
        server.close()


def _daemonize(pid_file: Path) -> None:
    """Double fork: the caller's process exits 0 once the pid file names the daemon."""
    pid = os.fork()
    if pid > 0:
        _, status = os.waitpid(pid, 0)
        os._exit(os.waitstatus_to_exitcode(status))
    os.setsid()  # own session: no controlling terminal, not killed with the caller's group
    pid = os.fork()
    if pid > 0:
        _write_pid(pid_file, pid)
        os._exit(0)
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)


def _write_pid(pid_file: Path, pid: int) -> None:
    tmp = pid_file.with_suffix(".tmp")
    tmp.write_text(f"{pid}\n")
    os.replace(tmp, pid_file)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deskmail.sandbox.smtpd", description=__doc__.split("\n")[0])
    parser.add_argument("config", type=Path, help="SmtpdConfig JSON written by start_sandbox")
    parser.add_argument("--foreground", action="store_true", help="do not detach")
    args = parser.parse_args(argv)
    config = SmtpdConfig.from_json(args.config.read_text())

    handler = logging.FileHandler(config.log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s.%(msecs)03d %(message)s", "%Y-%m-%d %H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    # aiosmtpd's own logger echoes raw command lines at DEBUG (AUTH blobs included).
    logging.getLogger("mail.log").setLevel(logging.ERROR)

    try:
        submission = _bind(config.hosts, config.submission_port)
        smtps = _bind(config.hosts, config.smtps_port)
    except OSError as exc:
        ports = f"{config.submission_port}/{config.smtps_port}"
        print(f"smtpd: cannot listen on {', '.join(config.hosts)} ports {ports}: {exc}", file=sys.stderr)
        return 1
    if args.foreground:
        _write_pid(config.pid_file, os.getpid())
    else:
        sys.stdout.flush()
        sys.stderr.flush()
        _daemonize(config.pid_file)
    log.info("started, pid %d", os.getpid())
    try:
        asyncio.run(serve(config, submission, smtps))
    finally:
        with contextlib.suppress(OSError):
            if int(config.pid_file.read_text().split()[0]) == os.getpid():
                config.pid_file.unlink()
        log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A private Postfix submission service for the doctor's tests (Debian's ``postfix`` package).

Started from the tests, never touching the system's mail setup: its own
``config_directory``, ``queue_directory`` and ``data_directory`` under one
temporary folder, listening only on 127.0.0.1 on free ports (never 25),
STARTTLS required before AUTH (``smtpd_tls_auth_only``), logins checked by a
private Dovecot instance that does nothing but SASL (its auth socket), and
every accepted message discarded.

Two listeners, as real providers configure them:

* ``port`` — Debian's stock submission restrictions
  (``smtpd_client_restrictions = permit_sasl_authenticated, reject``): before
  a login, RCPT gets ``554 5.7.1 … Client host rejected: Access denied``;
* ``sender_port`` — sender login maps with ``reject_sender_login_mismatch``
  and ``smtpd_delay_reject = no``: before a login, MAIL gets ``553 5.7.1 …
  Sender address rejected: not logged in``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import trustme

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


def available() -> bool:
    return Path(POSTFIX).is_file() and Path(DOVECOT).is_file()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class PostfixSubmission:
    root: Path
    port: int
    sender_port: int
    ca_file: str

    @property
    def log(self) -> str:
        path = self.root / "postfix.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        stops = ([POSTFIX, "-c", str(self.root / "etc"), "stop"],
                 [DOVECOT, "-c", str(self.root / "dovecot.conf"), "stop"])
        for argv in stops:
            subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=30, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def start(users: dict[str, str], ca: trustme.CA) -> PostfixSubmission:
    """Start Dovecot (SASL only) and Postfix; ``users`` maps address → password."""
    # Postfix's daemons run as the postfix user and must reach the folder: not pytest's 0700 tmp_path.
    root = Path(tempfile.mkdtemp(prefix="deskmail-postfix-"))
    root.chmod(0o755)
    for sub in ("etc", "queue", "data", "dovecot-run", "dovecot-state"):
        (root / sub).mkdir()
    shutil.chown(root / "data", "postfix")
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    leaf.private_key_and_cert_chain_pem.write_to_path(str(root / "server.pem"))
    ca_file = root / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    (root / "passwd").write_text("".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in users.items()))
    (root / "senders").write_text("".join(f"{u} {u}\n" for u in users))

    (root / "dovecot.conf").write_text(f"""\
protocols =
listen = 127.0.0.1
base_dir = {root / "dovecot-run"}
state_dir = {root / "dovecot-state"}
instance_name = deskmail-postfix-auth-{root.name}
log_path = {root / "dovecot.log"}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root / "passwd"}
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={root}
}}
service auth {{
  unix_listener auth-postfix {{
    mode = 0666
  }}
}}
""")
    port, sender_port = _free_port(), _free_port()
    (root / "etc" / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {root / "queue"}
data_directory = {root / "data"}
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = submission.deskmail.test
mydomain = deskmail.test
mydestination =
relayhost =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
maillog_file_prefixes = {root}
maillog_file = {root / "postfix.log"}
smtputf8_enable = no
biff = no
alias_maps =
alias_database =
local_recipient_maps =
smtpd_tls_chain_files = {root / "server.pem"}
smtpd_tls_security_level = encrypt
smtpd_tls_auth_only = yes
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = {root / "dovecot-run" / "auth-postfix"}
smtpd_client_restrictions = permit_sasl_authenticated, reject
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
default_transport = discard
relay_transport = discard
""")
    services = """\
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
proxymap  unix  - - n - - proxymap
discard   unix  - - n - - discard
error     unix  - - n - - error
retry     unix  - - n - - error
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
tlsmgr    unix  - - n 1000? 1 tlsmgr
postlog   unix-dgram n - n - 1 postlogd
"""
    (root / "etc" / "master.cf").write_text(
        f"127.0.0.1:{port} inet n - n - - smtpd\n"
        f"127.0.0.1:{sender_port} inet n - n - - smtpd\n"
        f"  -o smtpd_client_restrictions=\n"
        f"  -o smtpd_delay_reject=no\n"
        f"  -o smtpd_sender_login_maps=texthash:{root / 'senders'}\n"
        f"  -o smtpd_sender_restrictions=reject_sender_login_mismatch\n" + services
    )
    server = PostfixSubmission(root, port, sender_port, str(ca_file))
    try:
        log = root / "commands.log"
        _run([DOVECOT, "-c", str(root / "dovecot.conf")], log=log)
        etc = str(root / "etc")
        _run([POSTFIX, "-c", etc, "set-permissions", "create-missing"], log=log, check=False)
        _run([POSTFIX, "-c", etc, "start"], log=log)
        _wait_for(port)
        _wait_for(sender_port)
    except BaseException:
        server.stop()
        raise
    return server


def _run(argv: list[str], *, log: Path, check: bool = True) -> None:
    # Output goes to a file, not a pipe: the daemons these commands start keep their
    # standard streams, and a pipe would never close. (Postfix writes to stderr only on a
    # terminal; its log file says the rest.)
    with log.open("a") as out:
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=60)
    if check and result.returncode != 0:
        raise RuntimeError(f"{argv} failed ({result.returncode}): {log.read_text(errors='replace')[-2000:]}")


def _wait_for(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(64).startswith(b"220"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"Postfix did not greet on port {port} within {timeout:g} s")
        time.sleep(0.1)

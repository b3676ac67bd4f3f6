"""Passwords with non-ASCII letters, spaces, quotes and backslashes log in to the sandbox's real submission
server (STARTTLS + AUTH): SASL answers go out as UTF-8 (RFC 4616), where Python's smtplib encodes them as
ASCII and raised UnicodeEncodeError from every send of such an account (issue 14, "Known bugs")."""

from __future__ import annotations

import email
import ssl
from email.policy import default
from pathlib import Path
from typing import Any

import pytest

from helpers import Home, add_imaps_account

pytestmark = pytest.mark.servers

PASSWORDS = ["Grüße aus Köln", 'ß "quoted" \\ back\\slash', "пароль-密码-🔑"]


@pytest.mark.parametrize("password", PASSWORDS)
def test_send_with_a_non_ascii_password(sandbox: Any, tmp_path: Path, password: str) -> None:
    from deskmail.sandbox.servers import MailUser

    user = MailUser(f"pw-{abs(hash(password)) % 10**8}@example.test", password)
    sandbox.add_user(user.email, user.password)
    friend = sandbox.create_user(hint="friend")
    home = Home(tmp_path / "home", env={"DM_PW": password})
    add_imaps_account(home, sandbox, user, name="acct")
    sent = home.run("send", "--to", friend.email, "--subject", "pw", "--body", "it logged in")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    [path] = [p for sub in ("new", "cur") for p in (sandbox.maildir(friend.email, "INBOX") / sub).glob("*")]
    got = email.message_from_bytes(path.read_bytes(), policy=default)
    assert str(got["Subject"]) == "pw" and str(got["From"]) == user.email
    assert password not in sent.stdout + sent.stderr


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_each_mechanism_answers_in_utf8(sandbox: Any, mechanism: str) -> None:
    from deskmail.protocol.smtp import _SMTP

    password = PASSWORDS[1]
    user = f"mech-{mechanism.lower()}@example.test"
    sandbox.add_user(user, password)
    smtp = _SMTP(sandbox.host, sandbox.submission_port, timeout=30)
    try:
        smtp.ehlo()
        smtp.starttls(context=ssl.create_default_context(cafile=str(sandbox.ca_file)))
        smtp.ehlo()
        smtp.user, smtp.password = user, password
        auth = smtp.auth_plain if mechanism == "PLAIN" else smtp.auth_login
        assert smtp.auth(mechanism, auth, initial_response_ok=mechanism == "PLAIN")[0] == 235
    finally:
        smtp.close()
    # A wrong one is refused as wrong (535), not a crash.
    smtp = _SMTP(sandbox.host, sandbox.submission_port, timeout=30)
    try:
        smtp.ehlo()
        smtp.starttls(context=ssl.create_default_context(cafile=str(sandbox.ca_file)))
        smtp.ehlo()
        smtp.user, smtp.password = user, password + "ü"
        with pytest.raises(Exception) as refused:
            smtp.auth(mechanism, smtp.auth_plain if mechanism == "PLAIN" else smtp.auth_login)
        assert type(refused.value).__name__ == "SMTPAuthenticationError" and refused.value.smtp_code == 535
    finally:
        smtp.close()

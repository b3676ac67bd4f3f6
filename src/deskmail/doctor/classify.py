"""Turn a refused login's server text into a specific diagnosis.

Servers say *why* a login failed only in free text (IMAP response codes like
``[AUTHENTICATIONFAILED]`` and SMTP enhanced codes help, but the provider's
own words carry the real reason). Matching strings is normally a smell; here it
is the whole point, so the patterns are kept in one table, each with the
provider wording it was written for, and checked most-specific first.
"""

from __future__ import annotations

import re

from deskmail.doctor.report import Code

_PATTERNS: tuple[tuple[Code, re.Pattern[str]], ...] = tuple(
    (code, re.compile(pattern, re.IGNORECASE))
    for code, pattern in (
        # Google: "534-5.7.9 Application-specific password required. Learn more at
        # https://support.google.com/mail/?p=InvalidSecondFactor" and IMAP
        # "[ALERT] Application-specific password required: https://… (Failure)".
        (Code.APP_PASSWORD_REQUIRED, r"application[- ]specific password"),
        (Code.APP_PASSWORD_REQUIRED, r"\bapp(lication)?[- ]passwords?\b"),
        (Code.APP_PASSWORD_REQUIRED, r"InvalidSecondFactor|\b5\.7\.9\b"),
        # Google, older: "534-5.7.14 <https://accounts.google.com/…> Please log in via
        # your web browser" / IMAP "[ALERT] Please log in via your web browser".
        # Yahoo/AOL: "…use an app password or sign in with a browser".
        (Code.APP_PASSWORD_REQUIRED, r"log ?in via your web browser|web login required|\b5\.7\.14\b"),
        # Microsoft 365: "535 5.7.139 Authentication unsuccessful, basic authentication
        # is disabled" / "SmtpClientAuthentication is disabled for the Tenant";
        # IMAP "AUTHENTICATE failed" after BasicAuthBlocked.
        (Code.OAUTH_REQUIRED, r"basic auth(entication)? (is )?(disabled|blocked)"),
        (Code.OAUTH_REQUIRED, r"BasicAuthBlocked|SmtpClientAuthentication is disabled"),
        (Code.OAUTH_REQUIRED, r"\boauth ?2?\b.*\b(required|only)\b|\bonly oauth\b"),
        # Gmail: "[ALERT] Your account is not enabled for IMAP use."; Outlook.com:
        # "User is authenticated but not connected."; generic "account disabled/locked".
        (Code.ACCOUNT_DISABLED, r"not enabled for (imap|pop3?)|(imap|pop3?) access is disabled"),
        (Code.ACCOUNT_DISABLED, r"authenticated but not connected"),
        (Code.ACCOUNT_DISABLED, r"account (is |has been )?(disabled|suspended|locked|blocked|deactivated)"),
        (Code.ACCOUNT_DISABLED, r"\[AUTHORIZATIONFAILED\]|\[CONTACTADMIN\]"),
        # Dovecot: "[AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS)
        # connections" (POP3) and "[PRIVACYREQUIRED]" (IMAP, RFC 5530).
        (Code.PLAINTEXT_LOGIN_DISABLED, r"plaintext authentication (is )?disallowed|\[PRIVACYREQUIRED\]"),
        # Dovecot: "Maximum number of connections from user+IP exceeded"; Gmail:
        # "[ALERT] Too many simultaneous connections. (Failure)"; POP3 "[IN-USE]".
        (Code.TOO_MANY_CONNECTIONS, r"too many (simultaneous |concurrent |parallel )?(connections|sessions)"),
        (Code.TOO_MANY_CONNECTIONS, r"too many (failed )?(login|authentication) attempts|too many logins"),
        (Code.TOO_MANY_CONNECTIONS, r"maximum number of connections|\[LIMIT\]|\[IN-USE\]|mailbox (is )?locked"),
    )
)


def classify_login_failure(text: str) -> Code:
    """The most specific code for a refused login, AUTH_FAILED when nothing more is known."""
    for code, pattern in _PATTERNS:
        if pattern.search(text):
            return code
    return Code.AUTH_FAILED


def mentions_too_many_connections(text: str) -> bool:
    return classify_login_failure(text) is Code.TOO_MANY_CONNECTIONS


_AUTH_REQUIRED = re.compile(
    r"\b530\b|\b5\.7\.0\b|authentication (is )?required|must (log in|authenticate)|not logged in", re.I
)
_RELAY = re.compile(r"relay|\b5\.7\.1\b|not permitted|not allowed|unauthori[sz]ed|access denied", re.I)


def smtp_needs_auth(code: int, text: str) -> bool:
    """A MAIL/RCPT refusal that means 'log in first' (530 / 5.7.0 / 'authentication required';
    Postfix's "5.7.1 Sender address rejected: not logged in")."""
    return code == 530 or bool(_AUTH_REQUIRED.search(text))


def smtp_relay_refusal(code: int, text: str) -> bool:
    """An RCPT refusal that means 'I will not relay for you' (554/550 5.7.1 'Relaying denied')."""
    return code >= 500 and bool(_RELAY.search(text))

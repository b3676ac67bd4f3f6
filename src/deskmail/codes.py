"""One catalogue of stable machine codes: the doctor's findings and the engine's errors.

A code names what went wrong independently of the words used to say it: interfaces key on it
(the CLI adds the command to type, the desktop application a button), scripts read it from
``--json``, tests assert it. Wording may improve between releases; a code does not change
meaning. The doctor's codes are documented in docs/doctor.md, the engine's in docs/errors.md;
a test keeps both in step with :data:`MEANINGS`. Network, TLS and login failures of the engine
carry the doctor's codes for the same causes (``connection_refused``, ``certificate_untrusted``,
``auth_failed`` …).
"""

from __future__ import annotations

from enum import StrEnum


class Code(StrEnum):
    """Stable machine codes. Meanings are in :data:`MEANINGS`."""

    OK = "ok"
    NOT_CHECKED = "not_checked"
    TIME_LIMIT = "time_limit"
    INTERNAL_ERROR = "internal_error"
    # dns
    DNS_NOT_FOUND = "dns_not_found"
    DNS_NO_ADDRESS = "dns_no_address"
    DNS_FAILED = "dns_failed"
    # tcp / ports
    CONNECTION_REFUSED = "connection_refused"
    CONNECTION_TIMEOUT = "connection_timeout"
    NETWORK_UNREACHABLE = "network_unreachable"
    PORT_BLOCKED = "port_blocked"
    PORT25_BLOCKED = "port25_blocked"
    IPV6_UNREACHABLE = "ipv6_unreachable"
    NO_PORT_REACHABLE = "no_port_reachable"
    # tls
    TLS_MODE_MISMATCH = "tls_mode_mismatch"
    TLS_VERSION = "tls_version"
    TLS_HANDSHAKE_FAILED = "tls_handshake_failed"
    CERTIFICATE_UNTRUSTED = "certificate_untrusted"
    CERTIFICATE_SELF_SIGNED = "certificate_self_signed"
    CERTIFICATE_HOSTNAME_MISMATCH = "certificate_hostname_mismatch"
    CERTIFICATE_EXPIRED = "certificate_expired"
    CLOCK_WRONG = "clock_wrong"
    CERTIFICATE_EXPIRING = "certificate_expiring"
    TLS_INTERCEPTION = "tls_interception"
    STARTTLS_INJECTION = "starttls_injection"
    ENCRYPTION_OFF = "encryption_off"
    # greeting / capabilities
    NO_RESPONSE = "no_response"
    GREETING_REFUSED = "greeting_refused"
    PROTOCOL_ERROR = "protocol_error"
    STARTTLS_MISSING = "starttls_missing"
    PLAINTEXT_LOGIN_DISABLED = "plaintext_login_disabled"
    PLAINTEXT_REFUSED = "plaintext_refused"
    # login
    AUTH_FAILED = "auth_failed"
    APP_PASSWORD_REQUIRED = "app_password_required"
    USERNAME_FORM = "username_form"
    ACCOUNT_DISABLED = "account_disabled"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    OAUTH_REQUIRED = "oauth_required"
    OAUTH_CLIENT_MISSING = "oauth_client_missing"
    OAUTH_TOKEN_EXPIRED = "oauth_token_expired"
    OAUTH_SCOPE_MISSING = "oauth_scope_missing"
    AUTH_NOT_ENABLED = "auth_not_enabled"
    AUTH_NOT_OFFERED = "auth_not_offered"
    # send / round trip
    RELAY_DENIED = "relay_denied"
    SEND_REFUSED = "send_refused"
    ROUND_TRIP_TIMEOUT = "round_trip_timeout"
    OVER_QUOTA = "over_quota"
    # settings
    SETTINGS_DIFFER = "settings_differ"
    PROVIDER_UNKNOWN = "provider_unknown"
    # --- the engine's own errors (docs/errors.md) ---
    ERROR = "error"
    CANCELLED = "cancelled"
    # discovery: what to know before typing a password (Requirement.code; with oauth_required and
    # app_password_required, which the doctor shares)
    APP_PASSWORD_IF_TWO_STEP = "app_password_if_two_step"
    ENABLE_IN_WEB_SETTINGS = "enable_in_web_settings"
    LOCAL_BRIDGE = "local_bridge"
    # usage: what a person gave
    USAGE = "usage"
    NOT_AN_ADDRESS = "not_an_address"
    BAD_ADDRESS = "bad_address"
    BAD_SECURITY = "bad_security"
    BAD_PROTOCOL = "bad_protocol"
    BAD_SETTINGS = "bad_settings"
    BAD_FLAG = "bad_flag"
    BAD_QUERY = "bad_query"
    FLAG_NOT_KEPT = "flag_not_kept"
    TWO_PASSWORD_SOURCES = "two_password_sources"
    NO_CHANGE = "no_change"
    MASS_DELETE = "mass_delete"
    NO_UPLOAD = "no_upload"
    GUI_MISSING = "gui_missing"
    ATTACHMENT_MISSING = "attachment_missing"
    ATTACHMENT_IS_FOLDER = "attachment_is_folder"
    NO_RECIPIENT = "no_recipient"
    BAD_TEMPLATE = "bad_template"
    LINE_BREAK_IN_HEADER = "line_break_in_header"
    SERVERS_UNKNOWN = "servers_unknown"
    PROTOCOL_NOT_OFFERED = "protocol_not_offered"
    # accounts and configuration
    CONFIG_INVALID = "config_invalid"
    ACCOUNT_EXISTS = "account_exists"
    NO_ACCOUNTS = "no_accounts"
    SEVERAL_ACCOUNTS = "several_accounts"
    NO_SUCH_ACCOUNT = "no_such_account"
    ACCOUNT_REMOVED = "account_removed"
    NO_SUCH_FOLDER = "no_such_folder"
    NO_SUCH_MESSAGE = "no_such_message"
    NO_SUCH_ATTACHMENT = "no_such_attachment"
    SAVE_FAILED = "save_failed"
    # the outbox (docs/outbox.md)
    NO_SUCH_OUTBOX_ENTRY = "no_such_outbox_entry"
    OUTBOX_STATE = "outbox_state"
    OUTBOX_BUSY = "outbox_busy"
    NO_SUCH_DRAFT = "no_such_draft"
    BAD_IDENTITY = "bad_identity"
    DUPLICATE_IDENTITY = "duplicate_identity"
    NO_SUCH_IDENTITY = "no_such_identity"
    PRIMARY_IDENTITY = "primary_identity"
    INTERNATIONAL_ADDRESS = "international_address"
    MESSAGE_TOO_LARGE = "message_too_large"
    MESSAGE_REFUSED = "message_refused"
    RECIPIENT_REFUSED = "recipient_refused"
    SEND_DEFERRED = "send_deferred"
    SEND_UNCERTAIN = "send_uncertain"
    # passwords
    NO_PASSWORD = "no_password"
    NO_KEYRING = "no_keyring"
    NO_PASSWORD_STORED = "no_password_stored"
    OAUTH_SIGN_IN_AGAIN = "oauth_sign_in_again"
    OAUTH_SIGN_IN_FAILED = "oauth_sign_in_failed"
    # network and security (the doctor's codes above name the finer causes)
    NETWORK = "network"
    SECURITY = "security"
    # the local store
    STORE_ERROR = "store_error"
    STORE_LOCKED = "store_locked"
    STORE_MISSING = "store_missing"
    STORE_NOT_READY = "store_not_ready"
    STORE_OLD_SCHEMA = "store_old_schema"
    STORE_NEW_SCHEMA = "store_new_schema"
    STORE_DAMAGED = "store_damaged"
    STORE_FULL = "store_full"
    STORE_IO = "store_io"
    MESSAGE_FILE_MISSING = "message_file_missing"
    # a folder's sync: what was held back (FolderResult.codes)
    DELETE_HELD = "delete_held"
    DELETED_TO_TRASH = "deleted_to_trash"
    UIDS_UNSTABLE = "uids_unstable"


# One line per code: what it means. docs/doctor.md and docs/errors.md expand each.
MEANINGS: dict[Code, str] = {
    Code.OK: "the check passed",
    Code.NOT_CHECKED: "not checked, because an earlier step failed or there was nothing to check",
    Code.TIME_LIMIT: "not checked, because the doctor's total time limit was reached",
    Code.INTERNAL_ERROR: "the doctor itself failed (a bug); the message says where",
    Code.DNS_NOT_FOUND: "the server name does not exist (NXDOMAIN): usually a typo",
    Code.DNS_NO_ADDRESS: "the name exists but has no IPv4/IPv6 address",
    Code.DNS_FAILED: "name lookup failed: no DNS server answered (offline, captive portal)",
    Code.CONNECTION_REFUSED: "the server actively refused the port (nothing listens, or a firewall rejects)",
    Code.CONNECTION_TIMEOUT: "no answer to the connection attempt: a firewall or the network drops it",
    Code.NETWORK_UNREACHABLE: "this computer has no route to the server (offline, VPN, IPv6 only)",
    Code.PORT_BLOCKED: "the configured port cannot be reached but another standard port works",
    Code.PORT25_BLOCKED: "port 25 is blocked (as many internet providers do) but the submission port 587 or 465 "
    "works",
    Code.IPV6_UNREACHABLE: "the server has only IPv6 addresses and this computer has no IPv6 connection",
    Code.NO_PORT_REACHABLE: "neither the configured port nor any standard alternative can be reached",
    Code.TLS_MODE_MISMATCH: "SSL/TLS chosen on a STARTTLS port, or STARTTLS chosen on an SSL/TLS port",
    Code.TLS_VERSION: "the server only speaks TLS older than 1.2",
    Code.TLS_HANDSHAKE_FAILED: "the encrypted connection could not be set up for another reason",
    Code.CERTIFICATE_UNTRUSTED: "the certificate is issued by a CA this computer does not trust",
    Code.CERTIFICATE_SELF_SIGNED: "the certificate is self-signed",
    Code.CERTIFICATE_HOSTNAME_MISMATCH: "the certificate is for a different server name",
    Code.CERTIFICATE_EXPIRED: "the certificate has expired",
    Code.CLOCK_WRONG: "the certificate is not valid yet by this computer's clock: the clock is wrong",
    Code.CERTIFICATE_EXPIRING: "the certificate expires within 14 days",
    Code.TLS_INTERCEPTION: "antivirus or a proxy replaces the server's certificate with its own",
    Code.STARTTLS_INJECTION: "data arrived between STARTTLS and the handshake: a man-in-the-middle sign",
    Code.ENCRYPTION_OFF: "the account is set to use no encryption",
    Code.NO_RESPONSE: "the port accepts connections but the server never says anything",
    Code.GREETING_REFUSED: "the server answered with a refusal instead of a greeting",
    Code.PROTOCOL_ERROR: "the server's answers are not the expected mail protocol",
    Code.STARTTLS_MISSING: "STARTTLS is not offered or refused: the password would travel in clear",
    Code.PLAINTEXT_LOGIN_DISABLED: "the server refuses logins without encryption (LOGINDISABLED)",
    Code.PLAINTEXT_REFUSED: "deskmail refuses to send the password without encryption",
    Code.AUTH_FAILED: "the server rejected the user name or password",
    Code.APP_PASSWORD_REQUIRED: "the provider wants an app password (two-step verification is on)",
    Code.USERNAME_FORM: "the login works with another form of the user name (full address vs local part)",
    Code.ACCOUNT_DISABLED: "the provider has disabled, locked or not enabled this access",
    Code.TOO_MANY_CONNECTIONS: "too many simultaneous connections or login attempts",
    Code.OAUTH_REQUIRED: "the provider only accepts OAuth (browser sign-in), not passwords",
    Code.OAUTH_CLIENT_MISSING: "OAuth2 sign-in needs a client ID registered with the provider, and none is "
    "configured (docs/oauth2.md)",
    Code.OAUTH_TOKEN_EXPIRED: "the server refused the OAuth2 access token, also after a refresh (expired, revoked, "
    "another user's, or mail access off)",
    Code.OAUTH_SCOPE_MISSING: "the OAuth2 token was not granted the permission (scope) the mail server needs",
    Code.AUTH_NOT_ENABLED: "the server requires SMTP authentication but the account does not log in",
    Code.AUTH_NOT_OFFERED: "the account logs in to SMTP but the server offers no authentication",
    Code.RELAY_DENIED: "the outgoing server refuses to send to outside addresses",
    Code.SEND_REFUSED: "the test message was refused",
    Code.ROUND_TRIP_TIMEOUT: "the test message was sent but did not arrive in time",
    Code.OVER_QUOTA: "the mailbox is full (over its storage quota): new mail is refused",
    Code.SETTINGS_DIFFER: "the settings differ from the provider's recommended settings",
    Code.PROVIDER_UNKNOWN: "the provider is not in the database, so the settings were not compared",
    Code.ERROR: "an error without a more precise code",
    Code.CANCELLED: "the work was stopped on request at a safe point; nothing finished is lost",
    Code.APP_PASSWORD_IF_TWO_STEP: "an app password is needed when 2-step verification is on for the account",
    Code.ENABLE_IN_WEB_SETTINGS: "access for mail programs (IMAP, or a mail password) must be switched on in the "
    "provider's web settings first",
    Code.LOCAL_BRIDGE: "the provider is reached through a bridge program on this computer (Proton Mail Bridge), "
    "with the password the bridge shows",
    Code.USAGE: "the request itself is wrong (a missing or contradictory value)",
    Code.NOT_AN_ADDRESS: "what was given as the account's e-mail address is not one",
    Code.BAD_ADDRESS: "a recipient is not an e-mail address",
    Code.BAD_SECURITY: "a security setting is not ssl, starttls or none",
    Code.BAD_PROTOCOL: "the incoming protocol is not imap or pop3",
    Code.BAD_SETTINGS: "a server setting is invalid (host name, port)",
    Code.BAD_FLAG: "a flag name is neither a known flag nor a valid keyword",
    Code.BAD_QUERY: "a search query cannot be read (the error names the position)",
    Code.FLAG_NOT_KEPT: "the server would not keep this keyword on the folder's messages (PERMANENTFLAGS)",
    Code.TWO_PASSWORD_SOURCES: "both a password variable and a password command were given",
    Code.NO_CHANGE: "a change was asked for without saying what to change",
    Code.MASS_DELETE: "many messages would be deleted at once: confirmation needed",
    Code.NO_UPLOAD: "messages saved in this folder cannot be uploaded (unknown, unsynced or POP3)",
    Code.GUI_MISSING: "the desktop application's Qt libraries (PySide6) are not installed",
    Code.ATTACHMENT_MISSING: "an attachment file does not exist",
    Code.ATTACHMENT_IS_FOLDER: "an attachment is a folder, not a file",
    Code.NO_RECIPIENT: "the message has no recipient",
    Code.BAD_TEMPLATE: ("a message written in a text editor (a template of header lines and text) cannot be read: "
                        "an unknown header line, a line break in a header, a missing attachment (the error names the "
                        "line)"),
    Code.LINE_BREAK_IN_HEADER: ("a header value (subject, addresses) holds a line break, also one hidden in an encoded "
                                "word: refused, it would be written out as a header line of its own"),
    Code.SERVERS_UNKNOWN: "the servers of the domain are not known and were not found: give them by hand",
    Code.PROTOCOL_NOT_OFFERED: "the provider offers no server for the protocol asked for",
    Code.CONFIG_INVALID: "the accounts file cannot be read or has an invalid value",
    Code.ACCOUNT_EXISTS: "an account of that name exists already",
    Code.NO_ACCOUNTS: "no account is set up yet",
    Code.SEVERAL_ACCOUNTS: "several accounts exist and none was named",
    Code.NO_SUCH_ACCOUNT: "no account has that name or address",
    Code.ACCOUNT_REMOVED: "the message belongs to an account that was removed",
    Code.NO_SUCH_FOLDER: "the account has no folder of that name (as of the last sync)",
    Code.NO_SUCH_MESSAGE: "no stored message has that id",
    Code.NO_SUCH_OUTBOX_ENTRY: "the outbox holds no message with that id",
    Code.OUTBOX_STATE: "the outbox message is not in a state that allows this (e.g. retrying one that was sent)",
    Code.OUTBOX_BUSY: "another deskmail is sending from the outbox right now",
    Code.NO_SUCH_DRAFT: "there is no draft with that reference (sent, discarded or replaced by a newer version)",
    Code.BAD_IDENTITY: "an identity's address, name or Reply-To is not valid (not an address, or a line break in it)",
    Code.DUPLICATE_IDENTITY: "the account already has an identity with that address",
    Code.NO_SUCH_IDENTITY: "no identity of the account (or of any account) has that address",
    Code.PRIMARY_IDENTITY: "the account's own address cannot be removed or changed as an identity",
    Code.INTERNATIONAL_ADDRESS: ("an address has non-ASCII letters before the @ and the outgoing server does not offer "
                       "SMTPUTF8: refused before sending"),
    Code.MESSAGE_TOO_LARGE: "the message is larger than the outgoing server's SIZE limit: refused before upload",
    Code.MESSAGE_REFUSED: ("the outgoing server refused the message or its sender permanently (5xx); "
                           "it stays in the outbox, not sent"),
    Code.RECIPIENT_REFUSED: "the outgoing server refused recipients permanently (5xx); any others got the message",
    Code.SEND_DEFERRED: "the outgoing server asked to try later (4xx): the message waits in the outbox",
    Code.SEND_UNCERTAIN: ("the connection failed after the message was handed over, before the server's reply: "
                          "it may have been sent; never re-sent automatically"),
    Code.NO_SUCH_ATTACHMENT: "the message has no attachment of that number",
    Code.SAVE_FAILED: "an attachment could not be saved into the folder given",
    Code.NO_PASSWORD: "the account's password source gave no password",
    Code.NO_KEYRING: "no usable system keyring can hold the password",
    Code.NO_PASSWORD_STORED: "the keyring holds no password for the account",
    Code.OAUTH_SIGN_IN_AGAIN: "the OAuth2 sign-in is no longer valid (revoked, expired or never done): sign in again",
    Code.OAUTH_SIGN_IN_FAILED: "the OAuth2 sign-in in the browser (or with a device code) did not complete",
    Code.NETWORK: "the server cannot be reached or the connection broke",
    Code.SECURITY: "the connection would not be secure enough",
    Code.STORE_ERROR: "the local mail store cannot be read or written",
    Code.STORE_LOCKED: "another deskmail process is working on the mail store",
    Code.STORE_MISSING: "a folder's local copy is missing or unreadable; nothing was deleted on the server",
    Code.STORE_NOT_READY: "the mail index does not exist yet, or the first sync is still creating it",
    Code.STORE_OLD_SCHEMA: "the mail index is of an older version; the next sync upgrades it",
    Code.STORE_NEW_SCHEMA: "the mail index was written by a newer deskmail",
    Code.STORE_DAMAGED: "the mail index is damaged; a sync sets it aside and rebuilds it from the mail files",
    Code.STORE_FULL: "the disk holding the mail store is full",
    Code.STORE_IO: "the mail store cannot be read or written (an I/O error, permissions, a folder in the way)",
    Code.MESSAGE_FILE_MISSING: "the message's file is gone from the mail folder (another program removed it)",
    Code.DELETE_HELD: "a delete or move waits: the server cannot expunge one message alone (no UIDPLUS) and "
                      "another program has marked other messages in the folder deleted",
    Code.DELETED_TO_TRASH: "a delete for good became a move to Trash: expunging would have removed messages "
                           "another program marked deleted (the server has no UIDPLUS)",
    Code.UIDS_UNSTABLE: "the server's UIDs of a folder are not stable (UIDNEXT went backwards, or a UID now names "
                        "another message under the same UIDVALIDITY): that folder is not synced, nothing is "
                        "changed here or there; the other folders sync",
}

# The codes the doctor reports (docs/doctor.md); the others are the engine's (docs/errors.md).
DOCTOR_CODES = frozenset(Code(c) for c in (
    "ok",
    "not_checked",
    "time_limit",
    "internal_error",
    "dns_not_found",
    "dns_no_address",
    "dns_failed",
    "connection_refused",
    "connection_timeout",
    "network_unreachable",
    "port_blocked",
    "port25_blocked",
    "ipv6_unreachable",
    "no_port_reachable",
    "tls_mode_mismatch",
    "tls_version",
    "tls_handshake_failed",
    "certificate_untrusted",
    "certificate_self_signed",
    "certificate_hostname_mismatch",
    "certificate_expired",
    "clock_wrong",
    "certificate_expiring",
    "tls_interception",
    "starttls_injection",
    "encryption_off",
    "no_response",
    "greeting_refused",
    "protocol_error",
    "starttls_missing",
    "plaintext_login_disabled",
    "plaintext_refused",
    "auth_failed",
    "app_password_required",
    "username_form",
    "account_disabled",
    "too_many_connections",
    "oauth_required",
    "oauth_client_missing",
    "oauth_token_expired",
    "oauth_scope_missing",
    "auth_not_enabled",
    "auth_not_offered",
    "relay_denied",
    "send_refused",
    "round_trip_timeout",
    "over_quota",
    "settings_differ",
    "provider_unknown",
))

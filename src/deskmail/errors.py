"""One exception hierarchy for everything deskmail reports to a person.

Every error carries three sentences: *what* happened, the likely *cause* and
the *remedy*. Interfaces (CLI, GUI) print those and never a traceback.

    DeskmailError
    ├── UsageError                 bad command-line input
    │   └── QueryError             a search query that cannot be read (with its position)
    ├── ConfigError                unreadable / invalid configuration file
    ├── NotFoundError              no such account / message
    ├── SecretError                no password available (keyring, command, env)
    ├── NetworkError (OSError)     DNS, refused, unreachable
    │   └── ConnectTimeout (TimeoutError)
    ├── SecurityError              anything that would weaken the connection's security
    │   ├── CertificateError       certificate untrusted / expired / wrong name
    │   ├── StartTLSUnavailable    STARTTLS required but not offered (possible attack)
    │   └── PlaintextRefused       a password would travel in clear
    ├── AuthError                  the server answered and rejected the credentials
    ├── ProtocolError              the server said something we cannot use
    │   └── SendError              SMTP refused the message (per-recipient detail)
    └── StoreError                 the local store cannot be written or read
        └── StoreLocked            another deskmail process holds the store

``retryable`` says whether trying again later can help (network trouble) or
not (a wrong password will stay wrong). Beside the text, an error carries
structured fields an interface can act on without parsing words: ``code`` (a
stable identifier, shared with the doctor's findings), ``account``, ``host``,
``port`` and ``folder``. Texts below the façade never name a CLI command: the CLI
adds "run `deskmail doctor`" where it fits, the GUI a button.
"""

from __future__ import annotations

from deskmail.codes import Code


class DeskmailError(Exception):
    """Base of every expected failure. ``str()`` gives the one-paragraph text."""

    exit_code = 1
    retryable = False

    def __init__(self, what: str, cause: str = "", remedy: str = "", *, code: str = "", account: str = "",
                 host: str = "", port: int = 0, folder: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.cause = cause
        self.remedy = remedy
        self.code = code or type(self).default_code
        self.account = account
        self.host = host
        self.port = port
        self.folder = folder

    default_code: str = Code.ERROR

    def __str__(self) -> str:
        parts = [self.what.rstrip(".") + "."]
        if self.cause:
            parts.append("Likely cause: " + self.cause.rstrip(".") + ".")
        if self.remedy:
            parts.append("What to do: " + self.remedy.rstrip(".") + ".")
        return " ".join(parts)

    def to_dict(self) -> dict[str, str | int]:
        d: dict[str, str | int] = {
            "error": type(self).__name__,
            "code": self.code,
            "what": self.what,
            "cause": self.cause,
            "remedy": self.remedy,
        }
        for key in ("account", "host", "port", "folder"):
            if getattr(self, key):
                d[key] = getattr(self, key)
        return d


class UsageError(DeskmailError):
    default_code = Code.USAGE
    exit_code = 2


class QueryError(UsageError):
    """A search query that cannot be read; ``position`` is the 0-based index of the problem in it."""

    default_code = Code.BAD_QUERY

    def __init__(self, what: str, cause: str = "", remedy: str = "", *, position: int = 0) -> None:
        super().__init__(what, cause, remedy)
        self.position = position


class ConfigError(DeskmailError):
    default_code = Code.CONFIG_INVALID
    exit_code = 3


class NotFoundError(DeskmailError):
    default_code = Code.ERROR
    exit_code = 4


class SecretError(DeskmailError):
    default_code = Code.NO_PASSWORD
    exit_code = 5


class NetworkError(DeskmailError, OSError):
    default_code = Code.NETWORK
    exit_code = 6
    retryable = True


class ConnectTimeout(NetworkError, TimeoutError):
    pass


class SecurityError(DeskmailError):
    default_code = Code.SECURITY
    exit_code = 7


class CertificateError(SecurityError):
    default_code = Code.CERTIFICATE_UNTRUSTED
    pass


class StartTLSUnavailable(SecurityError):
    default_code = Code.STARTTLS_MISSING
    pass


class PlaintextRefused(SecurityError):
    default_code = Code.PLAINTEXT_REFUSED
    pass


class AuthError(DeskmailError):
    default_code = Code.AUTH_FAILED
    exit_code = 8


class ProtocolError(DeskmailError):
    default_code = Code.PROTOCOL_ERROR
    exit_code = 9


class SendError(ProtocolError):
    default_code = Code.SEND_REFUSED

    def __init__(
        self,
        what: str,
        cause: str = "",
        remedy: str = "",
        refused: dict[str, str] | None = None,
        *,
        code: str = "",
        account: str = "",
        host: str = "",
        port: int = 0,
    ) -> None:
        super().__init__(what, cause, remedy, code=code, account=account, host=host, port=port)
        self.refused = refused or {}


class StoreError(DeskmailError):
    default_code = Code.STORE_ERROR
    exit_code = 10


class StoreLocked(StoreError):
    default_code = Code.STORE_LOCKED
    retryable = True


class Cancelled(DeskmailError):
    default_code = Code.CANCELLED
    """The caller's CancelToken stopped the work at a safe point; everything finished is kept."""

    exit_code = 130

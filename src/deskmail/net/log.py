"""The opt-in protocol log (``--debug``).

Every handler gets :class:`deskmail.secrets.RedactingFilter`, so a password
that slipped into a log line anyway (a server echoing it, a library's own
debug output) is replaced by ``****`` before it is written. Protocol adapters
also redact AUTH/LOGIN/PASS lines themselves, which covers passwords this
process has not seen yet.
"""

from __future__ import annotations

import sys
from pathlib import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms of every sync); mypy reads it as True
if TYPE_CHECKING:
    from typing import Any

PROTOCOL_LOGGER = "deskmail.protocol"


class _ProtocolLog:
    """``logging.getLogger(PROTOCOL_LOGGER)``, imported only once ``--debug`` asks for it.

    The logging package costs several milliseconds to import, and a plain
    `deskmail sync` never logs: adapters check :attr:`enabled` or call
    :meth:`debug`, which does nothing until :func:`enable_debug_log` ran.
    """

    enabled = False

    def debug(self, msg: str, *args: Any) -> None:
        if self.enabled:
            import logging

            logging.getLogger(PROTOCOL_LOGGER).debug(msg, *args)


protocol_log = _ProtocolLog()


def enable_debug_log(file: Path | None, *, to_stderr: bool = True) -> None:
    import logging

    from deskmail.secrets import RedactingFilter

    handlers: list[logging.Handler] = []
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(file, encoding="utf-8"))
    if to_stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    fmt = logging.Formatter("%(asctime)s %(name)s %(message)s")
    for h in handlers:
        h.setFormatter(fmt)
        h.addFilter(RedactingFilter())
    logger = logging.getLogger("deskmail")
    logger.setLevel(logging.DEBUG)
    for h in handlers:
        logger.addHandler(h)
    protocol_log.enabled = True


def redact_command(line: str) -> str:
    """Hide the credential part of a client command line (IMAP LOGIN, AUTH, POP3 PASS)."""
    words = line.split()
    upper = [w.upper() for w in words]
    for verb in ("LOGIN", "AUTHENTICATE", "AUTH", "PASS", "APOP"):
        if verb in upper[:2]:
            i = upper.index(verb)
            keep = i + (2 if verb in ("AUTH", "AUTHENTICATE") else 1)
            if verb == "LOGIN":
                keep = i + 2  # show the user name, hide the password
            return " ".join([*words[:keep], "****"]) if len(words) > keep else line
    return line

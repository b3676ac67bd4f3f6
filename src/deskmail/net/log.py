"""The opt-in protocol log (``--debug``).

Lines are written as the adapters give them; nothing scans them afterwards.
Credentials never reach it because the adapters log what they send from
:class:`deskmail.protocol.core.Segment`'s shown form (``****`` where the secret
is), and hide a server's answer to credentials when it repeats them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

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

    handlers: list[logging.Handler] = []
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(file, encoding="utf-8"))
    if to_stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    fmt = logging.Formatter("%(asctime)s %(name)s %(message)s")
    for h in handlers:
        h.setFormatter(fmt)
    logger = logging.getLogger("deskmail")
    logger.setLevel(logging.DEBUG)
    for h in handlers:
        logger.addHandler(h)
    protocol_log.enabled = True

"""Synchronisation of accounts with their servers.

:func:`sync_account` picks the engine: two-way IMAP (:mod:`.imap_sync`) or POP3
download (:mod:`.pop3_sync`). Both keep the store's durability contract: a message
counts as synced only when its file is durable and its index row committed.
"""

from __future__ import annotations

# Imported where used: `deskmail.cli.fastpath` must start its threads before the
# model, the store and the engine are imported (that is the whole point of it).
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deskmail.events import CancelToken, Listener
    from deskmail.model import Account
    from deskmail.secrets import Secret
    from deskmail.store import Store
    from deskmail.sync.imap_sync import FolderResult


def sync_account(
    account: Account, password: Secret, store: Store, *, listener: Listener | None = None,
    cancel: CancelToken | None = None, folders: list[str] | None = None, timeout: float | None = None,
    redownload: bool = False, headers_only: bool = False, dry_run: bool = False,
) -> list[FolderResult]:
    """Sync one account; ``listener`` hears the typed events, ``cancel`` stops it at a safe point
    (raising :class:`deskmail.errors.Cancelled`); ``dry_run`` plans only (each result's ``plan``)."""
    from deskmail.model import Protocol

    timeout = account.timeout if timeout is None else timeout
    if account.incoming.protocol is Protocol.POP3:
        from deskmail.protocol.pop3 import open_pop3
        from deskmail.sync.pop3_sync import forget_ops, sync_pop3_account

        settled: list[int] = []
        with open_pop3(account, password, timeout=timeout) as pop:
            result = sync_pop3_account(account, store, pop, listener=listener, cancel=cancel,
                                       headers_only=headers_only, settled=settled, dry_run=dry_run,
                                       redownload=redownload)
        forget_ops(store, settled)  # QUIT went through: the DELEs happened
        return [result]
    from deskmail.protocol.imap import open_imap
    from deskmail.sync.imap_sync import sync_imap_account

    with open_imap(account, password, timeout=timeout) as imap:
        return sync_imap_account(account, store, imap, listener=listener, cancel=cancel, folders=folders,
                                 redownload=redownload, dry_run=dry_run,
                                 reopen=lambda: open_imap(account, password, timeout=timeout))


__all__ = ["sync_account"]

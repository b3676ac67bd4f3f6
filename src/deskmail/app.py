"""The engine's façade: the one API the CLI and the desktop application call.

Everything a front-end does goes through :class:`Deskmail`: accounts (discover, verify, add,
remove, update, passwords), sync and watch, the local mailbox (list, read, flag, move, delete,
folders), sending and the doctor. It asks nothing and prints nothing: a decision a person must
make arrives as a callback the caller passed (``confirm``, ``choose_protocol``), progress as
typed events (:mod:`deskmail.events`), failures as :class:`deskmail.errors.DeskmailError` with
structured fields. Long operations take a :class:`deskmail.events.CancelToken`.

Calls are safe from any thread; each opens its own store handle (SQLite connections are not
shared between threads).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from deskmail import config
from deskmail.codes import Code
from deskmail.errors import ConfigError, DeskmailError, NotFoundError, UsageError
from deskmail.model import Account, Identity, MessageSummary, PasswordSource, Protocol, SearchHit, ThreadSummary
from deskmail.secrets import Secret

if TYPE_CHECKING:
    from email.message import EmailMessage

    from deskmail import mailbox, setup
    from deskmail.discovery import DiscoveryResult
    from deskmail.doctor.report import Finding, Report
    from deskmail.events import CancelToken, Listener
    from deskmail.oauth2.flows import DeviceCode
    from deskmail.oauth2.providers import OAuth2Provider
    from deskmail.outbox.compose import Draft
    from deskmail.outbox.deliver import FlushResult
    from deskmail.outbox.drafts import DraftInfo, LocalDrafts, ServerDrafts
    from deskmail.outbox.queue import Outbox, OutboxEntry
    from deskmail.render import AttachmentInfo, Rendered
    from deskmail.store import Store
    from deskmail.store.indexer import Follower
    from deskmail.sync.runner import SessionSource, SyncRun
    from deskmail.sync.watch import Report as WatchReport


@dataclass(frozen=True, slots=True)
class RemovedAccount:
    """An account just removed, and where its downloaded mail stays."""

    account: Account
    mail_dir: Path | None  # where its downloaded mail stays, if anything was downloaded


@dataclass(frozen=True, slots=True)
class SentMessage:
    """What :meth:`Deskmail.send` did: the message is in the outbox (``entry``) and, unless only queued, was
    delivered (``entry.state``: sent, deferred, failed, uncertain; queued when ``queue_only``)."""

    message: EmailMessage  # its headers and text; attached files are not read into it (the outbox file has them)
    recipients: tuple[str, ...]
    entry: OutboxEntry
    error: DeskmailError | None = None  # why it is not (wholly) sent: deferred, failed, uncertain, refused recipients
    sent_folder: str = ""  # where the copy was saved (an IMAP folder, a file for POP3), "" if not (yet)
    copy_error: DeskmailError | None = None  # the message went out, but its copy in Sent could not be saved yet

    @property
    def state(self) -> str:
        return self.entry.state


@dataclass(frozen=True, slots=True)
class MessageView:
    """One message ready to show: its summary and its rendered reading."""

    summary: MessageSummary
    reading: Rendered


class Deskmail:
    """One user's deskmail: their accounts, their local mail store, their servers."""

    def __init__(self, paths: config.Paths | None = None, *, keep_connections: bool = False,
                 accounts_loader: Callable[[], dict[str, Account]] | None = None) -> None:
        """``keep_connections``: keep IMAP sessions logged in between syncs (a long-running program;
        call :meth:`close` at the end). A one-shot command leaves it off. ``accounts_loader``: where
        the accounts come from, if not the accounts file as :mod:`deskmail.config` reads it."""
        self.paths = paths or config.paths()
        self._lock = threading.Lock()
        self._load = accounts_loader or (lambda: config.load_accounts(self.paths))
        self._token_readers = threading.local()
        self._token_stores: list[tuple[int, Store]] = []
        self._sessions = None
        if keep_connections:
            from deskmail.sync.sessions import SessionPool

            self._sessions = SessionPool()

    def close(self) -> None:
        """Log out of the kept sessions; close the change-token handles."""
        if self._sessions is not None:
            self._sessions.close()
        with self._lock:
            stores, self._token_stores = self._token_stores, []
        for thread, store in stores:
            if thread == threading.get_ident():  # (a connection is closed by its own thread; the others
                store.close()  # go with their threads)
        self._token_readers = threading.local()

    def __enter__(self) -> Deskmail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- accounts -----------------------------------------------------------------------------

    def accounts(self) -> dict[str, Account]:
        return self._load()

    def account(self, name: str | None = None) -> Account:
        """The named account (by name or address), or the only one."""
        return config.resolve_account(name, self.accounts())

    def provider_dirs(self) -> tuple[str, ...]:
        """Drop-in clientConfig files of the user (``<config>/providers/*.xml``), after the bundled ones."""
        d = self.paths.config_dir / "providers"
        return (str(d),) if d.is_dir() else ()

    def discover(self, address: str, *, offline: bool = False, deadline: float = 8.0) -> DiscoveryResult:
        """Every settings candidate for ``address``, best first; nothing is sent to any mail server."""
        from deskmail.discovery import DiscoveryOptions, Origin, discover

        options = DiscoveryOptions(deadline=deadline, provider_dirs=self.provider_dirs())
        if offline:
            options = options.clone(sources=frozenset({Origin.DATABASE}))
        return discover(address, options=options)

    def build_account(self, settings: setup.ManualSettings) -> Account:
        """An account from hand-given settings, the gaps filled from the provider database; not saved."""
        from deskmail import setup

        return setup.build_account(settings, self.provider_dirs())

    def candidates(self, settings: setup.ManualSettings, *,
                   choose_protocol: Callable[[frozenset[str]], str] | None = None,
                   on_network: Callable[[], None] | None = None) -> list[setup.Candidate]:
        """The settings to try for a new account: the hand-given ones, else what discovery finds."""
        from deskmail import setup

        found = setup.candidates_for(settings, self.provider_dirs(), choose_protocol=choose_protocol,
                                     on_network=on_network)
        _check_new(found[0].account.name, self.accounts())
        return found

    def check_keyring(self) -> None:
        """Raise the clear "no usable keyring" error now, before a person types a password for nothing."""
        from deskmail.secrets import check_keyring

        check_keyring()

    def verify(self, account: Account, password: Secret, *, timeout: float = 30.0) -> None:
        """Log in to the incoming and the outgoing server; raises the first failure."""
        from deskmail import setup

        setup.verify_account(account, password, timeout=timeout)

    def verify_candidates(self, candidates: Sequence[setup.Candidate], password: Secret, *,
                          confirm: Callable[[setup.Candidate], bool],
                          on_event: Callable[[setup.SetupEvent], None] = lambda event: None) -> setup.Verification:
        from deskmail import setup

        return setup.verify_candidates(candidates, password, confirm=confirm, on_event=on_event)

    def add_account(self, account: Account, password: Secret | None = None) -> Account:
        """Save ``account`` (its password into the keyring when that is its source)."""
        with self._lock:
            accounts = self.accounts()
            _check_new(account.name, accounts)
            if account.password.kind == "keyring" and account.incoming.auth != "oauth2":
                if password is None:
                    raise UsageError("No password given for the keyring", code=Code.NO_PASSWORD, account=account.name)
                from deskmail.secrets import store_in_keyring

                store_in_keyring(account.name, password.reveal())
            accounts[account.name] = account
            config.save_accounts(accounts, self.paths)
        return account

    def update_account(self, account: Account) -> Account:
        """Replace the saved settings of the account of the same name."""
        with self._lock:
            accounts = self.accounts()
            if account.name not in accounts:  # (by name only: an address must not make a second entry)
                raise NotFoundError(f"There is no account named {account.name!r}", "", "add it first",
                                    code=Code.NO_SUCH_ACCOUNT, account=account.name)
            accounts[account.name] = account
            config.save_accounts(accounts, self.paths)
        return account

    def remove_account(self, name: str) -> RemovedAccount:
        """Forget an account and its stored password; its downloaded mail stays on disk."""
        with self._lock:
            accounts = self.accounts()
            a = config.resolve_account(name, accounts)
            del accounts[a.name]
            config.save_accounts(accounts, self.paths)
        if a.password.kind == "keyring":
            from deskmail.oauth2.tokens import forget
            from deskmail.secrets import delete_from_keyring

            delete_from_keyring(a.name)
            forget(a.name)
        mail = self.paths.mail_dir / a.name
        return RemovedAccount(a, mail if mail.is_dir() else None)

    def password(self, account: Account) -> Secret:
        """The account's password from its source (keyring, command, environment variable)."""
        from deskmail.secrets import get_password

        return get_password(account)

    def set_password(self, name: str | None, password: Secret, *, verify: bool = True) -> Account:
        """Keep a new password (or app password) in the keyring; the account then reads it from there."""
        account = self.account(name)
        if verify:
            self.verify(account, password)
        from deskmail.secrets import store_in_keyring

        store_in_keyring(account.name, password.reveal())
        if account.password.kind != "keyring":
            account = self.update_account(replace(account, password=PasswordSource("keyring")))
        return account

    # --- identities: the From-addresses of an account, with their signatures (docs/outbox.md) ------------

    def identities(self, account: str | None = None) -> list[Identity]:
        """The account's identities: its own address first, then the others."""
        return list(self.account(account).all_identities())

    def add_identity(self, account: str | None, identity: Identity) -> Identity:
        """Let the account send as another address; ``duplicate_identity`` when it already does."""
        with self._lock:
            a = self.account(account)
            if a.identity(identity.address) is not None:
                raise UsageError(f"The account {a.name!r} already sends as {identity.address}", "",
                                 "edit that identity instead", code=Code.DUPLICATE_IDENTITY, account=a.name)
            self._save_account(replace(a, identities=(*a.identities, identity)))
        return identity

    def update_identity(self, account: str | None, identity: Identity, address: str = "") -> Identity:
        """Replace the identity of ``address`` (default: ``identity.address``) with ``identity``. The primary's
        name, Reply-To and signature can change, its address cannot (``primary_identity``)."""
        from deskmail.outbox.identities import identity_of

        with self._lock:
            a = self.account(account)
            old = identity_of(a, address or identity.address)
            if old.address.lower() == a.email.lower():
                if identity.address.lower() != a.email.lower():
                    raise UsageError(f"The address {a.email} is the account's own", "it is what the account logs "
                                     "in and is known as", "add the new address as another identity",
                                     code=Code.PRIMARY_IDENTITY, account=a.name)
                changed = replace(a, display_name=identity.name, reply_to=identity.reply_to,
                                  signature=identity.signature)
            else:
                other = a.identity(identity.address)
                if other is not None and other.address.lower() != old.address.lower():
                    raise UsageError(f"The account {a.name!r} already sends as {identity.address}", "",
                                     "edit that identity instead", code=Code.DUPLICATE_IDENTITY, account=a.name)
                changed = replace(a, identities=tuple(identity if i == old else i for i in a.identities))
            self._save_account(changed)
        return identity

    def remove_identity(self, account: str | None, address: str) -> Identity:
        """Stop sending as ``address``; the account's own address cannot be removed (``primary_identity``)."""
        from deskmail.outbox.identities import identity_of

        with self._lock:
            a = self.account(account)
            old = identity_of(a, address)
            if old.address.lower() == a.email.lower():
                raise UsageError(f"{a.email} is the account's own address and cannot be removed", "",
                                 "remove the whole account instead, or another of its identities",
                                 code=Code.PRIMARY_IDENTITY, account=a.name)
            self._save_account(replace(a, identities=tuple(i for i in a.identities if i != old)))
        return old

    def sender_account(self, sender: str) -> Account:
        """The account that sends as ``sender`` (an address): the first one, by name, that has it."""
        from deskmail.outbox.compose import sender_address

        address = sender_address(sender)
        for _name, a in sorted(self.accounts().items()):
            if a.identity(address) is not None and address:
                return a
        raise NotFoundError(f"No account sends as {address!r}", "the address is not one of any account's "
                            "identities", "add it to an account as an identity first", code=Code.NO_SUCH_IDENTITY)

    def _save_account(self, account: Account) -> None:
        """(under ``self._lock``) Save one account's changed settings."""
        accounts = self.accounts()
        accounts[account.name] = account
        config.save_accounts(accounts, self.paths)

    # --- OAuth2 sign-in (docs/oauth2.md) ---------------------------------------------------------------

    def oauth2_provider(self, account: Account) -> OAuth2Provider | None:
        """Who issues the account's tokens (built in, or from deskmail.toml); None when nobody known does."""
        from deskmail.oauth2.providers import provider_for

        return provider_for(account, self.paths)

    def use_oauth2(self, account: Account, choice: bool | None = True) -> Account:
        """``account`` set to sign in with OAuth2 (True), a password (False), or as its provider needs (None);
        not saved. Raises ``oauth_client_missing`` when OAuth2 is wanted and no client ID is configured."""
        from deskmail import setup

        return setup.with_oauth2(account, choice, self.paths)

    def oauth2_sign_in(self, account: Account | str | None = None, *,
                       open_url: Callable[[str], None] | None = None,
                       show_code: Callable[[DeviceCode], None] | None = None, device: bool = False,
                       cancel: CancelToken | None = None, timeout: float = 300.0, verify: bool = True) -> Account:
        """Sign the account in with OAuth2 and keep the tokens in the keyring (also "sign in again").

        ``account``: a saved account's name (its settings are switched to OAuth2 if they were not), or an
        unsaved :class:`Account` (the wizard: sign in, then :meth:`add_account` without a password).
        In the browser: ``open_url(url)`` must show the page (the loopback listener waits ``timeout``
        seconds for it); with ``device``: ``show_code(code)`` shows what to type where. Both are called
        from this (worker) thread. With ``verify`` both servers are logged in to afterwards. Safe to
        call from a worker thread; ``cancel`` stops the wait.
        """
        from deskmail import setup

        saved = not isinstance(account, Account)
        target = self.account(account) if not isinstance(account, Account) else account
        switched = setup.with_oauth2(target, True, self.paths)
        setup.oauth2_sign_in(switched, self.paths, open_url=open_url, show_code=show_code, device=device,
                             cancel=cancel, timeout=timeout, verify=verify)
        if saved and switched != target:
            self.update_account(switched)
        return switched

    # --- sync ------------------------------------------------------------------------------------

    def sync(self, names: Sequence[str] | None = None, *, folders: list[str] | None = None,
             redownload: bool = False, headers_only: bool = False, dry_run: bool = False,
             listener: Listener | None = None, cancel: CancelToken | None = None,
             early: Mapping[str, SessionSource] | None = None,
             on_index_rebuilt: Callable[[Path], None] | None = None, flush_outbox: bool = True) -> SyncRun:
        """Sync the named accounts (default: all) with their servers; failures are in the result.

        ``listener`` hears typed progress events (from worker threads); ``cancel`` stops every account
        at its next safe point; ``dry_run`` only plans (``SyncRun.plans``) and changes nothing.
        ``early``: sessions opened before (the command line's start-up path); otherwise kept sessions
        are used when this façade keeps connections. ``flush_outbox``: afterwards, send what the outbox
        holds that is due (``listener`` hears it as ``OutboxProgress``; :meth:`outbox` shows the outcome).
        """
        from deskmail.sync.runner import sync_accounts

        targets = self._targets(names)
        sessions: Mapping[str, SessionSource] | None = early
        if sessions is None and self._sessions is not None and not dry_run:
            sessions = self._sessions.for_accounts(targets)
        with self._writer() as store:
            if store.rebuilt_from is not None and on_index_rebuilt is not None:
                on_index_rebuilt(store.rebuilt_from)
            if dry_run:
                return sync_accounts(targets, self.paths.data_dir, folders=folders, redownload=redownload,
                                     headers_only=headers_only, listener=listener, cancel=cancel, dry_run=True,
                                     early=sessions)
            indexing = _Indexing(self.paths.data_dir, listener)
            if store.unindexed() or store.is_empty():
                # Left over, an index from before search or rebuilt (indexed while this sync runs), or a
                # first sync (the process starts while the download does).
                indexing.follow()
            try:
                run = sync_accounts(targets, self.paths.data_dir, folders=folders, redownload=redownload,
                                    headers_only=headers_only, listener=indexing.hear, cancel=cancel,
                                    early=sessions)
            finally:
                following = indexing.finish()
            if not following:
                store.catch_up()  # the indexer could not start
        if flush_outbox:
            self._flush_due([a.name for a in targets], listener, cancel)
        return run

    def _flush_due(self, names: Sequence[str] | None, listener: Listener | None = None,
                   cancel: CancelToken | None = None) -> None:
        """Send what is due, if the outbox holds anything (a directory listing when it is empty). What went
        wrong stays in the messages' records, for :meth:`outbox` to show; nothing is raised."""
        try:
            with os.scandir(self._outbox_root() / "state") as it:
                if not any(e.name.endswith(".json") for e in it):
                    return
        except OSError:
            return
        try:
            self.flush_outbox(names, listener=listener, cancel=cancel)
        except DeskmailError:
            pass  # (the outbox cannot be read or written: the next send or flush says so)

    def watch(self, names: Sequence[str] | None, stop: threading.Event, report: WatchReport, *,
              folders: Sequence[str] = ("INBOX",), interval: float = 300.0, notify_command: str = "",
              notify_desktop: bool = True,
              listener: Listener | None = None) -> dict[str, DeskmailError]:
        """Stay in sync until ``stop`` is set (IDLE push); returns the accounts stopped by a fatal error.

        ``report`` hears what a person should read (watching, reconnecting…); ``listener`` the typed
        events of every sync the watch runs (``FolderFinished`` after each)."""
        from deskmail.sync.watch import WatchOptions, watch

        targets = self._targets(names)
        options = WatchOptions(folders=tuple(folders), interval=interval, notify_command=notify_command,
                               notify_desktop=notify_desktop,
                               listener=listener)
        flusher = threading.Thread(target=self._flush_while, args=([a.name for a in targets], stop, listener,
                                                                    min(interval, 60.0)),
                                   name="deskmail-outbox", daemon=True)
        with self._writer():
            flusher.start()
            try:
                return watch(targets, self.paths.data_dir, options, stop, report)
            finally:
                flusher.join(timeout=5)

    def _flush_while(self, names: Sequence[str], stop: threading.Event, listener: Listener | None,
                     every: float) -> None:
        """The outbox side of a watch: what is due goes out, checked every ``every`` seconds."""
        while not stop.is_set():
            self._flush_due(names, listener)
            stop.wait(every)

    def _targets(self, names: Sequence[str] | None) -> list[Account]:
        accounts = self.accounts()
        if names:
            return [config.resolve_account(n, accounts) for n in names]
        return list(accounts.values()) or [config.resolve_account(None, accounts)]

    @contextmanager
    def _writer(self) -> Iterator[Store]:
        """The store, locked against a second syncing process for as long as the work runs."""
        store = self._store()
        try:
            store.lock()
            yield store
        finally:
            store.close()

    def _store(self) -> Store:
        """The store for writing (migrates the index if it is of an older version)."""
        from deskmail.store import Store

        return Store.open_writer(self.paths.data_dir)

    def _index_exists(self) -> bool:
        """False before the first sync: then there is nothing to read (an empty list, not an error)."""
        return self.paths.index_file.is_file()

    def _message_reader(self, message_id: int) -> AbstractContextManager[Store]:
        if not self._index_exists():
            raise NotFoundError(f"There is no message with id {message_id}", "nothing has been synced yet",
                                code=Code.NO_SUCH_MESSAGE)
        return self._reader()

    @contextmanager
    def _reader(self) -> Iterator[Store]:
        """The store for reading: writes nothing, waits for a writer instead of failing."""
        from deskmail.store import Store

        store = Store.open_reader(self.paths.data_dir)
        try:
            yield store
        finally:
            store.close()

    # --- the local mailbox -------------------------------------------------------------------

    def list_messages(self, *, account: str | None = None, folder: str | None = None, limit: int = 50,
                      sort: str = "date", unread_only: bool = False, flagged_only: bool = False,
                      after: MessageSummary | None = None, offset: int = 0) -> list[MessageSummary]:
        """One page of stored messages (newest first by default; ``sort`` in ``date``, ``date_asc``,
        ``sender``, ``subject``). Page on with ``after`` = the last message of the previous page."""
        name = self.account(account).name if account else None
        if not self._index_exists():
            return []
        with self._reader() as store:
            return store.list_messages(name, folder, limit, sort=sort, unread_only=unread_only,
                                       flagged_only=flagged_only, after=after, offset=offset)

    def count_messages(self, *, account: str | None = None, folder: str | None = None,
                       unread_only: bool = False, flagged_only: bool = False) -> int:
        """How many messages :meth:`list_messages` pages through with the same filters."""
        name = self.account(account).name if account else None
        if not self._index_exists():
            return 0
        with self._reader() as store:
            return store.count_messages(name, folder, unread_only=unread_only, flagged_only=flagged_only)

    def search(self, query: str, *, limit: int = 50, offset: int = 0) -> list[SearchHit]:
        """Messages of every account and folder matching ``query`` (docs/search.md), newest first, each
        with a snippet of where it matched. A query that cannot be read raises
        :class:`~deskmail.errors.QueryError` (code ``bad_query``, ``position`` = where)."""
        from deskmail.search.query import parse

        node = parse(query)
        if not self._index_exists():
            return []
        self._catch_up()
        with self._reader() as store:
            return store.search(node, limit=limit, offset=offset)

    def thread(self, message_id: int) -> list[MessageSummary]:
        """The conversation of message ``message_id`` (References / In-Reply-To; docs/threads.md): its
        messages in every folder and account, oldest first, the message itself among them."""
        with self._message_reader(message_id):
            pass  # (NotFoundError before the first sync)
        self._catch_up()
        with self._reader() as store:
            return store.thread(message_id)

    def list_threads(self, *, account: str | None = None, folder: str | None = None, limit: int = 50,
                     after: ThreadSummary | None = None, offset: int = 0) -> list[ThreadSummary]:
        """One page of conversations with a message in the folder(s), newest first (by their newest
        message there). Page on with ``after`` = the last thread of the previous page (keyset)."""
        name = self.account(account).name if account else None
        if not self._index_exists():
            return []
        self._catch_up()
        with self._reader() as store:
            return store.list_threads(name, folder, limit, after=after, offset=offset)

    def count_threads(self, *, account: str | None = None, folder: str | None = None) -> int:
        """How many conversations :meth:`list_threads` pages through."""
        name = self.account(account).name if account else None
        if not self._index_exists():
            return 0
        self._catch_up()
        with self._reader() as store:
            return store.count_threads(name, folder)

    def _catch_up(self) -> None:
        """Index what a sync stored but did not index (a watch's syncs, another program's moves, what the
        indexer process of a sync has not reached yet) before searching or threading: usually
        nothing, checked by one cheap read."""
        with self._reader() as store:
            if store.unindexed() == 0:
                return
        from deskmail.store import Store

        with Store.open_writer(self.paths.data_dir) as writer:
            writer.catch_up()

    def change_token(self) -> tuple[int, int] | None:
        """Changes whenever the index changed (another process or thread synced, flagged, deleted…): a
        reader compares it with the last one it saw and refreshes only then. None before the first sync.

        Tokens are only comparable from one connection (SQLite's ``data_version`` is per connection), so
        each calling thread keeps one read-only handle for them, closed by :meth:`close`.
        """
        if not self._index_exists():
            return None
        from deskmail.store import Store

        store = getattr(self._token_readers, "store", None)
        if store is None:
            store = Store.open_reader(self.paths.data_dir)
            self._token_readers.store = store
            with self._lock:
                self._token_stores.append((threading.get_ident(), store))
        return store.change_token()

    def correspondents(self, limit: int = 2000) -> list[str]:
        """People mail came from, most recent first (to complete addresses as they are typed)."""
        if not self._index_exists():
            return []
        with self._reader() as store:
            return store.correspondents(limit)

    def message(self, message_id: int) -> MessageSummary:
        with self._message_reader(message_id) as store:
            return store.get(message_id)

    def read_message(self, message_id: int, *, prefer_html: bool = False,
                     allow_remote: bool | None = None) -> MessageView:
        """One message's summary and its rendering (see :meth:`render_message`)."""
        with self._message_reader(message_id) as store:
            summary = store.get(message_id)
        return MessageView(summary, self.render_message(message_id, prefer_html=prefer_html,
                                                        allow_remote=allow_remote))

    def render_message(self, message_id: int, *, prefer_html: bool = True,
                       allow_remote: bool | None = None) -> Rendered:
        """The message made safe to show: sanitized HTML (``cid:`` images in ``inline_images``), text,
        attachments, warnings. Remote images load only when ``allow_remote`` is True, or when it is None
        and the sender is on the allow list (:meth:`allow_remote_content`). Never raises for a malformed
        message (it degrades, with a warning)."""
        from deskmail.render import render, sender_of

        raw = self.raw_message(message_id)
        if allow_remote is None:
            allowed = self.remote_content_senders()
            allow_remote = bool(allowed) and sender_of(raw) in allowed
        return render(raw, prefer_html=prefer_html, allow_remote=allow_remote)

    def remote_images(self, rendered: Rendered) -> dict[str, tuple[str, bytes]]:
        """Fetch the remote images of a message rendered with remote content allowed: url -> (type, bytes).
        Bounded (count, size, time); an image that cannot be fetched is left out."""
        from deskmail.net.remote import fetch_images
        from deskmail.render.remote import remote_image_urls

        if not rendered.remote_allowed:
            return {}
        return fetch_images(remote_image_urls(rendered.html))

    def attachments(self, message_id: int) -> list[AttachmentInfo]:
        """The message's attachments: number, name, type, size."""
        from deskmail.render import attachments

        return attachments(self.raw_message(message_id))

    def save_attachments(self, message_id: int, directory: Path, *, which: Sequence[int] | None = None) -> list[Path]:
        """Save the attachments numbered ``which`` (default: all) into ``directory`` under safe new names
        (nothing overwritten, nothing written outside it); returns the files written."""
        from deskmail.render import save_attachments

        return save_attachments(self.raw_message(message_id), Path(directory), which=which)

    def remote_content_senders(self) -> frozenset[str]:
        """The senders whose messages load remote images."""
        import json

        try:
            data = json.loads(self._remote_file().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return frozenset()
        senders = data.get("senders") if isinstance(data, dict) else None
        return frozenset(s for s in senders if isinstance(s, str)) if isinstance(senders, list) else frozenset()

    def allow_remote_content(self, sender: str, allow: bool = True) -> frozenset[str]:
        """Put ``sender`` (an address) on the allow list for remote images, or take it off; returns the list."""
        import json

        from deskmail.render import sender_address

        address = sender_address(sender)
        if not address:
            raise UsageError(f"{sender!r} is not an e-mail address", code=Code.USAGE)
        from deskmail.durable import atomic_write

        with self._lock:
            senders = set(self.remote_content_senders())
            (senders.add if allow else senders.discard)(address)
            atomic_write(self._remote_file(),
                                json.dumps({"senders": sorted(senders)}, indent=1).encode() + b"\n")
        return frozenset(senders)

    def _remote_file(self) -> Path:
        return self.paths.config_dir / "remote-content.json"

    def raw_message(self, message_id: int) -> bytes:
        """The message exactly as stored."""
        with self._message_reader(message_id) as store, store.open_message(message_id) as fh:
            return fh.read()

    def set_flags(self, ids: Sequence[int], *, add: Sequence[str] = (), remove: Sequence[str] = ()) -> int:
        """Change flags here (names like ``seen`` or keywords); the next sync sends the change."""
        from deskmail import mailbox

        plus = {mailbox.flag_name(n) for n in add}
        minus = {mailbox.flag_name(n) for n in remove}
        if not plus and not minus:
            raise UsageError("Nothing to change", "", "name a flag to set or to clear", code=Code.NO_CHANGE)
        store = self._store()
        try:
            return mailbox.set_flags(store, ids, plus, minus)
        finally:
            store.close()

    def mark_read(self, ids: Sequence[int], read: bool = True) -> int:
        return self.set_flags(ids, add=["seen"] if read else [], remove=[] if read else ["seen"])

    def move(self, ids: Sequence[int], target: str) -> int:
        from deskmail import mailbox

        store = self._store()
        try:
            return mailbox.move(store, list(ids), target)
        finally:
            store.close()

    def delete(self, ids: Sequence[int], *, expunge: bool = False, confirmed: bool = False) -> int:
        from deskmail import mailbox

        store = self._store()
        try:
            return mailbox.delete(store, self.accounts(), list(ids), expunge=expunge, confirmed=confirmed)
        finally:
            store.close()

    def folders(self, account: str | None = None) -> list[mailbox.FolderInfo]:
        """The account's folders as of the last sync, with message counts."""
        from deskmail import mailbox

        a = self.account(account)
        if not self._index_exists():
            return []
        with self._reader() as store:
            return mailbox.folders(store, a.name)

    def choose_folders(self, account: str | None = None, *, enable: Sequence[str] = (),
                       disable: Sequence[str] = (), upload: Sequence[str] = ()) -> None:
        from deskmail import mailbox

        a = self.account(account)
        store = self._store()
        try:
            mailbox.choose_folders(store, a, enable=enable, disable=disable, upload=upload)
        finally:
            store.close()

    # --- sending -----------------------------------------------------------------------------

    def send(self, draft: Draft, account: str | None = None, *, queue_only: bool = False,
             listener: Listener | None = None, cancel: CancelToken | None = None) -> SentMessage:
        """Put ``draft`` into the outbox (durably: from here it is never lost), then deliver it at once
        unless ``queue_only``, and save its copy in Sent. Delivery failures are not raised: they are the
        result's ``error`` and the message's state in the outbox (deferred ones go out with a later
        :meth:`flush_outbox`, a sync or a watch). Raises only when the draft cannot be made a message."""
        from deskmail.outbox.compose import bcc_of, build_message, identity_of, wire_policy, write_message
        from deskmail.outbox.deliver import entry_error

        a = self.sender_account(draft.sender) if account is None and draft.sender else self.account(account)
        message, recipients = build_message(a, draft)
        sender = identity_of(a, draft.sender).address  # the envelope's MAIL FROM is the identity's too
        bcc = bcc_of(draft)
        policy = wire_policy([sender, *recipients])
        entry = self._outbox().add(a.name, sender, lambda out: write_message(out, message, draft.attachments, policy),
                                   recipients, bcc=bcc, message_id=str(message["Message-ID"] or ""),
                                   subject=str(message["Subject"] or ""))
        if queue_only:
            return SentMessage(message, tuple(recipients), entry)
        result = self.flush_outbox([a.name], ids=[entry.id], listener=listener, cancel=cancel)
        ended = result.entry(entry.id) or self._outbox().get(entry.id)
        error = result.errors.get(a.name)
        sent = ended.state == "sent"
        copy_error = error if sent and ended.sent_copy == "pending" else None
        return SentMessage(message, tuple(recipients), ended, entry_error(ended, None if sent else error),
                           ended.sent_folder, copy_error)

    def outbox(self) -> list[OutboxEntry]:
        """Every message in the outbox with its state, oldest first (sent ones stay only while their copy in
        Sent is pending or some recipient refused them)."""
        return self._outbox().entries()

    def outbox_message(self, entry_id: str) -> bytes:
        """The outbox message exactly as it is (or was) handed to the server."""
        box = self._outbox()
        box.get(entry_id)
        return box.raw(entry_id)

    def flush_outbox(self, names: Sequence[str] | None = None, *, ids: Sequence[str] | None = None,
                     everything: bool = False, listener: Listener | None = None,
                     cancel: CancelToken | None = None) -> FlushResult:
        """Deliver what the outbox holds that is due (``everything``: deferred ones too, before their next
        attempt) over one connection per account, and save pending copies in Sent. Uncertain and failed
        messages are never sent again here: see :meth:`retry`."""
        from deskmail.outbox.deliver import DEFAULT_TIMEOUT, flush

        return flush(self._outbox(), self.accounts(), self.password,
                     local_sent=lambda a: self.paths.data_dir / "sent" / a.name, names=names, ids=ids,
                     everything=everything, listener=listener, cancel=cancel,
                     timeout=lambda a: float(a.options.get("send_timeout", DEFAULT_TIMEOUT)))

    def retry(self, entry_id: str, *, deliver: bool = True, listener: Listener | None = None) -> OutboxEntry:
        """Send an outbox message again at the user's word: a failed one (to the recipients not refused), a
        deferred one now, an uncertain one (the user accepts a possible duplicate). Returns where it ended."""
        from deskmail.outbox.queue import for_retry

        box = self._outbox()
        with box.lock(wait=False):
            entry = box.save(for_retry(box.get(entry_id)))
        if not deliver:
            return entry
        result = self.flush_outbox([entry.account], ids=[entry.id], listener=listener)
        return result.entry(entry.id) or entry

    def mark_sent(self, entry_id: str) -> OutboxEntry:
        """An uncertain message the user knows went out: recorded as sent; its copy in Sent is saved next."""
        from deskmail.outbox.queue import marked_sent

        box = self._outbox()
        with box.lock(wait=False):
            entry = box.save(marked_sent(box.get(entry_id)))
        result = self.flush_outbox([entry.account], ids=[entry.id])
        return result.entry(entry.id) or entry

    def remove_from_outbox(self, entry_id: str) -> OutboxEntry:
        """Take a message out of the outbox (cancel sending it); refused while it is being sent."""
        box = self._outbox()
        with box.lock(wait=False):
            entry = box.get(entry_id)
            box.remove(entry.id)
        return entry

    # --- drafts ------------------------------------------------------------------------------

    def save_draft(self, draft: Draft, account: str | None = None, *, replaces: str = "") -> DraftInfo:
        """Save ``draft`` where the account keeps drafts (the server's Drafts folder for IMAP, local files for
        POP3); ``replaces``: the ref of the version it supersedes, removed once the new one is stored."""
        from deskmail.outbox.drafts import draft_writer

        a = self.account(account)
        write, ref = draft_writer(a, draft)
        store = self._drafts(a)
        return store.save(write, ref, replaces)

    def drafts(self, account: str | None = None) -> list[DraftInfo]:
        """The account's saved drafts (asks the server for an IMAP account)."""
        return self._drafts(self.account(account)).list()

    def open_draft(self, ref: str, account: str | None = None) -> tuple[str, Draft]:
        """A saved draft to go on writing: (its account, the draft). Its attachments are written out under
        ``DATA/drafts/files/`` and named in the draft."""
        from dataclasses import replace as _replace

        from deskmail.outbox.drafts import draft_from_message
        from deskmail.render import save_attachments

        a = self.account(account)
        raw = self._drafts(a).raw(ref)
        draft = draft_from_message(raw)
        if a.identity(draft.sender) is None:  # an identity removed since: the account's own address
            draft = _replace(draft, sender="")
        import hashlib

        folder = self.paths.data_dir / "drafts" / "files" / hashlib.sha256(ref.encode()).hexdigest()[:16]
        files = save_attachments(raw, folder) if b"Content-Disposition: attachment" in raw else []
        return a.name, _replace(draft, attachments=tuple(files))

    def discard_draft(self, ref: str, account: str | None = None) -> None:
        """Delete a saved draft (after sending it, or when the person throws it away)."""
        self._drafts(self.account(account)).discard(ref)

    def _drafts(self, a: Account) -> LocalDrafts | ServerDrafts:
        from deskmail.outbox.drafts import store_for

        password = self.password(a) if a.incoming.protocol is Protocol.IMAP else None
        return store_for(a, password, self.paths.data_dir / "drafts")

    def _outbox_root(self) -> Path:
        return self.paths.data_dir / "outbox"

    def _outbox(self) -> Outbox:
        from deskmail.outbox.queue import Outbox

        return Outbox(self._outbox_root())

    def new_draft(self, account: str | None = None, *, sender: str = "") -> Draft:
        """An empty message from ``sender`` (an identity's address; default the account's own), its signature
        in place; the person writes at ``write_at``."""
        from deskmail.outbox.compose import Draft
        from deskmail.outbox.identities import identity_of, with_signature

        a = self.sender_account(sender) if account is None and sender else self.account(account)
        return with_signature(Draft(to=()), identity_of(a, sender))

    def sign(self, draft: Draft, account: str | None = None) -> Draft:
        """``draft`` with the signature of its sender's identity added (a message written elsewhere)."""
        from deskmail.outbox.identities import identity_of, with_signature

        a = self.sender_account(draft.sender) if account is None and draft.sender else self.account(account)
        return with_signature(draft, identity_of(a, draft.sender))

    def change_sender(self, draft: Draft, sender: str, account: str | None = None) -> Draft:
        """``draft`` sent from ``sender`` instead (an identity of ``account``, default the account that has it):
        the old identity's signature is swapped for the new one's, the person's words stay as they are. The old
        identity is looked up in the account that has it (a draft may move between accounts)."""
        from deskmail.outbox.identities import change_sender, identity_of

        new_account = self.account(account) if account is not None else self.sender_account(sender)
        new = identity_of(new_account, sender)
        try:
            old_account = self.sender_account(draft.sender) if draft.sender else new_account
            old = identity_of(old_account, draft.sender)
        except NotFoundError:  # the old identity is gone: nothing of it to take out
            old = Identity(new.address)
        return change_sender(draft, old, new)

    def reply(self, message_id: int, *, reply_all: bool = False, sender: str = "") -> tuple[str, Draft]:
        """A reply to a stored message, quoted, addressed and threaded: (the account to send it from, the draft).
        From ``sender`` (an identity of the message's account), else from the identity it was addressed to."""
        from deskmail.outbox.reply import reply_draft

        view = self.read_message(message_id)
        account = self.account(view.summary.account)
        return account.name, reply_draft(account, self.raw_message(message_id), view.reading.text,
                                         reply_all=reply_all, sender=sender)

    def forward(self, message_id: int, *, sender: str = "", attach: bool = False) -> tuple[str, Draft]:
        """A stored message forwarded: (the account it came to, the draft, still to be addressed), from
        ``sender``, else from the identity the original was addressed to. Inline below a header block, or with
        ``attach`` the original attached as it is (message/rfc822), from a copy written under
        ``DATA/forward/`` (:meth:`discard_forwarded` removes it once the message is sent)."""
        from deskmail.outbox.reply import forward_draft

        if not attach:
            view = self.read_message(message_id)
            account = self.account(view.summary.account)
            return account.name, forward_draft(account, self.raw_message(message_id), view.reading.text,
                                               sender=sender)
        import hashlib

        from deskmail.durable import atomic_write
        from deskmail.outbox.compose import Draft
        from deskmail.outbox.identities import addressed_identity, identity_of, with_signature
        from deskmail.outbox.reply import forward_subject, headers_of

        account = self.account(self.message(message_id).account)
        raw = self.raw_message(message_id)
        h = headers_of(raw)
        subject = h.get("subject", "")
        # The file's name is the attachment's name the recipient sees: the subject, without the characters
        # file systems refuse (Windows' set) or that would make it a path.
        name = "".join(c if c.isprintable() and c not in '<>:"/\\|?*' else "_" for c in subject)
        name = name.strip(" ._")[:60] or "message"
        folder = self._forwarded_root() / hashlib.sha256(raw).hexdigest()[:16]
        path = folder / f"{name}.eml"
        atomic_write(path, raw)
        me = identity_of(account, sender) if sender else addressed_identity(
            account, h.get("to", ""), h.get("cc", ""), h.get("delivered-to", ""))
        return account.name, with_signature(Draft(to=(), subject=forward_subject(subject), attachments=(path,)), me)

    def discard_forwarded(self, paths: Sequence[Path]) -> None:
        """Remove the copies :meth:`forward` wrote for attaching (others are left alone)."""
        root = self._forwarded_root().resolve()
        for path in paths:
            p = Path(path).resolve()
            if p.parent.parent == root:
                p.unlink(missing_ok=True)
                try:
                    p.parent.rmdir()
                except OSError:
                    pass  # another forward of the same message still uses it

    def _forwarded_root(self) -> Path:
        return self.paths.data_dir / "forward"

    # --- troubleshooting ---------------------------------------------------------------------

    def doctor(self, account: Account, password: Secret | None, *, send_test: bool = False,
               round_trip: bool = False, on_step: Callable[[Finding], None] | None = None) -> Report:
        """Test every layer of the account's connections; the report names the cause and the fix."""
        from deskmail.doctor import run_doctor

        return run_doctor(account, password, send_test=send_test, round_trip=round_trip, on_step=on_step)


class _Indexing:
    """Starts the indexer process (:mod:`deskmail.store.indexer`) as soon as a sync has messages to store.

    Even a few messages go to it: indexing 100 new messages in process, after the sync, made the sync
    ~50 ms slower (177 against 125 ms, 9 alternating runs at 10,000 messages), most of it SQLite's FTS5
    merging older segments at the commit. Starting the child costs ~15 ms of this process and ~50 ms of
    the second core."""

    def __init__(self, data_dir: Path, listener: Listener | None) -> None:
        self._data_dir = data_dir
        self._listener = listener
        self._lock = threading.Lock()
        self._follower: Follower | None = None
        self._started = False

    def follow(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
            from deskmail.store.indexer import Follower

            try:
                self._follower = Follower(self._data_dir)
            except OSError:
                pass  # no second process: the catch-up after the sync indexes everything

    def hear(self, event: object) -> None:
        from deskmail.events import MessagesDownloaded

        if not self._started and isinstance(event, MessagesDownloaded):
            self.follow()
        if self._listener is not None:
            self._listener(event)  # type: ignore[arg-type]

    def finish(self) -> bool:
        """Leave the indexer process to finish on its own (it indexes the rest, then exits); whether one runs.

        The sync does not wait for it (see :mod:`deskmail.store.indexer`); a search or a thread asked
        before it is done catches up first, so nothing is ever missing from their answers."""
        with self._lock:
            follower, self._follower = self._follower, None
        if follower is None:
            return False
        follower.detach()
        return True


def _check_new(name: str, accounts: dict[str, Account]) -> None:
    """Asked before the password (candidates) and again when saving (add_account): a name is used once."""
    if name in accounts:
        raise UsageError(f"An account named {name!r} exists already", "", "remove it first or choose another name",
                         code=Code.ACCOUNT_EXISTS, account=name)


__all__ = ["ConfigError", "Deskmail", "MessageView", "RemovedAccount", "SentMessage"]

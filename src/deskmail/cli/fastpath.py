"""The one place where the command line trades clarity for start-up time: the fast paths.

Three commands run by scripts over and over take them: `deskmail sync` (below), `deskmail search
QUERY --json [--limit N]` (:func:`search_args`, :func:`run_search`: the façade alone, no Typer or
Rich: ~90 ms whole-process instead of ~200 ms), `deskmail discover EMAIL --json [--offline]`
(:func:`discover_args`, :func:`run_discover`: the façade alone and the compiled dataclass methods of
trick 4: 36 ms whole-process instead of 116 ms for a database answer) and `deskmail send` with a
script's options (:func:`send_args`, :func:`run_send`, the last section).

`deskmail sync` is what timers and cron jobs run over and over, and most of a no-change sync is
start-up. When the command needs nothing interactive (`sync [ACCOUNT]` with `--quiet`, or output not
on a terminal), :func:`run` replaces the Typer command. Each trick, and what it buys (measured on the
2-core test machine, 10,000-message mailbox, whole process, medians; see bench/README.md):

1. **No Typer, Click or Rich** (about 45 ms): plain text out, the same output and exit codes as the
   full command.
2. **Connect before importing** (:class:`Dial`, :func:`dial_early`): the server's address comes from a
   cached parse of the accounts file (:func:`cached_document`, marshal: no TOML parser), and the
   TCP and TLS connection is opened in a thread first thing. :class:`EarlyConnection` then logs in,
   SELECTs INBOX and lists the folders with their STATUS in that thread
   (:meth:`deskmail.protocol.imap.ImapSession.warm_up`) while the main thread imports the
   configuration, the store and the engine: the server's waits overlap the imports.
3. **No interpreter tear-down** (``os._exit`` once everything is written and committed: about 4 ms).
4. **Dataclass methods compiled once** (:class:`CompiledMethods`): ``@dataclass`` writes the source of
   ``__init__``, ``__eq__``… of every value class and compiles it at each start; the compiled code is
   kept in a marshal cache instead (about 9 ms), and ``inspect``, which ``dataclasses`` imports but
   needs only for a class without a docstring, is loaded on first use (about 5 ms).
5. **No cyclic garbage collection while modules are imported** (:func:`imports_done`): start-up
   creates tens of thousands of objects (classes, functions, code) that live until the process ends,
   and the collector, triggered every 700 allocations, traverses them again and again: about 3 ms
   of a no-change sync's CPU and 9 ms of the full command's start-up (perf: ``gc_collect_main``,
   ``visit_decref``). The console entry point (:mod:`deskmail.cli.entry`) turns the collector off
   first thing; each command turns it back on, with what exists by then frozen (``gc.freeze()``,
   the interpreter's own provision for this), before it starts its work.

Nothing in the engine depends on this module. The engine offers three plain hooks that it uses:
``open_imap(dial=...)`` (a socket already being connected), ``ImapSession.warm_up()`` (ask now what
a sync asks first) and ``store.inbox_state()``; the façade takes the sessions it opened
(``Deskmail.sync(early=...)``). This module imports only what the connection needs (os, threading,
and lazily socket and ssl) before the connection is under way.
"""

from __future__ import annotations

import gc
import marshal
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import _socket
    import socket
    from pathlib import Path
    from types import ModuleType

    from deskmail.model import Account
    from deskmail.protocol.imap import ImapSession
    from deskmail.sync.runner import SyncRun

ACCOUNTS_CACHE = os.path.join("cache", "accounts.marshal")  # in the data directory
METHODS_CACHE = os.path.join("cache", "dataclass-methods.marshal")  # in the data directory


# --- the connection, opened first --------------------------------------------------------

class Dial:
    """One connection being opened; :meth:`take` hands it over (or raises what went wrong)."""

    def __init__(self, host: str, port: int, tls: bool, ca_file: str, timeout: float = 60.0) -> None:
        self.key = (host, port, tls, ca_file)
        self._timeout = timeout
        self._sock: socket.socket | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._abandoned = False
        self.on_network = threading.Event()  # set once the thread waits for the server (or has finished)
        self._thread = threading.Thread(target=self._run, name=f"dial-{host}", daemon=True)
        self._thread.start()

    def serves(self, account: Account) -> bool:
        """Whether this connection goes where ``account`` connects to, checked as ``account`` would."""
        server = account.incoming
        return self.key == (server.host, server.port, server.security.value == "ssl", account.ca_file)

    def let_it_start(self) -> None:
        """Wait until the thread's imports are done: they are on the critical path, the caller's are not."""
        self.on_network.wait(timeout=2.0)

    def _run(self) -> None:
        try:
            host, port, tls, ca_file = self.key
            # An ASCII name as bytes: a str goes through the "idna" codec, whose import
            # (with stringprep and unicodedata) costs ~1 ms here.
            address: str | bytes = host.encode("ascii") if host.isascii() else host
            # Connect before importing socket.py and ssl (~10 ms): the server starts its side
            # meanwhile. Dovecot forks a login process per connection, and a TLS handshake
            # begun at once waits ~5 ms for it; begun 10 ms later, ~1 ms.
            raw = _connect(address, port, self._timeout)
            try:
                import socket

                from deskmail.net.tls import client_context

                sock = socket.socket(raw.family, raw.type, raw.proto, fileno=raw.detach())
            except BaseException:
                raw.close()
                raise
            try:
                sock.settimeout(self._timeout)
                if tls:
                    ctx = client_context(ca_file)
                    self.on_network.set()
                    sock = ctx.wrap_socket(sock, server_hostname=address)  # (bytes: no idna codec either)
            except BaseException:
                sock.close()
                raise
            with self._lock:
                if self._abandoned:
                    sock.close()
                else:
                    self._sock = sock
        except BaseException as exc:
            self._error = exc
        finally:
            self.on_network.set()

    def take(self) -> socket.socket:
        """The connected socket, once; the connection's exception is raised here, in the caller's thread."""
        self._thread.join()
        sock, self._sock = self._sock, None
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if sock is None:
            raise RuntimeError("the dialed connection was already taken (or closed)")
        return sock

    def close(self) -> None:
        """Close the connection if nobody took it; returns at once, even while the thread still waits."""
        with self._lock:
            self._abandoned = True
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


def _connect(host: str | bytes, port: int, timeout: float) -> _socket.socket:
    """socket.create_connection() (each address in turn, the last error raised) on the C-level socket.

    Written out because create_connection lives in socket.py, whose import (enum, selectors:
    ~5 ms) is exactly what this connection is meant to get ahead of.
    """
    import _socket

    error: OSError | None = None
    for family, kind, proto, _name, address in _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
        raw = _socket.socket(family, kind, proto)
        try:
            raw.settimeout(timeout)
            raw.connect(address)
        except OSError as exc:
            raw.close()
            error = exc
            continue
        return raw
    raise error if error is not None else OSError(f"no address found for {host!r}")


class EarlyConnection:
    def __init__(self, account: Account, data_dir: Path | None = None, timeout: float = 60.0,
                 dial: Dial | None = None) -> None:
        self.account = account
        self._data_dir = data_dir
        self._dial = dial
        self._timeout = timeout
        self._cm: AbstractContextManager[ImapSession] | None = None
        self._session: ImapSession | None = None
        self._error: BaseException | None = None
        self.waiting = threading.Event()  # set once the thread has imported what it needs and starts waiting
        self._inbox_lock = threading.Lock()
        self._inbox_known = False
        self._inbox: tuple[int, int] | None = None
        self._thread = threading.Thread(target=self._open, name=f"connect-{account.name}", daemon=True)
        self._thread.start()

    def let_it_start(self) -> None:
        """Block until the thread is on the network: its imports are on the critical path, the caller's are not.

        Both threads import modules, which needs the GIL; run side by side they would
        slow each other down. In turn, the caller's imports fill the time the thread
        spends waiting for the server.
        """
        self.waiting.wait(timeout=2.0)
        # The thread now waits for its login; reading INBOX's state for it here keeps the
        # deskmail.store import and the query out of its way.
        self._read_inbox_state()

    def _read_inbox_state(self) -> None:
        """Once, by whichever thread comes first: the caller in let_it_start(), else the connection thread."""
        with self._inbox_lock:
            if not self._inbox_known:
                if self._data_dir is not None:
                    # (deskmail.store: imported by the caller next anyway, so not a cost of its own here)
                    from deskmail.store import inbox_state

                    self._inbox = inbox_state(self._data_dir, self.account.name)
                self._inbox_known = True

    @classmethod
    def start_for(cls, accounts: list[Account], data_dir: Path,
                  dials: dict[str, Dial] | None = None) -> dict[str, EarlyConnection]:
        """Early connections for the IMAP accounts among ``accounts``, by account name.

        Not for accounts without encryption: their plaintext warning must come before anything
        is sent, and they gain nothing worth that. ``dials`` (from :func:`dial_early`) are
        taken over when they go to the account's server, and closed otherwise.
        """
        from deskmail.model import Protocol, Security

        dials = dict(dials or {})
        early = {}
        for a in accounts:
            dial = dials.pop(a.name, None)
            server = a.incoming
            if dial is not None and not dial.serves(a):
                dial.close()  # the cached settings were not the ones the configuration gives now
                dial = None
            if server.protocol is Protocol.IMAP and server.security is not Security.NONE:
                early[a.name] = cls(a, data_dir, timeout=a.timeout, dial=dial)
            elif dial is not None:
                dial.close()
        for dial in dials.values():
            dial.close()
        return early

    def _open(self) -> None:
        try:
            from deskmail.protocol.imap import open_imap
            from deskmail.secrets import get_password

            password = get_password(self.account)
            self.waiting.set()
            cm = open_imap(self.account, password, timeout=self._timeout, dial=self._dial)
            session = cm.__enter__()
            self._cm, self._session = cm, session
            self._read_inbox_state()  # already done, or being done, by let_it_start() when it was called
            session.warm_up(inbox=self._inbox)
        except BaseException as exc:
            self._error = exc
        finally:
            self.waiting.set()

    @contextmanager
    def session(self) -> Iterator[ImapSession]:
        """The logged-in session; errors of the connection thread are raised here, in the caller's thread."""
        self._thread.join()
        try:
            if self._error is not None:
                raise self._error
            assert self._session is not None
            yield self._session
        finally:
            self.close()

    def close(self) -> None:
        self._thread.join()
        if self._dial is not None:
            self._dial.close()  # only if open_imap never took it (an error came first)
        cm, self._cm = self._cm, None
        if cm is not None:
            cm.__exit__(None, None, None)


def dial_early(name: str | None) -> dict[str, Dial]:
    """Connections to the IMAP servers `deskmail sync [name]` will sync, opened before the configuration is read.

    The servers come from the cached parse of the accounts file (:mod:`deskmail.dirs`), so
    this needs neither the TOML parser nor the configuration module. Those settings are
    only a guess until :func:`deskmail.config.load_accounts` has checked them:
    :meth:`EarlyConnection.start_for` takes a connection over only if it goes to the
    account's server with the account's CA file. Anything unexpected here means no early
    connection, never an error.
    """
    from deskmail import dirs

    where = dirs.dirs()
    if where is None:
        return {}
    config_dir, data_dir = where
    try:
        with open(os.path.join(config_dir, dirs.ACCOUNTS_FILE), encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError):
        return {}
    doc = cached_document(text, os.path.join(data_dir, ACCOUNTS_CACHE))
    accounts = doc.get("accounts") if doc is not None else None
    if not isinstance(accounts, dict):
        return {}
    dials = {}
    for account_name, table in accounts.items():
        if name is not None and account_name != name:
            continue  # (an account named by its address is not guessed at: it simply connects later)
        incoming = table.get("incoming") if isinstance(table, dict) else None
        if not isinstance(incoming, dict):
            continue
        host, port, security = incoming.get("host"), incoming.get("port"), incoming.get("security")
        ca_file = table.get("ca_file", "")
        options = table.get("options")
        timeout = options.get("timeout") if isinstance(options, dict) else None
        if (incoming.get("protocol") == "imap" and security in ("ssl", "starttls") and isinstance(host, str)
                and host and type(port) is int and 0 < port < 65536 and isinstance(ca_file, str)):
            dials[account_name] = Dial(host, port, security == "ssl", ca_file,
                                       float(timeout) if type(timeout) is int and timeout > 0 else 60.0)
    return dials


# --- no garbage collection during start-up (trick 5) ------------------------------------------

def imports_done() -> None:
    """The command's modules are imported: collect garbage again, leaving out everything made so far.

    Only where :mod:`deskmail.cli.entry` turned the collector off (a console process of its own):
    called in-process, as the tests do, this changes nothing.
    """
    if not gc.isenabled():
        gc.freeze()  # what start-up made lives until exit: no collection needs to look at it again
        gc.enable()


# --- dataclass methods compiled once ----------------------------------------------------------

class CompiledMethods:
    """Compiled dataclass methods, kept across runs (trick 4 of this module's list).

    ``dataclasses`` builds each generated method as source text and calls ``exec`` on it: half
    of the start-up cost of the core's ~20 value classes is that compiling. A module-level
    ``exec`` in ``dataclasses``' namespace shadows the builtin for exactly those calls and
    compiles each distinct text once, ever. The key is the whole text, so the result is the
    same code ``dataclasses`` would have compiled; the file records the interpreter it was
    made by (code objects are specific to it), and any doubt means compiling as usual.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._code: dict[str, Any] = {}
        self._new = 0
        try:
            with open(path, "rb") as fh:
                version, code = marshal.loads(fh.read())
            if version == sys.version and isinstance(code, dict):
                self._code = code
        except (OSError, ValueError, EOFError, TypeError):
            pass  # no cache yet, or an unusable one: compile as usual, write it anew

    @classmethod
    def installed(cls) -> CompiledMethods | None:
        """The cache in the user's data folder, installed; None where the folder is not known."""
        from deskmail import dirs

        where = dirs.dirs()
        if where is None:
            return None
        methods = cls(os.path.join(where[1], METHODS_CACHE))
        methods.install()
        return methods

    def install(self) -> None:
        """Before the first ``@dataclass`` runs: ``inspect`` left for later, our ``exec`` in place."""
        if "dataclasses" in sys.modules:
            return  # too late to matter
        if "inspect" not in sys.modules:
            sys.modules["inspect"] = _imported_on_first_use("inspect")
        import dataclasses

        dataclasses.exec = self._exec  # type: ignore[attr-defined]

    def _exec(self, source: Any, globals_: dict[str, Any] | None = None,
              locals_: dict[str, Any] | None = None) -> None:
        if isinstance(source, str):
            code = self._code.get(source)
            if code is None:
                code = self._code[source] = compile(source, "<string>", "exec")
                self._new += 1
            source = code
        exec(source, globals_, locals_)

    def save(self) -> None:
        """Best effort, and only when something was compiled: the next run finds it."""
        if not self._new or not os.path.isdir(os.path.dirname(os.path.dirname(self.path))):
            return
        try:
            _write_atomic(self.path, marshal.dumps((sys.version, self._code)))
        except (OSError, ValueError):
            pass


def _imported_on_first_use(name: str) -> ModuleType:
    """A stand-in for module ``name`` that imports it when one of its attributes is first asked for.

    (importlib.util.LazyLoader does not do here: a plain ``import`` of a lazy module reads its
    ``__spec__``, which loads it.)
    """
    import types

    stand_in = types.ModuleType(name)

    def load(attribute: str) -> Any:
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]
        __import__(name)
        return getattr(sys.modules[name], attribute)

    stand_in.__getattr__ = load  # type: ignore[method-assign]
    return stand_in


# --- the accounts file, parsed once ----------------------------------------------------------

def cached_document(text: str, cache: str) -> dict[str, Any] | None:
    """The TOML document parsed from ``text``, if the cache at ``cache`` was made from exactly ``text``.

    Any edit to the accounts file, however small or quick, misses the cache: it holds the
    whole text it was parsed from. A cache that cannot be read counts as a miss.
    """
    try:
        with open(cache, "rb") as fh:
            cached_text, doc = marshal.loads(fh.read())
    except (OSError, ValueError, EOFError, TypeError):
        return None
    return doc if cached_text == text and isinstance(doc, dict) else None

def load_accounts() -> dict[str, Account]:
    """The configured accounts, the TOML parse taken from the marshal cache when the file is unchanged
    (importing tomllib, with typing and datetime, is ~4 ms of a no-change sync); a missed cache is
    written anew once the data folder exists."""
    from deskmail import config

    paths = config.paths()
    text = config.read_accounts_text(paths)
    if text is None:
        return {}
    cache = str(paths.data_dir / ACCOUNTS_CACHE)
    doc = cached_document(text, cache)
    if doc is None:
        doc = config.parse_accounts(paths.accounts_file, text)
        _write_cache(cache, text, doc)
    return config.accounts_from(paths.accounts_file, text, doc)


def _write_cache(cache: str, text: str, doc: dict[str, Any]) -> None:
    """Best effort: a cache that cannot be written (no data folder yet, TOML dates) is simply not there."""

    if not os.path.isdir(os.path.dirname(os.path.dirname(cache))):
        return  # reading the accounts never creates the data folder
    try:
        _write_atomic(cache, marshal.dumps((text, doc)))  # ValueError for TOML dates: then no cache
    except (OSError, ValueError):
        pass


def _write_atomic(path: str, blob: bytes) -> None:
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(blob)
    os.replace(tmp, path)


# --- the command ------------------------------------------------------------------------------

def applies(args: list[str]) -> tuple[str | None, bool] | None:
    """(account name, quiet) when ``args`` is a plain `sync [ACCOUNT] [-q]` this path can run."""
    if not args or args[0] != "sync":
        return None
    name, quiet = None, False
    for arg in args[1:]:
        if arg in ("-q", "--quiet"):
            quiet = True
        elif arg.startswith("-") or name is not None:
            return None  # anything else (--json, --watch, --help, ...) is the full command's
        else:
            name = arg
    if not quiet and sys.stdout.isatty():
        return None  # a person is watching: the full command shows a progress bar
    return name, quiet


def run(name: str | None, quiet: bool) -> int:
    """`deskmail sync [NAME] [-q]`: the same output and exit codes as the full command."""
    methods = CompiledMethods.installed()
    # Connect first, from the cached settings: the configuration, the store and the sync
    # engine are imported while the server answers.
    dials = dial_early(name)
    for dial in dials.values():
        dial.let_it_start()
    from deskmail import config
    from deskmail.errors import DeskmailError

    early: dict[str, EarlyConnection] = {}
    try:
        accounts = load_accounts()
        targets = [config.resolve_account(name, accounts)] if name else (
            list(accounts.values()) or [config.resolve_account(None, accounts)])
        # Log in and list the folders while the rest is imported.
        early = EarlyConnection.start_for(targets, config.paths().data_dir, dials)
        dials = {}
        for connection in early.values():
            connection.let_it_start()
        from deskmail.app import Deskmail
        from deskmail.net.connect import plaintext_warnings

        imports_done()
        for account in targets:
            for warning in plaintext_warnings(account):
                sys.stderr.write(warning + "\n")

        def rebuilt(moved_to: Path) -> None:
            sys.stderr.write(f"The mail index was damaged; it was moved to {moved_to} and is rebuilt "
                             "from the mail files (nothing is downloaded again).\n")

        app = Deskmail(accounts_loader=lambda: accounts)
        result = app.sync([a.name for a in targets], early=early, on_index_rebuilt=rebuilt)
    except DeskmailError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        return 130
    finally:
        for dial in dials.values():
            dial.close()  # the configuration could not be read: nothing took them
        for connection in early.values():
            try:
                connection.close()
            except (DeskmailError, OSError):
                pass  # the connection's own error was reported through the sync (or is moot now)
    if methods is not None:
        methods.save()
    if not quiet and not write_out("".join(line + "\n" for line in [*result.summary_lines(), *hints(result)])):
        return 1
    for account_name, failure in result.failures.items():
        prefix = f"{account_name}: " if len(targets) > 1 else ""
        sys.stderr.write(f"Error: {prefix}{failure}\n")
        if failure.code in _SIGN_IN_CODES:  # (cli.main's CLI_HINTS would cost Typer's import here)
            sys.stderr.write(f"At the command line: run `deskmail account login {account_name}`.\n")
    return next(iter(result.failures.values())).exit_code if result.failures else 0


_SIGN_IN_CODES = ("oauth_sign_in_again", "oauth_token_expired", "oauth_scope_missing")


def hints(result: SyncRun) -> list[str]:
    """What to type about a sync's results (the engine's notes name no command)."""
    return [f"To upload the {r.held_uploads} messages saved in {r.folder}: `deskmail folders --upload "
            f"{r.folder!r}`, then sync." for results in result.results.values() for r in results if r.held_uploads]


def write_out(text: str = "") -> bool:
    """Write ``text`` to stdout and flush it now; False when nobody reads it any more (a closed pipe:
    `| head`).

    The command then ends with exit code 1 and says nothing, as Click does when the write fails in
    a command; whatever is still buffered goes to /dev/null rather than failing again at exit,
    where Python would print "Exception ignored … BrokenPipeError" and exit with 120 (the recipe of
    Python's documentation, "Note on SIGPIPE"). The full command uses it too (:func:`deskmail.cli.main.main`).
    """
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return False
    return True


def exit_now(code: int) -> None:
    """End the console command: everything is written, closed and committed by now, so skip the
    interpreter's tear-down of every module and object (~4 ms of a no-change sync)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# --- `deskmail search QUERY --json` ------------------------------------------------------------

def search_args(args: list[str]) -> tuple[str, int] | None:
    """(query, limit) when ``args`` (after "search") are exactly a query, ``--json`` and at most a limit.

    That form (what scripts run) skips Typer and Rich: ~90 ms whole-process instead of ~200 ms. Any
    other form (a table for people, --help, an unknown option) goes the ordinary way.
    """
    query: str | None = None
    limit = 50
    json_seen = False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--json" and not json_seen:
            json_seen = True
        elif arg in ("--limit", "-n") and i + 1 < len(args) and args[i + 1].isdigit():
            limit = int(args[i + 1])
            i += 1
        elif arg.startswith("--limit=") and arg[8:].isdigit():
            limit = int(arg[8:])
        elif query is None and not arg.startswith("-"):
            query = arg
        else:
            return None
        i += 1
    if query is None or not json_seen or limit < 1:
        return None
    return query, limit


def run_search(query: str, limit: int) -> int | None:
    """The JSON of :func:`search` and the exit code; None when it failed (the ordinary way then reports
    the error)."""
    methods = CompiledMethods.installed()
    import json

    from deskmail.app import Deskmail
    from deskmail.errors import DeskmailError

    imports_done()
    try:
        hits = Deskmail().search(query, limit=limit)
    except DeskmailError:
        return None
    if methods is not None:
        methods.save()
    text = json.dumps([h.to_dict() for h in hits], indent=2, ensure_ascii=False, default=str) + "\n"
    return 0 if write_out(text) else 1


# --- `deskmail discover EMAIL --json [--offline]` -----------------------------------------------

def discover_args(args: list[str]) -> tuple[str, bool] | None:
    """(address, offline) when ``args`` (after "discover") are exactly an address, ``--json`` and maybe
    ``--offline``, in any order.

    That form (what scripts and other programs' setup run) skips Typer, Rich and the command-line
    modules. Any other form (the text for people, --deadline, --help, an option twice, an unknown
    option) goes the ordinary way.
    """
    address: str | None = None
    json_seen = offline = False
    for arg in args:
        if arg == "--json" and not json_seen:
            json_seen = True
        elif arg == "--offline" and not offline:
            offline = True
        elif address is None and not arg.startswith("-"):
            address = arg
        else:
            return None
    if address is None or not json_seen:
        return None
    return address, offline


def run_discover(address: str, offline: bool) -> int | None:
    """What `deskmail discover ADDRESS --json [--offline]` writes, and its exit code; None hands over to
    the full command, having written nothing.

    The answer is the façade's, written with the full command's own ``json.dumps`` call, so the bytes
    are the same. What this buys (2-core machine, whole process, CPU medians of 20 runs;
    bench/README.md): no Typer, Click, Rich or command-line modules (113 → 43 ms), and the dataclass
    methods compiled once (:class:`CompiledMethods`: 43 → 35 ms, from the second run on and only
    once the data folder exists: discovery never creates it). Handed over: an error (the full
    command reports it, in its words and with its JSON), and an offline lookup the database has no
    answer for (rare, and the full command then says so exactly as before; online, the answer is
    written here, since handing over would ask the network a second time).
    """
    import json

    methods = CompiledMethods.installed()
    from deskmail.app import Deskmail
    from deskmail.errors import DeskmailError

    imports_done()
    try:
        result = Deskmail().discover(address, offline=offline)
    except DeskmailError:
        return None
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        return 130
    if offline and not result.candidates:
        return None
    if not write_out(json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n"):
        return 1
    if methods is not None:
        methods.save()
    return 0 if result.candidates else 4  # (4: the full command's typer.Exit(4) for "nothing found")


# --- `deskmail send` (issue 14: one message no slower than one msmtp run) -------------------------
#
# `deskmail send --to … [--subject S] [--body B] …` is what scripts and mail-sending programs run, once per
# message. This path takes the same options (those a script gives; anything else, `--help`, `--body-file`,
# an option given twice, goes the full way) and sends through the same façade call, without Typer or Click
# (~40 ms); Rich is imported only to print (the output and exit codes are the full command's). Its start-up
# tricks: the dataclass methods' compiled cache (:class:`CompiledMethods`), the accounts' cached parse
# (:func:`load_accounts`), no interpreter tear-down (:func:`exit_now`).

_SEND_VALUES = {"--to": "to", "--cc": "cc", "--bcc": "bcc", "--attach": "attach", "--subject": "subject",
                "-s": "subject", "--body": "body", "--account": "account", "-a": "account", "--from": "sender"}
_SEND_LISTS = ("to", "cc", "bcc", "attach")
_SEND_FLAGS = {"--queue": "queue", "--json": "json", "--no-signature": "no_signature"}


def send_args(args: list[str]) -> dict[str, Any] | None:
    """The options of `send ARGS` (after "send") by name, when this path knows every one; else None."""
    found: dict[str, Any] = {key: [] for key in _SEND_LISTS}
    i = 0
    while i < len(args):
        name, eq, value = args[i].partition("=") if args[i].startswith("--") else (args[i], "", "")
        if name in _SEND_FLAGS and not eq and _SEND_FLAGS[name] not in found:
            found[_SEND_FLAGS[name]] = True
        elif name in _SEND_VALUES:
            if not eq:
                if i + 1 == len(args):
                    return None  # (the full command says the value is missing)
                i += 1
                value = args[i]
            key = _SEND_VALUES[name]
            if key in _SEND_LISTS:
                found[key].append(value)
            elif key in found:
                return None
            else:
                found[key] = value
        else:
            return None
        i += 1
    return found if found["to"] else None


def run_send(found: dict[str, Any]) -> int:
    """`deskmail send` with the options :func:`send_args` found: what the full command prints, its exit code."""
    methods = CompiledMethods.installed()
    from pathlib import Path

    from deskmail.app import Deskmail
    from deskmail.errors import DeskmailError
    from deskmail.outbox.compose import Draft

    imports_done()
    json_out, queue = bool(found.get("json")), bool(found.get("queue"))
    try:
        accounts = load_accounts()
        app = Deskmail(accounts_loader=lambda: accounts)
        sender = found.get("sender") or ""
        chosen = app.sender_account(sender) if sender and not found.get("account") else app.account(
            found.get("account"))
        from deskmail.net.connect import plaintext_warnings

        warnings = plaintext_warnings(chosen)
        if warnings:
            from deskmail.cli.ui import err, safe

            for warning in warnings:
                err.print(f"[bold yellow]{safe(warning)}[/]", highlight=False)
        draft = Draft(to=found["to"], cc=found["cc"], bcc=found["bcc"], subject=found.get("subject", ""),
                      body=found.get("body") or "", attachments=[Path(p) for p in found["attach"]], sender=sender)
        if not found.get("no_signature"):
            draft = app.sign(draft, chosen.name)
        sent = app.send(draft, chosen.name, queue_only=queue)
    except DeskmailError as exc:
        from deskmail.cli.main import print_error

        if json_out:
            _write_json(exc.to_dict())
        print_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        return 130
    if methods is not None:
        methods.save()
    from deskmail.cli.outbox_text import describe, entry_dict

    if json_out:
        _write_json({**entry_dict(sent.entry), "error": sent.error.to_dict() if sent.error else None,
                     "copy_error": sent.copy_error.to_dict() if sent.copy_error else None})
        return sent.error.exit_code if sent.error else 0
    if queue or (sent.error is None and sent.copy_error is None):
        from deskmail.cli.ui import out, safe

        out.print("\n".join(safe(line) for line in describe(sent.entry)), highlight=False)
        return 0
    from deskmail.cli.outbox_cmd import show_sent  # (refusals, deferrals: the full command's words)

    return show_sent(sent, json_out=False, queued=False)


def _write_json(data: object) -> None:
    import json

    write_out(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")

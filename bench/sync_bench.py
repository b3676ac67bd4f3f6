"""Side-by-side sync benchmark: deskmail against mbsync, offlineimap and getmail6 (issue 5).

One run of this script starts one throw-away Dovecot (:mod:`deskmail.sandbox`) under
``/tmp``, creates one mail user per tool and fills each with the *same* generated mailbox
(:mod:`mailbox_gen`, written with ``Sandbox.fill_maildir``), so the tools never see each
other's changes. Each tool gets its own configuration and local copy in a temporary
directory. Then, interleaving the tools run by run:

1. **first sync** -- the local copy (and the tool's sync state) is wiped (moved aside, deleted
   at the end: see :class:`SetAside`), the tool downloads everything; repeated ``--first-runs``
   times (default ``--runs``);
2. **no-change sync** -- nothing changed on the server; ``--runs`` times;
3. **sync after 100 new messages** -- 100 new (unseen) messages are written into the tool's
   INBOX, then the tool syncs; ``--runs`` times (the mailbox grows by 100 each run).

Every sync is one process tree started from here: its wall time covers start-up to exit,
and its peak RSS is GNU time's ``%M`` (the largest resident set of the process or of any
descendant it waited for). After every sync the local Maildir is checked: exactly the
expected Message-IDs, each exactly once. A sync that exits non-zero, times out or leaves a
wrong local copy is FAILED, never fast.

Needs root (Dovecot), Debian's dovecot packages, and for the baselines::

    apt-get install -y isync offlineimap getmail6 time

Example: ``.venv/bin/python bench/sync_bench.py --messages 10000 --runs 3 --json out.json``
(``--messages 10000,50000`` runs both sizes in one go). See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import grp
import json
import math
import os
import platform
import pwd
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mailbox_gen  # sibling module; bench/ is not a package

REPO = Path(__file__).resolve().parent.parent
PHASES = ("first", "nochange", "new100")
PHASE_TITLES = {"first": "first full sync", "nochange": "no-change sync", "new100": "sync after 100 new"}
NEW_MESSAGES = 100
ALL_TOOLS = ("deskmail", "deskmail-pop3", "mbsync", "offlineimap", "getmail")
INSTALL_HINT = "apt-get install -y isync offlineimap getmail6 time"
GETMAIL_USER, GETMAIL_GROUP = "nobody", "nogroup"
DELETE_SETTLE = 300.0  # seconds between deleting old local copies and the next measurement (see SetAside)
MIN_GAP = 2.0  # seconds between a tool's syncs, or between a server-side change and its sync (see Tool.settle)
SETUP_TIMEOUT = 120.0  # seconds, for configuration commands (account add, --version...)
PASSWORD_VAR = "DESKMAIL_BENCH_PASSWORD"

_MSGID_RE = re.compile(rb"^message-id:[ \t]*(?:\r?\n[ \t]+)?(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- measuring


@dataclass
class Measurement:
    tool: str
    phase: str
    run: int
    expected: int
    wall_s: float | None = None
    peak_rss_mb: float | None = None
    cpu_s: float | None = None
    exit_code: int | None = None
    local_messages: int | None = None
    ok: bool = False
    error: str = ""
    log_file: str = ""
    attempt: int = 0  # > 0: an earlier attempt hit the tool's known bug and was discarded
    load1: float | None = None  # 1-minute load average just before the run (other work on the machine)
    # deskmail: seconds from the start until its indexer process (left to finish after a sync that stored mail) was done
    done_s: float | None = None


@dataclass
class ProcessResult:
    wall_s: float
    peak_rss_kb: int
    cpu_s: float
    exit_code: int
    timed_out: bool
    done_s: float | None = None  # with linger: when the last member of the process group had exited


TIME = "/usr/bin/time"  # GNU time (Debian package "time")


def _group_members(pgid: int) -> list[int]:
    """The live processes of group ``pgid`` other than its leader (zombies not counted)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == pgid:
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
            if fields[0] != "Z" and int(fields[2]) == pgid:
                members.append(int(entry))
    return members


def run_measured(cmd: Sequence[str], env: dict[str, str], cwd: Path, timeout: float, log_file: Path,
                 linger: bool = False) -> ProcessResult:
    """Run ``cmd`` under GNU time as a new process group: wall time, peak RSS (KiB), CPU time.

    Peak RSS comes from GNU time's ``%M`` rather than from our own ``wait4``: a child's
    ``ru_maxrss`` includes the resident size of the process that forked it (the high-water
    mark survives exec), which here would be this Python process. GNU time is a small C
    program, and ``%M`` is the largest of the command and every descendant it waited for.
    Wall time is measured here with ``perf_counter`` (``%e`` has only 10 ms resolution).

    stdout and stderr go to ``log_file`` (a pipe could fill up and stall the tool). On
    timeout the whole group gets SIGKILL. Members left behind after the leader exits
    (none expected) are killed too, before the leader is reaped, so its group id cannot
    have been reused. With ``linger``, members left behind are background work of the tool
    (deskmail's indexer process, which a sync that stores mail leaves to finish): they are waited for
    instead, within the same timeout, and ``done_s`` says when the last one was done; the next
    measurement must not compete with them.
    """
    killed = threading.Event()
    usage_file = log_file.with_suffix(".time")
    wrapped = [TIME, "-o", str(usage_file), "-f", "%M %U %S", "--", *cmd]
    with open(log_file, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(wrapped, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)

        def on_timeout() -> None:
            killed.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, on_timeout)
        timer.daemon = True
        timer.start()
        try:
            # Wait without reaping: until we reap it, the pid (= group id) stays ours.
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            wall = time.perf_counter() - started
            done = None
            if linger:
                while _group_members(proc.pid) and not killed.is_set():
                    time.sleep(0.01)
                done = time.perf_counter() - started
            timer.cancel()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # stragglers only; the leader is a zombie
            _, status, _usage = os.wait4(proc.pid, 0)
        except BaseException:
            timer.cancel()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
    peak_kb, cpu = -1, -1.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        # "Command exited with non-zero status N" may come first; the figures are the last line.
        fields = usage_file.read_text().strip().splitlines()[-1].split()
        peak_kb, cpu = int(fields[0]), float(fields[1]) + float(fields[2])
    return ProcessResult(wall_s=wall, peak_rss_kb=peak_kb, cpu_s=cpu, exit_code=proc.returncode,
                         timed_out=killed.is_set(), done_s=done)


def run_setup(cmd: Sequence[str], *, env: dict[str, str] | None = None, check: bool = True) -> str:
    """A bounded helper command (not measured); returns stdout+stderr."""
    result = subprocess.run(list(cmd), env=env, capture_output=True, text=True, timeout=SETUP_TIMEOUT,
                            stdin=subprocess.DEVNULL, check=False)
    output = (result.stdout + result.stderr).strip()
    if check and result.returncode != 0:
        raise RuntimeError(f"`{shlex.join(cmd)}` exited {result.returncode}: {output[-2000:]}")
    return output


# --------------------------------------------------------------------------- checking a local copy


@dataclass
class CopyCheck:
    files: int
    missing: int
    duplicates: int
    unexpected: int
    without_id: int

    @property
    def ok(self) -> bool:
        return self.missing == self.duplicates == self.unexpected == self.without_id == 0

    def describe(self) -> str:
        return (f"{self.files} files: {self.missing} expected messages missing, {self.duplicates} duplicates, "
                f"{self.unexpected} unexpected, {self.without_id} without a Message-ID")


def _message_id_of(path: Path) -> bytes | None:
    with open(path, "rb") as f:
        head = f.read(16384)
    end = min((i for i in (head.find(b"\n\n"), head.find(b"\r\n\r\n")) if i >= 0), default=len(head))
    m = _MSGID_RE.search(head[: end + 1])
    return m.group(1) if m else None


def maildir_files(root: Path) -> Iterable[Path]:
    """Every message file in every Maildir folder under ``root`` (``cur/`` and ``new/``)."""
    if not root.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(root):
        name = os.path.basename(dirpath)
        if name in ("cur", "new"):
            dirnames[:] = []
            for fn in filenames:
                if not fn.startswith("."):
                    yield Path(dirpath) / fn


def check_copy(root: Path, expected: set[bytes]) -> CopyCheck:
    seen: set[bytes] = set()
    files = duplicates = unexpected = without_id = 0
    for path in maildir_files(root):
        files += 1
        mid = _message_id_of(path)
        if mid is None:
            without_id += 1
        elif mid in seen:
            duplicates += 1
        elif mid not in expected:
            unexpected += 1
        else:
            seen.add(mid)
    return CopyCheck(files, len(expected) - len(seen), duplicates, unexpected, without_id)


# --------------------------------------------------------------------------- the tools


@dataclass
class Server:
    host: str  # 127.0.0.1, for clients that verify IP addresses in certificates
    name: str  # localhost, for mbsync/offlineimap/getmail (they check DNS names only)
    imaps_port: int
    pop3s_port: int
    submission_port: int
    ca_file: Path


class Tool(ABC):
    name: str
    label: str
    protocol: str
    # A known, intermittent bug of the tool itself (log text): such an attempt is discarded,
    # the local copy rolled back (checkpoint/rollback), and the sync repeated (--retries).
    transient_bug: re.Pattern[str] | None = None
    lingers = False  # leaves background work running after it exits (waited for: run_measured's linger)

    def __init__(self, workdir: Path, server: Server, email: str, password: str) -> None:
        self.workdir = workdir
        self.server = server
        self.email = email
        self.password = password

    last_activity = 0.0  # time.monotonic() of the last sync or server-side change for this tool

    def settle(self) -> None:
        """Wait until MIN_GAP has passed since this tool's last sync or mailbox change.

        Maildir timestamps have one-second resolution, so Maildir readers treat a directory
        changed during the current second as unsettled (mbsync prints "Maildir notice:
        sleeping due to recent directory modification" and sleeps). Real syncs are minutes
        apart; so are ours, as far as that rule can tell.
        """
        delay = self.last_activity + MIN_GAP - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def checkpoint(self) -> Any:
        """State to return to if an attempt hits :attr:`transient_bug`."""
        return None

    def rollback(self, checkpoint: Any) -> None:
        raise NotImplementedError(f"{self.name} cannot roll back")

    @abstractmethod
    def setup(self) -> None:
        """Write the configuration (once, before any measured run)."""

    @abstractmethod
    def wipe(self) -> None:
        """Delete the local copy and every bit of sync state, as before a first sync."""

    @abstractmethod
    def command(self) -> list[str]: ...

    @property
    @abstractmethod
    def mail_root(self) -> Path:
        """Where the local Maildir folders are (messages are counted under it)."""

    def env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "HOME": str(self.workdir),
                "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}

    def version(self) -> str:
        return ""

    def describe(self) -> str:
        """The measured command, for the report (passwords are only in config files)."""
        return shlex.join(self.command())


def _write_secret_file(path: Path, text: str, owner: tuple[int, int] | None = None) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    if owner is not None:
        os.chown(path, *owner)


class SetAside:
    """Where a wiped local copy goes until the measurements of a mailbox size are over.

    Deleting files slows the creation of new ones for a while on this kind of disk: ext4 without
    a journal skips, when it allocates an inode, every inode freed in the last 60 s (5 min while
    its inode-table block is not yet written back) -- ``recently_deleted()`` in
    ``fs/ext4/ialloc.c``. Measured here: 30 s after deleting 10,000 files, creating a file in the
    same directory took ~1 ms instead of ~10 us (100 new messages: ~100 ms of a ~0.1 s sync), and
    still ~0.1 ms five minutes later. A wipe before each first sync used to do exactly that, to
    whichever tool came next. So a wipe renames the old copy into a directory beside it, and the
    files are deleted at the end of the run -- or, when the disk would not hold the next mailbox
    size otherwise, before it is filled, and the measurements then wait until the deletion is
    :data:`DELETE_SETTLE` seconds old.
    """

    def __init__(self) -> None:
        self.root: Path | None = None
        self.deleted_at = -math.inf
        self._count = 0

    def take(self, path: Path) -> None:
        if not path.exists():
            return
        if self.root is None:
            shutil.rmtree(path)
            self.deleted_at = time.monotonic()
            return
        self.root.mkdir(mode=0o700, exist_ok=True)
        self._count += 1
        path.rename(self.root / f"{self._count}-{path.name}")

    def empty(self) -> None:
        if self.root is not None and self.root.exists():
            shutil.rmtree(self.root)
            self.deleted_at = time.monotonic()

    def settle(self) -> None:
        os.sync()
        delay = self.deleted_at + DELETE_SETTLE - time.monotonic()
        if delay > 0:
            log(f"waiting {delay:.0f} s for the file system to settle after deleting the last copies")
            time.sleep(delay)


SET_ASIDE = SetAside()


@dataclass(frozen=True)
class DeskmailBuild:
    """Which deskmail to measure: the installed executable, or the package in ``src``.

    With ``src`` (e.g. ``/tmp/deskmail-REV/src`` from ``git archive REV src pyproject.toml``),
    deskmail is imported from there (``PYTHONPATH``) and started the way its console script
    would be: the entry point comes from ``src/../pyproject.toml`` (``[project.scripts]``), so
    the measured start-up path is that commit's, whatever the virtualenv's script says now.
    """

    executable: Path
    src: Path | None = None
    label: str | None = None

    def argv(self) -> list[str]:
        if self.src is None:
            return [str(self.executable)]
        entry = None
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            project = tomllib.loads((self.src.parent / "pyproject.toml").read_text())
            entry = str(project["project"]["scripts"]["deskmail"])
        if entry and re.fullmatch(r"[\w.]+:\w+", entry):
            module, func = entry.split(":")
            code = f"import sys; from {module} import {func}; sys.argv[0] = 'deskmail'; sys.exit({func}())"
            return [sys.executable, "-c", code]
        return [sys.executable, "-m", "deskmail"]

    def version(self) -> str:
        if self.label:
            return f"deskmail {self.label}"
        checkout = self.src.parent if self.src is not None else REPO
        rev = run_setup(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], check=False)
        if not re.fullmatch(r"[0-9a-f]{4,40}", rev):
            return f"deskmail from {self.src or REPO} (not a git checkout)"
        dirty = run_setup(["git", "-C", str(checkout), "status", "--porcelain", "--", "src"], check=False)
        return f"deskmail {rev}{' + uncommitted changes in src/' if dirty else ''}"


class Deskmail(Tool):
    name = "deskmail"
    label = "deskmail (IMAPS)"
    protocol = "imap"
    lingers = True  # a sync that stores mail leaves its indexer process to finish the search index

    def __init__(self, workdir: Path, server: Server, email: str, password: str, build: DeskmailBuild) -> None:
        super().__init__(workdir, server, email, password)
        self.build = build
        self.home = workdir / "home"

    def env(self) -> dict[str, str]:
        env = {**super().env(), "DESKMAIL_HOME": str(self.home), PASSWORD_VAR: self.password}
        if self.build.src is not None:
            env["PYTHONPATH"] = str(self.build.src)  # ahead of the editable install's path entry
        return env

    def setup(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        incoming = (["--imap-host", self.server.host, "--imap-port", str(self.server.imaps_port),
                     "--imap-security", "ssl"] if self.protocol == "imap" else
                    ["--protocol", "pop3", "--pop-host", self.server.host, "--pop-port", str(self.server.pop3s_port),
                     "--pop-security", "ssl"])
        run_setup([*self.build.argv(), "account", "add", "--email", self.email, "--name", "bench", *incoming,
                   "--smtp-host", self.server.host, "--smtp-port", str(self.server.submission_port),
                   "--smtp-security", "starttls", "--ca-file", str(self.server.ca_file),
                   "--password-env", PASSWORD_VAR], env=self.env())

    def wipe(self) -> None:
        SET_ASIDE.take(self.home / "data")  # mail, index, logs; the account configuration stays

    def command(self) -> list[str]:
        return [*self.build.argv(), "sync", "bench", "--quiet"]

    def describe(self) -> str:
        env = f"DESKMAIL_HOME={shlex.quote(str(self.home))} {PASSWORD_VAR}=... "
        if self.build.src is not None:
            env = f"PYTHONPATH={shlex.quote(str(self.build.src))} " + env
        return env + shlex.join(self.command())

    @property
    def mail_root(self) -> Path:
        return self.home / "data" / "mail"

    def version(self) -> str:
        return self.build.version()


class DeskmailPop3(Deskmail):
    name = "deskmail-pop3"
    label = "deskmail (POP3S)"
    protocol = "pop3"


class Mbsync(Tool):
    name = "mbsync"
    label = "mbsync (IMAPS)"
    protocol = "imap"

    @property
    def config(self) -> Path:
        return self.workdir / "mbsyncrc"

    @property
    def mail_root(self) -> Path:
        return self.workdir / "mail"

    def setup(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Stock settings otherwise: Sync All (two-way), every folder, state inside each Maildir.
        _write_secret_file(self.config, f"""\
IMAPAccount bench
Host {self.server.name}
Port {self.server.imaps_port}
User {self.email}
Pass "{self.password}"
SSLType IMAPS
CertificateFile {self.server.ca_file}

IMAPStore bench-remote
Account bench

MaildirStore bench-local
Path {self.mail_root}/
Inbox {self.mail_root}/INBOX
SubFolders Verbatim

Channel bench
Far :bench-remote:
Near :bench-local:
Patterns *
Create Near
SyncState *
""")

    def wipe(self) -> None:
        SET_ASIDE.take(self.mail_root)
        self.mail_root.mkdir()

    def command(self) -> list[str]:
        return ["mbsync", "-c", str(self.config), "-q", "-a"]

    def version(self) -> str:
        return run_setup(["mbsync", "--version"], check=False)


class OfflineImap(Tool):
    name = "offlineimap"
    label = "offlineimap (IMAPS)"
    protocol = "imap"

    @property
    def config(self) -> Path:
        return self.workdir / "offlineimaprc"

    @property
    def mail_root(self) -> Path:
        return self.workdir / "mail"

    @property
    def metadata(self) -> Path:
        return self.workdir / "metadata"

    def setup(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Stock settings otherwise (one connection, fsync on, every folder).
        _write_secret_file(self.config, f"""\
[general]
accounts = bench
metadata = {self.metadata}
ui = quiet

[Account bench]
localrepository = bench-local
remoterepository = bench-remote

[Repository bench-local]
type = Maildir
localfolders = {self.mail_root}

[Repository bench-remote]
type = IMAP
remotehost = {self.server.name}
remoteport = {self.server.imaps_port}
remoteuser = {self.email}
remotepass = {self.password}
ssl = yes
sslcacertfile = {self.server.ca_file}
""")

    def wipe(self) -> None:
        SET_ASIDE.take(self.mail_root)
        SET_ASIDE.take(self.metadata)
        self.mail_root.mkdir()

    def command(self) -> list[str]:
        return ["offlineimap", "-c", str(self.config), "-o", "-u", "quiet"]

    def version(self) -> str:
        return "offlineimap " + run_setup(["offlineimap", "--version"], check=False)


class Getmail(Tool):
    name = "getmail"
    label = "getmail6 (POP3S)"
    protocol = "pop3"
    # getmail6 6.18 forks a child per delivered message and installs its SIGCHLD handler only
    # after fork() (ForkingBase.forkchild -> _prepare_child): when the child exits first, the
    # signal is lost and getmail waits out its timeout, then stops with this error, having
    # written no oldmail file (so a plain re-run would download everything again).
    transient_bug = re.compile(r"operation error \(waiting child pid \d+ timed out\)")

    def __init__(self, workdir: Path, server: Server, email: str, password: str) -> None:
        super().__init__(workdir, server, email, password)
        # getmail refuses to deliver into a Maildir as root: it runs as nobody, in files nobody owns.
        self.owner = (pwd.getpwnam(GETMAIL_USER).pw_uid, grp.getgrnam(GETMAIL_GROUP).gr_gid)

    @property
    def state_dir(self) -> Path:
        return self.workdir / "getmaildir"

    @property
    def mail_root(self) -> Path:
        return self.workdir / "Maildir"

    def _mkdir(self, path: Path) -> None:
        path.mkdir(mode=0o700, exist_ok=True)
        os.chown(path, *self.owner)

    def setup(self) -> None:
        self._mkdir(self.workdir)
        self._mkdir(self.state_dir)
        ca_copy = self.workdir / "ca.crt"
        shutil.copyfile(self.server.ca_file, ca_copy)
        os.chmod(ca_copy, 0o644)
        _write_secret_file(self.state_dir / "getmailrc", f"""\
[retriever]
type = SimplePOP3SSLRetriever
server = {self.server.name}
port = {self.server.pop3s_port}
username = {self.email}
password = {self.password}
ca_certs = {ca_copy}
# Also how long getmail waits for a delivery child (default 180 s); see transient_bug.
timeout = 30

[destination]
type = Maildir
path = {self.mail_root}/

[options]
verbose = 0
read_all = false
delete = false
""", owner=self.owner)

    def checkpoint(self) -> tuple[set[Path], dict[Path, bytes]]:
        files = set(maildir_files(self.mail_root))
        oldmail = {p: p.read_bytes() for p in self.state_dir.glob("oldmail-*")}
        return files, oldmail

    def rollback(self, checkpoint: Any) -> None:
        files, oldmail = checkpoint
        for sub in ("cur", "new", "tmp"):
            for path in (self.mail_root / sub).iterdir():
                if path not in files:
                    path.unlink()
        for path in self.state_dir.glob("oldmail-*"):
            if path not in oldmail:
                path.unlink()
        for path, data in oldmail.items():
            path.write_bytes(data)
            os.chown(path, *self.owner)

    def wipe(self) -> None:
        SET_ASIDE.take(self.mail_root)
        self._mkdir(self.mail_root)
        for sub in ("cur", "new", "tmp"):
            self._mkdir(self.mail_root / sub)
        for old in self.state_dir.glob("oldmail-*"):
            old.unlink()

    def command(self) -> list[str]:
        return ["setpriv", f"--reuid={GETMAIL_USER}", f"--regid={GETMAIL_GROUP}", "--clear-groups",
                "getmail", "--getmaildir", str(self.state_dir), "--rcfile", "getmailrc", "--quiet"]

    def version(self) -> str:
        return run_setup(["getmail", "--version"], check=False)


# --------------------------------------------------------------------------- results


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


@dataclass
class Summary:
    wall_s: float | None  # median over the runs; None when any run failed
    peak_rss_mb: float | None  # largest over the runs
    cpu_s: float | None
    runs: int
    failed: str = ""


@dataclass
class SizeResult:
    messages: int
    mailbox: dict[str, Any]
    fill_seconds: float
    started: str
    seconds: float = 0.0
    measurements: list[Measurement] = field(default_factory=list)
    discarded: list[Measurement] = field(default_factory=list)  # attempts that hit a tool's known bug
    floors: dict[str, dict[str, float | None]] = field(default_factory=dict)  # start-up costs, see FLOORS

    def summary(self, tool: str, phase: str) -> Summary | None:
        ms = [m for m in self.measurements if m.tool == tool and m.phase == phase]
        if not ms:
            return None
        bad = [m for m in ms if not m.ok]
        if bad:
            return Summary(None, None, None, len(ms), failed=bad[0].error)
        return Summary(
            wall_s=median([m.wall_s for m in ms if m.wall_s is not None]),
            peak_rss_mb=max(m.peak_rss_mb for m in ms if m.peak_rss_mb is not None),
            cpu_s=median([m.cpu_s for m in ms if m.cpu_s is not None]),
            runs=len(ms),
        )


def _ratio(a: Summary | None, b: Summary | None) -> float | None:
    if a is None or b is None or a.wall_s is None or b.wall_s is None or b.wall_s <= 0:
        return None
    return a.wall_s / b.wall_s


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


RATIOS = (("deskmail", "mbsync"), ("deskmail", "offlineimap"), ("deskmail-pop3", "getmail"))


def goals(result: SizeResult) -> list[tuple[str, bool | None, str]]:
    """The issue's goals for this size: (goal, met or None when not measurable, figures)."""
    out: list[tuple[str, bool | None, str]] = []

    def s(tool: str, phase: str) -> Summary | None:
        return result.summary(tool, phase)

    def compare(goal: str, tool: str, base: str, phase: str, factor: float) -> None:
        ratio = _ratio(s(tool, phase), s(base, phase))
        met = None if ratio is None else ratio <= factor
        out.append((goal, met, "ratio " + _fmt(ratio)))

    compare("first sync ≤ mbsync", "deskmail", "mbsync", "first", 1.0)
    half = result.messages >= 50_000
    compare(f"no-change sync ≤ {'½ × ' if half else ''}mbsync", "deskmail", "mbsync", "nochange",
            0.5 if half else 1.0)
    compare("sync after 100 new ≤ mbsync", "deskmail", "mbsync", "new100", 1.0)
    for tool in ("deskmail", "deskmail-pop3"):
        peaks = [x.peak_rss_mb for x in (s(tool, p) for p in PHASES) if x is not None and x.peak_rss_mb is not None]
        if any(x is not None for x in (s(tool, p) for p in PHASES)):
            complete = all(x is not None and x.peak_rss_mb is not None for x in (s(tool, p) for p in PHASES))
            peak = max(peaks) if peaks else None
            out.append((f"{tool} peak RSS < 150 MB", None if peak is None or not complete else peak < 150,
                        f"{_fmt(peak, 1)} MB"))
    compare("POP3 first sync ≤ ⅕ × getmail6", "deskmail-pop3", "getmail", "first", 0.2)
    return out


def render_markdown(result: SizeResult, tools: Sequence[Tool]) -> str:
    mb = result.mailbox
    lines = [
        f"### {result.messages:,} messages",
        "",
        f"Mailbox: {mb['messages']:,} messages, {mb['mb']} MB on the server ({mb['mb_crlf']} MB as sent, CRLF), "
        f"mean {mb['mean_kb']} KB, median {mb['median_kb']} KB, {mb['with_attachment']} with an attachment, "
        f"largest {mb['largest_mb']} MB. Filling {len(tools)} users took {result.fill_seconds:.0f} s; "
        f"the measurements {result.seconds:.0f} s.",
        "",
        "Wall time in seconds (median of the runs) / peak RSS in MB (largest of the runs):",
        "",
        "| tool | " + " | ".join(f"{PHASE_TITLES[p]} s | MB" for p in PHASES) + " |",
        "| --- | " + " | ".join("---: | ---:" for _ in PHASES) + " |",
    ]
    for tool in tools:
        cells = []
        for phase in PHASES:
            summ = result.summary(tool.name, phase)
            if summ is None:
                cells += ["—", "—"]
            elif summ.failed:
                cells += ["FAILED", "—"]
            else:
                cells += [_fmt(summ.wall_s), _fmt(summ.peak_rss_mb, 1)]
        lines.append(f"| {tool.label} | " + " | ".join(cells) + " |")
    for tool in tools:
        late = [m for m in result.measurements if m.tool == tool.name and m.ok and m.done_s is not None
                and m.wall_s is not None and m.done_s - m.wall_s >= 0.01]
        if late:
            lines += ["", f"{tool.label}: the search index complete (its indexer process done) at " + ", ".join(
                f"{m.done_s:.2f} s ({PHASE_TITLES[m.phase]} {m.run + 1}, returned at {m.wall_s:.2f} s)" for m in late)
                + "; the next run started only after."]
    runs = sorted({(m.phase, m.run) for m in result.measurements})
    counts = {p: len({r for ph, r in runs if ph == p}) for p in PHASES}
    lines += ["", f"Runs: first sync {counts['first']}, no-change {counts['nochange']}, "
              f"after 100 new {counts['new100']}. Every run, wall seconds in order:", ""]
    for tool in tools:
        per = []
        for phase in PHASES:
            ms = [m for m in result.measurements if m.tool == tool.name and m.phase == phase]
            per.append(f"{PHASE_TITLES[phase]} " + (", ".join(
                (_fmt(m.wall_s) if m.ok else "FAILED") for m in ms) or "—"))
        lines.append(f"- {tool.label}: " + "; ".join(per))
    lines.append("")
    names = {t.name for t in tools}
    ratio_rows = [(a, b) for a, b in RATIOS if a in names and b in names]
    if ratio_rows:
        lines += ["Wall-time ratios (below 1: deskmail faster):", "",
                  "| ratio | " + " | ".join(PHASE_TITLES[p] for p in PHASES) + " |",
                  "| --- | " + " | ".join("---:" for _ in PHASES) + " |"]
        for a, b in ratio_rows:
            cells = [_fmt(_ratio(result.summary(a, p), result.summary(b, p))) for p in PHASES]
            lines.append(f"| {a} / {b} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["Goals (issue 5):", ""]
    for goal, met, figures in goals(result):
        verdict = "n/a" if met is None else ("met" if met else "NOT met")
        lines.append(f"- {goal}: {verdict} ({figures})")
    if result.discarded:
        lines += ["", "Attempts discarded and repeated because the tool hit its known intermittent bug:", ""]
        lines += [f"- {m.tool}, {PHASE_TITLES[m.phase]} run {m.run + 1}: {m.error} after {m.wall_s:.1f} s "
                  f"({m.local_messages} messages delivered by then)" for m in result.discarded]
    if result.floors:
        lines += ["", "Start-up floors (median wall / largest RSS): " + "; ".join(
            f"{FLOORS[k]}: {_fmt(v['wall_s'])} s / {_fmt(v['peak_rss_mb'], 1)} MB" for k, v in result.floors.items()
        ) + "."]
    loads = [m.load1 for m in result.measurements if m.load1 is not None]
    if loads:
        lines += ["", f"1-minute load average before the runs: median {statistics.median(loads):.2f}, "
                  f"max {max(loads):.2f} ({os.cpu_count()} CPUs)."]
    failures = [m for m in result.measurements if not m.ok]
    if failures:
        lines += ["", "Failures:", ""]
        lines += [f"- {m.tool}, {PHASE_TITLES[m.phase]} run {m.run + 1}: {m.error} (log: {m.log_file})"
                  for m in failures]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the benchmark


def make_tool(name: str, workdir: Path, server: Server, email: str, password: str, deskmail: DeskmailBuild) -> Tool:
    if name == "deskmail":
        return Deskmail(workdir, server, email, password, deskmail)
    if name == "deskmail-pop3":
        return DeskmailPop3(workdir, server, email, password, deskmail)
    if name == "mbsync":
        return Mbsync(workdir, server, email, password)
    if name == "offlineimap":
        return OfflineImap(workdir, server, email, password)
    if name == "getmail":
        return Getmail(workdir, server, email, password)
    raise ValueError(name)


def parse_tools(text: str) -> list[str]:
    names: list[str] = []
    for raw in text.split(","):
        item = raw.strip().lower()
        if not item:
            continue
        expanded = {"deskmail": ["deskmail", "deskmail-pop3"], "deskmail-imap": ["deskmail"],
                    "getmail6": ["getmail"], "isync": ["mbsync"]}.get(item, [item])
        for name in expanded:
            if name not in ALL_TOOLS:
                raise SystemExit(f"unknown tool {raw!r}; choose from deskmail (= deskmail-imap + deskmail-pop3), "
                                 f"deskmail-imap, deskmail-pop3, mbsync, offlineimap, getmail")
            if name not in names:
                names.append(name)
    return names


def preflight(tool_names: Sequence[str], deskmail: DeskmailBuild) -> None:
    problems: list[str] = []
    if os.geteuid() != 0:
        problems.append("run as root: the sandbox Dovecot needs it (it switches to its own users)")
    if not os.access(TIME, os.X_OK):
        problems.append(f"{TIME} (GNU time, measures peak RSS) is missing -- `{INSTALL_HINT}`")
    needed = {"mbsync": ("mbsync", "isync"), "offlineimap": ("offlineimap", "offlineimap"),
              "getmail": ("getmail", "getmail6")}
    missing = [pkg for tool, (binary, pkg) in needed.items() if tool in tool_names and shutil.which(binary) is None]
    if missing:
        problems.append(f"missing baseline tool package(s): {', '.join(missing)} -- install them with "
                        f"`{INSTALL_HINT}` (or leave them out with --tools)")
    if "getmail" in tool_names:
        if shutil.which("setpriv") is None:
            problems.append("setpriv is missing (package util-linux); getmail must run unprivileged")
        try:
            pwd.getpwnam(GETMAIL_USER)
            grp.getgrnam(GETMAIL_GROUP)
        except KeyError:
            problems.append(f"the user {GETMAIL_USER} / group {GETMAIL_GROUP} is missing (getmail runs as them)")
    if any(t.startswith("deskmail") for t in tool_names):
        if deskmail.src is None and not os.access(deskmail.executable, os.X_OK):
            problems.append(f"deskmail executable not found at {deskmail.executable}; pass --deskmail PATH")
        if deskmail.src is not None and not (deskmail.src / "deskmail" / "__init__.py").is_file():
            problems.append(f"--deskmail-src {deskmail.src} has no deskmail/__init__.py")
    if problems:
        for p in problems:
            log(f"error: {p}")
        raise SystemExit(2)


def measure(
    tool: Tool, phase: str, run: int, expected_ids: set[bytes], timeout: float, logs: Path, attempt: int = 0
) -> Measurement:
    m = Measurement(tool=tool.name, phase=phase, run=run, expected=len(expected_ids), attempt=attempt)
    log_file = logs / f"{tool.name}-{phase}-{run + 1}{f'-retry{attempt}' if attempt else ''}.log"
    m.log_file = str(log_file)
    tool.settle()
    os.sync()  # write back the previous tool's files now, not during this measurement
    m.load1 = round(os.getloadavg()[0], 2)
    res = run_measured(tool.command(), tool.env(), tool.workdir, timeout, log_file, linger=tool.lingers)
    tool.last_activity = time.monotonic()
    m.wall_s, m.cpu_s, m.exit_code = round(res.wall_s, 3), round(res.cpu_s, 3), res.exit_code
    m.done_s = round(res.done_s, 3) if res.done_s is not None else None
    m.peak_rss_mb = round(res.peak_rss_kb / 1024, 1)
    check = check_copy(tool.mail_root, expected_ids)
    m.local_messages = check.files
    if res.timed_out:
        m.error = f"timed out after {timeout:.0f} s"
    elif res.peak_rss_kb < 0:
        m.error = f"no figures from {TIME} (see {log_file.with_suffix('.time')})"
    elif res.exit_code != 0:
        tail = log_file.read_text(errors="replace").strip().splitlines()[-3:]
        m.error = f"exit status {res.exit_code}: {' / '.join(tail)[-300:]}"
    elif not check.ok:
        m.error = f"wrong local copy after a successful exit: {check.describe()}"
    else:
        m.ok = True
    status = "ok" if m.ok else f"FAILED ({m.error})"
    later = f" (indexed at {m.done_s:.2f} s)" if m.done_s is not None and m.done_s - m.wall_s >= 0.01 else ""
    log(f"  {tool.name:<14} {PHASE_TITLES[phase]:<20} run {run + 1}: {m.wall_s:8.2f} s {m.peak_rss_mb:7.1f} MB "
        f"{check.files:6d} messages  {status}{later}")
    return m


FLOORS = {
    "python": "the interpreter alone: python -I -c pass",
    "deskmail-cli": "deskmail's command-line start-up: deskmail account list",
}


def measure_floors(desk: Deskmail, runs: int, logs: Path) -> dict[str, dict[str, float | None]]:
    """Start-up costs that every deskmail sync pays, for reading the no-change figures."""
    commands = {"python": [sys.executable, "-I", "-c", "pass"],
                "deskmail-cli": [*desk.build.argv(), "account", "list"]}
    floors: dict[str, dict[str, float | None]] = {}
    for key, cmd in commands.items():
        walls: list[float] = []
        peaks: list[float] = []
        for run in range(runs):
            res = run_measured(cmd, desk.env(), desk.workdir, SETUP_TIMEOUT, logs / f"floor-{key}-{run + 1}.log")
            if res.exit_code == 0 and res.peak_rss_kb >= 0:
                walls.append(res.wall_s)
                peaks.append(res.peak_rss_kb / 1024)
        floors[key] = {"wall_s": round(statistics.median(walls), 3) if walls else None,
                       "peak_rss_mb": round(max(peaks), 1) if peaks else None, "runs": len(walls)}
    return floors


def bench_size(
    sb: Any, root: Path, count: int, tool_names: Sequence[str], args: argparse.Namespace, seed: int
) -> tuple[SizeResult, list[Tool]]:
    server = Server(host=sb.host, name="localhost", imaps_port=sb.imaps_port, pop3s_port=sb.pop3s_port,
                    submission_port=sb.submission_port, ca_file=Path(sb.ca_file))
    work = root / f"work-{count}"
    work.mkdir(mode=0o755)
    logs = work / "logs"
    logs.mkdir()
    # Each tool's server copy, its first syncs' copies (set aside) and the one it keeps; ~31 KB a message.
    need = count * 31_000 * len(tool_names) * (args.first_runs + 2) * 1.2
    if shutil.disk_usage(root).free < need:
        log(f"[{count}] deleting the copies of the last size to make room ({need / 1e9:.1f} GB needed)")
        SET_ASIDE.empty()
    log(f"[{count}] filling {len(tool_names)} mailboxes with {count:,} generated messages...")
    started = time.monotonic()
    stats = mailbox_gen.MailboxStats()
    tools: list[Tool] = []
    for i, name in enumerate(tool_names):
        user = sb.create_user(f"bench-{name}")
        stream = mailbox_gen.messages(count, seed=seed)
        sb.fill_maildir(user.email, stats.count(stream) if i == 0 else stream, flags="S")
        tool = make_tool(name, work / name, server, user.email, user.password, args.deskmail_build)
        tool.setup()
        tool.last_activity = time.monotonic()
        tools.append(tool)
    result = SizeResult(messages=count, mailbox=stats.summary(), fill_seconds=time.monotonic() - started,
                        started=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    log(f"[{count}] mailbox: " + ", ".join(f"{k}={v}" for k, v in result.mailbox.items())
        + f"; filled in {result.fill_seconds:.0f} s")
    timeout = args.timeout if args.timeout else 300 + 0.06 * count
    ids = {i.encode() for i in mailbox_gen.expected_message_ids(count, seed=seed)}
    broken: set[str] = set()
    SET_ASIDE.settle()
    t0 = time.monotonic()

    def one(tool: Tool, phase: str, run: int, expected: set[bytes]) -> None:
        if tool.name in broken:
            return
        checkpoint = tool.checkpoint() if tool.transient_bug else None
        for attempt in range(1 + args.retries):
            m = measure(tool, phase, run, expected, timeout, logs, attempt)
            bug = tool.transient_bug
            if m.ok or bug is None or not bug.search(Path(m.log_file).read_text(errors="replace")):
                break
            if attempt < args.retries:
                log(f"  {tool.name}: hit its known intermittent bug; discarding this attempt and repeating it")
                result.discarded.append(m)
                tool.rollback(checkpoint)
        result.measurements.append(m)
        if not m.ok:
            broken.add(tool.name)  # its local copy is unusable for the later phases

    for run in range(args.first_runs):
        for tool in tools:
            if tool.name not in broken:
                tool.wipe()
            one(tool, "first", run, ids)
    for run in range(args.runs):
        for tool in tools:
            one(tool, "nochange", run, ids)
    for run in range(args.runs):
        start = count + NEW_MESSAGES * run
        expected = ids | {i.encode() for i in mailbox_gen.expected_message_ids(NEW_MESSAGES, start, seed)}
        for tool in tools:
            if tool.name in broken:
                continue
            sb.fill_maildir(tool.email, mailbox_gen.messages(NEW_MESSAGES, start, seed))
            tool.last_activity = time.monotonic()
            one(tool, "new100", run, expected)
        ids = expected
    desk = next((t for t in tools if isinstance(t, Deskmail)), None)
    if desk is not None:
        result.floors = measure_floors(desk, max(5, args.runs), logs)
    result.seconds = time.monotonic() - t0
    return result, tools


def machine_info() -> dict[str, str]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, IndexError, ValueError):
        kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    return {"cpu": cpu, "cpus": str(os.cpu_count()), "memory": mem, "kernel": platform.release(),
            "python": platform.python_version()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--messages", default="10000",
                        help="mailbox size(s), comma-separated, e.g. 10000,50000 (default 10000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement; the median is reported")
    parser.add_argument("--first-runs", type=int, default=None,
                        help="runs of the first full sync (default: --runs); the slow baselines make this costly")
    parser.add_argument("--tools", default=",".join(("deskmail", "mbsync", "offlineimap", "getmail")),
                        help="comma-separated: deskmail (IMAPS and POP3S), deskmail-imap, deskmail-pop3, mbsync, "
                             "offlineimap, getmail (default: all)")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    parser.add_argument("--markdown", type=Path, help="also write the tables to this Markdown file")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds before one sync is killed (default 300 + 0.06 per message)")
    parser.add_argument("--retries", type=int, default=3,
                        help="times to repeat a sync whose tool hit its known intermittent bug (getmail6's "
                             "lost-SIGCHLD race); the discarded attempts are listed (default 3)")
    parser.add_argument("--seed", type=int, default=mailbox_gen.DEFAULT_SEED)
    parser.add_argument("--deskmail", type=Path, default=Path(sys.executable).parent / "deskmail",
                        help="the deskmail executable (default: next to this Python)")
    parser.add_argument("--deskmail-src", type=Path, default=None,
                        help="import deskmail from this src/ directory instead (an unpacked `git archive REV src "
                             "pyproject.toml`), started through that commit's console entry point")
    parser.add_argument("--deskmail-version", default=None,
                        help="how to name the measured deskmail in the report (default: git commit)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp"),
                        help="parent of the temporary directory (must be enterable by other users; default /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the servers' and tools' files afterwards")
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.messages.split(",") if x.strip()]
    if not sizes or min(sizes) < 1 or args.runs < 1:
        parser.error("--messages and --runs must be positive")
    args.first_runs = args.runs if args.first_runs is None else args.first_runs
    if args.first_runs < 1:
        parser.error("--first-runs must be positive")
    tool_names = parse_tools(args.tools)
    args.deskmail_build = DeskmailBuild(args.deskmail.absolute(),
                                        args.deskmail_src.absolute() if args.deskmail_src else None,
                                        args.deskmail_version)
    preflight(tool_names, args.deskmail_build)

    from deskmail.sandbox import start_sandbox

    root = Path(tempfile.mkdtemp(prefix="deskmail-bench-", dir=args.workdir))
    os.chmod(root, 0o755)  # Dovecot's users (and nobody, for getmail) must get through
    log(f"working directory: {root}")
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "runs": args.runs,
        "first_runs": args.first_runs,
        "seed": args.seed,
        "sizes": [],
    }
    markdown: list[str] = []
    sb = None
    try:
        sb = start_sandbox(root / "sandbox")
        SET_ASIDE.root = root / "set-aside"
        report["dovecot"] = run_setup(["dovecot", "--version"], check=False)
        for count in sizes:
            result, tools = bench_size(sb, root, count, tool_names, args, args.seed)
            report["versions"] = {t.name: t.version() for t in tools}
            report["commands"] = {t.name: t.describe() for t in tools}
            entry = asdict(result)
            entry["summary"] = {t.name: {p: (asdict(s) if (s := result.summary(t.name, p)) else None)
                                         for p in PHASES} for t in tools}
            entry["ratios"] = {f"{a}/{b}": {p: _ratio(result.summary(a, p), result.summary(b, p)) for p in PHASES}
                               for a, b in RATIOS if a in tool_names and b in tool_names}
            entry["goals"] = [{"goal": g, "met": met, "figures": f} for g, met, f in goals(result)]
            report["sizes"].append(entry)
            text = render_markdown(result, tools)
            markdown.append(text)
            print(text, flush=True)
            if args.json:
                args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
            if not args.keep and count != sizes[-1]:
                for tool in tools:  # deleted when the disk needs it (see SetAside)
                    SET_ASIDE.take(tool.workdir)
                    SET_ASIDE.take(sb.user(tool.email).home / "Maildir")
        if len(sizes) > 1:
            growth = rss_growth(report)
            report["rss_growth"] = growth
            text = "Peak RSS by mailbox size (MB, largest over all phases):\n\n" + "\n".join(
                f"- {tool}: " + ", ".join(f"{n:,}: {_fmt(mb, 1)}" for n, mb in per.items())
                for tool, per in growth.items()
            ) + "\n"
            markdown.append(text)
            print(text)
        versions = report.get("versions", {})
        text = "Versions: " + "; ".join(dict.fromkeys(v.splitlines()[0] for v in versions.values() if v)) + \
            f"; {report['dovecot'].split()[0] if report.get('dovecot') else 'Dovecot ?'} (Dovecot).\n"
        markdown.append(text)
        print(text)
    finally:
        if sb is not None:
            sb.stop()
        if args.json:
            args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        if args.markdown:
            args.markdown.write_text("\n".join(markdown))
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


def rss_growth(report: dict[str, Any]) -> dict[str, dict[int, float | None]]:
    growth: dict[str, dict[int, float | None]] = {}
    for entry in report["sizes"]:
        for tool, phases in entry["summary"].items():
            peaks = [p["peak_rss_mb"] for p in phases.values() if p and p.get("peak_rss_mb") is not None]
            growth.setdefault(tool, {})[entry["messages"]] = max(peaks) if peaks else None
    return growth


if __name__ == "__main__":
    sys.exit(main())

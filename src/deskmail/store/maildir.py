"""Crash-safe Maildir writing, by hand.

The stdlib ``mailbox.Maildir`` neither fsyncs the file nor the directory,
so a crash can leave an empty file in ``cur/``. Here every message goes:
write to ``tmp/`` -> fsync file -> rename into ``cur/`` -> fsync ``cur/``.

Layout (Maildir++, readable by mutt/neomutt/notmuch): the account folder is
the INBOX; other folders are ``.Name`` siblings (added by the sync work).

File names carry the server identity of the message, as mbsync does
(``,U=<uid>`` for IMAP, ``,P=<hex uidl>`` for POP3, plus ``,V=<uidvalidity>``),
so that after a crash between "file is durable" and "index committed" the next
run adopts the file instead of downloading it again.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from deskmail.errors import StoreError

# IMAP system flag <-> Maildir info letter (letters must be kept sorted in names).
FLAG_LETTERS = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R", "\\Seen": "S", "\\Deleted": "T"}
LETTER_FLAGS = {v: k for k, v in FLAG_LETTERS.items()}

_counter = itertools.count()
_HOST = socket.gethostname().replace("/", "\\057").replace(":", "\\072") or "localhost"
# Names of our own tmp/ files (begin(), add()): the only ones a crash of ours can leave there.
_OURS = re.compile(r"\d+\.M\d+P\d+Q\d+\." + re.escape(_HOST) + r"(?:,V=\d+,(?:U=\d+|P=[0-9a-f]+))?")
_LINE_END = re.compile(rb"\r?\n")
_KEY_RE = re.compile(r",(?:V=(?P<v>\d+),)?(?:U=(?P<u>\d+)|P=(?P<p>[0-9a-f]+))")


def flags_to_info(flags: Iterable[str]) -> str:
    return "".join(sorted(FLAG_LETTERS[f] for f in flags if f in FLAG_LETTERS))


def info_to_flags(name: str) -> tuple[str, ...]:
    _, sep, info = name.rpartition(":2,")
    if not sep:
        return ()
    return tuple(LETTER_FLAGS[c] for c in info if c in LETTER_FLAGS)


def server_key(name: str) -> tuple[int, str] | None:
    """(uidvalidity, uid) encoded in a file name, or None for a foreign file."""
    base = name.partition(":")[0]
    m = _KEY_RE.search(base)
    if not m:
        return None
    uid = m.group("u") or bytes.fromhex(m.group("p")).decode("utf-8", "replace")
    return int(m.group("v") or 0), uid


_SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-+@&'()[]")


def folder_path(name: str, delimiter: str = "/") -> str:
    """Maildir++ directory for an IMAP folder name: ``Work/Ärger`` -> ``.Work.%C3%84rger``.

    Each hierarchy level is percent-encoded (dots, slashes, NUL, control
    characters and non-ASCII included), so no server-chosen name can climb out
    of the account folder or collide with Maildir's own ``cur``/``new``/``tmp``
    (F-30). INBOX is the account folder itself.
    """
    if name.upper() == "INBOX":
        return ""
    parts = name.split(delimiter) if delimiter else [name]
    encoded = []
    for part in parts:
        enc = "".join(c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode("utf-8")) for c in part)
        encoded.append(enc or "%")
    return "." + ".".join(encoded)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


HEAD_BYTES = 64 * 1024  # enough for any sane header block; the index parses only this


def _syncfs(fd: int) -> bool:
    """Flush the whole file system of ``fd`` in one call (Linux syncfs); False if unavailable."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.syncfs(fd) == 0)
    except (OSError, AttributeError):
        return False


class PendingMessage:
    """A message being streamed into ``tmp/``; becomes visible only through :meth:`Maildir.publish`."""

    def __init__(self, md: Maildir, unique: str) -> None:
        self.unique = unique
        # A str, not a Path: Python 3.11's pathlib interns every name it parses, and one unique name per
        # message keeps resizing the interpreter's table of interned strings (a peak that grows with
        # the number of messages stored in one run).
        self.path = os.path.join(md.root, "tmp", unique)
        self._root = md.root
        self.head = bytearray()
        self._want_head = True
        self.size = 0
        self._fh = open(self.path, "xb")  # noqa: SIM115 - closed in close()/discard()

    def write(self, data: bytes) -> int:
        if self._want_head:
            self.head += data[: HEAD_BYTES - len(self.head)]
            # Only the header block is indexed: stop collecting at its end (or at the cap).
            self._want_head = len(self.head) < HEAD_BYTES and b"\r\n\r\n" not in self.head and (
                b"\n\n" not in self.head)
        self.size += len(data)
        try:
            return self._fh.write(data)
        except OSError as exc:  # a local failure (disk full), not a network one: say so
            raise _store_error(exc, self._root) from exc

    def close(self) -> None:
        try:
            self._fh.close()  # flushes the last buffered bytes: the disk may be full right here
        except OSError as exc:
            raise _store_error(exc, self._root) from exc

    def discard(self) -> None:
        try:
            self._fh.close()
        except OSError:
            pass  # the flush of a file we are throwing away failed (disk full): nothing to keep
        _unlink(self.path)


class Maildir:
    def __init__(self, root: Path) -> None:
        self.root = root

    def ensure(self) -> None:
        for sub in ("cur", "new", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)

    def exists(self) -> bool:
        return all((self.root / sub).is_dir() for sub in ("cur", "new", "tmp"))

    def _unique(self, uidvalidity: int, uid: str, pop: bool) -> str:
        now = time.time()
        key = f"P={uid.encode().hex()}" if pop else f"U={int(uid)}"
        return f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}Q{next(_counter)}.{_HOST},V={uidvalidity},{key}"

    def add(
        self, chunks: Iterable[bytes], *, uidvalidity: int, uid: str, flags: Iterable[str], pop: bool = False
    ) -> str:
        """Store one message durably; returns its file name in ``cur/``."""
        unique = self._unique(uidvalidity, uid, pop)
        tmp = self.root / "tmp" / unique
        name = f"{unique}:2,{flags_to_info(flags)}"
        try:
            with open(tmp, "xb") as fh:
                for chunk in chunks:
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            os.rename(tmp, self.root / "cur" / name)
            _fsync_dir(self.root / "cur")
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _store_error(exc, self.root) from exc
        return name

    def begin(self) -> PendingMessage:
        now = time.time()
        unique = f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}Q{next(_counter)}.{_HOST}"
        try:
            return PendingMessage(self, unique)
        except OSError as exc:
            raise _store_error(exc, self.root) from exc

    def publish(self, batch: list[tuple[PendingMessage, int, str, tuple[str, ...], bool]]) -> list[str]:
        """Make a batch of finished messages durable and visible: one file-system flush, then renames.

        Order: data durable (syncfs, or fsync per file where syncfs is missing) -> rename into cur/
        -> fsync cur/. Only after this may the caller commit index rows (sync state).
        """
        if not batch:
            return []
        names = []
        try:
            for pending, _v, _u, _f, _p in batch:
                pending.close()
            fd = os.open(self.root / "tmp", os.O_RDONLY)
            try:
                if not _syncfs(fd):
                    for pending, *_ in batch:
                        with open(pending.path, "rb+") as fh:
                            os.fsync(fh.fileno())
            finally:
                os.close(fd)
            cur = os.path.join(self.root, "cur")
            for pending, uidvalidity, uid, flags, pop in batch:
                key = f"P={uid.encode().hex()}" if pop else f"U={int(uid)}"
                name = f"{pending.unique},V={uidvalidity},{key}:2,{flags_to_info(flags)}"
                os.rename(pending.path, os.path.join(cur, name))
                names.append(name)
            _fsync_dir(self.root / "cur")
        except OSError as exc:
            for pending, *_ in batch:
                _unlink(pending.path)
            raise _store_error(exc, self.root) from exc
        return names

    def rekey(self, name: str, uidvalidity: int, uid: int) -> str:
        """Rename a file to carry a new (UIDVALIDITY, UID) identity (after a UIDVALIDITY change)."""
        unique, _, info = name.partition(":")
        base = _KEY_RE.sub("", unique)
        new = f"{base},V={uidvalidity},U={uid}:{info}"
        os.rename(self.root / "cur" / name, self.root / "cur" / new)
        return new

    def adopt(self, name: str, uidvalidity: int, uid: int, flags: Iterable[str]) -> str:
        """Give a file in cur/ that the server did not know its new server identity (after an upload).

        The rename is made durable (cur/ fsync'd) before the caller commits the index row, so a crash
        leaves either the old name (the upload journal resolves it) or the new one (adopted by
        :meth:`deskmail.store.Store.recover`), never a row without its file.
        """
        base = _KEY_RE.sub("", name.partition(":")[0])  # a key from another folder (mutt move) is replaced
        new = f"{base},V={uidvalidity},U={uid}:2,{flags_to_info(flags)}"
        try:
            os.rename(self.root / "cur" / name, self.root / "cur" / new)
            _fsync_dir(self.root / "cur")
        except OSError as exc:
            raise _store_error(exc, self.root) from exc
        return new

    def read_for_upload(self, name: str) -> bytes | None:
        """A message file as it goes on the wire (CRLF line ends, RFC 3501), or None if it is not one.

        Only regular files count: a symlink could point anywhere on this computer, and an empty file
        is no message. Dot files are editor or desktop leftovers, never mail.
        """
        path = self.root / "cur" / name
        if name.startswith("."):
            return None
        try:
            if not path.is_file() or path.is_symlink():
                return None
            data = path.read_bytes()
        except OSError:
            return None
        if not data.strip():
            return None
        return _LINE_END.sub(b"\r\n", data)

    def set_flags(self, name: str, flags: Iterable[str]) -> str:
        unique = name.partition(":")[0]
        new = f"{unique}:2,{flags_to_info(flags)}"
        if new != name:
            try:
                os.rename(self.root / "cur" / name, self.root / "cur" / new)
            except OSError as exc:
                raise _store_error(exc, self.root) from exc
        return new

    def remove(self, name: str) -> None:
        try:
            (self.root / "cur" / name).unlink(missing_ok=True)
        except OSError as exc:
            raise _store_error(exc, self.root) from exc

    def path(self, name: str) -> Path:
        return self.root / "cur" / name

    def clean_tmp(self) -> int:
        """Remove leftovers of an interrupted write of ours (we hold the store lock, so none is live).

        Another program (mutt, an MDA) may be writing into tmp/ right now: its files are left alone
        unless they are older than the 36 hours the Maildir specification allows a delivery.
        """
        removed = 0
        tmp = self.root / "tmp"
        if tmp.is_dir():
            old = time.time() - 36 * 3600
            for entry in tmp.iterdir():
                try:
                    if _OURS.fullmatch(entry.name) or entry.lstat().st_mtime < old:
                        entry.unlink(missing_ok=True)
                        removed += 1
                except OSError:
                    continue
        return removed

    def files(self) -> list[str]:
        """Names in cur/ (files in new/ are moved to cur/ first, as a Maildir reader does)."""
        return list(self.iter_files())

    def iter_files(self) -> Iterator[str]:
        """:meth:`files`, one name at a time: nothing that grows with the folder is held."""
        new, cur = self.root / "new", self.root / "cur"
        if new.is_dir():
            for entry in new.iterdir():
                os.rename(entry, cur / (entry.name if ":2," in entry.name else entry.name + ":2,"))
        if cur.is_dir():
            with os.scandir(cur) as it:
                for found in it:
                    yield found.name


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _store_error(exc: OSError, root: Path) -> StoreError:
    import errno

    if exc.errno == errno.ENOSPC:
        return StoreError(
            f"The disk is full: cannot write into {root}",
            "no free space is left on the disk that holds the mail store",
            "free some disk space and sync again; nothing was removed from the server",
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StoreError(
            f"Cannot write into the mail store {root} ({exc.strerror})",
            "the folder's permissions were changed, or the disk is read-only",
            f"make {root} writable by your user",
        )
    return StoreError(f"Writing into the mail store {root} failed ({exc.strerror or exc})")

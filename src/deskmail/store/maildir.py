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

import errno
import functools
import itertools
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from deskmail.durable import fsync_dir
from deskmail.errors import StoreError

if TYPE_CHECKING:
    from typing import BinaryIO

# IMAP system flag <-> Maildir info letter (letters must be kept sorted in names).
FLAG_LETTERS = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R", "\\Seen": "S", "\\Deleted": "T"}
LETTER_FLAGS = {v: k for k, v in FLAG_LETTERS.items()}

_counter = itertools.count()
# The host name as socket.gethostname() gives it on POSIX (uname), without importing socket (~2 ms of a
# `deskmail search` process, which never writes a message).
_HOST = os.uname().nodename.replace("/", "\\057").replace(":", "\\072") or "localhost"
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


def folder_name(path: str, delimiter: str) -> str | None:
    """The IMAP folder name for a Maildir++ directory, the inverse of :func:`folder_path`.

    Accepts what other programs write too (mutt, notmuch: plain UTF-8 levels). None when the
    directory cannot be a folder name: not Maildir++ (no leading dot), an empty level, a level
    holding the server's delimiter (it would become hierarchy), or undecodable bytes.
    """
    from urllib.parse import unquote_to_bytes  # only when a folder made here is looked at

    if not path.startswith(".") or path in (".", ".."):
        return None
    levels = []
    for level in path[1:].split("."):
        if level == "%":
            return None  # folder_path's spelling of an empty level
        try:
            text = unquote_to_bytes(level).decode("utf-8") if "%" in level else level
        except UnicodeDecodeError:
            return None
        if not text or (delimiter and delimiter in text) or not text.isprintable():
            return None
        levels.append(text)
    name = (delimiter or "/").join(levels)
    return None if name.upper() == "INBOX" else name


HEAD_BYTES = 64 * 1024  # enough for any sane header block; the index parses only this


@functools.cache
def _libc_function(name: str) -> Callable[[int], int] | None:
    """A C library function by name (loaded once), or None where the C library lacks it."""
    try:
        import ctypes

        return getattr(ctypes.CDLL(None, use_errno=True), name)  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


def _syncfs(fd: int) -> bool:
    """Flush the whole file system of ``fd`` in one call (Linux syncfs); False if unavailable."""
    syncfs = _libc_function("syncfs")
    return syncfs is not None and syncfs(fd) == 0


def release_freed_memory() -> None:
    """Hand the memory a batch freed back to the system (glibc's malloc_trim; elsewhere nothing).

    Reading TLS records, SQLite pages and message chunks of every size leaves free holes in
    malloc's heap, which it keeps: a first sync's RSS crept up with the mailbox (+0.6 to +1.6 MB
    from 10,000 to 50,000 messages), all of it free memory kept (in use: ~2.8 MB at both sizes).
    Trimming after each batch (500 messages or 32 MB) costs well under a millisecond; measured
    peaks went from 28.5-29.7 / 28.8-29.7 MB to 28.0-28.6 / 28.3-28.5 MB (10,000 / 50,000).
    """
    trim = _libc_function("malloc_trim")  # glibc only: elsewhere nothing to do
    if trim is not None:
        trim(0)


UPLOAD_CHUNK = 1024 * 1024
UPLOAD_HEAD = 256 * 1024  # where the Message-ID is looked for


class Upload:
    """A message file's copy made for an APPEND (see :meth:`Maildir.prepare_upload`)."""

    __slots__ = ("head", "path", "sha256", "size")

    def __init__(self, path: str, size: int, sha256: bytes, head: bytes) -> None:
        self.path, self.size, self.sha256, self.head = path, size, sha256, head

    def open(self) -> BinaryIO:
        return open(self.path, "rb")

    def discard(self) -> None:
        _unlink(self.path)


class PendingMessage:
    """A message being streamed into ``tmp/``; becomes visible only through :meth:`Maildir.publish`."""

    def __init__(self, md: Maildir, unique: str, *, buffered: bool = True) -> None:
        self.unique = unique
        # A str, not a Path: Python 3.11's pathlib interns every name it parses, and one unique name per
        # message keeps resizing the interpreter's table of interned strings (a peak that grows with
        # the number of messages stored in one run).
        self.path = os.path.join(md.root, "tmp", unique)
        self._root = md.root
        self.head = bytearray()
        self._want_head = True
        self.size = 0
        # Unbuffered for callers that write big chunks (IMAP: TLS records of up to 16 KiB): a buffer
        # would copy nothing, and opening one costs an ioctl and an lseek per message.
        self._fh = open(self.path, "xb", buffering=-1 if buffered else 0)  # noqa: SIM115 - closed in close()/discard()

    def write(self, data: bytes) -> int:
        if self._want_head:
            # Only the header block is indexed, and a download batch holds 500 of these until it
            # commits: copy header bytes only, never the body that came in the same chunk (up to
            # 64 KiB copied, twice, to keep the first ~2 KiB).
            room = HEAD_BYTES - len(self.head)
            end = _header_end(data, room)
            if self.head:  # a blank line split between two chunks comes first
                seam = bytes(self.head[-3:])
                if (at := _header_end(seam + data[:3], len(seam) + min(3, room))) > len(seam):
                    end = at - len(seam)
            self.head += data[:end] if end >= 0 else data[:room]
            self._want_head = end < 0 and len(self.head) < HEAD_BYTES
        self.size += len(data)
        try:
            done = self._fh.write(data) or 0
            if done < len(data):  # an unbuffered write may be short (a signal, a nearly full disk)
                view = memoryview(data)
                while done < len(data):
                    step = self._fh.write(view[done:])
                    if not step:
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                    done += step
            return done
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
        """cur/, new/ and tmp/ are there and can be listed: a folder made unreadable (or one whose parent
        is) is as good as missing, never an empty folder and never a crash."""
        for sub in ("cur", "new", "tmp"):
            try:
                with os.scandir(self.root / sub) as entries:
                    next(entries, None)
            except OSError:  # missing, not a directory, or not readable
                return False
        return True

    def has_server_names(self) -> bool:
        """Whether any message here is named with a server identity (it came from a server once)."""
        for sub in ("cur", "new"):
            try:
                with os.scandir(self.root / sub) as entries:
                    if any(server_key(e.name) is not None for e in entries):
                        return True
            except OSError:
                continue
        return False

    def _unique(self, uidvalidity: int, uid: str, pop: bool) -> str:
        key = f"P={uid.encode().hex()}" if pop else f"U={int(uid)}"
        return f"{_unique_base()},V={uidvalidity},{key}"

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
            fsync_dir(self.root / "cur")
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _store_error(exc, self.root) from exc
        return name

    def begin(self, *, buffered: bool = True) -> PendingMessage:
        try:
            return PendingMessage(self, _unique_base(), buffered=buffered)
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
            fsync_dir(self.root / "cur")
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
            fsync_dir(self.root / "cur")
        except OSError as exc:
            raise _store_error(exc, self.root) from exc
        return new

    def _plain_file(self, name: str) -> bool:
        """A regular file in cur/ (a symlink could point anywhere on this computer), not a dot file
        (editor or desktop leftovers)."""
        path = self.root / "cur" / name
        try:
            return not name.startswith(".") and path.is_file() and not path.is_symlink()
        except OSError:
            return False

    def is_message(self, name: str) -> bool:
        """Whether a file in cur/ can be a message: a plain file (:meth:`_plain_file`), not empty or blank."""
        if not self._plain_file(name):
            return False
        try:
            with open(self.root / "cur" / name, "rb") as fh:
                while chunk := fh.read(64 * 1024):
                    if chunk.strip():
                        return True
        except OSError:
            return False
        return False

    def prepare_upload(self, name: str) -> Upload | None:
        """A copy of a message file as it goes on the wire (CRLF line ends, RFC 3501), or None if it
        is not one (:meth:`is_message`) or cannot be read.

        The copy is streamed into tmp/ (memory stays the same for a 50 MB file), and it is what
        gets sent: a file another program rewrites during the upload cannot make the size announced
        to the server wrong. Leftovers of an interrupted upload are removed with our other tmp/ files.
        """
        import hashlib

        if not self._plain_file(name):
            return None
        copy = os.path.join(self.root, "tmp", _unique_base())
        digest, size, head, content = hashlib.sha256(), 0, bytearray(), False
        try:
            with open(self.root / "cur" / name, "rb") as src, open(copy, "xb") as dst:
                carry = b""
                while True:
                    chunk = src.read(UPLOAD_CHUNK)
                    data = carry + chunk
                    # A CR at a chunk's end may begin a CRLF split across two reads: decided with the next.
                    carry = b"\r" if chunk and data.endswith(b"\r") else b""
                    out = _LINE_END.sub(b"\r\n", data[:len(data) - len(carry)])
                    content = content or bool(out.strip())
                    dst.write(out)
                    digest.update(out)
                    size += len(out)
                    if len(head) < UPLOAD_HEAD:
                        head += out[:UPLOAD_HEAD - len(head)]
                    if not chunk:
                        break
        except OSError:
            _unlink(copy)
            return None
        if not content:
            _unlink(copy)
            return None
        return Upload(copy, size, digest.digest(), bytes(head))

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
                os.rename(entry, cur / _cur_name(entry.name))
        if cur.is_dir():
            with os.scandir(cur) as it:
                for found in it:
                    yield found.name

    def peek_files(self) -> list[str]:
        """:meth:`files` without moving anything: the names files in new/ would get in cur/ (a dry run)."""
        out: list[str] = []
        for sub in ("cur", "new"):
            try:
                entries = os.listdir(self.root / sub)
            except OSError:
                continue
            out.extend(n if sub == "cur" else _cur_name(n) for n in entries if not n.startswith("."))
        return out


def _cur_name(name: str) -> str:
    """A new/ file's name in cur/: with the Maildir info part (``:2,``) it may still lack."""
    return name if ":2," in name else name + ":2,"


def _header_end(data: bytes, limit: int) -> int:
    """Where a header block in ``data[:limit]`` ends (after its blank line, CRLF or LF), or -1."""
    ends = [at + len(blank) for blank in (b"\r\n\r\n", b"\n\n") if (at := data.find(blank, 0, limit)) >= 0]
    return min(ends) if ends else -1


def _unique_base() -> str:
    """A Maildir unique name of ours (time, microseconds, process, counter, host: matched by ``_OURS``)."""
    now = time.time()
    return f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}Q{next(_counter)}.{_HOST}"


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

"""F-16: a server whose UIDs are not stable, played by a scripted IMAP server owned by this test.

Between two sessions, under the same UIDVALIDITY, the server of this file hands UID 7 of one folder to
another message (another Message-ID, other bytes, other flags), and lets another folder's UIDNEXT go
backwards (it forgot UIDs 8-10). Real Dovecot cannot be made to do either, hence the script: just enough
IMAP4rev1 (no CONDSTORE, QRESYNC, UIDPLUS or MOVE, so every sync lists every UID) for `deskmail sync`.

The sync must detect both, stop syncing those two folders with ``uids_unstable`` (docs/errors.md), and
change nothing because of them: no local file renamed, removed or rewritten, no index row changed, no
command that writes sent to the server; the third folder syncs its new mail.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from test_reliability import plain_account

pytestmark = pytest.mark.servers  # plain_account's SMTP settings point at the sandbox (never used here)

PASSWORD = "fake-imap-Pw-16"


def _message(i: int, tag: str = "") -> bytes:
    return (f"From: gen@example.test\r\nTo: u@example.test\r\nSubject: message {i}{tag}\r\n"
            f"Message-ID: <m{i}{tag}@example.test>\r\nDate: Mon, 02 Jan 2023 10:00:00 +0000\r\n\r\n"
            f"body of {i}{tag}\r\n").encode()


@dataclass
class Box:
    uidvalidity: int
    uidnext: int
    messages: dict[int, tuple[bytes, set[str]]] = field(default_factory=dict)  # uid -> (bytes, flags)


class ScriptedImap:
    """An IMAP4rev1 server on 127.0.0.1 serving ``boxes`` (changed by the test between sessions).

    Records every command line (``received``)."""

    def __init__(self, boxes: dict[str, Box]) -> None:
        self.boxes = boxes
        self.received: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        reader = conn.makefile("rb")
        selected: Box | None = None

        def send(data: bytes | str) -> None:
            conn.sendall(data.encode() if isinstance(data, str) else data)

        try:
            send("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] scripted server ready\r\n")
            while line := reader.readline():
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                self.received.append(text)
                tag, _, rest = text.partition(" ")
                command, _, args = rest.partition(" ")
                command = command.upper()
                if command == "UID":
                    command, _, args = args.partition(" ")
                    command = "UID " + command.upper()
                if command == "CAPABILITY":
                    send(f"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n{tag} OK done\r\n")
                elif command == "LOGIN":
                    ok = f'"{PASSWORD}"' in args
                    send(f"{tag} OK logged in\r\n" if ok else f"{tag} NO [AUTHENTICATIONFAILED] no\r\n")
                elif command in ("LIST", "LSUB"):
                    for name in self.boxes:
                        send(f'* {command} (\\HasNoChildren) "/" "{name}"\r\n')
                    send(f"{tag} OK done\r\n")
                elif command in ("SELECT", "EXAMINE"):
                    selected = self.boxes[args.strip('"')]
                    send(f"* FLAGS (\\Seen \\Flagged \\Answered \\Deleted \\Draft)\r\n"
                         f"* {len(selected.messages)} EXISTS\r\n* 0 RECENT\r\n"
                         f"* OK [PERMANENTFLAGS (\\Seen \\Flagged \\Answered \\Deleted \\Draft \\*)] ok\r\n"
                         f"* OK [UIDVALIDITY {selected.uidvalidity}] ok\r\n"
                         f"* OK [UIDNEXT {selected.uidnext}] ok\r\n{tag} OK [READ-WRITE] selected\r\n")
                elif command == "UID FETCH" and selected is not None:
                    uid_set, _, items = args.partition(" ")
                    for seq, uid in self._pick(selected, uid_set):
                        send(self._fetch(seq, uid, selected.messages[uid], items.upper()))
                    send(f"{tag} OK done\r\n")
                elif command == "UID SEARCH":
                    send(f"* SEARCH\r\n{tag} OK done\r\n")
                elif command == "NOOP":
                    send(f"{tag} OK done\r\n")
                elif command == "LOGOUT":
                    send(f"* BYE bye\r\n{tag} OK done\r\n")
                    return
                else:  # STORE, EXPUNGE, APPEND, ... : this test's client must never write
                    send(f"{tag} BAD not in this script\r\n")
        except OSError:
            pass
        finally:
            conn.close()

    @staticmethod
    def _pick(box: Box, uid_set: str) -> list[tuple[int, int]]:
        uids = sorted(box.messages)
        top = uids[-1] if uids else 0
        chosen: set[int] = set()
        for part in uid_set.split(","):
            lo, _, hi = part.partition(":")
            a = top if lo == "*" else int(lo)
            b = a if not hi else (top if hi == "*" else int(hi))
            lo_, hi_ = min(a, b), max(a, b)
            chosen |= {u for u in uids if lo_ <= u <= hi_}
        return [(seq, uid) for seq, uid in enumerate(uids, 1) if uid in chosen]

    @staticmethod
    def _fetch(seq: int, uid: int, message: tuple[bytes, set[str]], items: str) -> bytes:
        data, flags = message
        parts = [b"UID %d" % uid]
        if "FLAGS" in items:
            parts.append(b"FLAGS (" + " ".join(sorted(flags)).encode() + b")")
        if "RFC822.SIZE" in items:
            parts.append(b"RFC822.SIZE %d" % len(data))
        if "HEADER.FIELDS (MESSAGE-ID)" in items:
            m = re.search(rb"^Message-ID:[^\r\n]*\r\n", data, re.M | re.I)
            header = (m.group(0) if m else b"") + b"\r\n"
            parts.append(b"BODY[HEADER.FIELDS (MESSAGE-ID)] {%d}\r\n" % len(header) + header)
        if m := re.search(r"BODY\.PEEK\[\]<0\.(\d+)>", items):
            start = data[:int(m.group(1))]
            parts.append(b"BODY[]<0> {%d}\r\n" % len(start) + start)
        elif "BODY.PEEK[]" in items:
            parts.append(b"BODY[] {%d}\r\n" % len(data) + data)
        return b"* %d FETCH (" % seq + b" ".join(parts) + b")\r\n"


def _snapshot(home: Any) -> tuple[dict[str, str], list[tuple[Any, ...]]]:
    """Every local file (path -> SHA-256) and every index row."""
    mail = home.root / "data" / "mail" / "a"
    files = {str(p.relative_to(mail)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(mail.rglob("*")) if p.is_file()}
    with sqlite3.connect(home.root / "data" / "index.sqlite3") as con:
        rows = sorted(con.execute("SELECT f.name, m.uidvalidity, m.uid, m.filename, m.flags, m.synced_flags,"
                                  " m.message_id FROM messages m JOIN folders f ON f.id = m.folder_id"))
    return files, rows


def _sync(home: Any) -> dict[str, dict[str, Any]]:
    proc = home.run("sync", "--json")
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr  # the account goes on: only folders fail
    return {f["folder"]: f for f in json.loads(proc.stdout)["a"]["folders"]}


def test_reused_uid_and_uidnext_going_backwards_stop_only_those_folders(sandbox: Any, tmp_path: Path) -> None:
    boxes = {
        "INBOX": Box(100, 4, {i: (_message(i), set()) for i in range(1, 4)}),
        "Reused": Box(200, 11, {i: (_message(100 + i), set()) for i in range(1, 11)}),
        "Backwards": Box(300, 11, {i: (_message(200 + i), set()) for i in range(1, 11)}),
    }
    server = ScriptedImap(boxes)
    try:
        user = type("U", (), {"email": "u@example.test", "password": PASSWORD})()
        home = plain_account(sandbox, user, tmp_path, server.port)
        first = _sync(home)
        assert {name: f["new"] for name, f in first.items()} == {"INBOX": 3, "Reused": 10, "Backwards": 10}, first
        before_files, before_rows = _snapshot(home)

        # Same UIDVALIDITY in both folders. Reused: UID 7 now another message, \Seen there (the sync would
        # take that flag onto the old message here). Backwards: UIDs 8-10 forgotten, UIDNEXT 11 -> 8 (the
        # sync would remove the local copies of 8-10). INBOX: new mail.
        boxes["Reused"].messages[7] = (_message(107, "-other"), {"\\Seen"})
        backwards = boxes["Backwards"]
        for uid in (8, 9, 10):
            del backwards.messages[uid]
        backwards.uidnext = 8
        boxes["INBOX"].messages[4] = (_message(4), set())
        boxes["INBOX"].uidnext = 5
        seen_before = len(server.received)

        for _run in range(2):  # and again: the folders stay stopped, nothing drifts
            second = _sync(home)
            assert second["INBOX"]["new"] == (1 if _run == 0 else 0), second
            assert second["INBOX"]["codes"] == []
            for name, said in (("Reused", "UID 7 in Reused now names another message"),
                               ("Backwards", "UIDNEXT for Backwards went backwards (11 -> 8)")):
                folder = second[name]
                assert folder["codes"] == ["uids_unstable"], folder
                assert folder["notes"][0].startswith("not synced") and said in folder["notes"][0], folder
                assert folder["new"] == folder["removed"] == folder["flags_pulled"] == 0, folder
            files, rows = _snapshot(home)
            inbox_new = [k for k in files if k not in before_files]
            assert len(inbox_new) == 1 and inbox_new[0].startswith("cur/"), inbox_new
            assert {k: v for k, v in files.items() if k in before_files} == before_files, "no file touched"
            assert [r for r in rows if r[0] != "INBOX"] == [r for r in before_rows if r[0] != "INBOX"]
        # Nothing that writes reached the server, and the stop was decided on a read of UID 7's Message-ID.
        sent = server.received[seen_before:]
        assert not [c for c in sent if re.search(r"\b(STORE|EXPUNGE|APPEND|COPY|MOVE)\b", c, re.I)], sent
        assert any("HEADER.FIELDS (MESSAGE-ID)" in c and re.search(r"FETCH [\d,:]*\b7\b", c) for c in sent), sent
        assert boxes["Reused"].messages[7][1] == {"\\Seen"} and len(boxes["Backwards"].messages) == 7
    finally:
        server.close()

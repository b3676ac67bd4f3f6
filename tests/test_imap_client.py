"""deskmail's own IMAP client layer: modified UTF-7, the socket reader, and the login/STARTTLS rules.

The protocol paths themselves are exercised by every sync test against Dovecot; this file covers
what those do not reach: odd passwords, STARTTLS response injection, and the pure parts.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deskmail.errors import AuthError, ProtocolError, SecretError, SecurityError
from deskmail.model import Account, PasswordSource, Protocol, Security, ServerSettings
from deskmail.protocol import utf7
from deskmail.protocol.imap import open_imap, quote_string
from deskmail.protocol.imap_stream import FetchItem, SocketReader, Untagged, read_responses
from deskmail.secrets import Secret
from helpers import closed_port

# --- modified UTF-7 ----------------------------------------------------------


@pytest.mark.parametrize(("name", "wire"), [
    ("INBOX", b"INBOX"),
    ("Entwürfe", b"Entw&APw-rfe"),
    ("Tom & Jerry", b"Tom &- Jerry"),
    ("台北", b"&U,BTFw-"),
    ("~peter/mail/台北/日本語", b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
    ("😀", b"&2D3eAA-"),
])
def test_utf7_known_forms(name: str, wire: bytes) -> None:
    assert utf7.encode(name) == wire
    assert utf7.decode(wire) == name


@given(st.text())
def test_utf7_round_trip(name: str) -> None:
    encoded = utf7.encode(name)
    assert encoded.isascii()
    assert utf7.decode(encoded) == name


@given(st.binary())
def test_utf7_decode_never_raises(raw: bytes) -> None:
    assert isinstance(utf7.decode(raw), str)


def test_utf7_broken_shift_kept_as_text() -> None:
    assert utf7.decode(b"a&!!-b") == "a&!!-b"
    assert utf7.decode(b"open&AGE") == "open&AGE"


def test_quote_string_escapes_and_refuses_line_breaks() -> None:
    assert quote_string('a"b\\c') == '"a\\"b\\\\c"'
    with pytest.raises(ProtocolError, match="line break"):
        quote_string("a\r\nb")


# --- the reader ---------------------------------------------------------------


class _Chunks:
    """A socket stand-in that hands out fixed chunks (how TLS records arrive)."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)

    def recv(self, size: int) -> bytes:
        if not self.chunks:
            return b""
        chunk = self.chunks.pop(0)
        if len(chunk) > size:
            self.chunks.insert(0, chunk[size:])
            chunk = chunk[:size]
        return chunk


@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"") + b"\n"), max_size=30),
       st.lists(st.integers(min_value=1, max_value=17), min_size=1))
def test_reader_lines_whatever_the_chunking(lines: list[bytes], cuts: list[int]) -> None:
    data = b"".join(lines)
    chunks, pos, i = [], 0, 0
    while pos < len(data):
        chunks.append(data[pos:pos + cuts[i % len(cuts)]])
        pos += cuts[i % len(cuts)]
        i += 1
    reader = SocketReader(_Chunks(chunks))
    assert [reader.readline() for _ in lines] == lines
    assert reader.readline() == b""


def test_reader_limit_and_counted_reads() -> None:
    reader = SocketReader(_Chunks([b"abcdefgh", b"ij\r\nxyz", b"123\n"]))
    assert reader.readline(4) == b"abcd"
    assert reader.readline() == b"efghij\r\n"
    assert reader.buffered() == 3
    assert reader.read(2) == b"xy"
    assert reader.read(10) == b"z"  # what is buffered first, never more than asked
    assert reader.read(10) == b"123\n"


def test_reader_never_asks_the_socket_for_more_than_recv() -> None:
    """A big literal is read in asks of at most RECV bytes: CPython allocates the whole ask per TLS record."""
    asked: list[int] = []

    class Recording(_Chunks):
        def recv(self, size: int) -> bytes:
            asked.append(size)
            return super().recv(size)

    body = b"x" * (3 * SocketReader.RECV + 5)
    wire = b"* 1 FETCH (UID 7 BODY[] {%d}\r\n" % len(body) + body + b")\r\nD1 OK done\r\n"
    items, got = _read_streamed(SocketReader(Recording([wire[i:i + 16384] for i in range(0, len(wire), 16384)])))
    assert [i.body_size for i in items] == [len(body)]
    assert got == body and max(asked) <= SocketReader.RECV


def _read_streamed(reader: SocketReader) -> tuple[list[FetchItem], bytes]:
    """The FETCH items of a response tagged D1, and the bytes their literals streamed to a sink."""
    got = bytearray()

    class Sink:
        def write(self, data: bytes) -> int:
            got.extend(data)
            return len(data)

    return list(read_responses(reader, b"D1", lambda _item: Sink())), bytes(got)


def test_literal_split_across_chunks_streams_to_sink() -> None:
    body = b"Subject: x\r\n\r\n" + b"b" * 5000
    wire = b"* 1 FETCH (UID 7 FLAGS (\\Seen) BODY[] {%d}\r\n" % len(body) + body + b")\r\nD1 OK done\r\n"
    items, got = _read_streamed(SocketReader(_Chunks([wire[i:i + 333] for i in range(0, len(wire), 333)])))
    assert [(i.uid, i.flags, i.body_size) for i in items] == [(7, ("\\Seen",), len(body))]
    assert got == body


def test_untagged_lists_parsed_with_literal_names() -> None:
    wire = (b'* LIST (\\HasNoChildren) "/" {5}\r\nA "b"\r\n'
            b'* LIST (\\Sent) "/" "Sent Items"\r\n'
            b"* STATUS INBOX (MESSAGES 3 UIDNEXT 9)\r\nD4 OK\r\n")
    seen = Untagged()
    list(read_responses(SocketReader(_Chunks([wire])), b"D4", untagged=seen,
                        parse=frozenset({b"LIST", b"STATUS"})))
    assert seen.data == [
        (b"LIST", [[b"\\HasNoChildren"], b"/", b'A "b"']),
        (b"LIST", [[b"\\Sent"], b"/", b"Sent Items"]),
        (b"STATUS", [b"INBOX", [b"MESSAGES", b"3", b"UIDNEXT", b"9"]]),
    ]


# --- against servers ---------------------------------------------------------


def _account(host: str, port: int, security: Security, user: str, ca_file: str = "") -> Account:
    imap = ServerSettings(Protocol.IMAP, host, port, security, user)
    smtp = ServerSettings(Protocol.SMTP, host, 587, Security.STARTTLS, user)
    return Account("t", user if "@" in user else "t@example.test", "T", imap, smtp,
                   PasswordSource("env", env="X"), ca_file=ca_file)


@pytest.mark.servers
@pytest.mark.parametrize("password", ['quote"and\\backslash', "pässwörd ✓ 日本"])
def test_login_with_passwords_that_need_quoting_or_literals(sandbox: Any, password: str) -> None:
    user = sandbox.create_user("oddpw")
    sandbox.add_user(user.email, password)
    account = _account(sandbox.host, sandbox.imaps_port, Security.SSL, user.email, str(sandbox.ca_file))
    with open_imap(account, Secret(password)) as imap:
        assert imap.has_capability("IMAP4REV1")
        assert any(f.name == "INBOX" for f in imap.list_status() or [])
    with pytest.raises(AuthError), open_imap(account, Secret(password + "x")):
        pass


@pytest.mark.servers
def test_starttls_then_login_over_plain_port(sandbox: Any, mail_user: Any) -> None:
    account = _account(sandbox.host, sandbox.imap_port, Security.STARTTLS, mail_user.email, str(sandbox.ca_file))
    with open_imap(account, Secret(mail_user.password)) as imap:
        status = imap.select("INBOX")
        assert status.uidvalidity > 0 and imap.has_capability("IDLE")


@pytest.fixture
def scripted() -> Iterator[Callable[[Callable[[socket.socket], None]], int]]:
    """A one-connection TCP server on 127.0.0.1 running ``script(conn)``; returns its port."""
    listeners: list[socket.socket] = []

    def start(script: Callable[[socket.socket], None]) -> int:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)

        def serve() -> None:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    script(conn)
                except OSError:
                    pass

        threading.Thread(target=serve, daemon=True).start()
        port: int = listener.getsockname()[1]
        return port

    yield start
    for listener in listeners:
        listener.close()


def test_starttls_response_injection_is_refused(scripted: Callable[..., int]) -> None:
    """Bytes sent in clear together with "OK, begin TLS" must never be read as encrypted answers."""
    received: list[bytes] = []

    def script(conn: socket.socket) -> None:
        conn.sendall(b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n")
        data = b""
        while b"STARTTLS" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        tag = data.split(b" ", 1)[0]
        conn.sendall(tag + b" OK Begin TLS\r\n* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] injected\r\n")
        while chunk := conn.recv(4096):
            received.append(chunk)

    port = scripted(script)
    account = _account("127.0.0.1", port, Security.STARTTLS, "u@example.test")
    with pytest.raises(SecurityError, match="injecting"), open_imap(account, Secret("hunter2-secret")):
        pass
    assert b"hunter2-secret" not in b"".join(received)
    assert b"LOGIN" not in b"".join(received)


@pytest.mark.servers
def test_early_connection_hands_over_its_folder_list_once(sandbox: Any, mail_user: Any) -> None:
    """The prefetched LIST-STATUS answers the engine's first question only; later ones go to the server."""
    from deskmail.cli.fastpath import EarlyConnection

    account = _account(sandbox.host, sandbox.imaps_port, Security.SSL, mail_user.email, str(sandbox.ca_file))
    account = replace(account, password=PasswordSource("env", env="DM_EARLY_PW"))
    import os

    os.environ["DM_EARLY_PW"] = mail_user.password
    try:
        early = EarlyConnection(account)
        with early.session() as imap:
            sandbox.deliver(mail_user.email, b"From: a@example.test\r\nSubject: s\r\n\r\nbody\r\n")
            first = {f.name: f.status.get("MESSAGES") for f in imap.list_status() or []}
            second = {f.name: f.status.get("MESSAGES") for f in imap.list_status() or []}
        assert first["INBOX"] == 0, "the first answer is the one asked for before the delivery"
        assert second["INBOX"] == 1, "the second answer comes from the server again"
        assert imap.enable("QRESYNC") == {"QRESYNC"}  # remembered: ENABLE is per session
        bad = EarlyConnection(replace(account, password=PasswordSource("env", env="DM_EARLY_MISSING")))
        with pytest.raises(SecretError, match="DM_EARLY_MISSING"), bad.session():
            pass
    finally:
        del os.environ["DM_EARLY_PW"]


@pytest.mark.servers
def test_prefetched_inbox_select_is_used_only_while_it_still_answers_the_question(
        sandbox: Any, mail_user: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """warm_up(inbox=...) SELECTs INBOX early; the engine gets that answer only for the same
    command while INBOX is still the selected folder, else the server is asked again."""
    from deskmail.protocol.imap import qresync_params

    account = _account(sandbox.host, sandbox.imaps_port, Security.SSL, mail_user.email, str(sandbox.ca_file))
    sandbox.deliver(mail_user.email, b"From: a@example.test\r\nSubject: one\r\n\r\nbody\r\n")
    with open_imap(account, Secret(mail_user.password)) as imap:
        imap.enable("QRESYNC")
        status = imap.select("INBOX")
        known = (status.uidvalidity, status.highestmodseq)
    sandbox.deliver(mail_user.email, b"From: a@example.test\r\nSubject: two\r\n\r\nbody\r\n")

    from deskmail.net.log import PROTOCOL_LOGGER, protocol_log

    monkeypatch.setattr(protocol_log, "enabled", True)
    with open_imap(account, Secret(mail_user.password)) as imap, caplog.at_level(logging.DEBUG, PROTOCOL_LOGGER):
        imap.warm_up(inbox=known)
        sent = [r.getMessage().split()[2] for r in caplog.records if r.getMessage().startswith("C: ")]
        assert sent[:3] == ["ENABLE", "SELECT", "LIST"], "INBOX opened before any other folder is named"
        listed = {f.name: f.status for f in imap.list_status() or []}
        assert listed["INBOX"] == {}, "no STATUS for INBOX: its SELECT was asked instead"
        assert "UIDNEXT" in listed["Sent"]
        first = imap.select_raw("INBOX", qresync_params(*known))
        assert [i.uid for i in first[1]] == [2]  # the message that arrived since
        sandbox.deliver(mail_user.email, b"From: a@example.test\r\nSubject: three\r\n\r\nbody\r\n")
        again = imap.select_raw("INBOX", qresync_params(*known))  # asked twice: the server answers
        assert sorted(i.uid for i in again[1]) == [2, 3]

    with open_imap(account, Secret(mail_user.password)) as imap:
        imap.warm_up(inbox=known)
        imap.select_raw("Sent")  # another folder selected since: the early INBOX answer is stale
        sandbox.deliver(mail_user.email, b"From: a@example.test\r\nSubject: four\r\n\r\nbody\r\n")
        fresh = imap.select_raw("INBOX", qresync_params(*known))
        assert sorted(i.uid for i in fresh[1]) == [2, 3, 4]
        assert imap.selected is not None and imap.selected.name == "INBOX"

    with open_imap(account, Secret(mail_user.password)) as imap:
        imap.enable("QRESYNC")
        latest = imap.select("INBOX").highestmodseq
    with open_imap(account, Secret(mail_user.password)) as imap:
        imap.warm_up(inbox=known)  # prefetches the changes since `known`: messages 2, 3 and 4
        other = imap.select_raw("INBOX", qresync_params(known[0], latest))  # a different question
        assert [i.uid for i in other[1]] == [], "nothing changed since `latest`: not the prefetched answer"


def test_inbox_state_is_read_from_an_index_in_any_folder_name(tmp_path: Any) -> None:
    """The early connection reads INBOX's sync state itself (read-only, by URI): odd folder names must work."""
    from deskmail.store import Store, inbox_state

    data = tmp_path / "odd #name 50%?"
    store = Store(data)
    with store.transaction():
        folder = store.ensure_folder("a", "INBOX")
        store.update_folder(folder.id, uidvalidity=7, highestmodseq=9)
    store.close()
    assert inbox_state(data, "a") == (7, 9)
    assert inbox_state(data, "other account") is None
    assert inbox_state(tmp_path / "no index here", "a") is None
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "index.sqlite3").write_bytes(b"not a database")
    assert inbox_state(tmp_path / "broken", "a") is None



# --- the connection dialed before the configuration is read ------------------


def _cached_home(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, accounts: dict[str, Account]) -> None:
    """A DESKMAIL_HOME whose accounts file the fast path read once with the data folder present (so its
    parse is cached)."""
    from deskmail import config
    from deskmail.cli.fastpath import load_accounts

    monkeypatch.setenv("DESKMAIL_HOME", str(tmp_path))
    config.save_accounts(accounts)
    config.paths().data_dir.mkdir(exist_ok=True)
    load_accounts()


def test_dial_early_follows_the_cached_accounts_and_nothing_else(tmp_path: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from deskmail import config
    from deskmail.cli.fastpath import dial_early

    port = closed_port()
    imaps = replace(_account("127.0.0.1", port, Security.SSL, "a@example.test", "/ca.pem"), name="imaps")
    starttls = replace(_account("localhost", port, Security.STARTTLS, "b@example.test"), name="plain143")
    pop = replace(imaps, name="pop", incoming=replace(imaps.incoming, protocol=Protocol.POP3))
    clear = replace(imaps, name="clear", incoming=replace(imaps.incoming, security=Security.NONE),
                        allow_plaintext_password=True)
    monkeypatch.setenv("DESKMAIL_HOME", str(tmp_path))
    config.save_accounts({a.name: a for a in (imaps, starttls, pop, clear)})
    assert dial_early(None) == {}, "no cache yet: nothing is guessed from the TOML text"
    _cached_home(tmp_path, monkeypatch, {a.name: a for a in (imaps, starttls, pop, clear)})
    dials = dial_early(None)
    try:
        assert {name: d.key for name, d in dials.items()} == {
            "imaps": ("127.0.0.1", port, True, "/ca.pem"),
            "plain143": ("localhost", port, False, ""),
        }, "IMAP over SSL/TLS or STARTTLS only: never POP3, never an unencrypted server"
    finally:
        for dial in dials.values():
            dial.close()
    only = dial_early("plain143")
    assert list(only) == ["plain143"]
    only["plain143"].close()
    assert dial_early("b@example.test") == {}, "an account named by its address is not guessed at"
    accounts_file = config.paths().accounts_file
    accounts_file.write_text(accounts_file.read_text() + "\n")
    assert dial_early(None) == {}, "the file changed since the cache was made"


def test_dial_errors_are_the_usual_errors_and_closing_never_waits(scripted: Any) -> None:
    """A dialed connection that fails reports exactly what a direct one would, in the caller's thread;
    closing one still waiting for its server returns at once."""
    import time

    from deskmail.cli.fastpath import Dial
    from deskmail.errors import NetworkError

    refused = _account("127.0.0.1", closed_port(), Security.SSL, "u@example.test")
    dial = Dial("127.0.0.1", refused.incoming.port, True, "")
    with pytest.raises(NetworkError, match="refused the connection"), open_imap(refused, Secret("pw"),
                                                                                dial=dial):
        pass

    silent = threading.Event()
    port = scripted(lambda conn: silent.wait(10))  # accepts, then never answers the TLS hello
    try:
        dial = Dial("127.0.0.1", port, True, "")
        dial.let_it_start()
        started = time.monotonic()
        dial.close()
        assert time.monotonic() - started < 0.5
    finally:
        silent.set()


@pytest.mark.servers
def test_sessions_ask_the_kernel_to_notice_a_dead_network(sandbox: Any, mail_user: Any) -> None:
    """IDLE is silent for up to half an hour: TCP keepalive is what notices a peer gone without a word."""
    import socket as s

    from deskmail.protocol import imap as imap_module

    account = _account(sandbox.host, sandbox.imaps_port, Security.SSL, mail_user.email, str(sandbox.ca_file))
    with open_imap(account, Secret(mail_user.password)) as imap:
        sock = imap._sock
        assert sock.getsockopt(s.SOL_SOCKET, s.SO_KEEPALIVE) == 1
        assert sock.getsockopt(s.IPPROTO_TCP, s.TCP_KEEPIDLE) == imap_module.KEEPALIVE_IDLE
        assert sock.getsockopt(s.IPPROTO_TCP, s.TCP_KEEPINTVL) == imap_module.KEEPALIVE_INTERVAL
        assert sock.getsockopt(s.IPPROTO_TCP, s.TCP_KEEPCNT) == imap_module.KEEPALIVE_COUNT


@pytest.mark.servers
def test_dialed_connection_is_used_only_for_the_accounts_own_server(sandbox: Any, mail_user: Any,
                                                                    tmp_path: Any,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from deskmail.cli.fastpath import Dial, EarlyConnection
    from deskmail.errors import CertificateError

    account = _account(sandbox.host, sandbox.imaps_port, Security.SSL, mail_user.email, str(sandbox.ca_file))
    account = replace(account, password=PasswordSource("env", env="DM_DIAL_PW"))
    monkeypatch.setenv("DM_DIAL_PW", mail_user.password)

    dial = Dial(sandbox.host, sandbox.imaps_port, True, str(sandbox.ca_file))
    early = EarlyConnection.start_for([account], tmp_path, {account.name: dial})
    with early[account.name].session() as imap:
        assert any(f.name == "INBOX" for f in imap.list_status() or [])
    with pytest.raises(RuntimeError, match="already taken"):
        dial.take()

    # Dialed with other settings than the account's (here: without its CA file): closed, not used.
    stale = Dial(sandbox.host, sandbox.imaps_port, True, "")
    early = EarlyConnection.start_for([account], tmp_path, {account.name: stale})
    with early[account.name].session() as imap:
        assert imap.has_capability("IMAP4REV1")
    system_cas_only = replace(account, ca_file="")
    with pytest.raises(CertificateError), open_imap(system_cas_only, Secret(mail_user.password),
                                                    dial=Dial(sandbox.host, sandbox.imaps_port, True, "")):
        pass
    left_over = Dial(sandbox.host, sandbox.imaps_port, True, str(sandbox.ca_file))
    assert EarlyConnection.start_for([], tmp_path, {"gone": left_over}) == {}
    with pytest.raises(RuntimeError, match="already taken"):
        left_over.take()  # closed by start_for, since no account wanted it


@pytest.mark.parametrize("password", ["e", "pässe"])
def test_login_is_logged_by_structure_and_an_echo_is_not_shown(
        scripted: Callable[..., int], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
        password: str) -> None:
    """The LOGIN line is logged in its shown form; a refusal that repeats the password is hidden."""
    from deskmail.net.log import protocol_log

    def script(conn: socket.socket) -> None:
        conn.sendall(b"* OK [CAPABILITY IMAP4rev1] ready\r\n")
        data = b""
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
            if data.endswith(b"}\r\n"):
                conn.sendall(b"+ go ahead\r\n")
            elif b"LOGIN" in data and data.endswith(b"\r\n"):
                break
        tag = data.split(b" ", 1)[0]
        echo = b' NO [AUTHENTICATIONFAILED] LOGIN "u@example.test" "%s" refused\r\n' % password.encode()
        conn.sendall(tag + echo)
        conn.recv(4096)

    port = scripted(script)
    account = replace(_account("127.0.0.1", port, Security.NONE, "u@example.test"), allow_plaintext_password=True)
    monkeypatch.setattr(protocol_log, "enabled", True)
    with caplog.at_level(logging.DEBUG, logger="deskmail.protocol"), pytest.raises(AuthError), \
            open_imap(account, Secret(password)):
        pass
    lines = [r.getMessage() for r in caplog.records if r.name == "deskmail.protocol"]
    assert lines[0] == "S: * OK [CAPABILITY IMAP4rev1] ready"
    if password.isascii():
        assert 'C: D1 LOGIN "u@example.test" ****' in lines
    else:
        assert "C: D1 LOGIN {14}" in lines and "C: ****" in lines
    assert "S: (the server's answer repeats the credentials; not shown)" in lines
    assert not any(f'"{password}"' in line or password.encode("utf-8").decode() in line.split() for line in lines)

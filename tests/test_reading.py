"""Reading through the real servers: every hostile message delivered to Dovecot, synced, listed, read
(text, --json, --raw) and its attachments saved — no crash, no traceback; the façade's reading calls and
the per-sender allow list for remote images."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from deskmail.app import Deskmail
from deskmail.cli.compose_cmd import format_template, parse_template
from deskmail.cli.main import main
from deskmail.codes import Code
from deskmail.errors import UsageError
from helpers import Home, add_imaps_account
from hostile_mail import CORPUS

pytestmark = pytest.mark.servers


@pytest.fixture
def synced(sandbox: Any, mail_user: Any, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> tuple[Home, dict[str, int]]:
    """Every corpus message put into the user's INBOX (Dovecot's Maildir, byte for byte), synced and listed."""
    home = Home(tmp_path / "home")
    home.env["DM_PW"] = mail_user.password
    add_imaps_account(home, sandbox, mail_user)
    names = sorted(CORPUS)
    assert sandbox.fill_maildir(mail_user.email, [CORPUS[n] for n in names]) == len(names)
    synced = home.run("sync")
    assert synced.returncode == 0, synced.stderr
    assert "Traceback" not in synced.stderr
    listed = home.run("list", "--limit", "200", "--json")
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    rows = json.loads(listed.stdout)
    assert len(rows) == len(names)
    human = home.run("list", "--limit", "200")
    assert human.returncode == 0 and "Traceback" not in human.stderr
    monkeypatch.setenv("DESKMAIL_HOME", str(home.root))
    monkeypatch.setenv("DM_PW", mail_user.password)
    # fill_maildir gives UIDs in the order given.
    ids = {names[int(row["uid"]) - 1]: row["id"] for row in rows}
    return home, ids


def test_every_hostile_message_syncs_lists_reads_saves_replies_forwards(synced: tuple[Home, dict[str, int]],
                                                                        tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    home, ids = synced
    app = Deskmail()
    assert set(ids) == set(CORPUS)
    for name, message_id in sorted(ids.items()):
        raw = app.raw_message(message_id)
        # Kept as the server sent it: IMAP sends line ends as CRLF, Dovecot turns a NUL into 0x80.
        assert raw == re.sub(rb"\r?\n", b"\r\n", CORPUS[name]).replace(b"\x00", b"\x80"), name
        for args in (["read", str(message_id)], ["read", str(message_id), "--html"],
                     ["read", str(message_id), "--json"], ["attachments", str(message_id)],
                     ["attachments", str(message_id), "--json"],
                     ["attachments", str(message_id), "--save", str(tmp_path / name)]):
            assert main(args) == 0, (name, args)
            printed = capsys.readouterr()
            assert "Traceback" not in printed.err and "\x1b" not in printed.out, name
            if "--json" in args:
                json.loads(printed.out)  # the data exactly, escaped by JSON
            else:
                assert "\u202e" not in printed.out, name
        saved = list((tmp_path / name).iterdir()) if (tmp_path / name).exists() else []
        assert len(saved) == len(app.attachments(message_id)), name
        assert all(p.parent == tmp_path / name for p in saved)
        rendered = app.render_message(message_id)
        assert rendered.to_dict()["headers"] is not None
        # Replying to and forwarding each one gives a draft to edit, never a crash (F-32).
        for _account, draft in (app.reply(message_id), app.reply(message_id, reply_all=True),
                                app.forward(message_id), app.forward(message_id, attach=True)):
            assert isinstance(draft.body, str) and "\x00" not in draft.subject, name
            # The editor's template of it (deskmail reply/forward) reads back, or names the line to fix.
            try:
                written = parse_template(format_template("me@example.test", draft), tmp_path)
            except UsageError as exc:
                assert exc.code == Code.BAD_TEMPLATE and exc.what.startswith("Line "), (name, exc)
            else:
                assert not re.search("[\r\n\x00]", written.subject), name
        [original] = app.forward(message_id, attach=True)[1].attachments
        assert original.read_bytes() == raw and original.is_relative_to(home.root / "data" / "forward"), name
        app.discard_forwarded([original])
        assert not original.exists()

    # The real command, in its own process, for the ones that matter most.
    raw = home.run("read", str(ids["deep-250"]), "--raw")
    assert raw.returncode == 0 and "the bottom" in raw.stdout
    shown = home.run("read", str(ids["hostile-html"]))
    assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
    assert "Warning: A link shows 'https://bank.example/login' but leads to 'https://attacker.example/login'." \
        in shown.stdout
    assert "[https://bank.example/login](https://attacker.example/login)" in shown.stdout
    assert "script ran" not in shown.stdout and "alert" not in shown.stdout
    out = tmp_path / "names"
    saved = home.run("attachments", str(ids["hostile-filenames"]), "--save", str(out))
    assert saved.returncode == 0 and "Traceback" not in saved.stderr, saved.stderr
    assert len(list(out.iterdir())) == 24 and not (tmp_path / "passwd").exists()
    assert "\u202e" not in saved.stdout
    for name in ("param-star-empty", "address-stray-punctuation", "address-crlf-encoded", "unknown-charset",
                 "multipart-no-boundary", "deep-250"):
        proc = home.run("read", str(ids[name]))
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, (name, proc.stderr)


def test_read_and_attachments_commands(synced: tuple[Home, dict[str, int]], tmp_path: Path) -> None:
    home, ids = synced
    shown = home.run("read", str(ids["get-filename-traps"]))
    assert shown.returncode == 0
    assert "  1. ../../escape.txt (application/octet-stream, 7 bytes)" in shown.stdout
    assert "  3. préféré.txt" in shown.stdout
    listed = json.loads(home.run("attachments", str(ids["get-filename-traps"]), "--json").stdout)
    assert [(a["index"], a["filename"], a["safe_name"], a["size"]) for a in listed] == [
        (1, "../../escape.txt", "escape.txt", 7), (2, "/abs/path.txt", "path.txt", 7),
        (3, "préféré.txt", "préféré.txt", 7)]
    one = home.run("attachments", str(ids["get-filename-traps"]), "--save", str(tmp_path / "d"), "-n", "3", "--json")
    assert json.loads(one.stdout) == [str(tmp_path / "d" / "préféré.txt")]
    again = home.run("attachments", str(ids["get-filename-traps"]), "--save", str(tmp_path / "d"), "-n", "3")
    assert again.returncode == 0 and "préféré (2).txt" in again.stdout
    assert (tmp_path / "d" / "préféré.txt").read_bytes() == b"payload"
    missing = home.run("attachments", str(ids["get-filename-traps"]), "--save", str(tmp_path / "e"), "-n", "9")
    assert missing.returncode != 0 and "no attachment number 9" in missing.stderr
    assert "deskmail attachments" in missing.stderr and "Traceback" not in missing.stderr
    data = json.loads(home.run("read", str(ids["calendar-invite"]), "--json").stdout)
    assert data["events"][0]["summary"] == "Planning, with cake" and data["attachments"][0]["filename"] == "invite.ics"
    assert "Where: Room 4" in data["text"]


def test_remote_content_per_message_and_per_sender(synced: tuple[Home, dict[str, int]]) -> None:
    _home, ids = synced
    app = Deskmail()
    message = ids["hostile-html"]
    blocked = app.render_message(message)
    assert blocked.blocked_remote == 2 and not blocked.remote_allowed and "img.example" not in blocked.html
    once = app.render_message(message, allow_remote=True)
    assert once.remote_allowed and "https://img.example/photo.jpg" in once.html
    assert not app.render_message(message).remote_allowed  # per message: not remembered

    assert app.allow_remote_content("Sender <SENDER@example.test>") == frozenset({"sender@example.test"})
    assert app.render_message(message).remote_allowed
    assert not app.render_message(message, allow_remote=False).remote_allowed  # the caller still decides
    assert not app.render_message(ids["get-filename-traps"], allow_remote=None).blocked_remote
    stored = json.loads((app.paths.config_dir / "remote-content.json").read_text())
    assert stored == {"senders": ["sender@example.test"]}
    assert app.allow_remote_content("sender@example.test", allow=False) == frozenset()
    assert not app.render_message(message).remote_allowed

    view = app.read_message(message, prefer_html=True)
    assert view.summary.id == message and view.reading.is_html


def test_hostile_messages_delivered_over_lmtp_sync_and_read(sandbox: Any, mail_user: Any, tmp_path: Path) -> None:
    """The same corpus the way mail really arrives (Dovecot's LMTP adds its trace headers), read in a new process."""
    home = Home(tmp_path / "home")
    home.env["DM_PW"] = mail_user.password
    add_imaps_account(home, sandbox, mail_user)
    for raw in CORPUS.values():
        sandbox.deliver(mail_user.email, raw)
    synced = home.run("sync")
    assert synced.returncode == 0 and "Traceback" not in synced.stderr, synced.stderr
    rows = json.loads(home.run("list", "--limit", "200", "--json").stdout)
    assert len(rows) == len(CORPUS)
    for row in rows:
        shown = home.run("read", str(row["id"]), "--html")
        assert shown.returncode == 0 and "Traceback" not in shown.stderr, (row["subject"], shown.stderr)


# Queries a person (or a pasted header) might type: odd characters and syntax traps. Each either
# answers or is refused as bad_query, never a traceback.
_ODD_QUERIES = ["hostile", "caf\u00e9", "\u00e9t\u00e9", "\u202egnp.exe", "\"unclosed", "(((", "a OR", "NOT",
                "from:", "subject:\"line break\"", "--b", "=?utf-8?q?x?=", "<references-self@hostile.test>",
                "filename:passwd", "has:attachment", "bottom", "\"the inner one\"", "x" * 5000, "\x00",
                "*", "a*", "date:2026-13", "is:nothing"]


def test_every_hostile_message_is_found_by_search_and_threaded(synced: tuple[Home, dict[str, int]],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """F-32's search and threads: each corpus message is found by the words of its subject as listed, its
    conversation holds it, odd queries answer or are refused, and the commands print no escape sequence."""
    from deskmail.errors import QueryError

    home, ids = synced
    app = Deskmail()
    by_id = {v: k for k, v in ids.items()}
    summaries = {s.id: s for s in app.list_messages(limit=200)}
    assert set(summaries) == set(by_id)
    searchable = 0
    for message_id, s in summaries.items():
        name = by_id[message_id]
        words = re.findall(r"[^\W_]+", s.subject)
        if words:
            hits = app.search(f'subject:"{" ".join(words)}"', limit=200)
            assert message_id in {h.message.id for h in hits}, (name, s.subject)
            searchable += 1
        conversation = app.thread(message_id)
        assert message_id in {m.id for m in conversation} and len(conversation) <= len(ids), name
        for args in (["thread", str(message_id)], ["thread", str(message_id), "--json"]):
            assert main(args) == 0, (name, args)
            printed = capsys.readouterr()
            assert "Traceback" not in printed.err and "\x1b" not in printed.out, (name, args)
    assert searchable >= len(ids) - 3  # a few have no readable subject (empty, no headers, garbage bytes)

    # Body text, attachment names and the inner message are searchable too.
    for query, name in (("Visible", "hostile-html"), ("passwd", "hostile-filenames"), ("inner", "rfc822-attached"),
                        ("huge", "references-huge"), ("filename:escape", "get-filename-traps")):
        assert ids[name] in {h.message.id for h in app.search(query, limit=200)}, query

    # The loops and the self-reference end; the two halves of the loop (and the huge one naming it) are one
    # conversation.
    loop = {m.id for m in app.thread(ids["references-loop-a"])}
    assert {ids["references-loop-a"], ids["references-loop-b"]} <= loop
    assert loop == {m.id for m in app.thread(ids["references-loop-b"])}
    assert [m.id for m in app.thread(ids["references-self"])] == [ids["references-self"]]
    threads = app.list_threads(limit=200)
    assert sum(t.messages for t in threads) == len(ids)  # every message in exactly one conversation

    for query in _ODD_QUERIES:
        try:
            hits = app.search(query, limit=200)
        except QueryError as exc:
            assert exc.code == Code.BAD_QUERY, query
            continue
        for h in hits:
            assert "\x00" not in h.snippet and all(0 <= a <= b <= len(h.snippet) for a, b in h.highlights), query
        for args in (["search", "--", query], ["search", "--json", "--", query]):  # "--": "--b" is a query
            code = main(args)
            printed = capsys.readouterr()
            assert code == 0 and "Traceback" not in printed.err and "\x1b" not in printed.out, (query, args)
            assert "\u202e" not in printed.out or "--json" in args, query
    listed = home.run("list", "--threads", "--limit", "200")
    assert listed.returncode == 0 and "Traceback" not in listed.stderr and "\x1b" not in listed.stdout

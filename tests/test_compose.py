"""`deskmail compose`, `reply` and `forward` (cli/compose_cmd.py) run as a person runs them: the real CLI in a
subprocess, $EDITOR a small script that edits the file, the sandbox's submission server and Dovecot behind it.
What arrived is read from the recipients' Maildirs (headers decoded, bodies compared exactly)."""

from __future__ import annotations

import email
import json
import re
import shlex
import sys
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest

from helpers import Home, add_imaps_account, closed_port
from smtpkit import ScriptedSmtp

pytestmark = pytest.mark.servers

# The "editor": DM_EDIT (JSON) says what to do to the file: keep a copy of the template as opened ("copy"),
# set header lines ("set"), add lines after the headers ("add"), put text before the body ("before"), replace
# strings ("replace"), write something else entirely ("write"), end with a status ("exit").
EDITOR = r'''
import json, os, pathlib, sys
path = pathlib.Path(sys.argv[-1])
spec = json.loads(os.environ.get("DM_EDIT", "{}"))
text = path.read_text(encoding="utf-8")
if "copy" in spec:
    pathlib.Path(spec["copy"]).write_text(text, encoding="utf-8")
if spec.get("set") or spec.get("add") or spec.get("before"):
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    for name, value in spec.get("set", {}).items():
        lines = [f"{name}: {value}" if line.split(":")[0] == name else line for line in lines]
    text = "\n".join(lines + spec.get("add", [])) + "\n\n" + spec.get("before", "") + body
for old, new in spec.get("replace", []):
    text = text.replace(old, new)
if "write" in spec:
    text = spec["write"]
with open(path, "w", encoding="utf-8", newline="") as fh:
    fh.write(text)
sys.exit(spec.get("exit", 0))
'''


def _home(tmp_path: Path, user: Any) -> Home:
    editor = tmp_path / "editor.py"
    editor.write_text(EDITOR)
    return Home(tmp_path / "home", env={"DM_PW": user.password, "VISUAL": "",
                                        "EDITOR": f"{shlex.quote(sys.executable)} {shlex.quote(str(editor))}"})


@pytest.fixture
def home(tmp_path: Path, sandbox: Any, mail_user: Any) -> Home:
    h = _home(tmp_path, mail_user)
    add_imaps_account(h, sandbox, mail_user, name="acct")
    return h


@pytest.fixture
def friend(sandbox: Any) -> Any:
    return sandbox.create_user(hint="friend")


def edit(**spec: Any) -> dict[str, str]:
    return {"DM_EDIT": json.dumps(spec)}


def maildir_files(sandbox: Any, user: Any, folder: str = "INBOX") -> list[Path]:
    base = sandbox.maildir(user.email, folder)
    return sorted((p for sub in ("new", "cur") for p in (base / sub).glob("*")), key=lambda p: p.stat().st_mtime)


def received(sandbox: Any, user: Any, folder: str = "INBOX") -> list[EmailMessage]:
    """The messages in the user's folder, as Dovecot stored them (oldest first)."""
    out = []
    for p in maildir_files(sandbox, user, folder):
        msg = email.message_from_bytes(p.read_bytes(), policy=default)
        assert isinstance(msg, EmailMessage)
        out.append(msg)
    return out


def relayed_to(sandbox: Any, message_id: str) -> list[str]:
    """The outside recipients the submission server relayed the message to (its outbound/ files)."""
    found = []
    for p in sandbox.outbound():
        data = p.read_bytes()
        if message_id.encode() in data:
            found += re.findall(rb"\tfor <([^>]+)>", data)[:1]
    return sorted(f.decode() for f in found)


def body_of(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def compose_dir(home: Home) -> list[Path]:
    return sorted((home.root / "data" / "compose").glob("*"))


def outbox(home: Home) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = json.loads(home.run("outbox", "--json").stdout)
    return listed


def test_compose_delivers_what_was_written_byte_exact(home: Home, sandbox: Any, mail_user: Any, friend: Any,
                                                      tmp_path: Path) -> None:
    template = tmp_path / "template.txt"
    subject = "Grüße aus Köln ✓ — 日本語 and a long tail " + "x" * 60
    text = "Hallo Zoë,\n\nÄpfel – Birnen 🍐\n  indented line\n> not a quote, just text\n\n-- \nMe\n"
    done = home.run("compose", env=edit(copy=str(template), before=text, set={
        "To": f"Zoë Friend <{friend.email}>", "Cc": "Jürgen Müller <juergen@münchen.example>",
        "Bcc": "hidden@far.example", "Subject": subject}))
    assert done.returncode == 0, done.stderr
    assert "Sent <" in done.stdout and "A copy is in Sent." in done.stdout
    assert template.read_text() == "From: " + mail_user.email + "\nTo:\nCc:\nBcc:\nSubject:\n\n\n"
    [got] = received(sandbox, friend)
    assert str(got["Subject"]) == subject and str(got["From"]) == mail_user.email
    assert str(got["To"]) == f"Zoë Friend <{friend.email}>" and got["To"].addresses[0].addr_spec == friend.email
    assert str(got["Cc"]) == "Jürgen Müller <juergen@münchen.example>"
    assert got["Bcc"] is None and got["In-Reply-To"] is None
    assert body_of(got) == text + "\n"  # the template's own blank body line follows the text
    message_id = str(got["Message-ID"])
    assert message_id.endswith("@example.test>")
    assert relayed_to(sandbox, message_id) == ["hidden@far.example", "juergen@münchen.example"]
    assert compose_dir(home) == [] and outbox(home) == []  # the template is gone once the message is sent
    [copy] = received(sandbox, mail_user, "Sent")
    assert str(copy["Bcc"]) == "hidden@far.example" and str(copy["Message-ID"]) == message_id


def test_compose_for_scripts_json_and_draft(home: Home, sandbox: Any, mail_user: Any, friend: Any,
                                            tmp_path: Path) -> None:
    body = tmp_path / "body.txt"
    body.write_text("Bericht für März ✓\n")
    attached = tmp_path / "zahlen.csv"
    attached.write_bytes(b"a;b\n1;\xe2\x82\xac\n")
    done = home.run("compose", "--no-edit", "--to", friend.email, "--subject", "Bericht", "--body-file",
                    str(body), "--attach", str(attached), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["state"] == "sent" and result["delivered"] == [friend.email] and result["error"] is None
    [got] = received(sandbox, friend)
    assert body_of(got) == "Bericht für März ✓\n"
    [part] = got.iter_attachments()
    assert part.get_filename() == "zahlen.csv" and part.get_payload(decode=True) == attached.read_bytes()

    saved = home.run("compose", "--draft", "--json", env=edit(set={"To": friend.email, "Subject": "halb fertig ✓"},
                                                               before="erste Zeile\n"))
    assert saved.returncode == 0, saved.stderr
    assert json.loads(saved.stdout)["draft"]["subject"] == "halb fertig ✓"
    [draft] = received(sandbox, mail_user, "Drafts")
    assert str(draft["Subject"]) == "halb fertig ✓" and body_of(draft).startswith("erste Zeile\n")
    assert len(received(sandbox, friend)) == 1 and compose_dir(home) == []


    mine = tmp_path / "letter.txt"  # a template written by hand elsewhere: sent, and left where it is
    mine.write_text(f"To: {friend.email}\nSubject: von Hand\n\nper Hand geschrieben\n")
    (tmp_path / "letter.json").write_text("{}")
    by_hand = home.run("compose", "--resume", str(mine), "--no-edit")
    assert by_hand.returncode == 0, by_hand.stderr
    assert body_of(received(sandbox, friend)[-1]) == "per Hand geschrieben\n"
    assert mine.is_file() and (tmp_path / "letter.json").read_text() == "{}"

    needs_text = home.run("compose", "--no-edit", "--to", friend.email)
    assert needs_text.returncode == 2 and "--no-edit needs --body-file" in needs_text.stderr


def _deliver_and_sync(home: Home, sandbox: Any, user: Any, raw: bytes) -> int:
    sandbox.deliver(user.email, raw)
    synced = home.run("sync")
    assert synced.returncode == 0, synced.stderr
    listed = json.loads(home.run("list", "--json", "--folder", "INBOX").stdout)
    return int(listed[0]["id"])


def test_reply_and_reply_all_thread_and_leave_out_my_address(home: Home, sandbox: Any, mail_user: Any, friend: Any,
                                                              tmp_path: Path) -> None:
    original = (f"From: =?utf-8?q?Ann_Fr=C3=B6hlich?= <{friend.email}>\r\n"
                f"To: {mail_user.email}, Other <other@far.example>\r\nCc: Carl <carl@far.example>, "
                f"{mail_user.email.upper()}\r\nSubject: =?utf-8?q?Plan_f=C3=BCr_Montag?=\r\n"
                "Date: Fri, 04 Dec 2026 09:30:00 +0000\r\nMessage-ID: <orig-1@x.example>\r\n"
                "References: <root@x.example>\r\nMIME-Version: 1.0\r\n"
                "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
                "Treffen um 10 Uhr?\r\nGrüße\r\n").encode()
    message = _deliver_and_sync(home, sandbox, mail_user, original)

    template = tmp_path / "reply.txt"
    done = home.run("reply", str(message), env=edit(copy=str(template), before="Ja, passt. ✓\n"))
    assert done.returncode == 0, done.stderr
    seen = template.read_text()
    assert seen.startswith(f"From: {mail_user.email}\nTo: Ann Fröhlich <{friend.email}>\nCc:\nBcc:\n"
                           "Subject: Re: Plan für Montag\n\n")
    assert "Ann Fröhlich wrote:\n> Treffen um 10 Uhr?\n> Grüße\n" in seen
    assert "orig-1" not in seen  # In-Reply-To/References are kept out of sight
    [answer] = received(sandbox, friend)
    assert str(answer["In-Reply-To"]) == "<orig-1@x.example>"
    assert str(answer["References"]) == "<root@x.example> <orig-1@x.example>"
    assert str(answer["Subject"]) == "Re: Plan für Montag" and body_of(answer).startswith("Ja, passt. ✓\nOn ")

    everyone = tmp_path / "reply-all.txt"
    done = home.run("reply", str(message), "--all", env=edit(copy=str(everyone), before="An alle.\n"))
    assert done.returncode == 0, done.stderr
    head = everyone.read_text().split("\n\n")[0].split("\n")
    assert head[1] == f"To: Ann Fröhlich <{friend.email}>"
    assert head[2] == "Cc: Other <other@far.example>, Carl <carl@far.example>"  # never me, in any case
    assert mail_user.email not in "\n".join(head[1:])
    second = received(sandbox, friend)[-1]
    assert relayed_to(sandbox, str(second["Message-ID"])) == ["carl@far.example", "other@far.example"]

    synced = home.run("sync")
    assert synced.returncode == 0, synced.stderr
    thread = json.loads(home.run("thread", str(message), "--json").stdout)
    assert [(m["folder"], m["subject"]) for m in thread] == [("INBOX", "Plan für Montag"),
                                                             ("Sent", "Re: Plan für Montag"),
                                                             ("Sent", "Re: Plan für Montag")]
    [row] = [r for r in json.loads(home.run("list", "--json", "--folder", "INBOX").stdout) if r["id"] == message]
    assert "\\Answered" in row["flags"]


def test_forward_inline_and_as_attachment(home: Home, sandbox: Any, mail_user: Any, friend: Any) -> None:
    original = (b"From: Shop <shop@far.example>\r\nTo: " + mail_user.email.encode() + b"\r\n"
                b"Subject: Rechnung Nr. 5\r\nDate: Fri, 04 Dec 2026 09:30:00 +0000\r\n"
                b"Message-ID: <bill-5@far.example>\r\nMIME-Version: 1.0\r\n"
                b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
                b"Betrag: 12 =E2=82=AC\r\n")
    message = _deliver_and_sync(home, sandbox, mail_user, original)

    inline = home.run("forward", str(message), "--no-edit", "--to", friend.email, "--body-file", "-",
                      input="Zur Info.\n")
    assert inline.returncode == 0, inline.stderr
    [got] = received(sandbox, friend)
    assert str(got["Subject"]) == "Fwd: Rechnung Nr. 5" and got["In-Reply-To"] is None
    text = body_of(got)
    assert text.startswith("Zur Info.\n\n\n-------- Forwarded Message --------\nFrom: Shop <shop@far.example>\n")
    assert "Subject: Rechnung Nr. 5\n" in text and text.endswith("\nBetrag: 12 €\n")

    attached = home.run("forward", str(message), "--attach", env=edit(set={"To": friend.email}, before="Anbei.\n"))
    assert attached.returncode == 0, attached.stderr
    got = received(sandbox, friend)[-1]
    assert str(got["Subject"]) == "Fwd: Rechnung Nr. 5" and body_of(got) == "Anbei.\n\n"
    [part] = got.iter_attachments()
    assert part.get_content_type() == "message/rfc822" and part["Content-Transfer-Encoding"] == "7bit"
    assert part.get_filename() == "Rechnung Nr. 5.eml"
    inner = part.get_content()
    assert str(inner["Message-ID"]) == "<bill-5@far.example>" and inner.get_content() == "Betrag: 12 €\n"
    [kept] = maildir_files(sandbox, mail_user)
    assert kept.read_bytes() in maildir_files(sandbox, friend)[-1].read_bytes()  # the original, untouched
    assert not any((home.root / "data" / "forward").rglob("*.eml"))  # its copy for attaching is gone


def test_nothing_sent_when_the_editor_changes_nothing(home: Home, sandbox: Any, friend: Any) -> None:
    unchanged = home.run("compose", "--to", friend.email, env=edit())
    assert unchanged.returncode == 1 and "Nothing sent: the message was not changed." in unchanged.stderr
    emptied = home.run("compose", "--to", friend.email, "--json", env=edit(write=" \n\n"))
    assert emptied.returncode == 1 and json.loads(emptied.stdout) == {"state": "not_sent", "reason": "empty"}
    failed = home.run("compose", "--to", friend.email, env=edit(exit=3))
    assert failed.returncode == 1 and "the editor ended with status 3" in failed.stderr
    assert outbox(home) == [] and compose_dir(home) == [] and received(sandbox, friend) == []
    missing = home.run("compose", env={"EDITOR": "/nonexistent/editor"})
    assert missing.returncode == 2 and "The editor '/nonexistent/editor' cannot be started" in missing.stderr
    assert compose_dir(home) == []


def test_a_malformed_header_keeps_the_text_then_it_is_fixed_and_sent(home: Home, sandbox: Any, mail_user: Any,
                                                                     friend: Any) -> None:
    text = "Mein Text, lange geschrieben ✓\n"
    bad = home.run("compose", "--json", env=edit(set={"To": friend.email}, add=["Sbject: Frage"], before=text))
    assert bad.returncode == 2
    said = json.loads(bad.stdout)
    assert said["code"] == "bad_template"
    assert said["what"] == ("Line 6 of the message, 'Sbject: Frage': deskmail does not know the header 'Sbject'")
    kept = Path(said["kept"])
    assert said["resume"] == f"deskmail compose --resume {kept}" and "deskmail compose --resume" in bad.stderr
    assert text in kept.read_text() and kept.parent == home.root / "data" / "compose"
    assert outbox(home) == [] and received(sandbox, friend) == []

    fixed = home.run("compose", "--resume", str(kept),
                     env=edit(replace=[["Subject:\n", ""], ["Sbject: Frage", "Subject: Frage ✓"]]))
    assert fixed.returncode == 0, fixed.stderr
    [got] = received(sandbox, friend)
    assert str(got["Subject"]) == "Frage ✓" and body_of(got).startswith(text)
    assert compose_dir(home) == []

    stranger = home.run("compose", env=edit(set={"To": friend.email, "From": "someone@else.example"}, before="x\n"))
    assert stranger.returncode == 2 and "no account of yours sends as this address" in stranger.stderr
    renamed = home.run("compose", env=edit(set={"To": friend.email, "From": f"Boss <{mail_user.email}>"},
                                           before="x\n"))
    assert renamed.returncode == 2 and "the name shown with the address is the identity's (none)" in renamed.stderr
    for path in compose_dir(home):
        path.unlink()

    # Not an address: kept too, and sent as it is with --no-edit once corrected outside the editor.
    refused = home.run("compose", "--json", env=edit(set={"To": "Ann <ann@@far.example>"}, before="x\n"))
    assert refused.returncode == 2 and json.loads(refused.stdout)["code"] == "bad_template"
    again = Path(json.loads(refused.stdout)["kept"])
    mixed = home.run("compose", "--resume", str(again), "--to", friend.email)
    assert mixed.returncode == 2 and "--resume sends the file as it is" in mixed.stderr and again.is_file()
    again.write_text(again.read_text().replace("ann@@far.example", friend.email))
    assert home.run("compose", "--resume", str(again), "--no-edit").returncode == 0
    assert len(received(sandbox, friend)) == 2 and compose_dir(home) == []


def test_a_line_break_cannot_be_injected_into_a_header(home: Home, sandbox: Any, mail_user: Any,
                                                       friend: Any) -> None:
    hidden = "=?utf-8?b?eA0KQmNjOiB2aWN0aW1AZXZpbC5leGFtcGxl?="  # decodes to "x\r\nBcc: victim@evil.example"
    typed = home.run("compose", env=edit(set={"To": friend.email, "Subject": hidden}, before="b\n"))
    assert typed.returncode == 2 and "Line 5 of the message" in typed.stderr
    assert "decodes to text with a line break" in typed.stderr
    assert outbox(home) == [] and received(sandbox, friend) == [] and len(compose_dir(home)) == 2  # kept (+ .json)

    sent = home.run("send", "--to", friend.email, "--subject", hidden, "--body", "b")  # the engine refuses it too
    assert sent.returncode == 2 and "The Subject header holds a line break" in sent.stderr

    # A received message whose subject hides a line break: the reply's Subject stays one line, no Bcc appears.
    hostile = (f"From: {friend.email}\r\nTo: {mail_user.email}\r\nSubject: {hidden}\r\n"
               "Message-ID: <hostile@x.example>\r\n\r\nhi\r\n").encode()
    message = _deliver_and_sync(home, sandbox, mail_user, hostile)
    done = home.run("reply", str(message), env=edit(before="answer\n"))
    assert done.returncode == 0, done.stderr
    [got] = received(sandbox, friend)
    assert str(got["Subject"]) == "Re: x Bcc: victim@evil.example" and got["Bcc"] is None
    assert relayed_to(sandbox, str(got["Message-ID"])) == []  # nothing went to the victim


def test_per_recipient_results_like_send(tmp_path: Path, sandbox: Any, mail_user: Any) -> None:
    server = ScriptedSmtp(sandbox, mail_user, closed_port()).start()
    try:
        h = _home(tmp_path, mail_user)
        added = h.run("account", "add", "--email", mail_user.email, "--name", "acct", "--imap-host", sandbox.host,
                      "--imap-port", str(sandbox.imaps_port), "--imap-security", "ssl", "--smtp-host", sandbox.host,
                      "--smtp-port", str(server.port), "--smtp-security", "starttls", "--ca-file",
                      str(sandbox.ca_file), "--password-env", "DM_PW", "--no-verify")
        assert added.returncode == 0, added.stderr
        server.script.rcpt = {"c@far.example": "550 5.1.1 <c@far.example>: no such user"}
        done = h.run("compose", env=edit(set={"To": "a@far.example, Carl <c@far.example>", "Subject": "teils"},
                                         before="x\n"))
        assert done.returncode == 9
        assert "Sent <" in done.stderr and "to a@far.example." in done.stderr
        assert "Refused c@far.example: 550 5.1.1 <c@far.example>: no such user" in done.stderr
        assert [r.recipients for r in server.received] == [["a@far.example"]]

        server.script.rcpt = {"b@far.example": "451 4.7.1 try later"}
        later = h.run("compose", "--json", env=edit(set={"To": "b@far.example", "Subject": "später"}, before="y\n"))
        result = json.loads(later.stdout)
        assert later.returncode == 9 and result["state"] == "deferred" and result["error"]["code"] == "send_deferred"
        assert result["replies"]["b@far.example"].startswith("451 4.7.1")
        assert [e["subject"] for e in outbox(h)] == ["teils", "später"]  # kept: a refusal to read, one to send later
        assert list((h.root / "data" / "compose").glob("*")) == []  # in the outbox: its file is not needed
    finally:
        server.stop()


def test_the_from_line_picks_another_of_my_accounts(home: Home, sandbox: Any, mail_user: Any, friend: Any) -> None:
    second = sandbox.create_user(hint="second")
    add_imaps_account(home, sandbox, second, name="second")
    home.env["DM_PW"] = second.password  # (both accounts read $DM_PW: the second's is used for sending)
    done = home.run("compose", "--account", "acct", env=edit(set={"To": friend.email, "From": second.email},
                                                             before="vom zweiten Konto\n"))
    assert done.returncode == 0, done.stderr
    [got] = received(sandbox, friend)
    assert str(got["From"]) == second.email and body_of(got) == "vom zweiten Konto\n\n"
    assert len(received(sandbox, second, "Sent")) == 1


def test_identities_in_the_template(home: Home, sandbox: Any, mail_user: Any, friend: Any, tmp_path: Path) -> None:
    added = home.run("identity", "add", "acct", "alias@ident.example", "--name", "Alias Me", "--signature", "Alias")
    assert added.returncode == 0, added.stderr
    template = tmp_path / "new.txt"
    done = home.run("compose", "--from", "alias@ident.example",
                    env=edit(copy=str(template), set={"To": friend.email, "Subject": "as the alias"}, before="Hi\n"))
    assert done.returncode == 0, done.stderr
    assert template.read_text().startswith("From: Alias Me <alias@ident.example>\n")
    [got] = received(sandbox, friend)
    assert str(got["From"]) == "Alias Me <alias@ident.example>" and body_of(got).endswith("\n-- \nAlias\n")

    # A reply to a message sent to the alias comes from the alias, its signature below the quote.
    original = (f"From: {friend.email}\r\nTo: alias@ident.example\r\nSubject: question\r\n"
                "Message-ID: <q-1@x.example>\r\n\r\nAre you there?\r\n").encode()
    message = _deliver_and_sync(home, sandbox, mail_user, original)
    answer = tmp_path / "reply.txt"
    done = home.run("reply", str(message), env=edit(copy=str(answer), replace=[["\n\n-- \n", "\nYes.\n\n-- \n"]]))
    assert done.returncode == 0, done.stderr
    assert answer.read_text().startswith("From: Alias Me <alias@ident.example>\n")
    reply = received(sandbox, friend)[-1]
    assert str(reply["From"]) == "Alias Me <alias@ident.example>"
    assert re.search(r"> Are you there\?\n+Yes\.\n\n-- \nAlias\n$", body_of(reply)), body_of(reply)

    # A From line naming an address no account sends as is refused; a name other than the identity's too.
    wrong = home.run("compose", env=edit(set={"To": friend.email, "From": "Someone <alias@ident.example>"}))
    assert wrong.returncode == 2 and "the name shown with the address is the identity's (Alias Me)" in wrong.stderr

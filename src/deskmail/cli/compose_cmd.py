"""`deskmail compose`, `reply` and `forward`: a message written in the user's editor, like mutt.

A template (header lines From/To/Cc/Bcc/Subject and Attach, a blank line, the text) is written into a file
under ``DATA/compose/``, ``$VISUAL``/``$EDITOR`` (else ``vi``) opens it, and the edited file is read back into
a :class:`~deskmail.outbox.compose.Draft` that goes through the façade's outbox (the same call as `send`) or,
with ``--draft``, into the account's Drafts. What a template cannot show (the account, a reply's
In-Reply-To/References, the message answered) is kept beside it in ``NAME.json``.

The user's words are never lost: a file left unchanged (or emptied) is dropped with "nothing sent"; a file
that cannot be read or sent is kept, and `deskmail compose --resume PATH` opens it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.policy import default
from email.utils import getaddresses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from deskmail.cli import options as opt
from deskmail.cli.ui import err, out, safe
from deskmail.codes import Code
from deskmail.errors import DeskmailError, UsageError
from deskmail.model import valid_email

if TYPE_CHECKING:
    from deskmail.app import Deskmail
    from deskmail.model import Account
    from deskmail.outbox.compose import Draft

HEADERS = ("From", "To", "Cc", "Bcc", "Subject", "Attach")
_ADDRESS_FIELDS = ("To", "Cc", "Bcc")
_NAME_LINE = re.compile(r"([A-Za-z][A-Za-z0-9-]*)[ \t]*:(.*)")
# A header value is one line of text: C0/C1 controls (tab aside), DEL and the Unicode line separators
# (str.splitlines breaks on them) could split it once written out.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


# --- the template: pure text in, pure text out -----------------------------------------------------------


@dataclass(frozen=True)
class Written:
    """What an edited template says."""

    sender: str = ""  # the From line's address ("" when the line was removed or left empty)
    sender_name: str = ""
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    subject: str = ""
    attachments: tuple[Path, ...] = ()
    body: str = ""
    lines: dict[str, int] = field(default_factory=dict)  # header name -> the line it is on (for errors)


def _one_line(value: str) -> str:
    """A value shown on a header line: line breaks and control characters (e.g. from a hostile message's
    decoded subject) become spaces, so that they cannot make a header line of their own."""
    return _CONTROL.sub(" ", value.replace("\t", " ")).strip()


def _show_addresses(values: Sequence[str]) -> str:
    """Addresses as a person reads them: names decoded (``=?utf-8?…?=`` → ``Jürgen``), quoted where needed."""
    shown: list[str] = []
    for value in values:
        for name, addr in getaddresses([_one_line(value)]):
            if not addr:
                continue
            try:
                label = str(default.header_factory("X", name)) if "=?" in name else name
            except (ValueError, IndexError, HeaderParseError):
                label = name
            label = _one_line(label)
            try:
                shown.append(str(Address(label, addr_spec=addr)) if label else addr)
            except (ValueError, IndexError, HeaderParseError):
                shown.append(_one_line(f"{label} <{addr}>" if label else addr))
    return ", ".join(shown)


def format_template(sender: str, draft: Draft) -> str:
    """The text the editor opens: From/To/Cc/Bcc/Subject (and an Attach line per file), a blank line, the text."""
    lines = [f"From: {_one_line(sender)}", f"To: {_show_addresses(draft.to)}", f"Cc: {_show_addresses(draft.cc)}",
             f"Bcc: {_show_addresses(draft.bcc)}", f"Subject: {_one_line(draft.subject)}"]
    lines += [f"Attach: {_one_line(str(p))}" for p in draft.attachments]
    body = re.sub("\r\n?", "\n", draft.body)
    return "\n".join(line.rstrip() for line in lines) + "\n\n" + body + ("" if body.endswith("\n") else "\n")


def _bad(line_no: int, line: str, problem: str, remedy: str = "") -> UsageError:
    return UsageError(f"Line {line_no} of the message, {_one_line(line)[:80]!r}: {problem}", "",
                      remedy or "correct the line", code=Code.BAD_TEMPLATE)


def _check_value(name: str, value: str, line_no: int, line: str) -> None:
    """One header value as it will be written out: a line break hidden in an encoded word is refused too."""
    found = _CONTROL.search(value)
    if found:
        raise _bad(line_no, line, f"the {name} holds a control character ({found.group()!r}); a header is one line "
                   "of text", "remove it (a header line cannot be split in two)")
    if "=?" in value and name in ("Subject", *_ADDRESS_FIELDS):
        try:
            decoded = str(default.header_factory(name, value))
        except ValueError:  # an address whose encoded name decodes to a line break
            decoded = "\n"
        if _CONTROL.search(decoded):
            raise _bad(line_no, line, f"the {name} decodes to text with a line break or control character "
                       "(an encoded word =?…?= hides it)", "write the text itself instead of the encoded word")


def _addresses_of(name: str, value: str, line_no: int, line: str) -> tuple[str, ...]:
    pairs = getaddresses([value])
    for _n, addr in pairs:
        if not valid_email(addr):
            raise _bad(line_no, line, f"{_one_line(value)!r} in {name} is not a list of e-mail addresses",
                       "write addresses as name@example.com or Name <name@example.com>, separated by commas")
    return (value.strip(),) if pairs else ()


def parse_template(text: str, base: Path) -> Written:
    """Read an edited template; raises :class:`UsageError` (``bad_template``) naming the line that cannot be
    used. Relative Attach paths are taken from ``base``."""
    lines = text.removeprefix("\ufeff").split("\n")
    headers: list[tuple[int, str, str, str]] = []  # (line number, name, value, the line as written)
    at = 0
    for at, raw in enumerate(lines):
        line = raw.removesuffix("\r")
        if not line.strip():
            break
        if line[0] in " \t":  # a folded header: the line goes on
            if not headers:
                raise _bad(at + 1, line, "the message starts with an indented line, not a header",
                           "start with the header lines (To: …), then a blank line, then the text")
            n, name, value, first = headers[-1]
            headers[-1] = (n, name, f"{value} {line.strip()}", first)
            continue
        match = _NAME_LINE.fullmatch(line)
        if match is None:
            raise _bad(at + 1, line, "not a header line (Name: value), and no blank line comes before it",
                       "put a blank line between the headers and the text")
        name = next((h for h in HEADERS if h.lower() == match.group(1).lower()), "")
        if not name:
            raise _bad(at + 1, line, f"deskmail does not know the header {match.group(1)!r}",
                       f"use only {', '.join(HEADERS[:-1])} and {HEADERS[-1]} (one file per Attach line)")
        headers.append((at + 1, name, match.group(2).strip(), line))
    else:
        at = len(lines)
    body = "\n".join(line.removesuffix("\r") for line in lines[at + 1:])
    fields: dict[str, Any] = {"to": (), "cc": (), "bcc": (), "attachments": (), "lines": {}}
    for n, name, value, line in headers:
        _check_value(name, value, n, line)
        if name in ("From", "Subject"):
            if name in fields["lines"]:
                raise _bad(n, line, f"a second {name} line (the first is line {fields['lines'][name]})",
                           "keep one of them")
            if name == "Subject":
                fields["subject"] = value
            elif value:
                pairs = getaddresses([value])
                if len(pairs) != 1 or not valid_email(pairs[0][1]):
                    raise _bad(n, line, "From must be one address: that of the account sending it",
                               "write the account's address, or remove the line")
                fields["sender_name"], fields["sender"] = pairs[0]
        elif name == "Attach":
            if value:
                path = Path(value[1:-1] if len(value) > 1 and value[0] == value[-1] and value[0] in "\"'" else value)
                path = (base / path.expanduser()).resolve()
                if path.is_dir():
                    raise _bad(n, line, f"{str(path)!r} is a folder, not a file",
                               "attach the files inside it one by one, or pack it into a zip file first")
                if not path.is_file():
                    raise _bad(n, line, f"there is no file {str(path)!r} to attach", "check the file's name")
                fields["attachments"] += (path,)
        elif value:
            key = name.lower()
            fields[key] += _addresses_of(name, value, n, line)
        fields["lines"].setdefault(name, n)
    return Written(body=body, **fields)


# --- the session: the file, what is kept beside it, the editor --------------------------------------------


@dataclass
class Session:
    """A message being written: the template's file and what the template does not show (``NAME.json``)."""

    path: Path
    account: str = ""
    in_reply_to: str = ""
    references: list[str] = field(default_factory=list)
    answers: int = 0  # the stored message replied to (marked answered once the reply is on its way)
    pristine: str = ""  # sha256 of the template as first written: unchanged means "do not send"
    temporary: list[str] = field(default_factory=list)  # files written for it (a forwarded original)
    owned: bool = True  # deskmail wrote the file (under DATA/compose/): removed once sent; a file of the user's stays

    @property
    def side(self) -> Path:
        return self.path.with_suffix(".json")

    def save(self) -> None:
        data = {k: v for k, v in self.__dict__.items() if k not in ("path", "owned")}
        self.side.write_text(json.dumps(data, indent=1), encoding="utf-8")

    @classmethod
    def resume(cls, path: Path, folder: Path) -> Session:
        """The kept file at ``path``; a file outside ``folder`` (DATA/compose) is read, never removed."""
        path = path.expanduser().resolve()
        if not path.is_file():
            raise UsageError(f"There is no message file {str(path)!r}", "", "give the path deskmail printed",
                             code=Code.USAGE)
        session = cls(path, owned=path.parent == folder.resolve())
        if not session.owned:
            return session  # a template from elsewhere: its From line names the account
        try:
            data = json.loads(session.side.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return session
        for key in ("account", "in_reply_to", "references", "answers", "temporary"):
            if isinstance(data.get(key), type(getattr(session, key))):
                setattr(session, key, data[key])
        return session

    def drop(self) -> None:
        if self.owned:
            self.path.unlink(missing_ok=True)
            self.side.unlink(missing_ok=True)


def _compose_dir(app_: Deskmail) -> Path:
    return app_.paths.data_dir / "compose"


def _new_session(app_: Deskmail, account: str, draft: Draft, *, answers: int = 0,
                 temporary: Sequence[Path] = ()) -> Session:
    """Write the template into a new private file under ``DATA/compose/``."""
    import tempfile

    a = app_.account(account)
    folder = _compose_dir(app_)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, name = tempfile.mkstemp(dir=folder, prefix=time.strftime("%Y%m%d-%H%M%S-"), suffix=".txt")
    me = a.identity(draft.sender) or a.primary
    sender = str(Address(me.name, addr_spec=me.address)) if me.name else me.address
    text = format_template(sender, draft).encode("utf-8")
    with os.fdopen(fd, "wb") as fh:
        fh.write(text)
    session = Session(Path(name), a.name, draft.in_reply_to, list(draft.references), answers,
                      hashlib.sha256(text).hexdigest(), [str(p) for p in temporary])
    session.save()
    return session


def editor_command() -> list[str]:
    """``$VISUAL``, else ``$EDITOR``, else ``vi``; the value may carry arguments (``code --wait``)."""
    value = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    try:
        return shlex.split(value) or ["vi"]
    except ValueError:
        return [value]


def _edit(path: Path) -> int:
    command = editor_command()
    terminal = None
    if not sys.stdin.isatty():  # (the text came from standard input, `--body-file -`: the editor needs the terminal)
        try:
            terminal = open("/dev/tty", "rb")  # noqa: SIM115 (closed below, after the editor)
        except OSError:
            terminal = None
    try:
        return subprocess.run([*command, str(path)], check=False, stdin=terminal).returncode
    except OSError as exc:
        raise UsageError(f"The editor {command[0]!r} cannot be started ({exc.strerror or exc})", "",
                         "set $VISUAL or $EDITOR to your editor's command (e.g. export EDITOR=nano)") from None
    finally:
        if terminal is not None:
            terminal.close()


# --- sending ---------------------------------------------------------------------------------------------


def _kept(session: Session, exc: DeskmailError, json_out: bool) -> typer.Exit:
    """Say why nothing was sent and where the user's text waits; the exit to raise."""
    from deskmail.cli.main import print_error

    resume = f"deskmail compose --resume {shlex.quote(str(session.path))}"
    if json_out:
        _emit({**exc.to_dict(), "kept": str(session.path), "resume": resume})
    print_error(exc)
    err.print(f"Nothing sent. Your message is kept in {safe(session.path)}: fix it and run `{safe(resume)}` (it "
              "opens the editor on it again; add --no-edit to send it as it is).", highlight=False, soft_wrap=True)
    return typer.Exit(exc.exit_code)


def _nothing_sent(session: Session, reason: str, said: str, json_out: bool) -> typer.Exit:
    session.drop()
    if json_out:
        _emit({"state": "not_sent", "reason": reason})
    err.print(f"Nothing sent: {said}.", highlight=False)
    return typer.Exit(1)


def finish(app_: Deskmail, session: Session, *, edit: bool, save_draft: bool, queue: bool, json_out: bool) -> None:
    """Open the editor (unless ``edit`` is off), read the template back, send it or save it as a draft."""
    if edit:
        try:
            status = _edit(session.path)
        except UsageError:
            if session.pristine:  # (nothing was written yet: a resumed file stays)
                session.drop()
            raise
        if status != 0:
            if session.pristine and _digest(session.path) == session.pristine:
                raise _nothing_sent(session, "editor_failed", f"the editor ended with status {status}", json_out)
            raise _kept(session, UsageError(f"The editor ended with status {status}", "",
                                            "look at the file, then send it", code=Code.USAGE), json_out)
    try:
        raw = session.path.read_bytes()
    except OSError as exc:
        raise UsageError(f"Cannot read the message file {session.path} ({exc.strerror or exc})") from None
    queued = False
    if not raw.strip():
        raise _nothing_sent(session, "empty", "the message is empty", json_out)
    if edit and hashlib.sha256(raw).hexdigest() == session.pristine:
        raise _nothing_sent(session, "unchanged", "the message was not changed", json_out)
    try:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UsageError(f"The message file is not UTF-8 text (byte {exc.start})", "",
                             "save it as UTF-8 in the editor", code=Code.BAD_TEMPLATE) from None
        written = parse_template(text, Path.cwd())
        account = _sender_account(app_, session, written)
        from deskmail.outbox.compose import Draft

        draft = Draft(to=written.to, cc=written.cc, bcc=written.bcc, subject=written.subject, body=written.body,
                      attachments=written.attachments, in_reply_to=session.in_reply_to,
                      references=tuple(session.references), sender=written.sender)
        if save_draft:
            saved = app_.save_draft(draft, account.name)
            _done(app_, session)
            if json_out:
                from dataclasses import asdict

                _emit({"draft": asdict(saved)})
            else:
                out.print(f"Saved as a draft in {safe(saved.where)} ({safe(saved.ref)}); `deskmail drafts` lists "
                          "the drafts.", highlight=False)
            return
        from deskmail.cli.main import _warn_plaintext

        _warn_plaintext(account)
        before = {e.id for e in app_.outbox()}
        try:
            sent = app_.send(draft, account.name, queue_only=queue)
        except DeskmailError:
            queued = bool({e.id for e in app_.outbox()} - before)
            if queued:  # it is in the outbox: keeping the file would send it twice
                _done(app_, session)
            raise
    except DeskmailError as exc:
        if not queued:
            raise _kept(session, exc, json_out) from None
        raise
    _done(app_, session)
    if session.answers and sent.state != "failed":
        try:
            app_.set_flags([session.answers], add=["answered"])
        except DeskmailError as exc:  # the reply is on its way: only the mark is missing
            err.print(f"[yellow]The message answered is not marked answered:[/] {safe(exc)}", highlight=False)
    from deskmail.cli.outbox_cmd import show_sent

    raise typer.Exit(show_sent(sent, json_out=json_out, queued=queue))


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def _sender_account(app_: Deskmail, session: Session, written: Written) -> Account:
    """The account that sends as the From line's address (one of its identities: the session's account first),
    else the session's account."""
    if not written.sender:
        return app_.account(session.account or None)
    line = written.lines.get("From", 1)
    mine = app_.account(session.account or None) if session.account else None
    if mine is not None and mine.identity(written.sender) is not None:
        account = mine
    else:
        try:
            account = app_.sender_account(written.sender)
        except DeskmailError:
            raise _bad(line, f"From: {written.sender}", "no account of yours sends as this address",
                       "write the address of one of your accounts or identities (`deskmail identity list "
                       "ACCOUNT`)") from None
    identity = account.identity(written.sender)
    assert identity is not None  # (found by it)
    if written.sender_name and written.sender_name != identity.name:
        raise _bad(line, f"From: {written.sender_name} <{written.sender}>",
                   f"the name shown with the address is the identity's ({identity.name or 'none'})",
                   "leave the name as it was, or remove it (`deskmail identity edit` changes it)")
    return account


def _done(app_: Deskmail, session: Session) -> None:
    """The message is in the outbox or the Drafts: the template and the files written for it go."""
    session.drop()
    if session.temporary:
        app_.discard_forwarded([Path(p) for p in session.temporary])


def read_body_file(path: Path) -> str:
    try:
        return sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"Cannot read the body file {path} ({exc})") from None


def _emit(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


# --- the commands ----------------------------------------------------------------------------------------

ToOpt = Annotated[list[str] | None, typer.Option("--to", help="Recipient (repeat for more).")]
CcOpt = Annotated[list[str] | None, typer.Option("--cc", help="Copy to (repeat for more).")]
BccOpt = Annotated[list[str] | None, typer.Option("--bcc", help="Blind copy to (repeat for more).")]
AttachOpt = Annotated[list[Path] | None, typer.Option("--attach", help="Attach a file (repeat for more).")]
BodyFile = Annotated[Path | None, typer.Option(
    "--body-file", help="The text to start from (- = standard input); with --no-edit, the text sent.")]
NoEdit = Annotated[bool, typer.Option("--no-edit", help="Do not open the editor (scripts): send what the options "
                                      "and --body-file give.")]
DraftOpt = Annotated[bool, typer.Option("--draft", help="Save it in the account's Drafts instead of sending it.")]
QueueOpt = Annotated[bool, typer.Option("--queue", help="Only put it into the outbox; `deskmail outbox flush` (or a "
                                        "sync) sends it.")]


def _start(app_: Deskmail, account: str, draft: Draft, *, to: list[str] | None, cc: list[str] | None,
           bcc: list[str] | None, attach: list[Path] | None, body_file: Path | None, no_edit: bool,
           answers: int = 0, temporary: Sequence[Path] = ()) -> Session:
    from dataclasses import replace

    if no_edit and body_file is None:
        raise UsageError("--no-edit needs --body-file", "", "give the text with --body-file FILE (- = standard input)")
    text = read_body_file(body_file) if body_file is not None else ""
    if text and draft.body:  # where the person writes: below a reply's quote, above the signature
        text = text if text.endswith("\n") else text + "\n"
    at = draft.write_at
    draft = replace(draft, to=(*draft.to, *(to or ())), cc=(*draft.cc, *(cc or ())), bcc=(*draft.bcc, *(bcc or ())),
                    attachments=(*draft.attachments, *(p.resolve() for p in attach or ())),
                    body=(draft.body[:at] + text + draft.body[at:]) if text else draft.body)
    return _new_session(app_, account, draft, answers=answers, temporary=temporary)


def register(app: typer.Typer) -> None:
    from deskmail.cli.main import dm

    @app.command()
    def compose(
        account: opt.AccountOpt = None,
        to: ToOpt = None,
        cc: CcOpt = None,
        bcc: BccOpt = None,
        subject: Annotated[str, typer.Option("--subject", "-s", help="The subject line.")] = "",
        attach: AttachOpt = None,
        body_file: BodyFile = None,
        no_edit: NoEdit = False,
        draft: DraftOpt = False,
        queue: QueueOpt = False,
        resume: Annotated[Path | None, typer.Option(
            "--resume", metavar="PATH", help="Go on with a message deskmail kept (it printed the path).")] = None,
        sender: Annotated[str, typer.Option("--from", metavar="ADDRESS", help="Send as this identity "
                                            "(`deskmail identity list`); it names the account.")] = "",
        no_signature: Annotated[bool, typer.Option("--no-signature", help="Leave the signature out.")] = False,
        json_out: opt.JsonOut = False,
    ) -> None:
        """Write a message in $VISUAL/$EDITOR (header lines, a blank line, the text), then send it."""
        from dataclasses import replace

        app_ = dm()
        if resume is not None:
            if to or cc or bcc or subject or attach or body_file is not None:
                raise UsageError("--resume sends the file as it is", "", "change the message in the file (the "
                                 "editor opens on it), not with --to, --cc, --bcc, --subject, --attach or --body-file")
            session = Session.resume(resume, _compose_dir(app_))
            if account:  # (where the file's From line names none)
                session.account = app_.account(account).name
        else:
            chosen = app_.sender_account(sender) if sender and not account else app_.account(account)
            new = app_.new_draft(chosen.name, sender=sender or "")
            if no_signature:
                new = replace(new, body="", write_at=0)
            session = _start(app_, chosen.name, replace(new, subject=subject), to=to, cc=cc, bcc=bcc, attach=attach,
                             body_file=body_file, no_edit=no_edit)
        finish(app_, session, edit=not no_edit, save_draft=draft, queue=queue, json_out=json_out)

    @app.command()
    def reply(
        message: Annotated[int, typer.Argument(metavar="ID", help="The message's id (`deskmail list`).")],
        reply_all: Annotated[bool, typer.Option("--all", help="Also to everyone else it went to (never to "
                                                "yourself).")] = False,
        to: ToOpt = None,
        cc: CcOpt = None,
        bcc: BccOpt = None,
        attach: AttachOpt = None,
        body_file: BodyFile = None,
        no_edit: NoEdit = False,
        draft: DraftOpt = False,
        queue: QueueOpt = False,
        json_out: opt.JsonOut = False,
    ) -> None:
        """Reply to message ID: to its sender (or Reply-To), quoted, threaded; --all: to everyone."""
        app_ = dm()
        account, reply_draft = app_.reply(message, reply_all=reply_all)
        session = _start(app_, account, reply_draft, to=to, cc=cc, bcc=bcc, attach=attach, body_file=body_file,
                         no_edit=no_edit, answers=message)
        finish(app_, session, edit=not no_edit, save_draft=draft, queue=queue, json_out=json_out)

    @app.command()
    def forward(
        message: Annotated[int, typer.Argument(metavar="ID", help="The message's id (`deskmail list`).")],
        attach_original: Annotated[bool, typer.Option("--attach", help="Attach the original as it is instead of "
                                                      "quoting its text inline.")] = False,
        to: ToOpt = None,
        cc: CcOpt = None,
        bcc: BccOpt = None,
        body_file: BodyFile = None,
        no_edit: NoEdit = False,
        draft: DraftOpt = False,
        queue: QueueOpt = False,
        json_out: opt.JsonOut = False,
    ) -> None:
        """Forward message ID: its text inline below its headers, or the original attached."""
        app_ = dm()
        account, forward_draft = app_.forward(message, attach=attach_original)
        session = _start(app_, account, forward_draft, to=to, cc=cc, bcc=bcc, attach=None, body_file=body_file,
                         no_edit=no_edit, temporary=forward_draft.attachments if attach_original else ())
        finish(app_, session, edit=not no_edit, save_draft=draft, queue=queue, json_out=json_out)

"""Where deskmail keeps things, and the accounts file.

Paths come from platformdirs; ``DESKMAIL_HOME`` puts config and data in one
folder (tests, scripts, portable installs). Accounts live in ``accounts.toml``
in the config folder, one table per account; passwords are never written
there (see :mod:`deskmail.secrets`).

A file that a person edited by hand can be wrong in many ways; every problem
is reported with the file, the line and what is wrong, never a traceback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deskmail import dirs
from deskmail.codes import Code
from deskmail.errors import ConfigError, NotFoundError, UsageError
from deskmail.model import Account, Identity, PasswordSource, Protocol, ServerSettings


@dataclass(frozen=True, slots=True)
class Paths:
    """Where deskmail keeps its settings and its data."""

    config_dir: Path
    data_dir: Path

    @property
    def accounts_file(self) -> Path:
        return self.config_dir / dirs.ACCOUNTS_FILE

    @property
    def mail_dir(self) -> Path:
        return self.data_dir / "mail"

    @property
    def index_file(self) -> Path:
        return self.data_dir / "index.sqlite3"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"


def paths() -> Paths:
    where = dirs.dirs()
    if where is not None:
        return Paths(config_dir=Path(where[0]), data_dir=Path(where[1]))
    import platformdirs

    return Paths(
        config_dir=Path(platformdirs.user_config_dir("deskmail")),
        data_dir=Path(platformdirs.user_data_dir("deskmail")),
    )


# --- reading -----------------------------------------------------------------

_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


def _line_of(text: str, table: list[str], key: str | None) -> int:
    """Best-effort line number of ``key`` inside table ``table`` (tomllib keeps no positions)."""
    want = ".".join(table)
    current = ""
    header = re.compile(r'^\s*\[\s*([^\]]+?)\s*\]\s*(#.*)?$')
    for number, line in enumerate(text.splitlines(), 1):
        m = header.match(line)
        if m:
            current = ".".join(part.strip().strip('"').strip("'") for part in _split_key(m.group(1)))
            if key is None and current == want:
                return number
            continue
        if key is not None and current == want and re.match(rf'^\s*"?{re.escape(key)}"?\s*=', line):
            return number
    return 0


def _split_key(dotted: str) -> list[str]:
    parts, buf, quote = [], "", ""
    for ch in dotted:
        if quote:
            buf += ch
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
            buf += ch
        elif ch == ".":
            parts.append(buf)
            buf = ""
        else:
            buf += ch
    parts.append(buf)
    return parts


class _Reader:
    """Pulls typed values out of one parsed table, reporting bad ones with their line."""

    def __init__(self, file: Path, text: str, table: list[str], data: Any, line: int = 0) -> None:
        self.file, self.text, self.table, self.line = file, text, table, line  # line: of an array's table
        if not isinstance(data, dict):
            self.fail(None, f"[{'.'.join(table)}] must be a table")
        self.data: dict[str, Any] = data

    def fail(self, key: str | None, problem: str) -> None:
        line = self.line or _line_of(self.text, self.table, key) or _line_of(self.text, self.table, None)
        where = f"{self.file}, line {line}" if line else str(self.file)
        raise ConfigError(
            f"{where}: {problem}",
            "the accounts file was edited by hand or written by another version",
            "fix that line, or remove the account and add it again",
        )

    def get(self, key: str, kind: type, default: Any = None, *, required: bool = False) -> Any:
        if key not in self.data:
            if required:
                self.fail(None, f"missing setting '{key}' in [{'.'.join(self.table)}]")
            return default
        value = self.data[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if not ok:
            self.fail(key, f"'{key}' must be {kind.__name__}, not {type(value).__name__} ({value!r})")
        return value


def _server(reader: _Reader, outgoing: bool) -> ServerSettings:
    try:
        return ServerSettings(
            protocol=Protocol.SMTP if outgoing else reader.get("protocol", str, required=True),
            host=reader.get("host", str, required=True),
            port=reader.get("port", int, required=True),
            security=reader.get("security", str, required=True),
            username=reader.get("username", str, required=True),
            auth=reader.get("auth", str, "password"),
            auth_required=reader.get("auth_required", bool, True),
        )
    except ValueError as exc:
        reader.fail(_guess_key(str(exc)), str(exc))
        raise  # unreachable: fail() raises


def _guess_key(problem: str) -> str | None:
    for key in ("protocol", "host", "port", "security", "auth", "password", "email", "name"):
        if key in problem:
            return {"password": "password_source", "name": None}.get(key, key)
    return None


def _account(file: Path, text: str, name: str, data: Any) -> Account:
    r = _Reader(file, text, ["accounts", name], data)
    inc = _Reader(file, text, ["accounts", name, "incoming"], r.get("incoming", dict, required=True))
    out = _Reader(file, text, ["accounts", name, "outgoing"], r.get("outgoing", dict, required=True))
    options = _options(_Reader(file, text, ["accounts", name, "options"], r.get("options", dict, {})))
    try:
        return Account(
            name=name,
            email=r.get("email", str, required=True),
            display_name=r.get("display_name", str, ""),
            incoming=_server(inc, outgoing=False),
            outgoing=_server(out, outgoing=True),
            password=PasswordSource(
                kind=r.get("password_source", str, "keyring"),
                command=r.get("password_command", str, ""),
                env=r.get("password_env", str, ""),
            ),
            ca_file=r.get("ca_file", str, ""),
            allow_plaintext_password=r.get("allow_plaintext_password", bool, False),
            options=dict(options),
            reply_to=r.get("reply_to", str, ""),
            signature=r.get("signature", str, ""),
            identities=_identities(file, text, name, r.get("identities", list, [])),
        )
    except ValueError as exc:
        r.fail(_guess_key(str(exc)), str(exc))
        raise


def _identities(file: Path, text: str, name: str, tables: list[Any]) -> tuple[Identity, ...]:
    """The ``[[accounts.NAME.identities]]`` tables: further From-addresses of the account."""
    out = []
    header = re.compile(rf'^\s*\[\[\s*"?accounts"?\s*\.\s*"?{re.escape(name)}"?\s*\.\s*"?identities"?\s*\]\]')
    lines = [n for n, line in enumerate(text.splitlines(), 1) if header.match(line)]
    for index, data in enumerate(tables):
        r = _Reader(file, text, ["accounts", name, "identities"], data, lines[index] if index < len(lines) else 0)
        try:
            out.append(Identity(address=r.get("address", str, required=True), name=r.get("name", str, ""),
                                reply_to=r.get("reply_to", str, ""), signature=r.get("signature", str, "")))
        except ValueError as exc:
            r.fail(None, f"identity {data.get('address', '')!r}: {exc}")
    return tuple(out)


# The account options there are, with their types: POP3's (see deskmail.sync.pop3_sync), the seconds a sync
# waits for the server (Account.timeout), the seconds the outgoing server has to answer (docs/outbox.md) and
# OAuth2's (deskmail.oauth2).
OPTIONS: dict[str, type] = {"leave_on_server": bool, "delete_after_days": int, "delete_when_deleted_here": bool,
                            "timeout": int, "send_timeout": int, "oauth2_provider": str, "oauth2_mechanism": str}


def _options(reader: _Reader) -> dict[str, Any]:
    """The options table, checked: a misspelt name or a wrong type would silently fall back to a
    default, and a negative ``delete_after_days`` would make every downloaded message due."""
    for key in reader.data:
        if key not in OPTIONS:
            reader.fail(key, f"unknown option '{key}' (the options are: {', '.join(OPTIONS)})")
        reader.get(key, OPTIONS[key])
    days = reader.data.get("delete_after_days", 0)
    if days < 0:
        reader.fail("delete_after_days",
                    f"'delete_after_days' must be 0 (never) or a number of days, not {days}")
    timeout = reader.data.get("timeout", 60)
    if not 1 <= timeout <= 3600:
        reader.fail("timeout", f"'timeout' must be a number of seconds from 1 to 3600, not {timeout}")
    return dict(reader.data)


def load_accounts(p: Paths | None = None) -> dict[str, Account]:
    """The accounts of the accounts file (none if there is no file yet)."""
    p = p or paths()
    text = read_accounts_text(p)
    if text is None:
        return {}
    return accounts_from(p.accounts_file, text, parse_accounts(p.accounts_file, text))


def read_accounts_text(p: Paths) -> str | None:
    """The accounts file's text, or None when it does not exist yet."""
    file = p.accounts_file
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{file} cannot be read ({exc})",
            "the file's permissions or encoding are wrong",
            f"make {file} readable UTF-8 text",
        ) from exc


def accounts_from(file: Path, text: str, doc: dict[str, Any]) -> dict[str, Account]:
    """The accounts of ``doc``, the TOML document parsed from ``text`` (for error messages' line numbers)."""
    accounts = doc.get("accounts", {})
    if not isinstance(accounts, dict):
        raise ConfigError(f"{file}: 'accounts' must be a table", "", "use [accounts.NAME] tables")
    return {name: _account(file, text, name, data) for name, data in accounts.items()}


def parse_accounts(file: Path, text: str) -> dict[str, Any]:
    return _parse(file, text)


def _parse(file: Path, text: str) -> dict[str, Any]:
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_POS.search(str(exc))
        where = f"{file}, line {m.group(1)}" if m else str(file)
        raise ConfigError(
            f"{where}: not valid TOML ({_TOML_POS.sub('', str(exc)).strip()})",
            "the accounts file was edited by hand and a quote, bracket or '=' is off",
            "fix that line (https://toml.io explains the syntax)",
        ) from exc


# --- writing -----------------------------------------------------------------


def _account_table(a: Account) -> dict[str, Any]:
    table: dict[str, Any] = {
        "email": a.email,
        "display_name": a.display_name,
        "password_source": a.password.kind,
    }
    if a.password.command:
        table["password_command"] = a.password.command
    if a.password.env:
        table["password_env"] = a.password.env
    if a.ca_file:
        table["ca_file"] = a.ca_file
    if a.allow_plaintext_password:
        table["allow_plaintext_password"] = True
    inc = a.incoming.to_dict()
    out = a.outgoing.to_dict()
    out.pop("protocol")
    table["incoming"] = inc
    table["outgoing"] = out
    if a.reply_to:
        table["reply_to"] = a.reply_to
    if a.signature:
        table["signature"] = a.signature
    if a.options:
        table["options"] = dict(a.options)
    if a.identities:
        table["identities"] = [{k: v for k, v in (("address", i.address), ("name", i.name),
                                                  ("reply_to", i.reply_to), ("signature", i.signature)) if v}
                               for i in a.identities]
    return table


def save_accounts(accounts: dict[str, Account], p: Paths | None = None) -> None:
    import tomli_w

    file = (p or paths()).accounts_file
    doc = {"accounts": {name: _account_table(a) for name, a in accounts.items()}}
    header = b"# deskmail accounts. Passwords are not stored here (see password_source).\n"
    from deskmail.durable import atomic_write

    atomic_write(file, header + tomli_w.dumps(doc, multiline_strings=True).encode())


def resolve_account(name: str | None, accounts: dict[str, Account]) -> Account:
    """The account a command should act on: the named one, or the only one."""
    if name:
        if name in accounts:
            return accounts[name]
        by_email = [a for a in accounts.values() if a.email.lower() == name.lower()]
        if len(by_email) == 1:
            return by_email[0]
        raise NotFoundError(
            f"There is no account named {name!r}",
            "the name is misspelt, or the account was never added",
            "use one of the account names" + (f" ({', '.join(sorted(accounts))})" if accounts else ""),
            code=Code.NO_SUCH_ACCOUNT, account=name,
        )
    if len(accounts) == 1:
        return next(iter(accounts.values()))
    if not accounts:
        raise NotFoundError(
            "No account is set up yet",
            "",
            "add an account first",
            code=Code.NO_ACCOUNTS,
        )
    raise UsageError(
        "Several accounts exist; this command needs to know which one",
        "",
        f"name the account ({', '.join(sorted(accounts))})",
        code=Code.SEVERAL_ACCOUNTS,
    )

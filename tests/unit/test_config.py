"""Accounts file: round trip, and errors that name the file, the line and the problem."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from deskmail import config
from deskmail.errors import ConfigError, NotFoundError, UsageError
from deskmail.model import Account, PasswordSource, Protocol, Security, ServerSettings


def _account(name: str = "me") -> Account:
    return Account(
        name=name,
        email="me@example.com",
        display_name="Me Myself",
        incoming=ServerSettings(Protocol.IMAP, "imap.example.com", 993, Security.SSL, "me@example.com"),
        outgoing=ServerSettings(Protocol.SMTP, "smtp.example.com", 587, Security.STARTTLS, "me@example.com"),
        password=PasswordSource("command", command="pass show mail"),
    )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> config.Paths:
    monkeypatch.setenv("DESKMAIL_HOME", str(tmp_path))
    return config.paths()


def test_deskmail_home_relocates_config_and_data(home: config.Paths, tmp_path: Path) -> None:
    assert home.accounts_file.is_relative_to(tmp_path)
    assert home.data_dir.is_relative_to(tmp_path)


def test_round_trip(home: config.Paths) -> None:
    config.save_accounts({"me": _account()})
    loaded = config.load_accounts()
    assert loaded == {"me": _account()}
    assert home.accounts_file.stat().st_mode & 0o777 == 0o600


def test_missing_file_means_no_accounts(home: config.Paths) -> None:
    assert config.load_accounts() == {}


def test_syntax_error_names_file_and_line(home: config.Paths) -> None:
    config.save_accounts({"me": _account()})
    lines = home.accounts_file.read_text().splitlines()
    lines[5] = 'port = = 993'
    home.accounts_file.write_text("\n".join(lines))
    with pytest.raises(ConfigError) as info:
        config.load_accounts()
    text = str(info.value)
    assert str(home.accounts_file) in text
    assert "line 6" in text


def test_wrong_type_names_the_key_and_its_line(home: config.Paths) -> None:
    config.save_accounts({"me": _account()})
    text = home.accounts_file.read_text().replace("port = 993", 'port = "993"')
    home.accounts_file.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith('port = "993"'))
    with pytest.raises(ConfigError) as info:
        config.load_accounts()
    assert f"line {line}" in str(info.value)
    assert "'port' must be int" in str(info.value)


def test_invalid_value_is_reported(home: config.Paths) -> None:
    config.save_accounts({"me": _account()})
    text = home.accounts_file.read_text().replace('security = "ssl"', 'security = "tls1"')
    home.accounts_file.write_text(text)
    with pytest.raises(ConfigError, match=r"invalid|tls1"):
        config.load_accounts()


def test_missing_setting_is_reported(home: config.Paths) -> None:
    config.save_accounts({"me": _account()})
    text = home.accounts_file.read_text().replace('host = "imap.example.com"\n', "")
    home.accounts_file.write_text(text)
    with pytest.raises(ConfigError, match="missing setting 'host'"):
        config.load_accounts()


@pytest.mark.parametrize(("line", "problem"), [
    ("delete_after_days = -7", "must be 0 (never) or a number of days, not -7"),
    ('delete_after_days = "7"', "'delete_after_days' must be int"),
    ('leave_on_server = "false"', "'leave_on_server' must be bool"),
    ("leave_on_sever = false", "unknown option 'leave_on_sever'"),
    ("timeout = 0", "'timeout' must be a number of seconds from 1 to 3600, not 0"),
    ('timeout = "5"', "'timeout' must be int"),
])
def test_account_options_are_checked(home: config.Paths, line: str, problem: str) -> None:
    """A wrong option would fall back to a default without a word; a negative age would make
    every downloaded POP3 message due for deletion from the server."""
    config.save_accounts({"me": _account()})
    text = home.accounts_file.read_text() + f"\n[accounts.me.options]\n{line}\n"
    home.accounts_file.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(problem)) as info:
        config.load_accounts()
    assert f"line {len(text.splitlines())}" in str(info.value)


def test_account_options_round_trip(home: config.Paths) -> None:
    options = {"leave_on_server": False, "delete_after_days": 0, "delete_when_deleted_here": True, "timeout": 5}
    config.save_accounts({"me": replace(_account(), options=options)})
    assert config.load_accounts()["me"].options == options
    assert config.load_accounts()["me"].timeout == 5.0 and _account().timeout == 60.0


def test_password_never_in_file(home: config.Paths) -> None:
    config.save_accounts({"me": _account()})
    assert "password =" not in home.accounts_file.read_text()


def test_resolve_account() -> None:
    a, b = _account("a"), _account("b")
    assert config.resolve_account(None, {"a": a}) is a
    assert config.resolve_account("b", {"a": a, "b": b}) is b
    with pytest.raises(UsageError):
        config.resolve_account(None, {"a": a, "b": b})
    with pytest.raises(NotFoundError):
        config.resolve_account("zz", {"a": a})
    with pytest.raises(NotFoundError):
        config.resolve_account(None, {})


def test_parse_cache_is_used_only_for_the_exact_same_text(home: config.Paths) -> None:
    """The command-line fast path's marshal cache of the accounts file (the engine itself always parses)."""
    from deskmail.cli.fastpath import load_accounts

    config.save_accounts({"me": _account()})
    assert load_accounts()["me"].incoming.port == 993
    cache = home.data_dir / "cache" / "accounts.marshal"
    assert not cache.exists()  # reading the accounts never creates the data folder
    home.data_dir.mkdir()
    load_accounts()
    assert cache.exists() and cache.stat().st_mode & 0o777 == 0o600

    # A cache whose text matches is believed (that is the point of it) ...
    import marshal

    text = home.accounts_file.read_text()
    forged = marshal.loads(cache.read_bytes())[1]
    forged["accounts"]["me"]["incoming"]["port"] = 1993
    cache.write_bytes(marshal.dumps((text, forged)))
    assert load_accounts()["me"].incoming.port == 1993
    assert config.load_accounts()["me"].incoming.port == 993  # the engine reads the file itself
    # ... and any edit of the file, even one character, bypasses it.
    home.accounts_file.write_text(text.replace("port = 993", "port = 994"))
    assert load_accounts()["me"].incoming.port == 994
    cache.write_bytes(b"garbage")
    assert load_accounts()["me"].incoming.port == 994
    home.accounts_file.write_text(text.replace("port = 993", "port = [993"))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_accounts()

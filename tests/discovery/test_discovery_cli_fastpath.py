"""`deskmail discover EMAIL --json [--offline]` through the command-line fast path (deskmail.cli.fastpath).

Each case runs twice as a whole process: the console entry (which takes the fast path) and the Typer
application called directly (the full path). Their stdout, stderr and exit codes must be identical,
byte for byte, over a sample of the whole bundled database and the special cases.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from deskmail.cli.fastpath import discover_args
from deskmail.discovery.database import INDEX_NAME, bundled_folder

FULL = "import sys; from deskmail.cli.main import main; sys.exit(main(sys.argv[1:]))"
LEAN = "import sys; from deskmail.cli.entry import main; sys.exit(main())"  # what the console script runs


def run(code: str, home: Path, *args: str) -> tuple[int, bytes, bytes]:
    env = {**os.environ, "DESKMAIL_HOME": str(home), "COLUMNS": "100"}
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, timeout=120, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def both(home: Path, args: list[str]) -> tuple[tuple[int, bytes, bytes], tuple[int, bytes, bytes]]:
    return run(LEAN, home, "discover", *args), run(FULL, home, "discover", *args)


def sample_addresses() -> list[str]:
    data = json.loads((bundled_folder() / INDEX_NAME).read_bytes())
    domains = sorted(data["domains"])
    every_20th = [f"someone@{d}" for d in domains[::20]]
    special = [
        "joe@spectrum.net", "joe@charter.net", "joe@twc.com", "joe@socal.rr.com", "joe@rr.com",
        "joe@brighthouse.com", "JOE@Spectrum.NET", "joe@cox.net",
        "joe@proton.me", "joe@pm.me",
        "joe@hotmail.com", "joe@outlook.com",  # OAuth2 only (Microsoft consumer accounts)
        "joe@gmail.com", "joe@t-online.de",
        "joe@sub.domain.socal.rr.com",  # parent-domain fallback, with its note
    ]
    return every_20th + special


def test_the_fast_path_takes_exactly_the_scripted_form() -> None:
    assert discover_args(["a@b.example", "--json"]) == ("a@b.example", False)
    assert discover_args(["--json", "--offline", "a@b.example"]) == ("a@b.example", True)
    assert discover_args(["--offline", "a@b.example", "--json"]) == ("a@b.example", True)
    for args in (
        ["a@b.example"],  # the text for people
        ["a@b.example", "--offline"],
        ["a@b.example", "--json", "--deadline", "3"],
        ["a@b.example", "--json", "--json"],
        ["a@b.example", "c@d.example", "--json"],
        ["--json"],
        ["a@b.example", "--json", "--help"],
        ["-x@b.example", "--json"],
    ):
        assert discover_args(args) is None, args


def test_database_answers_are_byte_identical_to_the_full_command(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)  # an existing user: the compiled-methods cache is written and used
    addresses = sample_addresses()
    assert len(addresses) > 60
    jobs = [[a, "--json", "--offline"] for a in addresses]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda args: both(home, args), jobs))
    for args, (lean, full) in zip(jobs, results, strict=True):
        assert lean == full, args
        code, out, err = lean
        assert code == 0 and err == b"", (args, err)
        data = json.loads(out)
        assert data["email"] == args[0] and data["candidates"], args
    assert (home / "data" / "cache" / "dataclass-methods.marshal").is_file()
    outlook = json.loads(results[jobs.index(["joe@hotmail.com", "--json", "--offline"])][0][1])
    assert [r["code"] for r in outlook["before_password"]] == ["oauth_required"]
    proton = json.loads(results[jobs.index(["joe@proton.me", "--json", "--offline"])][0][1])
    assert proton["candidates"][0]["incoming"]["host"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["nobody@unknown-domain.invalid", "--json", "--offline"], 4),  # no answer: handed over
        (["not-an-address", "--json", "--offline"], 2),  # the full command's error, as JSON and in words
        (["joe@", "--json", "--offline"], 2),
        (["a@b@c.example", "--json"], 2),
        (["joe@" + "x" * 70 + ".example", "--json", "--offline"], 2),  # a label DNS does not allow
        (["jürgen@bücher.invalid", "--json", "--offline"], 4),
        (["nobody@nothing-here.invalid", "--json"], 4),  # online: every source runs (.invalid: never found)
        (["--json", "--offline", "joe@gmail.com"], 0),
    ],
)
def test_misses_errors_and_online_lookups_match_the_full_command(tmp_path: Path, args: list[str],
                                                                  expected: int) -> None:
    lean, full = both(tmp_path / "home", args)
    assert lean == full
    code, out, err = lean
    assert code == expected, err
    data = json.loads(out)
    if expected == 2:
        assert data["code"] == "usage" and err.startswith(b"Error: ")  # the clear error, unchanged
    else:
        assert bool(data["candidates"]) == (expected == 0) and err == b""
    assert not (tmp_path / "home" / "data").exists()  # discovery never creates the data folder


@pytest.mark.parametrize("offline", [True, False])
def test_a_drop_in_provider_file_is_honoured_by_the_fast_path(tmp_path: Path, offline: bool) -> None:
    """A database hit, offline and online (then every network source runs too: under .invalid, a
    name that never exists, they find nothing wherever the test runs)."""
    home = tmp_path / "home"
    folder = home / "config" / "providers"
    folder.mkdir(parents=True)
    (folder / "mine.xml").write_text(
        """<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1"><emailProvider id="mine.invalid"><domain>mine.invalid</domain>
<displayName>Mine</displayName><incomingServer type="imap"><hostname>imap.mine.invalid</hostname><port>993</port>
<socketType>SSL</socketType><username>%EMAILLOCALPART%</username><authentication>password-cleartext</authentication>
</incomingServer><outgoingServer type="smtp"><hostname>smtp.mine.invalid</hostname><port>465</port>
<socketType>SSL</socketType><username>%EMAILLOCALPART%</username><authentication>password-cleartext</authentication>
</outgoingServer></emailProvider></clientConfig>"""
    )
    lean, full = both(home, ["ann@mine.invalid", "--json", *(["--offline"] if offline else [])])
    assert lean == full
    assert lean[0] == 0 and lean[2] == b""
    first = json.loads(lean[1])["candidates"][0]
    assert first["incoming"]["host"] == "imap.mine.invalid" and first["incoming"]["username"] == "ann"


def test_a_database_hit_imports_no_command_line_framework(tmp_path: Path) -> None:
    probe = (
        "import sys; from deskmail.cli.entry import main\n"
        "code = main(sys.argv[1:])\n"
        "loaded = [m for m in ('typer', 'click', 'rich', 'deskmail.cli.main', 'deskmail.discovery.transport',"
        " 'deskmail.discovery.probe', 'ssl') if m in sys.modules]\n"
        "sys.stderr.write(repr((code, loaded)))\n"
    )
    code, out, err = run(probe, tmp_path / "home", "discover", "joe@spectrum.net", "--json", "--offline")
    assert code == 0 and json.loads(out)["candidates"]
    assert err == b"(0, [])"
    code, out, err = run(probe, tmp_path / "home", "discover", "nobody@unknown-domain.invalid", "--json", "--offline")
    assert code == 0 and err.endswith(b"(4, ['typer', 'click', 'deskmail.cli.main'])")  # handed over


def closed_pipe_run(code: str, home: Path, *args: str, unbuffered: bool) -> tuple[int, bytes]:
    """Run with stdout a pipe whose reader has gone (as under `| head` once head has had enough)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {**os.environ, "DESKMAIL_HOME": str(home)}
    env.pop("PYTHONUNBUFFERED", None)
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    try:
        proc = subprocess.run([sys.executable, "-c", code, *args], env=env, stdout=write_end,
                              stderr=subprocess.PIPE, timeout=120, check=False)
    finally:
        os.close(write_end)
    return proc.returncode, proc.stderr


@pytest.mark.parametrize("unbuffered", [False, True])
@pytest.mark.parametrize("args", [["discover", "joe@spectrum.net", "--json", "--offline"], ["search", "x", "--json"]])
def test_a_reader_gone_ends_the_fast_path_as_it_ends_the_full_command(tmp_path: Path, args: list[str],
                                                                       unbuffered: bool) -> None:
    """Exit code 1 and not a word (what Click does), never a traceback."""
    lean = closed_pipe_run(LEAN, tmp_path / "home", *args, unbuffered=unbuffered)
    full = closed_pipe_run(FULL, tmp_path / "home", *args, unbuffered=unbuffered)
    assert lean == full == (1, b"")

"""The fast path's compiled dataclass methods (deskmail.cli.fastpath.CompiledMethods), each case in a fresh
interpreter: the trick must act before `dataclasses` is first imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from deskmail.cli.fastpath import METHODS_CACHE

CORE = ("deskmail.config", "deskmail.store", "deskmail.protocol.imap", "deskmail.secrets", "deskmail.app",
        "deskmail.events", "deskmail.sync.plan", "deskmail.mailbox", "deskmail.sync.watch",
        "deskmail.net.connect", "deskmail.sync.runner", "deskmail.sync.imap_sync",
        "deskmail.discovery",  # (`deskmail discover --json`'s fast path)
        "deskmail.search.query", "deskmail.store.search", "deskmail.store.fulltext")  # (`deskmail search --json`'s)


def _run(code: str, *, stderr: bool = False) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return (done.stderr if stderr else done.stdout).strip()


def test_classes_built_from_cached_code_behave_as_usual(tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "methods.marshal"
    program = f"""
        import sys
        from deskmail.cli.fastpath import CompiledMethods
        methods = CompiledMethods({str(cache)!r})
        methods.install()
        from dataclasses import dataclass, FrozenInstanceError, field

        @dataclass(frozen=True, slots=True)
        class Point:
            '''A point.'''
            x: int
            y: int = 0
            tags: tuple[str, ...] = field(default=())

        p = Point(1)
        assert p == Point(1, 0) and p != Point(2) and hash(p) == hash(Point(1))
        assert repr(p) == "Point(x=1, y=0, tags=())", repr(p)
        try:
            p.x = 3
        except FrozenInstanceError:
            pass
        else:
            raise AssertionError("a frozen class accepted an assignment")
        print(methods._new)
        methods.save()
    """
    compiled_first = int(_run(program))
    assert compiled_first > 0 and cache.is_file()
    assert int(_run(program)) == 0  # the second run compiles nothing: all of it came from the file


def test_a_cache_from_another_interpreter_is_not_used(tmp_path: Path) -> None:
    import marshal

    cache = tmp_path / "cache" / "methods.marshal"
    cache.parent.mkdir()
    # A code object made by another interpreter would be unusable; here, the text of a
    # well-known method with the wrong code behind it shows whether the file was believed.
    cache.write_bytes(marshal.dumps(("2.7.0 (elsewhere)", {"not the real text": compile("x = 1", "<s>", "exec")})))
    out = _run(f"""
        from deskmail.cli.fastpath import CompiledMethods
        methods = CompiledMethods({str(cache)!r})
        print(len(methods._code))
    """)
    assert out == "0"
    cache.write_bytes(b"\x00garbage")
    assert _run(f"""
        from deskmail.cli.fastpath import CompiledMethods
        print(len(CompiledMethods({str(cache)!r})._code))
    """) == "0"


def test_the_core_needs_no_inspect_on_the_fast_path(tmp_path: Path) -> None:
    """`inspect` (with ast, dis and tokenize: ~5 ms) stays unloaded while the fast paths are imported.

    dataclasses asks inspect for a signature only for a class without a docstring: a value class
    of the core added without one makes this fail, and costs every `deskmail sync` (or `deskmail
    discover --json`) that much.
    """
    out = _run(f"""
        import sys
        from deskmail.cli.fastpath import CompiledMethods
        CompiledMethods({str(tmp_path / "m.marshal")!r}).install()
        import {", ".join(CORE)}
        print(sorted(m for m in ("ast", "dis", "tokenize") if m in sys.modules))
        import inspect
        print(inspect.signature(len))
    """)
    assert out.splitlines() == ["[]", "(obj, /)"]


def test_a_search_process_loads_no_network_or_html_module(tmp_path: Path) -> None:
    """`deskmail search QUERY --json` opens the index and prints: socket, ssl and html (~3 ms of its start-up
    together) stay unloaded, so does inspect (ast, dis, tokenize), and the compiled dataclass methods are kept for
    the next run."""
    (tmp_path / "data").mkdir()
    out = _run(f"""
        import os, sys
        os.environ["DESKMAIL_HOME"] = {str(tmp_path)!r}
        from deskmail.cli import fastpath
        code = fastpath.run_search("from:ada budget -review", 5)
        print(code, sorted(m for m in ("socket", "ssl", "html", "ast", "dis", "tokenize") if m in sys.modules))
    """)
    assert out.splitlines()[-1] == "0 []"
    assert (tmp_path / "data" / METHODS_CACHE).is_file()


def test_every_console_command_collects_garbage_again_before_it_works(tmp_path: Path) -> None:
    """Trick 5: the console entry point turns the cyclic collector off while modules are imported, and every
    way through it (each fast path and the full command) turns it back on, with start-up's objects frozen,
    before the command's work begins. Called in-process (argv given), the entry point leaves it alone."""
    (tmp_path / "data").mkdir()
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "accounts.toml").write_text(textwrap.dedent("""
        [accounts.ada]
        email = "ada@example.test"
        password_source = "env"
        password_env = "DESKMAIL_TEST_PASSWORD"
        [accounts.ada.incoming]
        protocol = "imap"
        host = "127.0.0.1"
        port = 9
        security = "ssl"
        username = "ada"
        [accounts.ada.outgoing]
        host = "127.0.0.1"
        port = 9
        security = "ssl"
        username = "ada"
    """))
    commands = [["search", "budget", "--json"], ["discover", "ada@gmail.com", "--json", "--offline"],
                ["account", "list"], ["sync", "--quiet"]]
    for argv in commands:
        out = _run(f"""
            import gc, os, sys
            os.environ["DESKMAIL_HOME"] = {str(tmp_path)!r}
            import deskmail.app

            def seen(self, *args, **kwargs):  # the first thing each command asks of the façade
                sys.__stderr__.write(f"enabled={{gc.isenabled()}} frozen={{gc.get_freeze_count() > 0}}\\n")
                os._exit(0)

            deskmail.app.Deskmail.__init__ = seen
            sys.argv = ["deskmail", *{argv!r}]
            from deskmail.cli.entry import main
            assert gc.isenabled()
            main()
        """, stderr=True)
        assert out == "enabled=True frozen=True", (argv, out)
    in_process = _run("""
        import gc
        from deskmail.cli.entry import main
        main(["--version"])
        print(gc.isenabled(), gc.get_freeze_count())
    """)
    assert in_process.splitlines()[-1] == "True 0"

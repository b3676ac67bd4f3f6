"""The house reads top-down: interfaces → façade → services → protocol / store / net → model.

Every import in src/deskmail (top-level or inside a function) is checked: a module may import its own
layer or the layers below it, never one above. Qt may only be imported by the gui package.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "deskmail"

# Highest first. The sandbox (local test servers and the demo account) is a tool beside the interfaces.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("interfaces", ("deskmail.cli", "deskmail.gui", "deskmail.__main__", "deskmail.sandbox")),
    ("façade", ("deskmail.app",)),
    ("services", ("deskmail.setup", "deskmail.mailbox", "deskmail.discovery", "deskmail.doctor", "deskmail.sync",
                  "deskmail.outbox", "deskmail.render", "deskmail.search")),
    ("protocol, store, net", ("deskmail.protocol", "deskmail.store", "deskmail.net", "deskmail.secrets",
                              "deskmail.oauth2", "deskmail.config", "deskmail.dirs", "deskmail.durable")),
    ("model", ("deskmail.model", "deskmail.errors", "deskmail.events", "deskmail.codes", "deskmail")),
]


def layer_of(module: str) -> int:
    best, best_len = -1, -1
    for rank, (_name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = rank, len(prefix)
    assert best >= 0, f"{module} is in no layer: add it to LAYERS"
    return best


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # "from deskmail import config" imports the module deskmail.config
            if node.module == "deskmail":
                found += [(node.lineno, f"deskmail.{alias.name}") for alias in node.names]
    return found


def test_no_import_runs_back_up() -> None:
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        here = module_name(path)
        mine = layer_of(here)
        for line, target in imports(path):
            if target == "deskmail" or not target.startswith("deskmail"):
                if target.split(".")[0] in ("PySide6", "PyQt6", "PyQt5") and not here.startswith("deskmail.gui"):
                    problems.append(f"{here}:{line} imports Qt ({target}) outside the gui package")
                continue
            theirs = layer_of(target)
            if theirs < mine:
                problems.append(f"{here}:{line} ({LAYERS[mine][0]}) imports {target} ({LAYERS[theirs][0]})")
    assert not problems, "\n".join(problems)


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from deskmail.cli.main import app\n")
    assert imports(bad) == [(2, "deskmail.cli.main")]
    assert layer_of("deskmail.cli.main") < layer_of("deskmail.store")

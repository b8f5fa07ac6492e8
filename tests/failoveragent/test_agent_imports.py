"""The failover_agent package: every module imports, the decider is pure (cycles: tests/core/test_import_graph.py)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import failover_agent

PACKAGE = Path(failover_agent.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
PURE = ("codes", "events", "decider", "alerts", "config", "wire")  # no I/O: the decider and what it reads
IO_MODULES = {"gevent", "volttron", "time", "socket", "subprocess", "os", "threading", "asyncio", "signal",
              "secrets", "uuid", "failover_core.shell"}


def imports_of(module: str) -> set[str]:
    """Every module ``failover_agent.<module>`` imports (absolute names), at any depth of the file."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module if node.level == 0 else f"failover_agent.{node.module}"
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names if base == "failover_agent"}
    return found


def package_graph() -> dict[str, set[str]]:
    """module -> the failover_agent modules it imports."""
    def inside(name: str) -> str | None:
        parts = name.split(".")
        return parts[1] if parts[0] == "failover_agent" and len(parts) > 1 and parts[1] in MODULES else None

    return {m: {name for i in imports_of(m) if (name := inside(i))} for m in MODULES}


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports(module: str) -> None:
    importlib.import_module(f"failover_agent.{module}")


@pytest.mark.parametrize("module", PURE)
def test_the_decider_and_what_it_reads_do_no_io(module: str) -> None:
    graph = package_graph()
    for m in {module} | reachable(graph, module):
        bad = {i for i in imports_of(m) if i.split(".")[0] in IO_MODULES or i.startswith("failover_core.shell")}
        assert not bad, f"{m} (reached from {module}) imports {sorted(bad)}"


def test_the_console_script_is_main() -> None:
    text = (PACKAGE.parent / "pyproject.toml").read_text()
    assert 'failover-agent = "failover_agent.main:main"' in text
    from failover_agent.main import main

    assert callable(main)

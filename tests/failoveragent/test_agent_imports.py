"""The failover_agent package: every module imports, the import graph has no cycle, the decider is pure."""

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


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


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


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_import_graph_has_no_cycle() -> None:
    graph = package_graph()
    assert {"agent", "witness", "main", "decider"} <= set(graph)
    assert graph["main"] >= {"agent", "witness"}  # the graph is read, not empty
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph) or [])}"


def test_the_witness_and_the_failover_agent_do_not_import_each_other() -> None:
    graph = package_graph()
    assert "agent" not in reachable(graph, "witness")
    assert "witness" not in reachable(graph, "agent")


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

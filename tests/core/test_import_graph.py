"""No import cycle in any package of the toolkit, and the layering the architecture promises.

Also: the VOLTTRON agent's decider and what it reads do no I/O. The graph is read with ast (every
import counts: TYPE_CHECKING and function-local ones too), so a cycle that only
bites at run time in some order is still found.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"failover_core": ROOT / "FailoverAgent" / "failover_core",
            "failover_agent": ROOT / "FailoverAgent" / "failover_agent",
            "DockerFailover": ROOT / "DockerFailover", "VrrpFailover": ROOT / "VrrpFailover",
            "HaValet": ROOT / "HaValet", "FailoverWitness": ROOT / "FailoverWitness", "labs": ROOT / "labs"}


def _module_name(package: str, root: Path, path: Path) -> str:
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


FILES = {_module_name(pkg, root, p): p for pkg, root in PACKAGES.items() for p in root.rglob("*.py")}


def import_graph(files: dict[str, Path] = FILES) -> dict[str, set[str]]:
    """Module -> the toolkit's modules it imports (``from P import m`` counts as P.m when m is a module)."""
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            else:
                continue
            deps.update(t for t in targets if t in files and t != name)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                return [*path[path.index(d):], d]
            if d not in state and (found := visit(d)):
                return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def imported_names(module: str) -> set[str]:
    """Every absolute module name ``module``'s file imports (inside the toolkit or not), at any depth."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(FILES[module].read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


GRAPH = import_graph()
# the VOLTTRON agent's decider and everything it reads: no I/O (the driver, agent.py, does it all)
AGENT_PURE = ("codes", "events", "decider", "alerts", "config", "wire")
IO_MODULES = {"gevent", "volttron", "time", "socket", "subprocess", "os", "threading", "asyncio", "signal",
              "secrets", "uuid"}


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_the_known_edges() -> None:
    assert "DockerFailover.shell.http_api" in GRAPH["DockerFailover.shell.agent"]
    assert "DockerFailover.shell.agent" in GRAPH["DockerFailover.cli"]  # a function-local import counts
    assert "DockerFailover.events" in GRAPH["DockerFailover.decider"]
    assert GRAPH["failover_agent.main"] >= {"failover_agent.agent", "failover_agent.witness"}
    assert "failover_core.step" in GRAPH["failover_core.shell.carry_out"]


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_import_cycle(package: str) -> None:
    sub = {m: d for m, d in GRAPH.items() if m.split(".")[0] == package}
    assert sub, f"no modules read for {package}"
    cycle = find_cycle(sub)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_cycle_across_packages() -> None:
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_http_layer_does_not_import_the_docker_agent() -> None:
    assert "DockerFailover.shell.agent" not in reachable(GRAPH, "DockerFailover.shell.http_api")


def test_the_witness_and_the_failover_agent_do_not_import_each_other() -> None:
    assert "failover_agent.agent" not in reachable(GRAPH, "failover_agent.witness")
    assert "failover_agent.witness" not in reachable(GRAPH, "failover_agent.agent")


def test_installed_packages_never_import_the_test_beds() -> None:
    for m, deps in GRAPH.items():
        if not m.startswith("labs"):
            assert not {d for d in deps if d.startswith("labs")}, f"{m} imports the test beds"


def test_the_witness_stands_alone() -> None:
    """The standalone witness needs only failover_core: no system's agent, no test bed."""
    for m in (m for m in GRAPH if m.startswith("FailoverWitness")):
        assert {d.split(".")[0] for d in reachable(GRAPH, m)} <= {"failover_core", "FailoverWitness"}, m


@pytest.mark.parametrize("module", AGENT_PURE)
def test_the_agent_decider_and_what_it_reads_do_no_io(module: str) -> None:
    start = f"failover_agent.{module}"
    for m in {start} | reachable(GRAPH, start):
        bad = {i for i in imported_names(m) if i.split(".")[0] in IO_MODULES or i.startswith("failover_core.shell")}
        assert not bad, f"{m} (reached from {start}) imports {sorted(bad)}"

"""The decider and the pure helpers of VrrpFailover import nothing that does I/O (the driver and track.py do it)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import VrrpFailover

PKG = Path(VrrpFailover.__file__).parent
PURE = ["machine.py", "events.py", "codes.py", "packet.py", "notify.py", "keepalived_import.py", "sync_group.py"]
FORBIDDEN = {"time", "datetime", "socket", "subprocess", "os", "threading", "asyncio", "select", "selectors",
             "signal", "shutil", "pathlib", "io", "fcntl", "pyroute2", "failover_core.shell", "VrrpFailover.driver",
             "VrrpFailover.track", "VrrpFailover.netio"}


@pytest.mark.parametrize("name", PURE)
def test_pure_module_imports_nothing_that_does_io(name):
    imported: set[str] = set()
    for node in ast.walk(ast.parse((PKG / name).read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module)
    bad = {m for m in imported for f in FORBIDDEN if m == f or m.startswith(f + ".")}
    assert not bad, f"{name} imports {sorted(bad)}"

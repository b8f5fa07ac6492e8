"""failover_agent: every module imports; the console script (cycles and purity: tests/core/test_import_graph.py)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import failover_agent

PACKAGE = Path(failover_agent.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports(module: str) -> None:
    importlib.import_module(f"failover_agent.{module}")


def test_the_console_script_is_main() -> None:
    text = (PACKAGE.parent / "pyproject.toml").read_text()
    assert 'failover-agent = "failover_agent.main:main"' in text
    from failover_agent.main import main

    assert callable(main)

"""Fixtures of HaValet's tests: a real valet process, sample services, network-namespace "hosts".

Everything a test starts is ended by PID in a finalizer (valet by its Popen, sample services by the
pid files in the test's own state directory); namespaces carry a per-run random suffix and are
deleted in finalizers even when the test fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from labs import importable_env
from labs.valet import NetnsLab

from .helpers import ValetProcess, kill_services


@pytest.fixture(autouse=True)
def labs_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """labs/ is not installed: every ``python -m labs.valet_service`` a test, a valet or a namespace runs
    inherits the repo root on PYTHONPATH from here."""
    monkeypatch.setenv("PYTHONPATH", importable_env()["PYTHONPATH"])


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "state"
    d.mkdir()
    try:
        yield d
    finally:
        kill_services(d)


@pytest.fixture
def run_valet(tmp_path: Path) -> Iterator[Callable[..., ValetProcess]]:
    started: list[ValetProcess] = []

    def start(cfg_text: str, *extra_args: str) -> ValetProcess:
        cfg = tmp_path / f"ha_valet{len(started)}.cfg"
        cfg.write_text(cfg_text)
        v = ValetProcess(cfg, tmp_path, extra_args)
        started.append(v)
        return v

    try:
        yield start
    finally:
        for v in started:
            v.stop()


@pytest.fixture
def netns_hosts(state_dir: Path) -> Iterator[NetnsLab]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.fail("the stand-by host tests need root and iproute2 (run scripts/bootstrap.sh as root)")
    hosts = NetnsLab(2)
    try:
        hosts.setup()
        yield hosts
    finally:
        kill_services(state_dir)  # services live in the namespaces: end them before the namespaces go
        hosts.teardown()

"""Fixtures of HaValet's tests: a real valet process, sample services, network-namespace "hosts".

Everything a test starts is ended by PID in a finalizer (valet by its Popen, sample services by the
pid files in the test's own state directory); namespaces carry a per-run random suffix and are
deleted in finalizers even when the test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from HaValet.netns_lab import NetnsLab

PY = sys.executable


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, on_fail: Callable[[], str] = str,
               every: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}\n{on_fail()}")
        time.sleep(every)


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def kill_services(state_dir: Path) -> None:
    """SIGKILL every sample service whose pid file is in ``state_dir`` (only ours)."""
    for pid_file in state_dir.glob("*.pid"):
        with contextlib.suppress(ValueError, OSError, ProcessLookupError):
            os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)


class ValetProcess:
    """A real ``python -m HaValet`` run with its status file and log."""

    def __init__(self, cfg: Path, workdir: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.cfg = cfg
        self.status_path = workdir / "status.json"
        self.log_path = workdir / "valet.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen([PY, "-m", "HaValet", "-c", str(cfg), "--status-file", str(self.status_path),
                                      *extra_args], stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONWARNINGS": "always"})

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status_path.read_text())
        except (OSError, ValueError):
            return {}

    def process(self, name: str) -> dict[str, Any]:
        for p in self.status().get("processes", []):
            if p["process"] == name:
                return p
        return {}

    def wait_state(self, name: str, state: str, timeout: float, host: str | None = None) -> dict[str, Any]:
        def ok() -> dict[str, Any] | None:
            p = self.process(name)
            if p.get("state") == state and (host is None or p.get("active_host") == host):
                return p
            return None
        return wait_until(ok, timeout, f"{name} {state} on {host}", self.diagnostics)

    def diagnostics(self) -> str:
        return f"--- status ---\n{json.dumps(self.status(), indent=1)}\n--- valet log ---\n{self.log()[-6000:]}"

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


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

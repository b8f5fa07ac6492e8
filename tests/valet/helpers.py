"""Helpers of HaValet's tests: polling with a deadline, process checks, a real valet process."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from labs.wait import WaitTimeout, poll_until

PY = sys.executable


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, on_fail: Callable[[], str] = str,
               every: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout`` seconds."""
    try:
        return poll_until(predicate, timeout, what=what, interval=every)
    except WaitTimeout:
        pytest.fail(f"timed out after {timeout}s waiting for {what}\n{on_fail()}")


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
        # -W always (not PYTHONWARNINGS: the commands would inherit it): resource leaks show in the log
        self.proc = subprocess.Popen([PY, "-W", "always", "-m", "HaValet", "-c", str(cfg), "--status-file",
                                      str(self.status_path), *extra_args], stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

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

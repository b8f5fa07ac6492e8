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
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

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
                                     stdin=subprocess.DEVNULL)

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


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


class NetnsHosts:
    """Hosts A (10.99.0.1), B (10.99.0.2) and a client C (10.99.0.100) on a bridge inside C.

    A host's namespace is named ``<prefix><address>`` so a cfg can reach it as
    ``ip netns exec @NSP@%s ...`` % (host); the client is ``<prefix>client``.
    """

    def __init__(self) -> None:
        self.prefix = f"hv{uuid.uuid4().hex[:6]}-"
        self.addresses = ["10.99.0.1", "10.99.0.2"]
        self.client = self.prefix + "client"
        self.created: list[str] = []

    def ns(self, address: str) -> str:
        return self.prefix + address

    def setup(self) -> None:
        for name in [self.client, *(self.ns(a) for a in self.addresses)]:
            _ip("netns", "add", name)
            self.created.append(name)
            _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", self.client, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.client, "addr", "add", "10.99.0.100/24", "dev", "br0")
        _ip("-n", self.client, "link", "set", "br0", "up")
        for i, address in enumerate(self.addresses):
            ns = self.ns(address)
            port = f"p{i}"
            _ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", self.client)
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", self.client, "link", "set", port, "master", "br0", "up")

    def break_host(self, address: str) -> None:
        _ip("-n", self.ns(address), "addr", "del", f"{address}/24", "dev", "eth0")

    def repair_host(self, address: str) -> None:
        _ip("-n", self.ns(address), "addr", "add", f"{address}/24", "dev", "eth0")

    def teardown(self) -> None:
        for name in reversed(self.created):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)
        self.created.clear()


@pytest.fixture
def netns_hosts(state_dir: Path) -> Iterator[NetnsHosts]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.fail("the stand-by host tests need root and iproute2 (run scripts/bootstrap.sh as root)")
    hosts = NetnsHosts()
    try:
        hosts.setup()
        yield hosts
    finally:
        kill_services(state_dir)  # services live in the namespaces: end them before the namespaces go
        hosts.teardown()

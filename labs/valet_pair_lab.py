"""ValetPair: a per-host HaValet pair in the namespace lab, for tests/valet and the chaos driver (labs.chaos.valet).

Two namespace hosts (``A`` 10.99.0.1, ``B`` 10.99.0.2), a real ``python -m HaValet`` in each managing the sample
service (``labs.valet_service``) on its own host, optionally a real ``python -m FailoverWitness`` in the lab's
client namespace (standard mode), and a ``Sampler`` that records which host runs the service every 20 ms (a live
service pid in the host's pid file). Everything started is ended by PID; a pid is only signalled after its
``/proc/PID/cmdline`` showed it is ours (a stale pid file of a SIGKILLed service names a dead pid that may be
reused). Moved here from tests/valet/pair_lab.py so the tests and the chaos driver share one bed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labs import importable_env
from labs.netns import run as run_cmd
from labs.valet import CLIENT_ADDRESS, NetnsLab
from labs.valet_pair import WITNESS_SECRET, Interval, journal_intervals, log_intervals, overlap, pair_cfg
from labs.wait import WaitTimeout, poll_until
from labs.witness import WitnessProcess

A, B = "10.99.0.1", "10.99.0.2"
PROCESS = "Web"
PY = sys.executable


def _state(pid: int) -> str | None:
    """The process's state letter (R, S, T, Z, ...) or None when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def pid_alive(pid: int) -> bool:
    """Alive and not a zombie."""
    return _state(pid) not in (None, "Z", "X")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class ServiceProbe:
    """Which hosts run the service: the pid in ``STATE/<host>.pid`` is alive (not a zombie) and is the sample
    service of this state directory (its cmdline, checked once per pid). Two small file reads per host."""

    def __init__(self, state_dir: Path, hosts: tuple[str, ...]) -> None:
        self.state_dir, self.hosts = state_dir, hosts
        self._ours: dict[int, bool] = {}

    def pid(self, host: str) -> int | None:
        try:
            pid = int((self.state_dir / f"{host}.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        if pid not in self._ours:
            cmd = _cmdline(pid)
            if not cmd:
                return None  # gone (or not yet readable): decide on a later sample
            self._ours[pid] = "labs.valet_service" in cmd and str(self.state_dir) in cmd
        return pid if self._ours[pid] else None

    def running(self) -> frozenset[str]:
        out = set()
        for h in self.hosts:
            pid = self.pid(h)
            if pid is not None and pid_alive(pid):
                out.add(h)
        return frozenset(out)


class Sampler(threading.Thread):
    """Which hosts run the service (``ServiceProbe``), every ``every`` seconds, with wall times."""

    def __init__(self, state_dir: Path, hosts: tuple[str, ...], every: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.probe = ServiceProbe(state_dir, hosts)
        self.every = every
        self.samples: list[tuple[float, frozenset[str]]] = []
        self._halt = threading.Event()

    def running(self) -> frozenset[str]:
        return self.probe.running()

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append((time.time(), self.running()))
            time.sleep(self.every)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def double_seconds(self, since: float = 0.0) -> float:
        total = 0.0
        for (t0, s0), (t1, _) in zip(self.samples, self.samples[1:], strict=False):
            if t0 >= since and len(s0) > 1:
                total += t1 - t0
        return total


class ValetPair:
    """The bed. ``cfg`` goes to ``labs.valet_pair.pair_cfg`` (heartbeat_interval, heartbeat_timeout, stop_timeout,
    extra, ...). ``witness_port``: 0 lets the witness pick one (tests); a fixed port lets a killed witness come
    back where the valets' configs point (chaos). ``sample=False``: no Sampler thread (the chaos recorder
    probes itself)."""

    def __init__(self, tmp: Path, *, witness: bool, witness_port: int = 0, sample: bool = True, tag: str = "hp",
                 **cfg: Any) -> None:
        self.tmp = tmp
        self.state = tmp / "state"  # made by __enter__
        self.lab = NetnsLab(2, tag=tag)
        self.witness_wanted = witness
        self.witness_port = witness_port
        self.cfg_args = cfg
        self.valets: dict[str, subprocess.Popen[bytes]] = {}
        self.witness: WitnessProcess | None = None
        self.killed: dict[int, float] = {}  # service pid -> when it was SIGKILLed (it writes no "down" line)
        self.sampler = Sampler(self.state, (A, B))
        self.probe = self.sampler.probe
        self.sample = sample
        self._logs: list[Any] = []

    # -------------------------------------------------------------- set-up and teardown
    def __enter__(self) -> ValetPair:
        self.state.mkdir(parents=True, exist_ok=True)
        self.lab.setup()
        try:
            if self.witness_wanted:
                self.start_witness()
            for node in (A, B):
                self.start_valet(node)
            if self.sample:
                self.sampler.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End everything this pair started, each step on its own (one failing does not skip the others)."""
        steps: list[Callable[[], object]] = [self.sampler.stop] if self.sampler.is_alive() else []
        steps += [lambda node=node: self.stop_valet(node) for node in list(self.valets)]
        if self.witness is not None:
            steps += [self.witness.resume, self.witness.stop]
        steps += [self._kill_services, *(f.close for f in self._logs), self.lab.teardown]
        errors = []
        for step in steps:
            try:
                step()
            except Exception as e:
                errors.append(e)
        self._logs.clear()
        if errors:
            raise errors[0]

    def _kill_services(self) -> None:
        for host in (A, B):
            for pid in self.host_pids(host):  # whatever still runs in the host (keepers, services, commands)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for pid_file in self.state.glob("*.pid"):
            with contextlib.suppress(ValueError, OSError, ProcessLookupError):
                pid = int(pid_file.read_text().strip())
                if str(self.state) in _cmdline(pid):
                    os.kill(pid, signal.SIGKILL)

    def host_pids(self, host: str) -> list[int]:
        """Every process in the host's namespace (all of them ours: the lab made the namespace)."""
        r = run_cmd("ip", "netns", "pids", self.lab.ns(host), check=False)
        return [int(p) for p in r.stdout.split() if p.isdigit()]

    @property
    def witness_url(self) -> str | None:
        return None if self.witness is None else self.witness.url

    def start_witness(self) -> None:
        """A real ``python -m FailoverWitness`` in the lab's client namespace, one group per process with the
        valets' timeout (the witness calls a valet down after it; the valets' leases end earlier)."""
        if self.witness is not None:
            self.witness.start()  # again, on the same port when it is fixed
            return
        group = {"secret": WITNESS_SECRET, "timeout": self.cfg_args.get("heartbeat_timeout", 1.0),
                 "heartbeat_interval": self.cfg_args.get("heartbeat_interval", 0.25)}
        self.witness = WitnessProcess(self.tmp / "witness", {PROCESS: group}, listen=CLIENT_ADDRESS,
                                      extra={"port": self.witness_port} if self.witness_port else None,
                                      popen=lambda argv, **kw: subprocess.Popen(
                                          ["ip", "netns", "exec", self.lab.client, *argv], **kw)).start()

    def start_valet(self, node: str) -> None:
        peer = B if node == A else A
        cfg = self.tmp / f"{node}.cfg"
        cfg.write_text(pair_cfg(node, peer, self.state, primary=A, witness_url=self.witness_url, **self.cfg_args))
        log = self.log_path(node).open("ab")
        self._logs.append(log)
        self.valets[node] = subprocess.Popen(
            ["ip", "netns", "exec", self.lab.ns(node), PY, "-W", "always", "-m", "HaValet", "-c", str(cfg),
             "--status-file", str(self.tmp / f"{node}.status.json")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=importable_env())

    def stop_valet(self, node: str, timeout: float = 15) -> int | None:
        p = self.valets.pop(node)
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)  # a test may have frozen it
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGUSR1)  # the valet writes its threads' stacks to its log
                time.sleep(0.5)
                p.kill()
                p.wait(5)
        return p.returncode

    def kill_valet(self, node: str) -> float:
        """SIGKILL the valet (``ip netns exec`` execs it: the Popen's pid is the valet's)."""
        p = self.valets.pop(node)
        at = time.time()
        p.kill()
        p.wait(5)
        return at

    def freeze_valet(self, node: str, frozen: bool = True) -> float:
        at = time.time()
        self.valets[node].send_signal(signal.SIGSTOP if frozen else signal.SIGCONT)
        return at

    # -------------------------------------------------------------- looking
    def log_path(self, node: str) -> Path:
        return self.tmp / f"{node}.log"

    def log(self, node: str) -> str:
        path = self.log_path(node)
        return path.read_text(errors="replace") if path.exists() else ""

    def diagnostics(self) -> str:
        out = [f"--- running now: {sorted(self.probe.running())}"]
        for node in (A, B):
            out.append(f"--- valet {node} ---\n{self.log(node)[-5000:]}")
        if self.witness_wanted:
            out.append(f"--- witness ---\n{self.witness.log_text()[-2000:] if self.witness else ''}")
        return "\n".join(out)

    def _wait(self, cond: Callable[[], Any], timeout: float, what: str) -> Any:
        try:
            return poll_until(cond, timeout, what=what, interval=0.02)
        except WaitTimeout as e:
            raise WaitTimeout(f"{e}\n{self.diagnostics()}") from None

    def wait_running(self, hosts: set[str], timeout: float, what: str = "") -> float:
        """Until exactly ``hosts`` run the service; returns when (wall time)."""
        self._wait(lambda: self.probe.running() == frozenset(hosts), timeout,
                   what or f"the service running on exactly {sorted(hosts)}")
        return time.time()

    def wait_settled(self, node: str = A, timeout: float = 20) -> float:
        """Until the service runs on ``node`` only and its valet has taken it as ACTIVE."""
        self.wait_running({node}, timeout)
        self.wait_log(node, "-> ACTIVE", timeout)
        return time.time()

    def wait_log(self, node: str, text: str, timeout: float) -> None:
        self._wait(lambda: text in self.log(node), timeout, f"{node} logs {text!r}")

    def kill_service(self, host: str) -> float:
        pid = self.probe.pid(host)
        if pid is None:
            raise ProcessLookupError(f"no sample service of this pair on {host}")
        at = time.time()
        os.kill(pid, signal.SIGKILL)
        self.killed[pid] = at
        return at

    def service_intervals(self, host: str) -> list[Interval]:
        return journal_intervals(self.state, host, until=time.time(), killed=self.killed)

    def valet_intervals(self, host: str) -> list[Interval]:
        return log_intervals(self.log(host), PROCESS, host, until=time.time())

    def overlaps(self) -> tuple[float, float, float]:
        """Seconds of two running: (by the services' journals, by the valets' logs, by the sampler)."""
        now = time.time()
        return (overlap(self.service_intervals(A), self.service_intervals(B), until=now),
                overlap(self.valet_intervals(A), self.valet_intervals(B), until=now),
                self.sampler.double_seconds())

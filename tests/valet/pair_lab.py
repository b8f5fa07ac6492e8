"""A per-host valet pair for the tests: two namespace hosts, a real ``python -m HaValet`` in each, the sample
service as the process, optionally a real ``python -m FailoverWitness`` in the lab's client namespace, and a
sampler that records which host runs the service every 20 ms. Everything started is ended by PID.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from labs import importable_env
from labs.valet import CLIENT_ADDRESS, NetnsLab
from labs.valet_pair import WITNESS_SECRET, Interval, journal_intervals, log_intervals, overlap, pair_cfg
from labs.witness import WitnessProcess

from .helpers import PY, pid_alive, wait_until

A, B = "10.99.0.1", "10.99.0.2"
PROCESS = "Web"


class Sampler(threading.Thread):
    """Which hosts run the service (a live pid in its pid file), every ``every`` seconds, with wall times."""

    def __init__(self, state_dir: Path, hosts: tuple[str, ...], every: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.state_dir, self.hosts, self.every = state_dir, hosts, every
        self.samples: list[tuple[float, frozenset[str]]] = []
        self._halt = threading.Event()

    def running(self) -> frozenset[str]:
        out = set()
        for h in self.hosts:
            with contextlib.suppress(OSError, ValueError):
                if pid_alive(int((self.state_dir / f"{h}.pid").read_text().strip())):
                    out.add(h)
        return frozenset(out)

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
    def __init__(self, tmp: Path, *, witness: bool, **cfg: Any) -> None:
        self.tmp = tmp
        self.state = tmp / "state"
        self.state.mkdir(parents=True)
        self.lab = NetnsLab(2, tag="hp")
        self.witness_wanted = witness
        self.cfg_args = cfg
        self.valets: dict[str, subprocess.Popen[bytes]] = {}
        self.witness: WitnessProcess | None = None
        self.killed: dict[int, float] = {}  # service pid -> when a test SIGKILLed it
        self.sampler = Sampler(self.state, (A, B))
        self._logs: list[Any] = []

    # -------------------------------------------------------------- set-up and teardown
    def __enter__(self) -> ValetPair:
        self.lab.setup()
        try:
            if self.witness_wanted:
                self.start_witness()
            for node in (A, B):
                self.start_valet(node)
            self.sampler.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End everything this pair started, each step on its own (one failing does not skip the others)."""
        steps = [self.sampler.stop] if self.sampler.is_alive() else []
        steps += [lambda node=node: self.stop_valet(node) for node in list(self.valets)]
        if self.witness is not None:
            steps.append(self.witness.stop)
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
        for pid_file in self.state.glob("*.pid"):
            with contextlib.suppress(ValueError, OSError, ProcessLookupError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)

    @property
    def witness_url(self) -> str | None:
        return None if self.witness is None else self.witness.url

    def start_witness(self) -> None:
        """A real ``python -m FailoverWitness`` in the lab's client namespace, one group per process with the
        valets' timeout (the witness calls a valet down after it; the valets' leases end earlier)."""
        group = {"secret": WITNESS_SECRET, "timeout": self.cfg_args.get("heartbeat_timeout", 1.0),
                 "heartbeat_interval": self.cfg_args.get("heartbeat_interval", 0.25)}
        self.witness = WitnessProcess(self.tmp / "witness", {PROCESS: group}, listen=CLIENT_ADDRESS,
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
        return self.log_path(node).read_text(errors="replace")

    def diagnostics(self) -> str:
        out = [f"--- running now: {sorted(self.sampler.running())}"]
        for node in (A, B):
            out.append(f"--- valet {node} ---\n{self.log(node)[-5000:]}")
        if self.witness_wanted:
            out.append(f"--- witness ---\n{self.witness.log_text()[-2000:] if self.witness else ''}")
        return "\n".join(out)

    def wait_running(self, hosts: set[str], timeout: float, what: str = "") -> float:
        """Until exactly ``hosts`` run the service; returns when (wall time)."""
        wait_until(lambda: self.sampler.running() == frozenset(hosts), timeout,
                   what or f"the service running on exactly {sorted(hosts)}", self.diagnostics)
        return time.time()

    def wait_settled(self, node: str = A, timeout: float = 20) -> float:
        """Until the service runs on ``node`` only and its valet has taken it as ACTIVE."""
        self.wait_running({node}, timeout)
        self.wait_log(node, "-> ACTIVE", timeout)
        return time.time()

    def wait_log(self, node: str, text: str, timeout: float) -> None:
        wait_until(lambda: text in self.log(node), timeout, f"{node} logs {text!r}", self.diagnostics)

    def kill_service(self, host: str) -> float:
        pid = int((self.state / f"{host}.pid").read_text().strip())
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

"""The HaValet chaos driver: per-host mode, a ``python -m HaValet`` in each of two namespace hosts.

Default bed (``ValetChaosConfig``): hosts ``a`` (10.99.0.1, the primary) and ``b`` (10.99.0.2), each valet testing,
starting and stopping the sample service (``labs.valet_service``) on its own host; standard mode adds a real
``python -m FailoverWitness`` (node ``witness``, the lab's client namespace, a fixed port so it comes back where the
valets look). Timing: test interval 0.25 s, heartbeat 0.25 s, stop_timeout 2 s (S = 2.5 s), T = 3.5 s with the
witness (lease 0.643 s), 1 s in simple mode; failback_delay 0, the keeper on. A config file (JSON or TOML) may
change these, the mode, and the allowances of the promise.

Who is active: the hosts whose sample service runs: the pid in ``STATE/<host>.pid`` is alive, not a zombie, and is
the service of this bed (its cmdline, read once per pid): two small file reads per host and sample.

Faults: crash = SIGKILL of the valet (its keeper stops the service), a new valet at the heal; freeze = SIGSTOP of
the valet (its keeper fences at the lease's end), SIGCONT at the heal; clean_stop = SIGTERM (it hands over), a new
valet at the heal (the fault's end record says how long the old one took to exit: ``valet_exit_s``);
cut_one_way = iptables ``OUTPUT -d PEER`` in the target's namespace (what the target sends to the peer is lost),
cut_both = and ``INPUT -s PEER``, the peer another host or the witness; witness_down = SIGKILL of the
witness, started again (same port) at the heal; daemon_kill = SIGKILL of the service process itself (the valet
restarts it or the pair fails over; nothing to heal); node_restart = SIGKILL of every process in the host's
namespace (valet, keeper, service, commands: the host crashed), a new valet at the heal; delay = what the host
sends is held D ms (+- J) by a labs.delayer on an NFQUEUE, D + J <= ``grey_delay_s`` (labs.chaos.grey: half of
the lease - heartbeat with the witness, of T - heartbeat in simple mode); dup = a share of what it sends to the
other host and the witness arrives twice (TEE). ``close`` ends every process (delayers too) by PID and deletes
the namespaces (their iptables rules with them), also after a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from failover_core.fencing import FencingTiming
from labs.chaos.bed_config import BedConfig
from labs.chaos.checker import Promise
from labs.chaos.grey import GreyFaults, tolerance
from labs.chaos.schedule import GREY_KINDS, Fault, FaultKind
from labs.valet import CLIENT_ADDRESS
from labs.valet_pair_lab import A, B, ValetPair, pid_alive

K = FaultKind
WITNESS = "witness"
WITNESS_PORT = 8792
HOSTS = {"a": A, "b": B}


class ValetChaosConfig(BedConfig):
    """The valet pair's timing and the allowances the promise adds to it (seconds)."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["standard", "simple"] = "standard"
    interval: float = Field(default=0.25, gt=0, description="test period of each valet")
    heartbeat_interval: float = Field(default=0.25, gt=0)
    heartbeat_timeout: float | None = Field(default=None, gt=0, description="T; default 3.5 standard, 1.0 simple")
    stop_timeout: float = Field(default=2.0, gt=0)
    failback_delay: float = Field(default=0.0, ge=0)
    command: float = Field(default=0.75, gt=0, description="allowance for one start or stop of the sample service")
    startup: float = Field(default=2.5, ge=0, description="a new valet process's start-up allowance")
    slack: float = Field(default=0.5, ge=0, description="added to each bound: sampling, applying, scheduling")
    sample_period: float = Field(default=0.02, gt=0, le=0.05)

    @property
    def timeout(self) -> float:
        if self.heartbeat_timeout is not None:
            return self.heartbeat_timeout
        return 3.5 if self.mode == "standard" else 1.0

    @model_validator(mode="after")
    def _timing(self) -> ValetChaosConfig:
        if self.heartbeat_interval >= self.timeout:
            raise ValueError("heartbeat_interval must be < heartbeat_timeout")
        if self.mode == "standard":
            try:
                problem = FencingTiming(timeout=self.timeout, stop_bound=self.stop_timeout + 0.5).lease_problem(
                    self.heartbeat_interval)
            except Exception as e:  # no lease at all
                raise ValueError(str(e)) from None
            if problem is not None and problem[0] == "error":
                raise ValueError(problem[1])
        return self


class ValetDriver:
    system = "valet"
    supported = frozenset({K.CRASH, K.FREEZE, K.CLEAN_STOP, K.CUT_ONE_WAY, K.CUT_BOTH, K.LOSS, K.DELAY, K.DUP,
                           K.WITNESS_DOWN, K.DAEMON_KILL, K.NODE_RESTART, K.OVERLAP})
    # the service is killed at once and nothing is healed: a short window keeps its restart measured on its own
    durations = {K.DAEMON_KILL: (0.1, 0.5)}

    def __init__(self, config: ValetChaosConfig | None = None, workdir: Path | None = None) -> None:
        self.cfg = config or ValetChaosConfig()
        self.standard = self.cfg.mode == "standard"
        if not self.standard:
            self.supported = self.supported - {K.WITNESS_DOWN}
        self.nodes = list(HOSTS)
        self.cut_peers = [*self.nodes, WITNESS] if self.standard else list(self.nodes)
        self.sample_period = self.cfg.sample_period
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="chaos-valet-"))
        c = self.cfg
        extra = f"failback_delay = {c.failback_delay:g}\n"
        self.pair = ValetPair(self.workdir / "bed", witness=self.standard, witness_port=WITNESS_PORT, sample=False,
                              tag="cv", interval=c.interval, heartbeat_interval=c.heartbeat_interval,
                              heartbeat_timeout=c.timeout, stop_timeout=c.stop_timeout, extra=extra)
        self.frozen: set[str] = set()
        self.leaving: dict[str, _Leaving] = {}  # clean_stop: SIGTERMed valets, reaped at the heal
        self.costs: dict[str, float] = {}
        self.grey = GreyFaults()

    # -- timing ----------------------------------------------------------------------------------
    def _bounds(self) -> dict[str, float]:
        c = self.cfg
        return {"takeover": c.timeout + c.command + c.slack,  # T after the silence, then the start
                "handover": c.heartbeat_interval + 2 * c.command + c.slack,  # stop here, goodbye, start there
                "restart": c.interval + 2 * c.command + c.slack,  # the test finds it down, then the start
                "heal": c.heartbeat_interval + c.command + c.slack,  # a heartbeat, then a stop (simple mode)
                "failback": 2 * c.heartbeat_interval + c.command + c.slack}  # the stop heard, then the start

    @property
    def grey_delay_s(self) -> float:
        """The largest delay + jitter a delay fault draws: half of what a delay can add to the silence before
        anyone acts: with the witness the active's lease (its newest acknowledged heartbeat ages by the delay)
        less a heartbeat; simple mode T less a heartbeat."""
        c = self.cfg
        limit = (FencingTiming(timeout=c.timeout, stop_bound=c.stop_timeout + 0.5).lease if self.standard
                 else c.timeout)
        return round(tolerance(limit, c.heartbeat_interval) / 2, 4)

    @property
    def settle(self) -> float:
        return round(self.promise().recovery_s + 0.5, 3)

    def promise(self) -> Promise:
        c, b = self.cfg, self._bounds()
        takeover = round(b["takeover"], 4)
        return Promise(
            system="valet", mode=f"{c.mode} T {c.timeout:g} s",
            double_allowed=set() if self.standard else {K.CUT_ONE_WAY, K.CUT_BOTH, K.LOSS, K.FREEZE},
            liveness_waived={K.LOSS}, heal_allowance={K.LOSS: takeover}, steady=set(GREY_KINDS),
            # simple mode: the keeper has no lease, so a frozen valet's service keeps serving; the other host's
            # start is the allowed double until the heal (+ heal_bound): there is nothing to take over
            takeover_bound={K.CRASH: takeover, K.NODE_RESTART: takeover, **({K.FREEZE: takeover} if self.standard
                                                                            else {}),
                            K.CLEAN_STOP: round(b["handover"], 4), K.DAEMON_KILL: round(b["restart"], 4)},
            heal_bound=round(b["heal"], 4),
            handover_grace=0.0,
            nobody_grace=round(b["failback"], 4),
            # after a heal: a new valet starts (or the other host's takeover, due by T + start after the fault's
            # start, comes late), then the primary takes the process back
            recovery=round(max(c.startup, takeover) + b["failback"], 4),
            why="docs/valet.md per-host mode: the other host takes over T after the active went silent, plus its "
                "start (+ 0.5 s); a clean stop hands over at once; a killed service is restarted after a test; "
                + ("with a witness never two running under any single fault (the active fences at its lease's end, "
                   "its keeper when the valet is dead or frozen)" if self.standard else
                   "simple mode: two running while the valets cannot hear each other (a cut, a frozen valet), "
                   "until a heartbeat and a stop after the heal")
                + "; a delay up to half of (" + ("lease" if self.standard else "T") + " - heartbeat) and "
                "duplication change nothing; a returning primary takes the process back (failback: a short planned "
                "gap)")

    def describe(self) -> dict[str, Any]:
        return {"config": self.cfg.model_dump(), "prefix": self.pair.lab.prefix, "hosts": HOSTS,
                "witness": f"{CLIENT_ADDRESS}:{WITNESS_PORT}" if self.standard else None,
                "workdir": str(self.workdir), "grey_delay_s": self.grey_delay_s, "probe_costs": self.costs}

    # -- bed -------------------------------------------------------------------------------------
    def start(self) -> None:
        self.pair.__enter__()
        self.pair.wait_settled(A, timeout=30)
        # both valets past their start-up: B's status file names the process, A's says ACTIVE
        self.pair._wait(lambda: (self.pair.tmp / f"{B}.status.json").exists(), 30, "b's valet status file")
        self._measure_probe()

    def _measure_probe(self) -> None:
        times = []
        for _ in range(20):
            t = time.monotonic()
            self.probe()
            times.append(time.monotonic() - t)
        self.costs = {"probe_min_s": round(min(times), 6), "probe_max_s": round(max(times), 6)}

    def probe(self) -> dict[str, Any]:
        running = self.pair.probe.running()
        return {"active": [n for n, addr in HOSTS.items() if addr in running]}

    # -- faults ----------------------------------------------------------------------------------
    def _other(self, name: str) -> str:
        return CLIENT_ADDRESS if name == WITNESS else HOSTS[name]

    def apply(self, fault: Fault, target: str, peer: str | None) -> dict[str, Any]:
        k, p = fault.kind, self.pair
        if k is K.WITNESS_DOWN:
            assert p.witness is not None and p.witness.proc is not None
            pid = p.witness.proc.pid
            p.witness.stop(signal.SIGKILL)
            return {"pid": pid}
        addr = HOSTS[target]
        if k is K.CRASH:
            pid = p.valets[addr].pid
            p.kill_valet(addr)
            return {"pid": pid}
        if k is K.FREEZE:
            self.frozen.add(addr)
            p.freeze_valet(addr)
            return {"pid": p.valets[addr].pid}
        if k is K.CLEAN_STOP:
            proc = p.valets.pop(addr)
            proc.send_signal(signal.SIGTERM)
            self.leaving[addr] = _Leaving(proc)
            return {"pid": proc.pid}
        if k in (K.CUT_ONE_WAY, K.CUT_BOTH):
            assert peer is not None
            p.lab.net.block(addr, self._other(peer), inbound=k is K.CUT_BOTH, outbound=True)
            return {}
        if k is K.LOSS:
            p.lab.net.lose(addr, fault.params["loss_pct"])
            return {}
        if k in GREY_KINDS:
            return self.grey.apply(p.lab.net, fault, addr, self.grey_delay_s)
        if k is K.DAEMON_KILL:
            pid = p.probe.pid(addr)
            if pid is None or not pid_alive(pid):
                return {"pid": None, "why": "no service running there"}
            os.kill(pid, signal.SIGKILL)
            p.killed[pid] = time.time()
            return {"pid": pid}
        if k is K.NODE_RESTART:
            valet = p.valets.pop(addr)
            pids = p.host_pids(addr)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            valet.wait(5)
            return {"pids": pids}
        raise ValueError(f"valet driver cannot apply {k}")

    def heal(self, fault: Fault, target: str, peer: str | None) -> dict[str, Any] | None:
        k, p = fault.kind, self.pair
        if k is K.WITNESS_DOWN:
            p.start_witness()
            return None
        addr = HOSTS[target]
        if k in GREY_KINDS:
            return self.grey.heal(p.lab.net, fault, addr)
        info: dict[str, Any] | None = None
        if k is K.CLEAN_STOP:
            # how long the SIGTERMed valet took to exit, in the fault's end record: a valet still there at the heal
            # delays its successor (and the failback) by as long as it is waited for here
            info = self.leaving.pop(addr).reap(self.cfg.stop_timeout + 5)
        if k in (K.CRASH, K.CLEAN_STOP, K.NODE_RESTART):
            p.start_valet(addr)
        elif k is K.FREEZE:
            p.freeze_valet(addr, frozen=False)
            self.frozen.discard(addr)
        elif k in (K.CUT_ONE_WAY, K.CUT_BOTH):
            assert peer is not None
            p.lab.net.block(addr, self._other(peer), on=False, inbound=k is K.CUT_BOTH, outbound=True)
        elif k is K.LOSS:
            p.lab.net.lose(addr, fault.params["loss_pct"], on=False)
        return info

    def close(self) -> None:
        for addr in list(self.frozen):
            with contextlib.suppress(Exception):
                self.pair.freeze_valet(addr, frozen=False)
        self.frozen.clear()
        for leaving in self.leaving.values():
            with contextlib.suppress(Exception):
                leaving.proc.kill()
                leaving.proc.wait(5)
        self.leaving.clear()
        self.grey.close()  # delayers by PID
        with contextlib.suppress(Exception):
            self.pair.close()  # ends every valet, keeper, service and the witness by PID, deletes the namespaces

    def keep_logs(self, into: Path) -> None:
        """Copy each valet's log (its keeper's lines included) and the witness's into ``into``."""
        into.mkdir(parents=True, exist_ok=True)
        for name, addr in HOSTS.items():
            src = self.pair.log_path(addr)
            if src.exists():
                shutil.copyfile(src, into / f"valet-{name}.log")
        witness = getattr(self.pair.witness, "log", None)
        if isinstance(witness, Path) and witness.exists():
            shutil.copyfile(witness, into / "witness.log")

    def leftovers(self) -> list[str]:
        """What of this bed still exists (for tests: nothing after close): namespaces and processes whose
        command line names the bed's directory."""
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        left = [line.split()[0] for line in out.splitlines() if line.startswith(self.pair.lab.prefix)]
        bed = str(self.pair.tmp)
        for d in Path("/proc").iterdir():
            if d.name.isdigit() and int(d.name) != os.getpid():
                with contextlib.suppress(OSError):
                    cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    if bed in cmd and pid_alive(int(d.name)):
                        left.append(f"pid {d.name}: {cmd[:120]}")
        return left


class _Leaving:
    """A SIGTERMed valet (clean_stop): a thread notes when it exited, the heal reaps it."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc, self.sent = proc, time.monotonic()
        self.exited_at: float | None = None
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        with contextlib.suppress(Exception):
            self.proc.wait()
            self.exited_at = time.monotonic()

    def reap(self, timeout: float) -> dict[str, Any]:
        """Wait up to ``timeout`` s more, SIGKILL if still there; returns the figures for the fault's end record."""
        killed = False
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            killed = True
            self.proc.kill()
            self.proc.wait(5)
        at = self.exited_at or time.monotonic()
        return {"valet_exit_s": round(at - self.sent, 3), **({"valet_killed": True} if killed else {})}

"""The DockerFailover chaos driver: two real dockerd hosts and the standalone witness, in a labs.docker TwoHostLab.

Default bed (``DockerChaosConfig``): hosts ``a`` (server1, preferred) and ``b`` (server2), each a network namespace
with its own dockerd and a DockerFailover agent (``python -m DockerFailover``), the managed container ``web``
(the lab's busybox httpd image, built locally, created stopped on both hosts with ``--init`` and restart
policy ``no``), and in standard mode (the default) the witness (``python -m FailoverWitness``) in namespace ``w``;
the lab's timings: heartbeat 0.2 s, ``heartbeat_timeout`` T = 1.5 s (standard) or 1.0 s (simple), kill bound
0.5 s. A config file (JSON or TOML) may choose ``mode: simple`` (no witness), change the heartbeat, the timeout,
the kill bound, add agent config keys (``agent``), and the slack of the bounds.

Who is active: the hosts whose ``web`` container has a process, read from the container's cgroup
(``/sys/fs/cgroup/pids/docker/<id>/cgroup.procs`` on this cgroup-v1 machine, ``.../docker/<id>/`` on v2):
one small file read per host per sample (~25 us), independent of dockerd (a killed daemon leaves its container
running: still active). Measured at start and kept in the meta line: ``docker inspect`` through the SDK
~1 ms a call, an HTTP GET of the service ~1.5 ms, the cgroup read ~0.03 ms.

Faults (targets: ``a``/``b`` for the agents' and hosts' faults; cuts between any two of ``a``, ``b``, ``w``):
crash = SIGKILL of the host's agent (in standard mode its fence keeper sees end-of-file and kills the
container), started again at the heal; freeze = SIGSTOP of the agent (or of the witness), SIGCONT at the heal;
clean_stop = SIGTERM of the agent (an active hands over), started again; cut_one_way = iptables in the
peer's namespace drops what the target sends it; cut_both = both directions; witness_down = SIGKILL of the
witness, started again (it answers UNKNOWN for T after a start); daemon_kill = SIGKILL of the host's dockerd
(its containerd, shim and container live on), started again at the heal (and waited for: without
live-restore the new daemon kills the orphaned container while it starts, so the service moves then);
node_restart = every process of the host at once (agent, fence keeper, dockerd, containerd, shims, the
container's processes) SIGKILLed; at the heal dockerd and then the agent are started again (the
namespace, the data root and the term file survive, as a disk does); delay = what the host (or the witness)
sends is held D ms (+- J) by a labs.delayer on an NFQUEUE, D + J <= ``grey_delay_s`` (labs.chaos.grey: half of
the lease - heartbeat in standard mode, of T - heartbeat in simple mode); dup = a share of what it sends to the
other nodes arrives twice (TEE).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field

from failover_core.fencing import FencingTiming
from labs.chaos.bed_config import BedConfig
from labs.chaos.checker import Promise
from labs.chaos.grey import GreyFaults, tolerance
from labs.chaos.schedule import GREY_KINDS, Fault, FaultKind
from labs.docker import HB_INTERVAL, HB_TIMEOUT, KILL_BOUND, STANDARD_HB_TIMEOUT, TwoHostLab, wait_until

K = FaultKind
HOSTS = ["a", "b"]
WITNESS = "w"
CGROUP_DIRS = ("/sys/fs/cgroup/pids/docker", "/sys/fs/cgroup/docker", "/sys/fs/cgroup/unified/docker")


class DockerChaosConfig(BedConfig):
    """The DockerFailover bed's mode and timings, and the slack allowed on the documented bounds."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["standard", "simple"] = "standard"
    heartbeat_interval: float = Field(default=HB_INTERVAL, gt=0)
    heartbeat_timeout: float | None = Field(default=None, gt=0, description="default: 1.5 s standard, 1.0 s simple")
    kill_bound: float = Field(default=KILL_BOUND, gt=0)
    agent: dict[str, Any] = Field(default_factory=dict, description="extra keys for the agents' config.py")
    start_allowance: float | None = Field(default=None, gt=0, description="the container start in the bound; "
                                          "default: measured on the bed before the run (the slowest of 4)")
    slack: float = Field(default=0.15, ge=0, description="added to each bound: sampling, applying the fault")
    dockerd_start: float = Field(default=2.0, gt=0, description="a restarted dockerd answers within this "
                                 "(measured 0.8-1.1 s on the loaded 2-core VM)")
    sample_period: float = Field(default=0.02, gt=0, le=0.05)

    @property
    def timeout(self) -> float:
        if self.heartbeat_timeout is not None:
            return self.heartbeat_timeout
        return STANDARD_HB_TIMEOUT if self.mode == "standard" else HB_TIMEOUT


def _pids_of(marker: str) -> list[int]:
    """Processes whose command line contains ``marker`` (this host's directory: its containerd and shims)."""
    me, out = os.getpid(), []
    needle = marker.encode()
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != me:
            with contextlib.suppress(OSError), open(f"/proc/{d}/cmdline", "rb") as f:
                if needle in f.read():
                    out.append(int(d))
    return out


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{d}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d))
    return out


class DockerDriver:
    system = "docker"
    supported = frozenset({K.CRASH, K.FREEZE, K.CLEAN_STOP, K.CUT_ONE_WAY, K.CUT_BOTH, K.LOSS, K.DELAY, K.DUP,
                           K.WITNESS_DOWN, K.DAEMON_KILL, K.NODE_RESTART, K.OVERLAP})

    def __init__(self, config: DockerChaosConfig | None = None) -> None:
        self.cfg = config or DockerChaosConfig()
        self.standard = self.cfg.mode == "standard"
        if not self.standard:
            self.supported = self.supported - {K.WITNESS_DOWN}
        self.nodes = [*HOSTS, *([WITNESS] if self.standard else [])]
        self.sample_period = self.cfg.sample_period
        self.lab = TwoHostLab()
        self.config_path: Path | None = None
        self.cgroups: dict[str, Path] = {}
        self.frozen: set[str] = set()
        self.costs: dict[str, float] = {}
        self.start_costs: list[float] = []
        self.started = False
        self.grey = GreyFaults()

    # -- timing ----------------------------------------------------------------------------------
    @property
    def start_allowance(self) -> float:
        if self.cfg.start_allowance is not None:
            return self.cfg.start_allowance
        return max(self.start_costs, default=0.45)

    @property
    def settle(self) -> float:
        """After each heal: a restarted agent's start-up (python, its keeper), then a heartbeat timeout, a start."""
        return round(2.0 + self.cfg.timeout + self.start_allowance + 0.5, 3)

    @property
    def grey_delay_s(self) -> float:
        """The largest delay + jitter a delay fault draws: half of what a delay can add to the silence before
        anyone acts: standard mode, the active's lease (its newest acknowledged heartbeat ages by the delay)
        less a heartbeat; simple mode, T less a heartbeat."""
        c = self.cfg
        limit = (FencingTiming(timeout=c.timeout, stop_bound=c.kill_bound).lease if self.standard else c.timeout)
        return round(tolerance(limit, c.heartbeat_interval) / 2, 4)

    def takeover_s(self) -> float:
        """The documented bound: T + the container start + 0.5 s (+ slack)."""
        return round(self.cfg.timeout + self.start_allowance + 0.5 + self.cfg.slack, 4)

    def promise(self) -> Promise:
        c, bound = self.cfg, self.takeover_s()
        takeover = {K.CRASH: bound, K.FREEZE: bound, K.CLEAN_STOP: bound, K.NODE_RESTART: bound}
        heal = round(c.heartbeat_interval + c.slack, 4)
        # docs/docker.md: a killed dockerd changes nothing while it is down; Docker's default (no live-restore)
        # kills the orphaned container when the daemon starts again, and the agents fail over as for a dead
        # container: by the daemon's start + the takeover bound
        moves = {K.DAEMON_KILL: round(c.dockerd_start + bound, 4)}
        if self.standard:
            return Promise(
                system="docker", mode=f"standard (witness), T {c.timeout:g} s, heartbeat {c.heartbeat_interval:g} s",
                double_allowed=set(), takeover_bound=takeover, heal_bound=heal, heal_moves=moves,
                liveness_waived={K.LOSS}, heal_allowance={K.LOSS: bound}, steady=set(GREY_KINDS),
                handover_grace=round(2 * c.sample_period, 4), recovery=round(self.settle - 0.5, 4),
                why="docs/docker.md, standard mode: the active's lease (T - fencing margin) runs out and it (or its "
                    "fence keeper) kills the container before the passive, after T of silence and the witness's "
                    "confirmation, starts it: never two; a takeover within T + start + 0.5 s; a cut between two of "
                    "the three, the witness down, a killed dockerd, a delay up to half of (lease - heartbeat), "
                    "duplication change nothing")
        # simple mode: a killed or frozen agent's container runs on (no keeper), so there is no gap to bound:
        # the peer starts beside it (allowed) and the single active is judged at the heal
        takeover = {K.CLEAN_STOP: bound, K.NODE_RESTART: bound}
        return Promise(
            system="docker", mode=f"simple (no witness), T {c.timeout:g} s, heartbeat {c.heartbeat_interval:g} s",
            double_allowed={K.CUT_ONE_WAY, K.CUT_BOTH, K.LOSS, K.CRASH, K.FREEZE}, takeover_bound=takeover,
            heal_moves=moves, liveness_waived={K.LOSS}, heal_allowance={K.LOSS: bound}, steady=set(GREY_KINDS),
            heal_bound=round(heal + c.agent.get("stop_timeout", 2) + 0.5, 4),
            handover_grace=round(2 * c.sample_period, 4), recovery=round(self.settle - 0.5, 4),
            why="docs/docker.md, simple mode: a cut link gives two actives until it heals (the lower term steps "
                "down at the next heartbeat and stops its container); a killed (or frozen past T) agent leaves "
                "its container running beside the peer's until it is back; a delay up to half of (T - heartbeat) and "
                "duplication change nothing")

    def targets_for(self, kind: FaultKind) -> list[str]:
        if kind in (K.CUT_ONE_WAY, K.CUT_BOTH, K.LOSS, K.DELAY, K.DUP):
            return list(self.nodes)
        if kind is K.FREEZE and self.standard:
            return [*HOSTS, WITNESS]
        if kind is K.WITNESS_DOWN:
            return [WITNESS]
        return list(HOSTS)

    def describe(self) -> dict[str, Any]:
        return {"config": self.cfg.model_dump(), "run_id": self.lab.run_id, "timeout": self.cfg.timeout,
                "grey_delay_s": self.grey_delay_s,
                "start_costs": self.start_costs, "start_allowance": self.start_allowance,
                "cgroups": {k: str(v) for k, v in self.cgroups.items()}, "probe_costs": self.costs}

    # -- bed -------------------------------------------------------------------------------------
    def start(self) -> None:
        self.started = True
        lab = self.lab
        lab.open()
        lab.create_web()
        # the container start, measured here (it is in the takeover bound): started and killed twice per host
        for key in HOSTS:
            c = lab.hosts[key].client
            assert c is not None
            for _ in range(2):
                t = time.monotonic()
                c.api.start("web")
                self.start_costs.append(round(time.monotonic() - t, 3))
                c.api.kill("web")
                c.api.wait("web", timeout=10)
        for key in HOSTS:
            c = lab.hosts[key].client
            assert c is not None
            cid = c.api.inspect_container("web")["Id"]
            found = [Path(d) / cid for d in CGROUP_DIRS if Path(d).is_dir()]
            if not found:
                raise RuntimeError(f"no docker cgroup directory among {CGROUP_DIRS}")
            self.cgroups[key] = found[0] / "cgroup.procs"
        if self.standard:
            lab.start_witness(timeout=self.cfg.timeout)
        overrides = {"heartbeat_interval": self.cfg.heartbeat_interval,
                     "check_heartbeat_interval": self.cfg.heartbeat_interval,
                     "heartbeat_timeout": self.cfg.timeout, **self.cfg.agent}
        self.config_path = lab.write_config(lab.base / "config.py", witness=self.standard, **overrides)
        if self.standard and self.cfg.kill_bound != KILL_BOUND:
            text = self.config_path.read_text()
            self.config_path.write_text(text.replace(f"'kill_bound': {KILL_BOUND!r}",
                                                     f"'kill_bound': {self.cfg.kill_bound!r}"))
        for key in HOSTS:
            lab.start_agent(key, self.config_path)

        def settled() -> bool:
            if (lab.role("a"), lab.role("b")) != ("active", "passive") or self.probe()["active"] != ["a"]:
                return False
            if not self.standard:
                return True
            std = (lab.status("b") or {}).get("standard") or {}
            return (std.get("witness_says_peer") or {}).get("state") == "up"
        wait_until(settled, 40, what="server1 active and running web, server2 passive (and heard at the witness)")
        self._measure_probe()

    def _measure_probe(self) -> None:
        def best(fn: Any, n: int = 5) -> float:
            times = []
            for _ in range(n):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            return round(min(times), 6)

        self.costs = {"sdk_inspect_s": best(lambda: self.lab.container_running("a")),
                      "http_get_s": best(lambda: self.lab.web_answers("a", 0.2)),
                      "cgroup_read_s": best(lambda: self._runs("a")), "probe_s": best(self.probe)}

    def _runs(self, key: str) -> bool:
        try:
            with open(self.cgroups[key], "rb") as f:
                return bool(f.read(64).strip())
        except OSError:  # no cgroup: the container is not running
            return False

    def probe(self) -> dict[str, Any]:
        return {"active": [k for k in HOSTS if self._runs(k)]}

    # -- faults ----------------------------------------------------------------------------------
    def _agent_pid(self, key: str) -> int | None:
        p = self.lab.hosts[key].agent
        return None if p is None or p.poll() is not None else p.pid

    def _pid(self, node: str) -> int | None:
        if node == WITNESS:
            w = self.lab.witness
            return None if w is None or w.poll() is not None else w.pid
        return self._agent_pid(node)

    def _start_agent(self, key: str) -> None:
        assert self.config_path is not None
        self.lab.start_agent(key, self.config_path)

    def _kill_node(self, key: str) -> dict[str, Any]:
        """Every process of host ``key`` SIGKILLed at once: agent, keeper, dockerd, containerd, shims, container."""
        h = self.lab.hosts[key]
        pids: set[int] = set()
        agent = self._agent_pid(key)
        if agent is not None:
            pids.add(agent)
            pids.update(_children(agent))  # the fence keeper (own session, still the agent's child)
        if h.dockerd is not None and h.dockerd.poll() is None:
            pids.add(h.dockerd.pid)
        pids.update(_pids_of(str(h.dir) + "/"))  # containerd, shims (their command lines name the host's dir)
        with contextlib.suppress(OSError):
            pids.update(int(x) for x in self.cgroups[key].read_text().split())
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for p in (h.agent, h.dockerd):
            if p is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(10)
        # the killed containerd's pid file stays (a reboot would empty /run): the heal's restart_dockerd forgets it
        # (labs.docker.forget_dead_containerd), as after a daemon_kill
        return {"killed": len(pids)}

    def apply(self, fault: Fault, target: str, peer: str | None) -> dict[str, Any]:
        k, lab = fault.kind, self.lab
        if k is K.CRASH:
            pid = self._agent_pid(target)
            lab.stop_agent(target, signal.SIGKILL)
            return {"pid": pid}
        if k is K.FREEZE:
            pid = self._pid(target)
            if pid is not None:
                self.frozen.add(target)
                os.kill(pid, signal.SIGSTOP)
            return {"pid": pid}
        if k is K.CLEAN_STOP:
            pid = self._agent_pid(target)
            rc = lab.stop_agent(target, signal.SIGTERM)
            return {"pid": pid, "rc": rc}
        if k in (K.CUT_ONE_WAY, K.CUT_BOTH):
            assert peer is not None
            lab.cut(peer, target, inbound=True, outbound=k is K.CUT_BOTH)
            return {}
        if k is K.LOSS:
            assert lab.net is not None
            lab.net.lose(target, fault.params["loss_pct"])
            return {}
        if k in GREY_KINDS:
            assert lab.net is not None
            return self.grey.apply(lab.net, fault, target, self.grey_delay_s)
        if k is K.WITNESS_DOWN:
            pid = self._pid(WITNESS)
            lab.stop_witness(signal.SIGKILL)
            return {"pid": pid}
        if k is K.DAEMON_KILL:
            h = lab.hosts[target]
            pid = h.dockerd.pid if h.dockerd is not None else None
            lab.kill_dockerd(target)
            return {"pid": pid}
        if k is K.NODE_RESTART:
            return self._kill_node(target)
        raise ValueError(f"docker driver cannot apply {k}")

    def heal(self, fault: Fault, target: str, peer: str | None) -> dict[str, Any] | None:
        k, lab = fault.kind, self.lab
        if k in GREY_KINDS:
            assert lab.net is not None
            return self.grey.heal(lab.net, fault, target)
        if k in (K.CRASH, K.CLEAN_STOP):
            self._start_agent(target)
        elif k is K.FREEZE:
            pid = self._pid(target)
            if pid is not None:
                os.kill(pid, signal.SIGCONT)
            self.frozen.discard(target)
        elif k in (K.CUT_ONE_WAY, K.CUT_BOTH):
            assert peer is not None
            assert lab.net is not None
            lab.net.block(peer, target, on=False, inbound=True, outbound=k is K.CUT_BOTH)
        elif k is K.LOSS:
            assert lab.net is not None
            lab.net.lose(target, fault.params["loss_pct"], on=False)
        elif k is K.WITNESS_DOWN:
            lab.start_witness(timeout=self.cfg.timeout)
        elif k is K.DAEMON_KILL:
            lab.restart_dockerd(target)
        elif k is K.NODE_RESTART:
            lab.restart_dockerd(target)
            self._start_agent(target)
        return None

    def keep_logs(self, into: Path) -> None:
        """Copy each host's agent and dockerd logs and the witness's log into ``into`` (the bed is removed)."""
        into.mkdir(parents=True, exist_ok=True)
        for key, h in self.lab.hosts.items():
            for src in (h.agent_log, h.dir / "dockerd.log"):
                if src is not None and src.exists():
                    shutil.copyfile(src, into / f"{key}-{src.name}")
        if self.lab.witness_log.exists():
            shutil.copyfile(self.lab.witness_log, into / "witness.log")

    def close(self) -> None:
        for node in list(self.frozen):
            with contextlib.suppress(Exception):
                pid = self._pid(node)
                if pid is not None:
                    os.kill(pid, signal.SIGCONT)
        self.frozen.clear()
        self.grey.close()  # delayers by PID
        with contextlib.suppress(Exception):
            self.lab.close()  # agents, witness by PID; containers; daemons; this run's containerd; namespaces, rules

    # -- for tests -------------------------------------------------------------------------------
    def leftovers(self) -> dict[str, list[str]]:
        """What of this run is still there (should be nothing after close)."""
        prefix = f"fdk-{self.lab.run_id}"
        ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
        return {"namespaces": [line.split()[0] for line in ns.splitlines() if line.startswith(prefix)],
                "processes": [str(p) for p in _pids_of(str(self.lab.base))],
                "iptables": [line for line in rules.splitlines() if prefix in line],
                "containers": [str(p.parent) for p in self.cgroups.values() if p.parent.exists()],
                "dir": [str(self.lab.base)] if self.lab.base.exists() else []}

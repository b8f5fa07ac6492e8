"""The VOLTTRON FailoverAgent chaos driver: three real platforms in network namespaces (labs.volttron_cluster).

Default bed (``AgentChaosConfig``): standard mode, ``primary``, ``secondary`` and ``witness`` platforms, each in
its own namespace on one bridge (``Cluster(netns=True)``), heartbeat 1 s, timeout T = 4 s, the stand-in
service agent ``ft.service`` installed (stopped) on primary and secondary, the failover agent ``ft.failover``
on both and the witness agent on the third platform. ``mode: "simple"`` builds the two-platform simple pair.
The build takes about 30 s here (three platforms, five ``vctl install``); it is done once per run.

Who is active: a platform whose process has a live child process (not stopped, not a zombie) with
``AGENT_VIP_IDENTITY=ft.service`` in its environment: the platform starts every agent as its own child,
so one sample reads the platform's ``/proc/PID/task/*/children`` and, per child, its ``stat`` (state,
start time); a child's environment is read once and cached by (pid, start time). A service process that
is stopped (SIGSTOP of the platform) is listed as ``stale``. No vctl per sample (0.3-1 s a call).

Faults (``T`` the timeout; what the docs promise for each, docs/chaos.md has the table):

- ``crash``: ``crash_scope: "platform"`` (default): SIGKILL of the target's platform and every agent it started
  (its process group: a machine dying); heal: the platform started again and its failover (or witness) agent
  ``vctl start``ed. ``"agent"``: SIGKILL of the failover agent's process only; heal: ``vctl start``.
- ``freeze``: ``freeze_scope: "agent"`` (default): SIGSTOP of the failover agent's process, SIGCONT at the heal;
  ``"platform"``: SIGSTOP/SIGCONT of the platform's process group (the service freezes too: the docs' known
  limit, a double-active after the thaw until the secondary hears the primary).
- ``clean_stop``: ``vctl stop`` of the failover (or witness) agent; heal: ``vctl start``.
- ``cut_one_way``: iptables in the target's namespace drops what it sends to the peer (OUTPUT -d peer);
  ``cut_both``: and what it receives from it (INPUT -s peer). Any two of the three platforms.
- ``witness_down``: SIGKILL of the witness platform; heal: started again with its witness agent.
- ``node_restart``: a clean platform shutdown (SIGINT: the platform stops its agents, the service too);
  heal: the platform started again and its failover agent ``vctl start``ed (agents do not auto-start).
- ``loss``: iptables ``statistic`` drops that share of what the target sends (any of the three).
- ``delay``: what the target sends is held D ms (+- J) by a labs.delayer on an NFQUEUE, D + J <= ``grey_delay_s``
  (labs.chaos.grey: half of the lease - heartbeat in standard mode, of T - heartbeat in simple mode);
  ``dup``: a share of what it sends to the other platforms arrives twice (TEE). Both must change nothing.
- ``overlap``: two of the above at once (no single-fault promise).

``close`` ends every platform by PID (their process groups), removes the namespaces and the cluster's files,
also after a failure; frozen groups get SIGCONT first.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from failover_agent.config import DEFAULT_STOP_BOUND
from failover_core.fencing import FencingTiming
from labs.chaos.bed_config import BedConfig
from labs.chaos.checker import Promise
from labs.chaos.grey import GreyFaults, tolerance
from labs.chaos.schedule import GREY_KINDS, Fault, FaultKind
from labs.volttron_cluster import FAILOVER, SERVICE, WITNESS, Cluster

K = FaultKind


class AgentChaosConfig(BedConfig):
    """The VOLTTRON bed, which process a crash or freeze hits, and the allowances of the promise."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["standard", "simple"] = "standard"
    heartbeat_period: float = Field(default=1.0, gt=0)
    timeout: float = Field(default=4.0, gt=0, description="T: the passive takes over T after the active's silence")
    crash_scope: Literal["platform", "agent"] = "platform"
    freeze_scope: Literal["agent", "platform"] = "agent"
    start: float = Field(default=1.5, ge=0, description="'start' of the bound T + start + 0.5 s: claim + start_agent")
    restart: float = Field(default=6.0, ge=0, description="a platform's restart with its failover agent, allowance")
    slack: float = Field(default=0.5, ge=0, description="added to the heal bound: sampling, scheduling")
    sample_period: float = Field(default=0.02, gt=0, le=0.05)

    @model_validator(mode="after")
    def _timing(self) -> AgentChaosConfig:
        if self.heartbeat_period >= self.timeout:
            raise ValueError("heartbeat_period must be shorter than timeout")
        return self


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in ticks) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            rest = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return rest[0].decode(), int(rest[19])


class AgentDriver:
    system = "agent"
    supported = frozenset({K.CRASH, K.FREEZE, K.CLEAN_STOP, K.CUT_ONE_WAY, K.CUT_BOTH, K.LOSS, K.DELAY, K.DUP,
                           K.WITNESS_DOWN, K.NODE_RESTART, K.OVERLAP})

    def __init__(self, config: AgentChaosConfig | None = None) -> None:
        self.cfg = config or AgentChaosConfig()
        self.standard = self.cfg.mode == "standard"
        if not self.standard:
            self.supported = self.supported - {K.WITNESS_DOWN}
        self.nodes = ["primary", "secondary", *(["witness"] if self.standard else [])]
        self.sample_period = self.cfg.sample_period
        self.cluster: Cluster | None = None
        self.frozen: dict[str, list[int]] = {}  # node -> pids (or -pgid) stopped by a freeze
        self.costs: dict[str, float] = {}
        self._ident: dict[tuple[int, int], str] = {}  # (pid, start time) -> AGENT_VIP_IDENTITY
        self.build_s = 0.0
        self.grey = GreyFaults()

    # -- timing ----------------------------------------------------------------------------------
    @property
    def takeover(self) -> float:
        """The docs' bound: T + start + 0.5 s after the active went silent."""
        return round(self.cfg.timeout + self.cfg.start + 0.5, 3)

    @property
    def grey_delay_s(self) -> float:
        """The largest delay + jitter a delay fault draws: half of what a delay can add to the silence before
        anyone acts: standard mode, the active's lease (its newest acknowledged heartbeat ages by the delay)
        less a heartbeat; simple mode, T less a heartbeat."""
        c = self.cfg
        limit = (FencingTiming(timeout=c.timeout, stop_bound=DEFAULT_STOP_BOUND).lease if self.standard
                 else c.timeout)
        return round(tolerance(limit, c.heartbeat_period) / 2, 4)

    @property
    def settle(self) -> float:
        """After a heal: a platform restart, the hand-back (a heartbeat or two) and a margin."""
        return round(self.cfg.restart + 2 * self.cfg.heartbeat_period + 1.0, 3)

    def promise(self) -> Promise:
        c = self.cfg
        silent = {K.CRASH, K.FREEZE, K.CLEAN_STOP, K.NODE_RESTART}
        # a heal that restarts a platform or an agent takes that long before the node can act (measured 2-6 s)
        restarted = {K.CRASH, K.CLEAN_STOP, K.NODE_RESTART, K.WITNESS_DOWN}
        common = {"takeover_bound": dict.fromkeys(silent, self.takeover),
                  "heal_allowance": {**dict.fromkeys(restarted, c.restart), K.LOSS: self.takeover},
                  "liveness_waived": {K.LOSS}, "steady": set(GREY_KINDS),
                  "heal_bound": round(c.heartbeat_period + c.slack, 3), "handover_grace": 0.0,
                  "recovery": round(c.restart + self.takeover, 3)}
        if self.standard:
            allowed = {K.FREEZE} if c.freeze_scope == "platform" else set()
            return Promise(system="agent", mode=f"standard, heartbeat {c.heartbeat_period:g} s, T {c.timeout:g} s",
                           double_allowed=allowed, **common,
                           why="docs/failoveragent.md: with a witness at most one copy runs under any single fault "
                               "(0 s double-active); the passive starts T after the active's silence once the "
                               "witness confirms it, within T + start + 0.5 s; one runner again within about a "
                               "heartbeat after a heal"
                               + ("; known limit: a frozen platform's service resumes at the thaw beside the "
                                  "secondary until it yields" if allowed else ""))
        return Promise(system="agent", mode=f"simple, heartbeat {c.heartbeat_period:g} s, T {c.timeout:g} s",
                       double_allowed={K.CUT_ONE_WAY, K.CUT_BOTH, K.LOSS, K.FREEZE, K.CRASH, K.CLEAN_STOP},
                       **common,
                       why="docs/failoveragent.md: simple mode has no witness: the secondary runs the service "
                           "exactly while the primary (its failover agent) is silent, so a cut or a silent "
                           "primary agent gives two copies until the heal + about a heartbeat")

    def describe(self) -> dict[str, Any]:
        c = self.cluster
        return {"config": self.cfg.model_dump(), "base": str(c.base) if c else None,
                "netns_prefix": c.segment.prefix if c and c.segment else None, "build_s": round(self.build_s, 1),
                "takeover_bound_s": self.takeover, "grey_delay_s": self.grey_delay_s, "probe_costs": self.costs}

    # -- bed -------------------------------------------------------------------------------------
    def start(self) -> None:
        t0 = time.monotonic()
        self.cluster = Cluster(self.cfg.mode, heartbeat_period=self.cfg.heartbeat_period, timeout=self.cfg.timeout,
                               netns=True, prefix="ft-chaos-agent-")
        self.cluster.start()
        deadline = time.monotonic() + 60
        while self.probe()["active"] != ["primary"]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the primary does not run {SERVICE} alone: {self.probe()}")
            time.sleep(0.05)
        self.build_s = time.monotonic() - t0
        self._measure_probe()

    def _measure_probe(self) -> None:
        times = []
        for _ in range(50):
            t = time.perf_counter()
            self.probe()
            times.append(time.perf_counter() - t)
        assert self.cluster is not None
        p = self.cluster.platforms["primary"]
        t = time.perf_counter()
        p.vctl("status", check=False)
        self.costs = {"probe_min_s": round(min(times), 5), "probe_max_s": round(max(times), 5),
                      "vctl_status_s": round(time.perf_counter() - t, 3)}

    def _children(self, node: str) -> list[int]:
        assert self.cluster is not None
        proc = self.cluster.platforms[node].proc
        if proc is None or proc.poll() is not None:
            return []
        kids: list[int] = []
        try:
            for task in os.listdir(f"/proc/{proc.pid}/task"):
                with open(f"/proc/{proc.pid}/task/{task}/children") as f:
                    kids.extend(int(x) for x in f.read().split())
        except OSError:
            return []
        return kids

    def _agents(self, node: str) -> list[tuple[int, str, str]]:
        """(pid, state, AGENT_VIP_IDENTITY) of the platform's agent processes."""
        out = []
        for pid in self._children(node):
            st = _stat(pid)
            if st is None:
                continue
            key = (pid, st[1])
            ident = self._ident.get(key)
            if ident is None:
                try:
                    with open(f"/proc/{pid}/environ", "rb") as f:
                        env = f.read().split(b"\0")
                except OSError:
                    continue
                ident = next((e.split(b"=", 1)[1].decode() for e in env if e.startswith(b"AGENT_VIP_IDENTITY=")),
                             None)
                # only a found identity is cached: between fork and exec the child has the platform's
                # environment (no identity) under the pid and start time it keeps after the exec
                if ident is not None:
                    self._ident[key] = ident
            if ident is not None:
                out.append((pid, st[0], ident))
        return out

    def probe(self) -> dict[str, Any]:
        active, stale = [], []
        for node in ("primary", "secondary"):
            for _pid, state, ident in self._agents(node):
                if ident != SERVICE or state in ("Z", "X"):
                    continue
                (stale if state in ("T", "t") else active).append(node)
                break
        got: dict[str, Any] = {"active": active}
        if stale:
            got["stale"] = stale
        return got

    # -- faults ----------------------------------------------------------------------------------
    def _agent_identity(self, node: str) -> str:
        return WITNESS if node == "witness" else FAILOVER

    def _agent_pid(self, node: str) -> int | None:
        ident = self._agent_identity(node)
        return next((pid for pid, state, i in self._agents(node) if i == ident and state not in ("Z", "X")), None)

    def _platform_up(self, node: str) -> bool:
        assert self.cluster is not None
        return self.cluster.platforms[node].running

    def _vctl_agent(self, node: str, verb: str) -> dict[str, Any]:
        assert self.cluster is not None
        if not self._platform_up(node):
            return {"vctl": verb, "skipped": "platform down"}
        out = self.cluster.platforms[node].vctl(verb, self.cluster.failover[node].uuid, check=False, timeout=60)
        return {"vctl": verb, "out": out.strip()[-200:]}

    def _restart_platform(self, node: str) -> None:
        assert self.cluster is not None
        if not self._platform_up(node):
            self.cluster.restart(node)

    def apply(self, fault: Fault, target: str, peer: str | None) -> dict[str, Any]:
        assert self.cluster is not None
        c, k = self.cluster, fault.kind
        if (k is K.CRASH and self.cfg.crash_scope == "platform") or k is K.WITNESS_DOWN:
            node = "witness" if k is K.WITNESS_DOWN else target
            proc = c.platforms[node].proc
            c.crash(node)
            return {"scope": "platform", "pgid": proc.pid if proc else None}
        if k is K.CRASH:
            pid = self._agent_pid(target)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return {"scope": "agent", "pid": pid}
        if k is K.FREEZE:
            if self.cfg.freeze_scope == "platform":
                proc = c.platforms[target].proc
                if proc is not None and proc.poll() is None:
                    self.frozen[target] = [-proc.pid]
                    os.killpg(proc.pid, signal.SIGSTOP)
                return {"scope": "platform", "pgid": proc.pid if proc else None}
            pid = self._agent_pid(target)
            if pid is not None:
                self.frozen[target] = [pid]
                os.kill(pid, signal.SIGSTOP)
            return {"scope": "agent", "pid": pid}
        if k is K.CLEAN_STOP:
            return self._vctl_agent(target, "stop")
        if k in (K.CUT_ONE_WAY, K.CUT_BOTH):
            assert peer is not None
            c.cut(target, peer, direction="out" if k is K.CUT_ONE_WAY else "both")
            return {}
        if k is K.LOSS:
            assert c.segment is not None
            c.segment.lose(target, fault.params["loss_pct"])
            return {}
        if k in GREY_KINDS:
            assert c.segment is not None
            return self.grey.apply(c.segment, fault, target, self.grey_delay_s)
        if k is K.NODE_RESTART:
            if self._platform_up(target):
                c.shutdown(target)
            return {}
        raise ValueError(f"agent driver cannot apply {k}")

    def _thaw(self, node: str) -> None:
        for pid in self.frozen.pop(node, []):
            with contextlib.suppress(ProcessLookupError):
                if pid < 0:
                    os.killpg(-pid, signal.SIGCONT)
                else:
                    os.kill(pid, signal.SIGCONT)

    def heal(self, fault: Fault, target: str, peer: str | None) -> dict[str, Any] | None:
        assert self.cluster is not None
        k = fault.kind
        if k in GREY_KINDS:
            assert self.cluster.segment is not None
            return self.grey.heal(self.cluster.segment, fault, target)
        if k is K.WITNESS_DOWN:
            self._restart_platform("witness")
        elif k in (K.CRASH, K.NODE_RESTART) and (k is K.NODE_RESTART or self.cfg.crash_scope == "platform"):
            self._restart_platform(target)
        elif k in (K.CRASH, K.CLEAN_STOP):
            self._vctl_agent(target, "start")
        elif k is K.FREEZE:
            self._thaw(target)
        elif k in (K.CUT_ONE_WAY, K.CUT_BOTH):
            assert peer is not None
            self.cluster.heal(target, peer, direction="out" if k is K.CUT_ONE_WAY else "both")
        elif k is K.LOSS:
            assert self.cluster.segment is not None
            self.cluster.segment.lose(target, fault.params["loss_pct"], on=False)
        return None

    def keep_logs(self, into: Path) -> None:
        """Copy each platform's volttron.log and notify log into ``into`` (the bed is removed at close)."""
        if self.cluster is None:
            return
        into.mkdir(parents=True, exist_ok=True)
        for name, platform in self.cluster.platforms.items():
            for src, dst in ((platform.log, f"{name}-volttron.log"), (self.cluster.base / f"notify-{name}.log",
                                                                       f"{name}-notify.log")):
                if src.exists():
                    shutil.copyfile(src, into / dst)

    def close(self) -> None:
        for node in list(self.frozen):
            with contextlib.suppress(Exception):
                self._thaw(node)
        self.grey.close()  # delayers by PID
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.heal_all()
            with contextlib.suppress(Exception):
                self.cluster.close()  # SIGINT each platform (SIGKILL of its group if it hangs), namespaces removed


def leftovers(driver: AgentDriver) -> dict[str, list[str]]:
    """What a run left behind (for tests: all empty after close): namespaces, processes, files."""
    import subprocess

    c = driver.cluster
    if c is None:
        return {}
    prefix = c.segment.prefix if c.segment else "\0"
    ns = [ln.split()[0] for ln in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
          .stdout.splitlines() if ln.startswith(prefix)]
    procs = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:
                if str(c.base).encode() in f.read():
                    procs.append(pid)
    links = [ln for ln in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.splitlines()
             if prefix.replace("-", "") in ln]
    rules = [ln for ln in subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout.splitlines()
             if prefix in ln]
    return {"namespaces": ns, "processes": procs, "links": links, "iptables": rules,
            "files": [str(c.base)] if c.base.exists() else []}

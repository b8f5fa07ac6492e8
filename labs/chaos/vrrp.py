"""The VRRP chaos driver: our routers (python -m VrrpFailover), optionally keepalived, in a labs.vrrp Lab.

Default bed (``VrrpChaosConfig``): routers ``a`` (ours, priority 150) and ``b`` (ours, priority 100), VRRPv3
at 0.1 s, preempt on, VIP 10.99.0.100/24, and a client namespace ``cl`` that pings the VIP. A config file
(JSON or TOML) may change the routers (``impl: keepalived`` makes one a keepalived peer), the interval,
version, preempt, the client, extra keys for our routers' config (``ours``) and the slack of the bounds.

Who is active: the routers' namespaces whose ``eth0`` holds the VIP (one netlink dump per namespace per
sample through a persistent pyroute2 handle) and whose router process is running; a holder whose process
is dead, stopped or still starting is listed as ``stale`` (a SIGKILLed router leaves its VIP behind until a
new one has started and removed it). ``client_ok``: one
ICMP echo from ``cl`` to the VIP per sample on a raw socket, answered within 10 ms.

Faults: crash = SIGKILL (keepalived: its VRRP child too), started again at the heal; freeze = SIGSTOP,
SIGCONT at the heal; clean_stop = SIGTERM (the priority-0 advert), started again at the heal;
cut_one_way = iptables in the peer's namespace drops everything from the target's address (the target's
adverts no longer reach the peer; the peer's still reach the target); loss = iptables ``statistic`` in the
target's namespace drops that share of what it sends on ``eth0`` (a lossy link without sch_netem);
cut_both = both directions: INPUT and OUTPUT rules in the peer's namespace and an INPUT rule in the
target's (adverts are multicast: an ``OUTPUT -d TARGET`` rule does not stop the peer's adverts reaching
the target); delay = what the target sends is held D ms (+- J) by a labs.delayer on an NFQUEUE (labs.chaos.grey;
D + J <= ``grey_delay_s``, half of Master_Down_Interval - advert interval); dup = a share of what it sends (its
adverts too: a copy to each other router's MAC) arrives twice (TEE); netem_loss / netem_delay / netem_dup =
``tc qdisc add dev eth0 root netem ...`` in the target's namespace (its egress). Namespaces (and with them every
iptables rule and qdisc) are deleted and every process (delayers too) ended by PID in ``close``, also after a
failure.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pyroute2 import IPRoute

from labs.chaos.bed_config import BedConfig
from labs.chaos.checker import Promise
from labs.chaos.grey import GreyFaults, tolerance
from labs.chaos.schedule import GREY_KINDS, Fault, FaultKind
from labs.netns import run as run_cmd
from labs.vrrp import VIP, Lab, RouterProcess, keepalived_config, ours_config, wait_for
from VrrpFailover.machine import LOWER_PRIO_GARP_SPACING, master_down_interval, skew_time

K = FaultKind
CLIENT = "cl"


class RouterSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = Field(pattern=r"^[a-z][a-z0-9]{0,5}$")
    impl: Literal["ours", "keepalived"] = "ours"
    priority: int = Field(default=100, ge=1, le=254)


class VrrpChaosConfig(BedConfig):
    """The VRRP test bed and the slack allowed on the RFC's timing in the promise."""

    model_config = ConfigDict(extra="forbid")
    routers: list[RouterSpec] = Field(default_factory=lambda: [RouterSpec(host="a", priority=150),
                                                               RouterSpec(host="b", priority=100)],
                                      min_length=2, max_length=3)
    advert_interval: float = Field(default=0.1, gt=0, le=40.95)
    version: Literal[2, 3] = 3
    preempt: bool = True
    client: bool = True
    ours: dict[str, Any] = Field(default_factory=dict, description="extra keys for our routers' config")
    slack: float = Field(default=0.15, ge=0, description="added to each RFC bound: sampling, scheduling")
    startup: float = Field(default=2.0, ge=0, description="a restarted router's start-up allowance")
    sample_period: float = Field(default=0.02, gt=0, le=0.05)

    @model_validator(mode="after")
    def _hosts(self) -> VrrpChaosConfig:
        hosts = [r.host for r in self.routers]
        if len(set(hosts)) != len(hosts) or CLIENT in hosts:
            raise ValueError(f"router hosts must be distinct and not {CLIENT!r}")
        return self


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


class Pinger:
    """One ICMP echo per call from a raw socket made inside the client's namespace."""

    def __init__(self, lab: Lab, host: str, target: str, timeout: float = 0.01) -> None:
        self.sock: socket.socket = lab.in_ns(host, lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW,
                                                                         socket.IPPROTO_ICMP))
        self.target, self.timeout = target, timeout
        self.ident = os.getpid() & 0xFFFF
        self.seq = 0

    def ping(self) -> bool:
        self.seq = (self.seq + 1) & 0xFFFF
        head = struct.pack("!BBHHH", 8, 0, 0, self.ident, self.seq)
        body = b"chaos"
        pkt = struct.pack("!BBHHH", 8, 0, _checksum(head + body), self.ident, self.seq) + body
        self.sock.sendto(pkt, (self.target, 0))
        deadline = time.monotonic() + self.timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(2048)
            except TimeoutError:
                return False
            ihl = (data[0] & 0x0F) * 4
            typ, _code, _ck, ident, seq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if typ == 0 and ident == self.ident and seq == self.seq:
                return True
        return False

    def close(self) -> None:
        self.sock.close()


def _stopped(pid: int | None) -> bool:
    """True if the process is gone, a zombie or stopped (SIGSTOP)."""
    if pid is None:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("T", "t", "Z", "X")


class VrrpDriver:
    system = "vrrp"
    supported = frozenset({K.CRASH, K.FREEZE, K.CLEAN_STOP, K.CUT_ONE_WAY, K.CUT_BOTH, K.LOSS, K.DELAY, K.DUP,
                           K.NETEM_LOSS, K.NETEM_DELAY, K.NETEM_DUP, K.OVERLAP})

    def __init__(self, config: VrrpChaosConfig | None = None) -> None:
        self.cfg = config or VrrpChaosConfig()
        self.specs = {r.host: r for r in self.cfg.routers}
        self.nodes = list(self.specs)
        self.sample_period = self.cfg.sample_period
        self.lab = Lab((*self.nodes, *([CLIENT] if self.cfg.client else [])))
        self.routers: dict[str, RouterProcess | None] = {}
        self.pinger: Pinger | None = None
        self.frozen: set[str] = set()
        self.costs: dict[str, float] = {}
        self._local = threading.local()  # pyroute2's sync IPRoute works only in the thread that made it
        self._handles: list[IPRoute] = []
        # routers past their start-up, by the RouterProcess's id (the lab keeps every one, so ids are not
        # reused): not by pid, since pids wrap here (pid_max 32768) and a new router once got a pid that had
        # been a started router's: counted active 30 ms after its start, with its crashed predecessor's VIP
        self._started: set[int] = set()
        self.grey = GreyFaults()

    # -- timing ----------------------------------------------------------------------------------
    def _mdi(self) -> float:
        """The slowest Backup's Master_Down_Interval (the lowest priority has the longest skew)."""
        low = min(r.priority for r in self.cfg.routers)
        return master_down_interval(low, self.cfg.advert_interval, self.cfg.version)

    @property
    def grey_delay_s(self) -> float:
        """The largest delay + jitter a delay fault draws: half of what the Backup tolerates (the first delayed
        advert comes an advert interval + D after the last one; it takes over after Master_Down_Interval)."""
        return round(tolerance(self._mdi(), self.cfg.advert_interval) / 2, 4)

    @property
    def settle(self) -> float:
        return round(self.cfg.startup + self._mdi() + self.cfg.slack + 1.0, 3)

    def promise(self) -> Promise:
        c = self.cfg
        mdi = self._mdi()
        skew = skew_time(min(r.priority for r in c.routers), c.advert_interval, c.version)
        return Promise(
            system="vrrp", mode=f"v{c.version} advert {c.advert_interval:g} s",
            double_allowed={K.CUT_ONE_WAY, K.CUT_BOTH, K.LOSS, K.NETEM_LOSS, K.FREEZE},
            takeover_bound={K.CRASH: round(mdi + c.slack, 4), K.FREEZE: round(mdi + c.slack, 4),
                            K.CLEAN_STOP: round(skew + c.slack, 4)},
            heal_bound=round(c.advert_interval + c.slack, 4),
            steady=set(GREY_KINDS),
            handover_grace=round(2 * c.sample_period, 4),
            recovery=round(c.startup + mdi + c.slack, 4),
            # the client follows the Master that stayed: the other's last advert is answered with gratuitous
            # ARP at once, or at the end of one answer spacing (seed 20261128 found pings failing 4-5.5 s)
            client_bound=round(c.advert_interval + LOWER_PRIO_GARP_SPACING + c.slack, 4) if c.client else None,
            why="RFC 5798: a Backup takes over Master_Down_Interval after the Master's last advert (Skew_Time after "
                "its priority-0 advert); a delay of the adverts up to half of (Master_Down_Interval - advert "
                "interval) and duplicated adverts change nothing; a partition (a cut, heavy loss, a frozen Master) "
                "gives two Masters until the next advert after the heal; a restarted higher-priority router "
                "preempts (one-hop blip); "
                "after a heal the Master that stayed answers the other's advert with gratuitous ARP, so the client "
                "reaches the VIP again within an advert interval and one answer spacing")

    def describe(self) -> dict[str, Any]:
        return {"config": self.cfg.model_dump(), "prefix": self.lab.prefix, "vip": str(VIP),
                "master_down_interval": round(self._mdi(), 4), "grey_delay_s": self.grey_delay_s,
                "probe_costs": self.costs}

    # -- bed -------------------------------------------------------------------------------------
    def _start_router(self, host: str) -> RouterProcess:
        spec, c = self.specs[host], self.cfg
        if spec.impl == "ours":
            conf = ours_config(priority=spec.priority, advert_interval=c.advert_interval, version=c.version,
                               preempt_mode=c.preempt, **c.ours)
            rp = self.lab.start_ours(host, conf)
        else:
            rp = self.lab.start_keepalived(host, keepalived_config(  # (its last advert when stepping down: as ours)
                priority=spec.priority, advert_int=c.advert_interval, version=c.version, preempt=c.preempt,
                extra="higher_prio_send_advert"))
        self.routers[host] = rp
        return rp

    def start(self) -> None:
        self.lab.up()
        for h in self.nodes:
            self._start_router(h)
        if self.cfg.client:
            self.pinger = Pinger(self.lab, CLIENT, str(VIP))
        # settled: every router past its start-up and one Master (with preempt: the highest priority)
        top = max(self.cfg.routers, key=lambda r: r.priority).host
        def settled() -> bool:
            active = self.probe()["active"]
            return (all(self.running(h) for h in self.nodes) and len(active) == 1
                    and (not self.cfg.preempt or active == [top]))
        wait_for(settled, 30, interval=0.05, what="one VRRP Master")
        self._measure_probe()

    def _measure_probe(self) -> None:
        def best(fn: Any, n: int = 5) -> float:
            times = []
            for _ in range(n):
                t = time.monotonic()
                fn()
                times.append(time.monotonic() - t)
            return round(min(times), 5)

        ns = self.lab.ns(self.nodes[0])
        self.costs = {"ip_json_addr_s": best(lambda: run_cmd("ip", "-n", ns, "-j", "addr")),
                      "netlink_addr_s": best(lambda: self.has_vip(self.nodes[0])),
                      "probe_s": best(self.probe)}
        if self.pinger is not None:
            self.costs["ping_s"] = best(self.pinger.ping)

    def _pids(self, host: str) -> list[int]:
        rp = self.routers.get(host)
        if rp is None:
            return []
        child = rp._child_pid() if rp.kind == "keepalived" else None
        return [p for p in (child, rp.pid) if p is not None]

    def running(self, host: str) -> bool:
        """The host's router runs: alive, not frozen, and past its start-up (ours: its status file is
        written after the start-up removed a crash's left-over addresses; keepalived: its VRRP child runs)."""
        rp = self.routers.get(host)
        if rp is None or host in self.frozen or rp.proc.poll() is not None:
            return False
        if id(rp) not in self._started:
            if (rp.kind == "ours" and not (rp.status_path and rp.status_path.exists())) or (
                    rp.kind == "keepalived" and rp._child_pid() is None):
                return False
            self._started.add(id(rp))
        pid = rp._child_pid() if rp.kind == "keepalived" else rp.pid
        return not _stopped(pid)

    def has_vip(self, host: str) -> bool:
        """One netlink IPv4 address dump in the host's namespace (a handle per thread and namespace), every
        interface: with ``use_vmac`` the VIP sits on the macvlan, not on eth0."""
        handles = getattr(self._local, "ipr", None)
        if handles is None:
            handles = self._local.ipr = {}
        ipr = handles.get(host)
        if ipr is None:
            ipr = handles[host] = self.lab.in_ns(host, IPRoute)
            self._handles.append(ipr)
        return any(a.get("IFA_ADDRESS") == str(VIP) for a in ipr.get_addr(family=socket.AF_INET))

    def probe(self) -> dict[str, Any]:
        active, stale = [], []
        for h in self.nodes:
            if self.has_vip(h):
                (active if self.running(h) else stale).append(h)
        got: dict[str, Any] = {"active": active}
        if stale:
            got["stale"] = stale
        if self.pinger is not None:
            got["client_ok"] = self.pinger.ping()
        return got

    # -- faults ----------------------------------------------------------------------------------
    def _signal(self, host: str, sig: int) -> None:
        for pid in self._pids(host):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _netem(self, fault: Fault) -> list[str]:
        p = fault.params
        if fault.kind is K.NETEM_LOSS:
            return ["loss", f"{p['loss_pct']}%"]
        if fault.kind is K.NETEM_DELAY:
            return ["delay", f"{p['delay_ms']}ms", f"{p['jitter_ms']}ms"]
        return ["duplicate", f"{p['dup_pct']}%"]

    def apply(self, fault: Fault, target: str, peer: str | None) -> dict[str, Any]:
        k = fault.kind
        if k is K.CRASH:
            rp = self.routers[target]
            assert rp is not None
            self.routers[target] = None  # down for the probe before the signal, not after the reap
            rp.kill(signal.SIGKILL)
            rp.wait(5.0)
            return {"pid": rp.pid}
        if k is K.FREEZE:
            self.frozen.add(target)
            self._signal(target, signal.SIGSTOP)
            return {"pids": self._pids(target)}
        if k is K.CLEAN_STOP:
            rp = self.routers[target]
            assert rp is not None
            self.routers[target] = None
            rp.kill(signal.SIGTERM)
            rc = rp.wait(5.0)
            return {"pid": rp.pid, "rc": rc}
        if k in (K.CUT_ONE_WAY, K.CUT_BOTH):
            assert peer is not None
            self.lab.net.block(peer, target, inbound=True, outbound=k is K.CUT_BOTH)
            if k is K.CUT_BOTH:  # the peer's multicast adverts too (OUTPUT -d TARGET does not match them)
                self.lab.net.block(target, peer, inbound=True, outbound=False)
            return {}
        if k is K.LOSS:
            self.lab.net.lose(target, fault.params["loss_pct"], device="+")
            return {}
        if k in GREY_KINDS:
            return self.grey.apply(self.lab.net, fault, target, self.grey_delay_s)
        if k in (K.NETEM_LOSS, K.NETEM_DELAY, K.NETEM_DUP):
            run_cmd("ip", "netns", "exec", self.lab.ns(target), "tc", "qdisc", "add", "dev", "eth0", "root",
                    "netem", *self._netem(fault))
            return {"netem": " ".join(self._netem(fault))}
        raise ValueError(f"vrrp driver cannot apply {k}")

    def heal(self, fault: Fault, target: str, peer: str | None) -> dict[str, Any] | None:
        k = fault.kind
        if k in GREY_KINDS:
            return self.grey.heal(self.lab.net, fault, target)
        if k in (K.CRASH, K.CLEAN_STOP):
            self._start_router(target)
        elif k is K.FREEZE:
            self._signal(target, signal.SIGCONT)
            self.frozen.discard(target)
        elif k is K.CUT_ONE_WAY:
            assert peer is not None
            self.lab.net.block(peer, target, on=False, inbound=True, outbound=False)
        elif k is K.CUT_BOTH:
            assert peer is not None
            # A heal opens both ways at once; iptables in two namespaces cannot, so the higher priority hears
            # the lower first (as it would at once): healing the lower first instead loses the lower's last
            # advert (sent as it steps down) in between, an asymmetric heal (docs/vrrp.md, known limits)
            if self.specs[target].priority >= self.specs[peer].priority:
                self.lab.net.block(target, peer, on=False, inbound=True, outbound=False)
                self.lab.net.block(peer, target, on=False, inbound=True, outbound=True)
            else:
                self.lab.net.block(peer, target, on=False, inbound=True, outbound=True)
                self.lab.net.block(target, peer, on=False, inbound=True, outbound=False)
        elif k is K.LOSS:
            self.lab.net.lose(target, fault.params["loss_pct"], on=False, device="+")
        elif k in (K.NETEM_LOSS, K.NETEM_DELAY, K.NETEM_DUP):
            run_cmd("ip", "netns", "exec", self.lab.ns(target), "tc", "qdisc", "del", "dev", "eth0", "root",
                    check=False)
        return None

    def close(self) -> None:
        for h in list(self.frozen):
            with contextlib.suppress(Exception):
                self._signal(h, signal.SIGCONT)
        self.frozen.clear()
        self.grey.close()  # delayers by PID
        if self.pinger is not None:
            with contextlib.suppress(Exception):
                self.pinger.close()
        for ipr in self._handles:
            with contextlib.suppress(Exception):
                ipr.close()
        with contextlib.suppress(Exception):
            self.lab.close()  # ends every router by PID, deletes the namespaces (their rules and qdiscs too)


def netem_available() -> bool:
    """Whether this kernel has sch_netem: one netem qdisc on ``lo`` of a throw-away namespace."""
    ns = f"chaosnetem-{os.getpid()}"
    if run_cmd("ip", "netns", "add", ns, check=False).returncode != 0:
        return False
    try:
        r = run_cmd("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
                    check=False)
        return r.returncode == 0
    finally:
        run_cmd("ip", "netns", "del", ns, check=False)


def leftovers(prefix: str) -> list[str]:
    """Namespaces of this run still present (for tests: should be none after close)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]

"""A throw-away VRRP test bed in network namespaces, shared by the tests, the demo and the bench.

``Lab(hosts=("a", "b", "c"))`` builds a labs.netns segment: ``<prefix>-sw`` holding the switch and one
namespace per host (``<prefix>-a`` ...) with ``eth0`` addressed 10.99.0.11, .12, ... /24; the prefix
is random so parallel runs never collide. ``Lab(..., ipv6=True)`` also gives each host fd00:99::11, .12,
... /64 and the link-local fe80::11, ... (both without duplicate-address detection) for VRRP over IPv6
(``VIP6``). ``Lab.close()`` kills every process the lab started (by PID) and deletes its namespaces; use
it as a context manager so that happens on failure too.

Routers: ``start_ours(host, config)`` runs ``python -m VrrpFailover`` inside the namespace and
``start_keepalived(host, ...)`` runs keepalived in the foreground (VRRP only), both logging to
files in the lab's directory. ``AdvertObserver`` timestamps every advert seen from one host
(monotonic clock, shared by all namespaces) for failover measurements.

This module is a test/demo tool, not part of the router; it needs root.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute

from labs.netns import NetnsSegment
from labs.wait import poll_until
from VrrpFailover.netio import IP_MULTICAST_ALL
from VrrpFailover.packet import IPPROTO_VRRP, VRRP_GROUP, Received, decode_ip_packet

SUBNET = "10.99.0"
VIP = IPv4Address(f"{SUBNET}.100")
SUBNET6 = "fd00:99::"  # a unique local /64 that exists only inside the lab's namespaces
VIP6 = IPv6Address(f"{SUBNET6}100")


def wait_for(cond: Callable[[], Any], timeout: float, interval: float = 0.005, what: str = "condition") -> Any:
    """Poll ``cond`` until it returns a truthy value or ``timeout`` passes (then raise TimeoutError)."""
    return poll_until(cond, timeout, what=what, interval=interval)


@dataclass
class RouterProcess:
    """One router process (ours or keepalived) started by the lab."""

    kind: str  # "ours" | "keepalived"
    host: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    status_path: Path | None = None
    child_pidfile: Path | None = None  # keepalived's VRRP child

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def status(self) -> dict[str, Any] | None:
        if self.status_path is None:
            return None
        try:
            return json.loads(self.status_path.read_text())
        except (OSError, ValueError):
            return None

    def state(self, name: str) -> str | None:
        st = self.status()
        return st["instances"][name]["state"] if st else None

    def current_state(self, name: str = "VR_1") -> str | None:
        """Ours: the instance state from the status file; keepalived: the last 'Entering X STATE' log line."""
        if self.kind == "ours":
            return self.state(name)
        states = [line.rsplit("Entering ", 1)[1].split()[0].capitalize()
                  for line in self.log_text().splitlines() if "Entering " in line and " STATE" in line]
        return states[-1] if states else None

    def instance_state(self, name: str) -> str | None:
        """One instance's state: ours from the status file, keepalived's from its last '(NAME) Entering X STATE'
        log line (several instances in one keepalived)."""
        if self.kind == "ours":
            return self.state(name)
        states = [line.rsplit("Entering ", 1)[1].split()[0].capitalize() for line in self.log_text().splitlines()
                  if f"({name}) Entering " in line and " STATE" in line]
        return states[-1] if states else None

    def wait_instance_state(self, name: str, state: str, timeout: float) -> None:
        def check() -> bool:
            if not self.alive():
                raise RuntimeError(f"{self.kind} on {self.host} exited ({self.proc.returncode}):\n"
                                   f"{self.log_text()[-2000:]}")
            return self.instance_state(name) == state
        wait_for(check, timeout, what=f"{name} of {self.kind} on {self.host} to be {state}")

    def wait_state(self, state: str, timeout: float, name: str = "VR_1") -> float:
        """Wait until the router reports ``state`` (Master, Backup, Fault); returns the time waited."""
        t = time.monotonic()
        def check() -> bool:
            if not self.alive():
                raise RuntimeError(f"{self.kind} on {self.host} exited ({self.proc.returncode}):\n"
                                   f"{self.log_text()[-2000:]}")
            return self.current_state(name) == state
        wait_for(check, timeout, what=f"{self.kind} on {self.host} to be {state}")
        return time.monotonic() - t

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _child_pid(self) -> int | None:
        if self.child_pidfile is None:
            return None
        try:
            return int(self.child_pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def kill(self, sig: int = signal.SIGKILL) -> float:
        """Send ``sig`` (to keepalived's VRRP child too for SIGKILL); returns the monotonic time of the send."""
        child = self._child_pid() if sig == signal.SIGKILL else None
        t = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            if child is not None:
                os.kill(child, sig)
            os.kill(self.proc.pid, sig)
        return t

    def wait(self, timeout: float = 10.0) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self.alive():
            self.kill(signal.SIGTERM)
            if self.wait(5.0) is None:
                self.kill(signal.SIGKILL)
                self.wait(5.0)
        child = self._child_pid()
        if child is not None and self.kind == "keepalived":
            # after a SIGKILL of the parent the VRRP child may linger: it is ours, end it by PID
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if _is_process_of(child, "keepalived"):
                    os.kill(child, signal.SIGKILL)


def _is_process_of(pid: int, name: str) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == name
    except OSError:
        return False


def keepalived_config(*, vrid: int = 51, priority: int = 100, advert_int: float = 0.1, version: int = 3,
                      vips: Iterable[str] = (f"{VIP}/24",), preempt: bool = True, name: str = "VI_1",
                      router_id: str = "lab", unicast_peers: Iterable[str] = (), extra: str = "") -> str:
    """keepalived.conf of one instance; ``extra``: more lines for the vrrp_instance block."""
    addrs = "\n".join(f"        {v} dev eth0" for v in vips)
    peers = "\n".join(f"        {p}" for p in unicast_peers)
    unicast = f"unicast_peer {{\n{peers}\n    }}" if peers else ""
    return f"""global_defs {{
    router_id {router_id}
    vrrp_version {version}
}}
vrrp_instance {name} {{
    state BACKUP
    interface eth0
    virtual_router_id {vrid}
    priority {priority}
    advert_int {advert_int:g}
    {"" if preempt else "nopreempt"}
    {unicast}
    {extra}
    virtual_ipaddress {{
{addrs}
    }}
}}
"""


def keepalived_sync_group_config(instances: Iterable[dict[str, Any]], *, group: str = "VG_1",
                                 group_extra: str = "", router_id: str = "lab", version: int = 3) -> str:
    """keepalived.conf of several instances (``keepalived_config`` keyword arguments each, ``name`` set) and one
    ``vrrp_sync_group`` of them all; ``group_extra``: more lines for the group block (its notify)."""
    blocks = [keepalived_config(router_id=router_id, version=version, **kw).split("}\n", 1)[1] for kw in instances]
    names = " ".join(kw["name"] for kw in instances)
    return (f"global_defs {{\n    router_id {router_id}\n    vrrp_version {version}\n}}\n" + "".join(blocks)
            + f"vrrp_sync_group {group} {{\n    group {{\n        {names}\n    }}\n    {group_extra}\n}}\n")


def ours_config(*, name: str = "VR_1", vrid: int = 51, priority: int = 100, advert_interval: float = 0.1,
                version: int = 3, vips: Iterable[str] = (f"{VIP}/24",), preempt_mode: bool = True,
                **extra: Any) -> dict[str, Any]:
    return {"name": name, "vrid": vrid, "interface_name": "eth0", "ip_addresses": list(vips),
            "priority": priority, "advert_interval": advert_interval, "preempt_mode": preempt_mode,
            "version": version, **extra}


class Lab:
    def __init__(self, hosts: Iterable[str] = ("a", "b", "c"), prefix: str | None = None, *,
                 ipv6: bool = False) -> None:
        self.hosts = tuple(hosts)
        hosts6 = {h: f"{SUBNET6}{11 + i}" for i, h in enumerate(self.hosts)} if ipv6 else None
        self.net = NetnsSegment({h: f"{SUBNET}.{11 + i}" for i, h in enumerate(self.hosts)}, prefix=prefix,
                                tag="vr", switch="sw", hosts6=hosts6)
        self.prefix = self.net.prefix
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        self.processes: list[RouterProcess] = []
        self._ipr: dict[str, IPRoute] = {}
        self._observers: list[AdvertObserver] = []

    # -- topology ----------------------------------------------------------------------------
    def ns(self, host: str) -> str:
        return self.net.ns(host)

    @property
    def switch(self) -> str:
        return self.net.ns("sw")

    def address(self, host: str) -> IPv4Address:
        return IPv4Address(self.net.address(host))

    def address6(self, host: str) -> IPv6Address:
        """The host's fd00:99::/64 address (``ipv6=True``)."""
        return IPv6Address(self.net.hosts6[host])

    def link_local(self, host: str) -> IPv6Address:
        """The host's link-local address (``ipv6=True``): the source of its IPv6 adverts."""
        return IPv6Address(self.net.link_local(host))

    def __enter__(self) -> Lab:
        try:
            self.up()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def up(self) -> None:
        self.net.up()

    def set_link(self, host: str, up: bool) -> None:
        """Cut or restore a host's cable (its port on the switch)."""
        self.net.set_port(host, up)

    def isolate(self, *hosts: str, on: bool = True) -> None:
        """Stop (or restore) traffic between these hosts' switch ports; each still reaches the others.
        Carrier stays up, so routers see a silent peer, not a dead link."""
        self.net.isolate(*hosts, on=on)

    def close(self) -> None:
        for obs in self._observers:
            obs.close()
        for rp in reversed(self.processes):
            with contextlib.suppress(Exception):
                rp.stop()
        for ipr in self._ipr.values():
            with contextlib.suppress(Exception):
                ipr.close()
        self._ipr.clear()
        self.net.teardown()
        if os.environ.get("VRRP_LAB_KEEP_LOGS") is None:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- inside a namespace ------------------------------------------------------------------
    def in_ns(self, host: str, make: Callable[[], Any]) -> Any:
        """Create a socket-like object inside the host's namespace (it stays there once made)."""
        return self.net.in_ns(host, make)

    def addresses(self, host: str, family: int = socket.AF_INET) -> set[IPv4Address | IPv6Address]:
        ipr = self._ipr.get(host)
        if ipr is None:
            ipr = self._ipr[host] = self.in_ns(host, IPRoute)
        idx = ipr.link_lookup(ifname="eth0")[0]
        return {ip_address(a.get("IFA_ADDRESS")) for a in ipr.get_addr(index=idx, family=family)}

    def has_vip(self, host: str, vip: IPv4Address | IPv6Address | str = VIP) -> bool:
        # coerced: a str never equals an address object, so it would silently never match
        addr = ip_address(vip) if isinstance(vip, str) else vip
        return addr in self.addresses(host, socket.AF_INET6 if addr.version == 6 else socket.AF_INET)

    def holders(self, vip: IPv4Address | IPv6Address | str = VIP, hosts: Iterable[str] | None = None) -> list[str]:
        return [h for h in (hosts or self.hosts) if self.has_vip(h, vip)]

    def exec(self, host: str, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[bytes]:
        return self.net.exec(host, argv, **kw)

    def mac(self, host: str) -> str:
        return self.exec(host, ["cat", "/sys/class/net/eth0/address"], capture_output=True,
                         check=True).stdout.decode().strip()

    def neighbour_mac(self, host: str, ip: IPv4Address | IPv6Address = VIP) -> str | None:
        """The MAC the host's ARP cache has for ``ip`` (None if no entry)."""
        out = self.exec(host, ["ip", "neigh", "show", str(ip), "dev", "eth0"], capture_output=True).stdout.decode()
        parts = out.split()
        return parts[parts.index("lladdr") + 1] if "lladdr" in parts else None

    def ping(self, host: str, target: IPv4Address | IPv6Address = VIP, timeout: float = 1.0) -> bool:
        r = self.exec(host, ["ping", f"-{target.version}", "-n", "-q", "-c", "1", "-W", f"{timeout:g}", str(target)],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return r.returncode == 0

    def _popen(self, host: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None
               ) -> subprocess.Popen[bytes]:
        with open(log_path, "ab") as log:
            return self.net.popen(host, argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                  env=env, preexec_fn=_default_signals)

    def start_ours(self, host: str, config: dict[str, Any] | list[dict[str, Any]], *, tag: str = "",
                   extra_args: Iterable[str] = ()) -> RouterProcess:
        n = len(self.processes)
        cfg_path = self.dir / f"ours-{host}{tag}-{n}.json"
        cfg_path.write_text(json.dumps(config))
        status = self.dir / f"ours-{host}{tag}-{n}.status.json"
        log_path = self.dir / f"ours-{host}{tag}-{n}.log"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = self._popen(host, [sys.executable, "-m", "VrrpFailover", "-c", str(cfg_path),
                                  "--status-file", str(status), *extra_args], log_path, env)
        rp = RouterProcess("ours", host, proc, log_path, status_path=status)
        self.processes.append(rp)
        return rp

    def start_keepalived(self, host: str, conf_text: str, *, tag: str = "") -> RouterProcess:
        exe = shutil.which("keepalived") or "/usr/sbin/keepalived"
        n = len(self.processes)
        base = self.dir / f"ka-{host}{tag}-{n}"
        conf = base.with_suffix(".conf")
        conf.write_text(conf_text)
        log_path = base.with_suffix(".log")
        child_pid = Path(f"{base}-vrrp.pid")
        proc = self._popen(host, [exe, "-n", "-l", "-D", "-G", "-P", "-f", str(conf), "-p", f"{base}.pid",
                                  "-r", str(child_pid)], log_path)
        rp = RouterProcess("keepalived", host, proc, log_path, child_pidfile=child_pid)
        self.processes.append(rp)
        return rp

    def observer(self, host: str) -> AdvertObserver:
        obs = self.in_ns(host, AdvertObserver)
        self._observers.append(obs)
        return obs


def _default_signals() -> None:
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
        signal.signal(s, signal.SIG_DFL)


SO_TIMESTAMPNS = 35  # Linux; the kernel's receive time (CLOCK_REALTIME) as a struct timespec


@dataclass(frozen=True)
class Seen:
    at: float  # time.monotonic() when read
    rx: Received
    kt: float = 0.0  # kernel receive time (time.time() scale): use it for gaps between adverts


@dataclass
class AdvertObserver:
    """Records every valid VRRP advert heard on eth0 of the namespace it was created in."""

    ifname: str = "eth0"
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_VRRP)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.ifname.encode())
        s.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
        idx = socket.if_nametoindex(self.ifname)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                     VRRP_GROUP.packed + b"\0\0\0\0" + struct.pack("@i", idx))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        s.settimeout(0.2)
        self.sock = s
        self._lock = threading.Lock()
        self._closing = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="advert-observer")
        self._thread.start()

    def _run(self) -> None:
        while not self._closing:
            try:
                data, anc, _flags, _addr = self.sock.recvmsg(65535, 64)
            except TimeoutError:
                continue
            except OSError:
                return
            at = time.monotonic()
            kt = time.time()
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
                    sec, nsec = struct.unpack("@qq", payload[:16])
                    kt = sec + nsec / 1e9
            try:
                rx = decode_ip_packet(data)
            except Exception:
                continue
            with self._lock:
                self.seen.append(Seen(at, rx, kt))

    def snapshot(self) -> list[Seen]:
        with self._lock:
            return list(self.seen)

    def clear(self) -> None:
        with self._lock:
            self.seen.clear()

    def first(self, pred: Callable[[Seen], bool], after: float = 0.0) -> Seen | None:
        return next((s for s in self.snapshot() if s.at >= after and pred(s)), None)

    def wait_first(self, pred: Callable[[Seen], bool], after: float = 0.0, timeout: float = 5.0) -> Seen:
        """The first matching advert at or after ``after``, waiting up to ``timeout`` for it to be read."""
        return wait_for(lambda: self.first(pred, after), timeout, what="an advert to be observed")

    def last(self, pred: Callable[[Seen], bool], before: float = float("inf")) -> Seen | None:
        return next((s for s in reversed(self.snapshot()) if s.at <= before and pred(s)), None)

    def close(self) -> None:
        self._closing = True
        self._thread.join(1.0)
        self.sock.close()

"""A failover cluster of real platforms on loopback: primary, secondary and (standard mode) witness.

Used by the integration tests, the bench and the demo (never by the agent itself). ``Cluster.start``
builds the two wheels (failover agent, stand-in service agent), starts the platforms as the
non-root platform user, installs the service agent (stopped) and the failover agent on primary and
secondary, the witness on the third platform, and starts the failover agents. Observers are
in-process client agents (bounded ``RemoteLink`` calls) that read the managed agent's state and the
failover agents' ``get_status`` from this process.

With ``netns=True`` each platform is a host of a ``labs.netns.NetnsSegment`` (its own network namespace,
an address on a bridge in the root namespace, which this process reaches as ``.254``): ``cut`` and
``heal`` then partition the platforms with iptables inside the namespaces, in one or both directions,
while the observers here still see every node. ``transitions(name)`` reads the failover agent's
service transitions, with their timestamps, from that platform's log. Each namespace gets
``net.ipv4.tcp_rto_max_ms`` = 1000 before its platform starts, the host setting docs/failoveragent.md
advises (``tcp_rto_max_ms=None``: the kernel's default, 120 s).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent

from failover_agent.remote import RemoteLink, RemoteUnavailable
from labs.netns import NetnsSegment, unused_subnet
from labs.volttron_platform import (
    PLATFORM_VENV,
    InstalledAgent,
    Platform,
    build_failover_agent_wheel,
    build_service_agent_wheel,
    make_shared_dir,
    private_venv,
)
from labs.wait import WaitTimeout, poll_until

SERVICE = "ft.service"
FAILOVER = "ft.failover"
WITNESS = "volttron.central"
OBSERVER = "ft.observer"
SECRET = "failover-test-secret"


class Wheels:
    """The two agent wheels, built once per process."""

    _cache: dict[str, Path] = {}

    @classmethod
    def get(cls) -> tuple[Path, Path]:
        if not cls._cache:
            out = make_shared_dir("ft-agent-wheels-")
            atexit.register(shutil.rmtree, out, ignore_errors=True)
            cls._cache["failover"] = build_failover_agent_wheel(out)
            cls._cache["service"] = build_service_agent_wheel(out)
        return cls._cache["failover"], cls._cache["service"]


def wait_for(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``pred`` (greenlet-friendly) until truthy; AssertionError naming ``what`` on timeout."""
    try:
        return poll_until(pred, timeout, what=what, interval=interval, sleep=gevent.sleep)
    except WaitTimeout:
        raise AssertionError(f"timed out after {timeout:g}s waiting for: {what}") from None


# "2026-11-28 05:31:02,123 ..." then the failover agent's "... transition: ft.service: RUNNING -> STOPPED (...) [code]"
_TRANSITION = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[,.]\d{3}).*?transition: (\S+): (\w+) -> (\w+) "
                         r"\((.*)\) \[([\w.]+)\]\s*$")
_DECISION = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[,.]\d{3}).*?decision: (\w+): .*\[([\w.]+)\]\s*$")


@dataclass(frozen=True)
class LoggedTransition:
    """One service transition as the failover agent logged it (``at``: the log line's wall-clock time)."""

    at: datetime.datetime
    subject: str
    from_state: str
    to_state: str
    code: str


@dataclass(frozen=True)
class LoggedDecision:
    at: datetime.datetime
    action: str
    code: str


def _stamp(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text.replace(",", "."), "%Y-%m-%d %H:%M:%S.%f")


class Cluster:
    def __init__(self, mode: str = "standard", *, heartbeat_period: float = 1.0, timeout: float = 4.0,
                 secret: str | None = SECRET, failback_delay: float = 0.0, prefix: str = "ft-agent-",
                 netns: bool = False, private: bool | None = None, stop_bound: float | None = None,
                 tcp_rto_max_ms: int | None = 1000, backend: str = "runner") -> None:
        if mode not in ("simple", "standard"):
            raise ValueError("mode is 'simple' or 'standard'")
        if backend not in ("runner", "vtesting"):
            raise ValueError("backend is 'runner' (labs.volttron_platform) or 'vtesting' (volttron-testing's wrapper)")
        if backend == "vtesting" and netns:
            raise ValueError("volttron-testing's wrapper runs platforms on loopback only (netns=False)")
        self.backend = backend
        self.mode = mode
        self.heartbeat_period = heartbeat_period
        self.timeout = timeout
        self.stop_bound = stop_bound
        self.secret = secret
        self.failback_delay = failback_delay
        self.base = make_shared_dir(prefix)
        names = ["primary", "secondary"] + (["witness"] if mode == "standard" else [])
        self.segment: NetnsSegment | None = None
        venv = PLATFORM_VENV
        if (netns or backend == "vtesting") if private is None else private:  # the wrapper's shutdown removes agents
            venv = private_venv(self.base / "platform-venv")
        hosts: dict[str, str] = {}
        if netns:
            net = unused_subnet("10.99.{}.0/24")
            prefix24 = str(net.network_address).rsplit(".", 1)[0]
            hosts = {n: f"{prefix24}.{i + 1}" for i, n in enumerate(names)}
            self.segment = NetnsSegment(hosts, tag="fv", switch=None, switch_address=f"{prefix24}.254").up()
            if tcp_rto_max_ms is not None:  # the host setting docs/failoveragent.md advises, before any socket
                for n in names:
                    r = self.segment.exec(n, ["sysctl", "-qw", f"net.ipv4.tcp_rto_max_ms={tcp_rto_max_ms}"],
                                          check=False, capture_output=True, text=True)
                    if r.returncode:  # Linux < 6.11: a healed cut's heartbeats wait for TCP's back-off
                        print(f"labs.volttron_cluster: tcp_rto_max_ms not set in {n}: {r.stderr.strip()}",
                              file=sys.stderr)
        if backend == "vtesting":
            from labs.vtesting_platform import WrapperPlatform

            self.platforms: dict[str, Any] = {n: WrapperPlatform(n, self.base, venv=venv) for n in names}
        else:
            self.platforms = {n: Platform(n, self.base, venv=venv, netns=self.segment.ns(n) if self.segment else None,
                                          host=hosts.get(n, "127.0.0.1")) for n in names}
        self.failover: dict[str, InstalledAgent] = {}
        self.service: dict[str, InstalledAgent] = {}
        self._observers: dict[str, RemoteLink] = {}
        self._install_lock = threading.Lock()  # one vctl install at a time: the platforms share a venv

    # -- set-up -----------------------------------------------------------------------------------
    def failover_config(self, name: str, **overrides: Any) -> dict[str, Any]:
        peer = self.platforms["secondary" if name == "primary" else "primary"]
        cfg: dict[str, Any] = {
            "agent_id": name, "simple_behavior": self.mode == "simple", "remote_vip": peer.address,
            "remote_serverkey": peer.serverkey(), "agent_vip_identity": SERVICE,
            "heartbeat_period": self.heartbeat_period, "timeout": self.timeout, "failback_delay": self.failback_delay,
        }
        if self.stop_bound is not None:
            cfg["stop_bound"] = self.stop_bound
        if self.secret:
            cfg["heartbeat_secret"] = self.secret
        # every transition appends "SEQ FROM TO CODE" to notify-<name>.log (the platform user writes it)
        cfg["notify"] = ["/bin/sh", "-c", f'echo "$FAILOVER_SEQ $2 $3 $FAILOVER_CODE" >> {self.notify_log(name)}; '
                         f'echo "$FAILOVER_SEQ $FAILOVER_TERM" >> {self.notify_log(name)}.terms', "notify"]
        if self.mode == "standard":
            w = self.platforms["witness"]
            cfg.update(witness_vip=w.address, witness_serverkey=w.serverkey(), witness_identity=WITNESS)
        cfg.update(overrides)
        return cfg

    def notify_log(self, name: str) -> Path:
        return self.base / f"notify-{name}.log"

    def notified(self, name: str) -> list[str]:
        """Lines the notify hook of that node wrote, oldest first."""
        p = self.notify_log(name)
        return p.read_text().splitlines() if p.exists() else []

    def _each(self, fn: Callable[[str], None], names: list[str]) -> None:
        """``fn(name)`` for every name, at once (threads; greenlets where gevent patched them): the platforms are
        independent processes, each command is a subprocess to wait for. One after the other with volttron-
        testing's wrapper, whose calls rebind os.environ for their duration (two at once would mix them). Installs
        stay one at a time (``_install``): the platforms of a cluster share one venv, and two ``vctl install`` of
        the same wheel into it at once failed (rc 20, clean-clone CI of 011e6e3)."""
        if self.backend == "vtesting" or len(names) < 2:
            for n in names:
                fn(n)
            return
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            for future in [pool.submit(fn, n) for n in names]:
                future.result()  # the first error is raised, after every one has ended

    def _install(self, p: Any, *args: Any, **kwargs: Any) -> InstalledAgent:
        with self._install_lock:
            return p.install(*args, **kwargs)

    def start(self, log: Callable[[str], None] = lambda s: None) -> Cluster:
        failover_wheel, service_wheel = Wheels.get()

        def bring_up(name: str) -> None:
            """One platform: started, the observer admitted, then the witness agent, or the service agent
            (installed, stopped)."""
            p = self.platforms[name]
            p.start()
            p.vctl("auth", "add", OBSERVER)
            log(f"platform {p.name} up at {p.address} ({p.startup_s:.1f}s)")
            if name == "witness":
                cfg = {"agent_id": "witness", "timeout": self.timeout}
                if self.secret:
                    cfg["heartbeat_secret"] = self.secret
                self.failover["witness"] = self._install(p, failover_wheel, WITNESS, cfg, tag="witness", start=True)
                log(f"witness agent installed on {p.name} as {WITNESS}")
                return
            self.service[name] = self._install(p, service_wheel, SERVICE, {}, tag="service")
            p.authorize_failover(FAILOVER)
            log(f"service agent {SERVICE} installed (stopped) on {name}")

        def install_failover(name: str) -> None:  # not started: the keys are registered first
            self.failover[name] = self._install(self.platforms[name], failover_wheel, FAILOVER,
                                                self.failover_config(name), tag="failover")

        self._each(bring_up, list(self.platforms))
        # after every start: a failover agent's config names the other platforms' serverkeys (platform.json,
        # which a platform writes when it starts)
        self._each(install_failover, ["primary", "secondary"])
        # the operator's step: each failover agent's key is registered, under the identity it uses
        # there (<identity>.<agent_id>), on the peer platform and on the witness platform
        for name, peer in (("primary", "secondary"), ("secondary", "primary")):
            key = self.platforms[name].agent_publickey(FAILOVER)
            for target in (peer, "witness"):
                if target in self.platforms:
                    # --publickey=KEY, not two words: a key may start with "-"
                    self.platforms[target].vctl("auth", "add", f"{FAILOVER}.{name}", f"--publickey={key}")
        for name in ("primary", "secondary"):
            self.start_failover(name)
            log(f"failover agent {FAILOVER} installed and started on {name} ({self.mode} mode)")
        return self

    def close(self) -> None:
        for link in self._observers.values():
            link.close()
        self._observers.clear()
        try:
            self._each(lambda n: self.platforms[n].close(), list(self.platforms))  # every one, also if one fails
        finally:
            if self.segment is not None:
                self.segment.teardown()
        if os.environ.get("VOLTTRON_HOME", "").startswith(str(self.base)):
            del os.environ["VOLTTRON_HOME"]
        if not os.environ.get("FT_KEEP_PLATFORMS"):
            shutil.rmtree(self.base, ignore_errors=True)

    # -- partitions (netns=True) ------------------------------------------------------------------
    def cut(self, name: str, *others: str, direction: str = "both", on: bool = True) -> None:
        """iptables in ``name``'s namespace drops its traffic with each of ``others`` (``direction``: "both",
        "out" = what it sends, "in" = what it receives)."""
        if self.segment is None:
            raise RuntimeError("cut needs a Cluster(netns=True)")
        if direction not in ("both", "in", "out"):
            raise ValueError(f"direction must be 'both', 'in' or 'out', got {direction!r}")
        for other in others:
            self.segment.block(name, other, on, inbound=direction != "out", outbound=direction != "in")

    def heal(self, name: str, *others: str, direction: str = "both") -> None:
        self.cut(name, *others, direction=direction, on=False)

    def heal_all(self) -> None:
        """Remove every cut (flush INPUT and OUTPUT in every node's namespace): a failed test leaves none."""
        if self.segment is None:
            return
        for name in self.platforms:
            for chain in ("INPUT", "OUTPUT"):
                self.segment.exec(name, ["iptables", "-F", chain], check=False, capture_output=True)

    # -- the agents' own record -------------------------------------------------------------------
    def transitions(self, name: str) -> list[LoggedTransition]:
        """The failover agent's service transitions on that platform, from its log, oldest first."""
        out = []
        for line in self.log_lines(name):
            m = _TRANSITION.match(line)
            if m and m.group(2) == SERVICE:
                out.append(LoggedTransition(_stamp(m.group(1)), m.group(2), m.group(3), m.group(4), m.group(6)))
        return out

    def decisions(self, name: str) -> list[LoggedDecision]:
        out = []
        for line in self.log_lines(name):
            m = _DECISION.match(line)
            if m:
                out.append(LoggedDecision(_stamp(m.group(1)), m.group(2), m.group(3)))
        return out

    def log_lines(self, name: str) -> list[str]:
        """The platform's volttron.log (every agent of it logs there), as lines."""
        log = self.platforms[name].log
        return log.read_text(errors="replace").splitlines() if log.exists() else []

    # -- faults -----------------------------------------------------------------------------------
    def crash(self, name: str) -> None:
        self.platforms[name].crash()
        self.drop_observer(name)

    def shutdown(self, name: str) -> None:
        self.platforms[name].stop()
        self.drop_observer(name)

    def restart(self, name: str, *, start_failover: bool = True) -> None:
        """Start a stopped/crashed platform again; agents do not auto-start, so start the failover one."""
        p = self.platforms[name]
        p.start()
        if start_failover:
            p.vctl("start", self.failover[name].uuid)

    def stop_failover(self, name: str) -> None:
        self.platforms[name].vctl("stop", self.failover[name].uuid)

    def start_failover(self, name: str) -> None:
        self.platforms[name].vctl("start", self.failover[name].uuid)

    def kill_failover(self, name: str) -> None:
        """SIGKILL of the failover agent's processes only (it goes silent without leaving; a ``stop_failover`` hands
        over). The platform starts each agent with ``AGENT_VIP_IDENTITY`` in its environment; every descendant of
        the platform that carries ours is killed (a launcher and the agent under it both carry it: killing only
        the first one found could leave the agent itself heartbeating), then waited for."""
        proc = self.platforms[name].proc
        assert proc is not None and proc.poll() is None, f"{name}'s platform is not running"
        wanted = f"AGENT_VIP_IDENTITY={FAILOVER}".encode()
        killed: list[int] = []
        todo, seen = [proc.pid], set()
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            try:
                tasks = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for task in tasks:
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
            if pid == proc.pid:
                continue
            try:
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if wanted in env:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        if not killed:
            raise RuntimeError(f"no running {FAILOVER} agent on {name}")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(pid) for pid in killed):
            gevent.sleep(0.02)

    # -- observation ------------------------------------------------------------------------------
    def observer(self, name: str) -> RemoteLink:
        link = self._observers.get(name)
        if link is None:
            from volttron.types.auth import VolttronCredentials
            from volttron.utils import jsonapi

            p = self.platforms[name]
            # Agent() reads $VOLTTRON_HOME/credentials_store/platform.json when it is built (the address
            # carries the server key anyway): point it at a home of THIS cluster, which lives until close()
            os.environ["VOLTTRON_HOME"] = str(p.vhome)
            creds = VolttronCredentials(**jsonapi.loads((p.vhome / "credentials_store" / f"{OBSERVER}.json")
                                                        .read_text()))
            link = RemoteLink(f"observer-{name}", f"{p.address}?serverkey={p.serverkey()}", creds, timeout=5.0)
            self._observers[name] = link
        return link

    def drop_observer(self, name: str) -> None:
        link = self._observers.pop(name, None)
        if link is not None:
            link.close()

    def service_running(self, name: str) -> bool | None:
        """Is the managed agent running on that platform? None when the platform does not answer."""
        if not self.platforms[name].running:
            return False
        try:
            link = self.observer(name)
            uuid = link.call("platform.control", "identity_exists", SERVICE)
            if not uuid:
                return False
            pid, rc = link.call("platform.control", "agent_status", uuid)
            return bool(pid) and rc is None
        except RemoteUnavailable:
            return None

    def status(self, name: str) -> dict[str, Any] | None:
        identity = WITNESS if name == "witness" else FAILOVER
        try:
            return self.observer(name).call(identity, "get_status")
        except RemoteUnavailable:
            return None

    def runners(self) -> set[str]:
        return {n for n in ("primary", "secondary") if self.service_running(n)}


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False

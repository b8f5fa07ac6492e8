"""TwoHostLab: two simulated Docker hosts on one machine, for the tests, the demo and the benchmark.

Not used by the agent. Needs root, iproute2, iptables, nsenter, dockerd and busybox-static.
Each host is a network namespace with its own ``dockerd`` (own data-root, exec-root, pidfile,
socket, config file), started with ``nsenter --net`` (``ip netns exec`` hides the cgroups), joined
by a labs.netns segment whose switch is in the root namespace and carries a private /24, so this
process reaches both hosts. Every name (namespaces, bridge, veths, iptables comment, directories)
carries a run id, so parallel runs never collide. ``close()`` removes everything it made, in reverse
order, even after a failure half-way: containers, daemons (by PID), leftover processes of this run's
containerd (found by this run's unique directory), mounts under the run directory, the segment
(veths, namespaces, iptables rule, bridge), the directory.

Agents run as real processes inside the namespaces: ``lab.start_agent("a", config_path)``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import requests

from labs.netns import NetnsSegment, unused_subnet
from labs.wait import poll_until

# the lab agents' timings (write_config); tests bound their waits generously around them
HB_INTERVAL = 0.2
HB_TIMEOUT = 1.0
RESTART_GRACE = 3.0
STARTUP_GRACE = 5.0
MARGIN = 4.0  # a loaded 2-core machine runs other suites at the same time

IMAGE = "fdk/busybox-web:test"
WEB_PORT = 8080
AGENT_PORT = 8700


def sh(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, timeout=timeout)


def wait_until(cond: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll ``cond`` until it returns a truthy value; raise TimeoutError naming ``what``."""
    return poll_until(cond, timeout, what=what, interval=interval)


@dataclass
class Host:
    key: str  # "a" / "b"
    netns: str
    ip: str
    dir: Path
    dockerd: subprocess.Popen[bytes] | None = None
    client: docker.DockerClient | None = None
    agent: subprocess.Popen[bytes] | None = None
    agent_log: Path | None = None

    @property
    def socket(self) -> str:
        return f"unix://{self.dir}/docker.sock"

    @property
    def agent_url(self) -> str:
        return f"http://{self.ip}:{AGENT_PORT}"

    @property
    def web_url(self) -> str:
        return f"http://{self.ip}:{WEB_PORT}/"


@dataclass
class TwoHostLab:
    run_id: str = field(default_factory=lambda: f"{os.getpid() % 1000:03d}{random.randrange(16**3):03x}")
    base: Path = field(init=False)
    hosts: dict[str, Host] = field(default_factory=dict)
    net: NetnsSegment | None = None
    _made: list[str] = field(default_factory=list)  # what to undo

    def __post_init__(self) -> None:
        self.base = Path(f"/tmp/fdk-{self.run_id}")

    # ------------------------------------------------------------------ set-up

    def open(self) -> TwoHostLab:
        if os.geteuid() != 0:
            raise PermissionError("TwoHostLab needs root (network namespaces, dockerd)")
        for tool in ("ip", "iptables", "nsenter", "dockerd"):
            if shutil.which(tool) is None:
                raise FileNotFoundError(f"TwoHostLab needs {tool} (run scripts/bootstrap.sh)")
        try:
            self._network()
            self._daemons()
            self._image()
        except BaseException:
            self.close()
            raise
        return self

    def _network(self) -> None:
        subnet = unused_subnet("10.231.{}.0/24")
        self.base.mkdir(parents=True)
        self._made.append("dir")
        # the switch in the root namespace, with the gateway address: this process reaches both hosts;
        # no default route in the hosts: nothing in the lab can reach any address outside it (DNS fails at once)
        self.net = NetnsSegment({key: str(subnet.network_address + 11 + i) for i, key in enumerate(("a", "b"))},
                                prefix=f"fdk-{self.run_id}", switch=None,
                                switch_address=str(subnet.network_address + 1))
        for key in self.net.hosts:
            host = Host(key=key, netns=self.net.ns(key), ip=self.net.address(key), dir=self.base / key)
            host.dir.mkdir()
            self.hosts[key] = host
        self.net.up()

    def _start_dockerd(self, host: Host) -> None:
        cfg = host.dir / "daemon.json"
        cfg.write_text("{}\n")
        log = open(host.dir / "dockerd.log", "ab")  # noqa: SIM115 - owned by the process
        assert self.net is not None
        host.dockerd = self.net.popen(
            host.key, ["dockerd", "--config-file", str(cfg), "--data-root", str(host.dir / "data"),
                       "--exec-root", str(host.dir / "exec"), "--pidfile", str(host.dir / "docker.pid"),
                       "-H", host.socket, "--log-level", "warn"],
            net_only=True, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()

    def _wait_dockerd(self, host: Host, timeout: float = 60) -> None:
        def ping() -> bool:
            if host.dockerd is not None and host.dockerd.poll() is not None:
                tail = (host.dir / "dockerd.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"dockerd of host {host.key} exited {host.dockerd.returncode}:\n{tail}")
            try:
                c = docker.DockerClient(base_url=host.socket, timeout=5)
                c.ping()
            except Exception:
                return False
            host.client = c
            return True
        wait_until(ping, timeout, what=f"dockerd of host {host.key}")

    def _daemons(self) -> None:
        self._made.append("daemons")
        for h in self.hosts.values():
            self._start_dockerd(h)
        for h in self.hosts.values():
            self._wait_dockerd(h)

    def _image(self) -> None:
        ctx = self.base / "img"
        (ctx / "rootfs" / "bin").mkdir(parents=True)
        for d in ("www", "tmp", "etc"):
            (ctx / "rootfs" / d).mkdir()
        busybox = shutil.which("busybox") or "/bin/busybox"
        shutil.copy(busybox, ctx / "rootfs" / "bin" / "busybox")
        applets = sh(busybox, "--list").stdout.split()
        for a in applets:
            if a != "busybox":
                (ctx / "rootfs" / "bin" / a).symlink_to("busybox")
        (ctx / "rootfs" / "www" / "index.html").write_text("ok\n")
        (ctx / "Dockerfile").write_text(
            "FROM scratch\nCOPY rootfs/ /\n"
            "HEALTHCHECK --interval=1s --timeout=3s --retries=3 "
            f'CMD ["wget","-q","-O","/dev/null","http://127.0.0.1:{WEB_PORT}/"]\n'
            f'CMD ["httpd","-f","-p","{WEB_PORT}","-h","/www"]\n')
        for h in self.hosts.values():
            assert h.client is not None
            h.client.images.build(path=str(ctx), tag=IMAGE, rm=True)

    # ------------------------------------------------------------------ containers

    def create_web(self, name: str = "web", restart_policy: str = "no", healthcheck: bool = True) -> None:
        """(Re)create the managed container, stopped, on both hosts."""
        for h in self.hosts.values():
            assert h.client is not None
            with contextlib.suppress(docker.errors.NotFound):
                h.client.containers.get(name).remove(force=True)
            kw: dict[str, Any] = {}
            if not healthcheck:
                kw["healthcheck"] = {"test": ["NONE"]}
            h.client.containers.create(IMAGE, name=name, init=True, ports={f"{WEB_PORT}/tcp": WEB_PORT},
                                       restart_policy={"Name": restart_policy} if restart_policy != "no" else None,
                                       **kw)

    def container_running(self, key: str, name: str = "web") -> bool:
        c = self.hosts[key].client
        assert c is not None
        try:
            return bool(c.api.inspect_container(name)["State"]["Running"])
        except docker.errors.NotFound:
            return False

    def container_pid(self, key: str, name: str = "web") -> int:
        c = self.hosts[key].client
        assert c is not None
        return int(c.api.inspect_container(name)["State"]["Pid"])

    def web_answers(self, key: str, timeout: float = 0.5) -> bool:
        try:
            return requests.get(self.hosts[key].web_url, timeout=timeout).status_code == 200
        except requests.RequestException:
            return False

    # ------------------------------------------------------------------ agents

    def write_config(self, path: Path, **overrides: Any) -> Path:
        """A config.py in the documented format for this lab (literal assignments only)."""
        a, b = self.hosts["a"], self.hosts["b"]
        settings: dict[str, Any] = {
            "heartbeat_interval": HB_INTERVAL, "check_heartbeat_interval": HB_INTERVAL,
            "heartbeat_timeout": HB_TIMEOUT, "startup_grace_period": STARTUP_GRACE,
            "restart_grace_period": RESTART_GRACE, "stop_timeout": 2, "request_timeout": 0.5,
            "secret": f"lab-secret-{self.run_id}-0123456789", "containers": ["web"],
            "state_dir": str(self.base / "state"),
        }
        settings.update(overrides)
        servers = {
            "server1": {"endpoint": b.agent_url, "port": AGENT_PORT, "docker_url": a.socket,
                        "state_dir": str(a.dir / "state"), "term_file": str(a.dir / "service" / "term")},
            "server2": {"endpoint": a.agent_url, "port": AGENT_PORT, "docker_url": b.socket,
                        "state_dir": str(b.dir / "state"), "term_file": str(b.dir / "service" / "term")},
        }
        lines = ['"""DockerFailover lab config (generated)."""']
        lines += [f"{k} = {v!r}" for k, v in settings.items()]
        lines.append(f"servers = {json.dumps(servers, indent=4)}")
        path.write_text("\n".join(lines) + "\n")
        return path

    def start_agent(self, key: str, config: Path, extra: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
        h = self.hosts[key]
        server = "server1" if key == "a" else "server2"
        h.agent_log = h.dir / f"agent-{server}.log"
        log = open(h.agent_log, "ab")  # noqa: SIM115 - owned by the process
        assert self.net is not None
        h.agent = self.net.popen(
            key, [sys.executable, "-m", "DockerFailover", "--server", server, "--config", str(config), *extra],
            net_only=True, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        return h.agent

    def stop_agent(self, key: str, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        h = self.hosts[key]
        p = h.agent
        if p is None or p.poll() is not None:
            return None if p is None else p.returncode
        p.send_signal(sig)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            return p.wait(5)

    def status(self, key: str, timeout: float = 1.0) -> dict[str, Any] | None:
        try:
            r = requests.get(self.hosts[key].agent_url + "/status", timeout=timeout)
            return r.json() if r.status_code == 200 else None
        except (requests.RequestException, ValueError):
            return None

    def role(self, key: str) -> str | None:
        st = self.status(key)
        return None if st is None else st["role"]

    def agent_log_text(self, key: str) -> str:
        p = self.hosts[key].agent_log
        return p.read_text(errors="replace") if p and p.exists() else ""

    # ------------------------------------------------------------------ faults

    def cut_link(self, key: str) -> None:
        """Partition host ``key`` from the other host (this process still reaches both)."""
        assert self.net is not None
        self.net.block(key, "b" if key == "a" else "a")

    def heal_link(self, key: str) -> None:
        assert self.net is not None
        self.net.block(key, "b" if key == "a" else "a", on=False)

    def kill_dockerd(self, key: str) -> None:
        h = self.hosts[key]
        assert h.dockerd is not None
        h.dockerd.kill()
        h.dockerd.wait(10)

    def restart_dockerd(self, key: str) -> None:
        h = self.hosts[key]
        self._start_dockerd(h)
        self._wait_dockerd(h)

    # ------------------------------------------------------------------ teardown

    def _run_pids(self) -> list[int]:
        """Processes whose command line names this run's directory (containerd, shims of this run)."""
        marker = str(self.base).encode()
        me = os.getpid()
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit() or int(d) == me:
                continue
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    if marker in f.read():
                        out.append(int(d))
            except OSError:
                continue
        return out

    def close(self) -> None:
        errors: list[str] = []

        def attempt(what: str, fn: Callable[[], Any]) -> None:
            try:
                fn()
            except Exception as e:
                errors.append(f"{what}: {type(e).__name__}: {e}")

        for h in self.hosts.values():
            attempt(f"agent {h.key}", lambda h=h: self.stop_agent(h.key, signal.SIGKILL))
        if "daemons" in self._made:
            for h in self.hosts.values():
                if h.client is not None:
                    def rm_all(c: docker.DockerClient = h.client) -> None:
                        for ctr in c.containers.list(all=True):
                            ctr.remove(force=True)
                    attempt(f"containers {h.key}", rm_all)
                    attempt(f"client {h.key}", h.client.close)
            for h in self.hosts.values():
                if h.dockerd is not None and h.dockerd.poll() is None:
                    h.dockerd.terminate()
            for h in self.hosts.values():
                if h.dockerd is not None:
                    try:
                        h.dockerd.wait(20)
                    except subprocess.TimeoutExpired:
                        h.dockerd.kill()
                        attempt(f"dockerd {h.key}", lambda h=h: h.dockerd.wait(5))  # type: ignore[union-attr]
            # a daemon killed earlier leaves its containerd; this run's dir names it uniquely
            leftovers = self._run_pids()
            for pid in leftovers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                wait_until(lambda: not self._run_pids(), 10, what="leftover lab processes")
            for pid in self._run_pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                      if line.split()[1].startswith(str(self.base) + "/")]
            for m in sorted(mounts, key=len, reverse=True):
                attempt(f"umount {m}", lambda m=m: sh("umount", "-l", m))
        if self.net is not None:
            errors += [f"network: {e}" for e in self.net.teardown()]
        if "dir" in self._made:
            attempt("dir", lambda: shutil.rmtree(self.base))
        self._made.clear()
        self.hosts.clear()
        if errors:
            print("TwoHostLab teardown problems:\n  " + "\n  ".join(errors), file=sys.stderr)

    def __enter__(self) -> TwoHostLab:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

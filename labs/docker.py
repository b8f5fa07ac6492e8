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
import datetime
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
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
HB_TIMEOUT = 1.0  # simple mode
# standard mode (a witness): the active's lease is T - fencing margin (0.853 s with KILL_BOUND); T = 1.5 s leaves a
# lease of 0.647 s, more than two heartbeats (T = 1 s would leave 0.148 s: a config error)
STANDARD_HB_TIMEOUT = 1.5
RESTART_GRACE = 3.0
STARTUP_GRACE = 5.0
MARGIN = 4.0  # a loaded 2-core machine runs other suites at the same time

IMAGE = "fdk/busybox-web:test"
WEB_PORT = 8080
AGENT_PORT = 8700
WITNESS_PORT = 8790
KILL_BOUND = 0.5  # standard mode's S (witness.kill_bound): docker kill of the lab's container takes ~0.1 s
WITNESS_GROUP = "docker-failover"
CONTAINER_DOCKER_URL = "unix:///var/run/docker.sock"  # the agent in a container (write_config(in_container=True))
CONTAINER_STATE_DIR = "/var/lib/docker-failover"


def sh(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, timeout=timeout)


def forget_dead_containerd(exec_root: Path) -> bool:
    """Remove ``containerd.pid`` under ``exec_root`` when it names a process that is gone or a zombie.

    A SIGKILLed dockerd takes its managed containerd with it (parent-death signal). On a host systemd reaps
    it at once; here PID 1 reaps slowly, and the zombie's PID still passes dockerd's liveness check
    (kill(pid, 0)), so the next dockerd waits for that containerd's socket and exits after ~15 s with
    "timeout waiting for containerd to start" (6 of 11 restarts in a 30-minute Docker chaos run: the
    service was down 15 s per restart). A live containerd is left alone: dockerd reconnects to it."""
    pidfile = exec_root / "containerd" / "containerd.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        state = "gone"
    if state not in ("gone", "Z", "X"):
        return False
    with contextlib.suppress(FileNotFoundError):
        pidfile.unlink()
    return True


class DockerdExited(RuntimeError):
    """A dockerd of the lab exited while it was being started (its log's tail in the message)."""


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
    witness: subprocess.Popen[bytes] | None = None
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
        # a, b: the Docker hosts; w: the witness's host (no dockerd)
        self.net = NetnsSegment({key: str(subnet.network_address + 11 + i) for i, key in enumerate(("a", "b", "w"))},
                                prefix=f"fdk-{self.run_id}", switch=None,
                                switch_address=str(subnet.network_address + 1))
        for key in ("a", "b"):
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
                raise DockerdExited(f"dockerd of host {host.key} exited {host.dockerd.returncode}:\n{tail}")
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

    def write_config(self, path: Path, *, witness: bool = False, in_container: bool = False,
                     **overrides: Any) -> Path:
        """A config.py in the documented format for this lab (literal assignments only); ``witness``: standard
        mode with the lab's witness (``start_witness``), heartbeat_timeout ``STANDARD_HB_TIMEOUT``;
        ``in_container``: for agents in containers of the image (the Docker socket mounted at
        /var/run/docker.sock, state in the image's volume /var/lib/docker-failover, no term file)."""
        a, b = self.hosts["a"], self.hosts["b"]
        settings: dict[str, Any] = {
            "heartbeat_interval": HB_INTERVAL, "check_heartbeat_interval": HB_INTERVAL,
            "heartbeat_timeout": STANDARD_HB_TIMEOUT if witness else HB_TIMEOUT, "startup_grace_period": STARTUP_GRACE,
            "restart_grace_period": RESTART_GRACE, "stop_timeout": 2, "request_timeout": 0.5,
            "secret": f"lab-secret-{self.run_id}-0123456789", "containers": ["web"],
            "state_dir": str(self.base / "state"),
        }
        if witness:
            settings["witness"] = {"url": self.witness_url, "secret": self.witness_secret, "group": WITNESS_GROUP,
                                   "kill_bound": KILL_BOUND}
        settings.update(overrides)
        servers = {
            "server1": {"endpoint": b.agent_url, "port": AGENT_PORT, "docker_url": a.socket,
                        "state_dir": str(a.dir / "state"), "term_file": str(a.dir / "service" / "term")},
            "server2": {"endpoint": a.agent_url, "port": AGENT_PORT, "docker_url": b.socket,
                        "state_dir": str(b.dir / "state"), "term_file": str(b.dir / "service" / "term")},
        }
        if in_container:
            settings["state_dir"] = CONTAINER_STATE_DIR
            for srv in servers.values():
                srv.update(docker_url=CONTAINER_DOCKER_URL, state_dir=CONTAINER_STATE_DIR)
                del srv["term_file"]
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

    # ------------------------------------------------------------------ the witness (host w)

    @property
    def witness_ip(self) -> str:
        assert self.net is not None
        return self.net.address("w")

    @property
    def witness_url(self) -> str:
        return f"http://{self.witness_ip}:{WITNESS_PORT}"

    @property
    def witness_secret(self) -> str:
        return f"lab-witness-{self.run_id}-0123456789"

    @property
    def witness_log(self) -> Path:
        return self.base / "witness.log"

    def start_witness(self, timeout: float = STANDARD_HB_TIMEOUT) -> subprocess.Popen[bytes]:
        """The standalone witness (``python -m FailoverWitness``) in namespace w, serving the lab's pair
        (``timeout``: the pair's heartbeat_timeout)."""
        cfg = self.base / "witness.toml"
        cfg.write_text(f'name = "lab-witness"\nlisten = "0.0.0.0"\nport = {WITNESS_PORT}\n\n'
                       f'[groups.{WITNESS_GROUP}]\nsecret = "{self.witness_secret}"\ntimeout = {timeout}\n'
                       f'heartbeat_interval = {HB_INTERVAL}\n')
        log = open(self.witness_log, "ab")  # noqa: SIM115 - owned by the process
        assert self.net is not None
        self.witness = self.net.popen("w", [sys.executable, "-m", "FailoverWitness", "-c", str(cfg)], net_only=True,
                                      stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()

        def answers() -> bool:
            if self.witness is not None and self.witness.poll() is not None:
                raise RuntimeError(f"witness exited {self.witness.returncode}:\n"
                                   f"{self.witness_log.read_text(errors='replace')[-2000:]}")
            try:
                return requests.get(f"{self.witness_url}/health", timeout=0.5).status_code == 200
            except requests.RequestException:
                return False
        wait_until(answers, 15, what="the witness answers")
        return self.witness

    def stop_witness(self, sig: int = signal.SIGTERM) -> None:
        p = self.witness
        if p is None or p.poll() is not None:
            return
        p.send_signal(sig)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)

    # ------------------------------------------------------------------ faults

    def cut(self, key: str, other: str, *, inbound: bool = True, outbound: bool = True, on: bool = True) -> None:
        """Drop traffic in ``key``'s namespace from (``inbound``) and to (``outbound``) ``other`` (a, b or w);
        ``on=False`` removes that cut."""
        assert self.net is not None
        self.net.block(key, other, on, inbound=inbound, outbound=outbound)

    def drop_requests(self, key: str, other: str, on: bool = True, *, inbound: bool = False,
                      outbound: bool = False) -> None:
        """Drop, in ``key``'s namespace, the agents' HTTP requests one way only (TCP to the agent port):
        ``outbound``: ``key``'s requests to ``other``'s agent (its heartbeats and their answers), ``inbound``:
        ``other``'s requests to ``key``'s agent. The other way's requests and answers still pass. ``on=False``
        removes such a rule."""
        assert self.net is not None
        self.net.block(key, other, on, inbound=inbound, outbound=outbound, dport=AGENT_PORT)

    def heal_all(self) -> None:
        """Remove every cut (flush INPUT and OUTPUT in the three namespaces; dockerd's rules live elsewhere)."""
        assert self.net is not None
        for key in ("a", "b", "w"):
            for chain in ("INPUT", "OUTPUT"):
                sh("ip", "netns", "exec", self.net.ns(key), "iptables", "-F", chain)

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

    def restart_dockerd(self, key: str, attempts: int = 3) -> None:
        """Start the host's dockerd again (after a kill), as systemd's Restart= would: a dockerd that exits
        while starting is started again, up to ``attempts`` times. (On a loaded machine one exited with
        "failed to start containerd: timeout waiting for containerd to start" 30 minutes into a chaos run;
        the cause was ``forget_dead_containerd``'s zombie.)"""
        h = self.hosts[key]
        for attempt in range(1, attempts + 1):
            forget_dead_containerd(h.dir / "exec")
            self._start_dockerd(h)
            try:
                self._wait_dockerd(h)
                return
            except DockerdExited as e:
                if attempt == attempts:
                    raise
                print(f"labs.docker: {str(e).splitlines()[0]}; starting it again ({attempt}/{attempts - 1})",
                      file=sys.stderr)

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
        attempt("witness", lambda: self.stop_witness(signal.SIGKILL))
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


# ---------------------------------------------------------------------------------------------- who runs the service

LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\S+) ")


def log_times(text: str, needle: str) -> list[float]:
    """Wall times (epoch seconds) of the agent log lines containing ``needle`` (the log's local-time stamps)."""
    out = []
    for line in text.splitlines():
        m = LOG_TIME.match(line)
        if m and needle in line:
            out.append(datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp())
    return out


@dataclass
class ServiceTimeline:
    """Records which host runs the managed container: every ``start``/``die`` event of each host's dockerd with
    the daemon's own nanosecond timestamp (both daemons read this machine's clock), and a sampler that inspects
    both hosts every ``period`` seconds. ``overlap()`` is the double service by the daemons' events (exact);
    ``sampled_overlap()`` the sampler's view (misses anything shorter than a period)."""

    lab: TwoHostLab
    name: str = "web"
    period: float = 0.05
    events: list[tuple[float, str, str]] = field(default_factory=list)  # (wall, host, start|die)
    samples: list[tuple[float, bool, bool]] = field(default_factory=list)  # (wall, runs on a, runs on b)
    _streams: list[Any] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    started_at: float = 0.0
    initial: dict[str, bool] = field(default_factory=dict)

    def start(self) -> ServiceTimeline:
        self.started_at = time.time()
        for key, h in self.lab.hosts.items():
            client = docker.DockerClient(base_url=h.socket, timeout=10)
            stream = client.api.events(decode=True, since=int(self.started_at) - 1,
                                       filters={"type": "container", "container": self.name})
            self._streams.append((client, stream))
            self.initial[key] = self.lab.container_running(key, self.name)
            t = threading.Thread(target=self._follow, args=(key, stream), daemon=True, name=f"timeline-{key}")
            t.start()
            self._threads.append(t)
        sampler = threading.Thread(target=self._sample, daemon=True, name="timeline-sampler")
        sampler.start()
        self._threads.append(sampler)
        return self

    def _follow(self, key: str, stream: Any) -> None:
        with contextlib.suppress(Exception):  # the stream is closed by stop()
            for ev in stream:
                action = str(ev.get("Action") or ev.get("status") or "")
                at = int(ev["timeNano"]) / 1e9
                # ``since`` is whole seconds and reaches up to 2 s back: an event from before ``started_at`` is
                # already in ``initial`` (read after it); kept, a container stopped while the pair was set up
                # read as a death inside the test (CI flake, test_one_way_cut_..._witness_changes_nothing)
                if action in ("start", "die") and at >= self.started_at:
                    self.events.append((at, key, action))

    def _sample(self) -> None:
        while not self._stop.is_set():
            t = time.time()
            self.samples.append((t, self.lab.container_running("a", self.name),
                                 self.lab.container_running("b", self.name)))
            self._stop.wait(max(0.0, self.period - (time.time() - t)))

    def stop(self) -> None:
        time.sleep(0.2)  # the daemons' last events reach the streams within milliseconds
        self._stop.set()
        for client, stream in self._streams:
            with contextlib.suppress(Exception):
                stream.close()
            with contextlib.suppress(Exception):
                client.close()
        for t in self._threads:
            t.join(5)

    def intervals(self, key: str, until: float | None = None) -> list[tuple[float, float]]:
        """When the container ran on host ``key``, by its daemon's events (``until``: end of an open interval)."""
        end_of_run = until if until is not None else time.time()
        out, began = [], (self.started_at if self.initial.get(key) else None)
        for t, _host, action in sorted(e for e in self.events if e[1] == key):
            if action == "start" and began is None:
                began = t
            elif action == "die" and began is not None:
                out.append((began, t))
                began = None
        if began is not None:
            out.append((began, end_of_run))
        return out

    def overlap(self) -> float:
        """Seconds during which the container ran on both hosts (daemon events)."""
        end = time.time()
        total = 0.0
        for a0, a1 in self.intervals("a", end):
            for b0, b1 in self.intervals("b", end):
                total += max(0.0, min(a1, b1) - max(a0, b0))
        return total

    def sampled_overlap(self) -> float:
        return sum(self.period for _, a, b in self.samples if a and b)

    def first(self, key: str, action: str, after: float = 0.0) -> float | None:
        times = sorted(t for t, host, act in self.events if host == key and act == action and t >= after)
        return times[0] if times else None

    def describe(self) -> str:
        return "\n".join(f"{t:.3f} {host} {action}" for t, host, action in sorted(self.events))

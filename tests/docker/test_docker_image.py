"""The DockerFailover image and compose file, built and run as a user deploys them (issue 14), on the lab's two
real dockerd hosts (one per network namespace) with no registry and no package index.

Once per session the image is built (``labs.docker_image``): a base imported from a root file system made of this
machine's Python 3.11, the dependencies from a wheelhouse repacked from the test venv (the same pins), then
``docker build --network=none --build-arg BASE_IMAGE=... --build-arg PIP_NO_INDEX=1`` of the unchanged
``DockerFailover/deploy/Dockerfile`` on host A, and ``docker save | docker load`` to host B. The agents then run
IN CONTAINERS of that image, as the documented deployment says: host network (the lab namespace), the host's
Docker socket at /var/run/docker.sock, the config at /app/config.py, the server name in DOCKER_FAILOVER_SERVER.
Simple mode (no witness), lab timings: heartbeat 0.2 s, timeout 1 s; bounds are generous (MARGIN) because other
suites load the machine; the figures printed (image size, the agent's start time) are recorded in docs/docker.md.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
import requests
from docker.models.containers import Container

from labs.docker import AGENT_PORT, HB_TIMEOUT, IMAGE, MARGIN, TwoHostLab, wait_until
from labs.docker_image import IMAGE_TAG, KEEPER_SOCKET, REPO, Built

pytestmark = pytest.mark.integration

AGENT = "failover-agent"  # the agent's container on each host
COMPOSE_FILE = REPO / "DockerFailover" / "deploy" / "compose.yaml"
COMPOSE_LAB = Path(__file__).with_name("compose.lab.yaml")
SERVER = {"a": "server1", "b": "server2"}
MiB = 1024 * 1024


@dataclass
class ContainerPair:
    """Two agents in containers of the image, one per lab host."""

    lab: TwoHostLab
    config: Path

    def client(self, key: str) -> docker.DockerClient:
        c = self.lab.hosts[key].client
        assert c is not None
        return c

    def start(self, key: str) -> float:
        """``docker run`` the agent on host ``key``; returns the seconds until its /health answers 200."""
        h = self.lab.hosts[key]
        with contextlib.suppress(docker.errors.NotFound):
            self.client(key).containers.get(AGENT).remove(force=True, v=True)
        t0 = time.monotonic()
        self.client(key).containers.run(
            IMAGE_TAG, name=AGENT, detach=True, network_mode="host",
            environment={"DOCKER_FAILOVER_SERVER": SERVER[key]},
            volumes={str(self.config): {"bind": "/app/config.py", "mode": "ro"},
                     str(h.dir / "docker.sock"): {"bind": "/var/run/docker.sock", "mode": "rw"}})
        with self.explained():
            wait_until(lambda: health_ok(self.lab, key), 30, interval=0.01, what=f"agent {key}'s /health")
        return time.monotonic() - t0

    def container(self, key: str) -> Container:
        return self.client(key).containers.get(AGENT)

    def roles(self) -> tuple[str | None, str | None]:
        return self.lab.role("a"), self.lab.role("b")

    def logs(self) -> str:
        out = []
        for key in ("a", "b"):
            try:
                text = self.container(key).logs().decode(errors="replace")
            except docker.errors.DockerException as e:
                text = f"({type(e).__name__}: {e})"
            out.append(f"--- agent container {key} ---\n{text[-6000:]}")
        return "\n".join(out)

    @contextlib.contextmanager
    def explained(self) -> Iterator[None]:
        try:
            yield
        except (AssertionError, TimeoutError) as e:
            raise AssertionError(f"{e}\n{self.logs()}") from None


def health_ok(lab: TwoHostLab, key: str) -> bool:
    try:
        return requests.get(f"{lab.hosts[key].agent_url}/health", timeout=0.5).status_code == 200
    except requests.RequestException:
        return False


def reset_hosts(lab: TwoHostLab) -> None:
    for h in lab.hosts.values():
        if h.dockerd is None or h.dockerd.poll() is not None:
            lab.restart_dockerd(h.key)
        lab.heal_link(h.key)


@pytest.fixture
def image_pair(lab: TwoHostLab, image: Built, tmp_path: Path) -> Iterator[ContainerPair]:
    """Agents in containers on both hosts: A active and serving, B passive. Removed afterwards, even on failure."""
    reset_hosts(lab)
    lab.create_web()
    pair = ContainerPair(lab, lab.write_config(tmp_path / "config.py", in_container=True))
    try:
        pair.start("a")
        pair.start("b")
        with pair.explained():
            wait_until(lambda: pair.roles() == ("active", "passive") and lab.web_answers("a"), 20,
                       what="server1 active and serving, server2 passive")
        yield pair
    finally:
        for key in ("a", "b"):
            with contextlib.suppress(docker.errors.DockerException):
                pair.container(key).remove(force=True, v=True)


def test_image_is_small_starts_fast_and_its_healthcheck_answers(lab: TwoHostLab, image: Built,
                                                                 tmp_path: Path) -> None:
    """Built offline from the unchanged Dockerfile; its HEALTHCHECK makes docker report the agents healthy;
    ``--check`` passes on the mounted config; the image size and the agent's start time are printed."""
    reset_hosts(lab)
    lab.create_web()
    pair = ContainerPair(lab, lab.write_config(tmp_path / "config.py", in_container=True))
    client = pair.client("a")
    try:
        out = client.containers.run(IMAGE_TAG, ["--server", "server1", "--check"], remove=True, network_mode="none",
                                    volumes={str(pair.config): {"bind": "/app/config.py", "mode": "ro"}},
                                    stdout=True, stderr=True)
        assert b"server1" in out
        started = {key: pair.start(key) for key in ("a", "b")}
        with pair.explained():
            for key in ("a", "b"):
                # HEALTHCHECK --interval=5s: the first probe runs 5 s after the start
                wait_until(lambda key=key: pair.container(key).attrs["State"].get("Health", {}).get("Status")
                           == "healthy", 5 + 2 * 5 + MARGIN, interval=0.2, what=f"docker inspect: agent {key} healthy")
        cfg = client.images.get(IMAGE_TAG).attrs["Config"]
        assert cfg["Healthcheck"]["Test"][0] == "CMD" and cfg["Entrypoint"] == ["docker-failover"]
        print(f"\nimage {image.size / MiB:.0f} MB (base {image.base_size / MiB:.0f} MB); docker run -> /health 200: "
              f"A {started['a']:.2f} s, B {started['b']:.2f} s")
        assert image.size < 400 * MiB  # generous: measured 79 MB here (docs/docker.md)
        assert max(started.values()) < 20  # generous: measured 0.43-0.50 s here (docs/docker.md)
    finally:
        for key in ("a", "b"):
            with contextlib.suppress(docker.errors.DockerException):
                pair.container(key).remove(force=True, v=True)


def test_image_agents_hand_over_when_the_managed_container_is_killed(lab: TwoHostLab,
                                                                       image_pair: ContainerPair) -> None:
    pair = image_pair
    with pair.explained():
        lab.hosts["a"].client.containers.get("web").kill()  # type: ignore[union-attr]
        wait_until(lambda: lab.role("b") == "active" and lab.web_answers("b"), MARGIN + 2,
                   what="B active and serving")
        st_a = lab.status("a")
        assert st_a is not None and st_a["role"] == "passive"
        assert [t["code"] for t in st_a["transitions"]][-2:] == ["container_failed", "handed_over"]
        assert lab.status("b")["last_transition"]["code"] == "handover_accepted"  # type: ignore[index]
        assert not lab.container_running("a")
        assert pair.container("a").status == "running" and pair.container("b").status == "running"


def test_image_agent_container_killed_b_takes_over_and_a_returns_passive(lab: TwoHostLab,
                                                                          image_pair: ContainerPair) -> None:
    pair = image_pair
    with pair.explained():
        t0 = time.monotonic()
        pair.container("a").kill()  # docker kill of the agent's container: the agent dies with it
        wait_until(lambda: lab.role("b") == "active" and lab.web_answers("b"), HB_TIMEOUT + MARGIN,
                   what="B active and serving")
        took = time.monotonic() - t0
        st_b = lab.status("b")
        assert st_b is not None and st_b["last_transition"]["code"] == "peer_heartbeat_lost" and st_b["term"] == 2
        assert lab.container_running("a")  # simple mode: a dead agent stops nothing (docs/docker.md, Limits)
        pair.container("a").start()  # the same container again: its state volume keeps term 1
        wait_until(lambda: lab.role("a") == "passive" and not lab.container_running("a"), 10 + MARGIN,
                   what="A back as passive with its stray container stopped")
        st_a = lab.status("a")
        assert st_a is not None and st_a["term"] == 2 and st_a["last_transition"]["code"] == "peer_active"
        assert lab.role("b") == "active" and lab.web_answers("b")
        print(f"\nagent container killed -> B active and serving in {took:.2f} s")


# ---------------------------------------------------------------------------------------------- compose.yaml

def compose_command() -> list[str]:
    """Debian's docker-compose (1.29, bootstrap.sh installs it), else the compose plugin of the docker CLI."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True,
                                                 timeout=30).returncode == 0:
        return ["docker", "compose"]
    raise AssertionError("no compose: neither docker-compose (Debian's package, scripts/bootstrap.sh) nor the "
                         "docker compose plugin is installed")


@dataclass
class Compose:
    lab: TwoHostLab
    config: Path
    argv: list[str]

    def __call__(self, key: str, *args: str, timeout: float = 120) -> str:
        h = self.lab.hosts[key]
        env = {**os.environ, "DOCKER_HOST": h.socket, "FAILOVER_SERVER": SERVER[key],
               "FDK_CONFIG": str(self.config), "FDK_DOCKER_SOCKET": str(h.dir / "docker.sock")}
        r = subprocess.run([*self.argv, "-p", "docker-failover", "-f", str(COMPOSE_FILE), "-f", str(COMPOSE_LAB),
                            *args], env=env, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise AssertionError(f"{' '.join(r.args)} on host {key}: exit {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r.stdout + r.stderr

    def logs(self) -> str:
        return "\n".join(f"--- compose logs {key} ---\n{self(key, 'logs', '--no-color', 'keeper', 'failover')[-8000:]}"
                         for key in ("a", "b"))


def test_compose_file_runs_the_pair_and_hands_over(lab: TwoHostLab, image: Built, tmp_path: Path) -> None:
    """compose.yaml as its header says, on each host: ``FAILOVER_SERVER=serverN compose up -d failover`` and
    ``compose --profile managed create web`` (merged with tests/docker/compose.lab.yaml: the lab's socket, config
    and web image), in standard mode (the lab's witness, ``fence_keeper`` = the keeper service's socket): the
    keeper services start first and each agent connects to its own; A active and serving, B passive; the web
    container killed on A -> B serves."""
    reset_hosts(lab)
    lab.heal_all()
    lab.start_witness()
    for h in lab.hosts.values():
        assert h.client is not None
        with contextlib.suppress(docker.errors.NotFound):
            h.client.containers.get("web").remove(force=True)
    config = lab.write_config(tmp_path / "config.py", in_container=True, witness=True, fence_keeper=KEEPER_SOCKET)
    compose = Compose(lab, config, compose_command())
    try:
        for key in ("a", "b"):
            compose(key, "--profile", "managed", "create", "web")
            compose(key, "up", "-d", "--no-build", "failover")
        try:
            wait_until(lambda: (lab.role("a"), lab.role("b")) == ("active", "passive") and lab.web_answers("a"), 30,
                       what="server1 active and serving, server2 passive")
            for key in ("a", "b"):
                c = lab.hosts[key].client
                assert c is not None
                web = c.containers.get("web").attrs
                assert web["Config"]["Image"] == IMAGE and web["HostConfig"]["Init"] is True
                agent = c.containers.list(filters={"label": "com.docker.compose.service=failover"})
                assert len(agent) == 1 and agent[0].attrs["HostConfig"]["NetworkMode"] == "host"
                keeper = c.containers.list(filters={"label": "com.docker.compose.service=keeper"})
                assert len(keeper) == 1 and keeper[0].attrs["HostConfig"]["NetworkMode"] == "none"
                assert (lab.status(key) or {})["standard"]["keeper"] == "connected"
            assert AGENT_PORT == 8700  # compose.yaml's DOCKER_FAILOVER_PORT, which the HEALTHCHECK reads
            lab.hosts["a"].client.containers.get("web").kill()  # type: ignore[union-attr]
            wait_until(lambda: lab.role("b") == "active" and lab.web_answers("b"), MARGIN + 2,
                       what="B active and serving after A's web was killed")
            assert not lab.container_running("a")
        except (AssertionError, TimeoutError) as e:
            raise AssertionError(f"{e}\n{compose.logs()}") from None
    finally:
        for key in ("a", "b"):
            with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                compose(key, "--profile", "managed", "down", "-v", "--timeout", "5")
        lab.stop_witness(signal.SIGKILL)

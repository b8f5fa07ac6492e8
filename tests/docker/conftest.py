"""Fixtures of the DockerFailover tests: one two-host lab (two namespaces, two real dockerd) per session,
and per test a fresh pair of agents with fresh containers and term files."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from labs.docker import TwoHostLab, wait_until
from labs.docker_image import BASE_TAG, IMAGE_TAG, Built, build_image, copy_image

os.environ.setdefault("FT_PREFIX", "/opt/failover-toolkit")
MIB = 1024 * 1024


@pytest.fixture(scope="session")
def lab() -> Iterator[TwoHostLab]:
    lab = TwoHostLab()
    with lab:
        yield lab


@pytest.fixture(scope="session")
def image(lab: TwoHostLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """The image, built on host A and loaded into host B; removed (with its base) at the end, even on failure."""
    work = tmp_path_factory.mktemp("image")
    a, b = lab.hosts["a"].client, lab.hosts["b"].client
    assert a is not None and b is not None
    try:
        t0 = time.monotonic()
        built = build_image(a, work)
        t1 = time.monotonic()
        copy_image(a, b)
        print(f"\nimage {IMAGE_TAG}: {built.size / MIB:.0f} MB (base {built.base_size / MIB:.0f} MB); built in "
              f"{t1 - t0:.1f} s ({', '.join(f'{k} {v:.1f} s' for k, v in built.seconds.items())}), "
              f"copied to host B in {time.monotonic() - t1:.1f} s")
        yield built
    finally:
        for client in (a, b):
            for ctr in client.containers.list(all=True, filters={"ancestor": IMAGE_TAG}):
                with contextlib.suppress(docker.errors.APIError):
                    ctr.remove(force=True, v=True)
            for tag in (IMAGE_TAG, BASE_TAG):
                with contextlib.suppress(docker.errors.ImageNotFound):
                    client.images.remove(tag, force=True)
            with contextlib.suppress(docker.errors.APIError):
                client.images.prune(filters={"dangling": True})
        shutil.rmtree(work, ignore_errors=True)


@dataclass
class Pair:
    lab: TwoHostLab
    config: Path

    def start(self, key: str) -> None:
        self.lab.start_agent(key, self.config)

    def roles(self) -> tuple[str | None, str | None]:
        return self.lab.role("a"), self.lab.role("b")

    @contextlib.contextmanager
    def explained(self) -> Iterator[None]:
        """Any failed assertion or wait inside carries both agents' logs."""
        try:
            yield
        except (AssertionError, TimeoutError) as e:
            raise AssertionError(f"{e}\n{self.logs()}") from None

    def logs(self) -> str:
        return f"--- agent a ---\n{self.lab.agent_log_text('a')}\n--- agent b ---\n{self.lab.agent_log_text('b')}"


def _fresh(lab: TwoHostLab, tmp_path: Path, restart_policy: str = "no", **config: object) -> Pair:
    for h in lab.hosts.values():
        if h.dockerd is None or h.dockerd.poll() is not None:
            lab.restart_dockerd(h.key)
        shutil.rmtree(h.dir / "state", ignore_errors=True)
        shutil.rmtree(h.dir / "service", ignore_errors=True)
        for log in h.dir.glob("agent-*.log"):
            log.unlink()
        lab.heal_link(h.key)
    lab.create_web(restart_policy=restart_policy)
    return Pair(lab, lab.write_config(tmp_path / "config.py", **config))


@pytest.fixture
def make_pair(lab: TwoHostLab, tmp_path: Path) -> Iterator:
    """make_pair(restart_policy=..., **config) -> a Pair with both agents running, A active and serving."""
    made: list[Pair] = []

    def make(restart_policy: str = "no", start: bool = True, **config: object) -> Pair:
        """start=False: fresh containers and config only; the test starts the agents itself."""
        p = _fresh(lab, tmp_path, restart_policy, **config)
        made.append(p)
        if start:
            p.start("a")
            p.start("b")
            try:
                wait_until(lambda: p.roles() == ("active", "passive") and lab.web_answers("a"), 20,
                           what="server1 active and serving, server2 passive")
            except TimeoutError:
                raise AssertionError(p.logs()) from None
        return p

    yield make
    for key in ("a", "b"):
        lab.stop_agent(key, signal.SIGKILL)
        lab.heal_link(key)

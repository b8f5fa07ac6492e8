"""Standard mode as the image deploys it: the agents AND their fence keepers in containers of the image, on the
lab's two real dockerd hosts with the lab's real witness (a third namespace).

Each host runs ``failover-keeper`` (``python -m DockerFailover.fence --listen /run/docker-failover/keeper.sock``,
the host's Docker socket, no network) and ``failover-agent`` (``fence_keeper`` = that socket, the directory shared
with the keeper), as compose.yaml's two services do. Faults: ``docker kill`` of the active's agent container (its
keeper sees end-of-file and kills the managed container; before the fix the keeper died with the agent and the
service ran twice for the rest of the window: bench/docker_keeper_in_container.py), ``docker pause`` of it past
the timeout (the keeper kills at the lease's end), ``docker kill`` of a keeper container alone (nothing changes;
an alert; the agent reconnects to the keeper started again and tells it its lease), agents without keepers at
start (nothing starts until the keepers come), and the old layout (``fence_keeper = "spawn"`` in a container),
which the agent now refuses with exit 2. Double service is measured as in test_docker_standard_lab.py (the daemons'
start/die events and a 50 ms sampler); bounds are generous (MARGIN), the figures are printed for docs/docker.md.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from labs.docker import MARGIN, STANDARD_HB_TIMEOUT, ServiceTimeline, TwoHostLab, wait_until
from labs.docker_image import (
    AGENT_CONTAINER,
    KEEPER_CONTAINER,
    KEEPER_SOCKET,
    Built,
    container_logs,
    remove_container,
    run_agent,
    run_keeper,
)

pytestmark = pytest.mark.integration
T = STANDARD_HB_TIMEOUT


@dataclass
class KeptPair:
    lab: TwoHostLab
    config: Path

    def container(self, key: str, name: str) -> docker.models.containers.Container:
        client = self.lab.hosts[key].client
        assert client is not None
        return client.containers.get(name)

    def roles(self) -> tuple[str | None, str | None]:
        return self.lab.role("a"), self.lab.role("b")

    def std(self, key: str) -> dict:
        return (self.lab.status(key) or {}).get("standard") or {}

    def alerts(self, key: str) -> list[str]:
        return [x["code"] for x in (self.lab.status(key) or {}).get("alerts", [])]

    def ping(self, key: str) -> str:
        """The keeper's own answer (``docker exec`` of ``--ping`` in its container): holding / idle, which agent."""
        r = self.container(key, KEEPER_CONTAINER).exec_run(
            ["python", "-m", "DockerFailover.fence", "--ping", KEEPER_SOCKET])
        return r.output.decode(errors="replace").strip()

    def logs(self) -> str:
        return "\n".join(f"--- {name} {key} ---\n{container_logs(self.lab, key, name)[-5000:]}"
                         for key in ("a", "b") for name in (KEEPER_CONTAINER, AGENT_CONTAINER))

    @contextlib.contextmanager
    def explained(self) -> Iterator[None]:
        try:
            yield
        except (AssertionError, TimeoutError) as e:
            raise AssertionError(f"{e}\n{self.logs()}") from None


def remove_all(lab: TwoHostLab) -> None:
    for key in ("a", "b"):
        for name in (AGENT_CONTAINER, KEEPER_CONTAINER):
            with contextlib.suppress(docker.errors.DockerException):
                remove_container(lab, key, name)


def fresh(lab: TwoHostLab, tmp_path: Path, **config: object) -> KeptPair:
    for h in lab.hosts.values():
        if h.dockerd is None or h.dockerd.poll() is not None:
            lab.restart_dockerd(h.key)
    lab.heal_all()
    lab.start_witness()
    lab.create_web()
    config.setdefault("fence_keeper", KEEPER_SOCKET)
    return KeptPair(lab, lab.write_config(tmp_path / "config.py", witness=True, in_container=True, **config))


def wait_serving(pair: KeptPair, active: str = "a", timeout: float = 20) -> None:
    lab = pair.lab
    passive = "b" if active == "a" else "a"
    wait_until(lambda: lab.role(active) == "active" and lab.role(passive) == "passive" and lab.web_answers(active),
               timeout, what=f"{active} active and serving, {passive} passive")


@pytest.fixture
def kept_pair(lab: TwoHostLab, image: Built, tmp_path: Path) -> Iterator[KeptPair]:
    """Keepers then agents in containers on both hosts: A active and serving, B passive, the witness hearing both."""
    pair = fresh(lab, tmp_path)
    try:
        for key in ("a", "b"):
            run_keeper(lab, key)
        for key in ("a", "b"):
            run_agent(lab, key, pair.config, keeper=True)
        with pair.explained():
            wait_serving(pair)
            wait_until(lambda: (pair.std("b").get("witness_says_peer") or {}).get("state") == "up", 10,
                       what="B's witness ack says A is up")
            assert pair.std("a")["keeper"] == "connected" and pair.ping("a").startswith("pong holding agent=server1")
        yield pair
    finally:
        remove_all(lab)
        lab.heal_all()
        lab.stop_witness(signal.SIGKILL)


def no_double_service(lab: TwoHostLab, timeline: ServiceTimeline, *, active: str, hold: float) -> None:
    """For ``hold`` seconds: ``active`` active and the only host running the container; then 0 s of overlap by
    the daemons' events and by the sampler, over the whole timeline."""
    other = "b" if active == "a" else "a"
    end = time.monotonic() + hold
    while time.monotonic() < end:
        assert lab.role(active) == "active" and lab.container_running(active) and not lab.container_running(other)
        time.sleep(0.1)
    timeline.stop()
    assert timeline.overlap() == 0.0, timeline.describe()
    assert timeline.sampled_overlap() == 0.0, timeline.samples


def test_agent_container_killed_its_keeper_container_kills_the_service_before_b_takes_over(
        lab: TwoHostLab, kept_pair: KeptPair) -> None:
    pair = kept_pair
    with pair.explained():
        timeline = ServiceTimeline(lab).start()
        fault_at = time.time()
        pair.container("a", AGENT_CONTAINER).kill()
        wait_until(lambda: lab.role("b") == "active" and lab.web_answers("b"), T + 1 + MARGIN, what="B takes over")
        die, start = timeline.first("a", "die", after=fault_at), timeline.first("b", "start", after=fault_at)
        assert die is not None and start is not None and die < start, timeline.describe()
        assert die - fault_at < 1.0, timeline.describe()  # at the connection's end-of-file, not at the lease's end
        assert start - fault_at >= T * 0.99 - 0.25  # B waited its timeout since its last receipt (sent before)
        assert "the agent server1's connection closed while it held a lease" in container_logs(lab, "a",
                                                                                               KEEPER_CONTAINER)
        no_double_service(lab, timeline, active="b", hold=T)
        assert pair.ping("a").startswith("pong idle agent=-")  # still there, for the agent started again
        print(f"\nagent container killed: A's container killed by its keeper {die - fault_at:.3f} s after the kill; "
              f"B's started {start - fault_at:.3f} s after it (gap {start - die:.3f} s); overlap "
              f"{timeline.overlap():.3f} s")
        run_agent(lab, "a", pair.config, keeper=True)  # back: passive beside B, and its keeper accepts it
        wait_until(lambda: lab.role("a") == "passive" and pair.std("a").get("keeper") == "connected", 20,
                   what="A back, passive, with its keeper")


def test_agent_container_paused_past_the_timeout_the_keeper_kills_at_the_lease_end(
        lab: TwoHostLab, kept_pair: KeptPair) -> None:
    pair = kept_pair
    agent = pair.container("a", AGENT_CONTAINER)
    with pair.explained():
        timeline = ServiceTimeline(lab).start()
        fault_at = time.time()
        agent.pause()  # the cgroup freezer: the agent stops, its connection to the keeper stays open
        try:
            wait_until(lambda: lab.role("b") == "active" and lab.web_answers("b"), T + 1 + MARGIN,
                       what="B takes over")
            die, start = timeline.first("a", "die", after=fault_at), timeline.first("b", "start", after=fault_at)
            assert die is not None and start is not None and die < start, timeline.describe()
            assert "lease ran out" in container_logs(lab, "a", KEEPER_CONTAINER)
        finally:
            agent.unpause()
        wait_until(lambda: lab.role("a") == "passive", 5 + MARGIN, what="A passive after the thaw")
        no_double_service(lab, timeline, active="b", hold=2 * T)
        assert "[self_fenced]" in container_logs(lab, "a", AGENT_CONTAINER)
        print(f"\nagent container paused: A's container killed by its keeper {die - fault_at:.3f} s after the pause; "
              f"B's started {start - fault_at:.3f} s after it (gap {start - die:.3f} s)")


def test_keeper_container_killed_changes_nothing_and_the_agent_reconnects_and_is_guarded_again(
        lab: TwoHostLab, kept_pair: KeptPair) -> None:
    pair = kept_pair
    keeper = pair.container("a", KEEPER_CONTAINER)
    with pair.explained():
        timeline = ServiceTimeline(lab).start()
        keeper.kill()
        wait_until(lambda: "keeper_unreachable" in pair.alerts("a"), 5, what="A's keeper_unreachable alert")
        assert pair.std("a")["keeper"] == "unreachable"
        end = time.monotonic() + 2 * T  # nothing changes for the service
        while time.monotonic() < end:
            assert pair.roles() == ("active", "passive") and lab.container_running("a")
            assert not lab.container_running("b")
            time.sleep(0.1)
        assert timeline.first("a", "die") is None and timeline.first("b", "start") is None, timeline.describe()
        t_back = time.monotonic()
        keeper.start()  # the same container again (restart policy, or the operator)
        wait_until(lambda: pair.std("a").get("keeper") == "connected", 10, what="A reconnected to its keeper")
        reconnect = time.monotonic() - t_back
        assert "keeper_back" in pair.alerts("a")
        wait_until(lambda: pair.ping("a").startswith("pong holding agent=server1"), 5,
                   what="the new keeper holds A's lease")
        # and it guards: the agent's container killed now, the restarted keeper kills the service
        fault_at = time.time()
        pair.container("a", AGENT_CONTAINER).kill()
        wait_until(lambda: lab.role("b") == "active" and lab.web_answers("b"), T + 1 + MARGIN, what="B takes over")
        die, start = timeline.first("a", "die", after=fault_at), timeline.first("b", "start", after=fault_at)
        assert die is not None and start is not None and die < start and die - fault_at < 1.0, timeline.describe()
        no_double_service(lab, timeline, active="b", hold=T)
        print(f"\nkeeper container killed: nothing moved for {2 * T:g} s; keeper started again -> agent reconnected "
              f"in {reconnect:.2f} s; then the agent killed: A's container killed {die - fault_at:.3f} s later")


def test_agents_without_keepers_start_nothing_until_the_keepers_come(lab: TwoHostLab, image: Built,
                                                                    tmp_path: Path) -> None:
    pair = fresh(lab, tmp_path)
    try:
        with pair.explained():
            timeline = ServiceTimeline(lab).start()
            for key in ("a", "b"):
                run_agent(lab, key, pair.config, keeper=True)
            wait_until(lambda: "keeper_unreachable" in pair.alerts("a") and "keeper_unreachable" in pair.alerts("b"),
                       10, what="both agents alert keeper_unreachable")
            time.sleep(3 * T)  # a cold start takes ~1 s with keepers (two heartbeats heard idle + a claim)
            assert not lab.container_running("a") and not lab.container_running("b")
            assert timeline.first("a", "start") is None and timeline.first("b", "start") is None
            assert pair.roles() == ("starting", "starting"), pair.roles()
            for key in ("a", "b"):
                run_keeper(lab, key)
            wait_serving(pair)
            timeline.stop()
            assert timeline.overlap() == 0.0, timeline.describe()
    finally:
        remove_all(lab)
        lab.stop_witness(signal.SIGKILL)


def test_standard_mode_with_a_spawned_keeper_in_a_container_exits_2_naming_the_key(
        lab: TwoHostLab, image: Built, tmp_path: Path) -> None:
    """The old layout (the keeper the agent's child in the agent's container) is refused: exit 2, the message
    names fence_keeper and the fix; ``--check`` says the same. Nothing is started."""
    pair = fresh(lab, tmp_path, fence_keeper="spawn")
    try:
        with pair.explained():
            agent = run_agent(lab, "a", pair.config, keeper=False)
            assert agent.wait(timeout=30)["StatusCode"] == 2
            out = container_logs(lab, "a", AGENT_CONTAINER)
            assert 'standard mode with fence_keeper = "spawn" in a container' in out, out
            assert "runs outside this container's PID namespace" in out  # the host's daemon, seen from inside
            assert 'set fence_keeper = "/run/docker-failover/keeper.sock"' in out
            client = lab.hosts["a"].client
            assert client is not None
            check = client.containers.run("docker-failover:latest", ["--server", "server1", "--check"],
                                          network_mode="none", detach=True,
                                          volumes={str(pair.config): {"bind": "/app/config.py", "mode": "ro"}})
            try:
                assert check.wait(timeout=30)["StatusCode"] == 2
                assert "fence_keeper" in check.logs().decode()
            finally:
                check.remove(force=True)
            assert not lab.container_running("a")
    finally:
        remove_all(lab)
        lab.stop_witness(signal.SIGKILL)


def test_both_agent_containers_stopped_the_last_detaches_and_its_keeper_kills_nothing(
        lab: TwoHostLab, kept_pair: KeptPair) -> None:
    """An upgrade of both (docs/docker.md, Shutdown): ``docker stop`` of B's agent, then of A's. A has nobody to
    hand over to: it leaves its container running and says ``detach`` over the connection, so its keeper (which
    then sees the connection close) kills nothing; a ``docker stop`` is not a death."""
    pair = kept_pair
    with pair.explained():
        timeline = ServiceTimeline(lab).start()
        pair.container("b", AGENT_CONTAINER).stop(timeout=20)
        wait_until(lambda: "peer_leaving" in pair.alerts("a"), 5, what="A hears B leaving")
        pair.container("a", AGENT_CONTAINER).stop(timeout=20)
        assert pair.container("a", AGENT_CONTAINER).status == "exited"
        time.sleep(T)  # the keeper's lease would have run out by now: it must hold nothing
        assert lab.container_running("a") and lab.web_answers("a") and not lab.container_running("b")
        assert pair.ping("a").startswith("pong idle agent=-")
        keeper_log = container_logs(lab, "a", KEEPER_CONTAINER)
        assert "keeper detached" in keeper_log and "fence: killed" not in keeper_log, keeper_log
        timeline.stop()
        assert timeline.first("a", "die") is None and timeline.first("b", "start") is None, timeline.describe()

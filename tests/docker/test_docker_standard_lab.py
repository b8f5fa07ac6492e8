"""DockerFailover standard mode on two real dockerd hosts plus a real witness process, all in network namespaces.

Each test records which host runs the container (``labs.docker.ServiceTimeline``: the daemons' own start/die
events, exact, and a sampler every 50 ms), injects one fault, and asserts:
- no double service: 0 s of overlap by the daemons' events AND by the sampler, and (where a takeover is due)
  the fenced host's kill logged before the new active's start in the agents' logs;
- a takeover where one is due, within down_after (= heartbeat_timeout + fencing margin) + the container start
  measured in the same run + 0.5 s, counted from the fault;
- where no takeover is due (cut between the pair only, witness down), nothing changes.
Lab timings: heartbeat 0.2 s, heartbeat_timeout 1 s, kill bound 0.5 s -> down_after 1.854 s.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator

import pytest

from DockerFailover.config import WitnessSettings
from failover_core.fencing import FencingTiming
from labs.docker import HB_TIMEOUT, KILL_BOUND, MARGIN, ServiceTimeline, TwoHostLab, log_times, wait_until

pytestmark = pytest.mark.integration

TIMING = FencingTiming(timeout=HB_TIMEOUT, stop_bound=KILL_BOUND,
                       scheduling_delay=WitnessSettings.model_fields["scheduling_delay"].default,
                       clock_drift=WitnessSettings.model_fields["clock_drift"].default)
DOWN_AFTER = TIMING.down_after


@pytest.fixture
def standard_pair(lab: TwoHostLab, make_pair) -> Iterator:
    """A fresh witness and a fresh standard-mode pair: A active and serving, B passive, both heard by the witness."""
    lab.heal_all()
    lab.start_witness()
    pair = make_pair(start=False, witness=True)
    pair.start("a")
    pair.start("b")
    with pair.explained():
        wait_until(lambda: pair.roles() == ("active", "passive") and lab.web_answers("a"), 20,
                   what="server1 active and serving, server2 passive")
        # the witness has listened for down_after and hears both (a fresh witness says UNKNOWN until then)
        def b_hears_a_at_the_witness() -> bool:
            std = (lab.status("b") or {}).get("standard") or {}
            return (std.get("witness_says_peer") or {}).get("state") == "up"
        wait_until(b_hears_a_at_the_witness, 10, what="B's witness ack says A is up")
    yield pair
    lab.heal_all()
    lab.stop_witness(signal.SIGKILL)


def started_in(log: str) -> float:
    """The last container start's duration, as the agent logged it."""
    found = re.findall(r"ContainersStarted: started in ([0-9.]+)s", log)
    return float(found[-1]) if found else 0.0


def check_takeover(lab: TwoHostLab, pair, timeline: ServiceTimeline, fault_at: float, *, fenced: str,
                   taker: str) -> dict[str, float]:
    """Wait for ``taker`` to serve, then assert the bounds; returns the figures."""
    bound = DOWN_AFTER + 0.5 + 1.0 + MARGIN  # only for the wait; the assertion below is the real bound
    wait_until(lambda: lab.role(taker) == "active" and lab.web_answers(taker), bound, what=f"{taker} takes over")
    start_event = timeline.first(taker, "start", after=fault_at)
    assert start_event is not None, timeline.describe()
    took = start_event - fault_at
    start_cost = started_in(lab.agent_log_text(taker))
    assert took <= DOWN_AFTER + start_cost + 0.5, (took, start_cost, timeline.describe())
    # by the agents' logs: the fenced host's kill (by its agent or its fence keeper) was logged before the
    # taker's "starting web"
    fenced_log, taker_log = lab.agent_log_text(fenced), lab.agent_log_text(taker)
    killed = [t for t in log_times(fenced_log, "ContainersStopped: killed") + log_times(fenced_log, "fence: killed")
              if t >= fault_at - 0.01]
    starting = [t for t in log_times(taker_log, "starting web in term") if t >= fault_at - 0.01]
    assert killed and starting, f"kill lines {killed}, start lines {starting}"
    assert min(killed) < min(starting), (min(killed), min(starting))
    die = timeline.first(fenced, "die", after=fault_at)
    assert die is not None and die < start_event, timeline.describe()
    return {"takeover": took, "kill_to_start_gap": start_event - die, "start_cost": start_cost}


def settle_and_check_overlap(lab: TwoHostLab, pair, timeline: ServiceTimeline, *, active: str) -> None:
    """After the heal: exactly one active, serving, none beside it, for a few heartbeat timeouts."""
    other = "b" if active == "a" else "a"
    wait_until(lambda: lab.role(active) == "active" and lab.role(other) == "passive", 5 + MARGIN,
               what=f"{active} active and {other} passive after the heal")
    end = time.monotonic() + 3 * DOWN_AFTER
    while time.monotonic() < end:  # stays so: the returning node does not start beside the active
        assert lab.role(active) == "active" and lab.role(other) == "passive"
        time.sleep(0.1)
    timeline.stop()
    assert timeline.overlap() == 0.0, timeline.describe()
    assert timeline.sampled_overlap() == 0.0, timeline.samples
    assert lab.container_running(active) and not lab.container_running(other)


def isolate(lab: TwoHostLab, key: str, *, inbound: bool = True, outbound: bool = True) -> None:
    other = "b" if key == "a" else "a"
    lab.cut(key, other, inbound=inbound, outbound=outbound)
    lab.cut(key, "w", inbound=inbound, outbound=outbound)


@pytest.mark.parametrize("direction", ["both", "outbound", "inbound"])
def test_isolated_active_fences_itself_before_the_passive_takes_over(lab: TwoHostLab, standard_pair,
                                                                     direction: str) -> None:
    pair = standard_pair
    with pair.explained():
        timeline = ServiceTimeline(lab).start()
        fault_at = time.time()
        isolate(lab, "a", inbound=direction in ("both", "inbound"), outbound=direction in ("both", "outbound"))
        figures = check_takeover(lab, pair, timeline, fault_at, fenced="a", taker="b")
        assert "[self_fenced]" in lab.agent_log_text("a")
        assert "[witness_confirmed]" in lab.agent_log_text("b")
        # back from isolation: A hears the witness (and B): it must not start beside B
        lab.heal_all()
        settle_and_check_overlap(lab, pair, timeline, active="b")
        print(f"isolated A ({direction}): {figures}, overlap {timeline.overlap():.3f}s")


def test_cut_between_the_pair_only_changes_nothing(lab: TwoHostLab, standard_pair) -> None:
    pair = standard_pair
    with pair.explained():
        timeline = ServiceTimeline(lab).start()
        lab.cut("a", "b")
        end = time.monotonic() + 3 * DOWN_AFTER
        while time.monotonic() < end:
            assert pair.roles() == ("active", "passive") and lab.container_running("a")
            time.sleep(0.1)
        assert "takeover_held" in [x["code"] for x in lab.status("b")["alerts"]]
        lab.heal_all()
        settle_and_check_overlap(lab, pair, timeline, active="a")
        assert timeline.first("b", "start") is None


def test_witness_down_alone_changes_nothing(lab: TwoHostLab, standard_pair) -> None:
    pair = standard_pair
    with pair.explained():
        timeline = ServiceTimeline(lab).start()
        lab.stop_witness(signal.SIGKILL)
        end = time.monotonic() + 3 * DOWN_AFTER
        while time.monotonic() < end:
            assert pair.roles() == ("active", "passive") and lab.container_running("a")
            time.sleep(0.1)
        assert "witness_unreachable" in [x["code"] for x in lab.status("a")["alerts"]]
        settle_and_check_overlap(lab, pair, timeline, active="a")
        assert timeline.first("b", "start") is None and timeline.first("a", "die") is None


def test_agent_sigkill_the_fence_keeper_kills_the_containers(lab: TwoHostLab, standard_pair) -> None:
    pair = standard_pair
    with pair.explained():
        timeline = ServiceTimeline(lab).start()
        fault_at = time.time()
        lab.stop_agent("a", signal.SIGKILL)
        figures = check_takeover(lab, pair, timeline, fault_at, fenced="a", taker="b")
        die = timeline.first("a", "die", after=fault_at)
        assert die is not None and die - fault_at < 1.0, timeline.describe()  # at the pipe's EOF, not later
        assert "the agent died" in lab.agent_log_text("a")
        pair.start("a")  # it comes back passive beside the active B
        settle_and_check_overlap(lab, pair, timeline, active="b")
        print(f"SIGKILL: {figures}, A's containers killed {die - fault_at:.3f}s after the agent's death")


def test_agent_sigstop_past_the_timeout_the_lease_runs_out(lab: TwoHostLab, standard_pair) -> None:
    pair = standard_pair
    agent = lab.hosts["a"].agent
    assert agent is not None
    with pair.explained():
        timeline = ServiceTimeline(lab).start()
        fault_at = time.time()
        os.kill(agent.pid, signal.SIGSTOP)
        try:
            figures = check_takeover(lab, pair, timeline, fault_at, fenced="a", taker="b")
            assert "lease ran out" in lab.agent_log_text("a")
        finally:
            os.kill(agent.pid, signal.SIGCONT)
        settle_and_check_overlap(lab, pair, timeline, active="b")
        assert "[self_fenced]" in lab.agent_log_text("a")  # it learns on waking that its lease is gone
        print(f"SIGSTOP: {figures}")

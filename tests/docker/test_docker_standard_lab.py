"""DockerFailover standard mode on two real dockerd hosts plus a real witness process, all in network namespaces.

Each test records which host runs the container (``labs.docker.ServiceTimeline``: the daemons' own start/die
events, exact, and a sampler every 50 ms), injects one fault, and asserts:
- no double service: 0 s of overlap by the daemons' events AND by the sampler, and (where a takeover is due)
  the fenced host's kill logged before the new active's start in the agents' logs;
- a takeover where one is due, within the issue's bound: heartbeat_timeout (= down_after: the passive and the
  witness wait T since their last receipt; the fencing margin comes off the active's lease) + the container
  start measured in the same run + 0.5 s, counted from the fault;
- where no takeover is due (a cut between the pair only, in either direction or one; a node cut from the witness
  only, or one way; the witness killed or frozen; the passive's agent restarted, or frozen and resumed), nothing
  changes: no start on B, no die on A;
- a restarted active agent (SIGTERM, started again at once) hands over: exactly one host serves afterwards.
Cuts are iptables rules in one namespace: ``lab.cut(x, y, inbound=, outbound=)`` drops y -> x / x -> y there.
Lab timings: heartbeat 0.2 s, heartbeat_timeout T = 1.5 s (= down_after), kill bound 0.5 s -> the active's lease
0.647 s after its last acknowledged send (fencing margin 0.853 s), killed by 1.398 s.
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
from labs.docker import (
    HB_INTERVAL,
    KILL_BOUND,
    MARGIN,
    STANDARD_HB_TIMEOUT,
    ServiceTimeline,
    TwoHostLab,
    log_times,
    wait_until,
)

pytestmark = pytest.mark.integration

TIMING = FencingTiming(timeout=STANDARD_HB_TIMEOUT, stop_bound=KILL_BOUND,
                       scheduling_delay=WitnessSettings.model_fields["scheduling_delay"].default,
                       clock_drift=WitnessSettings.model_fields["clock_drift"].default)
DOWN_AFTER = TIMING.down_after  # = heartbeat_timeout
assert DOWN_AFTER == STANDARD_HB_TIMEOUT and TIMING.lease_problem(HB_INTERVAL) is None


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
    """Wait for ``taker`` to serve, then assert the bounds; returns the figures. The takeover bound is the issue's:
    heartbeat_timeout + the container start (as the taker's agent logged it in this run) + 0.5 s, from the fault."""
    bound = DOWN_AFTER + 0.5 + 1.0 + MARGIN  # only for the wait; the assertion below is the real bound
    wait_until(lambda: lab.role(taker) == "active" and lab.web_answers(taker), bound, what=f"{taker} takes over")
    start_event = timeline.first(taker, "start", after=fault_at)
    assert start_event is not None, timeline.describe()
    took = start_event - fault_at
    start_cost = started_in(lab.agent_log_text(taker))
    assert took <= STANDARD_HB_TIMEOUT + start_cost + 0.5, (took, start_cost, timeline.describe())
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
    return {"takeover": round(took, 3), "bound": round(STANDARD_HB_TIMEOUT + start_cost + 0.5, 3),
            "kill_to_start_gap": round(start_event - die, 3), "start_cost": start_cost}


def settle_and_check_overlap(lab: TwoHostLab, pair, timeline: ServiceTimeline, *, active: str) -> None:
    """After the heal: exactly one active, serving, none beside it, for a few heartbeat timeouts."""
    other = "b" if active == "a" else "a"
    wait_until(lambda: lab.role(active) == "active" and lab.role(other) == "passive", 5 + MARGIN,
               what=f"{active} active and {other} passive after the heal")
    end = time.monotonic() + 2 * DOWN_AFTER  # two timeouts: the doubles found after a heal came within 0.6 s
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


def hold_steady(lab: TwoHostLab, seconds: float, *, watch: dict[str, str] | None = None) -> dict[str, str]:
    """For ``seconds``: A active and serving, B passive, the container on A only (checked every 0.1 s).
    ``watch``: {host: status path "standard.witness_says_peer.state"} -> the last value seen on each."""
    seen: dict[str, str] = {}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert (lab.role("a"), lab.role("b")) == ("active", "passive")
        assert lab.container_running("a") and not lab.container_running("b")
        for key, path in (watch or {}).items():
            value: object = lab.status(key) or {}
            for part in path.split("."):
                value = (value or {}).get(part) if isinstance(value, dict) else None
            if value is not None:
                seen[key] = str(value)
        time.sleep(0.1)
    return seen


def alert_codes(lab: TwoHostLab, key: str) -> list[str]:
    return [x["code"] for x in (lab.status(key) or {}).get("alerts", [])]


def assert_nothing_moved(timeline: ServiceTimeline) -> None:
    """No start on B and no die on A since the timeline began (by the daemons' events)."""
    assert timeline.first("b", "start") is None and timeline.first("a", "die") is None, timeline.describe()


@pytest.mark.parametrize("node", ["a", "b"])
def test_a_node_cut_from_the_witness_only_changes_nothing(lab: TwoHostLab, standard_pair, node: str) -> None:
    """A (or B) cut from the witness in both directions, the pair still talking: the witness calls that node
    down after down_after, but nobody acts on it. A's lease is renewed by B's acknowledgements (A cut) or by
    both (B cut); B hears A, so it never consults the table."""
    pair = standard_pair
    with pair.explained():
        timeline = ServiceTimeline(lab).start()
        lab.cut(node, "w")
        other = "b" if node == "a" else "a"
        # long enough for the witness to call `node` down and for `other` to hear that in its acks
        seen = hold_steady(lab, 3 * DOWN_AFTER, watch={other: "standard.witness_says_peer.state"})
        assert seen.get(other) == "down", seen  # the witness did call it down: the fault was real
        print(f"{node} cut from the witness: {other} heard the witness call it {seen.get(other)}; "
              f"{node}'s alerts {alert_codes(lab, node)}")
        assert "witness_unreachable" in alert_codes(lab, node)
        assert "takeover_held" not in alert_codes(lab, "b")
        lab.heal_all()
        settle_and_check_overlap(lab, pair, timeline, active="a")
        assert_nothing_moved(timeline)
        assert "[self_fenced]" not in lab.agent_log_text("a")


def test_witness_frozen_past_down_after_changes_nothing(lab: TwoHostLab, standard_pair) -> None:
    """The witness SIGSTOPped for 2 x down_after, then SIGCONT: it wakes with every receipt older than
    down_after and a backlog of heartbeats; nothing moves during the freeze or after it."""
    pair = standard_pair
    witness = lab.witness
    assert witness is not None
    with pair.explained():
        timeline = ServiceTimeline(lab).start()
        os.kill(witness.pid, signal.SIGSTOP)
        try:
            hold_steady(lab, 2 * DOWN_AFTER)
            assert "witness_unreachable" in alert_codes(lab, "a")
            assert "witness_unreachable" in alert_codes(lab, "b")
        finally:
            os.kill(witness.pid, signal.SIGCONT)
        def witness_back(key: str) -> bool:
            return "witness_back" in alert_codes(lab, key)
        wait_until(lambda: witness_back("a") and witness_back("b"), 5 + MARGIN, what="both hear the witness again")
        hold_steady(lab, 2 * DOWN_AFTER)
        settle_and_check_overlap(lab, pair, timeline, active="a")
        assert_nothing_moved(timeline)
        assert witness.poll() is None


def test_passive_agent_restarted_comes_back_passive(lab: TwoHostLab, standard_pair) -> None:
    """B's agent SIGTERMed (it leaves: nothing to hand over) and started again: it comes back passive beside
    A, without a claim or a start; A never stops."""
    pair = standard_pair
    with pair.explained():
        timeline = ServiceTimeline(lab).start()
        assert lab.stop_agent("b", signal.SIGTERM) == 0
        wait_until(lambda: "peer_leaving" in alert_codes(lab, "a"), 2 + MARGIN, what="A hears B leave")
        pair.start("b")
        wait_until(lambda: lab.role("b") == "passive", 10 + MARGIN, what="B back, passive")
        hold_steady(lab, 2 * DOWN_AFTER)
        settle_and_check_overlap(lab, pair, timeline, active="a")
        assert_nothing_moved(timeline)
        b_log = lab.agent_log_text("b")
        assert "starting web" not in b_log and "[witness_confirmed]" not in b_log


def test_active_agent_restarted_hands_over_with_no_double_service(lab: TwoHostLab, standard_pair) -> None:
    """A's agent SIGTERMed (an upgrade) and started again at once, well within heartbeat_timeout: A hands over
    to B (a graceful stop of A's containers, then B starts on A's signed request); A comes back passive beside
    B. At every instant at most one host serves; afterwards exactly one (B) does."""
    pair = standard_pair
    with pair.explained():
        timeline = ServiceTimeline(lab).start()
        fault_at = time.time()
        assert lab.stop_agent("a", signal.SIGTERM) == 0
        exited_at = time.time()
        pair.start("a")
        wait_until(lambda: lab.role("b") == "active" and lab.web_answers("b"), 10 + MARGIN, what="B serves")
        settle_and_check_overlap(lab, pair, timeline, active="b")
        die, start = timeline.first("a", "die", after=fault_at), timeline.first("b", "start", after=fault_at)
        assert die is not None and start is not None and die < start, timeline.describe()
        # by the logs: A's stop is logged before B's "starting web"
        stopped = log_times(lab.agent_log_text("a"), "ContainersStopped")
        starting = log_times(lab.agent_log_text("b"), "starting web in term")
        assert stopped and starting and min(t for t in stopped if t >= fault_at - 0.01) < min(starting)
        assert timeline.first("a", "start", after=fault_at) is None, timeline.describe()  # A did not start again
        assert "[handed_over]" in lab.agent_log_text("a")
        print(f"active restarted: B started {start - fault_at:.3f}s after the signal, no service for "
              f"{start - die:.3f}s (A's die to B's start), "
              f"A's agent took {exited_at - fault_at:.3f}s to exit")


@pytest.mark.parametrize("dropped", ["a_to_b", "b_to_a"])
def test_one_way_cut_between_the_pair_changes_nothing(lab: TwoHostLab, standard_pair, dropped: str) -> None:
    """One direction of the pair's link dropped (a_to_b: A's packets to B lost, B's to A delivered), the witness
    reachable from both. Over TCP a one-way loss is a two-way loss (the answers, or the SYN-ACKs, do not come
    back), so each side calls its peer silent: B asks the witness, which hears A -> B holds (`takeover_held`);
    A's lease is renewed by the witness's acks -> A keeps the service. No takeover, no double service."""
    pair = standard_pair
    with pair.explained():
        timeline = ServiceTimeline(lab).start()
        lab.cut("a", "b", inbound=dropped == "b_to_a", outbound=dropped == "a_to_b")
        hold_steady(lab, 3 * DOWN_AFTER)
        assert "takeover_held" in alert_codes(lab, "b")
        assert "peer_lost" in alert_codes(lab, "a")
        print(f"one-way cut {dropped}: A alerts {alert_codes(lab, 'a')}, B alerts {alert_codes(lab, 'b')}")
        lab.heal_all()
        settle_and_check_overlap(lab, pair, timeline, active="a")
        assert_nothing_moved(timeline)


def test_chaos_docker_seed_20261436_a_fenced_node_renewed_by_the_new_active_s_answer_stays_passive(
        lab: TwoHostLab, standard_pair) -> None:
    """The seeded run's double (Docker, standard, seed 20261436, loss on the active), replayed with one-way
    request drops so that it happens every time: A's heartbeats to B and A <-> witness are lost, B's heartbeats
    still reach A: A fences itself and keeps hearing B "passive". Then B's heartbeats to A are lost too, B (back
    at the witness) takes over, and A's heartbeats reach B again: B's answers renew A's lease while the last
    heartbeat A read from B said "passive" and A's witness is silent. Before the fix (answers said nothing) A
    cold-started beside B within one heartbeat; now each answer carries B's news: A learns B is active."""
    pair = standard_pair
    with pair.explained():
        timeline = ServiceTimeline(lab).start()
        lab.drop_requests("a", "b", outbound=True)  # A's heartbeats to B
        lab.cut("a", "w")
        lab.cut("b", "w")  # B may not take over before A has fenced and heard B idle since (below)

        def fenced_and_hearing_b() -> bool:
            st = lab.status("a") or {}
            last = st.get("last_transition") or {}
            return (st.get("role") == "passive" and last.get("code") == "self_fenced" and last.get("ago", 0) >= 0.5
                    and (st.get("peer") or {}).get("silent_for", 9) < 2 * HB_INTERVAL)
        wait_until(fenced_and_hearing_b, 5 + MARGIN, what="A fenced itself and hears B idle since")
        lab.drop_requests("a", "b", inbound=True)  # B's heartbeats to A: A's last news of B stays "passive"
        lab.cut("b", "w", on=False)
        wait_until(lambda: lab.role("b") == "active", 5 + MARGIN, what="B takes over (the witness says A is down)")
        assert "[witness_confirmed]" in lab.agent_log_text("b")
        lab.drop_requests("a", "b", outbound=True, on=False)  # A's heartbeats reach B, B's answers reach A

        def renewed() -> bool:
            st = lab.status("a") or {}
            return ((st.get("standard") or {}).get("lease_remaining") or 0) > 0
        wait_until(renewed, 3, what="B's answer renews A's lease")
        st = lab.status("a") or {}
        assert st["role"] == "passive" and st["peer"]["role"] == "active", st  # learnt from the answer alone
        assert st["standard"]["witness"] == "down", st
        end = time.monotonic() + DOWN_AFTER  # answer after answer: A stays passive, its container down
        while time.monotonic() < end:
            assert (lab.role("a"), lab.role("b")) == ("passive", "active")
            assert not lab.container_running("a") and lab.container_running("b")
            time.sleep(0.1)
        lab.heal_all()
        settle_and_check_overlap(lab, pair, timeline, active="b")


def test_passive_agent_frozen_and_resumed_changes_nothing(lab: TwoHostLab, standard_pair) -> None:
    """B's agent SIGSTOPped for 2 x heartbeat_timeout (the witness and A call it down meanwhile), then SIGCONT:
    it wakes with A's heartbeats waiting in its socket and A silent by its own clock; it must read them before
    deciding (`stalled`, no takeover on silence for two heartbeats) and must not start a second copy. A keeps
    the service throughout (the witness's acks keep its lease)."""
    pair = standard_pair
    agent = lab.hosts["b"].agent
    assert agent is not None
    with pair.explained():
        timeline = ServiceTimeline(lab).start()
        os.kill(agent.pid, signal.SIGSTOP)
        try:
            seen = ""
            end = time.monotonic() + 2 * DOWN_AFTER
            while time.monotonic() < end:  # B's API is frozen too: A active, the container on A only
                st = lab.status("a") or {}
                assert st.get("role") == "active" and lab.container_running("a") and not lab.container_running("b")
                seen = ((st.get("standard") or {}).get("witness_says_peer") or {}).get("state") or seen
                time.sleep(0.1)
            assert seen == "down", seen  # the witness did call B down: the freeze was real
        finally:
            os.kill(agent.pid, signal.SIGCONT)
        wait_until(lambda: "stalled" in alert_codes(lab, "b"), 5 + MARGIN, what="B notices its stall")
        hold_steady(lab, 2 * DOWN_AFTER)
        settle_and_check_overlap(lab, pair, timeline, active="a")
        assert_nothing_moved(timeline)
        b_log = lab.agent_log_text("b")
        assert "starting web" not in b_log and "[witness_confirmed]" not in b_log
        assert "[self_fenced]" not in lab.agent_log_text("a")
        print(f"passive frozen: B's alerts {alert_codes(lab, 'b')}, A's alerts {alert_codes(lab, 'a')}")


@pytest.mark.parametrize("dropped", ["b_to_w", "w_to_b"])
def test_one_way_cut_between_the_passive_and_the_witness_changes_nothing(lab: TwoHostLab, standard_pair,
                                                                         dropped: str) -> None:
    """One direction between B and the witness dropped, the pair still talking: B hears A, so it never consults
    the table; A's lease is renewed by B and the witness. Nothing moves, during the cut or after the heal."""
    pair = standard_pair
    with pair.explained():
        timeline = ServiceTimeline(lab).start()
        lab.cut("b", "w", inbound=dropped == "w_to_b", outbound=dropped == "b_to_w")
        hold_steady(lab, 3 * DOWN_AFTER)
        assert "witness_unreachable" in alert_codes(lab, "b")
        assert "takeover_held" not in alert_codes(lab, "b")
        print(f"one-way cut {dropped}: A alerts {alert_codes(lab, 'a')}, B alerts {alert_codes(lab, 'b')}")
        lab.heal_all()
        settle_and_check_overlap(lab, pair, timeline, active="a")
        assert_nothing_moved(timeline)
        assert "[self_fenced]" not in lab.agent_log_text("a")

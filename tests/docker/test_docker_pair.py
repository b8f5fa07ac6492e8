"""Unit tests of the pure pair decider (PairNode) with a fake clock: no Docker, no network.

One event in, one Step out: ``step.actions`` in order, role changes in ``step.transitions``.
"""

from __future__ import annotations

import itertools

import pytest

from DockerFailover.codes import AlertCode, TransitionCode
from DockerFailover.containers import ContainerObservation
from DockerFailover.decider import PairNode, PairSettings
from DockerFailover.events import (
    Alert,
    ContainersObserved,
    ContainersStarted,
    ContainersStopped,
    DockerUnreachable,
    HandOverAnswer,
    HandOverAnswered,
    HandOverRequested,
    HeartbeatReceived,
    PeerHeartbeat,
    PersistTerm,
    RequestHandOver,
    Resumed,
    Role,
    SendHeartbeat,
    ShutdownRequested,
    StartContainers,
    StopContainers,
    Tick,
)
from failover_core.clock import FakeClock
from failover_core.step import Step

HB_INTERVAL, HB_TIMEOUT = 0.5, 2.0


def settings(name: str = "server1", **kw: object) -> PairSettings:
    base: dict[str, object] = dict(
        name=name, peer="server2" if name == "server1" else "server1", preferred=name == "server1",
        containers=("web",), heartbeat_interval=HB_INTERVAL, heartbeat_timeout=HB_TIMEOUT,
        startup_grace_period=5.0, restart_grace_period=3.0, stop_timeout=10.0)
    base.update(kw)
    return PairSettings(**base)  # type: ignore[arg-type]


def running(up: bool = True, *, now: float, **kw: object) -> ContainersObserved:
    o = dict(name="web", exists=True, running=up, health="healthy" if up else None,
             status="running" if up else "exited")
    o.update(kw)
    return ContainersObserved(now=now, observations=(ContainerObservation(**o),))  # type: ignore[arg-type]


def hb(role: Role, term: int, sender: str = "server2", eligible: bool = True, up: bool = False, *,
       now: float) -> HeartbeatReceived:
    return HeartbeatReceived(now=now, heartbeat=PeerHeartbeat(sender=sender, term=term, role=role, eligible=eligible,
                                                              containers_up=up))


def kinds(step: Step) -> list[type]:
    return [type(a) for a in step.actions if not isinstance(a, SendHeartbeat)]


def transitions(step: Step) -> list[tuple[str, str, str]]:
    return [(t.from_state, t.to_state, t.code) for t in step.transitions]


def become_primary(n: PairNode, sender: str, term: int, reason: str, now: float) -> tuple[HandOverAnswer, Step]:
    """The peer's POST /become_primary: the decider's answer and the whole step."""
    step = n.handle(HandOverRequested(now=now, sender=sender, term=term, reason=reason))
    [answer] = step.of_type(HandOverAnswer)
    return answer, step


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(100.0)


def new_node(clock: FakeClock, name: str = "server1", term: int = 0, **kw: object) -> PairNode:
    n = PairNode(settings(name, **kw), term=term, booted_at=clock.now())
    n.handle(running(False, status="created", now=clock.now()))
    return n


def make_active(node: PairNode, clock: FakeClock) -> None:
    """Drive a node to ACTIVE with its container up and the peer passive."""
    node.handle(hb(Role.PASSIVE, node.term, now=clock.now()))
    assert node.role is Role.ACTIVE
    node.handle(ContainersStarted(ok=True, now=clock.now()))
    node.handle(running(True, now=clock.now()))


def test_cold_start_preferred_server_becomes_active_and_persists_term(clock: FakeClock) -> None:
    n1, n2 = new_node(clock, "server1", term=4), new_node(clock, "server2", term=4)
    out1 = n1.handle(hb(Role.STARTING, 4, sender="server2", now=clock.now()))
    out2 = n2.handle(hb(Role.STARTING, 4, sender="server1", now=clock.now()))
    assert n1.role is Role.ACTIVE and n1.term == 5
    assert transitions(out1) == [("STARTING", "ACTIVE", TransitionCode.COLD_START_CANDIDATE)]
    # the new term is on disk before the containers are started
    assert kinds(out1)[:2] == [PersistTerm, StartContainers] and len(out1.transitions) == 1
    assert n2.role is Role.STARTING and not kinds(out2)
    n2.handle(hb(Role.ACTIVE, 5, sender="server1", now=clock.now()))
    assert n2.role is Role.PASSIVE and n2.term == 5


def test_cold_start_prefers_the_node_whose_containers_already_run(clock: FakeClock) -> None:
    n2 = new_node(clock, "server2")
    n2.handle(running(True, now=clock.now()))
    out = n2.handle(hb(Role.STARTING, 0, sender="server1", up=False, now=clock.now()))
    assert n2.role is Role.ACTIVE, out


def test_node_waits_for_docker_before_deciding_or_sending_heartbeats(clock: FakeClock) -> None:
    n = PairNode(settings(), term=0, booted_at=clock.now())
    assert not any(isinstance(a, SendHeartbeat) for a in n.handle(Tick(now=clock.now())).actions)
    n.handle(hb(Role.STARTING, 0, now=clock.now()))
    assert n.role is Role.STARTING  # docker not observed yet: not eligible
    out = n.handle(running(False, now=clock.now()))
    assert n.role is Role.ACTIVE
    assert [a.fields["eligible"] for a in out.actions if isinstance(a, SendHeartbeat)] == [True]


def test_silent_peer_at_start_takes_over_only_after_startup_grace(clock: FakeClock) -> None:
    n = new_node(clock, "server2", term=2)
    clock.advance(4.99)
    assert n.handle(Tick(now=clock.now())).actions and n.role is Role.STARTING
    assert n.next_deadline(clock.now()) == pytest.approx(105.0)
    clock.set(105.0)
    out = n.handle(Tick(now=clock.now()))
    assert n.role is Role.ACTIVE and n.term == 3
    assert transitions(out) == [("STARTING", "ACTIVE", TransitionCode.STARTUP_PEER_SILENT)]


def test_restarted_node_comes_back_passive_and_learns_the_term(clock: FakeClock) -> None:
    n = new_node(clock, "server1", term=3)  # was active in term 3 before its restart
    out = n.handle(hb(Role.ACTIVE, 7, now=clock.now()))
    assert n.role is Role.PASSIVE and n.term == 7
    assert PersistTerm(term=7) in out.actions


def test_passive_takes_over_exactly_at_the_heartbeat_deadline(clock: FakeClock) -> None:
    n = new_node(clock, "server2", term=1)
    n.handle(hb(Role.ACTIVE, 1, sender="server1", now=clock.now()))
    last = clock.now()
    assert n.next_deadline(clock.now()) <= last + HB_TIMEOUT
    clock.set(last + HB_TIMEOUT - 0.001)
    n.handle(Tick(now=clock.now()))
    assert n.role is Role.PASSIVE
    clock.set(last + HB_TIMEOUT)
    out = n.handle(Tick(now=clock.now()))
    assert n.role is Role.ACTIVE and n.term == 2
    assert transitions(out) == [("PASSIVE", "ACTIVE", TransitionCode.PEER_HEARTBEAT_LOST)]
    assert StartContainers(names=("web",), reason=out.transitions[0].reason, term=2) in out.actions


def test_no_takeover_while_our_docker_is_unreachable(clock: FakeClock) -> None:
    n = new_node(clock, "server2", term=1)
    n.handle(hb(Role.ACTIVE, 1, sender="server1", now=clock.now()))
    out = n.handle(DockerUnreachable(detail="connection refused", now=clock.now()))
    assert Alert in kinds(out)
    clock.advance(10)
    out = n.handle(Tick(now=clock.now()))
    assert n.role is Role.PASSIVE
    assert any(isinstance(a, Alert) and a.code is AlertCode.PEER_LOST for a in out.actions)


def test_active_with_unreachable_docker_keeps_role_and_does_not_hand_over(clock: FakeClock) -> None:
    n = new_node(clock)
    make_active(n, clock)
    out = n.handle(DockerUnreachable(detail="gone", now=clock.now()))
    assert [a.code for a in out.actions if isinstance(a, Alert)] == [AlertCode.DOCKER_UNREACHABLE]
    for _ in range(20):
        clock.advance(0.5)
        n.handle(hb(Role.PASSIVE, n.term, now=clock.now()))
        assert n.role is Role.ACTIVE
    assert n.heartbeat_fields()["eligible"] is False
    out = n.handle(running(True, now=clock.now()))
    assert [a.code for a in out.actions if isinstance(a, Alert)] == [AlertCode.DOCKER_BACK]


def test_higher_term_active_heartbeat_demotes_and_stops_containers(clock: FakeClock) -> None:
    n = new_node(clock)
    make_active(n, clock)
    out = n.handle(hb(Role.ACTIVE, n.term + 1, now=clock.now()))
    assert n.role is Role.PASSIVE
    assert transitions(out) == [("ACTIVE", "PASSIVE", TransitionCode.HIGHER_TERM)]
    assert any(isinstance(a, StopContainers) for a in out.actions)


def test_equal_term_split_resolves_to_the_preferred_server(clock: FakeClock) -> None:
    a, b = new_node(clock, "server1", term=5), new_node(clock, "server2", term=5)
    for n in (a, b):
        n.machine.change(Role.ACTIVE, code="test", reason="forced split", now=clock.now())
    out_a = a.handle(hb(Role.ACTIVE, 5, sender="server2", now=clock.now()))
    out_b = b.handle(hb(Role.ACTIVE, 5, sender="server1", now=clock.now()))
    assert a.role is Role.ACTIVE and b.role is Role.PASSIVE
    assert transitions(out_b) == [("ACTIVE", "PASSIVE", TransitionCode.SPLIT_BRAIN_TIEBREAK)]
    # the one that keeps it answers at once (one heartbeat resolves the split)
    assert any(isinstance(x, SendHeartbeat) for x in out_a.actions)


def test_lower_term_active_peer_makes_us_send_a_heartbeat_now(clock: FakeClock) -> None:
    n = new_node(clock)
    make_active(n, clock)
    clock.advance(0.01)
    out = n.handle(hb(Role.ACTIVE, n.term - 1 if n.term else 0, now=clock.now()))
    assert n.role is Role.ACTIVE
    assert any(isinstance(x, SendHeartbeat) and x.fields["role"] == "active" for x in out.actions)


def test_idle_peer_with_higher_term_does_not_demote_an_active(clock: FakeClock) -> None:
    n = new_node(clock)
    make_active(n, clock)
    out = n.handle(hb(Role.PASSIVE, 40, now=clock.now()))
    assert n.role is Role.ACTIVE and n.term == 41
    assert PersistTerm(term=41) in out.actions


def test_container_failure_hands_over_stop_first_then_request(clock: FakeClock) -> None:
    n = new_node(clock)
    make_active(n, clock)
    term = n.term
    out = n.handle(running(False, exit_code=137, now=clock.now()))  # restart policy "no": no grace
    assert n.role is Role.HANDING_OVER
    assert transitions(out) == [("ACTIVE", "HANDING_OVER", TransitionCode.CONTAINER_FAILED)]
    assert any(isinstance(a, StopContainers) for a in out.actions)
    assert not any(isinstance(a, RequestHandOver) for a in out.actions)
    out = n.handle(ContainersStopped(ok=True, now=clock.now()))
    assert next(a for a in out.actions if isinstance(a, RequestHandOver)).term == term
    out = n.handle(HandOverAnswered(accepted=True, term=term + 1, now=clock.now()))
    assert n.role is Role.PASSIVE and n.term == term + 1
    assert transitions(out) == [("HANDING_OVER", "PASSIVE", TransitionCode.HANDED_OVER)]



def test_unconfirmed_hand_over_restarts_our_containers_and_waits(clock: FakeClock) -> None:
    n = new_node(clock, startup_grace_period=1.0)
    assert n.settings.retry_hold == 3.0
    make_active(n, clock)
    n.handle(running(False, exit_code=1, now=clock.now()))
    n.handle(ContainersStopped(ok=True, now=clock.now()))
    out = n.handle(HandOverAnswered(accepted=False, detail="TimeoutError", now=clock.now()))
    assert n.role is Role.ACTIVE
    assert transitions(out) == [("HANDING_OVER", "ACTIVE", TransitionCode.HANDOVER_FAILED)]
    assert any(isinstance(a, StartContainers) for a in out.actions)
    n.handle(ContainersStarted(ok=True, now=clock.now()))
    # still failing: no new hand-over before the retry hold-down
    clock.advance(n.settings.startup_grace_period + 0.1)
    n.handle(hb(Role.PASSIVE, n.term, now=clock.now()))
    out = n.handle(running(False, exit_code=1, now=clock.now()))
    assert n.role is Role.ACTIVE
    clock.set(clock.now() + n.settings.retry_hold)
    n.handle(hb(Role.PASSIVE, n.term, now=clock.now()))
    out = n.handle(Tick(now=clock.now()))
    assert n.role is Role.HANDING_OVER, out


def test_failed_stop_aborts_the_hand_over(clock: FakeClock) -> None:
    n = new_node(clock)
    make_active(n, clock)
    n.handle(running(False, exit_code=1, now=clock.now()))
    out = n.handle(ContainersStopped(ok=False, detail="daemon gone", now=clock.now()))
    assert n.role is Role.ACTIVE and not any(isinstance(a, RequestHandOver) for a in out.actions)


def test_no_peer_to_hand_over_to_restarts_locally(clock: FakeClock) -> None:
    n = new_node(clock)
    make_active(n, clock)
    clock.advance(HB_TIMEOUT + 0.1)  # peer silent
    out = n.handle(running(False, exit_code=1, now=clock.now()))
    assert n.role is Role.ACTIVE
    assert any(isinstance(a, StartContainers) for a in out.actions)
    assert AlertCode.CONTAINER_FAILED_NO_PEER in [a.code for a in out.actions if isinstance(a, Alert)]


def test_restart_policy_gets_the_restart_grace(clock: FakeClock) -> None:
    n = new_node(clock)
    make_active(n, clock)
    t0 = clock.now()
    n.handle(running(False, exit_code=137, restart_policy="on-failure", now=clock.now()))
    assert n.role is Role.ACTIVE
    clock.advance(2.9)
    n.handle(hb(Role.PASSIVE, n.term, now=clock.now()))
    n.handle(running(False, restarting=True, restart_policy="on-failure", now=clock.now()))
    assert n.role is Role.ACTIVE
    assert n.next_deadline(clock.now()) <= t0 + 3.0
    # back up within the grace: the spell is over
    n.handle(running(True, restart_policy="on-failure", restart_count=1, now=clock.now()))
    clock.set(t0 + 10)
    n.handle(hb(Role.PASSIVE, n.term, now=clock.now()))
    assert n.role is Role.ACTIVE


def test_restart_policy_not_back_within_grace_hands_over(clock: FakeClock) -> None:
    n = new_node(clock)
    make_active(n, clock)
    t0 = clock.now()
    n.handle(running(False, exit_code=137, restart_policy="always", now=clock.now()))
    clock.set(t0 + 2.0)
    n.handle(hb(Role.PASSIVE, n.term, now=clock.now()))
    n.handle(Tick(now=clock.now()))
    assert n.role is Role.ACTIVE
    clock.set(t0 + 3.0)
    n.handle(hb(Role.PASSIVE, n.term, now=clock.now()))
    assert n.role is Role.HANDING_OVER


def test_unhealthy_counts_as_down_at_once(clock: FakeClock) -> None:
    n = new_node(clock)
    make_active(n, clock)
    out = n.handle(running(True, health="unhealthy", restart_policy="always", now=clock.now()))
    assert n.role is Role.HANDING_OVER, out


def test_started_container_has_the_startup_grace_to_come_up(clock: FakeClock) -> None:
    n = new_node(clock, "server2", term=1)
    n.handle(hb(Role.ACTIVE, 1, sender="server1", now=clock.now()))
    clock.advance(HB_TIMEOUT)
    n.handle(Tick(now=clock.now()))
    assert n.role is Role.ACTIVE
    n.handle(ContainersStarted(ok=True, now=clock.now()))
    n.handle(running(True, health="starting", now=clock.now()))
    clock.advance(4.9)
    n.handle(Tick(now=clock.now()))
    assert n.role is Role.ACTIVE
    n.handle(running(True, health="healthy", now=clock.now()))
    clock.advance(60)
    n.handle(Tick(now=clock.now()))
    assert n.role is Role.ACTIVE


def test_become_primary_accepts_only_when_idle_eligible_and_current(clock: FakeClock) -> None:
    n = new_node(clock, "server2", term=3)
    n.handle(hb(Role.ACTIVE, 3, sender="server1", now=clock.now()))
    ans, _ = become_primary(n, "server1", 2, "old", clock.now())
    assert not ans.accepted and "stale" in ans.detail and n.role is Role.PASSIVE
    n.handle(DockerUnreachable(detail="x", now=clock.now()))
    ans, _ = become_primary(n, "server1", 3, "x", clock.now())
    assert not ans.accepted and n.role is Role.PASSIVE
    n.handle(running(False, now=clock.now()))
    ans, out = become_primary(n, "server1", 3, "web died", clock.now())
    assert ans.accepted and ans.term == 4 and n.role is Role.ACTIVE
    assert kinds(out)[:2] == [PersistTerm, StartContainers] and len(out.transitions) == 1
    ans, _ = become_primary(n, "server1", 4, "again", clock.now())
    assert not ans.accepted


def test_passive_stops_stray_containers_when_peer_is_active(clock: FakeClock) -> None:
    n = new_node(clock, "server1", term=1)
    n.handle(running(True, now=clock.now()))  # our agent was killed while active; containers kept running
    out = n.handle(hb(Role.ACTIVE, 2, now=clock.now()))
    assert n.role is Role.PASSIVE
    assert any(isinstance(a, StopContainers) for a in out.actions)
    assert AlertCode.STRAY_CONTAINERS in [a.code for a in out.actions if isinstance(a, Alert)]
    # not twice while the stop is in flight
    out = n.handle(running(True, now=clock.now()))
    assert not any(isinstance(a, StopContainers) for a in out.actions)


def test_failback_waits_for_the_hold_down(clock: FakeClock) -> None:
    n = new_node(clock, "server2", term=1, failback=True, failback_hold_down=10.0)
    n.handle(hb(Role.ACTIVE, 1, sender="server1", now=clock.now()))
    clock.advance(HB_TIMEOUT)
    n.handle(Tick(now=clock.now()))
    n.handle(ContainersStarted(ok=True, now=clock.now()))
    n.handle(running(True, now=clock.now()))
    assert n.role is Role.ACTIVE
    t0 = clock.now()
    while clock.now() < t0 + 9.9:
        n.handle(hb(Role.PASSIVE, n.term, sender="server1", now=clock.now()))
        assert n.role is Role.ACTIVE
        clock.advance(0.5)
    clock.advance(0.2)
    out = n.handle(hb(Role.PASSIVE, n.term, sender="server1", now=clock.now()))
    assert n.role is Role.HANDING_OVER
    assert transitions(out) == [("ACTIVE", "HANDING_OVER", TransitionCode.FAILBACK)]


def test_no_failback_without_the_policy(clock: FakeClock) -> None:
    n = new_node(clock, "server2", term=1)
    n.handle(hb(Role.ACTIVE, 1, sender="server1", now=clock.now()))
    clock.advance(HB_TIMEOUT)
    n.handle(Tick(now=clock.now()))
    n.handle(ContainersStarted(ok=True, now=clock.now()))
    n.handle(running(True, now=clock.now()))
    for _ in range(400):
        clock.advance(0.5)
        n.handle(hb(Role.PASSIVE, n.term, sender="server1", now=clock.now()))
    assert n.role is Role.ACTIVE


def test_shutdown_hands_over_only_if_the_peer_can_take_it(clock: FakeClock) -> None:
    n = new_node(clock)
    make_active(n, clock)
    out = n.handle(ShutdownRequested(now=clock.now()))
    assert n.role is Role.HANDING_OVER and transitions(out) == [("ACTIVE", "HANDING_OVER", TransitionCode.SHUTDOWN)]
    n.handle(running(True, now=clock.now()))  # inspected while the stop runs: stale, ignored
    n.handle(ContainersStopped(ok=True, now=clock.now()))
    out = n.handle(HandOverAnswered(accepted=True, term=n.term + 1, now=clock.now()))
    assert n.role is Role.PASSIVE
    # what we saw before the stop is stale: no "stray container" stop of our own stopped container
    assert not any(isinstance(a, (StopContainers, Alert)) for a in out.actions), out
    m = new_node(clock)
    make_active(m, clock)
    clock.advance(HB_TIMEOUT + 1)
    out = m.handle(ShutdownRequested(now=clock.now()))
    # nobody to hand over to: the containers keep running, and the peer hears at once that we are leaving
    assert kinds(out) == [] and not out.transitions and m.role is Role.ACTIVE
    assert [a.fields["leaving"] for a in out.of_type(SendHeartbeat)] == [True]


def test_an_idle_agent_that_shuts_down_tells_its_peer_and_the_active_peer_keeps_its_containers(
        clock: FakeClock) -> None:
    b = new_node(clock, "server2", term=1)
    b.handle(hb(Role.ACTIVE, 1, sender="server1", up=True, now=clock.now()))
    b.handle(running(False, now=clock.now()))
    out = b.handle(ShutdownRequested(now=clock.now()))
    [beat] = out.of_type(SendHeartbeat)
    assert beat.fields["leaving"] is True and beat.fields["eligible"] is False and not out.transitions
    a = new_node(clock)
    make_active(a, clock)
    out = a.handle(HeartbeatReceived(now=clock.now(), heartbeat=PeerHeartbeat(
        sender="server2", term=a.term, role=Role.PASSIVE, eligible=False, containers_up=False, leaving=True)))
    assert [x.code for x in out.of_type(Alert)] == [AlertCode.PEER_LEAVING]
    out = a.handle(ShutdownRequested(now=clock.now()))  # the active stopped right after: no hand-over attempt
    assert kinds(out) == [] and a.role is Role.ACTIVE
    clock.advance(HB_TIMEOUT + 1)  # and the leaving node never takes over
    assert b.handle(Tick(now=clock.now())).transitions == ()


def test_heartbeats_are_scheduled_by_deadline(clock: FakeClock) -> None:
    n = new_node(clock)
    times = []
    while clock.now() < 110.0:
        times += [clock.now() for a in n.handle(Tick(now=clock.now())).actions if isinstance(a, SendHeartbeat)]
        clock.set(n.next_deadline(clock.now()))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert times[0] == 100.0 + HB_INTERVAL  # the first one went out in new_node()
    assert max(gaps) == pytest.approx(HB_INTERVAL)  # never later than the interval
    assert len(times) >= 10.0 / HB_INTERVAL - 1  # 100.5 ... 109.5


def test_container_health_classification() -> None:
    from DockerFailover.containers import Health

    def obs(**kw: object) -> ContainerObservation:
        return ContainerObservation(name="web", **kw)  # type: ignore[arg-type]

    assert obs(exists=False).health_state is Health.DOWN
    assert obs(exists=True, running=False, exit_code=0).health_state is Health.DOWN
    assert obs(exists=True, running=True, health="unhealthy").health_state is Health.DOWN
    assert obs(exists=True, running=True, health="starting").health_state is Health.STARTING
    assert obs(exists=True, running=True, health=None).health_state is Health.UP
    assert obs(exists=True, running=True, restarting=True).health_state is Health.DOWN
    # which down containers will Docker bring back by itself?
    assert obs(exists=True, running=False, restart_policy="always", exit_code=0).docker_will_restart
    assert obs(exists=True, running=False, restart_policy="unless-stopped", exit_code=0).docker_will_restart
    assert obs(exists=True, running=False, restart_policy="on-failure", exit_code=137).docker_will_restart
    assert not obs(exists=True, running=False, restart_policy="on-failure", exit_code=0).docker_will_restart
    assert not obs(exists=True, running=False, restart_policy="on-failure", max_retries=3, restart_count=3,
                   exit_code=1).docker_will_restart
    assert not obs(exists=True, running=False, restart_policy="no", exit_code=137).docker_will_restart
    assert not obs(exists=True, running=True, health="unhealthy", restart_policy="always").docker_will_restart
    assert not obs(exists=False, restart_policy="always").docker_will_restart
    # during the restart back-off Docker says running AND restarting, with the stale health of the dead one
    assert obs(exists=True, running=True, restarting=True, health="unhealthy",
               restart_policy="on-failure", exit_code=137).docker_will_restart


def test_crash_loop_with_healthcheck_fails_after_the_restart_grace(clock: FakeClock) -> None:
    n = new_node(clock)
    make_active(n, clock)
    t0 = clock.now()
    n.handle(running(False, exit_code=127, restart_policy="on-failure", now=clock.now()))
    while clock.now() < t0 + 2.7:  # every restart runs for a moment, its health check never passes
        clock.advance(0.2)
        n.handle(hb(Role.PASSIVE, n.term, now=clock.now()))
        n.handle(running(True, health="starting", restart_policy="on-failure", exit_code=0, now=clock.now()))
        assert n.role is Role.ACTIVE
        n.handle(running(False, exit_code=127, restart_policy="on-failure", now=clock.now()))
    clock.set(t0 + 3.0)
    n.handle(hb(Role.PASSIVE, n.term, now=clock.now()))
    assert n.role is Role.HANDING_OVER


def test_after_a_stall_the_passive_reads_before_it_takes_over(clock: FakeClock) -> None:
    n = new_node(clock, "server2", term=1)
    n.handle(hb(Role.ACTIVE, 1, sender="server1", now=clock.now()))
    clock.advance(5.0)  # we were frozen; the peer's heartbeats are waiting in our socket
    out = n.handle(Resumed(now=clock.now(), stalled_for=5.0))
    assert [a.code for a in out.actions if isinstance(a, Alert)] == [AlertCode.STALLED]
    n.handle(Tick(now=clock.now()))
    assert n.role is Role.PASSIVE
    n.handle(hb(Role.ACTIVE, 1, sender="server1", now=clock.now() + 0.01))  # the backlog is read
    clock.advance(2 * HB_INTERVAL)
    n.handle(Tick(now=clock.now()))
    assert n.role is Role.PASSIVE
    # really silent: the takeover comes at the heartbeat deadline as usual
    clock.advance(HB_TIMEOUT)
    n.handle(Tick(now=clock.now()))
    assert n.role is Role.ACTIVE


def handing_over(clock: FakeClock) -> PairNode:
    n = new_node(clock)
    make_active(n, clock)
    n.handle(running(False, exit_code=1, now=clock.now()))
    n.handle(ContainersStopped(ok=True, now=clock.now()))
    assert n.role is Role.HANDING_OVER
    return n


def test_unanswered_hand_over_waits_for_the_peers_word_and_finds_it_active(clock: FakeClock) -> None:
    n = handing_over(clock)
    term = n.term
    out = n.handle(HandOverAnswered(accepted=False, ambiguous=True, detail="timeout", now=clock.now()))
    assert n.role is Role.HANDING_OVER and not any(isinstance(a, StartContainers) for a in out.actions)
    clock.advance(0.3)
    out = n.handle(hb(Role.ACTIVE, term + 1, now=clock.now()))  # it did take over
    assert n.role is Role.PASSIVE and not any(isinstance(a, StartContainers) for a in out.actions)


def test_unanswered_hand_over_without_news_restarts_our_containers_at_the_deadline(clock: FakeClock) -> None:
    n = handing_over(clock)
    t0 = clock.now()
    n.handle(HandOverAnswered(accepted=False, ambiguous=True, detail="timeout", now=clock.now()))
    assert n.next_deadline(clock.now()) <= t0 + HB_TIMEOUT
    clock.set(t0 + HB_TIMEOUT - 0.01)
    n.handle(hb(Role.PASSIVE, n.term, now=clock.now()))  # idle heartbeats are no proof either way
    assert n.role is Role.HANDING_OVER
    clock.set(t0 + HB_TIMEOUT)
    out = n.handle(Tick(now=clock.now()))
    assert n.role is Role.ACTIVE
    assert transitions(out) == [("HANDING_OVER", "ACTIVE", TransitionCode.HANDOVER_FAILED)]
    assert any(isinstance(a, StartContainers) for a in out.actions)


def test_a_refused_hand_over_restarts_at_once(clock: FakeClock) -> None:
    n = handing_over(clock)
    out = n.handle(HandOverAnswered(accepted=False, term=n.term, detail="not idle", now=clock.now()))
    assert n.role is Role.ACTIVE and any(isinstance(a, StartContainers) for a in out.actions)


def test_become_primary_refused_right_after_a_stall(clock: FakeClock) -> None:
    n = new_node(clock, "server2", term=1)
    n.handle(hb(Role.ACTIVE, 1, sender="server1", now=clock.now()))
    clock.advance(5)
    n.handle(Resumed(now=clock.now(), stalled_for=5.0))
    ans, _ = become_primary(n, "server1", 1, "queued while we were frozen", clock.now())
    assert not ans.accepted and "stall" in ans.detail and n.role is Role.PASSIVE


def test_a_host_without_the_containers_is_not_eligible(clock: FakeClock) -> None:
    n = new_node(clock, "server2", term=1)
    n.handle(hb(Role.ACTIVE, 1, sender="server1", now=clock.now()))
    n.handle(ContainersObserved(observations=(ContainerObservation(name="web", exists=False),), now=clock.now()))
    assert n.heartbeat_fields()["eligible"] is False
    clock.advance(HB_TIMEOUT + 1)
    n.handle(Tick(now=clock.now()))
    assert n.role is Role.PASSIVE  # starting a container that does not exist here would only fail
    ans, _ = become_primary(n, "server1", 1, "x", clock.now())
    assert not ans.accepted and ans.detail == "missing here: web"


# ---------------------------------------------------------------------------------------------- guard order
# Each role's decision function is a list of ordered guards; these pin the orders that were implicit.


def test_a_role_change_is_the_steps_reason(clock: FakeClock) -> None:
    n = new_node(clock, "server1", term=4)
    out = n.handle(hb(Role.STARTING, 4, now=clock.now()))
    assert out.reason is not None and out.reason.code == TransitionCode.COLD_START_CANDIDATE
    assert out.reason.text == out.transitions[0].reason


def test_starting_guards_a_stall_holds_the_start_up_takeover(clock: FakeClock) -> None:
    n = new_node(clock, "server2", term=2)
    clock.set(104.5)
    n.handle(Resumed(now=clock.now(), stalled_for=4.0))  # hold until 104.5 + 2 * HB_INTERVAL
    clock.set(105.0)  # the start-up grace is over, the hold is not
    n.handle(Tick(now=clock.now()))
    assert n.role is Role.STARTING
    assert n.next_deadline(clock.now()) == pytest.approx(105.5)
    clock.set(105.5)
    out = n.handle(Tick(now=clock.now()))
    assert transitions(out) == [("STARTING", "ACTIVE", TransitionCode.STARTUP_PEER_SILENT)]


def test_idle_guards_for_a_hand_over_request_eligible_then_stall_then_term(clock: FakeClock) -> None:
    n = new_node(clock, "server2", term=3)
    n.handle(hb(Role.ACTIVE, 3, sender="server1", now=clock.now()))
    n.handle(Resumed(now=clock.now(), stalled_for=5.0))
    n.handle(DockerUnreachable(detail="x", now=clock.now()))
    ans, out = become_primary(n, "server1", 2, "stale, during a stall, docker down", clock.now())
    assert (ans.accepted, ans.detail) == (False, "our Docker daemon does not answer")
    assert out.actions == (ans,) and not out.transitions  # a refusal decides nothing else
    n.handle(running(False, now=clock.now()))
    ans, _ = become_primary(n, "server1", 2, "stale, during a stall", clock.now())
    assert (ans.accepted, ans.detail) == (False, "just resumed from a stall")
    clock.advance(2 * HB_INTERVAL)
    ans, _ = become_primary(n, "server1", 2, "stale", clock.now())
    assert (ans.accepted, ans.detail) == (False, "stale request: term 2 < our term 3")
    ans, out = become_primary(n, "server1", 3, "current", clock.now())
    assert ans.accepted and transitions(out) == [("PASSIVE", "ACTIVE", TransitionCode.HANDOVER_ACCEPTED)]


def test_active_and_handing_over_refuse_a_hand_over_request_first(clock: FakeClock) -> None:
    n = new_node(clock)
    make_active(n, clock)
    ans, out = become_primary(n, "server2", n.term + 5, "x", clock.now())
    assert (ans.accepted, ans.detail) == (False, "not idle (we are active)") and out.actions == (ans,)
    n.handle(running(False, exit_code=1, now=clock.now()))
    assert n.role is Role.HANDING_OVER
    ans, out = become_primary(n, "server2", n.term + 5, "x", clock.now())
    assert (ans.accepted, ans.detail) == (False, "not idle (we are handing_over)") and out.actions == (ans,)


def test_active_guards_a_higher_term_beats_a_failed_container(clock: FakeClock) -> None:
    n = new_node(clock)
    make_active(n, clock)
    t0 = clock.now()
    n.handle(running(False, exit_code=137, restart_policy="always", now=t0))  # failed at t0 + 3.0
    clock.set(t0 + 3.0)
    out = n.handle(hb(Role.ACTIVE, n.term + 1, now=clock.now()))
    assert transitions(out) == [("ACTIVE", "PASSIVE", TransitionCode.HIGHER_TERM)]
    assert not out.of_type(RequestHandOver) and n.role is Role.PASSIVE


def test_active_guards_peer_lost_is_said_even_when_docker_does_not_answer(clock: FakeClock) -> None:
    n = new_node(clock)
    make_active(n, clock)
    n.handle(DockerUnreachable(detail="gone", now=clock.now()))
    clock.advance(HB_TIMEOUT + 0.1)
    out = n.handle(Tick(now=clock.now()))
    assert [a.code for a in out.of_type(Alert)] == [AlertCode.PEER_LOST] and n.role is Role.ACTIVE


def test_active_guards_shutdown_waits_for_nothing_in_flight(clock: FakeClock) -> None:
    n = new_node(clock)
    n.handle(hb(Role.PASSIVE, 0, now=clock.now()))
    assert n.role is Role.ACTIVE  # its start is still in flight
    out = n.handle(ShutdownRequested(now=clock.now()))
    assert kinds(out) == [] and not out.transitions and n.role is Role.ACTIVE


def test_handing_over_guards_only_a_higher_term_ends_the_wait_and_a_second_timeout_fails(clock: FakeClock) -> None:
    n = handing_over(clock)
    term = n.term
    n.handle(HandOverAnswered(accepted=False, ambiguous=True, detail="timeout", now=clock.now()))
    out = n.handle(hb(Role.ACTIVE, term, now=clock.now()))  # same term: no proof it took over
    assert n.role is Role.HANDING_OVER and not out.transitions
    assert kinds(n.handle(ShutdownRequested(now=clock.now()))) == []
    out = n.handle(HandOverAnswered(accepted=False, ambiguous=True, detail="timeout again", now=clock.now()))
    assert transitions(out) == [("HANDING_OVER", "ACTIVE", TransitionCode.HANDOVER_FAILED)]
    assert out.of_type(StartContainers)


def test_a_stall_decides_nothing_but_the_alert(clock: FakeClock) -> None:
    n = new_node(clock, "server2", term=1)
    n.handle(hb(Role.ACTIVE, 1, sender="server1", now=clock.now()))
    clock.advance(5.0)  # silent past its timeout, and a heartbeat is due
    out = n.handle(Resumed(now=clock.now(), stalled_for=5.0))
    assert [type(a) for a in out.actions] == [Alert] and not out.transitions and n.role is Role.PASSIVE


def test_the_lab_starts_a_dockerd_again_that_exits_while_starting(tmp_path, monkeypatch):
    """labs.docker.TwoHostLab.restart_dockerd (the chaos bed's heal of a killed dockerd): a dockerd that exits
    while starting ("timeout waiting for containerd to start" on a loaded machine) is started again, like
    systemd's Restart=; after the last attempt the error stands."""
    from labs.docker import DockerdExited, Host, TwoHostLab

    lab = TwoHostLab()
    lab.hosts["a"] = Host(key="a", netns="none", ip="10.0.0.1", dir=tmp_path)
    starts: list[int] = []
    outcomes = iter([DockerdExited("dockerd of host a exited 1:\ntimeout waiting for containerd"), None])

    def wait(host: Host, timeout: float = 60) -> None:
        err = next(outcomes)
        if err is not None:
            raise err

    monkeypatch.setattr(lab, "_start_dockerd", lambda host: starts.append(1))
    monkeypatch.setattr(lab, "_wait_dockerd", wait)
    lab.restart_dockerd("a")
    assert len(starts) == 2
    always = DockerdExited("dockerd of host a exited 1")
    monkeypatch.setattr(lab, "_wait_dockerd", lambda host, timeout=60: (_ for _ in ()).throw(always))
    with pytest.raises(DockerdExited):
        lab.restart_dockerd("a", attempts=3)
    assert len(starts) == 5

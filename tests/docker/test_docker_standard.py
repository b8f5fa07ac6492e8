"""Unit tests of the pair decider in standard mode (a witness), with a fake clock and made-up witness answers.

The witness's answers are real ``failover_core.witness_protocol.WitnessAck`` values built here; the fencing
numbers are ``failover_core.fencing.FencingTiming``'s. No Docker, no network.
"""

from __future__ import annotations

import dataclasses

import pytest

from DockerFailover.codes import AlertCode, NoteCode, TransitionCode
from DockerFailover.containers import ContainerObservation
from DockerFailover.decider import PairNode, PairSettings
from DockerFailover.events import (
    Alert,
    ContainersObserved,
    ContainersStarted,
    ContainersStopped,
    HandOverRequested,
    HeartbeatAnswer,
    HeartbeatReceived,
    HoldFence,
    KeeperConnected,
    KeeperLost,
    PeerAcknowledged,
    PeerAlive,
    PeerHeartbeat,
    Resumed,
    Role,
    SendHeartbeat,
    StartContainers,
    StopContainers,
    Tick,
    WitnessAnswered,
    WitnessUnreachable,
)
from failover_core.clock import FakeClock
from failover_core.fencing import FencingTiming
from failover_core.liveness import Liveness
from failover_core.step import Step
from failover_core.witness_book import WitnessView
from failover_core.witness_protocol import WitnessAck

HB_INTERVAL, HB_TIMEOUT, KILL_BOUND = 0.5, 2.0, 0.5
TIMING = FencingTiming(timeout=HB_TIMEOUT, stop_bound=KILL_BOUND)


def settings(name: str, **kw: object) -> PairSettings:
    base: dict[str, object] = dict(
        name=name, peer="server2" if name == "server1" else "server1", preferred=name == "server1",
        containers=("web",), heartbeat_interval=HB_INTERVAL, heartbeat_timeout=HB_TIMEOUT,
        startup_grace_period=5.0, restart_grace_period=3.0, stop_timeout=10.0, fencing=TIMING)
    base.update(kw)
    return PairSettings(**base)  # type: ignore[arg-type]


def running(up: bool, *, now: float) -> ContainersObserved:
    return ContainersObserved(now=now, observations=(ContainerObservation(
        name="web", exists=True, running=up, health="healthy" if up else None,
        status="running" if up else "exited"),))


def hb(role: Role, term: int, sender: str, *, now: float) -> HeartbeatReceived:
    return HeartbeatReceived(now=now, heartbeat=PeerHeartbeat(sender=sender, term=term, role=role, eligible=True,
                                                              containers_up=role is Role.ACTIVE))


def ack(node: PairNode, seq: int, peer_state: Liveness | None, *, active: bool | None = None, term: int = 0,
        down_after: float = TIMING.down_after, now: float) -> WitnessAnswered:
    """The witness acknowledges ``seq`` of ``node`` and says ``peer_state`` of its peer (None: never heard)."""
    peers: tuple[WitnessView, ...] = ()
    if peer_state is not None:
        peers = (WitnessView(node=node.settings.peer, state=peer_state, term=term, active=active,
                             silent_for=0.1 if peer_state is Liveness.UP else down_after + 1,
                             down_in=1.0 if peer_state is Liveness.UP else 0.0),)
    you = WitnessView(node=node.settings.name, state=Liveness.UP, term=node.term, active=False, silent_for=0.0,
                      down_in=down_after)
    return WitnessAnswered(now=now, ack=WitnessAck(
        witness="w", witness_boot="b00t", group="pair", node=node.settings.name, seq=seq, you=you, peers=peers,
        unheard=Liveness.DOWN, unheard_down_in=0.0, highest_term=term, timeout=HB_TIMEOUT, down_after=down_after))


def beats(step: Step) -> list[SendHeartbeat]:
    return step.of_type(SendHeartbeat)


def transitions(step: Step) -> list[tuple[str, str, str]]:
    return [(t.from_state, t.to_state, t.code) for t in step.transitions]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(100.0)


def passive_b(clock: FakeClock) -> PairNode:
    """server2, passive behind an active server1 in term 1, its heartbeats acknowledged by the peer."""
    b = PairNode(settings("server2"), term=1, booted_at=clock.now())
    b.handle(running(False, now=clock.now()))
    b.handle(hb(Role.ACTIVE, 1, "server1", now=clock.now()))
    assert b.role is Role.PASSIVE
    b.handle(PeerAcknowledged(now=clock.now(), seq=b.seq))
    return b


def active_a(clock: FakeClock) -> PairNode:
    """server1, active in term 1 with its container up; its heartbeats acknowledged by the peer so far."""
    a = PairNode(settings("server1"), term=0, booted_at=clock.now())
    a.handle(running(False, now=clock.now()))
    a.handle(PeerAcknowledged(now=clock.now(), seq=a.seq))  # the peer has our first heartbeat
    a.handle(hb(Role.STARTING, 0, "server2", now=clock.now()))
    assert a.role is Role.STARTING  # one idle heartbeat is not enough: it may be an old one, delivered late
    clock.advance(2 * HB_INTERVAL)
    a.handle(hb(Role.STARTING, 0, "server2", now=clock.now()))
    out = witness_round(a, clock, Liveness.UP, active=False)  # our claim goes out with this heartbeat ...
    assert a.claim_seq is not None and a.role is Role.STARTING, out
    [beat] = beats(out)
    out = a.handle(ack(a, beat.seq, Liveness.UP, active=False, now=clock.now()))  # ... and is answered
    assert a.role is Role.ACTIVE, out
    a.handle(PeerAcknowledged(now=clock.now(), seq=beat.seq))
    a.handle(ContainersStarted(ok=True, now=clock.now()))
    a.handle(running(True, now=clock.now()))
    return a


def tick(n: PairNode, clock: FakeClock) -> Step:
    return n.handle(Tick(now=clock.now()))


def witness_round(n: PairNode, clock: FakeClock, peer_state: Liveness | None, **kw: object) -> Step:
    """A heartbeat goes out (now, or when it is next due) and the witness answers it at once: the answer's step."""
    out = tick(n, clock)
    if not beats(out):
        clock.advance(HB_INTERVAL)
        out = tick(n, clock)
    [beat] = beats(out)
    return n.handle(ack(n, beat.seq, peer_state, now=clock.now(), **kw))  # type: ignore[arg-type]


def test_the_passive_waits_the_heartbeat_timeout_and_no_longer(clock: FakeClock) -> None:
    """down_after is the timeout itself (the fencing margin comes off the active's lease): the passive claims
    exactly heartbeat_timeout after its last receipt, not a margin later."""
    b = passive_b(clock)
    heard = clock.now()
    assert b.liveness.timeout == TIMING.down_after == HB_TIMEOUT
    clock.set(heard + HB_TIMEOUT - 0.01)
    out = witness_round(b, clock, Liveness.DOWN)  # our heartbeat goes out at once and is acknowledged
    assert not out.transitions and b.role is Role.PASSIVE and b.claim_seq is None
    clock.set(heard + HB_TIMEOUT)
    out = tick(b, clock)
    assert [n.code for n in out.notes] == [NoteCode.CLAIMING] and b.claim_seq is not None


def test_the_passive_asks_the_witness_afresh_the_moment_the_peer_goes_silent(clock: FakeClock) -> None:
    """The witness's last answer (up to a heartbeat old) still has the peer up: B sends a heartbeat at once
    instead of waiting for the next interval, and claims on that answer (once per silence)."""
    b = passive_b(clock)
    heard = clock.now()
    clock.set(heard + HB_TIMEOUT - 0.1)
    witness_round(b, clock, Liveness.UP, active=True, term=1)  # the witness still heard server1 then
    clock.set(heard + HB_TIMEOUT)
    out = tick(b, clock)  # the peer is silent; the witness's view we hold is 0.1 s old: ask again
    assert b.claim_seq is None and not out.of_type(Alert)  # no "held" alert on a stale answer
    [beat] = beats(out)
    assert not beat.claims_active
    out = b.handle(ack(b, beat.seq, Liveness.DOWN, active=True, term=1, now=clock.now() + 0.005))
    assert [n.code for n in out.notes] == [NoteCode.CLAIMING] and b.claim_seq is not None
    clock.advance(0.01)
    out = b.handle(ack(b, b.claim_seq, Liveness.DOWN, active=True, term=1, now=clock.now()))
    assert transitions(out) == [("PASSIVE", "ACTIVE", TransitionCode.WITNESS_CONFIRMED)]


def test_a_passive_held_by_the_witness_asks_afresh_only_once_per_silence(clock: FakeClock) -> None:
    b = passive_b(clock)
    clock.advance(HB_TIMEOUT)
    witness_round(b, clock, Liveness.UP, active=True, term=1)
    clock.advance(0.01)
    assert not beats(tick(b, clock))  # the regular interval again: no heartbeat storm while held


def test_the_passive_starts_only_after_the_witness_answers_its_claim_with_the_peer_down(clock: FakeClock) -> None:
    b = passive_b(clock)
    clock.advance(TIMING.down_after)
    out = witness_round(b, clock, Liveness.DOWN)
    # the claim: a heartbeat telling the witness we are about to run; no start yet
    assert [n.code for n in out.notes] == [NoteCode.CLAIMING] and not out.of_type(StartContainers)
    [beat] = beats(out)
    assert beat.claims_active and b.claim_seq == beat.seq
    out = b.handle(ack(b, beat.seq, Liveness.DOWN, term=1, now=clock.now()))
    assert transitions(out) == [("PASSIVE", "ACTIVE", TransitionCode.WITNESS_CONFIRMED)]
    assert "secondary.verified.primary_down" in out.transitions[0].reason and b.term == 2
    # the fence keeper holds our lease before the containers start, until the lease runs out: the claim's send
    # time + the lease (heartbeat_timeout - fencing margin), not + heartbeat_timeout
    [fence] = out.of_type(HoldFence)
    assert fence.until == b.lease.expires_at == pytest.approx(clock.now() + TIMING.lease)
    assert out.of_type(StartContainers)[0].term == 2


def test_a_claim_answered_with_the_peer_alive_is_withdrawn(clock: FakeClock) -> None:
    b = passive_b(clock)
    clock.advance(TIMING.down_after)
    [beat] = beats(witness_round(b, clock, Liveness.DOWN))
    out = b.handle(ack(b, beat.seq, Liveness.UP, active=True, term=1, now=clock.now()))
    assert not out.transitions and [n.code for n in out.notes] == [NoteCode.CLAIM_WITHDRAWN]
    assert b.claim_seq is None and b.role is Role.PASSIVE
    [again] = beats(out)
    assert not again.claims_active  # said at once: we do not run


def test_a_claim_the_witness_never_answers_is_withdrawn_after_the_timeout(clock: FakeClock) -> None:
    b = passive_b(clock)
    clock.advance(TIMING.down_after)
    witness_round(b, clock, Liveness.DOWN)
    assert b.claim_seq is not None
    clock.advance(HB_TIMEOUT)
    out = b.handle(WitnessUnreachable(now=clock.now(), seq=b.seq, detail="timeout"))
    assert [n.code for n in out.notes] == [NoteCode.CLAIM_WITHDRAWN] and b.role is Role.PASSIVE


def test_the_passive_with_the_witness_hearing_the_active_stays_passive(clock: FakeClock) -> None:
    """A cut between the pair only: the witness still hears server1."""
    b = passive_b(clock)
    clock.advance(TIMING.down_after + 1)
    out = witness_round(b, clock, Liveness.UP, active=True, term=1)
    assert not out.transitions and b.claim_seq is None
    assert [a.code for a in out.of_type(Alert)] == [AlertCode.TAKEOVER_HELD]
    assert "secondary.verified.primary_alive" in out.of_type(Alert)[0].message
    assert not tick(b, clock).of_type(Alert)  # said once


def test_the_passive_does_not_start_when_it_reaches_neither_the_peer_nor_the_witness(clock: FakeClock) -> None:
    b = passive_b(clock)
    clock.advance(TIMING.down_after + 1)
    out = tick(b, clock)  # asks the witness afresh (a heartbeat at once) ...
    assert not out.transitions and b.claim_seq is None and beats(out)
    clock.advance(HB_INTERVAL / 2)
    out = tick(b, clock)  # ... which does not answer
    assert not out.transitions and b.claim_seq is None
    assert "secondary.primary_down.witness_down" in out.of_type(Alert)[0].message


def test_the_active_fences_itself_when_its_lease_expires(clock: FakeClock) -> None:
    a = active_a(clock)
    clock.advance(HB_INTERVAL)
    [beat] = beats(tick(a, clock))
    sent = clock.now()
    out = a.handle(PeerAcknowledged(now=clock.now() + 0.01, seq=beat.seq))  # the lease counts from the send
    assert a.lease.expires_at == pytest.approx(sent + TIMING.lease)
    assert TIMING.fenced_by() < TIMING.takeover_not_before()  # killed before anyone may call us gone
    assert out.of_type(HoldFence) == [HoldFence(until=a.lease.expires_at)]  # the keeper gets the new lease end
    # heartbeats keep going out but nothing acknowledges them: the active hears nothing back
    while clock.now() < sent + TIMING.lease - HB_INTERVAL:
        clock.advance(HB_INTERVAL)
        assert tick(a, clock).transitions == ()
    assert a.next_deadline(clock.now()) <= sent + TIMING.lease
    clock.set(sent + TIMING.lease - 0.001)
    assert tick(a, clock).transitions == ()
    clock.set(sent + TIMING.lease)
    out = tick(a, clock)
    assert transitions(out) == [("ACTIVE", "PASSIVE", TransitionCode.SELF_FENCED)]
    [stop] = out.of_type(StopContainers)
    assert stop.kill and stop.timeout == 0
    assert a.fence_sent == (True, a.lease.expires_at)  # the keeper kills too at that instant, if we do not
    out = a.handle(ContainersStopped(ok=True, now=clock.now()))
    assert out.of_type(HoldFence) == [HoldFence(until=None)]  # stopped: nothing left to guard


def test_a_heartbeat_merely_received_does_not_renew_the_lease(clock: FakeClock) -> None:
    """Our outgoing traffic is cut: we still hear the peer, and must fence all the same."""
    a = active_a(clock)
    a.handle(PeerAcknowledged(now=clock.now(), seq=a.seq))
    end = clock.now() + TIMING.lease + HB_INTERVAL
    while clock.now() < end:
        clock.advance(HB_INTERVAL)
        a.handle(hb(Role.PASSIVE, 1, "server2", now=clock.now()))
    assert a.role is Role.PASSIVE and a.machine.last.code == TransitionCode.SELF_FENCED


def test_the_witness_alone_keeps_the_active_running_and_a_witness_down_alone_changes_nothing(
        clock: FakeClock) -> None:
    a = active_a(clock)
    for _ in range(10):  # the pair cut: only the witness acknowledges
        clock.advance(HB_INTERVAL)
        out = tick(a, clock)
        for beat in beats(out):
            a.handle(ack(a, beat.seq, Liveness.UP, active=False, term=1, now=clock.now()))
    assert a.role is Role.ACTIVE
    for _ in range(10):  # the witness down: only the peer acknowledges
        clock.advance(HB_INTERVAL)
        out = tick(a, clock)
        for beat in beats(out):
            a.handle(PeerAcknowledged(now=clock.now(), seq=beat.seq))
            a.handle(hb(Role.PASSIVE, 1, "server2", now=clock.now()))
    assert a.role is Role.ACTIVE and a.machine.last.code != TransitionCode.SELF_FENCED


def test_a_node_back_from_isolation_does_not_start_beside_the_peer_the_witness_sees_running(
        clock: FakeClock) -> None:
    """server1 (the table's primary) fenced itself; server2 took over. server1 hears the witness again first."""
    a = active_a(clock)
    clock.advance(HB_TIMEOUT + 0.01)
    tick(a, clock)
    assert a.role is Role.PASSIVE
    a.handle(ContainersStopped(ok=True, now=clock.now()))
    a.handle(running(False, now=clock.now()))
    clock.advance(TIMING.down_after)
    out = witness_round(a, clock, Liveness.UP, active=True, term=2)
    assert a.term == 2  # learnt from the witness
    assert not out.transitions and a.claim_seq is None
    assert "primary.rejoin" in out.of_type(Alert)[0].message
    # the witness says server2 is down (it fenced or died): now the primary claims
    clock.advance(HB_INTERVAL)
    out = witness_round(a, clock, Liveness.DOWN, active=True, term=2)
    assert [n.code for n in out.notes] == [NoteCode.CLAIMING]


def test_no_lease_no_start_not_even_a_hand_over(clock: FakeClock) -> None:
    b = PairNode(settings("server2"), term=1, booted_at=clock.now())
    b.handle(running(False, now=clock.now()))
    b.handle(hb(Role.ACTIVE, 1, "server1", now=clock.now()))
    out = b.handle(HandOverRequested(now=clock.now(), sender="server1", term=1, reason="test"))
    assert b.role is Role.PASSIVE and "no acknowledged contact" in out.actions[0].detail


def test_a_witness_that_calls_nodes_down_too_early_is_not_used(clock: FakeClock) -> None:
    b = passive_b(clock)
    clock.advance(TIMING.down_after)
    out = witness_round(b, clock, Liveness.DOWN, down_after=HB_TIMEOUT - HB_INTERVAL)  # its timeout is shorter
    assert [a.code for a in out.of_type(Alert)] == [AlertCode.WITNESS_TIMING]
    out = tick(b, clock)
    assert b.claim_seq is None and not out.transitions


def test_a_stale_idle_heartbeat_after_a_heal_does_not_start_a_second_active(clock: FakeClock) -> None:
    """Found on the lab: B took over while A was isolated; at the heal A got B's held-up 'passive' heartbeat
    first and, both idle as far as it knew, started as the cold-start candidate beside B."""
    b = passive_b(clock)
    a = PairNode(settings("server1"), term=1, booted_at=clock.now())
    a.handle(running(False, now=clock.now()))
    witness_round(a, clock, Liveness.UP, active=True, term=2)
    a.handle(hb(Role.PASSIVE, 1, "server2", now=clock.now()))  # the old one, delivered late
    out = tick(a, clock)
    assert a.role is Role.STARTING and a.claim_seq is None and not out.of_type(StartContainers)
    a.handle(hb(Role.ACTIVE, 2, "server2", now=clock.now() + 0.01))  # the fresh one, right behind it
    assert a.role is Role.PASSIVE
    del b


def starts_in_the_hold(a: PairNode, clock: FakeClock) -> list[StartContainers]:
    """Three half-intervals after a thaw or a self-fence: the peer acknowledges our heartbeats at once (the lease
    is valid again), its own queued heartbeats still say passive, the witness is not back: what ``a`` starts."""
    started: list[StartContainers] = []
    for _ in range(3):
        clock.advance(HB_INTERVAL / 2)
        for beat in beats(tick(a, clock)):
            started += a.handle(PeerAcknowledged(now=clock.now(), seq=beat.seq)).of_type(StartContainers)
        started += a.handle(hb(Role.PASSIVE, 1, "server2", now=clock.now())).of_type(StartContainers)
        started += tick(a, clock).of_type(StartContainers)
    return started


def test_chaos_docker_seed_1_a_thawed_active_does_not_cold_start_on_stale_facts(clock: FakeClock) -> None:
    """Found by the 30-minute chaos run (Docker, standard, seed 1): the active's agent was frozen longer than its
    lease; its keeper killed the container, the peer took over. At the thaw the agent fenced itself (right) and
    at once started again as the cold-start candidate (wrong): the peer's heartbeats it read first were the
    "passive" ones queued during the stall, and the witness looked silent only because we had been frozen, so
    the witness-down rule let it start without a claim: 0.12-0.22 s of two actives."""
    a = active_a(clock)
    clock.advance(HB_INTERVAL)
    a.handle(hb(Role.PASSIVE, 1, "server2", now=clock.now()))
    clock.advance(1.51)  # frozen: no tick, no ack, nothing read
    a.handle(Resumed(now=clock.now(), stalled_for=1.51))
    out = a.handle(hb(Role.PASSIVE, 1, "server2", now=clock.now()))  # queued during the stall
    assert transitions(out) == [("ACTIVE", "PASSIVE", TransitionCode.SELF_FENCED)]
    assert starts_in_the_hold(a, clock) == []
    a.handle(hb(Role.ACTIVE, 2, "server2", now=clock.now()))  # the fresh one: the peer took over
    assert a.role is Role.PASSIVE
    assert not tick(a, clock).of_type(StartContainers)


def test_chaos_docker_seed_3_a_self_fenced_active_does_not_cold_start_on_stale_facts(clock: FakeClock) -> None:
    """Found by the 30-minute chaos run (Docker, standard, seed 3): as seed 1, but the freeze (1.4 s at T 1.5 s)
    was shorter than the agent's stall threshold (then T), so no ``Resumed`` came: the agent fenced itself at the
    thaw and 5 ms later started as the cold-start candidate "(witness unreachable)" beside the peer that had
    taken over: 0.22 s of two. A self-fence itself now makes the peer's idleness old news."""
    a = active_a(clock)
    clock.advance(HB_INTERVAL)
    a.handle(hb(Role.PASSIVE, 1, "server2", now=clock.now()))
    clock.advance(HB_TIMEOUT - 0.1)  # frozen, unnoticed: no tick, no ack, nothing read
    out = a.handle(hb(Role.PASSIVE, 1, "server2", now=clock.now()))  # queued during the stall
    assert transitions(out) == [("ACTIVE", "PASSIVE", TransitionCode.SELF_FENCED)]
    assert not out.of_type(StartContainers) and starts_in_the_hold(a, clock) == []
    a.handle(hb(Role.ACTIVE, 2, "server2", now=clock.now()))  # the fresh one: the peer took over
    assert a.role is Role.PASSIVE


def fenced_under_loss(clock: FakeClock) -> PairNode:
    """server1 active, then its packets mostly lost: no answer from the peer or the witness, while the peer's
    "passive" heartbeats still arrive. It fences itself at the lease's end and keeps hearing the peer idle, the
    witness silent, past the hold after the fence: only a lease stands between it and a cold start."""
    a = active_a(clock)
    for _ in range(int(3 * HB_TIMEOUT / HB_INTERVAL)):
        clock.advance(HB_INTERVAL)
        for beat in beats(tick(a, clock)):
            a.handle(WitnessUnreachable(now=clock.now(), seq=beat.seq, detail="timeout"))
        assert not a.handle(hb(Role.PASSIVE, 1, "server2", now=clock.now())).of_type(StartContainers)
    assert a.role is Role.PASSIVE and a.machine.history[-1].code == TransitionCode.SELF_FENCED
    assert a.witness is not None and a.witness.state(clock.now()) is Liveness.DOWN and not a._lease_valid(clock.now())
    return a


def answered(a: PairNode, clock: FakeClock, role: Role, term: int) -> Step:
    """One heartbeat of ``a`` gets through and the peer's answer comes back: its news (``role``, ``term``) and
    the renewal of a's lease, in one event."""
    clock.advance(HB_INTERVAL)
    [beat] = beats(tick(a, clock))
    news = PeerHeartbeat(sender="server2", term=term, role=role, eligible=True, containers_up=role is Role.ACTIVE)
    return a.handle(HeartbeatReceived(now=clock.now(), heartbeat=news, acked_seq=beat.seq))


def test_chaos_docker_seed_20261436_a_lease_renewed_by_the_peer_s_answer_comes_with_its_news(
        clock: FakeClock) -> None:
    """Found by make test's seeded run (Docker, standard, seed 20261436, loss on the active): server1 fenced
    itself under the loss; server2, having heard nothing for the timeout, took over with the witness's word;
    then one of server1's heartbeats got through and server2's answer renewed server1's lease, while the last
    heartbeat server1 had read from server2 still said "passive" and the witness was unreachable: server1
    cold-started beside it (0.38 s of two). The answer now carries the answerer's news, learnt before the lease."""
    a = fenced_under_loss(clock)
    out = answered(a, clock, Role.ACTIVE, 2)  # server2 took over meanwhile: its answer says so
    assert a.role is Role.PASSIVE and a._lease_valid(clock.now()) and not out.of_type(StartContainers), out
    for _ in range(int(HB_TIMEOUT / HB_INTERVAL)):
        assert not answered(a, clock, Role.ACTIVE, 2).of_type(StartContainers)
    assert a.role is Role.PASSIVE and a.term == 2


def test_a_lease_renewed_by_an_idle_peer_s_answer_still_cold_starts_without_the_witness(clock: FakeClock) -> None:
    """The same loss, but the peer's answer says it is still idle: it heard us just now, so it cannot take over
    before a timeout from now, later than our new lease ends: the pair's own rule starts the preferred node
    (the witness down alone changes nothing)."""
    a = fenced_under_loss(clock)
    out = answered(a, clock, Role.PASSIVE, 1)
    assert a.role is Role.ACTIVE and out.of_type(StartContainers), out
    assert transitions(out) == [("PASSIVE", "ACTIVE", TransitionCode.COLD_START_CANDIDATE)]


def test_answers_carry_our_news_in_one_order_with_our_heartbeats_and_nothing_before_docker_answered(
        clock: FakeClock) -> None:
    """A POSTed heartbeat's step carries our answer (after what the heartbeat changed); a heartbeat from an answer
    or one fed by a test asks for none."""
    n = PairNode(settings("server1"), term=0, booted_at=clock.now())

    def posted(role: Role, term: int) -> dict:
        event = hb(role, term, "server2", now=clock.now())
        [answer] = n.handle(dataclasses.replace(event, posted=True)).of_type(HeartbeatAnswer)
        return answer.fields

    assert posted(Role.STARTING, 0) == {}  # "eligible: false" would make the peer the cold-start candidate
    assert not n.handle(PeerAlive(now=clock.now())).of_type(HeartbeatAnswer)[0].fields
    assert not n.handle(hb(Role.STARTING, 0, "server2", now=clock.now())).of_type(HeartbeatAnswer)
    [first] = beats(n.handle(running(False, now=clock.now())))
    answer = posted(Role.STARTING, 0)
    assert answer["sender"] == "server1" and answer["role"] == "starting" and answer["seq"] > first.seq
    [again] = n.handle(PeerAlive(now=clock.now())).of_type(HeartbeatAnswer)  # a late POST: answered all the same
    assert again.fields["seq"] > answer["seq"]
    clock.advance(HB_INTERVAL)
    [second] = beats(tick(n, clock))
    assert second.seq > again.fields["seq"] and second.fields["seq"] == second.seq
    assert posted(Role.ACTIVE, 1)["term"] == 1  # the answer says what we are after learning the heartbeat


def test_simple_mode_has_no_fence_and_no_claims(clock: FakeClock) -> None:
    n = PairNode(settings("server1", fencing=None), term=0, booted_at=clock.now())
    n.handle(running(False, now=clock.now()))
    out = n.handle(hb(Role.STARTING, 0, "server2", now=clock.now()))
    assert n.role is Role.ACTIVE and not out.of_type(HoldFence) and n.lease is None
    assert all(not beat.claims_active or n.role is Role.ACTIVE for beat in beats(out))


# ---------------------------------------------------------------------------------------------- a listening keeper

def passive_b_with_keeper(clock: FakeClock) -> PairNode:
    """As passive_b, with ``fence_keeper`` a socket: the keeper accepted us at start."""
    b = PairNode(settings("server2", keeper_connects=True), term=1, booted_at=clock.now())
    assert not b.keeper_up
    out = b.handle(KeeperConnected(now=clock.now(), detail="ok"))
    assert not out.of_type(Alert)  # the first acceptance is no news
    b.handle(running(False, now=clock.now()))
    b.handle(hb(Role.ACTIVE, 1, "server1", now=clock.now()))
    b.handle(PeerAcknowledged(now=clock.now(), seq=b.seq))
    assert b.role is Role.PASSIVE and b.eligible
    return b


def test_no_keeper_no_takeover_no_hand_over_and_one_alert(clock: FakeClock) -> None:
    """The passive's keeper is gone (its container killed): it alerts once, says ``eligible: false``, refuses a
    hand-over and does not claim when the active goes silent; once a keeper accepts it again it takes over."""
    b = passive_b_with_keeper(clock)
    out = b.handle(KeeperLost(now=clock.now(), detail="the keeper at /run/k.sock closed the connection"))
    assert [a.code for a in out.of_type(Alert)] == [AlertCode.KEEPER_UNREACHABLE]
    assert "not eligible" in out.of_type(Alert)[0].message and not b.eligible
    assert not b.handle(KeeperLost(now=clock.now(), detail="cannot connect")).of_type(Alert)  # said once
    out = b.handle(HandOverRequested(now=clock.now(), sender="server1", term=1, reason="test"))
    assert b.role is Role.PASSIVE and out.actions[0].detail == "no fence keeper holds our lease"
    clock.advance(TIMING.down_after + 1)
    out = witness_round(b, clock, Liveness.DOWN)
    assert b.claim_seq is None and not out.of_type(StartContainers) and b.role is Role.PASSIVE
    clock.advance(HB_INTERVAL)
    assert [beat.fields["eligible"] for beat in beats(tick(b, clock))] == [False]
    out = b.handle(KeeperConnected(now=clock.now(), detail="ok"))
    assert [a.code for a in out.of_type(Alert)] == [AlertCode.KEEPER_BACK]
    assert out.of_type(HoldFence) == [HoldFence(until=None)]  # the new keeper is told again: nothing held
    assert [n.code for n in out.notes] == [NoteCode.CLAIMING]  # eligible again: the table decides at once


def test_never_accepted_by_a_keeper_never_cold_starts(clock: FakeClock) -> None:
    """The agent cannot reach its keeper at start: both idle and it is the candidate, but it starts nothing; its
    heartbeats say it is not eligible, which makes the peer the cold-start candidate."""
    a = PairNode(settings("server1", keeper_connects=True), term=0, booted_at=clock.now())
    a.handle(KeeperLost(now=clock.now(), detail="cannot connect to /run/k.sock"))
    a.handle(running(False, now=clock.now()))
    a.handle(PeerAcknowledged(now=clock.now(), seq=a.seq))
    started: list[StartContainers] = []
    for _ in range(int(10 / HB_INTERVAL)):  # past the start-up grace
        clock.advance(HB_INTERVAL)
        a.handle(hb(Role.STARTING, 0, "server2", now=clock.now()))
        out = witness_round(a, clock, Liveness.UP, active=False)
        started += out.of_type(StartContainers)
        assert all(beat.fields["eligible"] is False for beat in beats(tick(a, clock)))
    assert not started and a.role is Role.STARTING and a.claim_seq is None


def test_the_active_keeps_its_containers_without_a_keeper_and_a_new_keeper_gets_the_lease(clock: FakeClock) -> None:
    """The active's keeper is gone: nothing changes for the service (it still fences itself at the lease's end);
    the keeper that accepts it next is told the current lease end at once."""
    a = active_a(clock)  # spawned-keeper settings; the facts are the same
    a.settings = settings("server1", keeper_connects=True)
    out = a.handle(KeeperLost(now=clock.now(), detail="closed"))
    assert "we keep the containers" in out.of_type(Alert)[0].message
    assert a.role is Role.ACTIVE and not out.of_type(StopContainers)
    clock.advance(HB_INTERVAL)
    [beat] = beats(tick(a, clock))
    a.handle(PeerAcknowledged(now=clock.now(), seq=beat.seq))
    out = a.handle(KeeperConnected(now=clock.now(), detail="ok"))
    assert out.of_type(HoldFence) == [HoldFence(until=a.lease.expires_at)] and a.role is Role.ACTIVE
    a.handle(KeeperLost(now=clock.now(), detail="closed"))
    clock.advance(TIMING.lease + 0.01)  # nothing acknowledged since: the agent fences itself, keeper or not
    out = tick(a, clock)
    assert transitions(out) == [("ACTIVE", "PASSIVE", TransitionCode.SELF_FENCED)]
    assert out.of_type(StopContainers)[0].kill

"""PairArbiter (per-host mode) without I/O: events in, Steps out, a fake clock. One test per guard and table path,
and the wire format of the valets' heartbeats."""

from __future__ import annotations

import pytest

from failover_core.errors import RemoteInputError
from failover_core.request_auth import NotAuthenticated, RequestAuthenticator
from HaValet.arbiter import TEST_LOST_AFTER, DeciderBug, PairArbiter, PairState, _Attempt
from HaValet.config import HostMode, Timing
from HaValet.events import (
    Leave,
    PeerHeard,
    RunStart,
    RunStop,
    RunTest,
    SendHeartbeat,
    StartDone,
    StopDone,
    TestDone,
    Tick,
    WitnessAnswered,
)
from HaValet.wire import HEARTBEAT_PATH, ValetHeartbeat, ValetInbox, ValetSender

A, B = "hostA", "hostB"
T = 1.0
S = 0.1  # stop_bound: with HB 0.25 the lease is 1.0*0.999/1.001 - 0.25 - 0.1 - 0.1 = 0.548 s, two heartbeats
SECRET = "0123456789abcdef-secret"


def mode(node: str, *, witness: bool = False, **kw) -> HostMode:
    extra = {"witness_url": "http://10.0.0.9:8790", "witness_secret": "witness-secret-0123456"} if witness else {}
    return HostMode(node=node, secret=SECRET, peers={B if node == A else A: "http://10.0.0.2:8791"},
                    heartbeat_interval=0.25, heartbeat_timeout=T, stop_bound=S, **extra, **kw)


TIMING = Timing(interval=0.5, start_grace=2.0, start_poll=0.1, backoff_initial=2.0, backoff_max=8.0)


def arbiter(node: str = A, now: float = 100.0, **kw) -> PairArbiter:
    return PairArbiter("Web", (A, B), node, mode(node, **kw), TIMING, now=now)


def test_one(arb: PairArbiter, now: float, rc: int) -> list:
    """Tick until a test is asked for, answer it with ``rc``; the step's actions."""
    step = arb.handle(Tick(now=now))
    tests = [a for a in step.actions if isinstance(a, RunTest)]
    assert tests, step
    return list(arb.handle(TestDone(host=arb.node, rc=rc, tag=tests[-1].tag, now=now)).actions)


test_one.__test__ = False  # a helper, not a test


def peer(arb: PairArbiter, now: float, *, running: bool, eligible: bool = True, leaving: bool = False,
         acked: int | None = None, ranking: tuple[str, ...] = (A, B), term: int = 1):
    return arb.handle(PeerHeard(peer=arb.peer, now=now, term=term, running=running, eligible=eligible, priority=1,
                                ranking=ranking, leaving=leaving, acked_seq=acked))


def started(arb: PairArbiter, now: float, actions: list) -> None:
    """Finish the start in ``actions``: the command returns 0 and the first verification test says up."""
    (start,) = [a for a in actions if isinstance(a, RunStart)]
    step = arb.handle(StartDone(host=arb.node, rc=0, tag=start.tag, now=now))
    (poll,) = step.of_type(RunTest)
    arb.handle(TestDone(host=arb.node, rc=1, tag=poll.tag, now=now))
    assert arb.state is PairState.ACTIVE


def test_simple_primary_waits_to_hear_its_peer_then_starts():
    arb = arbiter(A)
    assert not [a for a in test_one(arb, 100.0, 0) if isinstance(a, RunStart)]  # peer still UNKNOWN: hold
    assert arb.last_decision.code == "simple_primary.startup"
    step = peer(arb, 100.1, running=False, term=3)
    (start,) = step.of_type(RunStart)
    assert start.term == 4 and arb.state is PairState.STARTING
    assert step.transitions[0].code == "simple_primary.always"
    assert step.of_type(SendHeartbeat)  # the peer hears of the change at once


def test_simple_secondary_starts_when_the_primary_is_silent_and_stops_when_it_is_heard_running():
    arb = arbiter(B)
    peer(arb, 100.0, running=True)
    actions = test_one(arb, 100.0, 0)
    assert not [a for a in actions if isinstance(a, RunStart)] and arb.last_decision.code == \
        "simple_secondary.primary_up"
    step = arb.handle(Tick(now=101.0))  # T of silence
    assert len(step.of_type(RunStart)) == 1
    started(arb, 101.1, list(step.actions))
    step = peer(arb, 102.0, running=True)  # the cut heals: the primary runs it too
    assert step.of_type(RunStop) and step.transitions[-1].code == "simple_secondary.primary_up"


def test_standard_secondary_starts_only_on_the_witness_word_primary_down():
    arb = arbiter(B, witness=True)
    peer(arb, 100.0, running=True)
    test_one(arb, 100.0, 0)
    silent_until = 100.0 + arb.mode.peer_down_after  # T since the last receipt (the margin is off A's lease)
    assert arb.mode.peer_down_after == T
    hb = arb.handle(Tick(now=silent_until)).of_type(SendHeartbeat)[-1]
    step = arb.handle(WitnessAnswered(seq=hb.seq, now=silent_until, peer_state="up", peer_may_be_active=True,
                                      highest_term=1))
    assert not step.of_type(RunStart) and arb.last_decision.code == "secondary.verified.primary_alive"
    hb = arb.handle(Tick(now=silent_until + 0.3)).of_type(SendHeartbeat)[-1]
    step = arb.handle(WitnessAnswered(seq=hb.seq, now=silent_until + 0.3, peer_state="down",
                                      peer_may_be_active=False, highest_term=1))
    (start,) = step.of_type(RunStart)
    assert start.term == 2 and step.transitions[0].code == "secondary.verified.primary_down"


def test_active_without_acknowledged_contact_fences_at_its_lease_end():
    arb = arbiter(A, witness=True)
    step = arb.handle(Tick(now=100.0))
    hb, test = step.of_type(SendHeartbeat)[-1], step.of_type(RunTest)[0]
    lease = arb.mode.fencing.lease
    assert lease == pytest.approx(0.548, abs=0.001) and arb.lease_length == lease
    peer(arb, 100.05, running=False, acked=hb.seq)  # acknowledged: the lease runs to 100.0 + lease (< T)
    step = arb.handle(TestDone(host=A, rc=0, tag=test.tag, now=100.05))
    started(arb, 100.1, list(step.actions))
    assert arb.lease.expires_at == pytest.approx(100.0 + lease) and arb.lease_until == arb.lease.expires_at
    assert arb.next_deadline() <= 100.0 + lease
    assert not arb.handle(Tick(now=100.0 + lease - 0.01)).of_type(RunStop)
    step = arb.handle(Tick(now=100.0 + lease))  # nothing acknowledged since: fence, T - lease before T
    assert step.of_type(RunStop) and step.transitions[-1].code == "pair.fenced"
    assert "within the lease (0.548s = heartbeat_timeout 1 - fencing margin)" in step.transitions[-1].reason


def test_found_running_but_never_acknowledged_fences_at_the_start_plus_the_lease():
    """Before the first acknowledgement the right to run is the valet's start + the lease (not + T): no heartbeat
    goes out before the start, so the instance never runs unacknowledged longer than the lease after a send."""
    arb = arbiter(A, witness=True)
    test_one(arb, 100.0, 1)  # found up, nobody answers
    assert arb.state is PairState.ACTIVE and arb.lease_until == pytest.approx(100.0 + arb.lease_length)
    assert arb.next_deadline() <= 100.0 + arb.lease_length
    assert not arb.handle(Tick(now=100.0 + arb.lease_length - 0.01)).of_type(RunStop)
    step = arb.handle(Tick(now=100.0 + arb.lease_length))
    assert step.of_type(RunStop) and step.transitions[-1].code == "pair.fenced"


def test_rejoin_guard_holds_while_the_witness_says_the_peer_runs_it():
    arb = arbiter(A, witness=True)
    test_one(arb, 100.0, 0)
    now = 100.0 + arb.mode.peer_down_after + 0.1  # the peer never heard: DOWN
    hb = arb.handle(Tick(now=now)).of_type(SendHeartbeat)[-1]
    step = arb.handle(WitnessAnswered(seq=hb.seq, now=now, peer_state="up", peer_may_be_active=True, highest_term=4))
    assert not step.of_type(RunStart) and arb.last_decision.code == "primary.rejoin"
    hb = arb.handle(Tick(now=now + 0.3)).of_type(SendHeartbeat)[-1]
    step = arb.handle(WitnessAnswered(seq=hb.seq, now=now + 0.3, peer_state="down", peer_may_be_active=False,
                                      highest_term=4))
    (start,) = step.of_type(RunStart)
    assert start.term == 5  # above every term the witness has seen


def test_ranking_mismatch_changes_nothing():
    arb = arbiter(B)
    test_one(arb, 100.0, 0)
    step = peer(arb, 100.1, running=False, ranking=(B, A))
    assert not step.of_type(RunStart) and arb.last_decision.code == "pair.ranking_mismatch"


def test_failed_start_makes_the_host_ineligible_then_the_peer_takes_over():
    arb = arbiter(A)
    test_one(arb, 100.0, 0)
    (start,) = peer(arb, 100.1, running=False).of_type(RunStart)
    step = arb.handle(StartDone(host=A, rc=1, tag=start.tag, now=100.3, detail="exit 1"))
    assert step.of_type(RunStop) and arb.state is PairState.FAILED and not arb.eligible(100.3)
    assert [h for h in step.of_type(SendHeartbeat) if not h.eligible]
    arb.handle(StopDone(host=A, rc=0, now=100.4))
    assert arb.handle(Tick(now=102.3)).transitions[0].code == "pair.retry"  # backoff_initial 2 s

    sec = arbiter(B)
    test_one(sec, 100.0, 0)
    step = peer(sec, 100.5, running=False, eligible=False)
    assert step.of_type(RunStart) and step.transitions[0].code == "pair.peer_cannot_run"


def test_a_stop_while_the_start_command_runs_is_repeated_when_that_start_returns():
    """The race the netns failback once hit: a secondary told to stop while its start command still ran launched
    the stop at once; the stop returned first (nothing to stop yet), the start then started the process, and the
    valet had told the primary it ran nothing: both ran 0.15 s. Now it claims the process until the start returns
    and stops again after a start that succeeded."""
    arb = arbiter(B)
    test_one(arb, 100.0, 0)
    (start,) = arb.handle(Tick(now=101.1)).of_type(RunStart)  # the primary is silent: start here
    step = peer(arb, 101.2, running=False)  # the primary is back: stop at once, although the start still runs
    assert step.of_type(RunStop) and arb.state is PairState.STOPPING
    step = arb.handle(StopDone(host=B, rc=0, now=101.3))  # the stop returned before the start did
    assert arb.state is PairState.PASSIVE and arb.claims_running  # the start may still start it
    assert all(h.running for h in step.of_type(SendHeartbeat))
    assert not peer(arb, 101.35, running=False).of_type(RunStart)  # and no second start meanwhile
    step = arb.handle(StartDone(host=B, rc=0, tag=start.tag, now=101.4))  # it did start it: stop again
    assert step.of_type(RunStop) and arb.state is PairState.STOPPING and arb.claims_running
    arb.handle(StopDone(host=B, rc=0, now=101.5))
    assert arb.state is PairState.PASSIVE and not arb.claims_running


def test_leave_hands_over_to_an_eligible_peer_and_says_goodbye_after_the_stop():
    arb = arbiter(A)
    test_one(arb, 100.0, 1)  # found up
    peer(arb, 100.1, running=False)
    assert arb.state is PairState.ACTIVE
    step = arb.handle(Leave(now=100.2))
    assert step.of_type(RunStop) and step.transitions[0].code == "pair.handing_over"
    step = peer(arb, 100.25, running=False)  # news while the stop runs: nothing starts again
    assert not step.of_type(RunStart) and not step.of_type(RunStop)
    step = arb.handle(StopDone(host=A, rc=0, now=100.3))
    (bye,) = step.of_type(SendHeartbeat)
    assert bye.leaving and not bye.running and arb.finished


def test_leave_with_no_peer_to_take_over_keeps_the_process():
    arb = arbiter(A)
    test_one(arb, 100.0, 1)
    step = arb.handle(Leave(now=100.2))
    assert not step.of_type(RunStop) and step.notes[0].code == "pair.keep_on_leave"
    (bye,) = step.of_type(SendHeartbeat)
    assert bye.leaving and bye.running


def test_a_peer_that_said_goodbye_is_replaced_at_once():
    arb = arbiter(B)
    peer(arb, 100.0, running=True)
    test_one(arb, 100.0, 0)
    step = peer(arb, 100.2, running=False, leaving=True)
    assert step.of_type(RunStart) and step.transitions[0].code == "pair.peer_left"


# ---------------------------------------------------------------------- wire

def _hb(**kw) -> ValetHeartbeat:
    f = {"sender": B, "process": "Web", "boot": "b1", "seq": 5, "term": 1, "running": True, "eligible": True,
         "priority": 1, "ranking": (A, B), "leaving": False, **kw}
    return ValetHeartbeat(**f)


def test_wire_round_trip_and_refusals():
    auth = RequestAuthenticator(SECRET, 30.0)
    inbox = ValetInbox(auth, {B: frozenset({"Web"})}, 30.0)
    sender = ValetSender(auth)
    body, headers = sender.request(_hb(), wall_now=1000.0, nonce="n" * 16)
    nonce, got = inbox.heartbeat("POST", HEARTBEAT_PATH, body, headers, wall_now=1000.1)
    assert got == _hb()
    answer_body, answer_headers = inbox.answer(nonce, _hb(sender=A, acked_seq=5))
    sig = next(iter(answer_headers.values()))
    assert sender.answer(_hb(), nonce, answer_body, sig, A).acked_seq == 5
    with pytest.raises(RemoteInputError):  # an answer acking another seq is no acknowledgement
        sender.answer(_hb(seq=6), nonce, answer_body, sig, A)
    with pytest.raises(NotAuthenticated):  # the same request again: its nonce was used
        inbox.heartbeat("POST", HEARTBEAT_PATH, body, headers, wall_now=1000.2)
    body2, headers2 = sender.request(_hb(seq=4), wall_now=1000.3, nonce="m" * 16)
    with pytest.raises(RemoteInputError, match=r"replayed|older"):  # an older seq of the same boot
        inbox.heartbeat("POST", HEARTBEAT_PATH, body2, headers2, wall_now=1000.3)
    wrong = ValetSender(RequestAuthenticator("another secret 0123456", 30.0))
    body3, headers3 = wrong.request(_hb(seq=9), wall_now=1000.4, nonce="k" * 16)
    with pytest.raises(NotAuthenticated):
        inbox.heartbeat("POST", HEARTBEAT_PATH, body3, headers3, wall_now=1000.4)
    body4, headers4 = sender.request(_hb(seq=10, process="Db"), wall_now=1000.5, nonce="j" * 16)
    with pytest.raises(RemoteInputError, match="arbitrate"):
        inbox.heartbeat("POST", HEARTBEAT_PATH, body4, headers4, wall_now=1000.5)


# ---------------------------------------------------------------------- late and stale results (chaos seed 3)

def _active_primary(now: float = 100.0) -> PairArbiter:
    """Simple primary A, ACTIVE by its own start, peer B heard running nothing."""
    arb = arbiter(A)
    test_one(arb, now, 0)
    started(arb, now + 0.2, list(peer(arb, now + 0.1, running=False).actions))
    return arb


def _tag_of(step) -> str:
    (t,) = step.of_type(RunTest)
    return t.tag


def test_chaos_seed_3_simple_freeze_stale_test_then_failed_start_keeps_testing():
    """labs.chaos valet --seed 3 --mode simple, fault #4: A's valet frozen 2.61 s. At SIGCONT a test that was in flight
    came back "did not run to completion"; A restarted its (still running) service: "Address already in use", FAILED.
    After the retry delay a round test launched before the new start came back "up" while the start ran: the
    arbiter went STARTING -> ACTIVE (found_up) with the start still in flight, then the start's exit 1 raised
    IllegalTransition ACTIVE -> FAILED; the RunStop of that handling was lost and A believed it ran the process,
    forever: nobody ran it for 9 s. The events in that order, on a fake clock."""
    arb = _active_primary()
    t1 = _tag_of(arb.handle(Tick(now=100.6)))  # a round test, then the freeze
    step = arb.handle(TestDone(host=A, rc=None, tag=t1, now=103.2))  # timed out (a real timeout: not stalled)
    assert step.transitions[0].code == "pair.went_down"
    (s1,) = step.of_type(RunStart)
    step = arb.handle(StartDone(host=A, rc=1, tag=s1.tag, now=103.6, detail="exit 1"))  # Address already in use
    assert arb.state is PairState.FAILED and step.of_type(RunStop)
    arb.handle(StopDone(host=A, rc=0, now=103.8))
    t2 = _tag_of(arb.handle(Tick(now=103.8)))  # tests at once after the stop ...
    step = arb.handle(Tick(now=105.6))  # ... and while that test runs the retry delay (2 s) ends: start again
    assert [t.code for t in step.transitions] == ["pair.retry", "simple_primary.always"]
    (s2,) = step.of_type(RunStart)
    step = arb.handle(TestDone(host=A, rc=1, tag=t2, now=105.65))  # launched before the start: stale
    assert arb.state is PairState.STARTING and not step.transitions  # not found_up with a start in flight
    step = arb.handle(StartDone(host=A, rc=1, tag=s2.tag, now=105.9, detail="exit 1"))  # no IllegalTransition
    assert arb.state is PairState.FAILED and step.of_type(RunStop)
    arb.handle(StopDone(host=A, rc=0, now=106.0))
    step = arb.handle(Tick(now=106.0))  # and the valet goes on testing
    assert step.of_type(RunTest) and arb.next_deadline() is not None
    arb.handle(TestDone(host=A, rc=0, tag=_tag_of(step), now=106.1))
    step = arb.handle(Tick(now=110.0))  # retry delay (4 s) over: start again, the service really is down now
    started(arb, 110.2, list(step.actions))
    assert arb.state is PairState.ACTIVE and arb.claims_running


def test_a_test_that_timed_out_while_the_valet_was_stalled_is_run_again_before_deciding():
    arb = _active_primary()
    t1 = _tag_of(arb.handle(Tick(now=100.6)))
    step = arb.handle(TestDone(host=A, rc=None, tag=t1, now=103.2, stalled=True))
    assert arb.state is PairState.ACTIVE and not step.of_type(RunStart) and step.notes[0].code == "pair.retest"
    assert arb.next_deadline() <= 103.2
    t2 = _tag_of(arb.handle(Tick(now=103.2)))
    arb.handle(TestDone(host=A, rc=1, tag=t2, now=103.3))  # it ran all along
    assert arb.state is PairState.ACTIVE
    t3 = _tag_of(arb.handle(Tick(now=103.8)))  # a second timeout in a row, not stalled, is a verdict
    step = arb.handle(TestDone(host=A, rc=None, tag=t3, now=105.8))
    assert step.transitions[0].code == "pair.went_down"


def test_a_round_test_launched_before_a_start_says_nothing_after_it():
    arb = arbiter(A)
    test_one(arb, 100.0, 0)
    t1 = _tag_of(arb.handle(Tick(now=100.5)))  # a round test (the instance is down) ...
    step = peer(arb, 100.55, running=False)  # ... and the start launched while it runs
    started(arb, 100.7, list(step.actions))
    step = arb.handle(TestDone(host=A, rc=0, tag=t1, now=100.8))  # "down", from before the start
    assert arb.state is PairState.ACTIVE and not step.transitions and step.notes[0].code == "pair.stale_result"
    assert arb.running and arb.handle(Tick(now=100.8)).of_type(RunTest)  # and a fresh test at once


def test_a_test_launched_before_a_stop_returned_does_not_stop_again():
    arb = arbiter(A)
    test_one(arb, 100.0, 0)
    (start,) = peer(arb, 100.1, running=False).of_type(RunStart)
    arb.handle(StartDone(host=A, rc=1, tag=start.tag, now=100.3, detail="exit 1"))  # FAILED, stopping
    t1 = _tag_of(arb.handle(Tick(now=100.35)))  # a round test while the stop runs
    arb.handle(StopDone(host=A, rc=0, now=100.4))
    step = arb.handle(TestDone(host=A, rc=1, tag=t1, now=100.45))  # "up", from before the stop returned
    assert not step.of_type(RunStop) and arb.state is PairState.FAILED and not arb.claims_running
    t2 = _tag_of(arb.handle(Tick(now=100.45)))
    step = arb.handle(TestDone(host=A, rc=1, tag=t2, now=100.5))  # up after the stop: that one counts
    assert step.of_type(RunStop)


def test_a_start_failure_outside_starting_is_no_illegal_transition():
    """Defence in depth: if a bug ever leaves an attempt open in ACTIVE, its failure stops via STOPPING."""
    arb = _active_primary()
    arb._attempt = _Attempt(tag="start:99")
    arb._start_in_flight = "start:99"
    step = arb.handle(StartDone(host=A, rc=1, tag="start:99", now=101.0, detail="exit 1"))
    assert step.of_type(RunStop) and arb.state is PairState.STOPPING
    arb.handle(StopDone(host=A, rc=0, now=101.1))
    assert arb.state is PairState.FAILED and arb.handle(Tick(now=101.1)).of_type(RunTest)


def test_a_lost_test_is_forgotten_and_run_again():
    arb = _active_primary()
    t1 = _tag_of(arb.handle(Tick(now=100.6)))
    lost_at = 100.6 + TIMING.command_timeout + TEST_LOST_AFTER
    assert arb.next_deadline() <= lost_at
    assert not arb.handle(Tick(now=lost_at - 0.01)).of_type(RunTest)
    step = arb.handle(Tick(now=lost_at))
    assert _tag_of(step) != t1 and step.notes[0].code == "pair.stale_result"


def test_a_bug_inside_handle_hands_back_the_queued_actions_and_tests_again(monkeypatch):
    arb = arbiter(A)
    test_one(arb, 100.0, 0)
    (start,) = peer(arb, 100.1, running=False).of_type(RunStart)

    def broken(b, to, code, text, now):
        raise RuntimeError("a bug")
    monkeypatch.setattr(arb, "_change", broken)
    with pytest.raises(DeciderBug) as info:
        arb.handle(StartDone(host=A, rc=1, tag=start.tag, now=100.3, detail="exit 1"))
    assert info.value.step.of_type(RunStop)  # the stop it counts as in flight is carried out ...
    monkeypatch.undo()
    arb.handle(StopDone(host=A, rc=0, now=100.4))  # ... so its result comes back
    assert not arb._stop_in_flight and arb.state is PairState.STARTING  # the failed change left STARTING
    t = _tag_of(arb.handle(Tick(now=100.4)))
    step = arb.handle(TestDone(host=A, rc=0, tag=t, now=100.5))  # nothing runs: settled as a failed start
    assert arb.state is PairState.FAILED and step.of_type(RunStop)
    arb.handle(StopDone(host=A, rc=0, now=100.6))
    assert not arb.claims_running and arb.next_deadline() is not None


def _fenced_primary() -> tuple[PairArbiter, float]:
    """An active primary (witness mode) that fenced itself at its lease end and whose stop returned."""
    arb = arbiter(A, witness=True)
    step = arb.handle(Tick(now=100.0))
    hb, test = step.of_type(SendHeartbeat)[-1], step.of_type(RunTest)[0]
    peer(arb, 100.05, running=False, acked=hb.seq)
    started(arb, 100.1, list(arb.handle(TestDone(host=A, rc=0, tag=test.tag, now=100.05)).actions))
    now = 100.0 + arb.mode.fencing.lease
    step = arb.handle(Tick(now=now))
    assert step.transitions[-1].code == "pair.fenced"
    arb.handle(StopDone(host=A, rc=0, now=now + 0.05))
    assert arb.state is PairState.PASSIVE and not arb.eligible(now + 0.05)
    return arb, now + 0.05


def test_valet_standard_seed_20262469_back_from_a_fence_the_primary_hears_the_peer_before_starting():
    """labs.chaos valet, seed 20262469 (make test's run), under load: a's lease lapsed in a `loss` of a, a fenced,
    its heartbeats said not running, not eligible; b started on that at once (peer_cannot_run) and a, its lease
    back through the witness, started 1 ms later on b's older news (passive): 0.06-0.16 s of two running."""
    arb, now = _fenced_primary()
    peer(arb, now, running=False)  # b's own heartbeat, sent before it heard our fenced state: stale news
    hb = arb.handle(Tick(now=now + 0.25)).of_type(SendHeartbeat)[-1]
    step = arb.handle(WitnessAnswered(seq=hb.seq, now=now + 0.26, peer_state="up", peer_may_be_active=False,
                                      highest_term=1))  # the lease is back
    assert arb.lease_valid(now + 0.26) and not step.of_type(RunStart)
    assert arb.last_decision.code == "pair.fence_hold"
    step = peer(arb, now + 0.27, running=True, acked=hb.seq, term=2)  # b's answer: it is starting
    assert not step.of_type(RunStart) and arb.state is PairState.PASSIVE
    assert not arb.handle(Tick(now=now + 1.0)).of_type(RunStart)  # b runs it: the primary stays passive


def test_back_from_a_fence_with_the_peer_silent_the_hold_ends_after_two_heartbeat_intervals():
    arb, now = _fenced_primary()
    peer(arb, now, running=False)  # heard, but it never answers our heartbeats (our sending is cut)
    hb = arb.handle(Tick(now=now + 0.25)).of_type(SendHeartbeat)[-1]
    arb.handle(WitnessAnswered(seq=hb.seq, now=now + 0.26, peer_state="up", peer_may_be_active=False,
                               highest_term=1))
    assert arb.last_decision.code == "pair.fence_hold"
    peer(arb, now + 0.5, running=False)  # its own heartbeats keep coming: still passive after the hold
    step = arb.handle(Tick(now=now + 0.26 + 2 * 0.25))
    hb = step.of_type(SendHeartbeat)
    if hb:
        step2 = arb.handle(WitnessAnswered(seq=hb[-1].seq, now=now + 0.77, peer_state="up", peer_may_be_active=False,
                                           highest_term=1))
        starts = step.of_type(RunStart) + step2.of_type(RunStart)
    else:
        starts = step.of_type(RunStart)
    assert starts and arb.state is PairState.STARTING  # the hold is bounded: nobody must not stay active

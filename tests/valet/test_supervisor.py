"""ProcessSupervisor (pure): rounds, election, stand-by progression, backoff, give-up, recovery.

Driven with failover_core.clock.FakeClock and the supervisor's events (one event in, one Step out);
every reason code that a decision produces is pinned.
"""

import pytest

from failover_core.clock import FakeClock
from failover_core.step import Step
from HaValet.config import Timing
from HaValet.events import RunStart, RunStop, RunTest, StartDone, StopDone, TestDone, Tick
from HaValet.supervisor import ProcessSupervisor, ProcState, runtime_priority

TIMING = Timing(interval=1.0, command_timeout=2.0, start_grace=3.0, start_poll=0.25, backoff_initial=1.0,
                backoff_max=4.0, max_failures=5, failure_window=60.0)


class Harness:
    def __init__(self, hosts=("a", "b"), timing=TIMING):
        self.clock = FakeClock()
        self.sup = ProcessSupervisor("svc", hosts, timing, now=self.clock.now())
        self.transitions = []
        self.notes = []

    def take(self, step):
        """Collect a Step: its transitions; as (code, text) notes, its notes and the reason of a step without a
        transition (the decisions that changed no state); returns its actions as a list."""
        assert isinstance(step, Step)
        self.transitions += step.transitions
        self.notes += [(n.code, n.text) for n in step.notes]
        if step.reason is not None and not step.transitions:
            self.notes.append((step.reason.code, step.reason.text))
        if step.transitions:  # a step that changed state gives the (last) transition as its reason
            t = step.transitions[-1]
            assert (step.reason.code, step.reason.text) == (t.code, t.reason)
        return list(step.actions)

    def tick(self):
        return self.take(self.sup.handle(Tick(now=self.clock.now())))

    def on_test(self, host, rc, *, tag):
        return self.take(self.sup.handle(TestDone(host=host, rc=rc, tag=tag, now=self.clock.now())))

    def on_start(self, host, rc, *, tag, detail=""):
        return self.take(self.sup.handle(StartDone(host=host, rc=rc, tag=tag, now=self.clock.now(), detail=detail)))

    def on_stop(self, host, rc, *, detail=""):
        return self.take(self.sup.handle(StopDone(host=host, rc=rc, now=self.clock.now(), detail=detail)))

    def round(self, results):
        """Run one full test round: tick until the round's tests are issued, answer them."""
        actions = self.tick()
        tests = [a for a in actions if isinstance(a, RunTest)]
        assert {t.host for t in tests} == set(self.sup.hosts), actions
        out = []
        for t in tests:
            out += self.on_test(t.host, results[t.host], tag=t.tag)
        return out

    def codes(self):
        return [t.code for t in self.transitions]


def test_exit_status_mapping_never_turns_failure_into_up():
    assert [runtime_priority(rc) for rc in (None, 0, 1, 7, 125, 126, 127, 128, 137, 255, -9)] == \
        [0, 0, 1, 7, 125, 0, 0, 0, 0, 0, 0]


def test_found_up_then_down_restarts_on_preferred_host():
    h = Harness()
    assert h.round({"a": 1, "b": 0}) == []
    assert h.sup.state is ProcState.ACTIVE and h.sup.active_host == "a"
    assert h.sup.next_deadline() == pytest.approx(h.clock.now() + 1.0)
    h.clock.advance(1.0)
    actions = h.round({"a": 0, "b": 0})
    assert [type(a) for a in actions] == [RunStart] and actions[0].host == "a"
    assert h.codes() == ["found_up", "starting"]
    assert h.on_start("a", 0, tag=actions[0].tag)[0] == RunTest(
        host="a", tag=h.sup._attempt.poll_tag)
    poll = h.sup._attempt.poll_tag
    h.on_test("a", 2, tag=poll)
    assert h.sup.state is ProcState.ACTIVE and h.codes()[-1] == "started"
    assert h.sup.failures_in_window(h.clock.now()) == 1  # the death counted


def test_round_waits_for_every_host_and_ignores_stale_results():
    h = Harness()
    tests = h.tick()
    h.on_test("a", 0, tag=tests[0].tag)
    assert h.sup.state is ProcState.UNKNOWN  # b has not answered
    assert h.sup.next_deadline() is None
    h.on_test("a", 1, tag="round:999")
    assert ("stale_result", "ignored test result of a for round:999") in h.notes
    actions = h.on_test("b", None, tag=tests[1].tag)
    assert actions == [RunStart(host="a", tag=actions[0].tag)]


def test_failed_start_moves_to_next_standby_host_at_once():
    h = Harness(hosts=("a", "b", "c"))
    (start_a,) = h.round({"a": 0, "b": 0, "c": 0})
    stop_a, start_b = h.on_start("a", 1, tag=start_a.tag, detail="exit 1")
    assert stop_a == RunStop(host="a")  # a late riser on a must not become a second active instance
    assert isinstance(start_b, RunStart) and start_b.host == "b"
    assert ("trying_next_host", "start on a failed (exit 1); starting on b") in h.notes
    (verify,) = h.on_start("b", 0, tag=start_b.tag)
    h.on_test("b", 1, tag=verify.tag)
    assert h.sup.state is ProcState.ACTIVE and h.sup.active_host == "b"


def test_start_that_never_tests_up_fails_after_grace_then_next_host():
    h = Harness()
    (start_a,) = h.round({"a": 0, "b": 0})
    (verify,) = h.on_start("a", 0, tag=start_a.tag)
    t0 = h.clock.now()
    h.on_test("a", 0, tag=verify.tag)
    polls = 0
    while True:
        assert h.sup.next_deadline() <= t0 + 3.0
        h.clock.set(h.sup.next_deadline())
        actions = h.tick()
        if actions and isinstance(actions[-1], RunStart):
            assert actions[0] == RunStop(host="a")
            break
        (poll,) = actions
        polls += 1
        h.on_test("a", 0, tag=poll.tag)
    assert actions[-1].host == "b" and h.clock.now() == pytest.approx(t0 + 3.0)
    assert polls == 11  # every start_poll (0.25 s) within the 3 s grace
    assert any(c == "trying_next_host" for c, _ in h.notes)


def test_start_timeout_result_none_is_a_failure():
    h = Harness(hosts=("a",))
    (start_a,) = h.round({"a": 0})
    h.on_start("a", None, tag=start_a.tag, detail="timed out after 30s")
    assert h.sup.state is ProcState.BACKOFF
    assert h.transitions[-1].reason.startswith("every host failed to start (start on a failed (timed out after 30s))")


def test_backoff_doubles_and_is_capped_and_a_round_precedes_each_pass():
    h = Harness(hosts=("a",), timing=TIMING.model_copy(update={"max_failures": 100}))
    delays = []
    start = h.round({"a": 0})[0]
    for _ in range(5):
        h.on_start("a", 1, tag=start.tag)
        assert h.sup.state is ProcState.BACKOFF
        failed_at = h.clock.now()
        while True:
            h.clock.set(h.sup.next_deadline())
            actions = h.round({"a": 0})
            if actions:
                break
        (start,) = actions
        delays.append(h.clock.now() - failed_at)
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0]


def test_gives_up_after_max_failures_in_window_keeps_testing_and_recovers():
    timing = TIMING.model_copy(update={"max_failures": 3, "backoff_initial": 0.5})
    h = Harness(hosts=("a", "b"), timing=timing)
    start = h.round({"a": 0, "b": 0})[0]
    start = h.on_start("a", 1, tag=start.tag)[-1]  # failure 1 -> b
    assert start == RunStart(host="b", tag=start.tag)
    h.on_start("b", 1, tag=start.tag)  # failure 2 -> backoff
    assert h.sup.state is ProcState.BACKOFF
    h.clock.advance(0.5)
    start = h.round({"a": 0, "b": 0})[0]
    h.on_start("a", 1, tag=start.tag)  # failure 3 -> give up
    assert h.sup.state is ProcState.FATAL and h.codes()[-1] == "gave_up"
    assert "gave up" in h.transitions[-1].reason and "3 failures within 60s (limit 3)" in h.transitions[-1].reason
    for _ in range(3):  # still testing, never starting
        h.clock.set(h.sup.next_deadline())
        assert h.round({"a": 0, "b": 0}) == []
    h.clock.set(h.sup.next_deadline())
    assert h.round({"a": 0, "b": 4}) == []
    assert h.sup.state is ProcState.ACTIVE and h.sup.active_host == "b" and h.codes()[-1] == "recovered"
    assert h.sup.failures_in_window(h.clock.now()) == 0


def test_failures_outside_the_window_are_forgotten():
    timing = TIMING.model_copy(update={"max_failures": 2, "failure_window": 10.0})
    h = Harness(hosts=("a",), timing=timing)
    h.round({"a": 1})
    for _ in range(4):  # dies every 11 s: never two failures in 10 s
        h.clock.advance(11.0)
        (start,) = h.round({"a": 0})
        (verify,) = h.on_start("a", 0, tag=start.tag)
        h.on_test("a", 1, tag=verify.tag)
        assert h.sup.state is ProcState.ACTIVE
    h.clock.advance(1.0)
    h.round({"a": 0})  # second death within 10 s: gave up
    assert h.sup.state is ProcState.FATAL


def test_two_up_stops_the_lower_priority_one_once():
    h = Harness()
    h.round({"a": 1, "b": 0})
    h.clock.advance(1.0)
    actions = h.round({"a": 3, "b": 1})  # b has the better runtime priority
    assert actions == [RunStop(host="a")]
    assert h.sup.state is ProcState.CONFLICT and h.sup.active_host == "b"
    assert "keeping b, stopping a" in h.transitions[-1].reason
    h.clock.advance(1.0)
    assert h.round({"a": 3, "b": 1}) == []  # stop still running: not sent twice
    h.on_stop("a", 0)
    h.clock.advance(1.0)
    h.round({"a": 0, "b": 1})
    assert h.sup.state is ProcState.ACTIVE and h.codes()[-1] == "conflict_resolved"


def test_failed_stop_is_retried_next_round():
    h = Harness()
    h.round({"a": 1, "b": 1})
    h.on_stop("b", 1, detail="exit 1")
    assert ("stop_failed", "stop on b failed (exit 1); the next round will retry") in h.notes
    h.clock.advance(1.0)
    assert h.round({"a": 1, "b": 1}) == [RunStop(host="b")]


def test_hanging_tests_count_as_down():
    h = Harness()
    actions = h.round({"a": None, "b": None})
    assert isinstance(actions[0], RunStart)
    assert "a: did not run to completion" in h.transitions[-1].reason


def test_transitions_have_increasing_seq_and_codes():
    h = Harness(hosts=("a",))
    h.round({"a": 1})
    h.clock.advance(1.0)
    (start,) = h.round({"a": 0})
    (verify,) = h.on_start("a", 0, tag=start.tag)
    h.on_test("a", 1, tag=verify.tag)
    assert [t.seq for t in h.transitions] == [1, 2, 3]
    assert [(t.from_state, t.to_state, t.code) for t in h.transitions] == [
        ("UNKNOWN", "ACTIVE", "found_up"), ("ACTIVE", "STARTING", "starting"), ("STARTING", "ACTIVE", "started")]
    snap = h.sup.snapshot(h.clock.now())
    assert snap["state"] == "active" and snap["active_host"] == "a" and snap["last_transition_code"] == "started"


def test_restarted_valet_keeps_a_running_standby_and_starts_nothing():
    h = Harness()
    assert h.round({"a": 0, "b": 2}) == []  # the config prefers a, but b is what runs: keep it
    assert h.sup.state is ProcState.ACTIVE and h.sup.active_host == "b" and h.codes() == ["found_up"]


def test_events_are_frozen_keyword_only_and_nothing_else_is_handled():
    import dataclasses

    from failover_core.errors import LocalUsageError

    e = TestDone(host="a", rc=1, tag="round:1", now=0.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.rc = 0
    with pytest.raises(TypeError):
        Tick(0.0)
    h = Harness()
    with pytest.raises(LocalUsageError, match="not a supervisor event"):
        h.sup.handle(RunTest(host="a", tag="round:1"))


def test_a_round_test_that_timed_out_while_the_valet_was_stalled_is_run_again_before_deciding():
    h = Harness()
    assert h.round({"a": 1, "b": 0}) == [] and h.sup.active_host == "a"
    h.clock.advance(1.0)
    tests = {t.host: t for t in h.tick()}
    h.on_test("b", 0, tag=tests["b"].tag)
    h.clock.advance(5.0)  # SIGSTOP of the valet: a's test timed out while nothing ran
    actions = h.take(h.sup.handle(TestDone(host="a", rc=None, tag=tests["a"].tag, now=h.clock.now(), stalled=True)))
    assert actions == [RunTest(host="a", tag=tests["a"].tag)]  # the same round asks a again
    assert h.sup.state is ProcState.ACTIVE and h.notes[-1][0] == "retest"
    assert h.on_test("a", 1, tag=tests["a"].tag) == []  # it ran all along: nothing to start
    assert h.sup.state is ProcState.ACTIVE and h.codes() == ["found_up"]
    h.clock.advance(1.0)
    tests = {t.host: t for t in h.tick()}
    h.on_test("b", 0, tag=tests["b"].tag)
    actions = h.on_test("a", None, tag=tests["a"].tag)  # a timeout not across a stall is a verdict
    assert [type(x) for x in actions] == [RunStart]


def test_a_verification_test_that_timed_out_while_the_valet_was_stalled_is_polled_again_at_once():
    h = Harness()
    (start_a,) = h.round({"a": 0, "b": 0})
    (verify,) = h.on_start("a", 0, tag=start_a.tag)
    h.clock.advance(4.0)  # stalled past start_grace (3 s)
    actions = h.take(h.sup.handle(TestDone(host="a", rc=None, tag=verify.tag, now=h.clock.now(), stalled=True)))
    (poll,) = actions  # polled again at once, not failed for the grace that ran out while the valet was stopped
    assert isinstance(poll, RunTest) and poll.host == "a" and poll.tag != verify.tag
    assert h.sup.state is ProcState.STARTING and h.notes[-1][0] == "retest"
    h.on_test("a", 1, tag=poll.tag)
    assert h.sup.state is ProcState.ACTIVE and h.codes()[-1] == "started"

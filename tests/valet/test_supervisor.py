"""ProcessSupervisor (pure): rounds, election, stand-by progression, backoff, give-up, recovery.

Driven with failover_core.clock.FakeClock; every reason code that a decision produces is pinned.
"""

import pytest

from failover_core.clock import FakeClock
from HaValet.config import Timing
from HaValet.supervisor import ProcessSupervisor, ProcState, RunStart, RunStop, RunTest, runtime_priority

TIMING = Timing(interval=1.0, command_timeout=2.0, start_grace=3.0, start_poll=0.25, backoff_initial=1.0,
                backoff_max=4.0, max_failures=5, failure_window=60.0)


class Harness:
    def __init__(self, hosts=("a", "b"), timing=TIMING):
        self.clock = FakeClock()
        self.sup = ProcessSupervisor("svc", hosts, timing, now=self.clock.now())
        self.transitions = []
        self.notes = []

    def take(self, step):
        self.transitions += step.transitions
        self.notes += step.notes
        return step.actions

    def tick(self):
        return self.take(self.sup.tick(self.clock.now()))

    def round(self, results):
        """Run one full test round: tick until the round's tests are issued, answer them."""
        actions = self.tick()
        tests = [a for a in actions if isinstance(a, RunTest)]
        assert {t.host for t in tests} == set(self.sup.hosts), actions
        out = []
        for t in tests:
            out += self.take(self.sup.on_test(t.host, results[t.host], tag=t.tag, now=self.clock.now()))
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
    assert h.codes() == ["FOUND_UP", "STARTING"]
    assert h.take(h.sup.on_start("a", 0, tag=actions[0].tag, now=h.clock.now()))[0] == RunTest(
        host="a", tag=h.sup._attempt.poll_tag)
    poll = h.sup._attempt.poll_tag
    h.take(h.sup.on_test("a", 2, tag=poll, now=h.clock.now()))
    assert h.sup.state is ProcState.ACTIVE and h.codes()[-1] == "STARTED"
    assert h.sup.failures_in_window(h.clock.now()) == 1  # the death counted


def test_round_waits_for_every_host_and_ignores_stale_results():
    h = Harness()
    tests = h.tick()
    h.take(h.sup.on_test("a", 0, tag=tests[0].tag, now=h.clock.now()))
    assert h.sup.state is ProcState.UNKNOWN  # b has not answered
    assert h.sup.next_deadline() is None
    h.take(h.sup.on_test("a", 1, tag="round:999", now=h.clock.now()))
    assert ("STALE_RESULT", "ignored test result of a for round:999") in h.notes
    actions = h.take(h.sup.on_test("b", None, tag=tests[1].tag, now=h.clock.now()))
    assert actions == [RunStart(host="a", tag=actions[0].tag)]


def test_failed_start_moves_to_next_standby_host_at_once():
    h = Harness(hosts=("a", "b", "c"))
    (start_a,) = h.round({"a": 0, "b": 0, "c": 0})
    stop_a, start_b = h.take(h.sup.on_start("a", 1, tag=start_a.tag, now=h.clock.now(), detail="exit 1"))
    assert stop_a == RunStop(host="a")  # a late riser on a must not become a second active instance
    assert isinstance(start_b, RunStart) and start_b.host == "b"
    assert ("TRYING_NEXT_HOST", "start on a failed (exit 1); starting on b") in h.notes
    (verify,) = h.take(h.sup.on_start("b", 0, tag=start_b.tag, now=h.clock.now()))
    h.take(h.sup.on_test("b", 1, tag=verify.tag, now=h.clock.now()))
    assert h.sup.state is ProcState.ACTIVE and h.sup.active_host == "b"


def test_start_that_never_tests_up_fails_after_grace_then_next_host():
    h = Harness()
    (start_a,) = h.round({"a": 0, "b": 0})
    (verify,) = h.take(h.sup.on_start("a", 0, tag=start_a.tag, now=h.clock.now()))
    t0 = h.clock.now()
    h.take(h.sup.on_test("a", 0, tag=verify.tag, now=h.clock.now()))
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
        h.take(h.sup.on_test("a", 0, tag=poll.tag, now=h.clock.now()))
    assert actions[-1].host == "b" and h.clock.now() == pytest.approx(t0 + 3.0)
    assert polls == 11  # every start_poll (0.25 s) within the 3 s grace
    assert any(c == "TRYING_NEXT_HOST" for c, _ in h.notes)


def test_start_timeout_result_none_is_a_failure():
    h = Harness(hosts=("a",))
    (start_a,) = h.round({"a": 0})
    h.take(h.sup.on_start("a", None, tag=start_a.tag, now=h.clock.now(), detail="timed out after 30s"))
    assert h.sup.state is ProcState.BACKOFF
    assert h.transitions[-1].reason.startswith("every host failed to start (start on a failed (timed out after 30s))")


def test_backoff_doubles_and_is_capped_and_a_round_precedes_each_pass():
    h = Harness(hosts=("a",), timing=TIMING.model_copy(update={"max_failures": 100}))
    delays = []
    start = h.round({"a": 0})[0]
    for _ in range(5):
        h.take(h.sup.on_start("a", 1, tag=start.tag, now=h.clock.now()))
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
    start = h.take(h.sup.on_start("a", 1, tag=start.tag, now=h.clock.now()))[-1]  # failure 1 -> b
    assert start == RunStart(host="b", tag=start.tag)
    h.take(h.sup.on_start("b", 1, tag=start.tag, now=h.clock.now()))  # failure 2 -> backoff
    assert h.sup.state is ProcState.BACKOFF
    h.clock.advance(0.5)
    start = h.round({"a": 0, "b": 0})[0]
    h.take(h.sup.on_start("a", 1, tag=start.tag, now=h.clock.now()))  # failure 3 -> give up
    assert h.sup.state is ProcState.FATAL and h.codes()[-1] == "GAVE_UP"
    assert "gave up" in h.transitions[-1].reason and "3 failures within 60s (limit 3)" in h.transitions[-1].reason
    for _ in range(3):  # still testing, never starting
        h.clock.set(h.sup.next_deadline())
        assert h.round({"a": 0, "b": 0}) == []
    h.clock.set(h.sup.next_deadline())
    assert h.round({"a": 0, "b": 4}) == []
    assert h.sup.state is ProcState.ACTIVE and h.sup.active_host == "b" and h.codes()[-1] == "RECOVERED"
    assert h.sup.failures_in_window(h.clock.now()) == 0


def test_failures_outside_the_window_are_forgotten():
    timing = TIMING.model_copy(update={"max_failures": 2, "failure_window": 10.0})
    h = Harness(hosts=("a",), timing=timing)
    h.round({"a": 1})
    for _ in range(4):  # dies every 11 s: never two failures in 10 s
        h.clock.advance(11.0)
        (start,) = h.round({"a": 0})
        (verify,) = h.take(h.sup.on_start("a", 0, tag=start.tag, now=h.clock.now()))
        h.take(h.sup.on_test("a", 1, tag=verify.tag, now=h.clock.now()))
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
    h.take(h.sup.on_stop("a", 0, now=h.clock.now()))
    h.clock.advance(1.0)
    h.round({"a": 0, "b": 1})
    assert h.sup.state is ProcState.ACTIVE and h.codes()[-1] == "CONFLICT_RESOLVED"


def test_failed_stop_is_retried_next_round():
    h = Harness()
    h.round({"a": 1, "b": 1})
    h.take(h.sup.on_stop("b", 1, now=h.clock.now(), detail="exit 1"))
    assert ("STOP_FAILED", "stop on b failed (exit 1); the next round will retry") in h.notes
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
    (verify,) = h.take(h.sup.on_start("a", 0, tag=start.tag, now=h.clock.now()))
    h.take(h.sup.on_test("a", 1, tag=verify.tag, now=h.clock.now()))
    assert [t.seq for t in h.transitions] == [1, 2, 3]
    assert [(t.from_state, t.to_state, t.code) for t in h.transitions] == [
        ("UNKNOWN", "ACTIVE", "FOUND_UP"), ("ACTIVE", "STARTING", "STARTING"), ("STARTING", "ACTIVE", "STARTED")]
    snap = h.sup.snapshot(h.clock.now())
    assert snap["state"] == "active" and snap["active_host"] == "a" and snap["last_transition_code"] == "STARTED"


def test_restarted_valet_keeps_a_running_standby_and_starts_nothing():
    h = Harness()
    assert h.round({"a": 0, "b": 2}) == []  # the config prefers a, but b is what runs: keep it
    assert h.sup.state is ProcState.ACTIVE and h.sup.active_host == "b" and h.codes() == ["FOUND_UP"]

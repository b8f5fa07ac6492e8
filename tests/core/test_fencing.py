"""The fencing timing argument and the active's contact lease."""

from __future__ import annotations

import itertools

import pytest

from failover_core.errors import LocalUsageError
from failover_core.fencing import ContactLease, FencingTiming


@pytest.mark.parametrize(("timeout", "stop", "delay", "drift"),
                         list(itertools.product([0.5, 3.0, 120.0], [0.0, 0.5, 10.0], [0.0, 0.25], [0.0, 0.001, 0.05])))
def test_the_active_has_stopped_before_anyone_may_call_it_gone(timeout, stop, delay, drift):
    kw = {"timeout": timeout, "stop_bound": stop, "scheduling_delay": delay, "clock_drift": drift}
    if timeout <= (delay + stop + 0.1) * (1 + drift) / (1 - drift):  # no lease left: refused, never unsafe
        with pytest.raises(LocalUsageError, match="timeout must be more than"):
            FencingTiming(**kw)
        return
    t = FencingTiming(**kw)
    # worst case for the active (slow clock, late timer, slow stop) against best case for the others
    assert 0 < t.lease < timeout and t.down_after == timeout
    assert t.fenced_by() < t.takeover_not_before()
    assert t.takeover_not_before() - t.fenced_by() >= t.slack * (1 - drift) - 1e-9
    # without the slack the bound is exactly tight: the lease is not cut shorter than the argument needs
    tight = FencingTiming(**kw, slack=0.0)
    assert tight.fenced_by() == pytest.approx(tight.takeover_not_before())


def test_margin_grows_with_stop_time_and_drift_and_comes_off_the_lease():
    base = FencingTiming(timeout=3.0, stop_bound=0.5)
    assert FencingTiming(timeout=3.0, stop_bound=2.0).margin > base.margin
    assert FencingTiming(timeout=3.0, stop_bound=0.5, clock_drift=0.01).margin > base.margin
    assert base.lease == pytest.approx(3.0 - base.margin) and base.down_after == 3.0
    assert "passive and witness wait the timeout" in base.explain()


def test_timeout_for_a_lease_is_the_inverse_of_lease():
    t = FencingTiming(timeout=3.0, stop_bound=1.0)
    assert FencingTiming(timeout=t.timeout_for(t.lease), stop_bound=1.0).lease == pytest.approx(t.lease)
    assert t.timeout_for(0.0) < 3.0 < t.timeout_for(2.0)


def test_a_lease_shorter_than_the_heartbeat_interval_is_refused_and_under_two_is_a_warning():
    t = FencingTiming(timeout=3.0, stop_bound=1.0)  # lease ~1.64 s
    assert t.lease_problem(0.5) is None
    kind, why = t.lease_problem(1.0)
    assert kind == "warning" and "one lost heartbeat" in why
    kind, why = t.lease_problem(2.0)
    assert kind == "error" and f"{t.timeout_for(4.0):.2f}" in why


@pytest.mark.parametrize("bad", [{"timeout": 0}, {"timeout": float("inf")}, {"stop_bound": -1},
                                 {"clock_drift": 0.5}, {"scheduling_delay": float("nan")}, {"timeout": True}])
def test_bad_timing_is_a_local_error(bad):
    kw = {"timeout": 3.0, "stop_bound": 0.5, **bad}
    with pytest.raises(LocalUsageError):
        FencingTiming(**kw)


def test_lease_runs_from_the_send_time_of_the_newest_acknowledged_heartbeat():
    lease = ContactLease(length=3.0)
    assert not lease.valid(0.0) and lease.remaining(0.0) == 0.0
    lease.sent(1, 10.0)
    lease.sent(2, 11.0)
    assert not lease.valid(10.5)  # sent, never acknowledged: no right to run
    assert lease.acknowledged(1)
    assert lease.expires_at == 13.0  # from the send time, not from when the ack arrived
    assert lease.acknowledged(2) and lease.expires_at == 14.0
    assert not lease.acknowledged(1)  # an older ack arriving late never shortens or re-extends it
    assert lease.expires_at == 14.0
    assert lease.valid(13.999) and not lease.valid(14.0)


def test_lease_ignores_unknown_and_forgotten_acknowledgements():
    lease = ContactLease(length=3.0, keep=2)
    for seq in (1, 2, 3):
        lease.sent(seq, float(seq))
    assert not lease.acknowledged(1)  # forgotten (only the last 2 kept)
    assert not lease.acknowledged(99)  # never sent
    assert lease.expires_at is None
    with pytest.raises(LocalUsageError):
        lease.sent(3, 5.0)  # sequence numbers only grow

"""PeerLiveness: deadlines at, before and after; late heartbeats; never-heard peers."""

import pytest

from failover_core import FakeClock, Liveness, LocalUsageError, PeerLiveness


@pytest.fixture
def clock():
    return FakeClock(100.0)


def test_up_until_exactly_the_deadline(clock):
    p = PeerLiveness("primary", timeout=3.0, watch_started=clock.now())
    p.heard(clock.now())
    assert p.deadline() == 103.0
    clock.set(102.999)
    assert p.state(clock.now()) is Liveness.UP
    clock.set(103.0)  # at the deadline: down (the deadline is exclusive)
    assert p.state(clock.now()) is Liveness.DOWN
    clock.set(200.0)
    assert p.state(clock.now()) is Liveness.DOWN
    assert p.next_deadline(clock.now()) is None


def test_each_heartbeat_moves_the_deadline(clock):
    p = PeerLiveness("secondary", timeout=2.0, watch_started=clock.now())
    for _ in range(5):
        p.heard(clock.now())
        clock.advance(1.9)
        assert p.is_up(clock.now())
    assert p.next_deadline(clock.now()) == pytest.approx(clock.now() + 0.1)


def test_never_heard_is_unknown_during_grace_then_down(clock):
    p = PeerLiveness("witness", timeout=3.0, watch_started=clock.now())
    assert p.state(clock.now()) is Liveness.UNKNOWN
    assert p.next_deadline(clock.now()) == 103.0
    clock.set(102.9)
    assert p.state(clock.now()) is Liveness.UNKNOWN
    clock.set(103.0)
    assert p.state(clock.now()) is Liveness.DOWN
    assert p.silent_for(clock.now()) is None


def test_late_heartbeat_after_deadline_starts_a_new_up_streak(clock):
    p = PeerLiveness("primary", timeout=2.0, watch_started=clock.now())
    p.heard(clock.now())
    clock.advance(5.0)
    assert not p.is_up(clock.now())
    p.heard(clock.now())
    assert p.is_up(clock.now())
    assert p.up_since == clock.now()
    clock.advance(1.5)
    assert p.up_for(clock.now()) == pytest.approx(1.5)


def test_out_of_order_heartbeat_never_moves_the_deadline_back(clock):
    p = PeerLiveness("primary", timeout=2.0, watch_started=clock.now())
    p.heard(110.0)
    p.heard(105.0)  # delivered late, stamped earlier
    assert p.deadline() == 112.0
    assert p.heartbeats == 1


def test_up_for_is_zero_when_down(clock):
    p = PeerLiveness("primary", timeout=1.0, watch_started=clock.now())
    assert p.up_for(clock.now()) == 0.0
    p.heard(clock.now())
    clock.advance(2.0)
    assert p.up_for(clock.now()) == 0.0


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf")])
def test_bad_timeout_is_refused(timeout):
    with pytest.raises(LocalUsageError):
        PeerLiveness("x", timeout=timeout, watch_started=0.0)


def test_fake_clock_refuses_to_go_backwards():
    c = FakeClock(5.0)
    with pytest.raises(LocalUsageError):
        c.advance(-1)
    with pytest.raises(LocalUsageError):
        c.set(4.0)

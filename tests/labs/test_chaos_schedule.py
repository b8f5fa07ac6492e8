"""labs.chaos.schedule: a seeded schedule of faults, deterministic, kinds respected, no overlap unless asked."""

import itertools

import pytest

from labs.chaos.schedule import (
    ACTIVE,
    OTHER,
    Fault,
    FaultKind,
    ScheduleError,
    make_schedule,
    overlapping,
    parse_kinds,
)

NODES = ["a", "b"]
ALL = [k for k in FaultKind if k is not FaultKind.OVERLAP]


def test_same_seed_same_schedule():
    one = make_schedule(7, 300, ALL, NODES)
    two = make_schedule(7, 300, ALL, NODES)
    assert one == two
    assert [f.to_dict() for f in one] == [f.to_dict() for f in two]
    assert len(one) > 10


def test_different_seed_different_schedule():
    assert make_schedule(7, 300, ALL, NODES) != make_schedule(8, 300, ALL, NODES)


def test_only_the_kinds_asked_and_each_drawn():
    kinds = [FaultKind.CRASH, FaultKind.CUT_BOTH]
    faults = make_schedule(1, 600, kinds, NODES)
    assert {f.kind for f in faults} == set(kinds)


def test_single_faults_never_overlap_and_settle_after_each_heal():
    faults = make_schedule(3, 600, ALL, NODES, settle=2.5)
    assert overlapping(faults) == []
    for a, b in itertools.pairwise(faults):
        assert b.start >= a.end + 2.5 - 1e-6
    assert faults[0].start == 2.0  # warmup
    assert faults[-1].end + 2.5 <= 600


def test_overlap_makes_overlapping_pairs_on_the_active_and_another_node():
    faults = make_schedule(5, 600, [FaultKind.CRASH, FaultKind.CUT_BOTH, FaultKind.OVERLAP], NODES)
    pairs = overlapping(faults)
    assert pairs
    for a, b in pairs:
        assert a.group is not None and a.group == b.group
        assert (a.target, b.target) == (ACTIVE, OTHER)
    assert all(f.kind is not FaultKind.OVERLAP for f in faults)


def test_unsupported_kind_is_refused_by_name():
    with pytest.raises(ScheduleError, match=r"vrrp does not support fault kind\(s\) witness_down; it supports"):
        make_schedule(1, 60, [FaultKind.CRASH, FaultKind.WITNESS_DOWN], NODES,
                      supported={FaultKind.CRASH}, system="vrrp")
    with pytest.raises(ScheduleError, match="overlap"):
        make_schedule(1, 60, [FaultKind.CRASH, FaultKind.OVERLAP], NODES, supported={FaultKind.CRASH})


def test_bad_requests():
    with pytest.raises(ScheduleError, match="two nodes"):
        make_schedule(1, 60, [FaultKind.CUT_BOTH], ["a"])
    with pytest.raises(ScheduleError, match="at least one other"):
        make_schedule(1, 60, [FaultKind.OVERLAP], NODES)
    with pytest.raises(ScheduleError, match="unknown fault kind 'crsh'"):
        parse_kinds("crash,crsh")
    assert parse_kinds("crash, cut_both") == [FaultKind.CRASH, FaultKind.CUT_BOTH]


def test_targets_params_and_round_trip():
    faults = make_schedule(11, 600, ALL, NODES)
    for f in faults:
        assert f.target in (ACTIVE, OTHER, "witness")
        assert (f.peer is not None) == (f.kind in (FaultKind.CUT_ONE_WAY, FaultKind.CUT_BOTH))
        assert Fault.from_dict(f.to_dict()) == f
        if f.kind is FaultKind.NETEM_LOSS:
            assert 10 <= f.params["loss_pct"] <= 40
    assert any(f.target == ACTIVE for f in faults) and any(f.target == OTHER for f in faults)


def test_short_duration_gives_an_empty_schedule():
    assert make_schedule(1, 3, [FaultKind.CRASH], NODES) == []


def test_grey_kinds_draw_shares_of_the_drivers_budget_and_a_dup_share():
    from labs.chaos.grey import delay_ms

    s = make_schedule(5, 600, [FaultKind.DELAY, FaultKind.DUP], ["a", "b"])
    delays = [f for f in s if f.kind is FaultKind.DELAY]
    dups = [f for f in s if f.kind is FaultKind.DUP]
    assert delays and dups
    for f in delays:
        assert 0.1 <= f.params["delay_share"] <= 0.8 and 0 <= f.params["jitter_share"] <= 0.2
        d, j = delay_ms(f, 0.5)
        assert d + j <= 500 and d >= 50  # delay + jitter never past the budget
    assert all(20 <= f.params["dup_pct"] <= 100 for f in dups)
    assert all(f.peer is None for f in s)

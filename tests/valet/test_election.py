"""failover_core.election: one active instance from runtime priorities and configured order."""

import pytest

from failover_core.election import Candidate, elect
from failover_core.errors import LocalUsageError


def c(name, prio):
    return Candidate(name=name, runtime_priority=prio)


def test_none_up_starts_in_configured_order():
    e = elect([c("a", 0), c("b", None), c("c", 0)])
    assert (e.keep, e.stop, e.start_order, e.code) == (None, (), ("a", "b", "c"), "NONE_UP")


def test_one_up_is_kept_even_if_not_preferred():
    e = elect([c("a", 0), c("b", 3)])
    assert (e.keep, e.stop, e.code) == ("b", (), "ONE_UP")


def test_many_up_lower_runtime_priority_wins_over_configured_order():
    e = elect([c("a", 2), c("b", 1), c("c", 5)])
    assert e.keep == "b" and e.stop == ("a", "c") and e.code == "MANY_UP"
    assert "keeping b, stopping a, c" in e.reason


def test_tie_goes_to_configured_order():
    e = elect([c("a", 1), c("b", 1)])
    assert e.keep == "a" and e.stop == ("b",)


def test_misuse_is_a_local_error():
    with pytest.raises(LocalUsageError):
        elect([])
    with pytest.raises(LocalUsageError):
        elect([c("a", 1), c("a", 2)])

"""poll_until: the one deadline loop behind the test beds' wait helpers."""

import time

import pytest

from labs.wait import WaitTimeout, poll_until


def test_returns_the_first_truthy_value_and_sleeps_between_polls():
    values = iter([0, None, "", "ready"])
    slept: list[float] = []
    assert poll_until(lambda: next(values), 5, interval=0.25, sleep=slept.append) == "ready"
    assert slept == [0.25, 0.25, 0.25]


def test_times_out_with_a_timeout_error_naming_what_was_awaited():
    calls = []
    with pytest.raises(WaitTimeout, match=r"timed out after 0\.05s waiting for the VIP") as e:
        poll_until(lambda: calls.append(1), 0.05, what="the VIP", interval=0.01)
    assert isinstance(e.value, TimeoutError)  # callers that catch TimeoutError keep working
    assert len(calls) >= 2  # it polled until the deadline, not once


def test_default_sleep_is_time_sleep_as_it_is_at_the_call(monkeypatch):
    # gevent patches time.sleep after labs.wait may have been imported: the patched one must be used
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    values = iter([0, "ready"])
    assert poll_until(lambda: next(values), 5, interval=0.5) == "ready"
    assert slept == [0.5]

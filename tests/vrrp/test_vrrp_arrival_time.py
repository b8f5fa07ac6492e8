"""The driver's mapping of kernel receive times to the monotonic clock (pure function)."""

from __future__ import annotations

from VrrpFailover.driver import arrival_time

OFFSET = 1_700_000_000.0  # wall - monotonic


def test_kernel_time_is_mapped_to_monotonic():
    assert arrival_time(OFFSET + 100.25, offset=OFFSET, now=100.5, floor=100.0, stepped=False) == 100.25


def test_clamped_to_previous_read_and_now():
    assert arrival_time(OFFSET + 99.0, offset=OFFSET, now=100.5, floor=100.0, stepped=False) == 100.0
    assert arrival_time(OFFSET + 101.0, offset=OFFSET, now=100.5, floor=100.0, stepped=False) == 100.5


def test_missing_time_or_stepped_wall_clock_means_now():
    assert arrival_time(None, offset=OFFSET, now=100.5, floor=100.0, stepped=False) == 100.5
    assert arrival_time(OFFSET + 100.25, offset=OFFSET, now=100.5, floor=100.0, stepped=True) == 100.5

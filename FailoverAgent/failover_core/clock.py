"""Clocks. The core never reads one: drivers read a Clock and pass ``now`` in.

FakeClock is for tests (advance it by hand); the drivers' real clock is
``failover_core.shell.clock.MonotonicClock`` (kept in ``shell`` so no core module imports ``time``).
"""

from __future__ import annotations

from typing import Protocol

from failover_core.errors import LocalUsageError


class Clock(Protocol):
    """Anything with a monotonic ``now()`` in seconds."""

    def now(self) -> float: ...


class FakeClock:
    """A clock that moves only when told to. Refuses to go backwards, like a monotonic clock."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise LocalUsageError(f"FakeClock cannot go backwards (advance {seconds})")
        self._now += seconds
        return self._now

    def set(self, t: float) -> float:
        if t < self._now:
            raise LocalUsageError(f"FakeClock cannot go backwards ({self._now} -> {t})")
        self._now = float(t)
        return self._now

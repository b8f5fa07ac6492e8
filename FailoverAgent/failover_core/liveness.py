"""PeerLiveness: is a peer up at ``now``? Deadlines on a monotonic clock, never counters.

A peer is UP from a heartbeat at t until ``t + timeout`` (exclusive: at the deadline it is DOWN).
A peer never heard from is UNKNOWN until ``watch_started + timeout`` and DOWN after that, so a
node that just started does not mistake "not heard yet" for "dead".
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

from failover_core.errors import LocalUsageError


class Liveness(enum.Enum):
    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"


@dataclass(slots=True)
class PeerLiveness:
    """Liveness of one peer. Feed it ``heard(now)``; ask ``state(now)`` / ``next_deadline()``.

    ``timeout``: seconds of silence after which the peer is down.
    ``watch_started``: when we began listening (the start of the grace for a never-heard peer).
    """

    name: str
    timeout: float
    watch_started: float
    last_heard: float | None = None
    up_since: float | None = None  # first heartbeat of the current unbroken UP streak
    heartbeats: int = field(default=0)

    def __post_init__(self) -> None:
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise LocalUsageError(f"PeerLiveness timeout must be a positive number, got {self.timeout!r}")

    def heard(self, now: float) -> None:
        """A valid, authenticated heartbeat from this peer arrived at ``now``.

        A heartbeat that arrives after the deadline starts a new UP streak; ``now`` older than
        the last heartbeat (a late-delivered message) never moves the deadline backwards.
        """
        if self.last_heard is not None and now < self.last_heard:
            return
        if not self.is_up(now):
            self.up_since = now
        self.last_heard = now
        self.heartbeats += 1

    def state(self, now: float) -> Liveness:
        if self.last_heard is None:
            return Liveness.UNKNOWN if now < self.watch_started + self.timeout else Liveness.DOWN
        return Liveness.UP if now < self.last_heard + self.timeout else Liveness.DOWN

    def is_up(self, now: float) -> bool:
        return self.state(now) is Liveness.UP

    def deadline(self) -> float:
        """When the current state ends if nothing is heard: UP->DOWN or UNKNOWN->DOWN."""
        base = self.last_heard if self.last_heard is not None else self.watch_started
        return base + self.timeout

    def next_deadline(self, now: float) -> float | None:
        """The next instant the state changes on its own, or None if it never will (already DOWN)."""
        d = self.deadline()
        return d if d > now else None

    def up_for(self, now: float) -> float:
        """Seconds the peer has been continuously UP at ``now`` (0 when not UP)."""
        if not self.is_up(now) or self.up_since is None:
            return 0.0
        return now - self.up_since

    def silent_for(self, now: float) -> float | None:
        """Seconds since the last heartbeat, None if never heard."""
        return None if self.last_heard is None else now - self.last_heard

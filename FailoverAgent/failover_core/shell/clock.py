"""The drivers' real clock: time.monotonic(), never wall time (an NTP step does not move it)."""

import time


class MonotonicClock:
    """Satisfies failover_core.clock.Clock."""

    def now(self) -> float:
        return time.monotonic()

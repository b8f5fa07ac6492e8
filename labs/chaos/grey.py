"""The grey network faults every chaos driver injects the same way: ``delay`` and ``dup``, without sch_netem.

``delay``: what the target sends on ``eth0`` is held D ms (+- J) by a ``labs.delayer`` process in its namespace
(NFQUEUE ``QUEUE_BASE + fault id``, ``--queue-bypass``; ``labs.netns.NetnsSegment.delay``). The schedule draws
shares (``delay_share`` 0.1-0.8, ``jitter_share`` 0-0.2); the driver turns them into milliseconds of its
``grey_delay_s``, the largest delay + jitter its system must shrug off: half of what a delay can add to the
silence its peer tolerates (``tolerance``), so D + J <= ``grey_delay_s`` always. ``dup``: ``dup_pct`` % of what
the target sends to each other node arrives twice (``NetnsSegment.duplicate``: TEE). The heal of a delay ends
the delayer by PID and returns its figures (packets held, max and mean hold, queue drops) for the fault's end
record; ``close`` ends any still running.
"""

from __future__ import annotations

import contextlib
from typing import Any

from labs.chaos.schedule import Fault, FaultKind
from labs.delayer import Delay
from labs.netns import NetnsSegment

QUEUE_BASE = 1000  # NFQUEUE number of fault #i: QUEUE_BASE + i (one queue per fault: overlaps never share one)


def tolerance(timeout: float, interval: float) -> float:
    """The silence a delay may add before a peer that waits ``timeout`` after the last message (one every
    ``interval``) acts: ``timeout - interval``. ``grey_delay_s`` is half of it."""
    return max(0.0, timeout - interval)


def delay_ms(fault: Fault, grey_delay_s: float) -> tuple[float, float]:
    """(delay, jitter) in ms for a ``delay`` fault from its drawn shares of ``grey_delay_s``."""
    budget = grey_delay_s * 1000
    return round(fault.params["delay_share"] * budget, 1), round(fault.params["jitter_share"] * budget, 1)


class GreyFaults:
    """The delays in force (by fault id) of one driver, and the apply/heal of ``delay`` and ``dup``."""

    kinds = frozenset({FaultKind.DELAY, FaultKind.DUP})

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.delays: dict[int, Delay] = {}

    def apply(self, net: NetnsSegment, fault: Fault, key: str, grey_delay_s: float) -> dict[str, Any]:
        if fault.kind is FaultKind.DELAY:
            d, j = delay_ms(fault, grey_delay_s)
            delay = net.delay(key, QUEUE_BASE + fault.id, d, j, seed=self.seed * 1000 + fault.id)
            self.delays[fault.id] = delay
            return {"delay_ms": d, "jitter_ms": j, "queue": delay.queue, "delayer_pid": delay.pid,
                    "grey_delay_ms": round(grey_delay_s * 1000, 1)}
        if fault.kind is FaultKind.DUP:
            to = net.duplicate(key, float(fault.params["dup_pct"]))
            return {"dup_to": to}
        raise ValueError(f"not a grey fault: {fault.kind}")

    def heal(self, net: NetnsSegment, fault: Fault, key: str) -> dict[str, Any]:
        if fault.kind is FaultKind.DELAY:
            delay = self.delays.pop(fault.id, None)
            return {"delayer": delay.stop()} if delay is not None else {}
        net.duplicate(key, float(fault.params["dup_pct"]), on=False)
        return {}

    def close(self) -> None:
        """End every delayer still running (by PID) and remove its rule; never raises."""
        for delay in self.delays.values():
            with contextlib.suppress(Exception):
                delay.stop()
        self.delays.clear()

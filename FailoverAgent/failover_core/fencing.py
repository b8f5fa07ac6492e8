"""Fencing by timing: the active stops before anyone may conclude it is gone.

Two pieces, shared by every system that runs with a witness (standard mode):

``FencingTiming`` is the timing argument as arithmetic. With ``T`` = ``timeout``, ``S`` = the bound on
stopping the service once fencing starts, ``D`` = how late a timer may fire (scheduling delay) and
``rho`` = the largest relative rate error between two hosts' monotonic clocks:

- the active may run the service only until ``a + T`` on its own clock, where ``a`` is the *send* time
  of the newest heartbeat that the peer or the witness acknowledged (``ContactLease``). It starts
  stopping then and is done by ``a + T + D + S`` (real time ``(T + D + S)(1 + rho)`` after ``a``);
- the passive and the witness call the active gone only ``T + M`` after they last *received* a heartbeat
  from it (receipt time ``r >= a``, real time at least ``(T + M)(1 - rho)`` after ``r``);
- so no moment has two actives when ``(T + D + S)(1 + rho) < (T + M)(1 - rho)``, i.e. when
  ``M > (D + S + rho * (2T + D + S)) / (1 - rho)``. ``margin`` is that bound plus ``slack``.
The active counts only acknowledged contact, never a heartbeat it merely received: with its outgoing
traffic cut it still hears the others, and must fence all the same.

``ContactLease`` is the active's side: remember when each heartbeat was sent, and when one is
acknowledged (an echo of its sequence number in the peer's heartbeat, or the witness's ack), extend
the lease to that send time + ``T``. A late or unknown acknowledgement never extends it.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from failover_core.errors import LocalUsageError


@dataclass(frozen=True, slots=True, kw_only=True)
class FencingTiming:
    """The numbers of the timing argument (module docstring); every field in seconds except ``clock_drift``."""

    timeout: float  # T: silence after which a peer is down; the active's lease length
    stop_bound: float  # S: stopping (killing) the service takes at most this once fencing starts
    scheduling_delay: float = 0.25  # D: a timer may fire this late (GC, a busy host)
    clock_drift: float = 0.001  # rho: 1000 ppm, far above what NTP-free quartz drifts
    slack: float = 0.1  # on top of the bound, so equality is never relied on

    def __post_init__(self) -> None:
        for name in ("timeout", "stop_bound", "scheduling_delay", "clock_drift", "slack"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise LocalUsageError(f"FencingTiming.{name} must be a finite number >= 0, got {v!r}")
        if self.timeout <= 0:
            raise LocalUsageError(f"FencingTiming.timeout must be > 0, got {self.timeout!r}")
        if self.clock_drift >= 0.1:
            raise LocalUsageError(f"FencingTiming.clock_drift must be < 0.1, got {self.clock_drift!r}")

    @property
    def margin(self) -> float:
        """M: how much longer than ``timeout`` the passive and the witness wait before calling the active gone."""
        t, d, s, rho = self.timeout, self.scheduling_delay, self.stop_bound, self.clock_drift
        return (d + s + rho * (2 * t + d + s)) / (1 - rho) + self.slack

    @property
    def down_after(self) -> float:
        """T + M: silence (since the last heartbeat received) after which the active may be called gone."""
        return self.timeout + self.margin

    def fenced_by(self) -> float:
        """Worst case, in real seconds after the last acknowledged send, by which the active has stopped."""
        return (self.timeout + self.scheduling_delay + self.stop_bound) * (1 + self.clock_drift)

    def takeover_not_before(self) -> float:
        """Best case, in real seconds after the last receipt, before which nobody calls the active gone."""
        return self.down_after * (1 - self.clock_drift)

    def explain(self) -> str:
        return (f"active stops within {self.fenced_by():.3f}s of its last acknowledged heartbeat "
                f"(timeout {self.timeout:g} + scheduling {self.scheduling_delay:g} + stop {self.stop_bound:g}, "
                f"clock drift {self.clock_drift:g}); passive and witness wait {self.down_after:.3f}s "
                f"(timeout + margin {self.margin:.3f}) after their last receipt")


class ContactLease:
    """The active's right to run, renewed only by acknowledged contact, measured from the send time.

    ``sent(seq, now)`` before each heartbeat goes out; ``acknowledged(seq)`` when an echo of it comes
    back. ``expires_at`` is the newest acknowledged send time + ``timeout`` (None: never acknowledged).
    Only the last ``keep`` send times are remembered: an acknowledgement older than that is ignored.
    """

    __slots__ = ("_sent", "expires_at", "keep", "last_acked_seq", "timeout")

    def __init__(self, timeout: float, keep: int = 64) -> None:
        if not (timeout > 0 and math.isfinite(timeout)):
            raise LocalUsageError(f"ContactLease timeout must be a positive number, got {timeout!r}")
        self.timeout = timeout
        self.keep = keep
        self._sent: OrderedDict[int, float] = OrderedDict()
        self.expires_at: float | None = None
        self.last_acked_seq: int | None = None

    def sent(self, seq: int, now: float) -> None:
        if self._sent and seq <= next(reversed(self._sent)):
            raise LocalUsageError(f"heartbeat seq {seq} sent after seq {next(reversed(self._sent))}")
        self._sent[seq] = now
        while len(self._sent) > self.keep:
            self._sent.popitem(last=False)

    def acknowledged(self, seq: int) -> bool:
        """The other side has our heartbeat ``seq``; True when that extended the lease."""
        at = self._sent.get(seq)
        if at is None:
            return False
        expires = at + self.timeout
        if self.expires_at is not None and expires <= self.expires_at:
            return False
        self.expires_at = expires
        self.last_acked_seq = seq
        return True

    def valid(self, now: float) -> bool:
        return self.expires_at is not None and now < self.expires_at

    def remaining(self, now: float) -> float:
        return 0.0 if self.expires_at is None else max(0.0, self.expires_at - now)

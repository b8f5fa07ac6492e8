"""Fencing by timing: the active stops before anyone may conclude it is gone.

Two pieces, shared by every system that runs with a witness (standard mode):

``FencingTiming`` is the timing argument as arithmetic. With ``T`` = ``timeout``, ``S`` = the bound on
stopping the service once fencing starts, ``D`` = how late a timer may fire (scheduling delay) and
``rho`` = the largest relative rate error between two hosts' monotonic clocks:

- the passive and the witness call the active gone ``T`` after they last *received* a heartbeat from it
  (receipt time ``r``; real time at least ``T(1 - rho)`` after ``r``): ``timeout`` means what an operator
  reads, "the other side takes over this long after the active went silent";
- the active may run the service only until ``a + L`` on its own clock, where ``a`` is the *send* time of the
  newest heartbeat that the peer or the witness acknowledged (``ContactLease``; ``a <= r``) and ``L`` is the
  ``lease``. It starts stopping then and is done by ``a + L + D + S`` (real time ``(L + D + S)(1 + rho)``);
- so no moment has two actives when ``(L + D + S)(1 + rho) < T(1 - rho)``: ``lease`` is
  ``T(1 - rho)/(1 + rho) - D - S - slack``, and ``margin`` = ``T - L`` is how much earlier than ``T`` the active
  gives up (Patroni's leader likewise demotes itself before its key's TTL runs out).
The active counts only acknowledged contact, never a heartbeat it merely received: with its outgoing
traffic cut it still hears the others, and must fence all the same. ``T`` must leave a lease longer than
the heartbeat interval (``lease_problem``), or the active would fence itself between two heartbeats.

``ContactLease`` is the active's side: remember when each heartbeat was sent, and when one is
acknowledged (an echo of its sequence number in the peer's heartbeat, or the witness's ack), extend
the lease to that send time + ``L``. A late or unknown acknowledgement never extends it.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from failover_core.errors import LocalUsageError


@dataclass(frozen=True, slots=True, kw_only=True)
class FencingTiming:
    """The numbers of the timing argument (module docstring); every field in seconds except ``clock_drift``."""

    timeout: float  # T: silence (since the last receipt) after which the passive and the witness call a node gone
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
        if self.lease <= 0:
            raise LocalUsageError(
                f"timeout {self.timeout:g}s leaves the active no lease: it must stop within the timeout (stop "
                f"bound {self.stop_bound:g}s + scheduling delay {self.scheduling_delay:g}s + slack {self.slack:g}s, "
                f"clock drift {self.clock_drift:g}); timeout must be more than {self.timeout_for(0.0):.3f}s")

    @property
    def lease(self) -> float:
        """L: the active may run the service this long after the send time of its newest acknowledged heartbeat."""
        rho = self.clock_drift
        return self.timeout * (1 - rho) / (1 + rho) - self.scheduling_delay - self.stop_bound - self.slack

    @property
    def margin(self) -> float:
        """M = T - L: how much earlier than ``timeout`` the active gives up its right to run."""
        return self.timeout - self.lease

    @property
    def down_after(self) -> float:
        """T: silence (since the last heartbeat received) after which the active may be called gone."""
        return self.timeout

    def timeout_for(self, lease: float) -> float:
        """The smallest ``timeout`` that gives the active a lease of ``lease`` seconds (same S, D, rho, slack)."""
        rho = self.clock_drift
        return (lease + self.scheduling_delay + self.stop_bound + self.slack) * (1 + rho) / (1 - rho)

    def lease_problem(self, heartbeat_interval: float) -> tuple[str, str] | None:
        """("error" | "warning", why) when the lease is too short for heartbeats every ``heartbeat_interval``.

        An error when the lease is not longer than one interval: the active would fence itself between two
        heartbeats that were answered at once. A warning below two intervals: one lost heartbeat (or a late
        answer) then fences a healthy active.
        """
        lease = self.lease
        if lease <= heartbeat_interval:
            return ("error", f"the active's lease ({lease:.3f}s = timeout {self.timeout:g} - fencing margin "
                             f"{self.margin:.3f}) must be longer than the heartbeat interval "
                             f"({heartbeat_interval:g}s), "
                             f"or a healthy active fences itself between two heartbeats: raise the timeout to at "
                             f"least {self.timeout_for(2 * heartbeat_interval):.2f}s (or lower the stop bound)")
        if lease < 2 * heartbeat_interval:
            return ("warning", f"the active's lease ({lease:.3f}s) is shorter than two heartbeat intervals "
                               f"({2 * heartbeat_interval:g}s): one lost heartbeat fences a healthy active; a timeout "
                               f"of {self.timeout_for(2 * heartbeat_interval):.2f}s or more avoids that")
        return None

    def fenced_by(self) -> float:
        """Worst case, in real seconds after the last acknowledged send, by which the active has stopped."""
        return (self.lease + self.scheduling_delay + self.stop_bound) * (1 + self.clock_drift)

    def takeover_not_before(self) -> float:
        """Best case, in real seconds after the last receipt, before which nobody calls the active gone."""
        return self.down_after * (1 - self.clock_drift)

    def explain(self) -> str:
        return (f"the active gives up {self.lease:.3f}s after its last acknowledged heartbeat (timeout "
                f"{self.timeout:g} - margin {self.margin:.3f}: scheduling {self.scheduling_delay:g} + stop "
                f"{self.stop_bound:g}, clock drift {self.clock_drift:g}) and has stopped within "
                f"{self.fenced_by():.3f}s; passive and witness wait the timeout, {self.down_after:g}s, after "
                f"their last receipt")


class ContactLease:
    """The active's right to run, renewed only by acknowledged contact, measured from the send time.

    ``sent(seq, now)`` before each heartbeat goes out; ``acknowledged(seq)`` when an echo of it comes
    back. ``expires_at`` is the newest acknowledged send time + ``length`` (``FencingTiming.lease`` in
    standard mode; None: never acknowledged).
    Only the last ``keep`` send times are remembered: an acknowledgement older than that is ignored.
    """

    __slots__ = ("_sent", "expires_at", "keep", "last_acked_seq", "length")

    def __init__(self, length: float, keep: int = 64) -> None:
        if not (length > 0 and math.isfinite(length)):
            raise LocalUsageError(f"ContactLease length must be a positive number, got {length!r}")
        self.length = length
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
        expires = at + self.length
        if self.expires_at is not None and expires <= self.expires_at:
            return False
        self.expires_at = expires
        self.last_acked_seq = seq
        return True

    def valid(self, now: float) -> bool:
        return self.expires_at is not None and now < self.expires_at

    def remaining(self, now: float) -> float:
        return 0.0 if self.expires_at is None else max(0.0, self.expires_at - now)

"""Notify hooks: the interface drivers use to run an operator's command once per transition.

``HookQueue`` is the pure part: transitions go in (in order), each is handed out exactly once,
in order, and its result recorded. A ``HookRunner`` (the I/O part, e.g.
``failover_core.shell.notify.SubprocessHookRunner``) carries one out with a timeout.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Protocol

from failover_core.errors import LocalUsageError
from failover_core.transitions import Transition


@dataclass(frozen=True, slots=True, kw_only=True)
class HookResult:
    seq: int
    ok: bool
    returncode: int | None  # None: could not run or timed out
    detail: str  # "exit 0", "timed out after 5s", "not found: /usr/bin/x" ...
    duration: float


class HookRunner(Protocol):
    """Runs the operator's notify command for one transition; must not raise."""

    def run(self, transition: Transition) -> HookResult: ...


class HookQueue:
    """In-order, exactly-once delivery of transitions to a hook runner.

    ``push`` refuses a sequence number that is not newer than the last one pushed; ``take`` hands
    out the oldest pending transition (once); ``done`` records its result.
    """

    def __init__(self, keep_results: int = 100) -> None:
        self._pending: deque[Transition] = deque()
        self._in_flight: Transition | None = None
        self._last_pushed: tuple[str, int] | None = None
        self.results: deque[HookResult] = deque(maxlen=keep_results)

    def push(self, t: Transition) -> None:
        key = (t.subject, t.seq)
        if self._last_pushed and t.subject == self._last_pushed[0] and t.seq <= self._last_pushed[1]:
            raise LocalUsageError(f"hook for {t.subject} seq {t.seq} pushed after seq {self._last_pushed[1]}")
        self._last_pushed = key
        self._pending.append(t)

    def take(self) -> Transition | None:
        """The next transition to run, or None if one is still running or none is pending."""
        if self._in_flight is not None or not self._pending:
            return None
        self._in_flight = self._pending.popleft()
        return self._in_flight

    def done(self, result: HookResult) -> None:
        if self._in_flight is None or result.seq != self._in_flight.seq:
            raise LocalUsageError(f"hook result for seq {result.seq} but in flight is {self._in_flight}")
        self._in_flight = None
        self.results.append(result)

    def __len__(self) -> int:
        return len(self._pending) + (self._in_flight is not None)

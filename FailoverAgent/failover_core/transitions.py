"""Transitions: the one choke point through which every driver changes state.

``StateMachine.change(to, code=..., reason=..., now=...)`` checks the move against the driver's
table of allowed moves, records a frozen ``Transition`` (from, to, code, reason, time, seq) and
returns it, for the driver to log, publish and hand to its HookQueue. A move the table does not
allow raises IllegalTransition (a bug in the driver, not a runtime condition).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from failover_core.errors import LocalUsageError

S = TypeVar("S", bound=enum.Enum)


@dataclass(frozen=True, slots=True, kw_only=True)
class Transition:
    subject: str  # what changed: an agent identity, a VRRP instance, a process name
    from_state: str
    to_state: str
    code: str
    reason: str
    at: float  # monotonic time of the change
    seq: int  # 1, 2, 3 ... per StateMachine: hooks run in this order

    def __str__(self) -> str:
        return f"{self.subject}: {self.from_state} -> {self.to_state} ({self.reason}) [{self.code}]"


class IllegalTransition(LocalUsageError):
    """The driver asked for a move its table does not allow."""


class StateMachine(Generic[S]):
    """Current state of one subject plus the legal moves; keeps the last ``history`` transitions."""

    def __init__(self, subject: str, initial: S, allowed: Mapping[S, frozenset[S] | set[S]], *,
                 history: int = 50) -> None:
        if initial not in allowed:
            raise LocalUsageError(f"initial state {initial!r} is not in the transition table")
        self.subject = subject
        self._state = initial
        self._allowed = {k: frozenset(v) for k, v in allowed.items()}
        self._seq = 0
        self.history: deque[Transition] = deque(maxlen=history)

    @property
    def state(self) -> S:
        return self._state

    @property
    def last(self) -> Transition | None:
        return self.history[-1] if self.history else None

    def can(self, to: S) -> bool:
        return to in self._allowed.get(self._state, frozenset())

    def change(self, to: S, *, code: str, reason: str, now: float) -> Transition | None:
        """Move to ``to``. Returns the Transition, or None when already in ``to`` (no event)."""
        if to == self._state:
            return None
        if not self.can(to):
            allowed = sorted(s.name for s in self._allowed.get(self._state, ()))
            raise IllegalTransition(
                f"{self.subject}: {self._state.name} -> {to.name} is not allowed "
                f"(from {self._state.name} only: {', '.join(allowed) or 'nothing'}); reason was: {reason}")
        if self.history and now < self.history[-1].at:
            raise LocalUsageError(f"{self.subject}: time went backwards ({self.history[-1].at} -> {now})")
        self._seq += 1
        t = Transition(subject=self.subject, from_state=self._state.name, to_state=to.name,
                       code=code, reason=reason, at=now, seq=self._seq)
        self._state = to
        self.history.append(t)
        return t

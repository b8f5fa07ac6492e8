"""The shape of one decision cycle, shared by the four systems: Reason, Step and Deadlines.

Every decider (the VOLTTRON agent's ``decide``, DockerFailover's pair, VrrpFailover's router,
HaValet's supervisor) takes one frozen event and a monotonic ``now`` and returns a ``Step``:

- ``actions``      what the driver must do, in order (frozen dataclasses of the system's own types);
- ``transitions``  the state changes made (``failover_core.transitions.Transition``), in order:
                   the driver logs them and hands them to its notify dispatcher;
- ``reason``       why, as a ``Reason`` (a stable code from the system's code enum + one sentence);
                   None when the input decided nothing worth a line (an early timer, a routine advert);
- ``notes``        further reasons that changed no state (an alert raised, an input dropped).

``failover_core.shell.carry_out.carry_out`` carries a step out for a driver: one log line per
decision with its code, transitions to the notify dispatcher in order, each action to the
driver's handler for its type.

Reason codes are ``ReasonCode`` members (a ``StrEnum`` whose members carry a one-line meaning),
so each system's codes are one enum that its doc page is generated from. Style: lower-case
words joined by ``_``, qualifiers after a ``.`` (``secondary.verified.primary_down``).

``Deadlines`` keeps a decider's named timers (set, clear, earliest, due at ``now``): the driver
sleeps until ``earliest()`` and feeds a tick; the decider asks ``due(now)``.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from failover_core.errors import LocalUsageError
from failover_core.transitions import Transition

A = TypeVar("A")
K = TypeVar("K")

CODE_STYLE = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)*(\.[a-z0-9]+(_[a-z0-9]+)*)*$")


class ReasonCode(enum.StrEnum):
    """Base of every system's reason-code enum: ``NAME = "value", "what it means"``.

    The value is the stable code (logs, alerts, counters, tests); ``meaning`` is one line for the docs.
    """

    meaning: str

    def __new__(cls, value: str, meaning: str = "") -> ReasonCode:
        if not CODE_STYLE.match(value):
            raise LocalUsageError(f"reason code {value!r} breaks the code style {CODE_STYLE.pattern}")
        obj = str.__new__(cls, value)
        obj._value_ = value
        obj.meaning = meaning
        return obj


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a decider did what it did: a stable code and one sentence."""

    code: str
    text: str

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not CODE_STYLE.match(self.code):
            raise LocalUsageError(f"Reason.code {self.code!r} breaks the code style {CODE_STYLE.pattern}")

    def __str__(self) -> str:
        return f"{self.text} [{self.code}]"


@dataclass(frozen=True, slots=True, kw_only=True)
class Step(Generic[A]):
    """What one input produced: actions, transitions and the reason (see the module docstring)."""

    actions: tuple[A, ...] = ()
    transitions: tuple[Transition, ...] = ()
    reason: Reason | None = None
    notes: tuple[Reason, ...] = ()

    def __post_init__(self) -> None:
        for name in ("actions", "transitions", "notes"):
            if not isinstance(getattr(self, name), tuple):
                raise LocalUsageError(f"Step.{name} must be a tuple, got {type(getattr(self, name)).__name__}")

    def then(self, other: Step[A]) -> Step[A]:
        """This step followed by ``other``: actions, transitions and notes in order; the later reason wins."""
        return Step(actions=self.actions + other.actions, transitions=self.transitions + other.transitions,
                    reason=other.reason or self.reason, notes=self.notes + other.notes)

    @property
    def empty(self) -> bool:
        return not (self.actions or self.transitions or self.notes) and self.reason is None

    def of_type(self, kind: type[A]) -> list[A]:
        """The actions of one type, in order (tests and drivers use it)."""
        return [a for a in self.actions if isinstance(a, kind)]


@dataclass(slots=True)
class StepBuilder(Generic[A]):
    """Mutable collector a decider fills while it handles one event; ``build()`` freezes it."""

    actions: list[A] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    reason: Reason | None = None
    notes: list[Reason] = field(default_factory=list)

    def act(self, *actions: A) -> None:
        self.actions.extend(actions)

    def changed(self, transition: Transition | None) -> None:
        """Record a transition from ``StateMachine.change`` (None = no change, nothing recorded)."""
        if transition is not None:
            self.transitions.append(transition)

    def because(self, code: str, text: str) -> None:
        self.reason = Reason(code, text)

    def note(self, code: str, text: str) -> None:
        self.notes.append(Reason(code, text))

    def include(self, step: Step[A]) -> None:
        self.actions.extend(step.actions)
        self.transitions.extend(step.transitions)
        self.notes.extend(step.notes)
        if step.reason is not None:
            self.reason = step.reason

    def build(self) -> Step[A]:
        return Step(actions=tuple(self.actions), transitions=tuple(self.transitions), reason=self.reason,
                    notes=tuple(self.notes))


class Deadlines(Generic[K]):
    """Named deadlines on the monotonic clock: set, clear, earliest, due at ``now``.

    A name has at most one deadline; setting it again moves it. Times must be finite.
    """

    __slots__ = ("_at",)

    def __init__(self) -> None:
        self._at: dict[K, float] = {}

    def set(self, name: K, at: float) -> None:
        if not isinstance(at, int | float) or isinstance(at, bool) or not math.isfinite(at):
            raise LocalUsageError(f"deadline {name!r} must be a finite time, got {at!r}")
        self._at[name] = float(at)

    def clear(self, name: K) -> None:
        self._at.pop(name, None)

    def get(self, name: K) -> float | None:
        return self._at.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._at

    def __iter__(self) -> Iterator[tuple[K, float]]:
        return iter(sorted(self._at.items(), key=lambda kv: kv[1]))

    def __len__(self) -> int:
        return len(self._at)

    def earliest(self) -> float | None:
        """The next time anything is due, or None when nothing is set."""
        return min(self._at.values(), default=None)

    def due(self, now: float) -> list[K]:
        """The names whose deadline is at or before ``now``, earliest first (they stay set)."""
        return [name for name, at in self if at <= now]

    def pop_due(self, now: float) -> list[K]:
        """Like ``due`` but clears them."""
        names = self.due(now)
        for name in names:
            del self._at[name]
        return names

    def snapshot(self) -> dict[Any, float]:
        return dict(self._at)


def codes_table(codes: Iterable[ReasonCode], title: str = "code") -> str:
    """A markdown table of codes and meanings, for the generated parts of the docs."""
    rows = [f"| `{c.value}` | {c.meaning} |" for c in codes]
    return "\n".join([f"| {title} | meaning |", "|---|---|", *rows])

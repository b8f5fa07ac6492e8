"""The events a ProcessSupervisor (``HaValet.supervisor``) takes and the actions it returns.

Frozen values with no logic. Events carry the monotonic ``now``; a command's result comes back with
the ``tag`` of the action that started it, so a late result of a finished round is recognised.
"""

from __future__ import annotations

from dataclasses import dataclass

# ---------------------------------------------------------------------- events (the driver feeds these)

@dataclass(frozen=True, slots=True, kw_only=True)
class Tick:
    """The driver's timer: due work (a round, a verification poll, the end of start_grace) runs now."""

    now: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TestDone:
    """A test command finished on ``host`` (rc None: it could not run or timed out)."""

    __test__ = False  # not a pytest test class

    host: str
    rc: int | None
    tag: str  # the tag of the RunTest it answers
    now: float


@dataclass(frozen=True, slots=True, kw_only=True)
class StartDone:
    """A start command finished on ``host``; ``detail`` says how when it failed."""

    host: str
    rc: int | None
    tag: str  # the tag of the RunStart it answers
    now: float
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class StopDone:
    """A stop command finished on ``host``; ``detail`` says how when it failed."""

    host: str
    rc: int | None
    now: float
    detail: str = ""


Event = Tick | TestDone | StartDone | StopDone


# ---------------------------------------------------------------------- actions (the driver runs these)

@dataclass(frozen=True, slots=True, kw_only=True)
class RunTest:
    host: str
    tag: str  # "round:N" or "verify:N": hand it back with the result


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStart:
    host: str
    tag: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStop:
    host: str


Action = RunTest | RunStart | RunStop

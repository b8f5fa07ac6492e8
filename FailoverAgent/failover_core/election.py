"""Host election: which of several instances should be the one active instance.

Pure and generic (used by HaValet; fit for any "N candidates, exactly one active" driver).
Candidates come in configured preference order (best first), each with a runtime priority
observed by a check: ``None`` or ``0`` = down, ``> 0`` = up, lower number = higher priority.

``elect(candidates)`` answers with one Election:

- exactly one up            -> keep it                                    (code ONE_UP)
- several up                -> keep the lowest runtime priority; ties go to configured preference;
                               stop every other one                       (code MANY_UP)
- none up                   -> start candidates in configured preference order (code NONE_UP)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from failover_core.errors import LocalUsageError


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    name: str
    runtime_priority: int | None  # None or 0: down; > 0: up (lower wins)

    @property
    def up(self) -> bool:
        return self.runtime_priority is not None and self.runtime_priority > 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Election:
    keep: str | None  # the instance that is (or stays) active; None when none is up
    stop: tuple[str, ...]  # instances that are up but must stop
    start_order: tuple[str, ...]  # when none is up: where to try starting, best first
    code: str  # ONE_UP | MANY_UP | NONE_UP
    reason: str


def elect(candidates: Sequence[Candidate]) -> Election:
    if not candidates:
        raise LocalUsageError("elect() needs at least one candidate")
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise LocalUsageError(f"candidate names must be distinct: {names}")
    up = [(c.runtime_priority, pos, c) for pos, c in enumerate(candidates) if c.up]
    if not up:
        return Election(keep=None, stop=(), start_order=tuple(names), code="NONE_UP",
                        reason="no instance is up (" + ", ".join(f"{n}: down" for n in names) + ")")
    up.sort(key=lambda t: (t[0], t[1]))
    winner = up[0][2]
    if len(up) == 1:
        return Election(keep=winner.name, stop=(), start_order=(), code="ONE_UP",
                        reason=f"only {winner.name} is up (priority {winner.runtime_priority})")
    losers = tuple(c.name for _, _, c in up[1:])
    listed = ", ".join(f"{c.name} (priority {c.runtime_priority})" for _, _, c in up)
    return Election(keep=winner.name, stop=losers, start_order=(), code="MANY_UP",
                    reason=f"{len(up)} instances up: {listed}; keeping {winner.name}, stopping {', '.join(losers)}")

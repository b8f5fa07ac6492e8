"""carry_out: the one function that turns a decider's Step into I/O, for every driver.

It does three things, in this order, and nothing else:

1. logs the decision: each transition on one INFO line (``subject: FROM -> TO (reason) [code]``),
   the step's reason on one line with its code (INFO when the step changed or did something, or
   the code differs from the last one this ``DecisionLog`` saw; DEBUG when it repeats), each note
   on one INFO line (a note whose code is one of the log's ``rate_limited`` codes, such as a dropped
   packet, goes to INFO only for the 1st, 10th, 100th ... time, with its count; DEBUG otherwise);
2. hands the transitions to the notify dispatcher (if any), in order: hooks run once each, in order;
3. hands each action, in order, to the driver's handler for its type (looked up along the MRO, so a
   handler for a base class serves its subclasses). An action with no handler is a bug in the
   driver: LocalUsageError, before any action of the step has run.

``carry_out`` returns the handlers' results in action order; ``carry_out_async`` awaits the ones
that are awaitable (asyncio drivers), still one at a time, in order.
"""

from __future__ import annotations

import collections
import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from failover_core.errors import LocalUsageError
from failover_core.step import Step
from failover_core.transitions import Transition

Handlers = Mapping[type, Callable[[Any], Any]]


class TransitionSink(Protocol):
    """What carry_out needs of a notify dispatcher (``failover_core.shell.notify.NotifyDispatcher``)."""

    def submit(self, transition: Transition) -> None: ...


class DecisionLog:
    """A driver's logger plus the last reason code it logged (repeats go to DEBUG)."""

    def __init__(self, logger: logging.Logger, prefix: str = "", *, rate_limited: Iterable[str] = ()) -> None:
        self.logger = logger
        self.prefix = f"{prefix}: " if prefix else ""
        self.last_code: str | None = None
        self.count = 0  # decisions logged (INFO or DEBUG)
        self.rate_limited = frozenset(rate_limited)
        self.note_counts: collections.Counter[str] = collections.Counter()

    def step(self, step: Step[Any]) -> None:
        for t in step.transitions:
            self.logger.info("%stransition: %s", self.prefix, t)
        if step.reason is not None:
            repeated = step.reason.code == self.last_code and not (step.actions or step.transitions)
            self.logger.log(logging.DEBUG if repeated else logging.INFO, "%sdecision: %s", self.prefix, step.reason)
            self.last_code = step.reason.code
            self.count += 1
        for note in step.notes:
            self.note_counts[note.code] += 1
            n = self.note_counts[note.code]
            if note.code not in self.rate_limited:
                self.logger.info("%snote: %s", self.prefix, note)
            elif _power_of_ten(n):
                self.logger.info("%snote: %s (%d so far)", self.prefix, note, n)
            else:
                self.logger.debug("%snote: %s (%d so far)", self.prefix, note, n)


def _power_of_ten(n: int) -> bool:
    while n % 10 == 0:
        n //= 10
    return n == 1


def _resolve(step: Step[Any], handlers: Handlers) -> list[Callable[[Any], Any]]:
    out = []
    for action in step.actions:
        for cls in type(action).__mro__:
            if cls in handlers:
                out.append(handlers[cls])
                break
        else:
            known = ", ".join(sorted(c.__name__ for c in handlers))
            raise LocalUsageError(f"no handler for action {type(action).__name__} (handlers: {known})")
    return out


def _announce(step: Step[Any], log: DecisionLog | None, notify: TransitionSink | None) -> None:
    if log is not None:
        log.step(step)
    if notify is not None:
        for t in step.transitions:
            notify.submit(t)


def carry_out(step: Step[Any], handlers: Handlers, *, log: DecisionLog | None = None,
              notify: TransitionSink | None = None) -> list[Any]:
    """Log ``step``, notify its transitions, run its actions through ``handlers``; the handlers' results."""
    resolved = _resolve(step, handlers)
    _announce(step, log, notify)
    return [handler(action) for handler, action in zip(resolved, step.actions, strict=True)]


async def carry_out_async(step: Step[Any], handlers: Handlers, *, log: DecisionLog | None = None,
                          notify: TransitionSink | None = None) -> list[Any]:
    """``carry_out`` for asyncio drivers: awaitable results are awaited, one action at a time."""
    resolved = _resolve(step, handlers)
    _announce(step, log, notify)
    results = []
    for handler, action in zip(resolved, step.actions, strict=True):
        result = handler(action)
        if inspect.isawaitable(result):
            result = await result
        results.append(result)
    return results

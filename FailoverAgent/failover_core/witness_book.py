"""WitnessBook: what a witness knows, and the only answers it may give. Shared by every witness.

A witness (the VOLTTRON witness agent, the standalone ``failover-witness``) records each authenticated
heartbeat as a ``Claim``: who (``node``, in a ``group`` = one pair or cluster), the term it claims
and whether it says it runs the service. Asked about a node, it answers a ``WitnessView`` from what
it heard itself, never from anything a restart could have lost:

- ``UP``       heard within ``down_after`` (= timeout + fencing margin, ``failover_core.fencing``);
- ``DOWN``     silent for ``down_after`` or longer (the node has fenced itself by then);
- ``UNKNOWN``  never heard since this witness started, and it started less than ``down_after`` ago:
               a freshly restarted witness never confirms a death it did not see.
A node whose last heartbeat said it is *leaving* (its agent stopped cleanly) is answered at once: ``DOWN``
when it said it runs nothing (it handed over or was passive: the partner may start without waiting for
``down_after``); ``UP`` and active for as long as this witness runs when it said it still runs the service
(it left it running because nobody could take over): the witness never calls that node down, so the partner
does not start beside a service that outlived its agent. The node's next ordinary heartbeat replaces
the claim.
The view also carries the node's last claim (term, active), and the witness answers, with every
acknowledgement, what it knows of the other members of the node's group (``peers_of``): a node that
comes back from isolation learns from it whether its partner runs the service, and at which term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from failover_core.errors import LocalUsageError
from failover_core.liveness import Liveness

MAX_NAME = 128


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """One authenticated heartbeat, as the witness records it."""

    group: str
    node: str
    term: int
    active: bool
    leaving: bool = False  # its agent is stopping: the last heartbeat until it is back

    def __post_init__(self) -> None:
        for name in ("group", "node"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v or len(v) > MAX_NAME or not v.isprintable():
                raise LocalUsageError(f"Claim.{name} must be a short printable name, got {v!r:.80}")
        if isinstance(self.term, bool) or not isinstance(self.term, int) or self.term < 0:
            raise LocalUsageError(f"Claim.term must be an integer >= 0, got {self.term!r}")
        if not isinstance(self.active, bool):
            raise LocalUsageError(f"Claim.active must be a bool, got {self.active!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class WitnessView:
    """The witness's answer about one node."""

    node: str
    state: Liveness
    term: int | None  # the last term it claimed (None: never heard)
    active: bool | None  # whether its last heartbeat said it runs the service
    silent_for: float | None  # seconds since its last heartbeat (None: never heard)
    down_in: float  # seconds until the witness would call it DOWN (0 when it is DOWN)

    @property
    def may_be_active(self) -> bool | None:
        """Could this node be running the service? False when DOWN (fenced by then) or it said it does not;
        True when UP and it said it does; None when the witness cannot tell (UNKNOWN)."""
        if self.state is Liveness.DOWN:
            return False
        if self.state is Liveness.UNKNOWN:
            return None
        return bool(self.active)

    def as_fields(self) -> dict[str, object]:
        return {"node": self.node, "state": self.state.value, "term": self.term, "active": self.active,
                "silent_for": None if self.silent_for is None else round(self.silent_for, 3),
                "down_in": round(self.down_in, 3)}


@dataclass(slots=True)
class _Entry:
    claim: Claim
    heard_at: float


class WitnessBook:
    """Everything one witness heard. ``max_nodes`` bounds memory against a flood of made-up names."""

    def __init__(self, *, down_after: float, started_at: float, max_nodes: int = 256) -> None:
        if not (down_after > 0 and math.isfinite(down_after)):
            raise LocalUsageError(f"WitnessBook down_after must be a positive number, got {down_after!r}")
        self.down_after = down_after
        self.started_at = started_at
        self.max_nodes = max_nodes
        self._entries: dict[tuple[str, str], _Entry] = {}
        self.refused_full = 0  # claims dropped because the book was full

    def heard(self, claim: Claim, now: float) -> bool:
        """Record an authenticated heartbeat. False when the book is full of other nodes (dropped, counted)."""
        key = (claim.group, claim.node)
        entry = self._entries.get(key)
        if entry is None and len(self._entries) >= self.max_nodes:
            self.refused_full += 1
            return False
        if entry is not None and now < entry.heard_at:
            return True  # delivered late: never move the deadline back
        self._entries[key] = _Entry(claim, now)
        return True

    def view(self, group: str, node: str, now: float) -> WitnessView:
        entry = self._entries.get((group, node))
        if entry is None:
            grace_left = self.started_at + self.down_after - now
            state = Liveness.UNKNOWN if grace_left > 0 else Liveness.DOWN
            return WitnessView(node=node, state=state, term=None, active=None, silent_for=None,
                               down_in=max(0.0, grace_left))
        silent = now - entry.heard_at
        if entry.claim.leaving:  # gone on purpose: down at once, or kept up while it left the service running
            state, down_in = (Liveness.UP, self.down_after) if entry.claim.active else (Liveness.DOWN, 0.0)
            return WitnessView(node=node, state=state, term=entry.claim.term, active=entry.claim.active,
                               silent_for=silent, down_in=down_in)
        down_in = max(0.0, self.down_after - silent)
        return WitnessView(node=node, state=Liveness.UP if down_in > 0 else Liveness.DOWN, term=entry.claim.term,
                           active=entry.claim.active, silent_for=silent, down_in=down_in)

    def peers_of(self, group: str, node: str, now: float) -> list[WitnessView]:
        """What the witness knows of every other node it heard in ``group``."""
        return [self.view(g, n, now) for (g, n) in sorted(self._entries) if g == group and n != node]

    def highest_term(self, group: str) -> int:
        """The highest term any node of ``group`` claimed here (0 when none)."""
        return max((e.claim.term for (g, _), e in self._entries.items() if g == group), default=0)

    def groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for g, n in sorted(self._entries):
            out.setdefault(g, []).append(n)
        return out

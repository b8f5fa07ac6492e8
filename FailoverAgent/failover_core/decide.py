"""decide(): one function that says what a failover node must do now, and why.

Patroni-style: the driver gathers an immutable snapshot of facts each cycle, calls ``decide``,
carries out the action and logs the reason. Ordered guards come first; the documented table
(``tables``) decides everything the guards let through:

1. startup     a fact the table reads is still UNKNOWN (never heard, still within its grace):
               HOLD, so a restarted node does not start on a guess.
2. verify      the table says VERIFY: the witness's verdict (if any) picks START or STOP.
3. rejoin      (standard roles) the table says START from a cell where the peer is not heard, we do
               not run the service, and no witness verdict decided it: START only when the witness
               says the peer cannot be running it (``witness_peer_active`` False: the witness calls
               it DOWN, or heard it say it runs nothing). A node back from isolation hears the witness
               before its peer; without this it would start beside the peer that took over.
4. handover    we would START while the peer is UP and says it runs the service: HOLD until it
               releases (no moment with two actives on failback). With ``policy.wait_for_peer_state``
               also HOLD a START while the peer is still UNKNOWN (we do not know what it runs yet).
5. failback    a standby-by-rank node runs the service and the preferred peer came back: HOLD it
               until the peer has been up for ``policy.failback_delay`` seconds (hold-down).
"""

from __future__ import annotations

from dataclasses import dataclass

from failover_core.errors import LocalUsageError
from failover_core.liveness import Liveness
from failover_core.tables import TABLES, VERIFY_TABLE, Action, Cell, Role, Verdict, table_key


@dataclass(frozen=True, slots=True, kw_only=True)
class Facts:
    """One cycle's snapshot. ``peer`` is the other failover node; ``witness`` the verifier."""

    peer: Liveness
    witness: Liveness = Liveness.UNKNOWN
    verdict: Verdict | None = None  # the witness's answer, when one was asked for and arrived
    peer_active: bool | None = None  # what the peer's last heartbeat said about its own service
    self_active: bool = False  # does the service run here now
    peer_up_for: float = 0.0  # seconds the peer has been continuously UP
    # the witness's word on the peer (failover_core.witness_book.WitnessView.may_be_active):
    # False = it cannot be running the service, True = it says it does, None = no word (yet)
    witness_peer_active: bool | None = None

    def __post_init__(self) -> None:
        for name in ("peer", "witness"):
            if not isinstance(getattr(self, name), Liveness):
                raise LocalUsageError(f"Facts.{name} must be a Liveness, got {getattr(self, name)!r}")
        if self.verdict is not None and not isinstance(self.verdict, Verdict):
            raise LocalUsageError(f"Facts.verdict must be a Verdict or None, got {self.verdict!r}")
        if self.peer_up_for < 0:
            raise LocalUsageError(f"Facts.peer_up_for must be >= 0, got {self.peer_up_for!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """Knobs on top of the documented tables."""

    failback_delay: float = 0.0  # hold-down before a secondary gives the service back
    exclusive_handover: bool = True  # wait for the peer to release before starting
    # never START while the peer is still UNKNOWN (not heard since we started, still within its grace):
    # a restarted primary must learn whether the secondary runs the service before it starts its own.
    wait_for_peer_state: bool = False

    def __post_init__(self) -> None:
        if self.failback_delay < 0:
            raise LocalUsageError(f"Policy.failback_delay must be >= 0, got {self.failback_delay!r}")


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    code: str  # stable, for tests, counters and alert keys
    reason: str  # one human sentence, for logs and alerts

    def __str__(self) -> str:
        return f"{self.action.value}: {self.reason} [{self.code}]"


def decide(role: Role, facts: Facts, policy: Policy = Policy()) -> Decision:
    """What ``role`` must do given ``facts``. Pure: same input, same answer."""
    if not isinstance(role, Role):
        raise LocalUsageError(f"role must be a Role, got {role!r}")
    peer_name = "secondary" if role.is_primary else "primary"

    key = table_key(role, facts.peer, facts.witness if role.uses_witness else Liveness.UP)
    cell = _lookup(role, key)
    if cell is None:
        waiting = [n for n, v in ((peer_name, facts.peer), ("witness", facts.witness)) if v is Liveness.UNKNOWN]
        return Decision(Action.HOLD, f"{role.value}.startup",
                        f"starting up: not heard from {' or '.join(waiting)} yet, keeping current state")
    verified = False
    if cell.action is Action.VERIFY and facts.verdict is not None:
        cell, verified = VERIFY_TABLE[facts.verdict], True

    if (cell.action is Action.START and not facts.self_active and role.uses_witness and not verified
            and facts.peer is not Liveness.UP and facts.witness is Liveness.UP
            and facts.witness_peer_active is not False):
        said = ("says the secondary runs the service" if facts.witness_peer_active
                else "has no word yet on whether the secondary runs the service")
        if not role.is_primary:
            said = said.replace("secondary", "primary")
        return Decision(Action.HOLD, f"{role.value}.rejoin",
                        f"{cell.reason}; but the witness {said}: not starting beside it")

    if (cell.action is Action.START and not facts.self_active and policy.wait_for_peer_state
            and facts.peer is Liveness.UNKNOWN):
        return Decision(Action.HOLD, f"{role.value}.startup",
                        f"{cell.reason}; but not heard from the {peer_name} yet: waiting to learn whether "
                        f"it runs the service")

    if (cell.action is Action.START and not facts.self_active and policy.exclusive_handover
            and facts.peer is Liveness.UP and facts.peer_active):
        return Decision(Action.HOLD, f"{role.value}.handover",
                        f"{cell.reason}; waiting for the {peer_name} to release the service first")

    if (cell.action is Action.STOP and facts.self_active and not role.is_primary
            and facts.peer is Liveness.UP and facts.peer_up_for < policy.failback_delay):
        return Decision(Action.HOLD, f"{role.value}.failback_hold",
                        f"primary is back for {facts.peer_up_for:.1f}s; holding the service until "
                        f"failback_delay {policy.failback_delay:g}s")

    return Decision(cell.action, cell.code, cell.reason)


def _lookup(role: Role, key: tuple[Liveness, ...]) -> Cell | None:
    """The table cell for ``key``. An UNKNOWN fact is resolved only if the answer does not depend
    on it (every UP/DOWN substitution gives the same action); otherwise None (wait and see)."""
    table = TABLES[role]
    if Liveness.UNKNOWN not in key:
        return table[key]
    cells = [table[k] for k in _substitutions(key)]
    if len({c.action for c in cells}) != 1:
        return None
    pessimistic = table[tuple(Liveness.DOWN if v is Liveness.UNKNOWN else v for v in key)]
    return Cell(pessimistic.action, pessimistic.code, pessimistic.reason + " (some peers not heard from yet)")


def _substitutions(key: tuple[Liveness, ...]) -> list[tuple[Liveness, ...]]:
    out: list[tuple[Liveness, ...]] = [()]
    for v in key:
        options = (Liveness.UP, Liveness.DOWN) if v is Liveness.UNKNOWN else (v,)
        out = [(*k, o) for k in out for o in options]
    return out

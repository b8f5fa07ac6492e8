"""The behaviour tables of the VOLTTRON failover agent, as data: one entry per documented cell.

Keys are (role, peer liveness[, witness liveness]); each cell is (action, code, reason). The
secondary's "primary down, witness up" cell is VERIFY: the witness is asked, and VERIFY_TABLE
turns its verdict into the final action. Nothing outside this module encodes a cell.

    Primary (standard)      secondary  witness  -> action
                            up         up          start
                            up         down        start
                            down       up          start
                            down       down        stop   (fences itself: it may be the isolated one)
    Secondary (standard)    primary    witness
                            up         up          stop
                            up         down        stop
                            down       up          verify with the witness, start if it confirms
                            down       down        stop   (it may be the isolated one)
    Simple primary          always start
    Simple secondary        primary up -> stop; primary down -> start
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from failover_core.liveness import Liveness

UP, DOWN = Liveness.UP, Liveness.DOWN


class Role(enum.Enum):
    """The four documented ``agent_id`` roles."""

    PRIMARY = "primary"
    SECONDARY = "secondary"
    SIMPLE_PRIMARY = "simple_primary"
    SIMPLE_SECONDARY = "simple_secondary"

    @property
    def uses_witness(self) -> bool:
        return self in (Role.PRIMARY, Role.SECONDARY)

    @property
    def is_primary(self) -> bool:
        return self in (Role.PRIMARY, Role.SIMPLE_PRIMARY)


class Action(enum.Enum):
    START = "start"  # the managed service must run here
    STOP = "stop"  # the managed service must not run here
    VERIFY = "verify"  # ask the witness before deciding (standard secondary only)
    HOLD = "hold"  # keep whatever is running now (a guard asks us to wait)


class Verdict(enum.Enum):
    """The witness's answer to "do you still hear the primary?"."""

    PRIMARY_DOWN = "primary_down"
    PRIMARY_ALIVE = "primary_alive"


@dataclass(frozen=True, slots=True)
class Cell:
    action: Action
    code: str
    reason: str


PRIMARY_TABLE: dict[tuple[Liveness, Liveness], Cell] = {
    (UP, UP): Cell(Action.START, "primary.secondary_up.witness_up",
                   "secondary and witness are reachable"),
    (UP, DOWN): Cell(Action.START, "primary.secondary_up.witness_down",
                     "secondary is reachable (witness is not)"),
    (DOWN, UP): Cell(Action.START, "primary.secondary_down.witness_up",
                     "witness is reachable (secondary is not)"),
    (DOWN, DOWN): Cell(Action.STOP, "primary.secondary_down.witness_down",
                       "neither secondary nor witness is reachable: this node may be isolated, fencing itself"),
}

SECONDARY_TABLE: dict[tuple[Liveness, Liveness], Cell] = {
    (UP, UP): Cell(Action.STOP, "secondary.primary_up.witness_up", "primary is active"),
    (UP, DOWN): Cell(Action.STOP, "secondary.primary_up.witness_down",
                     "primary is active (witness is unreachable)"),
    (DOWN, UP): Cell(Action.VERIFY, "secondary.primary_down.witness_up",
                     "primary is silent: asking the witness to verify"),
    (DOWN, DOWN): Cell(Action.STOP, "secondary.primary_down.witness_down",
                       "primary and witness are both unreachable: this node may be isolated, not starting"),
}

VERIFY_TABLE: dict[Verdict, Cell] = {
    Verdict.PRIMARY_DOWN: Cell(Action.START, "secondary.verified.primary_down",
                               "primary is inactive (witness confirms it is down)"),
    Verdict.PRIMARY_ALIVE: Cell(Action.STOP, "secondary.verified.primary_alive",
                                "witness still hears the primary: only our link to it is down"),
}

SIMPLE_PRIMARY_TABLE: dict[tuple[()], Cell] = {
    (): Cell(Action.START, "simple_primary.always", "simple primary always runs the agent"),
}

SIMPLE_SECONDARY_TABLE: dict[tuple[Liveness], Cell] = {
    (UP,): Cell(Action.STOP, "simple_secondary.primary_up", "primary is active"),
    (DOWN,): Cell(Action.START, "simple_secondary.primary_down", "primary is inactive"),
}


def table_key(role: Role, peer: Liveness, witness: Liveness) -> tuple[Liveness, ...]:
    """The key a role's table is indexed by (which facts that role's table reads)."""
    if role is Role.SIMPLE_PRIMARY:
        return ()
    if role is Role.SIMPLE_SECONDARY:
        return (peer,)
    return (peer, witness)


TABLES: dict[Role, dict] = {
    Role.PRIMARY: PRIMARY_TABLE,
    Role.SECONDARY: SECONDARY_TABLE,
    Role.SIMPLE_PRIMARY: SIMPLE_PRIMARY_TABLE,
    Role.SIMPLE_SECONDARY: SIMPLE_SECONDARY_TABLE,
}


def render_markdown() -> str:
    """The tables as Markdown, generated from the data above (docs/core.md embeds this; a test
    checks the docs still match)."""
    lines = ["| role | peer | witness | action | code | reason |", "|---|---|---|---|---|---|"]
    for role, table in TABLES.items():
        for key, cell in table.items():
            peer = key[0].value if len(key) >= 1 else "any"
            witness = key[1].value if len(key) == 2 else "(not used)"
            lines.append(f"| {role.value} | {peer} | {witness} | {cell.action.value} | `{cell.code}` | {cell.reason} |")
    for verdict, cell in VERIFY_TABLE.items():
        lines.append(f"| secondary, after verify | down | up, says {verdict.value} | {cell.action.value} "
                     f"| `{cell.code}` | {cell.reason} |")
    return "\n".join(lines)

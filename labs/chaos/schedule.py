"""Fault kinds and a seeded schedule of them.

A schedule is a list of frozen ``Fault`` values, each with its start offset (seconds after the
recording starts), kind, target and peer (a node name, or ``ACTIVE``/``OTHER``, resolved by the
driver when the fault starts: the node that runs the service then, or another one), duration and
parameters. ``make_schedule`` draws it from ``random.Random(seed)`` alone, so the same seed, duration,
kinds and nodes give the same schedule. By default faults come one at a time with a settle period
after each heal, so every takeover and every recovery is measured on its own; ``OVERLAP`` in the
kinds adds pairs of faults whose windows overlap (the second one hits ``OTHER``).
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

ACTIVE = "@active"  # the node that runs the service when the fault starts
OTHER = "@other"  # a node that does not (or another node than the first fault's target)


class FaultKind(StrEnum):
    CRASH = "crash"  # SIGKILL of the node's process; started again when the fault ends
    FREEZE = "freeze"  # SIGSTOP for the fault's duration, then SIGCONT
    CLEAN_STOP = "clean_stop"  # the process is stopped cleanly (SIGTERM); started again when the fault ends
    CUT_ONE_WAY = "cut_one_way"  # iptables: what the target sends to the peer is dropped (peer -> target passes)
    CUT_BOTH = "cut_both"  # iptables: nothing passes between target and peer
    LOSS = "loss"  # iptables statistic: a random share of what the target sends is dropped (no sch_netem needed)
    DELAY = "delay"  # NFQUEUE + labs.delayer: what the target sends is held D ms (+- jitter) (no sch_netem needed)
    DUP = "dup"  # iptables TEE + statistic: a random share of what the target sends arrives twice (no sch_netem)
    NETEM_LOSS = "netem_loss"  # tc netem loss on the target's interface (egress)
    NETEM_DELAY = "netem_delay"  # tc netem delay (with jitter)
    NETEM_DUP = "netem_dup"  # tc netem duplicate
    WITNESS_DOWN = "witness_down"  # the witness process is stopped for the fault's duration
    DAEMON_KILL = "daemon_kill"  # SIGKILL of the node's dockerd; started again when the fault ends
    NODE_RESTART = "node_restart"  # every process of the node killed, the node started again after the duration
    OVERLAP = "overlap"  # not a fault itself: two of the other kinds with overlapping windows


PROCESS_KINDS = frozenset({FaultKind.CRASH, FaultKind.FREEZE, FaultKind.CLEAN_STOP, FaultKind.DAEMON_KILL,
                           FaultKind.NODE_RESTART})
PAIR_KINDS = frozenset({FaultKind.CUT_ONE_WAY, FaultKind.CUT_BOTH})
# grey failures that must change nothing: the single active stays, no double, no gap (Promise.steady)
GREY_KINDS = frozenset({FaultKind.DELAY, FaultKind.DUP})
NETEM_KINDS = frozenset({FaultKind.NETEM_LOSS, FaultKind.NETEM_DELAY, FaultKind.NETEM_DUP})

# (shortest, longest) duration in seconds per kind, drawn uniformly
DURATIONS: dict[FaultKind, tuple[float, float]] = {
    FaultKind.CRASH: (0.5, 4.0),
    FaultKind.FREEZE: (0.2, 3.0),
    FaultKind.CLEAN_STOP: (0.5, 4.0),
    FaultKind.CUT_ONE_WAY: (1.0, 5.0),
    FaultKind.CUT_BOTH: (1.0, 5.0),
    FaultKind.LOSS: (3.0, 10.0),
    FaultKind.DELAY: (3.0, 10.0),
    FaultKind.DUP: (3.0, 10.0),
    FaultKind.NETEM_LOSS: (2.0, 6.0),
    FaultKind.NETEM_DELAY: (2.0, 6.0),
    FaultKind.NETEM_DUP: (2.0, 6.0),
    FaultKind.WITNESS_DOWN: (1.0, 8.0),
    FaultKind.DAEMON_KILL: (1.0, 5.0),
    FaultKind.NODE_RESTART: (1.0, 5.0),
}


class ScheduleError(ValueError):
    """The schedule cannot be made as asked (a kind the system does not support, too few nodes, ...)."""


@dataclass(frozen=True)
class Fault:
    """One fault: ``start`` and ``duration`` in seconds (``start`` from the recording's start)."""

    id: int
    start: float
    kind: FaultKind
    target: str
    duration: float
    peer: str | None = None
    params: Mapping[str, float | str] = field(default_factory=dict, hash=False)
    group: int | None = None  # faults of one overlap pair share a group

    @property
    def end(self) -> float:
        return self.start + self.duration

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kind"] = str(self.kind)
        d["params"] = dict(self.params)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Fault:
        return cls(id=int(d["id"]), start=float(d["start"]), kind=FaultKind(d["kind"]), target=str(d["target"]),
                   duration=float(d["duration"]), peer=d.get("peer"), params=dict(d.get("params") or {}),
                   group=d.get("group"))


def parse_kinds(text: str) -> list[FaultKind]:
    """``"crash,freeze"`` -> kinds; an unknown name is a ScheduleError listing the known ones."""
    kinds = []
    for name in (n.strip() for n in text.split(",")):
        if not name:
            continue
        try:
            kinds.append(FaultKind(name))
        except ValueError:
            raise ScheduleError(f"unknown fault kind {name!r}; known: {', '.join(k.value for k in FaultKind)}"
                                ) from None
    if not kinds:
        raise ScheduleError("no fault kind given")
    return kinds


def check_supported(kinds: Iterable[FaultKind], supported: Collection[FaultKind], system: str = "this system"
                    ) -> None:
    bad = [k.value for k in kinds if k not in supported and k is not FaultKind.OVERLAP]
    if bad:
        raise ScheduleError(f"{system} does not support fault kind(s) {', '.join(bad)}; "
                            f"it supports: {', '.join(sorted(k.value for k in supported))}")
    if FaultKind.OVERLAP in kinds and FaultKind.OVERLAP not in supported:
        raise ScheduleError(f"{system} does not support overlapping faults (overlap)")


def _params(kind: FaultKind, rng: random.Random) -> dict[str, float | str]:
    if kind is FaultKind.LOSS:  # up to nearly all: heartbeat protocols only notice runs of several losses
        return {"loss_pct": round(rng.uniform(30, 95), 1)}
    if kind is FaultKind.DELAY:  # shares of the driver's grey_delay_s (delay + jitter <= it): ms are the driver's
        return {"delay_share": round(rng.uniform(0.1, 0.8), 3), "jitter_share": round(rng.uniform(0.0, 0.2), 3)}
    if kind is FaultKind.DUP:
        return {"dup_pct": round(rng.uniform(20, 100), 1)}
    if kind is FaultKind.NETEM_LOSS:
        return {"loss_pct": round(rng.uniform(10, 40), 1)}
    if kind is FaultKind.NETEM_DELAY:
        return {"delay_ms": round(rng.uniform(20, 120)), "jitter_ms": round(rng.uniform(0, 20))}
    if kind is FaultKind.NETEM_DUP:
        return {"dup_pct": round(rng.uniform(10, 60), 1)}
    return {}


def _one(fid: int, start: float, kind: FaultKind, nodes: list[str], rng: random.Random, active_share: float,
         durations: Mapping[FaultKind, tuple[float, float]], target: str | None = None,
         group: int | None = None) -> Fault:
    lo, hi = durations[kind]
    duration = round(rng.uniform(lo, hi), 3)
    if target is None:
        target = ACTIVE if rng.random() < active_share else OTHER
    if kind is FaultKind.WITNESS_DOWN:
        target = "witness"
    peer = OTHER if kind in PAIR_KINDS else None
    return Fault(id=fid, start=round(start, 3), kind=kind, target=target, duration=duration, peer=peer,
                 params=_params(kind, rng), group=group)


def make_schedule(seed: int, duration: float, kinds: Iterable[FaultKind], nodes: Iterable[str], *,
                  supported: Collection[FaultKind] | None = None, system: str = "this system",
                  warmup: float = 2.0, settle: float = 3.0, gap: tuple[float, float] = (0.0, 1.0),
                  active_share: float = 0.7, durations: Mapping[FaultKind, tuple[float, float]] | None = None,
                  ) -> list[Fault]:
    """A schedule of faults in ``[warmup, duration - settle]``, drawn from ``random.Random(seed)`` only.

    Single faults by default: each starts ``settle`` + a random ``gap`` after the previous heal.
    ``OVERLAP`` among the kinds makes some draws a pair: a fault on ``ACTIVE`` and, during it, another
    on ``OTHER`` (same ``group``). ``supported``: the kinds the system's driver can inject; any other
    kind is refused with a ScheduleError naming it.
    """
    kinds = list(dict.fromkeys(kinds))
    nodes = list(nodes)
    if supported is not None:
        check_supported(kinds, supported, system)
    singles = [k for k in kinds if k is not FaultKind.OVERLAP]
    if not singles:
        raise ScheduleError("overlap needs at least one other fault kind to overlap")
    if len(nodes) < 2 and any(k in PAIR_KINDS for k in singles):
        raise ScheduleError("a cut needs two nodes")
    if duration <= 0 or settle < 0 or warmup < 0:
        raise ScheduleError("duration must be > 0, settle and warmup >= 0")
    table = dict(DURATIONS) | dict(durations or {})
    rng = random.Random(seed)
    faults: list[Fault] = []
    t = warmup
    group = 0
    while True:
        kind = rng.choice(kinds)
        if kind is FaultKind.OVERLAP:
            first = _one(len(faults), t, rng.choice(singles), nodes, rng, active_share, table, ACTIVE, group)
            offset = rng.uniform(0.1, 0.8) * first.duration
            second = _one(len(faults) + 1, t + offset, rng.choice(singles), nodes, rng, active_share, table,
                          OTHER, group)
            batch = [first, second]
            group += 1
        else:
            batch = [_one(len(faults), t, kind, nodes, rng, active_share, table)]
        end = max(f.end for f in batch)
        if end + settle > duration:
            break
        faults.extend(batch)
        t = end + settle + rng.uniform(*gap)
    return faults


def overlapping(faults: Iterable[Fault]) -> list[tuple[Fault, Fault]]:
    """Pairs of faults whose windows overlap (for checks: none unless overlap was asked)."""
    fs = sorted(faults, key=lambda f: f.start)
    return [(a, b) for i, a in enumerate(fs) for b in fs[i + 1:] if b.start < a.end]

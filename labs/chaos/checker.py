"""The checker: reads a chaos history and judges it against a system's Promise.

A sample says who runs the service at its time ``t`` and is taken to hold until the next sample.
Runs are maximal stretches of consecutive samples with two or more active (double) or none (nobody).
A fault is "in force" from its start until ``recovery`` seconds after its heal. The rules:

- ``double_active``: a double run longer than ``handover_grace`` needs a fault of a kind in
  ``double_allowed`` that started at or before the run, and the run must end by that fault's heal +
  ``heal_bound`` (so it is bounded by the fault's length); otherwise it is broken.
- ``nobody_active``: a nobody run longer than ``handover_grace`` needs a fault in force that hit the
  active (the target ran the service just before) of a kind with a takeover bound, and must end by
  max(fault start + takeover bound, heal + ``heal_bound``). Inside an overlap pair it is reported only until
  the pair's last heal + ``heal_bound`` + the longest takeover bound (then it is broken), and
  so is one no longer than ``nobody_grace`` (if set) while a fault is in force: a planned hand-over (the
  valet's failback: stopped there, then started here).
  A kind in ``heal_moves`` may move the service once at its heal (Docker: a restarted daemon without
  live-restore kills the container it left running): a nobody run that starts after such a heal is
  allowed if it ends by the heal + ``heal_moves[kind]``. A kind in ``liveness_waived`` (a lossy link) may
  leave nobody active while in force, if that ends by its heal + its heal bound.
- ``takeover``: a fault with a takeover bound that hit the active and lasted longer than the bound must
  see another node as the single active within the bound (a target that came back first is "resumed").
- ``heal``: exactly one active within ``heal_bound`` of a heal (or by start + takeover bound, if later),
  unless another fault is still in force then. After a fault of an overlap pair, the pair's last heal +
  ``heal_bound`` + the longest takeover bound (two faults at once may leave nobody, e.g. a standard-mode
  active fenced itself with the witness down and the peer crashed: coming back may need a takeover).
- ``unprovoked_change``: with no fault in force, the single active must not change.
- ``client_heal`` (only when the promise has a ``client_bound``): after a heal the client's probe
  (``client_ok``) must succeed again by the heal + ``client_bound`` (or start + takeover bound, if later)
  and keep succeeding until the next fault (blips <= ``handover_grace`` allowed), unless another fault
  is still in force then.
- ``steady``: a fault of a kind in ``steady`` (a grey failure: a short delay, duplication) must change
  nothing: the single active before it stays the single active from its start until the next fault (at most
  ``recovery`` after its heal); not judged inside an overlap pair or another fault's aftermath.
- ``fault_not_recorded``: every fault of the schedule in the meta line has a start record.

``check(record, promise)`` returns a CheckResult (per-kind figures and every broken rule with its window
and the faults in force); ``python -m labs.chaos.checker HISTORY`` prints the table, exits 1 if any rule broke.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import statistics
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from labs.chaos.history import FaultWindow, Record, read_history
from labs.chaos.schedule import FaultKind

NO_FAULT = "(no fault)"


class Promise(BaseModel):
    """What a system (in one mode) promises under faults; times in seconds."""

    model_config = ConfigDict(extra="forbid")

    system: str
    mode: str = "default"
    double_allowed: set[FaultKind] = Field(default_factory=set)
    takeover_bound: dict[FaultKind, float] = Field(default_factory=dict)
    heal_bound: float = Field(gt=0)
    # extra time after the heal of these kinds (a heal that restarts a node takes that long to take effect)
    heal_allowance: dict[FaultKind, float] = Field(default_factory=dict)
    handover_grace: float = Field(default=0.0, ge=0)
    nobody_grace: float | None = Field(default=None, ge=0)  # a nobody run this short while a fault is in force
    recovery: float | None = Field(default=None, ge=0)
    heal_moves: dict[FaultKind, float] = Field(default_factory=dict)
    # grey failures (a lossy link): no node may be able to keep the service while one is in force; nobody
    # active is then reported, not broken, if it ends by the heal + heal_s(kind) (safety is still judged)
    liveness_waived: set[FaultKind] = Field(default_factory=set)
    # grey failures that must change nothing (a delay well below the timeout, duplication): from the fault's start
    # until the next fault (at most recovery after its heal) the single active before it stays the single active
    steady: set[FaultKind] = Field(default_factory=set)
    why: str = ""
    client_bound: float | None = Field(default=None, gt=0, description="client_ok again this long after a heal")

    def heal_s(self, kind: FaultKind) -> float:
        """The heal bound for a fault of ``kind``: ``heal_bound`` + its ``heal_allowance``."""
        return self.heal_bound + self.heal_allowance.get(kind, 0.0)

    @property
    def recovery_s(self) -> float:
        """How long after a heal changes are still the fault's doing."""
        if self.recovery is not None:
            return self.recovery
        return max([self.heal_bound, *self.takeover_bound.values(), *self.heal_moves.values()])


@dataclass(frozen=True)
class Violation:
    rule: str
    start: float
    end: float
    text: str
    faults: tuple[str, ...] = ()  # "#id kind target" of the faults in force

    def line(self) -> str:
        inforce = "; in force: " + ", ".join(self.faults) if self.faults else "; no fault in force"
        return f"[{self.rule}] t={self.start:.3f}-{self.end:.3f}s: {self.text}{inforce}"


@dataclass
class KindStats:
    kind: str
    faults: int = 0
    hit_active: int = 0
    double_s: float = 0.0
    nobody_s: float = 0.0
    stale_s: float = 0.0
    client_fail_s: float = 0.0
    flaps: int = 0
    takeovers: list[float] = field(default_factory=list)
    resumed: int = 0
    heals: list[float] = field(default_factory=list)
    bound: float | None = None
    violations: int = 0
    client_back: list[float] = field(default_factory=list)  # heal -> end of the client's last failure (s)


@dataclass
class CheckResult:
    promise: Promise
    stats: dict[str, KindStats]
    violations: list[Violation]
    samples: int
    span: float
    max_gap: float
    faults: list[FaultWindow]
    handovers: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # why -> how many faults were recorded as skipped

    @property
    def ok(self) -> bool:
        return not self.violations


@dataclass(frozen=True)
class Run:
    start: float
    end: float

    @property
    def length(self) -> float:
        return self.end - self.start


def runs(samples: list[dict[str, Any]], pred: Any) -> list[Run]:
    """Maximal stretches of consecutive samples where ``pred(sample)``; a run ends at the next sample's time."""
    out: list[Run] = []
    begin: float | None = None
    for s in samples:
        if pred(s):
            if begin is None:
                begin = s["t"]
        elif begin is not None:
            out.append(Run(begin, s["t"]))
            begin = None
    if begin is not None:
        out.append(Run(begin, samples[-1]["t"]))
    return out


def _label(w: FaultWindow) -> str:
    peer = f"->{w.peer}" if w.peer else ""
    return f"#{w.fault.id} {w.kind} {w.target}{peer}"


class _Judge:
    def __init__(self, record: Record, promise: Promise) -> None:
        self.p = promise
        self.samples = record.samples
        self.faults = [w for w in record.faults if not w.extra.get("skipped")]
        self.record = record
        self.violations: list[Violation] = []
        self.rec = promise.recovery_s
        self.hit: dict[int, bool] = {w.fault.id: self._hit(w) for w in self.faults}
        self.end_t = self.samples[-1]["t"] if self.samples else 0.0

    # -- helpers ---------------------------------------------------------------------------------
    def _hit(self, w: FaultWindow) -> bool:
        before = [s for s in self.samples if s["t"] < w.start]
        return bool(before) and w.target in before[-1]["active"]

    def in_force(self, t: float) -> list[FaultWindow]:
        return [w for w in self.faults if w.start <= t <= w.stop + self.rec]

    def owner(self, t: float) -> FaultWindow | None:
        """The fault a moment belongs to: the latest started of those in force."""
        ws = self.in_force(t)
        return max(ws, key=lambda w: w.start) if ws else None

    def group_stop(self, w: FaultWindow) -> float:
        if w.fault.group is None:
            return w.stop
        return max(g.stop for g in self.faults if g.fault.group == w.fault.group)

    def pair_recovered_by(self, w: FaultWindow) -> float:
        """When one node must be active again after an overlap pair: two faults at once may leave nobody (a
        standard-mode active fences itself when the witness and the peer are gone together), and coming back
        may then need a takeover: the pair's last heal + the heal bound + the longest takeover bound."""
        return (self.group_stop(w) + self.p.heal_s(w.fault.kind)
                + max(self.p.takeover_bound.values(), default=0.0))

    def broken(self, rule: str, start: float, end: float, text: str, ws: Iterable[FaultWindow]) -> None:
        self.violations.append(Violation(rule, round(start, 4), round(end, 4), text, tuple(_label(w) for w in ws)))

    # -- rules -----------------------------------------------------------------------------------
    def double_active(self) -> int:
        handovers = 0
        for r in runs(self.samples, lambda s: len(s["active"]) >= 2):
            if r.length <= self.p.handover_grace:
                handovers += 1
                continue
            ws = self.in_force(r.start)
            allowed = [w for w in ws if w.fault.kind in self.p.double_allowed and w.start <= r.start]
            if not allowed:
                kinds = ", ".join(sorted(k.value for k in self.p.double_allowed)) or "none"
                self.broken("double_active", r.start, r.end,
                            f"{r.length:.3f} s with two or more active and no fault of an allowed kind ({kinds})", ws)
            elif not any(r.end <= self.group_stop(w) + self.p.heal_bound for w in allowed):
                last = max(self.group_stop(w) for w in allowed)
                self.broken("double_active", r.start, r.end,
                            f"{r.length:.3f} s with two or more active, {r.end - last:.3f} s past the heal "
                            f"(allowed: {self.p.heal_bound:g} s)", ws)
        return handovers

    def nobody_active(self) -> None:
        for r in runs(self.samples, lambda s: not s["active"]):
            if r.length <= self.p.handover_grace:
                continue
            ws = self.in_force(r.start)
            if ws and self.p.nobody_grace is not None and r.length <= self.p.nobody_grace:
                continue  # a planned hand-over in a fault's aftermath (stop there, then start here: a failback)
            if any(w.fault.group is not None and r.end <= self.pair_recovered_by(w) for w in ws):
                continue  # two faults at once: no single-fault bound is promised, only a recovery after both
            ok = any(w.fault.kind in self.p.heal_moves and w.end is not None and w.end <= r.start
                     and r.end <= w.end + self.p.heal_moves[w.fault.kind] for w in ws)
            ok = ok or any(w.fault.kind in self.p.liveness_waived and r.end <= w.stop + self.p.heal_s(w.fault.kind)
                           for w in ws)
            for w in ws:
                bound = self.p.takeover_bound.get(w.fault.kind)
                if bound is None or not self.hit[w.fault.id]:
                    continue
                # a fault shorter than the bound may end with the target back: then by its heal + heal_bound
                limit = w.start + bound if w.stop - w.start > bound else w.stop + self.p.heal_s(w.fault.kind)
                if r.end <= max(limit, w.start + bound):
                    ok = True
            if not ok:
                self.broken("nobody_active", r.start, r.end, f"{r.length:.3f} s with nobody active", ws)

    def takeover(self, w: FaultWindow, st: KindStats) -> None:
        bound = self.p.takeover_bound.get(w.fault.kind)
        if bound is None or not self.hit[w.fault.id] or w.fault.group is not None:
            return
        later = [s for s in self.samples if s["t"] >= w.start]
        nxt = min((g.start for g in self.faults if g.start > w.start), default=float("inf"))
        for s in later:
            if s["t"] >= nxt:
                break
            act = s["active"]
            if len(act) == 1 and act[0] == w.target and s["t"] >= w.stop:
                st.resumed += 1
                if w.stop - w.start > bound:
                    self.broken("takeover", w.start, s["t"], f"no takeover within {bound:g} s; the target came "
                                f"back after {s['t'] - w.start:.3f} s", [w])
                return
            if len(act) == 1 and act[0] != w.target:
                took = s["t"] - w.start
                st.takeovers.append(took)
                if took > bound:
                    self.broken("takeover", w.start, s["t"], f"takeover took {took:.3f} s > bound {bound:g} s", [w])
                return
        if min(nxt, self.end_t) - w.start > bound:
            self.broken("takeover", w.start, min(nxt, self.end_t), f"no takeover within {bound:g} s", [w])

    def heal(self, w: FaultWindow, st: KindStats) -> None:
        if w.end is None:
            return
        deadline = w.end + self.p.heal_s(w.fault.kind)
        bound = self.p.takeover_bound.get(w.fault.kind)
        if bound is not None and self.hit[w.fault.id]:
            deadline = max(deadline, w.start + bound)
        if w.fault.group is not None:
            deadline = max(deadline, self.pair_recovered_by(w))
        if any(g is not w and g.start < deadline and g.stop > w.end for g in self.faults):
            return  # another fault is in force: the heal of the last one is judged
        if deadline > self.end_t:
            return
        for s in self.samples:
            if s["t"] < w.end:
                continue
            if len(s["active"]) == 1:
                st.heals.append(max(0.0, s["t"] - w.end))
                if s["t"] > deadline:
                    self.broken("heal", w.end, s["t"], f"one active {s['t'] - w.end:.3f} s after the heal "
                                f"(bound: by {deadline - w.end:.3f} s)", [w])
                return
        self.broken("heal", w.end, self.end_t, "never one active again after the heal", [w])

    def client_heal(self, w: FaultWindow, st: KindStats) -> None:
        """The client's probe succeeds again by the heal + client_bound and keeps succeeding until the next
        fault; a failure shorter than handover_grace that starts after the bound is a handover blip."""
        bound_c = self.p.client_bound
        if bound_c is None or w.end is None:
            return
        deadline = w.end + bound_c
        bound = self.p.takeover_bound.get(w.fault.kind)
        if bound is not None and self.hit[w.fault.id]:
            deadline = max(deadline, w.start + bound)
        if w.fault.group is not None:
            deadline = max(deadline, self.pair_recovered_by(w))
        if any(g is not w and g.start < deadline and g.stop > w.end for g in self.faults):
            return  # another fault is in force: the heal of the last one is judged
        until = min([g.start for g in self.faults if g.start > w.end] + [self.end_t])
        if deadline > until:
            return
        window = [s for s in self.samples if w.end <= s["t"] <= until and "client_ok" in s]
        if not window:
            return
        fails = runs(window, lambda s: s["client_ok"] is False)
        back = max((r.end - w.end for r in fails if r.start < deadline), default=0.0)
        st.client_back.append(back)
        for r in fails:
            if r.end > deadline and (r.start < deadline or r.length > self.p.handover_grace):
                self.broken("client_heal", r.start, r.end,
                            f"the client's pings failed {r.start - w.end:.3f}-{r.end - w.end:.3f} s after the heal "
                            f"(bound: ok by {deadline - w.end:.3f} s)", [w])

    def steady(self, w: FaultWindow) -> None:
        """A fault of a ``steady`` kind: the single active before it stays the single active (no takeover, no
        double, no gap) until the next fault starts or ``recovery`` after its heal, whichever comes first."""
        if w.fault.kind not in self.p.steady or w.fault.group is not None:
            return
        before = [s for s in self.samples if s["t"] < w.start]
        if not before or len(before[-1]["active"]) != 1:
            return  # nothing steady to keep
        was = before[-1]["active"]
        until = min([g.start for g in self.faults if g.start > w.start] + [w.stop + self.rec, self.end_t])
        if any(g is not w and g.fault.kind not in self.p.steady and g.start <= w.start < g.stop + self.rec
               for g in self.faults):
            return  # the aftermath of an earlier fault that may move the service: its own rules judge that
        for s in self.samples:
            if w.start <= s["t"] <= until and s["active"] != was:
                self.broken("steady", s["t"], s["t"], f"{s['active'] or 'nobody'} active instead of {was[0]} "
                            f"under a {w.kind} fault, which must change nothing", [w])
                return

    def quiet(self) -> None:
        prev: dict[str, Any] | None = None
        for s in self.samples:
            if self.in_force(s["t"]):
                prev = None
                continue
            if len(s["active"]) != 1:
                continue
            if prev is not None and prev["active"] != s["active"]:
                self.broken("unprovoked_change", prev["t"], s["t"],
                            f"the active changed from {prev['active'][0]} to {s['active'][0]} with no fault", [])
            prev = s

    def recorded(self) -> None:
        got = {w.fault.id for w in self.record.faults}
        for f in self.record.meta.get("schedule") or []:
            if f["id"] not in got and f["start"] < self.end_t:
                self.broken("fault_not_recorded", f["start"], f["start"] + f["duration"],
                            f"scheduled fault #{f['id']} {f['kind']} has no start record", [])


def check(record: Record, promise: Promise) -> CheckResult:
    j = _Judge(record, promise)
    stats: dict[str, KindStats] = {}

    def stat(kind: str) -> KindStats:
        if kind not in stats:
            stats[kind] = KindStats(kind)
            if kind != NO_FAULT:
                stats[kind].bound = promise.takeover_bound.get(FaultKind(kind))
        return stats[kind]

    for w in j.faults:
        st = stat(w.kind)
        st.faults += 1
        st.hit_active += j.hit[w.fault.id]
    samples = record.samples
    prev_single: dict[str, Any] | None = None
    for a, b in itertools.pairwise(samples):
        w = j.owner(a["t"])
        st = stat(w.kind if w else NO_FAULT)
        dt = b["t"] - a["t"]
        n = len(a["active"])
        st.double_s += dt if n >= 2 else 0.0
        st.nobody_s += dt if n == 0 else 0.0
        st.stale_s += dt if a.get("stale") else 0.0
        st.client_fail_s += dt if a.get("client_ok") is False else 0.0
        if n == 1:
            if prev_single is not None and prev_single["active"] != a["active"]:
                st.flaps += 1
            prev_single = a
    handovers = j.double_active()
    j.nobody_active()
    for w in j.faults:
        j.takeover(w, stat(w.kind))
        j.heal(w, stat(w.kind))
        j.client_heal(w, stat(w.kind))
        j.steady(w)
    j.quiet()
    j.recorded()
    by_id = {w.fault.id: w for w in j.faults}
    for v in j.violations:
        ids = [int(lbl.split()[0][1:]) for lbl in v.faults]
        kinds = {by_id[i].kind for i in ids if i in by_id} or {NO_FAULT}
        for k in kinds:
            stat(k).violations += 1
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(samples)]
    span = samples[-1]["t"] - samples[0]["t"] if samples else 0.0
    skipped = collections.Counter(_skip_reason(w) for w in record.faults if w.extra.get("skipped"))
    return CheckResult(promise, stats, sorted(j.violations, key=lambda v: v.start), len(samples), span,
                       max(gaps, default=0.0), j.faults, handovers, dict(skipped))


def _skip_reason(w: FaultWindow) -> str:
    why = str(w.extra.get("why", "no reason recorded"))
    return "the schedule fell behind" if why.startswith("the schedule fell behind") else why


def check_file(path: Path | str, promise: Promise | None = None) -> CheckResult:
    record = read_history(path)
    if promise is None:
        if "promise" not in record.meta:
            raise ValueError(f"{path}: no promise in the meta line; give one")
        promise = Promise.model_validate(record.meta["promise"])
    return check(record, promise)


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1000:.0f}"


def text_report(result: CheckResult) -> str:
    """The table per fault kind: faults (how many hit the active), double-active s, nobody-active s, stale s
    (a holder whose process is dead or frozen), client-failure s, takeover median/max vs the bound, heal
    median/max, flaps (changes of the single active), broken rules; then every broken rule."""
    p = result.promise
    head = ["kind", "faults(hit)", "double s", "nobody s", "stale s", "client s", "takeover ms med/max",
            "bound ms", "heal ms med/max", "flaps", "broken"]
    rows = [head]
    order = sorted(result.stats, key=lambda k: (k == NO_FAULT, k))
    for k in order:
        st = result.stats[k]
        tk = f"{_ms(median(st.takeovers))}/{_ms(max(st.takeovers, default=None))}" if st.takeovers else "-"
        if st.resumed:
            tk += f" ({st.resumed} resumed)"
        hl = f"{_ms(median(st.heals))}/{_ms(max(st.heals, default=None))}" if st.heals else "-"
        rows.append([k, f"{st.faults}({st.hit_active})" if k != NO_FAULT else "-", f"{st.double_s:.3f}",
                     f"{st.nobody_s:.3f}", f"{st.stale_s:.3f}", f"{st.client_fail_s:.3f}", tk, _ms(st.bound), hl,
                     str(st.flaps), str(st.violations)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [f"{p.system} ({p.mode}): {result.samples} samples over {result.span:.1f} s, max gap "
             f"{result.max_gap * 1000:.0f} ms, {len(result.faults)} faults, {result.handovers} handover blips "
             f"<= {p.handover_grace * 1000:.0f} ms"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    if result.skipped:
        lines.append(f"skipped {sum(result.skipped.values())} fault(s), not applied: "
                     + "; ".join(f"{n} x {why}" for why, n in sorted(result.skipped.items())))
    if p.client_bound is not None:
        back = {k: st.client_back for k in order if (st := result.stats[k]).client_back}
        lines.append(f"client ok again after heals (bound {p.client_bound * 1000:.0f} ms), ms med/max: "
                     + ("; ".join(f"{k} {_ms(median(v))}/{_ms(max(v))}" for k, v in back.items()) or "-"))
    if result.violations:
        lines.append(f"BROKEN: {len(result.violations)} rule(s)")
        lines += ["  " + v.line() for v in result.violations]
    else:
        lines.append("promise kept: no rule broken")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m labs.chaos.checker", description=__doc__.splitlines()[0])
    ap.add_argument("history", type=Path)
    ap.add_argument("--promise", type=Path, help="a Promise as JSON (default: the one in the history's meta line)")
    args = ap.parse_args(argv)
    promise = Promise.model_validate_json(args.promise.read_text()) if args.promise else None
    result = check_file(args.history, promise)
    print(text_report(result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())

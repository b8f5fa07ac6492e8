"""Plays a fault schedule against a system's driver while the Recorder samples who runs the service.

A driver builds and removes the test bed, says who is active (``probe``), and applies and heals faults.
``run`` writes ``history.jsonl`` (meta line with the schedule and the promise, samples, fault records),
then checks it and writes ``report.txt`` and ``timeline.png``. Symbolic targets are resolved when a fault
starts from the latest sample, with a Random seeded from the run's seed: ``ACTIVE`` is the single active
node (a random one of several, any node if none), ``OTHER`` another node; a process fault never hits a
node whose process is already down (overlaps): then another node, or the fault is recorded as skipped.
A driver may define ``targets_for(kind) -> list[str]``: the nodes a fault of that kind can hit (Docker: a
crash hits an agent's host, not the witness's; a cut may involve the witness); the peer of a cut is still
drawn from every node.

A cut's peer is another of ``driver.nodes``, or of ``driver.cut_peers`` when the driver has it (the valet's
witness can be cut off, not crashed).

A fault whose moment comes when less than half of its window is left (a slow heal before it, e.g. a dockerd
restart of 15 s, put the schedule behind) is recorded as skipped, with how late it was, not applied and
healed at once: a freeze of a few milliseconds is not the fault the schedule drew. A fault applied late by
more than ``LATE_NOTE_S`` carries ``late_s`` in its record.
"""

from __future__ import annotations

import gc
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from labs.chaos.checker import CheckResult, Promise, check, text_report
from labs.chaos.history import History, Recorder, read_history
from labs.chaos.report import timeline_png
from labs.chaos.schedule import ACTIVE, OTHER, PROCESS_KINDS, Fault, FaultKind

LATE_NOTE_S = 0.05  # a fault applied later than this after its scheduled start carries late_s in its record


class Driver(Protocol):
    system: str
    supported: frozenset[FaultKind]
    nodes: list[str]
    sample_period: float
    settle: float

    def promise(self) -> Promise: ...
    def start(self) -> None: ...  # build the test bed, wait until one node is active
    def close(self) -> None: ...  # end every process by PID, remove namespaces and rules; never raises
    def probe(self) -> dict[str, Any]: ...
    def apply(self, fault: Fault, target: str, peer: str | None) -> dict[str, Any]: ...
    def heal(self, fault: Fault, target: str, peer: str | None) -> dict[str, Any] | None: ...  # -> fault_end
    def describe(self) -> dict[str, Any]: ...


@dataclass
class Outcome:
    result: CheckResult
    out: Path
    table: str
    recorder_max_cost: float
    recorder_mean_cost: float


def _resolve(fault: Fault, last: dict[str, Any] | None, nodes: list[str], busy: set[str], rng: random.Random,
             group_targets: dict[int, str], peers: list[str] | None = None) -> tuple[str | None, str | None]:
    """``nodes``: those the fault's kind can hit; ``peers``: those a cut's peer is drawn from (default ``nodes``)."""
    active = [n for n in (last or {}).get("active", ()) if n in nodes]
    if fault.target == ACTIVE:
        target = rng.choice(active) if active else rng.choice(nodes)
    elif fault.target == OTHER:
        avoid = set(active) | ({group_targets[fault.group]} if fault.group in group_targets else set())
        target = rng.choice([n for n in nodes if n not in avoid] or nodes)
    else:
        target = fault.target
    if fault.kind in PROCESS_KINDS and target in busy:
        free = [n for n in nodes if n not in busy]
        target = rng.choice(free) if free else None
    peer = None
    if fault.peer is not None and target is not None:
        choices = [n for n in peers or nodes if n != target]
        peer = fault.peer if fault.peer not in (ACTIVE, OTHER) else rng.choice(choices)
    return target, peer


def _why_skip(fault: Fault, t: float, target: str | None) -> str | None:
    """Why the fault starting at ``t`` is not applied, or None."""
    if target is None:
        return "every node's process is already down"
    length = fault.end - fault.start
    if fault.end - t < length / 2:
        return (f"the schedule fell behind: {t - fault.start:.2f} s late, "
                f"{max(0.0, fault.end - t):.2f} s of its {length:.2f} s left")
    return None


def run(driver: Driver, schedule: list[Fault], out: Path, *, seed: int, duration: float,
        extra_meta: dict[str, Any] | None = None) -> Outcome:
    """Build the bed, play ``schedule`` for ``duration`` s, remove the bed (also on failure), check, report."""
    out.mkdir(parents=True, exist_ok=True)
    hist_path = out / "history.jsonl"
    try:
        driver.start()
        promise = driver.promise()  # after the start: a bound may hold a figure measured on the bed
        recorder = _play(driver, schedule, hist_path, promise, seed, duration, extra_meta)
    finally:
        keep_logs = getattr(driver, "keep_logs", None)  # the bed's logs, for reading a broken rule afterwards
        if keep_logs is not None:
            try:
                keep_logs(out / "logs")
            except Exception as e:  # the logs are a help, not the result
                print(f"chaos: keeping the bed's logs failed: {e}", file=sys.stderr)
        driver.close()
    record = read_history(hist_path)
    result = check(record, Promise.model_validate(record.meta["promise"]))
    table = text_report(result)
    (out / "report.txt").write_text(table + "\n")
    timeline_png(record, result, out / "timeline.png",
                 title=f"{driver.system} seed {seed}, {duration:g} s: who is active "
                       "(green; grey hatched = stale VIP holder)")
    return Outcome(result, out, table, recorder.max_cost, recorder.total_cost / max(1, recorder.samples))


class _GcPauses:
    """A gc callback: how many collections ran during the run and the longest pause."""

    def __init__(self) -> None:
        self.count, self.longest, self._began = 0, 0.0, 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.count += 1
            self.longest = max(self.longest, time.perf_counter() - self._began)


def _play(driver: Driver, schedule: list[Fault], hist_path: Path, promise: Promise, seed: int, duration: float,
          extra_meta: dict[str, Any] | None) -> Recorder:
    # A full collection stops every thread, the recorder's too: in a big process (a pytest session with
    # hundreds of tests loaded) one took ~100 ms, a gap in the history. Everything alive now is frozen out of
    # the collector for the run (gc.freeze), and pauses that remain are timed and noted.
    gc.collect()
    gc.freeze()
    rng = random.Random(f"{seed}-targets")
    history = History(hist_path)
    recorder = Recorder(history, driver.probe, driver.sample_period)
    in_force: dict[int, tuple[Fault, str, str | None]] = {}
    pauses = _GcPauses()
    gc.callbacks.append(pauses)
    try:
        history.meta(system=driver.system, seed=seed, duration=duration, nodes=driver.nodes,
                     promise=json.loads(promise.model_dump_json()), schedule=[f.to_dict() for f in schedule],
                     driver=driver.describe(), **(extra_meta or {}))
        recorder.start()
        events = sorted([(f.start, 1, f) for f in schedule] + [(f.end, 0, f) for f in schedule],
                        key=lambda e: (e[0], e[1], e[2].id))
        busy: set[str] = set()
        group_targets: dict[int, str] = {}
        skipped: set[int] = set()
        for at, is_start, f in events:
            delay = at - history.now()
            if delay > 0:
                time.sleep(delay)
            if is_start:
                targets_for = getattr(driver, "targets_for", None)
                candidates = targets_for(f.kind) if targets_for is not None else driver.nodes
                target, peer = _resolve(f, recorder.last, candidates, busy, rng, group_targets,
                                        getattr(driver, "cut_peers", None) or driver.nodes)
                t = recorder.moment()  # samples stamped before t have finished: none sees the fault
                why = _why_skip(f, t, target)
                if why is not None:
                    skipped.add(f.id)
                    history.fault_start(f, t, "", None, skipped=True, why=why, late_s=round(t - f.start, 4))
                    continue
                assert target is not None
                info = driver.apply(f, target, peer)
                if t - f.start > LATE_NOTE_S:
                    info = {**info, "late_s": round(t - f.start, 4)}
                history.fault_start(f, t, target, peer, applied_in=round(history.now() - t, 4), **info)
                in_force[f.id] = (f, target, peer)
                if f.kind in PROCESS_KINDS:
                    busy.add(target)
                if f.group is not None:
                    group_targets.setdefault(f.group, target)
            else:
                if f.id in skipped:
                    history.fault_end(f, history.now(), skipped=True)
                    continue
                _, target, peer = in_force.pop(f.id)
                t = recorder.moment()
                healed = driver.heal(f, target, peer)
                history.fault_end(f, t, healed_in=round(history.now() - t, 4), **(healed or {}))
                busy.discard(target)
        delay = duration - history.now()
        if delay > 0:
            time.sleep(delay)
    finally:
        recorder.stop()
        gc.callbacks.remove(pauses)
        gc.unfreeze()
        for f, target, peer in in_force.values():
            try:
                healed = driver.heal(f, target, peer)
                history.fault_end(f, history.now(), note="healed at the end of the run", **(healed or {}))
            except Exception as e:
                history.note(f"heal of #{f.id} at the end failed: {e}")
        history.note("recorder", samples=recorder.samples, max_probe_s=round(recorder.max_cost, 4),
                     mean_probe_s=round(recorder.total_cost / max(1, recorder.samples), 5),
                     gc_collections=pauses.count, max_gc_pause_s=round(pauses.longest, 4))
        history.close()
    return recorder

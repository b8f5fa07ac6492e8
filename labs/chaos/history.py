"""One JSONL history of a chaos run: a meta line, samples of who runs the service, fault records, notes.

Lines (``t`` is seconds since the recording started, monotonic clock):

- ``{"type": "meta", "system", "seed", "nodes", "promise", ...}``: first line, written by the runner;
- ``{"type": "sample", "t", "active": [...], "stale": [...]?, "client_ok": bool?}``: who runs the service
  (VRRP: the namespaces holding the VIP with a live router; ``stale``: holders whose router is dead or frozen);
- ``{"type": "fault_start", "t", "fault": {...}, "target", "peer"}`` (target and peer resolved) and
  ``{"type": "fault_end", "t", "id"}``;
- ``{"type": "note", "t", "text"}``.

``Recorder`` is a thread that calls a probe every ``period`` seconds (<= 50 ms) and appends a sample;
``History`` writes the lines (thread-safe) and ``read_history`` loads a file back.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labs.chaos.schedule import Fault

Probe = Callable[[], dict[str, Any]]  # returns {"active": [...], optional "stale", "client_ok"}


class History:
    """Appends JSON lines to ``path``; ``now()`` is the run's clock (seconds since creation)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.t0 = time.monotonic()
        self._lock = threading.Lock()
        self._file = open(self.path, "w", buffering=1)  # noqa: SIM115 (closed by close())

    def now(self) -> float:
        return time.monotonic() - self.t0

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"))
        with self._lock:
            if not self._file.closed:
                self._file.write(line + "\n")

    def meta(self, **fields: Any) -> None:
        self.write({"type": "meta", **fields})

    def note(self, text: str, **fields: Any) -> None:
        self.write({"type": "note", "t": round(self.now(), 4), "text": text, **fields})

    def fault_start(self, fault: Fault, t: float, target: str, peer: str | None, **fields: Any) -> None:
        self.write({"type": "fault_start", "t": round(t, 4), "fault": fault.to_dict(), "target": target,
                    "peer": peer, **fields})

    def fault_end(self, fault: Fault, t: float, **fields: Any) -> None:
        self.write({"type": "fault_end", "t": round(t, 4), "id": fault.id, **fields})

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Recorder(threading.Thread):
    """Calls ``probe`` every ``period`` s (deadline-paced, no drift) and writes each result as a sample.
    A probe that raises is written as a note and the sample is skipped. ``last`` is the latest sample.

    A sample is stamped when its probe begins. ``moment()`` is the time to stamp a fault's start or heal
    with: it waits for a probe in flight, so every sample stamped earlier has finished its probe before the
    fault is applied and none of them can see its effect (seed 20261128 once saw a clean stop's first gap
    in a sample stamped 0.1 ms before the fault's start, judged "no fault in force")."""

    def __init__(self, history: History, probe: Probe, period: float = 0.025) -> None:
        if not 0 < period <= 0.05:
            raise ValueError("the recorder samples every <= 50 ms")
        super().__init__(daemon=True, name="chaos-recorder")
        self.history, self.probe, self.period = history, probe, period
        self._halt = threading.Event()
        self.last: dict[str, Any] | None = None
        self.samples = 0
        self.max_cost = 0.0
        self.total_cost = 0.0
        self._probing = threading.Lock()

    def moment(self) -> float:
        """Now, taken between two probes: a probe in flight finishes first (a probe takes ~1-10 ms)."""
        with self._probing:
            return self.history.now()

    def run(self) -> None:
        # best effort against a loaded machine: real-time priority for this thread (root), and a short GIL
        # switch interval so the main thread's work delays a sample by at most about a millisecond
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        sys.setswitchinterval(0.001)
        next_at = time.monotonic()
        while not self._halt.is_set():
            try:
                with self._probing:
                    t = self.history.now()
                    begun = time.monotonic()
                    got = self.probe()
            except Exception as e:  # a probe failure is data, not the end of the run
                self.history.note(f"probe failed: {type(e).__name__}: {e}")
            else:
                cost = time.monotonic() - begun
                self.max_cost = max(self.max_cost, cost)
                self.total_cost += cost
                sample = {"type": "sample", "t": round(t, 4), **got}
                sample["active"] = sorted(sample.get("active", ()))
                self.history.write(sample)
                self.last = sample
                self.samples += 1
            next_at += self.period
            delay = next_at - time.monotonic()
            if delay < 0:
                next_at = time.monotonic()  # late: sample at once and pace from now
                continue
            self._halt.wait(delay)

    def stop(self) -> None:
        self._halt.set()
        self.join(5.0)


@dataclass
class FaultWindow:
    """A fault as recorded: when it started and ended, and the nodes it was resolved to."""

    fault: Fault
    start: float
    end: float | None = None
    target: str = ""
    peer: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return str(self.fault.kind)

    @property
    def stop(self) -> float:
        """The end, or +inf if the history has none (the run ended during the fault)."""
        return float("inf") if self.end is None else self.end


@dataclass
class Record:
    meta: dict[str, Any]
    samples: list[dict[str, Any]]
    faults: list[FaultWindow]
    notes: list[dict[str, Any]]


def iter_lines(path: Path | str) -> Iterator[dict[str, Any]]:
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError as e:
                    raise ValueError(f"{path}:{n}: not JSON: {e}") from None


def parse_history(lines: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> Record:
    meta: dict[str, Any] = {}
    samples: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    faults: dict[int, FaultWindow] = {}
    for rec in lines:
        kind = rec.get("type", "sample")
        if kind == "meta":
            meta.update({k: v for k, v in rec.items() if k != "type"})
        elif kind == "sample":
            samples.append(rec)
        elif kind == "fault_start":
            f = Fault.from_dict(rec["fault"])
            extra = {k: v for k, v in rec.items() if k not in ("type", "t", "fault", "target", "peer")}
            faults[f.id] = FaultWindow(f, float(rec["t"]), None, rec.get("target") or f.target, rec.get("peer"),
                                       extra)
        elif kind == "fault_end":
            w = faults.get(int(rec["id"]))
            if w is not None:
                w.end = float(rec["t"])
                # what the heal reported (a delayer's figures) beside the start's fields
                w.extra.update({k: v for k, v in rec.items() if k not in ("type", "t", "id") and k not in w.extra})
        elif kind == "note":
            notes.append(rec)
    samples.sort(key=lambda s: s["t"])
    return Record(meta, samples, sorted(faults.values(), key=lambda w: w.start), notes)


def read_history(path: Path | str) -> Record:
    return parse_history(list(iter_lines(path)))

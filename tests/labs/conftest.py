"""Shared pieces of the seeded chaos tests: the bed's preconditions and the run-and-check every one of them does."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from labs.chaos.history import Record, read_history
from labs.chaos.runner import Outcome, run
from labs.chaos.schedule import Fault


def _require_bed(tools: Iterable[str], why: str) -> None:
    if os.geteuid() != 0:
        pytest.fail(f"the chaos run needs root ({why}); deselect with -m 'not integration'")
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run scripts/bootstrap.sh (make setup)")


@pytest.fixture
def require_bed() -> Callable[[Iterable[str], str], None]:
    """``require_bed(tools, why)``: fail (never skip) when the run cannot be made here: not root, or a tool
    of the bed missing. (A fixture: tests/labs cannot be a package, it would shadow the labs package.)"""
    return _require_bed


SeededRun = Callable[..., tuple[Outcome, Record]]


@pytest.fixture
def seeded_run(tmp_path: Path) -> SeededRun:
    """Play ``schedule`` on ``driver`` into tmp_path and check what every seeded run must show: the promise
    kept, samples from the start to the end no more than 50 ms apart, every scheduled fault recorded and
    ended, the timeline drawn. Returns the outcome and the history for the test's own assertions."""

    def _run(driver: Any, schedule: list[Fault], seed: int, duration: float, **extra: Any) -> tuple[Outcome, Record]:
        outcome = run(driver, schedule, tmp_path, seed=seed, duration=duration, **extra)
        print(outcome.table)
        assert outcome.result.ok, outcome.table
        record = read_history(tmp_path / "history.jsonl")
        gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(record.samples)]
        recorder = [n for n in record.notes if n.get("text") == "recorder"]
        print("recorder:", recorder, "probe costs:", record.meta.get("driver", {}).get("probe_costs"))
        assert record.samples[0]["t"] < 0.05 and record.samples[-1]["t"] > duration - 0.1
        assert max(gaps) <= 0.05, f"a sampling gap of {max(gaps) * 1000:.0f} ms; {recorder}"
        assert sorted(w.fault.id for w in record.faults) == [f.id for f in schedule]
        assert all(w.end is not None for w in record.faults)
        assert (tmp_path / "timeline.png").read_bytes()[:4] == b"\x89PNG"
        return outcome, record

    return _run

"""The runner against an in-memory driver whose heals are slow: a fault whose window passed is skipped, not squeezed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from labs.chaos.checker import Promise, check, text_report
from labs.chaos.history import read_history
from labs.chaos.runner import run
from labs.chaos.schedule import Fault, FaultKind


class SlowHealDriver:
    """Two nodes; ``a`` is active unless frozen. Healing fault 1 takes ``slow_heal`` s (a dockerd restart)."""

    system = "fake"
    supported = frozenset({FaultKind.FREEZE})
    nodes = ["a", "b"]
    sample_period = 0.02
    settle = 0.0

    def __init__(self, slow_heal: float) -> None:
        self.slow_heal = slow_heal
        self.frozen: set[str] = set()
        self.applied: list[tuple[int, float]] = []

    def promise(self) -> Promise:
        return Promise(system="fake", heal_bound=5.0, takeover_bound={FaultKind.FREEZE: 5.0},
                       liveness_waived={FaultKind.FREEZE})

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def probe(self) -> dict[str, Any]:
        return {"active": [] if "a" in self.frozen else ["a"]}

    def apply(self, fault: Fault, target: str, peer: str | None) -> dict[str, Any]:
        self.applied.append((fault.id, time.monotonic()))
        self.frozen.add(target)
        return {}

    def heal(self, fault: Fault, target: str, peer: str | None) -> None:
        if fault.id == 1:
            time.sleep(self.slow_heal)
        self.frozen.discard(target)

    def describe(self) -> dict[str, Any]:
        return {}


def _freeze(i: int, start: float, duration: float) -> Fault:
    return Fault(id=i, start=start, kind=FaultKind.FREEZE, target="a", duration=duration)


def test_a_fault_whose_window_passed_during_a_slow_heal_is_recorded_as_skipped(tmp_path: Path) -> None:
    # fault 1's heal at 0.3 s takes 0.6 s: fault 2 (0.4-0.6 s) has no window left, fault 3 (0.5-1.5 s) is
    # applied ~0.4 s late with more than half of its second left, fault 4 on time
    driver = SlowHealDriver(slow_heal=0.6)
    schedule = [_freeze(1, 0.1, 0.2), _freeze(2, 0.4, 0.2), _freeze(3, 0.5, 1.0), _freeze(4, 1.8, 0.2)]
    outcome = run(driver, schedule, tmp_path / "out", seed=1, duration=2.3)
    assert [i for i, _ in driver.applied] == [1, 3, 4]  # fault 2 never reached the driver
    record = read_history(tmp_path / "out" / "history.jsonl")
    by_id = {w.fault.id: w for w in record.faults}
    assert by_id[2].extra["skipped"] is True
    assert by_id[2].extra["why"].startswith("the schedule fell behind")
    assert by_id[2].extra["late_s"] > 0.4
    assert 0.3 < by_id[3].extra["late_s"] < 0.5
    assert "late_s" not in by_id[1].extra and "late_s" not in by_id[4].extra
    result = check(record, driver.promise())
    assert [w.fault.id for w in result.faults] == [1, 3, 4]
    assert result.skipped == {"the schedule fell behind": 1}
    assert "skipped 1 fault(s), not applied: 1 x the schedule fell behind" in text_report(result)
    assert outcome.result.skipped == result.skipped


def test_on_time_faults_are_all_applied_and_the_report_has_no_skipped_line(tmp_path: Path) -> None:
    driver = SlowHealDriver(slow_heal=0.0)
    schedule = [_freeze(1, 0.1, 0.2), _freeze(2, 0.4, 0.2)]
    outcome = run(driver, schedule, tmp_path / "out", seed=1, duration=0.8)
    assert [i for i, _ in driver.applied] == [1, 2]
    assert outcome.result.skipped == {}
    assert "skipped" not in outcome.table

"""ManagedAgents against a stand-in for platform.control (pure logic: which RPCs, in which order)."""

from __future__ import annotations

from typing import Any

import pytest

from failover_agent.managed import ManagedAgents


class Answer:
    def __init__(self, value: Any) -> None:
        self.value = value

    def get(self, timeout: float) -> Any:
        return self.value


class Control:
    """platform.control with one agent: ``stop_agent`` leaves it exited with ``rc_after_stop``."""

    def __init__(self, rc_after_stop: int) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.status: list[Any] = [4242, None]
        self.rc_after_stop = rc_after_stop

    def __call__(self, peer: str, method: str, *args: Any) -> Answer:
        assert peer == "platform.control"
        self.calls.append((method, args))
        if method == "identity_exists":
            return Answer("uuid-1")
        if method == "agent_status":
            return Answer(list(self.status))
        if method == "stop_agent":
            self.status = [4242, self.rc_after_stop]
        if method == "clear_status":
            self.status = [None, None]
        return Answer(None)


@pytest.mark.parametrize("rc", [-2, 1])
def test_a_stop_the_platform_records_as_a_crash_clears_the_record(rc: int) -> None:
    control = Control(rc_after_stop=rc)
    managed = ManagedAgents(control, ("ft.service",), None, timeout=1.0)
    managed.refresh()
    assert managed.stop_all() == ["ft.service"]
    methods = [m for m, _ in control.calls]
    assert methods[-3:] == ["stop_agent", "agent_status", "clear_status"]
    assert control.calls[-1] == ("clear_status", (True,))


def test_a_clean_stop_leaves_the_platform_records_alone() -> None:
    control = Control(rc_after_stop=0)
    managed = ManagedAgents(control, ("ft.service",), None, timeout=1.0)
    managed.refresh()
    assert managed.stop_all() == ["ft.service"]
    assert "clear_status" not in [m for m, _ in control.calls]

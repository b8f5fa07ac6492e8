"""Shutdown of both agents, as an operator upgrading both hosts does it (``systemctl stop`` = SIGTERM on each,
the passive first, the active within ``heartbeat_timeout``): the service must keep running somewhere.

Real agents on two real dockerd (labs.docker); repeated, because the lost service was a race.
"""

from __future__ import annotations

import signal

import pytest

from labs.docker import TwoHostLab

pytestmark = pytest.mark.integration

TRIALS = 3


@pytest.mark.parametrize("trial", range(TRIALS))
def test_stopping_the_passive_then_the_active_leaves_the_service_running(lab: TwoHostLab, make_pair,
                                                                         trial: int) -> None:
    pair = make_pair()
    with pair.explained():
        assert lab.stop_agent("b", signal.SIGTERM) == 0
        assert lab.stop_agent("a", signal.SIGTERM) == 0  # at once: well within heartbeat_timeout
        running = [k for k in ("a", "b") if lab.container_running(k)]
        assert running == ["a"], f"service runs on {running or 'no host'}"
        log_a = lab.agent_log_text("a")
        # the passive said it is leaving: the active did not stop its containers for a hand-over that cannot be
        assert "stopping web" not in log_a, log_a
        assert "leaving" in lab.agent_log_text("b")


def test_a_hand_over_that_fails_on_shutdown_leaves_the_containers_running(lab: TwoHostLab, make_pair) -> None:
    """The passive agent dies without a word (SIGKILL), the active is stopped within heartbeat_timeout: it
    still tries to hand over, the hand-over fails, and it starts its containers again before it exits."""
    pair = make_pair()
    with pair.explained():
        lab.stop_agent("b", signal.SIGKILL)
        assert lab.stop_agent("a", signal.SIGTERM) == 0
        log_a = lab.agent_log_text("a")
        assert "[handover_failed]" in log_a
        assert "ContainersStarted: started" in log_a.split("[handover_failed]")[-1]
        assert lab.container_running("a") and not lab.container_running("b")

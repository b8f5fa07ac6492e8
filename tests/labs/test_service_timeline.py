"""labs.docker.ServiceTimeline keeps only the daemons' events from its own start: the events API's ``since`` is
whole seconds (asked up to 2 s back), and a container stopped while the pair was set up, just before the
timeline started, was read as a death inside the test (a CI flake of test_docker_standard_lab.py)."""

from __future__ import annotations

from typing import Any, cast

from labs.docker import ServiceTimeline


def test_events_from_before_the_start_are_left_to_the_initial_state() -> None:
    timeline = ServiceTimeline(lab=cast(Any, None))
    timeline.started_at = 1000.5
    stream = [{"Action": "die", "timeNano": int(999.9e9)}, {"Action": "start", "timeNano": int(1000.2e9)},
              {"Action": "die", "timeNano": int(1001.0e9)}, {"status": "start", "timeNano": int(1002.0e9)},
              {"Action": "exec_start", "timeNano": int(1003.0e9)}]
    timeline._follow("a", iter(stream))
    assert timeline.events == [(1001.0, "a", "die"), (1002.0, "a", "start")]

"""Fixtures of the FailoverAgent tests: real VOLTTRON clusters, shared by the tests of one module.

Platforms run as the non-root user FT_VOLTTRON_USER (default volttron) from FT_PLATFORM_VENV
(default /opt/failover-toolkit/platform-venv); their homes are 0755 dirs under /tmp owned by that
user, removed at teardown (set FT_KEEP_PLATFORMS=1 to keep them for post-mortems).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("FT_VOLTTRON_USER", "volttron")
os.environ.setdefault("FT_PLATFORM_VENV", f"{os.environ.get('FT_PREFIX', '/opt/failover-toolkit')}/platform-venv")


class AlertLog:
    """Collects ``alerts/`` messages published on one platform (subscribed through an observer)."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def __call__(self, peer: str, sender: str, bus: str, topic: str, headers: Any, message: Any) -> None:
        body = json.loads(message) if isinstance(message, str) else message
        self.items.append({"topic": topic, "sender": sender, "key": (headers or {}).get("alert_key"),
                           "context": (body or {}).get("context"), "at": time.monotonic()})

    def contexts(self) -> list[str]:
        return [str(a["context"]) for a in self.items]


def make_cluster(mode: str, **kwargs: Any) -> Iterator[Any]:
    from labs.volttron_cluster import Cluster

    cluster = Cluster(mode, prefix=f"ft-agent-{mode}-", **kwargs)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def alert_log() -> AlertLog:
    return AlertLog()


def field(c: Any, node: str, *path: str) -> Any:
    """A field of a node's ``get_status`` (None if the node does not answer or the path is absent)."""
    value = c.status(node)
    for key in path:
        value = (value or {}).get(key)
    return value


def converged(c: Any) -> None:
    """Standard mode at rest: both agents hear each other and the witness, only the primary runs the service."""
    from labs.volttron_cluster import wait_for

    wait_for(lambda: all(field(c, n, "witness", "state") == "up" and field(c, n, "peer", "state") == "up"
                         for n in ("primary", "secondary")), 60, "both agents hear each other and the witness")
    wait_for(lambda: c.runners() == {"primary"}, 30, "only the primary runs the service")

"""Standard (witness-verified) mode on three real platforms: every documented cell under a fault.

One cluster for the module (heartbeat 1 s, timeout 4 s: the active's lease is 2.64 s, over two
heartbeats). The tests run in file order and each leaves the cluster converged again (primary runs the
service, all three platforms up) except where noted.
"Isolated from both" is produced by killing the two other platforms (by PID, with their agents):
from the isolated node's side that is the same silence as a cut link.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from failover_agent.config import DEFAULT_STOP_BOUND
from failover_core.fencing import FencingTiming
from labs.volttron_cluster import SERVICE, Cluster, wait_for

from .conftest import AlertLog, field, make_cluster

pytestmark = pytest.mark.integration
TIMEOUT = 4.0
LEASE = FencingTiming(timeout=TIMEOUT, stop_bound=DEFAULT_STOP_BOUND).lease  # 2.642 s
SLACK = 4.0


@pytest.fixture(scope="module")
def cluster():
    yield from make_cluster("standard", heartbeat_period=1.0, timeout=TIMEOUT)


def converged(c: Cluster) -> None:
    wait_for(lambda: field(c, "primary", "witness", "state") == "up"
             and field(c, "secondary", "witness", "state") == "up", 30, "both agents hear the witness")
    wait_for(lambda: c.runners() == {"primary"}, 30, "only the primary runs the service")


def decides(c: Cluster, node: str, code: str) -> None:
    """The node's decision reaches ``code`` (decisions are made each cycle: allow a few)."""
    wait_for(lambda: field(c, node, "decision", "code") == code, 5, f"{node} decides {code}")


def stays(c: Cluster, expected: set[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert c.runners() == expected


def restart_witness(c: Cluster) -> None:
    c.restart("witness")  # starts the platform and the witness agent


def test_converges_with_primary_active(cluster: Cluster) -> None:
    converged(cluster)
    decides(cluster, "primary", "primary.secondary_up.witness_up")
    decides(cluster, "secondary", "secondary.primary_up.witness_up")
    # the witness hears both, and (within a heartbeat) that the primary runs the service
    wait_for(lambda: (field(cluster, "witness", "heard") or {}).get("primary", {}).get("active") is True, 5,
             "the witness hears the active primary")
    assert set(field(cluster, "witness", "heard")) == {"primary", "secondary"}


def test_witness_down_changes_nothing(cluster: Cluster) -> None:
    converged(cluster)
    cluster.crash("witness")
    wait_for(lambda: field(cluster, "primary", "witness", "state") == "down"
             and field(cluster, "secondary", "witness", "state") == "down", TIMEOUT + SLACK, "witness seen down")
    stays(cluster, {"primary"}, 2.0)
    decides(cluster, "primary", "primary.secondary_up.witness_down")
    decides(cluster, "secondary", "secondary.primary_up.witness_down")
    restart_witness(cluster)
    converged(cluster)


def test_secondary_down_primary_keeps_running(cluster: Cluster) -> None:
    converged(cluster)
    cluster.crash("secondary")
    wait_for(lambda: field(cluster, "primary", "peer", "state") == "down", TIMEOUT + SLACK, "secondary seen down")
    stays(cluster, {"primary"}, 1.5)
    decides(cluster, "primary", "primary.secondary_down.witness_up")
    cluster.restart("secondary")
    converged(cluster)
    decides(cluster, "secondary", "secondary.primary_up.witness_up")


def test_primary_isolated_from_both_stops_its_agent(cluster: Cluster) -> None:
    converged(cluster)
    alerts = AlertLog()
    cluster.observer("primary").subscribe("alerts/", alerts)
    cluster.crash("secondary")
    cluster.crash("witness")
    t0 = time.monotonic()
    wait_for(lambda: cluster.service_running("primary") is False, LEASE + SLACK, "isolated primary fences itself")
    # its lease ran from its last acknowledged send (the witness's ack: within a heartbeat before the crash)
    assert time.monotonic() - t0 >= LEASE - 1.5
    wait_for(lambda: field(cluster, "primary", "last_transition", "code") == "primary.secondary_down.witness_down",
             5, "the fencing transition is recorded")
    wait_for(lambda: f"Secondary and witness are inactive stopping agent {SERVICE}" in alerts.contexts(), 5,
             "fencing alert")
    restart_witness(cluster)
    cluster.restart("secondary")
    converged(cluster)  # the primary starts again once it can see the others


def test_secondary_isolated_from_both_does_not_start(cluster: Cluster) -> None:
    converged(cluster)
    cluster.crash("primary")
    cluster.crash("witness")
    wait_for(lambda: field(cluster, "secondary", "peer", "state") == "down"
             and field(cluster, "secondary", "witness", "state") == "down", TIMEOUT + SLACK, "secondary alone")
    stays(cluster, set(), 2.0)
    # (a verification that was in flight when the witness died may end first as verify_failed: HOLD)
    decides(cluster, "secondary", "secondary.primary_down.witness_down")
    stays(cluster, set(), 1.0)
    # left as it is (primary and witness down) for the next test


def test_primary_down_witness_up_secondary_takes_over_then_fails_back(cluster: Cluster) -> None:
    if cluster.platforms["primary"].running:
        cluster.crash("primary")
    alerts = AlertLog()
    cluster.observer("secondary").subscribe("alerts/", alerts)
    if not cluster.platforms["witness"].running:
        restart_witness(cluster)
    t0 = time.monotonic()
    # a witness that just started has not heard the primary: it confirms only after its own timeout
    wait_for(lambda: cluster.service_running("secondary"), TIMEOUT + 2 * SLACK, "secondary takes over")
    assert time.monotonic() - t0 >= TIMEOUT - 1.0, "took over before the witness could know the primary is down"
    wait_for(lambda: field(cluster, "secondary", "last_transition", "code") == "secondary.verified.primary_down",
             5, "the takeover transition is recorded")
    status = cluster.status("secondary")
    assert status["witness"]["last_verdict"] == "primary_down"
    wait_for(lambda: f"Primary is inactive starting agent {SERVICE}" in alerts.contexts(), 5, "takeover alert")

    cluster.restart("primary")
    both = []

    def failed_back() -> bool:
        runners = cluster.runners()
        if len(runners) == 2:
            both.append(time.monotonic())
        return runners == {"primary"}

    wait_for(failed_back, 30, "failback to the primary", interval=0.05)
    assert not both, "both platforms ran the service during failback"
    wait_for(lambda: field(cluster, "secondary", "last_transition", "code") == "secondary.primary_up.witness_up",
             5, "the failback transition is recorded")
    converged(cluster)


def test_frozen_primary_is_replaced_and_the_overlap_after_it_thaws_is_short(cluster: Cluster) -> None:
    """SIGSTOP freezes the primary platform and its agents (the service too). The secondary takes
    over after the witness confirms. On SIGCONT the primary's service resumes running at once (no
    agent can prevent that without fencing the resource itself): the secondary must yield quickly."""
    converged(cluster)
    group = cluster.platforms["primary"].proc.pid
    os.killpg(group, signal.SIGSTOP)
    try:
        # the observer's link to the frozen platform is kept: ZeroMQ stalls and resumes on SIGCONT, and
        # every call on it is time-bounded. Rebuilding it here made the post-thaw check flaky (the new
        # connection to a just-thawed platform sometimes did not answer within the wait, while the
        # platform logs showed the secondary had already yielded).
        wait_for(lambda: cluster.service_running("secondary"), TIMEOUT + SLACK, "secondary replaces the frozen primary")
        wait_for(lambda: field(cluster, "secondary", "last_transition", "code") == "secondary.verified.primary_down",
                 5, "verified takeover recorded")
    finally:
        os.killpg(group, signal.SIGCONT)
    thawed = time.monotonic()
    wait_for(lambda: cluster.runners() == {"primary"}, 10, "one runner again after the thaw", interval=0.05)
    assert time.monotonic() - thawed < 2.0 + SLACK
    converged(cluster)

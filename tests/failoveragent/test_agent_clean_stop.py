"""A clean stop of a failover agent (``vctl stop``) on three real platforms, standard mode: a planned switchover.

The chaos finding of seed 20261128 (docs/chaos.md): ``vctl stop`` of the active primary's failover agent left
the service running there, and the secondary, verified by the witness, started beside it T later. Now the
stopping active hands over: it stops the service (within ``stop_bound``), tells the witness and then the
secondary that it is leaving and runs nothing, and the secondary starts at once. ``vctl start`` brings the
primary back as after any takeover: failback, the secondary releases first. A stopping passive says it leaves
and the active changes nothing.

Judged from both agents' log timestamps (same host clock) and a probe of both platforms while ``vctl stop``
runs; the figures are printed (``-s``) for docs/failoveragent.md.
"""

from __future__ import annotations

import datetime
import subprocess
import time

import gevent
import pytest

from labs.volttron_cluster import Cluster, LoggedTransition, wait_for

from .conftest import converged, field, make_cluster

pytestmark = pytest.mark.integration
TIMEOUT = 4.0


@pytest.fixture(scope="module")
def cluster():
    yield from make_cluster("standard", heartbeat_period=1.0, timeout=TIMEOUT)


def ms(later: datetime.datetime, earlier: datetime.datetime) -> float:
    return (later - earlier).total_seconds() * 1000


def first(c: Cluster, node: str, since: datetime.datetime, to_state: str) -> LoggedTransition | None:
    return next((t for t in c.transitions(node) if t.at >= since and t.to_state == to_state), None)


class Probe:
    """Samples who runs the service (both platforms, ``platform.control``) in a greenlet until stopped."""

    def __init__(self, c: Cluster) -> None:
        self.c, self.samples, self.both = c, [], []
        self.greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        while True:
            runners = self.c.runners()
            self.samples.append((time.monotonic(), runners))
            if len(runners) == 2:
                self.both.append(self.samples[-1][0])
            gevent.sleep(0.02)

    def stop(self) -> None:
        self.greenlet.kill()


def vctl_while_probing(c: Cluster, node: str, *args: str) -> float:
    """``vctl ARGS`` on ``node`` without blocking the probe's greenlet; returns how long it took (s)."""
    p = c.platforms[node]
    argv, user = p._command([str(p.venv / "bin" / "vctl"), *args])
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=p.env, cwd=p.root, user=user, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    while proc.poll() is None:
        gevent.sleep(0.02)
        assert time.monotonic() - started < 120, "vctl hangs"
    out, err = proc.communicate()
    assert proc.returncode == 0, (out, err)
    return time.monotonic() - started


def test_vctl_stop_of_the_active_primary_hands_over_at_once_and_vctl_start_fails_back(cluster: Cluster) -> None:
    converged(cluster)
    since = datetime.datetime.now()
    probe = Probe(cluster)
    t0 = time.monotonic()
    try:
        stop_s = vctl_while_probing(cluster, "primary", "stop", cluster.failover["primary"].uuid)
        wait_for(lambda: cluster.service_running("secondary"), 10, "the secondary takes over")
        took_over = time.monotonic() - t0
    finally:
        probe.stop()
    wait_for(lambda: first(cluster, "primary", since, "STOPPED"), 5, "the hand-over's stop is logged")
    stopped = first(cluster, "primary", since, "STOPPED")
    assert stopped is not None and stopped.code == "leave.handover", stopped
    wait_for(lambda: first(cluster, "secondary", since, "RUNNING") is not None, 5, "the takeover is logged")
    started = first(cluster, "secondary", since, "RUNNING")
    assert started.code == "secondary.verified.primary_down", started
    assert stopped.at < started.at, f"the secondary started {ms(stopped.at, started.at):.0f} ms before the stop"
    assert ms(started.at, stopped.at) < 2000, "the secondary did not start at once after the hand-over"
    assert not probe.both, "the probe saw both platforms run the service"
    assert took_over < 2.0 + 1.0, f"takeover {took_over:.2f}s after vctl stop began (not the timeout)"
    assert cluster.service_running("primary") is False
    witness_view = (field(cluster, "witness", "heard") or {}).get("primary", {})
    assert witness_view.get("state") == "down" and witness_view.get("active") is False, witness_view
    left = [ln for ln in cluster.log_lines("primary") if "left in" in ln]
    print(f"clean stop of the active primary: vctl stop {stop_s * 1000:.0f} ms, secondary running "
          f"{took_over * 1000:.0f} ms after it began (probe), logged gap stop -> start "
          f"{ms(started.at, stopped.at):.0f} ms; {left[-1].split(' - ')[-1] if left else ''}")

    # vctl start: the primary comes back beside the running secondary: failback, the secondary releases first
    since2 = datetime.datetime.now()
    probe = Probe(cluster)
    try:
        cluster.start_failover("primary")
        wait_for(lambda: cluster.runners() == {"primary"}, 30, "failback to the primary", interval=0.05)
    finally:
        probe.stop()
    # the agents' log lines reach the platform's log through its relay, a little after the fact
    wait_for(lambda: first(cluster, "secondary", since2, "STOPPED") and first(cluster, "primary", since2, "RUNNING"),
             5, "the failback is logged")
    released, restarted = first(cluster, "secondary", since2, "STOPPED"), first(cluster, "primary", since2, "RUNNING")
    assert released is not None and restarted is not None
    assert released.code == "secondary.primary_up.witness_up", released
    assert released.at < restarted.at and not probe.both
    print(f"failback after vctl start: secondary released {ms(restarted.at, released.at):.0f} ms before the "
          f"primary started")
    converged(cluster)


def test_vctl_stop_of_the_passive_secondary_changes_nothing_on_the_active(cluster: Cluster) -> None:
    converged(cluster)
    since = datetime.datetime.now()
    stop_s = vctl_while_probing(cluster, "secondary", "stop", cluster.failover["secondary"].uuid)
    wait_for(lambda: (field(cluster, "witness", "heard") or {}).get("secondary", {}).get("state") == "down", 3,
             "the witness records the leaving secondary as down at once")
    deadline = time.monotonic() + TIMEOUT + 1.0  # past the secondary's lease and the timeout
    while time.monotonic() < deadline:
        assert cluster.runners() == {"primary"}
        gevent.sleep(0.1)
    assert not [t for t in cluster.transitions("primary") if t.at >= since]
    assert any("peer.leaving" in ln for ln in cluster.log_lines("primary"))
    assert any("[leave.passive]" in ln for ln in cluster.log_lines("secondary"))
    print(f"clean stop of the passive secondary: vctl stop {stop_s * 1000:.0f} ms, the primary changed nothing")
    cluster.start_failover("secondary")
    converged(cluster)

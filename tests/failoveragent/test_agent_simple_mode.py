"""Simple mode on two real platforms (no witness): VOLTTRON's own failover scenarios, plus forged
heartbeats, a managed agent reinstalled with a new uuid, a malformed config, and a cut link's heal.

One cluster for the module (heartbeat 1 s, timeout 3 s, each platform in its own network namespace with
the advised ``net.ipv4.tcp_rto_max_ms``); each test leaves it converged (the primary runs the service, the
secondary does not) for the next.
"""

from __future__ import annotations

import datetime
import re
import time

import gevent
import pytest

from failover_agent.wire import Heartbeat, make_heartbeat
from failover_core.heartbeat_auth import HeartbeatSigner
from labs.volttron_cluster import FAILOVER, SERVICE, Cluster, Wheels, wait_for
from labs.volttron_platform import copy_agent_source

from .conftest import AlertLog, make_cluster

pytestmark = pytest.mark.integration
TIMEOUT = 3.0
SLACK = 4.0  # generous: 2 cores shared with other suites


@pytest.fixture(scope="module")
def cluster():
    yield from make_cluster("simple", heartbeat_period=1.0, timeout=TIMEOUT, netns=True)


def converged(c: Cluster) -> None:
    wait_for(lambda: c.runners() == {"primary"}, 30, "only the primary runs the service")


def test_starts_on_primary_only(cluster: Cluster) -> None:
    converged(cluster)
    wait_for(lambda: (cluster.status("primary") or {}).get("decision", {}).get("code") == "simple_primary.always"
             and (cluster.status("secondary") or {}).get("decision", {}).get("code")
             == "simple_secondary.primary_up", 5, "both decide their simple-mode cells")
    p, s = cluster.status("primary"), cluster.status("secondary")
    assert p["role"] == "simple_primary" and s["role"] == "simple_secondary"
    wait_for(lambda: (cluster.status("secondary") or {}).get("peer", {}).get("active") is True, 5,
             "primary says it is active")
    assert cluster.status("secondary")["peer"]["state"] == "up"


def test_forged_and_replayed_heartbeats_do_not_keep_a_silent_primary_alive(cluster: Cluster) -> None:
    converged(cluster)
    secondary_bus = cluster.observer("secondary")
    captured: list[dict] = []
    secondary_bus.subscribe("heartbeat/primary", lambda *a: captured.append(a[-1]))
    wait_for(lambda: captured, 5, "a real heartbeat of the primary seen on the secondary's bus")
    real = dict(captured[-1])
    alerts = AlertLog()
    secondary_bus.subscribe("alerts/", alerts)

    # the primary goes silent: its platform killed (a clean stop of its failover agent would hand over at once,
    # test_agent_clean_stop.py; a SIGKILL of the failover agent alone left the secondary waiting in 2 of ~5 runs,
    # cause not found yet: see the closing note)
    cluster.crash("primary")
    stopped_at = time.monotonic()
    forger = HeartbeatSigner("not-the-shared-secret")
    seq = 10**6
    while not cluster.service_running("secondary"):
        seq += 1  # a stranger claims to be the primary, every 0.2 s; and replays a real heartbeat
        forged = make_heartbeat(forger, Heartbeat("primary", "forged-boot", seq, time.time(), True))
        secondary_bus.publish("heartbeat/primary", forged)
        secondary_bus.publish("heartbeat/primary", real)
        gevent.sleep(0.2)
        assert time.monotonic() - stopped_at < TIMEOUT + SLACK, "secondary did not take over"
    took = time.monotonic() - stopped_at
    wait_for(lambda: (cluster.status("secondary") or {}).get("last_transition", {}).get("code")
             == "simple_secondary.primary_down", 5, "the takeover transition is recorded")
    status = cluster.status("secondary")
    assert status["rejected"].get("bad_mac", 0) >= 1
    assert status["rejected"].get("replayed", 0) >= 1
    assert took >= TIMEOUT - 1.5  # not earlier than the timeout allows (last heartbeat <= 1 s before the stop)
    wait_for(lambda: f"Primary is inactive starting agent {SERVICE}" in alerts.contexts(), 5, "takeover alert")

    # gives back when the primary's platform and failover agent return
    cluster.restart("primary")
    wait_for(lambda: not cluster.service_running("secondary"), 15 + SLACK, "secondary gives the service back")
    wait_for(lambda: f"Primary is active stopping agent {SERVICE}" in alerts.contexts(), 5, "failback alert")
    converged(cluster)


def test_primary_keeps_running_through_a_long_secondary_outage_and_stays_primary(cluster: Cluster) -> None:
    converged(cluster)
    cluster.crash("secondary")
    wait_for(lambda: (cluster.status("primary") or {}).get("peer", {}).get("state") == "down", TIMEOUT + SLACK,
             "primary sees the secondary down")
    assert cluster.runners() == {"primary"}
    assert cluster.status("primary")["decision"]["code"] == "simple_primary.always"  # the only cell it has
    # a long outage: the primary's link keeps retrying the dead platform for 15 s; the agent must stay
    # responsive on its own platform all along (rebuilding the link per failure broke that after ~10 s)
    end = time.monotonic() + 15
    while time.monotonic() < end:
        t0 = time.monotonic()
        status = cluster.status("primary")
        assert status is not None and time.monotonic() - t0 < 2.0, "the primary's agent stopped answering"
        assert status["managed"][0]["running"] is True and cluster.runners() == {"primary"}
        gevent.sleep(0.5)
    cluster.restart("secondary")
    wait_for(lambda: (cluster.status("secondary") or {}).get("peer", {}).get("state") == "up", 20,
             "restarted secondary hears the primary")
    assert cluster.runners() == {"primary"}  # the primary stays primary
    wait_for(lambda: (cluster.status("secondary") or {}).get("decision", {}).get("code")
             == "simple_secondary.primary_up", 5, "secondary decides primary up")


def test_secondary_takes_over_when_primary_platform_shuts_down_and_gives_back(cluster: Cluster) -> None:
    converged(cluster)
    cluster.shutdown("primary")  # the whole platform, cleanly (its agents stop too)
    t0 = time.monotonic()
    wait_for(lambda: cluster.service_running("secondary"), TIMEOUT + SLACK, "secondary takes over", interval=0.05)
    assert time.monotonic() - t0 <= TIMEOUT + SLACK
    cluster.restart("primary")
    both_seen = []

    def failed_back() -> bool:
        runners = cluster.runners()
        if runners == {"primary", "secondary"}:
            both_seen.append(time.monotonic())
        return runners == {"primary"}

    wait_for(failed_back, 30, "failback to the restarted primary", interval=0.05)
    assert not both_seen, "primary started before the secondary released the service (exclusive handover)"
    wait_for(lambda: (cluster.status("primary") or {}).get("service") == "running", 5, "primary records its start")


def test_chaos_agent_simple_seed_1_two_copies_end_within_a_heartbeat_of_a_cut_s_heal(cluster: Cluster) -> None:
    """Found by the 30-minute chaos run (agent, simple, seed 1): after cuts of 3.6 and 4.2 s between the
    platforms, both ran the service 3.8 and 2.1 s past the heal (the promise: one heartbeat + 0.5 s). The
    heartbeats ride ZeroMQ TCP connections that stay established through a dropping firewall, and the kernel's
    retransmission back-off (up to tcp_rto_max_ms, 120 s by default) held the first one back. Measured with
    an 8 s cut: 3.1-3.4 s to one copy at the kernel's default, 0.7-1.2 s with the advised 1000 ms (this
    cluster's namespaces have it). The cut here lasts 13 s, between two retransmissions at the default
    (about 12.6 and 25.4 s after the first lost segment): without the setting the first heartbeat crossed
    4.4-6.1 s after the heal in cuts of 12-14 s (0.9-12.4 s over cuts of 6-20 s), with it 0.06-1.15 s. Bound: a
    heartbeat + 2 s, to the decision and to one copy."""
    converged(cluster)
    try:
        cut = time.monotonic()
        cluster.cut("primary", "secondary")
        wait_for(lambda: cluster.runners() == {"primary", "secondary"}, TIMEOUT + SLACK,
                 "the secondary takes over in the cut (simple mode: two copies)", interval=0.05)
        gevent.sleep(max(0.0, 13.0 - (time.monotonic() - cut)))
    finally:
        healed_wall = datetime.datetime.now()
        healed = time.monotonic()
        cluster.heal("primary", "secondary")
    wait_for(lambda: cluster.runners() == {"primary"}, 30, "one copy after the heal", interval=0.05)
    one_copy = time.monotonic() - healed
    stop = [d for d in cluster.decisions("secondary") if d.at >= healed_wall and d.action == "stop"]
    assert stop and stop[0].code == "simple_secondary.primary_up", stop
    decided = (stop[0].at - healed_wall).total_seconds()
    print(f"heal -> secondary's stop decision {decided:.2f} s, -> one copy {one_copy:.2f} s")
    assert decided <= 1.0 + 2.0 and one_copy <= 1.0 + 2.0, (decided, one_copy)
    converged(cluster)


def test_chaos_agent_simple_seed_2_a_delay_of_1_4_s_is_not_a_cut(cluster: Cluster) -> None:
    """``python -m labs.chaos agent --mode simple --seed 2 --duration 100 --faults delay,dup``, fault #4: the
    secondary's sending delayed 1.1 s gave 2.1 s of two running. ``vip.pubsub.publish`` asked the remote router
    for its peer list and waited for the answer before it sent: two round trips, and ``remote_timeout`` (2 s)
    cut the publish before the heartbeat went out, both ways (the primary's publishes waited for the
    secondary's delayed answers). Now a heartbeat is one message, sent without waiting for the answer
    (failover_agent/remote.py). Replayed here: the secondary's sending held 1.4 s for 6 s (T 3 s, heartbeat
    1 s: a heartbeat arrives 2.4 s after the previous at worst): nobody decides anything, and the heartbeats
    keep arriving (without the fix the secondary decided to start about 3 s in)."""
    converged(cluster)
    assert cluster.segment is not None
    heard_before = cluster.status("primary")["peer"]["heartbeats"]
    started_wall = datetime.datetime.now()
    delay = cluster.segment.delay("secondary", queue=2, delay_ms=1400)
    try:
        gevent.sleep(6.0)
    finally:
        stats = delay.stop()
    assert stats.get("max_hold_ms", 0) >= 1300, stats  # the delay was there
    changed = [(n, d) for n in ("primary", "secondary") for d in cluster.decisions(n)
               if d.at >= started_wall and d.action in ("start", "stop")]
    assert changed == [], changed
    heard = cluster.status("primary")["peer"]["heartbeats"] - heard_before
    assert heard >= 5, f"the primary heard {heard} of the secondary's heartbeats in 6 s of delay"  # 0-2 before
    assert cluster.runners() == {"primary"}


TRANSITION = re.compile(r"^.*?: (\w+) -> (\w+) \(.*\) \[([^\]]+)\]$")


def test_notify_hook_ran_once_per_transition_in_order(cluster: Cluster) -> None:
    """After the takeover and failback above, each node's notify hook has run exactly once for each
    transition its agent announced, in the agent's order (the hook writes SEQ FROM TO CODE)."""
    for node in ("primary", "secondary"):
        history = (cluster.status(node) or {}).get("transitions") or []
        parsed = [TRANSITION.match(line) for line in history]
        assert all(parsed), history
        expected = [f"{frm} {to} {code}" for frm, to, code in (m.groups() for m in parsed if m)
                    if not (frm == "UNKNOWN" and code == "observed")]  # start-up observation: no event
        assert expected, f"{node} announced no transition in this module"

        def tail(node: str = node, expected: list[str] = expected) -> bool:
            lines = cluster.notified(node)
            return [line.split(" ", 1)[1] for line in lines[-len(expected):]] == expected

        wait_for(tail, 10, f"{node}'s notify hook caught up with its transitions")
        seqs = [int(line.split(" ", 1)[0]) for line in cluster.notified(node)[-len(expected):]]
        assert seqs == sorted(set(seqs)), f"hook runs out of order or twice: {seqs}"
    secondary = [line.split(" ", 1)[1] for line in cluster.notified("secondary")]
    assert "STOPPED RUNNING simple_secondary.primary_down" in secondary
    assert "RUNNING STOPPED simple_secondary.primary_up" in secondary


def test_primary_finds_its_managed_agent_after_reinstall(cluster: Cluster) -> None:
    converged(cluster)
    p = cluster.platforms["primary"]
    old = cluster.service["primary"]
    p.remove(old)
    wait_for(lambda: [m["uuid"] for m in (cluster.status("primary") or {}).get("managed", [])] == [None], 10,
             "primary notices the managed agent is gone")
    _, service_wheel = Wheels.get()
    cluster.service["primary"] = new = p.install(service_wheel, SERVICE, {}, tag="service")  # not started
    assert new.uuid != old.uuid
    wait_for(lambda: cluster.service_running("primary"), 10 + SLACK, "primary starts the reinstalled agent")
    managed = cluster.status("primary")["managed"]
    assert managed == [{"identity": SERVICE, "uuid": new.uuid, "running": True}]
    converged(cluster)


def test_malformed_config_is_reported_at_start(cluster: Cluster) -> None:
    p = cluster.platforms["primary"]
    alerts = AlertLog()
    cluster.observer("primary").subscribe("alerts/", alerts)
    failover_wheel, _ = Wheels.get()
    bad = cluster.failover_config("primary", heartbeat_period=5, timeout=3, no_such_key=1)
    # installed from the source directory (`vctl install DIR`: the platform builds it with poetry), not the wheel
    agent = p.install(copy_agent_source(p.root), f"{FAILOVER}.bad", bad, start=True)
    try:
        wait_for(lambda: any("Configuration error" in c for c in alerts.contexts()), 20, "config error alert")
        text = next(c for c in alerts.contexts() if "Configuration error" in c)
        assert "no_such_key" in text and "unknown key" in text
        status = cluster.observer("primary").call(f"{FAILOVER}.bad", "get_status")
        assert "no_such_key" in status["config_error"]
        assert cluster.runners() == {"primary"}  # the bad agent touched nothing
    finally:
        p.vctl("stop", agent.uuid)  # not `remove`: that uninstalls the package from the shared platform venv
    # an agent without a heartbeat_secret runs, and says so at start: a log line, an alert, its status
    # (it manages an agent that is not installed, so it touches nothing)
    quiet = {k: v for k, v in cluster.failover_config("primary", agent_vip_identity="ft.absent").items()
             if k != "heartbeat_secret"}
    agent = p.install(failover_wheel, f"{FAILOVER}.nosecret", quiet, start=True)
    try:
        wait_for(lambda: any(c.startswith("SECURITY: heartbeat_secret is not set") for c in alerts.contexts()), 20,
                 "the no-secret alert")
        status = cluster.observer("primary").call(f"{FAILOVER}.nosecret", "get_status")
        assert status["heartbeat_auth"] == "off" and "NOT authenticated" in status["security_warning"]
        assert any("SECURITY: heartbeat_secret is not set" in ln for ln in cluster.log_lines("primary"))
        assert cluster.runners() == {"primary"}
    finally:
        p.vctl("stop", agent.uuid)
    assert cluster.status("primary")["heartbeat_auth"] == "on" and cluster.status("primary")["security_warning"] is None
    # and the heartbeat_period >= timeout rule, reported with both values
    agent = p.install(failover_wheel, f"{FAILOVER}.bad2", cluster.failover_config("primary", heartbeat_period=5,
                                                                                  timeout=3), start=True)
    try:
        wait_for(lambda: any("heartbeat_period (5) must be less than timeout (3)" in c for c in alerts.contexts()),
                 20, "heartbeat_period alert")
    finally:
        p.vctl("stop", agent.uuid)


def test_chaos_seed_20262085_a_stop_during_the_service_start_up_is_not_undone_by_the_platform(cluster: Cluster) -> None:
    """The agent's chaos run (seed 20262085) found it: the secondary stopped the managed agent 0.2 s after
    starting it (the primary was back); the agent died of the SIGINT in its start-up, VOLTTRON's control
    service took that for a crash and restarted it (its monitor, every 10 s) beside the primary's copy,
    again and again. The failover agent now clears the platform's crash record after such a stop."""
    converged(cluster)
    sec = cluster.platforms["secondary"]
    delay = sec.vhome / "ft-service-startup-delay"
    delay.write_text("3")
    try:
        uuid = cluster.observer("secondary").call("platform.control", "identity_exists", SERVICE)
        before = len(cluster.log_lines("secondary"))
        sec.vctl("start", uuid)  # an operator's slip: the secondary's agent stops it during its 3 s start-up
        # the service's start-up died of the stop's SIGINT (its traceback in the platform's log)
        wait_for(lambda: any("KeyboardInterrupt" in line for line in cluster.log_lines("secondary")[before:]), 10,
                 "the secondary's failover agent stopped the service during its start-up")
        # the traceback is printed before the process has exited and been reaped: wait for that first
        wait_for(lambda: cluster.service_running("secondary") is False, 10, "the stopped service has exited")
        seen_running = []
        end = time.monotonic() + 14.0  # > the control service's monitor period (10 s) and a restart
        while time.monotonic() < end:
            if cluster.service_running("secondary"):
                seen_running.append(round(end - time.monotonic(), 1))
            gevent.sleep(0.2)
        assert seen_running == [], "the platform started the stopped service again on the secondary"
        assert any("the platform recorded a crash" in line for line in cluster.log_lines("secondary")[before:])
    finally:
        delay.unlink(missing_ok=True)
    converged(cluster)

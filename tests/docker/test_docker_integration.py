"""DockerFailover on two real dockerd (one per network namespace), agents as real processes.

Timings of the lab's agents: heartbeat every 0.2 s, timeout 1 s, restart grace 3 s, start-up grace 5 s.
Bounds are generous (timeout + MARGIN) because other suites load the machine at the same time;
the figures themselves are measured in bench/docker.py.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
import requests

from DockerFailover.wire import RequestAuthenticator, encode_body
from labs.docker import HB_INTERVAL, HB_TIMEOUT, MARGIN, RESTART_GRACE, TwoHostLab, wait_until

pytestmark = pytest.mark.integration


def serving(lab: TwoHostLab) -> tuple[bool, bool]:
    return lab.web_answers("a"), lab.web_answers("b")


def wait_b_takes_over(lab: TwoHostLab, pair, bound: float) -> float:
    t0 = time.monotonic()
    try:
        wait_until(lambda: lab.role("b") == "active" and lab.web_answers("b"), bound, what="B active and serving")
    except TimeoutError:
        raise AssertionError(pair.logs()) from None
    return time.monotonic() - t0


def test_cold_start_server1_active_only_a_runs_the_container(lab: TwoHostLab, make_pair) -> None:
    pair = make_pair()
    st_a, st_b = lab.status("a"), lab.status("b")
    assert st_a is not None and st_b is not None
    assert st_a["term"] == st_b["term"] == 1
    assert st_a["last_transition"]["code"] == "cold_start_candidate"
    assert st_b["peer"]["role"] == "active" and st_b["peer"]["state"] == "up"
    wait_until(lambda: lab.status("a")["containers"]["web"]["state"] == "up", 5, what="web healthy")
    assert lab.container_running("a") and not lab.container_running("b")
    assert requests.get(lab.hosts["a"].agent_url + "/health", timeout=2).json()["ok"] is True
    del pair


def test_agent_killed_b_takes_over_and_a_returns_passive(lab: TwoHostLab, make_pair) -> None:
    pair = make_pair()
    lab.stop_agent("a", signal.SIGKILL)
    took = wait_b_takes_over(lab, pair, HB_TIMEOUT + MARGIN)
    assert took <= HB_TIMEOUT + MARGIN
    st_b = lab.status("b")
    assert st_b["last_transition"]["code"] == "peer_heartbeat_lost" and st_b["term"] == 2
    assert lab.container_running("a")  # a dead agent stops nothing: A's container still runs
    pair.start("a")
    try:
        wait_until(lambda: lab.role("a") == "passive" and not lab.container_running("a"), 10,
                   what="A back as passive with its stray container stopped")
    except TimeoutError:
        raise AssertionError(pair.logs()) from None
    st_a = lab.status("a")
    assert st_a["term"] == 2 and st_a["last_transition"]["code"] == "peer_active"
    assert "stray_containers" in [a["code"] for a in st_a["alerts"]]
    assert lab.role("b") == "active" and lab.web_answers("b")


def test_link_cut_b_takes_over_then_one_active_after_heal(lab: TwoHostLab, make_pair) -> None:
    pair = make_pair()
    with pair.explained():
        lab.cut_link("a")
        wait_b_takes_over(lab, pair, HB_TIMEOUT + MARGIN)
        # a real split: A cannot tell a cut link from a dead peer and keeps serving
        assert lab.role("a") == "active" and lab.container_running("a")
        lab.heal_link("a")
        t0 = time.monotonic()
        try:
            wait_until(lambda: pair.roles() == ("passive", "active"), HB_INTERVAL + MARGIN, interval=0.02,
                       what="exactly one active after the heal")
        except TimeoutError:
            raise AssertionError(pair.logs()) from None
        resolved = time.monotonic() - t0
        assert lab.status("a")["last_transition"]["code"] == "higher_term"
        wait_until(lambda: not lab.container_running("a"), 10, what="A's container stopped")
        assert lab.container_running("b"), f"{lab.status('b')}\n{pair.logs()}"
        print(f"split resolved {resolved:.2f}s after the heal")


def test_split_with_equal_terms_resolves_to_server1(lab: TwoHostLab, make_pair) -> None:
    """Both agents started while partitioned: both become active in term 1; after the heal one remains."""
    pair = make_pair(start=False)
    lab.cut_link("a")
    pair.start("a")
    pair.start("b")
    try:
        wait_until(lambda: pair.roles() == ("active", "active"), 20, what="both active while partitioned")
        assert lab.status("a")["term"] == lab.status("b")["term"] == 1
        lab.heal_link("a")
        wait_until(lambda: pair.roles() == ("active", "passive"), HB_INTERVAL + MARGIN, interval=0.02,
                   what="one active after the heal")
        assert lab.status("b")["last_transition"]["code"] == "split_brain_tiebreak"
        wait_until(lambda: not lab.container_running("b"), 10, what="B's container stopped")
    except TimeoutError:
        raise AssertionError(pair.logs()) from None
    finally:
        for k in ("a", "b"):
            lab.stop_agent(k, signal.SIGKILL)


def test_container_killed_without_restart_policy_hands_over(lab: TwoHostLab, make_pair) -> None:
    pair = make_pair()
    lab.hosts["a"].client.containers.get("web").kill()
    wait_b_takes_over(lab, pair, MARGIN)
    st_a = lab.status("a")
    assert st_a["role"] == "passive" and st_a["last_transition"]["code"] == "handed_over"
    codes = [t["code"] for t in st_a["transitions"]]
    assert codes[-2:] == ["container_failed", "handed_over"]
    assert lab.status("b")["last_transition"]["code"] == "handover_accepted"
    assert not lab.container_running("a")


def test_container_restarted_by_docker_within_grace_stays(lab: TwoHostLab, make_pair) -> None:
    pair = make_pair(restart_policy="on-failure")
    pid = lab.container_pid("a")
    os.kill(pid, signal.SIGKILL)  # the app crashes (exit 137): Docker's policy restarts it
    wait_until(lambda: lab.container_running("a") and lab.container_pid("a") != pid, 10, what="Docker restart")
    try:
        wait_until(lambda: lab.status("a")["containers"]["web"]["state"] == "up", 10, what="web healthy again")
    except TimeoutError:
        raise AssertionError(f"{lab.status('a')}\n{pair.logs()}") from None
    time.sleep(3.5)  # longer than restart_grace_period: nothing may happen
    assert pair.roles() == ("active", "passive")
    assert lab.status("a")["term"] == 1
    assert lab.hosts["a"].client.api.inspect_container("web")["RestartCount"] >= 1


def test_container_under_restart_policy_not_back_within_grace_hands_over(lab: TwoHostLab, make_pair) -> None:
    pair = make_pair(restart_policy="on-failure")
    # every restart fails at once: remove httpd's document root, then crash it
    c = lab.hosts["a"].client.containers.get("web")
    c.exec_run(["rm", "/bin/httpd"])
    t0 = time.monotonic()
    os.kill(lab.container_pid("a"), signal.SIGKILL)
    wait_b_takes_over(lab, pair, RESTART_GRACE + MARGIN)
    took = time.monotonic() - t0
    assert took >= RESTART_GRACE - 0.3, f"handed over after {took:.2f}s, before the restart grace"
    codes = [t["code"] for t in lab.status("a")["transitions"]]
    assert codes[-2:] == ["container_failed", "handed_over"]


def test_unhealthy_container_counts_as_down(lab: TwoHostLab, make_pair) -> None:
    pair = make_pair()
    lab.hosts["a"].client.containers.get("web").exec_run(["rm", "/www/index.html"])
    wait_b_takes_over(lab, pair, 4 + MARGIN)  # HEALTHCHECK: 1 s interval, 3 retries
    st_a = lab.status("a")
    reason = next(t for t in st_a["transitions"] if t["code"] == "container_failed")["reason"]
    assert "unhealthy" in reason


def test_forged_replayed_and_stale_requests_get_401_and_change_nothing(lab: TwoHostLab, make_pair) -> None:
    pair = make_pair()
    url_b = lab.hosts["b"].agent_url
    before = lab.status("b")
    secret = pair.config.read_text().split("secret = '")[1].split("'")[0]
    forged = {"sender": "server1", "term": 99, "role": "active", "eligible": True, "containers_up": True}
    body = encode_body(forged)
    wrong = RequestAuthenticator("not-the-shared-secret-0000", 30)

    def post(path: str, body: bytes, headers: dict[str, str]) -> int:
        return requests.post(url_b + path, data=body, headers=headers, timeout=2).status_code

    h = wrong.sign_request("POST", "/heartbeat", body, wall_now=time.time(), nonce="f" * 32)
    assert post("/heartbeat", body, h) == 401
    assert post("/heartbeat", body, {}) == 401
    bp = encode_body({"sender": "server1", "term": 99, "reason": "forged"})
    assert post("/become_primary", bp, wrong.sign_request("POST", "/become_primary", bp, wall_now=time.time(),
                                                          nonce="e" * 32)) == 401
    right = RequestAuthenticator(secret, 30)
    stale = right.sign_request("POST", "/become_primary", bp, wall_now=time.time() - 120, nonce="d" * 32)
    assert post("/become_primary", bp, stale) == 401
    # a genuine request captured and replayed: the first copy passes (it is a true passive heartbeat), the
    # replay is refused
    real = encode_body({"sender": "server1", "term": 1, "role": "active", "eligible": True, "containers_up": True,
                        "boot": "test-boot", "seq": 100})
    h = right.sign_request("POST", "/heartbeat", real, wall_now=time.time(), nonce="c" * 32)
    assert post("/heartbeat", real, h) == 200
    assert post("/heartbeat", real, h) == 401
    # a genuine but older heartbeat (delivered late, e.g. retransmitted after a cut link heals) is answered (the
    # peer was alive when it sent it) but not learnt: B's view of its peer still says "active"
    late = encode_body({"sender": "server1", "term": 1, "role": "passive", "eligible": True, "containers_up": False,
                        "boot": "test-boot", "seq": 99})
    h = right.sign_request("POST", "/heartbeat", late, wall_now=time.time(), nonce="b" * 32)
    assert post("/heartbeat", late, h) == 200
    assert (lab.status("b") or {})["peer"]["role"] == "active"
    # authenticated but malformed: 400, counted, nothing changes, the agent lives on
    for junk in (b"not json", encode_body({"sender": "server1", "term": "x", "role": "active"}),
                 encode_body({"sender": "intruder", "term": 5, "role": "active", "eligible": True,
                              "containers_up": True})):
        h = right.sign_request("POST", "/heartbeat", junk, wall_now=time.time(), nonce=os.urandom(16).hex())
        assert post("/heartbeat", junk, h) == 400
    after = lab.status("b")
    assert (after["role"], after["term"]) == (before["role"], before["term"]) == ("passive", 1)
    assert after["rejected"].get("malformed", 0) >= 2 and after["rejected"].get("wrong_sender", 0) >= 1
    assert after["rejected"].get("replayed", 0) >= 1  # the copy (nonce)
    assert after["rejected"].get("bad_mac", 0) >= 2 and after["rejected"].get("replayed", 0) >= 1
    assert after["rejected"].get("stale", 0) >= 1 and after["rejected"].get("unauthenticated", 0) >= 1
    assert not lab.container_running("b") and pair.roles() == ("active", "passive")


def test_dockerd_killed_on_a_no_takeover_while_heartbeats_go_on(lab: TwoHostLab, make_pair) -> None:
    pair = make_pair()
    lab.kill_dockerd("a")
    try:
        wait_until(lambda: (lab.status("a") or {}).get("docker") == "unreachable", 5, what="A reports docker down")
        deadline = time.monotonic() + 3 * HB_TIMEOUT + 1
        while time.monotonic() < deadline:
            assert pair.roles() == ("active", "passive"), pair.logs()
            assert lab.web_answers("a")  # the service lives on without its daemon
            time.sleep(0.1)
        st_a, st_b = lab.status("a"), lab.status("b")
        assert "docker_unreachable" in [x["code"] for x in st_a["alerts"]]
        assert st_b["peer"]["eligible"] is False and st_b["term"] == 1
        assert requests.get(lab.hosts["a"].agent_url + "/health", timeout=2).status_code == 503
    finally:
        lab.restart_dockerd("a")
    wait_until(lambda: (lab.status("a") or {}).get("docker") == "ok", 10, what="A sees docker again")
    # without live-restore the restarted daemon stops the orphaned container: whoever ends up active serves
    try:
        wait_until(lambda: sorted(pair.roles()) == ["active", "passive"]
                   and lab.web_answers("a" if lab.role("a") == "active" else "b"), 5 + MARGIN,
                   what="one active, serving, after the daemon restart")
    except TimeoutError:
        raise AssertionError(pair.logs()) from None


def test_notify_runs_once_per_transition_in_order(lab: TwoHostLab, make_pair, tmp_path) -> None:
    out = tmp_path / "notified"
    hook = tmp_path / "hook.sh"
    hook.write_text(f'#!/bin/sh\necho "$1 $FAILOVER_SEQ $2 $3 $FAILOVER_CODE term=$FAILOVER_TERM" >> {out}\n')
    hook.chmod(0o755)
    pair = make_pair(notify=str(hook))
    lab.hosts["a"].client.containers.get("web").kill()
    wait_b_takes_over(lab, pair, MARGIN)
    expect = ["server1 1 STARTING ACTIVE cold_start_candidate term=1",
              "server1 2 ACTIVE HANDING_OVER container_failed term=1",
              "server1 3 HANDING_OVER PASSIVE handed_over term=2", "server2 1 STARTING PASSIVE peer_active term=1",
              "server2 2 PASSIVE ACTIVE handover_accepted term=2"]

    def lines() -> list[str]:
        return sorted(out.read_text().splitlines()) if out.exists() else []
    try:
        wait_until(lambda: lines() == expect, 10, what="the five notify calls")
    except TimeoutError:
        raise AssertionError(f"{lines()}\n{pair.logs()}") from None
    # the term the containers were started under, where the operator can bind-mount it
    assert (lab.hosts["a"].dir / "service" / "term").read_text() == "1\n"
    assert (lab.hosts["b"].dir / "service" / "term").read_text() == "2\n"


def test_sigterm_of_the_active_agent_hands_over_at_once(lab: TwoHostLab, make_pair) -> None:
    pair = make_pair()
    t0 = time.monotonic()
    assert lab.stop_agent("a", signal.SIGTERM) == 0
    wait_b_takes_over(lab, pair, MARGIN)
    st_b = lab.status("b")
    # a hand-over, not a heartbeat timeout: A's container was stopped before B started its own
    assert st_b["last_transition"]["code"] == "handover_accepted", pair.logs()
    assert not lab.container_running("a")
    assert "shutdown" in lab.agent_log_text("a")
    print(f"B serving {time.monotonic() - t0:.2f}s after SIGTERM to A")


def test_failback_to_server1_after_the_hold_down(lab: TwoHostLab, make_pair) -> None:
    pair = make_pair(failback=True, failback_hold_down=1.5)
    lab.stop_agent("a", signal.SIGKILL)
    wait_b_takes_over(lab, pair, HB_TIMEOUT + MARGIN)
    pair.start("a")
    try:
        wait_until(lambda: lab.role("a") == "passive", 10, what="A back as passive")
        t_passive = time.monotonic()
        wait_until(lambda: pair.roles() == ("active", "passive") and lab.web_answers("a"), 1.5 + MARGIN,
                   what="failback to A")
    except TimeoutError:
        raise AssertionError(pair.logs()) from None
    assert time.monotonic() - t_passive >= 1.5 - 0.5  # not before the hold-down
    codes_b = [t["code"] for t in lab.status("b")["transitions"]]
    assert codes_b[-2:] == ["failback", "handed_over"]
    wait_until(lambda: not lab.container_running("b"), 10, what="B's container stopped")


def test_unconfirmed_hand_over_restarts_on_a_and_frozen_b_does_not_take_over_late(lab: TwoHostLab,
                                                                                 make_pair) -> None:
    """B frozen (SIGSTOP) when A's container dies: A's hand-over goes unanswered, so A starts its container
    again; when B thaws it must not act on the stale hand-over request or on the silence it slept through."""
    pair = make_pair()
    b_agent = lab.hosts["b"].agent
    assert b_agent is not None
    with pair.explained():
        os.kill(b_agent.pid, signal.SIGSTOP)
        try:
            lab.hosts["a"].client.containers.get("web").kill()
            wait_until(lambda: lab.container_running("a") and lab.role("a") == "active", 3 + MARGIN,
                       what="A active again with its container restarted")
            codes = [t["code"] for t in lab.status("a")["transitions"]]
            assert codes[-2:] == ["container_failed", "handover_failed"]
        finally:
            os.kill(b_agent.pid, signal.SIGCONT)
        wait_until(lambda: lab.status("b") is not None, 5, what="B answers again")
        deadline = time.monotonic() + 3 * HB_TIMEOUT
        while time.monotonic() < deadline:
            assert pair.roles() == ("active", "passive")
            time.sleep(0.1)
        st_b = lab.status("b")
        assert "stalled" in [a["code"] for a in st_b["alerts"]] and st_b["term"] == 1
        assert lab.web_answers("a") and not lab.container_running("b")
        log_b = lab.agent_log_text("b")
        assert ": accepted" not in log_b  # the queued hand-over request, if it got through, was refused

"""Benchmark of DockerFailover on two real dockerd (network namespaces): how fast does B serve?

Trials (N each, default 10; ``BENCH_TRIALS`` or ``--trials``):
  (a) heartbeat loss: host A dies (its agent SIGKILLed and its container killed at the same instant)
  (b) container death: the web container on the active host A is SIGKILLed (restart policy "no")
measured from the fault to the first HTTP 200 from the web container on B (polled every 10 ms).
With ``--standard`` also, with a witness process in a third namespace (standard mode):
  (c) host A dies (agent and container SIGKILLed), as (a)
  (d) host A isolated (iptables drops everything between A and both B and the witness)
with heartbeat_timeout ``STANDARD_HB_TIMEOUT`` (1.5 s: the active's lease, T - fencing margin, must exceed two
heartbeats), against the standard floor ``heartbeat_timeout + container start`` (the passive and the witness call
the active gone T after its last heartbeat; the fencing margin comes off the active's lease) and the issue's
bound ``heartbeat_timeout + container start + 0.5 s``, the container start measured in the same run.

Reference measured in the same run: the floor ``heartbeat_timeout + container start time``, where
the container start time is ``docker start`` on B until its web answers to a client that is already
polling, as in the trials (median of N; the time for a first request sent only after the start is
printed too: it is ~0.8 s shorter, see container_start_time). Goal from
the issue: p95 within 0.5 s of the floor. For comparison, the tool this replaces polls every
5-10 s and needs ~25 s (heartbeat loss) and ~50 s (container death) with its defaults.

Run: ``make bench BENCH=docker`` (root; sets up and tears down its own hosts).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from failover_core.fencing import FencingTiming
from labs.docker import KILL_BOUND, STANDARD_HB_TIMEOUT, TwoHostLab, wait_until

HB_INTERVAL, HB_TIMEOUT = 0.2, 1.0


def p95(xs: list[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(0.95 * len(s)) - 1))]


def first_answer(lab: TwoHostLab, key: str, since: float, limit: float) -> float:
    """Seconds from ``since`` until the web on ``key`` answers 200 (polled every 10 ms)."""
    url = lab.hosts[key].web_url
    with requests.Session() as s:
        while time.monotonic() - since < limit:
            try:
                if s.get(url, timeout=0.2).status_code == 200:
                    return time.monotonic() - since
            except requests.RequestException:
                pass
            time.sleep(0.01)
    raise TimeoutError(f"{key} did not answer within {limit}s")


def container_start_time(lab: TwoHostLab, client_already_polling: bool) -> float:
    """``docker start`` on B until its web answers. With a client already polling (as in the trials) the
    first answer comes ~0.8 s later than without: connections that arrive while Docker wires the port
    stall on the container's not-yet-resolved neighbour entry (a kernel/Docker effect a real client sees)."""
    c = lab.hosts["b"].client
    assert c is not None
    result: list[float] = []
    if client_already_polling:
        t_start = time.monotonic() + 0.3
        poller = threading.Thread(target=lambda: result.append(first_answer(lab, "b", t_start, 10)))
        poller.start()
        time.sleep(max(0.0, t_start - time.monotonic()))
        c.api.start("web")
        poller.join()
    else:
        t0 = time.monotonic()
        c.api.start("web")
        result.append(first_answer(lab, "b", t0, 10))
    c.api.stop("web", timeout=2)
    return result[0]


def fresh_pair(lab: TwoHostLab, cfg: Path) -> None:
    for key in ("a", "b"):
        lab.stop_agent(key, signal.SIGKILL)
        state = lab.hosts[key].dir / "state"
        for f in state.glob("*.term") if state.exists() else ():
            f.unlink()
    lab.create_web()
    lab.start_agent("a", cfg)
    lab.start_agent("b", cfg)
    wait_until(lambda: lab.role("a") == "active" and lab.role("b") == "passive" and lab.web_answers("a")
               and (lab.status("a") or {}).get("containers", {}).get("web", {}).get("state") == "up", 30,
               what="A active and healthy")
    time.sleep(2 * HB_INTERVAL)  # a steady heartbeat rhythm before the fault


def trial_heartbeat_loss(lab: TwoHostLab, cfg: Path) -> float:
    fresh_pair(lab, cfg)
    agent = lab.hosts["a"].agent
    assert agent is not None
    pid = lab.container_pid("a")
    t0 = time.monotonic()
    os.kill(agent.pid, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)  # the host dies: agent and service together
    return first_answer(lab, "b", t0, 20)


def trial_isolation(lab: TwoHostLab, cfg: Path) -> float:
    lab.heal_all()
    fresh_pair(lab, cfg)
    time.sleep(1.0)  # B's witness answers say A is up
    t0 = time.monotonic()
    for other in ("b", "w"):
        lab.cut("a", other)
    try:
        return first_answer(lab, "b", t0, 20)
    finally:
        lab.heal_all()


def trial_container_death(lab: TwoHostLab, cfg: Path) -> float:
    fresh_pair(lab, cfg)
    pid = lab.container_pid("a")
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    return first_answer(lab, "b", t0, 20)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=int(os.environ.get("BENCH_TRIALS", "10")))
    ap.add_argument("--standard", action="store_true", help="also standard mode (a witness): trials (c) and (d)")
    args = ap.parse_args(argv)
    n = args.trials
    with TwoHostLab() as lab, tempfile.TemporaryDirectory() as tmp:
        cfg = lab.write_config(Path(tmp) / "config.py", heartbeat_interval=HB_INTERVAL, heartbeat_timeout=HB_TIMEOUT,
                               check_heartbeat_interval=0.2)
        lab.create_web()
        quiet = [container_start_time(lab, client_already_polling=False) for _ in range(n)]
        starts = [container_start_time(lab, client_already_polling=True) for _ in range(n)]
        start_med = statistics.median(starts)
        floor = HB_TIMEOUT + start_med
        print(f"DockerFailover bench: {n} trials each; heartbeat_interval {HB_INTERVAL}s, "
              f"heartbeat_timeout {HB_TIMEOUT}s")
        print(f"reference: docker start on B -> HTTP 200, client polling already (as in the trials): median "
              f"{start_med:.3f}s p95 {p95(starts):.3f}s (first request only after the start: median "
              f"{statistics.median(quiet):.3f}s)")
        print(f"floor = heartbeat_timeout + container start = {floor:.3f}s")
        results = {}
        for label, fn in (("(a) heartbeat loss (agent + container on A killed)", trial_heartbeat_loss),
                          ("(b) container death on A (restart policy no)", trial_container_death)):
            xs = []
            for i in range(n):
                x = fn(lab, cfg)
                xs.append(x)
                print(f"  {label[:3]} trial {i + 1}: {x:.3f}s", flush=True)
            results[label] = xs
        std_results: dict[str, list[float]] = {}
        if args.standard:
            lab.start_witness(timeout=STANDARD_HB_TIMEOUT)
            std_cfg = lab.write_config(Path(tmp) / "standard.py", witness=True, heartbeat_interval=HB_INTERVAL,
                                       heartbeat_timeout=STANDARD_HB_TIMEOUT, check_heartbeat_interval=0.2)
            for label, fn in (("(c) standard: host A dies (agent + container)", trial_heartbeat_loss),
                              ("(d) standard: host A isolated (iptables)", trial_isolation)):
                xs = []
                for i in range(n):
                    x = fn(lab, std_cfg)
                    xs.append(x)
                    print(f"  {label[:3]} trial {i + 1}: {x:.3f}s", flush=True)
                std_results[label] = xs
        for key in ("a", "b"):
            lab.stop_agent(key, signal.SIGKILL)
    print()
    print(f"{'scenario':52} {'median':>8} {'p95':>8} {'max':>8} {'p95-floor':>10} {'p95/floor':>10}")
    ok = True
    for label, xs in results.items():
        med, q95 = statistics.median(xs), p95(xs)
        print(f"{label:52} {med:8.3f} {q95:8.3f} {max(xs):8.3f} {q95 - floor:+10.3f} {q95 / floor:10.2f}")
        ok &= q95 - floor <= 0.5
    print(f"{'floor (heartbeat_timeout + container start)':52} {floor:8.3f}")
    print(f"goal p95 <= floor + 0.5 s: {'met' if ok else 'NOT met'} "
          f"(documented original: ~25 s heartbeat loss, ~50 s container death)")
    if std_results:
        timing = FencingTiming(timeout=STANDARD_HB_TIMEOUT, stop_bound=KILL_BOUND)
        std_floor = timing.down_after + start_med  # down_after == heartbeat_timeout
        bound = std_floor + 0.5
        print()
        print(f"standard mode: heartbeat_timeout {STANDARD_HB_TIMEOUT}s, kill_bound {KILL_BOUND}s -> the active's "
              f"lease {timing.lease:.3f}s (fencing margin {timing.margin:.3f}s)")
        print(f"{'scenario':52} {'median':>8} {'p95':>8} {'max':>8} {'p50-floor':>10} {'p95-floor':>10} "
              f"{'p95-bound':>10}")
        std_ok = True
        for label, xs in std_results.items():
            med, q95 = statistics.median(xs), p95(xs)
            print(f"{label:52} {med:8.3f} {q95:8.3f} {max(xs):8.3f} {med - std_floor:+10.3f} "
                  f"{q95 - std_floor:+10.3f} {q95 - bound:+10.3f}")
            std_ok &= q95 <= bound
        print(f"{'standard floor (heartbeat_timeout + container start)':52} {std_floor:8.3f}")
        print(f"{'issue bound (heartbeat_timeout + start + 0.5 s)':52} {bound:8.3f}")
        print(f"standard goal p95 <= heartbeat_timeout + container start + 0.5 s: {'met' if std_ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

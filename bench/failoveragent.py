"""Bench: "primary platform killed -> managed agent running on the secondary", N trials.

Standard mode on three real platforms (loopback). Each trial: wait until the primary runs the
service and both agents hear each other and the witness; SIGKILL the primary platform with its
agents; poll the secondary's platform.control every 20 ms until the service runs there; restart
the primary and wait for failback. Prints median and p95 takeover, the ratio to the configured
timeout, and a reference measured in the same run: how long platform.control takes to bring the
same service agent from "start" to "running" on its own (the floor under any takeover).

    python -m bench.failoveragent [--trials 10] [--timeout 4] [--heartbeat-period 1]
Goal (issue 3): p95 <= timeout + start + 0.5 s (start: the reference). The default timeout 4 s leaves the
active a lease of 2.64 s, over two heartbeats (``FencingTiming.lease_problem``: 3 s would warn).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

import gevent

from labs.volttron_cluster import OBSERVER, SERVICE, Cluster, Wheels, wait_for

warnings.filterwarnings("ignore", message="Monkey-patching ssl")  # volttron patches late: noise


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def converged(c: Cluster) -> None:
    def ok() -> bool:
        p, s = c.status("primary") or {}, c.status("secondary") or {}
        return (c.runners() == {"primary"} and (s.get("peer") or {}).get("state") == "up"
                and (p.get("peer") or {}).get("state") == "up"
                and (p.get("witness") or {}).get("state") == "up" and (s.get("witness") or {}).get("state") == "up")
    wait_for(ok, 60, "converged: primary runs the service, everyone hears everyone")


def start_reference(c: Cluster, n: int = 5) -> list[float]:
    """start_agent -> running, for the service agent installed (stopped) on the witness platform."""
    _, service_wheel = Wheels.get()
    agent = c.platforms["witness"].install(service_wheel, SERVICE, {}, tag="reference")
    c.platforms["witness"].authorize_failover(OBSERVER)  # the observer starts/stops it here
    obs = c.observer("witness")
    out = []
    for _ in range(n):
        t0 = time.monotonic()
        obs.call("platform.control", "start_agent", agent.uuid)
        while True:
            pid, rc = obs.call("platform.control", "agent_status", agent.uuid)
            if pid and rc is None:
                break
            gevent.sleep(0.02)
        out.append(time.monotonic() - t0)
        obs.call("platform.control", "stop_agent", agent.uuid)
    # not removed: `vctl remove` uninstalls the package from the venv all test platforms share
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description="failover agent takeover bench")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=4.0)
    ap.add_argument("--heartbeat-period", type=float, default=1.0)
    args = ap.parse_args()
    cluster = Cluster("standard", heartbeat_period=args.heartbeat_period, timeout=args.timeout,
                      prefix="ft-agent-bench-")
    takeovers: list[float] = []
    try:
        cluster.start(log=lambda s: print(f"setup: {s}", flush=True))
        reference = start_reference(cluster)
        print(f"reference: start_agent -> running median {statistics.median(reference):.3f}s "
              f"(n={len(reference)})", flush=True)
        for i in range(args.trials):
            converged(cluster)
            gevent.sleep(0.3 + (i % 4) * 0.23)  # vary the kill's phase against the 1 s heartbeat
            cluster.crash("primary")
            t0 = time.monotonic()
            while not cluster.service_running("secondary"):
                if time.monotonic() - t0 > args.timeout + 30:
                    raise AssertionError("the secondary never took over")
                gevent.sleep(0.02)
            took = time.monotonic() - t0
            takeovers.append(took)
            print(f"trial {i + 1:2d}: takeover {took:.3f}s ({took / args.timeout:.2f} x timeout)", flush=True)
            cluster.restart("primary")
            wait_for(lambda: cluster.runners() == {"primary"}, 60, "failback")
    finally:
        cluster.close()
    med, p95 = statistics.median(takeovers), pct(takeovers, 0.95)
    ref = statistics.median(reference)
    print(f"\nfailoveragent takeover over {len(takeovers)} trials (heartbeat {args.heartbeat_period:g}s, "
          f"timeout {args.timeout:g}s):")
    print(f"  median {med:.3f}s  p95 {p95:.3f}s  min {min(takeovers):.3f}s  max {max(takeovers):.3f}s")
    print(f"  ratio to timeout: median {med / args.timeout:.2f}  p95 {p95 / args.timeout:.2f}")
    print(f"  p95 - timeout = {p95 - args.timeout:+.3f}s; reference (same run): platform.control "
          f"start_agent -> running takes {ref:.3f}s, detection is the rest")
    ok = p95 <= args.timeout + ref + 0.5
    print(f"  goal p95 <= timeout + start + 0.5s = {args.timeout + ref + 0.5:.3f}s: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

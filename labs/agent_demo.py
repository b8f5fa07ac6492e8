"""Live demo: three real VOLTTRON platforms on loopback, a managed agent, a killed primary, failback.

Run ``python -m labs.agent_demo`` (or ``make demo``) as root: it starts the platforms as the
non-root platform user, installs the failover agents (standard mode, witness-verified) and a
stand-in service agent, kills the primary platform (SIGKILL of the platform and its agents, by
PID), prints a timeline of who runs the service and how long the takeover took, brings the primary
back and shows the failback. Everything it made is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import gevent

from failover_agent.config import DEFAULT_STOP_BOUND
from failover_core.fencing import FencingTiming
from labs.volttron_cluster import SERVICE, Cluster, wait_for

# volttron monkey-patches late (ssl already imported): harmless here, noise in the output
warnings.filterwarnings("ignore", message="Monkey-patching ssl")


class Timeline:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.last: str | None = None

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.2f}s] {text}", flush=True)

    def watch(self, cluster: Cluster, seconds: float, until: set[str] | None = None) -> None:
        """Print every change of "who runs the service" for ``seconds`` (or until it is ``until``)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            runners = cluster.runners()
            shown = " + ".join(sorted(runners)) or "nobody"
            if shown != self.last:
                self.say(f"{SERVICE} runs on: {shown}")
                self.last = shown
            if until is not None and runners == until:
                return
            gevent.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heartbeat-period", type=float, default=1.0)
    # 4 s: the active's lease (timeout - fencing margin 1.36 s) is 2.64 s, over two heartbeats
    ap.add_argument("--timeout", type=float, default=4.0)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("run the demo as root: platforms are started as the platform user", file=sys.stderr)
        return 2
    fencing = FencingTiming(timeout=args.timeout, stop_bound=DEFAULT_STOP_BOUND)
    problem = fencing.lease_problem(args.heartbeat_period)
    if problem is not None and problem[0] == "error":
        print(f"--timeout {args.timeout:g} --heartbeat-period {args.heartbeat_period:g}: {problem[1]}", file=sys.stderr)
        return 2
    tl = Timeline()
    tl.say(f"standard mode: primary, secondary and a witness on 127.0.0.1; heartbeat every "
           f"{args.heartbeat_period:g}s, a peer is dead after {args.timeout:g}s of silence; the active gives up "
           f"{fencing.lease:.2f}s after its last acknowledged heartbeat (fencing margin {fencing.margin:.2f}s)")
    if problem is not None:
        tl.say(f"warning: {problem[1]}")
    cluster = Cluster("standard", heartbeat_period=args.heartbeat_period, timeout=args.timeout,
                      prefix="ft-agent-demo-")
    try:
        cluster.start(log=tl.say)
        wait_for(lambda: cluster.runners() == {"primary"}, 60, "the primary runs the service")
        tl.watch(cluster, 2.0)
        for node in ("primary", "secondary"):
            st = cluster.status(node) or {}
            tl.say(f"{node:9s} decision: {st.get('decision', {}).get('reason')} "
                   f"[{st.get('decision', {}).get('code')}]")

        pid = cluster.platforms["primary"].proc.pid
        tl.say(f"*** killing the primary platform (SIGKILL to PID {pid} and its agents) ***")
        cluster.crash("primary")
        killed = time.monotonic()
        tl.watch(cluster, args.timeout + 15, until={"secondary"})
        took = time.monotonic() - killed
        tl.say(f"takeover: the secondary runs {SERVICE} {took:.2f}s after the kill (standard mode waits the "
               f"timeout, {fencing.down_after:g}s of silence, then asks the witness and starts; the primary would "
               f"have stopped by then: its lease ends {fencing.margin:.2f}s earlier; ratio "
               f"{took / fencing.down_after:.2f})")
        st = cluster.status("secondary") or {}
        tl.say(f"secondary: {st.get('last_transition', {}).get('reason')} "
               f"[{st.get('last_transition', {}).get('code')}]; witness verdict: "
               f"{(st.get('witness') or {}).get('last_verdict')}")
        tl.watch(cluster, 2.0)

        tl.say("*** bringing the primary platform back (and starting its failover agent) ***")
        cluster.restart("primary")
        back = time.monotonic()
        tl.watch(cluster, 30, until={"primary"})
        tl.say(f"failback: the primary runs {SERVICE} again {time.monotonic() - back:.2f}s after its failover "
               f"agent started (the secondary released it first)")
        tl.watch(cluster, 2.0)
        for node in ("primary", "secondary"):
            st = cluster.status(node) or {}
            tl.say(f"{node} transitions:")
            for t in st.get("transitions", []):
                print(f"           {t}")
        return 0
    finally:
        tl.say("cleaning up: stopping the three platforms and removing their files")
        cluster.close()


if __name__ == "__main__":
    sys.exit(main())

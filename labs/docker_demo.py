"""``make demo SYSTEM=docker``: two simulated hosts, a web container, three faults, a timeline.

Sets up two network namespaces with one real dockerd each (TwoHostLab), starts an agent per host,
serves a busybox web container from A, then:
  1. kills the web container on A              -> A hands over to B (no heartbeat wait)
  2. kills B's agent and container (B crashes) -> A takes over after heartbeat_timeout
  3. kills A's agent only                      -> B takes over; A's container still runs until A's
                                                  agent is back and stops it (it returns passive)
A client polls the service on both hosts every 20 ms; the timeline shows who serves, each role
change, and the gap the client saw. Everything is torn down at the end (also on Ctrl-C).
"""

from __future__ import annotations

import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from labs.docker import TwoHostLab, wait_until

SETTINGS = {"heartbeat_interval": 0.5, "check_heartbeat_interval": 0.5, "heartbeat_timeout": 2.0,
            "startup_grace_period": 5.0, "restart_grace_period": 3.0, "stop_timeout": 5}


class Observer(threading.Thread):
    """Polls the web service on both hosts and the agents' roles; records every change with its time."""

    def __init__(self, lab: TwoHostLab, t0: float) -> None:
        super().__init__(daemon=True)
        self.lab, self.t0 = lab, t0
        self.events: list[tuple[float, str]] = []
        self.samples: list[tuple[float, bool, bool]] = []
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()

    def note(self, text: str, at: float | None = None) -> None:
        t = (at if at is not None else time.monotonic()) - self.t0
        with self.lock:
            self.events.append((t, text))
            print(f"  [{t:7.2f}s] {text}", flush=True)

    def run(self) -> None:
        sessions = {k: requests.Session() for k in ("a", "b")}
        serving, roles = None, {"a": None, "b": None}
        last_roles = 0.0
        while not self.stop_flag.is_set():
            now = time.monotonic()
            up = {}
            for k, s in sessions.items():
                try:
                    up[k] = s.get(self.lab.hosts[k].web_url, timeout=0.2).status_code == 200
                except requests.RequestException:
                    up[k] = False
            self.samples.append((now, up["a"], up["b"]))
            who = {(True, True): "A and B", (True, False): "A", (False, True): "B", (False, False): "nobody"}[
                (up["a"], up["b"])]
            if who != serving:
                self.note(f"client: service answered by {who}", now)
                serving = who
            if now - last_roles > 0.1:
                last_roles = now
                for k in ("a", "b"):
                    st = self.lab.status(k, timeout=0.3)
                    role = st["role"] if st else "(agent down)"
                    if role != roles[k]:
                        why = ""
                        if st and st.get("last_transition") and st["last_transition"]["to"] == role:
                            why = f" [{st['last_transition']['code']}] {st['last_transition']['reason']}"
                        self.note(f"agent {k.upper()}: {roles[k] or 'start'} -> {role}{why}")
                        roles[k] = role
            time.sleep(0.02)

    def gap_after(self, t_fault: float) -> float:
        """Longest stretch with no answer from anybody, from the fault on: from the fault (or the last
        answered poll) to the next answered poll, counted only when a poll in between went unanswered."""
        gap, last_ok, missed = 0.0, t_fault, False
        for t, a, b in list(self.samples):
            if t < t_fault:
                continue
            if a or b:
                if missed:
                    gap = max(gap, t - last_ok)
                last_ok, missed = t, False
            else:
                missed = True
        return gap

    def both_serving(self, since: float) -> float:
        both = [t for t, a, b in self.samples if t >= since and a and b]
        return (both[-1] - both[0]) if both else 0.0


def main() -> int:
    print("DockerFailover demo: two hosts (network namespaces, one dockerd each), setting up ...", flush=True)
    lab = TwoHostLab()
    summary: list[tuple[str, float, str]] = []
    try:
        lab.open()
        a, b = lab.hosts["a"], lab.hosts["b"]
        print(f"  host A {a.ip} (server1), host B {b.ip} (server2); web on :8080, agents on :8700")
        with tempfile.TemporaryDirectory() as tmp:
            cfg = lab.write_config(Path(tmp) / "config.py", **SETTINGS)
            print("  config.py:\n    " + cfg.read_text().strip().replace("\n", "\n    "))
            lab.create_web()
            t0 = time.monotonic()
            obs = Observer(lab, t0)
            obs.start()
            lab.start_agent("a", cfg)
            lab.start_agent("b", cfg)
            wait_until(lambda: lab.role("a") == "active" and lab.web_answers("a"), 30, what="A active")
            time.sleep(1.5)

            obs.note("FAULT 1: kill the web container on A (docker kill)")
            t1 = time.monotonic()
            assert a.client is not None
            a.client.containers.get("web").kill()
            wait_until(lambda: lab.web_answers("b") and lab.role("b") == "active", 30, what="B serving")
            summary.append(("container killed on A -> hand-over to B", obs.gap_after(t1), ""))
            time.sleep(2.0)

            obs.note("FAULT 2: host B crashes (its agent and its container are killed)")
            t2 = time.monotonic()
            lab.stop_agent("b", signal.SIGKILL)
            assert b.client is not None
            b.client.containers.get("web").kill()
            wait_until(lambda: lab.web_answers("a") and lab.role("a") == "active", 30, what="A serving")
            summary.append(("host B crash -> A takes over after heartbeat_timeout", obs.gap_after(t2), ""))
            obs.note("restarting B's agent")
            lab.start_agent("b", cfg)
            wait_until(lambda: lab.role("b") == "passive", 30, what="B back as passive")
            time.sleep(2.0)

            obs.note("FAULT 3: kill A's agent only (SIGKILL); its container keeps running")
            t3 = time.monotonic()
            lab.stop_agent("a", signal.SIGKILL)
            wait_until(lambda: lab.web_answers("b") and lab.role("b") == "active", 30, what="B serving")
            time.sleep(1.0)
            obs.note("restarting A's agent: it must come back passive and stop its stray container")
            lab.start_agent("a", cfg)
            wait_until(lambda: lab.role("a") == "passive" and not lab.container_running("a"), 30,
                       what="A passive, its container stopped")
            time.sleep(1.0)
            summary.append(("agent on A killed -> B takes over", obs.gap_after(t3),
                            f"A and B both served for {obs.both_serving(t3):.2f}s (until A's agent returned)"))
            obs.stop_flag.set()
            obs.join(5)
        print("\nSummary (client polling every 20 ms; heartbeat_interval "
              f"{SETTINGS['heartbeat_interval']}s, heartbeat_timeout {SETTINGS['heartbeat_timeout']}s):")
        for what, gap, note in summary:
            print(f"  {what:55} client-observed gap {gap:5.2f}s  {note}")
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        print("tearing down the hosts ...", flush=True)
        lab.close()


if __name__ == "__main__":
    sys.exit(main())

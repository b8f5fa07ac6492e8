"""The keeper: a small process beside a per-host valet that stops the valet's processes when the valet can no
longer answer for them (``python -m HaValet.keeper``, started by the valet; not for operators to run).

The valet holds the write end of the keeper's stdin and sends one JSON line per change::

    {"process": "Web", "host": "hostA", "stop_command": "...", "stop_timeout": 2.0, "env": {...}}  # once, at start
    {"process": "Web", "running": true, "until": 12345.678}     # its state: may run here; its lease's end
    {"bye": true}                                               # clean exit: leave everything as it is

``until`` is the end of the valet's lease (``PairArbiter.lease_until``: T - fencing margin after its last acknowledged
send, or after its start before any) on CLOCK_MONOTONIC (one clock for every process of the host), or null without
a witness (no lease). The keeper runs a process's ``stop_command`` when

- its stdin closes without ``bye`` (the valet died: SIGKILL, a crash, the OOM killer) and the process may run;
- the lease of a process that may run ends (``until`` passed) and no newer line came: the valet is frozen
  (SIGSTOP, a stuck loop) past the moment it should have fenced itself.

Either way it is the valet's own fencing rule carried out by someone still awake; the keeper then exits (after a
lapsed lease it keeps watching until stdin closes). It has its own session, so a signal to the valet's process
group does not reach it. It does nothing else: no network, no decisions.
"""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass

log = logging.getLogger("HaValet.keeper")


@dataclass
class _Watched:
    host: str
    stop_command: str
    stop_timeout: float
    env: dict[str, str]
    running: bool = False
    until: float | None = None
    fenced: bool = False


def _stop(name: str, w: _Watched, why: str) -> None:
    log.warning("%s: %s: stopping on %s: %s", name, why, w.host, w.stop_command)
    t0 = time.monotonic()
    try:
        r = subprocess.run(w.stop_command, shell=True, env=w.env, timeout=w.stop_timeout, stdin=subprocess.DEVNULL,
                           start_new_session=True, check=False)
        what = f"exit {r.returncode}"
    except subprocess.TimeoutExpired:
        what = f"timed out after {w.stop_timeout:g}s"
    log.warning("%s: stop on %s: %s (%.3fs)", name, w.host, what, time.monotonic() - t0)
    w.running = False
    w.fenced = True


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    watched: dict[str, _Watched] = {}
    buf = b""
    fd = sys.stdin.fileno()
    while True:
        leases = [w.until for w in watched.values() if w.running and w.until is not None and not w.fenced]
        timeout = None if not leases else max(0.0, min(leases) - time.monotonic())
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            now = time.monotonic()
            for name, w in watched.items():
                if w.running and w.until is not None and not w.fenced and now >= w.until:
                    _stop(name, w, "the valet's lease ended and it said nothing since (frozen?)")
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            for name, w in watched.items():
                if w.running:
                    _stop(name, w, "the valet is gone (its pipe closed without goodbye)")
            return 0
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            msg = json.loads(line)
            if msg.get("bye"):
                return 0
            name = msg["process"]
            if "stop_command" in msg:
                watched[name] = _Watched(msg["host"], msg["stop_command"], float(msg["stop_timeout"]), dict(msg["env"]))
                continue
            w = watched[name]
            w.running, w.until = bool(msg["running"]), msg.get("until")
            if w.running:
                w.fenced = False


if __name__ == "__main__":
    raise SystemExit(main())

"""Per-host HaValet pairs in the namespace lab: configs, a witness config, and the timelines the tests compare.

- ``pair_cfg``: the ``ha_valet.cfg`` of one host's valet (``[valet] node``, ``listen``, ``secret``, ``peers``,
  optional witness) managing the sample service ``labs.valet_service`` on its own host, locally (the valet
  runs inside the host's namespace, so the commands need no ssh and no ``ip netns exec``). A file
  ``STATE/<host>.broken`` makes the start on that host fail (a host that cannot run the service).
- Timelines, in wall-clock seconds (every process of the lab shares the machine's clock):
  ``journal_intervals`` (when the service itself listened: its ``.journal``), ``log_intervals`` (from a
  valet's log: the start command's launch to the stop command's return, a superset of when it ran),
  ``overlap`` (seconds during which two hosts' intervals intersect).
"""

from __future__ import annotations

import re
import sys
import textwrap
from datetime import datetime
from pathlib import Path

SERVICE_PORT = 8080
VALET_PORT = 8791
SECRET = "lab secret of the valet pair, 32+"
WITNESS_SECRET = "lab secret of the witness groups"

Interval = tuple[float, float | None]  # (from, to); None: still running at the end


def pair_cfg(node: str, peer: str, state_dir: Path, *, primary: str, witness_url: str | None = None,
             process: str = "Web", interval: float = 0.25, heartbeat_interval: float = 0.25,
             heartbeat_timeout: float = 1.0, stop_timeout: float = 2.0, extra: str = "") -> str:
    """One host's config. ``primary`` is the first host of the process on both hosts (the same sections).
    With a witness, ``heartbeat_timeout`` must leave the active a lease (T - fencing margin, S = stop_timeout +
    0.5): with the defaults here T >= 3.36 s for two heartbeats; the 1 s default is for simple mode."""
    standby = peer if primary == node else node
    witness = f"witness_url = {witness_url}\nwitness_secret = {WITNESS_SECRET}\n" if witness_url else ""
    cfg = textwrap.dedent(f"""\
        [valet]
        interval = {interval}
        command_timeout = 2
        start_timeout = 5
        stop_timeout = {stop_timeout}
        start_grace = 3
        start_poll = 0.1
        backoff_initial = 2
        node = {node}
        listen = {node}:{VALET_PORT}
        secret = {SECRET}
        peers = {peer}=http://{peer}:{VALET_PORT}
        heartbeat_interval = {heartbeat_interval}
        heartbeat_timeout = {heartbeat_timeout}
        """) + witness + extra + textwrap.dedent(f"""\
        [placeholders]
        PY = {sys.executable}
        STATE = {state_dir}

        [{process}]
        host = {primary}
        stand_by_list = {standby}
        user = root
        port = {SERVICE_PORT}
        start_command = "test ! -e @STATE@/%s.broken && @PY@ -m labs.valet_service start --state-dir @STATE@ --name %s --bind %s --port %s" % (host, host, host, port)
        stop_command = "@PY@ -m labs.valet_service stop --state-dir @STATE@ --name %s" % (host)
        test_command = "@PY@ -m labs.valet_service probe --url http://%s:%s/priority --timeout 0.5" % (host, port)
        """)  # noqa: E501 (one cfg line per command, as operators write them)
    return cfg


def journal_intervals(state_dir: Path, host: str, *, until: float | None = None,
                      killed: dict[int, float] | None = None) -> list[Interval]:
    """When the service on ``host`` listened, from its journal. ``killed`` (pid -> wall time) closes the
    intervals of services a test SIGKILLed (they write no ``down`` line)."""
    path = state_dir / f"{host}.journal"
    if not path.exists():
        return []
    open_at: dict[int, float] = {}
    out: list[Interval] = []
    for line in path.read_text().splitlines():
        what, at, pid = line.split()
        if what == "up":
            open_at[int(pid)] = float(at)
        elif int(pid) in open_at:
            out.append((open_at.pop(int(pid)), float(at)))
    for pid, at in open_at.items():
        end = (killed or {}).get(pid, until)
        out.append((at, end))
    return sorted(out)


_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def log_time(line: str) -> float | None:
    m = _LOG_TIME.match(line)
    if m is None:
        return None
    return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def log_intervals(log: str, process: str, host: str, *, until: float | None = None) -> list[Interval]:
    """From a valet's log: ``starting on HOST`` (the start command is launched) to ``stop on HOST: exit 0`` (the
    stop command returned) or a test that found it down (``pair.went_down``), or to ``until`` when neither
    followed. A superset of when the process ran there, as far as this valet knows (an instance found up at
    start-up begins at its ``WAITING -> ACTIVE`` line)."""
    out: list[Interval] = []
    begin: float | None = None
    for line in log.splitlines():
        t = log_time(line)
        if t is None:
            continue
        if f"{process}: starting on {host} " in line or f"{process}: WAITING -> ACTIVE" in line:  # found up
            begin = t if begin is None else begin
        elif begin is not None and (f"{process}: stop on {host}: exit 0" in line
                                    or "[pair.went_down]" in line):
            out.append((begin, t))
            begin = None
    if begin is not None:
        out.append((begin, until))
    return out


def overlap(a: list[Interval], b: list[Interval], *, until: float) -> float:
    """Seconds during which an interval of ``a`` and one of ``b`` both hold (open ends run to ``until``)."""
    total = 0.0
    for a0, a1 in a:
        for b0, b1 in b:
            lo, hi = max(a0, b0), min(until if a1 is None else a1, until if b1 is None else b1)
            if hi > lo:
                total += hi - lo
    return total

"""HaValet benchmark: detection-to-restart latency and CPU use for 10, 100 and 500 processes at 1 s.

Each monitored "process" is a flag file: up while it exists. test_command = ``test ! -e FLAG``
(exit 1 = up with priority 1, 0 = down; /usr/bin/test is run directly, no shell), start_command =
``touch FLAG``. A real ``python -m HaValet`` process watches all of them.

- CPU: over a steady window (nothing failing) we read the valet's utime+stime and its reaped
  children's from /proc/PID/stat; reported as % of one core (valet itself, its commands, total).
- Latency: flags are removed one at a time at random phases; the restart time is the new flag's
  mtime (kernel clock, coarse: ~4 ms). Latency = restart - removal. The reference, measured in the
  same run, is interval + start time (the median duration of the same ``touch`` spawned the same way),
  i.e. the worst case "killed just after a test" of a loop that tests every interval.

Usage: python -m bench.valet [--sizes 10,100,500] [--samples 40] [--cpu-window 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from HaValet.commands import run_command

INTERVAL = 1.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(own utime+stime, reaped children's cutime+cstime) in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
    return (utime + stime) / CLK_TCK, (cutime + cstime) / CLK_TCK


def write_config(d: Path, n: int) -> Path:
    lines = [f"[valet]\ninterval = {INTERVAL}\ncommand_timeout = 5\nstart_grace = 3\nstart_poll = 0.05\n"
             f"max_failures = 1000\nstatus_file = {d}/status.json\n"]
    for i in range(n):
        flag = d / f"f{i}"
        flag.touch()
        lines.append(f'[P{i}]\nhost = local\nuser = bench\nstart_command = "touch {flag}"\n'
                     f'stop_command = "rm -f {flag}"\ntest_command = "test ! -e {flag}"\n')
    cfg = d / "ha_valet.cfg"
    cfg.write_text("\n".join(lines))
    return cfg


def status(d: Path) -> dict:
    try:
        return json.loads((d / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def wait_all_active(d: Path, n: int, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        procs = status(d).get("processes", [])
        if len(procs) == n and all(p["state"] == "active" for p in procs):
            return time.monotonic() - start
        time.sleep(0.1)
    raise RuntimeError(f"not all {n} processes active within {timeout}s")


async def reference_start_time(flag: Path, k: int = 30) -> float:
    times = []
    for _ in range(k):
        r = await run_command(f"touch {flag}", timeout=5)
        times.append(r.duration)
    return statistics.median(times)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def bench_size(n: int, samples: int, cpu_window: float) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"havalet-bench{n}-") as tmp:
        d = Path(tmp)
        cfg = write_config(d, n)
        start_ref = asyncio.run(reference_start_time(d / "ref"))
        log = (d / "valet.log").open("wb")
        valet = subprocess.Popen([sys.executable, "-m", "HaValet", "-c", str(cfg)], stdout=log,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            ready = wait_all_active(d, n, timeout=60)
            time.sleep(INTERVAL * 2)  # past the start-up spread
            own0, kids0 = cpu_seconds(valet.pid)
            t0 = time.monotonic()
            time.sleep(cpu_window)
            own1, kids1 = cpu_seconds(valet.pid)
            wall = time.monotonic() - t0
            cpu_own, cpu_kids = (own1 - own0) / wall * 100, (kids1 - kids0) / wall * 100

            rng = random.Random(n)
            latencies = []
            for _ in range(samples):  # one at a time: remove a flag at a random phase, wait for its restart
                flag = d / f"f{rng.randrange(n)}"
                time.sleep(rng.uniform(0.0, INTERVAL))
                t_removed = time.time()
                flag.unlink()
                deadline = time.monotonic() + INTERVAL + 10
                while not flag.exists():
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{flag.name} was not restarted within {INTERVAL + 10}s")
                    time.sleep(0.005)
                latencies.append(flag.stat().st_mtime - t_removed)
        finally:
            valet.terminate()
            valet.wait(20)
            log.close()
        load = os.getloadavg()[0]
        median, p95, worst = statistics.median(latencies), pct(latencies, 0.95), max(latencies)
        bound = INTERVAL + start_ref
        return {"n": n, "load1": load, "ready_s": ready, "cpu_valet_pct": cpu_own, "cpu_commands_pct": cpu_kids,
                "cpu_total_pct": cpu_own + cpu_kids, "start_ref_ms": start_ref * 1000, "samples": len(latencies),
                "median_ms": median * 1000, "p95_ms": p95 * 1000, "max_ms": worst * 1000, "bound_ms": bound * 1000,
                "p95_minus_bound_ms": (p95 - bound) * 1000, "max_minus_bound_ms": (worst - bound) * 1000}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,100,500")
    ap.add_argument("--samples", type=int, default=40)
    ap.add_argument("--cpu-window", type=float, default=10.0)
    args = ap.parse_args()
    print(f"HaValet bench: interval {INTERVAL:g}s, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        r = bench_size(n, args.samples, args.cpu_window)
        rows.append(r)
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()}), flush=True)
    print()
    print(f"{'procs':>5} {'cpu valet%':>10} {'cpu cmds%':>9} {'cpu total%':>10} {'start ms':>8} "
          f"{'median ms':>9} {'p95 ms':>7} {'max ms':>7} {'bound ms':>8} {'p95-bound':>9} {'max-bound':>9} "
          f"{'load1':>5}")
    for r in rows:
        print(f"{r['n']:>5} {r['cpu_valet_pct']:>10.1f} {r['cpu_commands_pct']:>9.1f} {r['cpu_total_pct']:>10.1f} "
              f"{r['start_ref_ms']:>8.1f} {r['median_ms']:>9.0f} {r['p95_ms']:>7.0f} {r['max_ms']:>7.0f} "
              f"{r['bound_ms']:>8.0f} {r['p95_minus_bound_ms']:>+9.0f} {r['max_minus_bound_ms']:>+9.0f} "
              f"{r['load1']:>5.1f}")
    print("bound = interval + start time (reference: the same start command spawned the same way, this run);"
          " goal at 100: within bound + 50 ms, valet CPU < 10% of one core")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

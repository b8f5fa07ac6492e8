"""HaValet per-host mode: the failure table's figures over repeated runs (``make bench BENCH=valet_pair``).

Runs ``tests/valet/test_per_host_netns.py`` (real valets in network namespaces, the sample service, a real
witness, iptables cuts, SIGKILL/SIGSTOP) ``--runs`` times and aggregates the ``FIGURES`` lines the tests print:
for every scenario, each figure's min / median / max over the runs, in seconds. "two running" is measured three
ways (the services' journals, the valets' logs, a 20 ms sampler); a test fails if it is not 0 where the docs
promise 0, so a run that completes is also a check. Needs root, iproute2, iptables.

Usage: python -m bench.valet_pair [--runs 5] [-k EXPR]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from collections import defaultdict

from labs import importable_env

LINE = re.compile(r"^FIGURES (\S+): (.*)$")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("-k", default="", help="pytest -k expression (default: every scenario)")
    args = p.parse_args(argv)
    figures: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    failed = 0
    for run in range(1, args.runs + 1):
        cmd = [sys.executable, "-m", "pytest", "tests/valet/test_per_host_netns.py", "-q", "-s", "-p", "no:randomly"]
        if args.k:
            cmd += ["-k", args.k]
        r = subprocess.run(cmd, capture_output=True, text=True, env=importable_env())
        tail = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-300:]
        print(f"run {run}/{args.runs}: {tail}", flush=True)
        failed += r.returncode != 0
        for line in r.stdout.splitlines():
            m = LINE.match(line.strip())
            if m is None:
                continue
            for key, value in re.findall(r"(\w+)=([0-9.]+)s", m.group(2)):
                figures[m.group(1)][key].append(float(value))
    print("\n| scenario | figure | n | min s | median s | max s |\n|---|---|---:|---:|---:|---:|")
    for scenario, by_key in figures.items():
        for key, values in by_key.items():
            print(f"| {scenario} | {key} | {len(values)} | {min(values):.3f} | {statistics.median(values):.3f} | "
                  f"{max(values):.3f} |")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

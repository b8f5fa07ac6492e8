"""Long seeded chaos runs: `make bench BENCH=chaos` (root).

For each system with a chaos driver (vrrp, docker, valet, agent) runs `python -m labs.chaos SYSTEM --seed N`
(default 30 minutes of single faults, the issue's figure) into `chaos-out/SYSTEM[-MODE]-SEED/`, prints its
table and exits non-zero if any promise was broken. `--modes standard,simple` runs the systems that have a
witness in each mode (VRRP has none); `--overlap` adds overlapping pairs to the kinds (every kind the
system supports on this machine); `--faults delay,dup` runs only those kinds (every system must support them).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from labs.chaos.__main__ import SYSTEMS

MODAL = {"docker", "valet", "agent"}  # the systems with a witness (standard) and without (simple)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--duration", type=float, default=1800.0)
    ap.add_argument("--systems", default=",".join(k for k, v in SYSTEMS.items() if v == "ready"))
    ap.add_argument("--out", type=Path, default=Path("chaos-out"))
    ap.add_argument("--modes", default="standard,simple", help="standard, simple or both (comma-separated)")
    ap.add_argument("--overlap", action="store_true", help="add overlapping pairs of faults")
    ap.add_argument("--faults", help="comma-separated kinds (default: every kind each system supports here)")
    args = ap.parse_args(argv)
    worst = 0
    for system in args.systems.split(","):
        for mode in args.modes.split(",") if system in MODAL else [None]:
            out = args.out / "-".join(str(x) for x in (system, mode, args.seed) if x is not None)
            cmd = [sys.executable, "-m", "labs.chaos", system, "--seed", str(args.seed), "--duration",
                   str(args.duration), "--out", str(out), *(["--mode", mode] if mode else [])]
            if args.faults:
                cmd += ["--faults", args.faults]
            if args.overlap:
                cmd.append("--overlap")  # every kind the system supports here, plus overlapping pairs
            print(f"=== {' '.join(cmd[1:])}", flush=True)
            rc = subprocess.call(cmd)
            what = "promise kept" if rc == 0 else "BROKEN" if rc == 1 else "error"
            print(f"--- {system}{' ' + mode if mode else ''}: exit {rc} ({what})")
            worst = max(worst, rc)
    return worst


if __name__ == "__main__":
    sys.exit(main())

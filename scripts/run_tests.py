"""Run the test suite as separate pytest processes, one per group, and print one closing line.

Why separate processes: importing VOLTTRON monkey-patches the whole interpreter with gevent
(threads become greenlets, sockets cooperative). The VOLTTRON agent's tests need that; the VRRP,
Docker and valet tests run real threads that enter network namespaces, which break under it
(measured: 8 VRRP/agent failures in one shared process, none in separate ones). So the gevent
world gets its own interpreter.

Usage: python scripts/run_tests.py [pytest args...]. Paths among the args (tests/...) run just
those, in one process; otherwise every group runs. Exit status: 0 only if every group passed.
"""

from __future__ import annotations

import re
import subprocess
import sys

GROUPS = [
    ["tests/core", "tests/labs", "tests/valet", "tests/docker", "tests/vrrp", "tests/witness"],  # asyncio/threads world
    # gevent world (VOLTTRON); pytest's anyio plugin would import ssl before gevent patches it
    ["tests/failoveragent", "-p", "no:anyio"],
]
COUNT = re.compile(r"(\d+) (passed|failed|error|errors|skipped|xfailed|xpassed)")


def main(argv: list[str]) -> int:
    paths = [a for a in argv if a.startswith("tests")]
    if paths and all(p.startswith("tests/failoveragent") for p in paths):
        paths += ["-p", "no:anyio"]
    options = [a for a in argv if not a.startswith("tests")]
    if not any(a.startswith("--durations") for a in options):
        options.append("--durations=15")  # the slowest tests of each group: the suite has a 30-minute budget
    groups = [paths] if paths else GROUPS
    totals: dict[str, int] = {}
    worst = 0
    for group in groups:
        cmd = [sys.executable, "-m", "pytest", *group, *options]
        print(f"\n=== {' '.join(cmd[1:])}", flush=True)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        last = ""
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            if line.strip():
                last = line
        rc = proc.wait()
        for n, kind in COUNT.findall(last):
            kind = "error" if kind == "errors" else kind
            totals[kind] = totals.get(kind, 0) + int(n)
        if rc != 0:
            worst = rc if worst == 0 else worst
    passed, failed = totals.get("passed", 0), totals.get("failed", 0) + totals.get("error", 0)
    print(f"\ntotal: {passed} passed, {failed} failed")
    if passed == 0 and worst == 0:
        return 5  # no test ran: that is not a success
    return worst


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

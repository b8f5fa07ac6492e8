"""python -m labs.chaos SYSTEM --seed N --duration S [--faults k1,k2] [--out DIR] [--config FILE]

Builds the system's test bed, plays the seeded schedule, records who is active, checks the promise,
writes history.jsonl, report.txt and timeline.png in --out and prints the table. Exit status: 0 the
promise was kept, 1 a rule was broken, 2 a usage error (unknown or unsupported system or fault kind,
bad config). Needs root.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from labs.chaos.schedule import FaultKind, ScheduleError, check_supported, make_schedule, parse_kinds

SYSTEMS = {"vrrp": "ready", "agent": "ready", "docker": "ready", "valet": "ready"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m labs.chaos", description=__doc__.splitlines()[0])
    ap.add_argument("system", help=", ".join(f"{k} ({v})" for k, v in SYSTEMS.items()))
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--duration", type=float, required=True, help="seconds of recording")
    ap.add_argument("--faults", help="comma-separated kinds (default: every kind the system supports but overlap); "
                    f"known: {', '.join(k.value for k in FaultKind)}")
    ap.add_argument("--out", type=Path, help="output directory (default chaos-SYSTEM-SEED)")
    ap.add_argument("--config", type=Path, help="the system's chaos config (JSON or TOML)")
    ap.add_argument("--settle", type=float, help="seconds after each heal before the next fault")
    ap.add_argument("--mode", choices=["standard", "simple"], help="with the witness (default) or without")
    ap.add_argument("--overlap", action="store_true",
                    help="add overlapping pairs of faults to the kinds (the same as adding overlap to --faults)")
    args = ap.parse_args(argv)
    state = SYSTEMS.get(args.system)
    if state is None:
        print(f"unknown system {args.system!r}; known: {', '.join(SYSTEMS)}", file=sys.stderr)
        return 2
    if state != "ready":
        ready = ", ".join(k for k, v in SYSTEMS.items() if v == "ready")
        print(f"{args.system}: not yet: no chaos driver for this system yet (ready: {ready})", file=sys.stderr)
        return 2
    from labs.chaos.runner import run

    driver: Any
    try:
        driver, supported = _driver(args)
    except (OSError, ValueError, ValidationError) as e:
        print(f"{args.config or args.system}: {e}", file=sys.stderr)
        return 2
    try:
        kinds = parse_kinds(args.faults) if args.faults else sorted(supported - {FaultKind.OVERLAP})
        if args.overlap and FaultKind.OVERLAP not in kinds:
            kinds = [*kinds, FaultKind.OVERLAP]
        check_supported(kinds, supported, args.system)
    except ScheduleError as e:
        print(str(e), file=sys.stderr)
        return 2
    settle = args.settle if args.settle is not None else driver.settle
    schedule = make_schedule(args.seed, args.duration, kinds, driver.nodes, supported=supported,
                             system=args.system, settle=settle, durations=getattr(driver, "durations", None))
    out = args.out or Path(f"chaos-{args.system}-{args.seed}")
    outcome = run(driver, schedule, out, seed=args.seed, duration=args.duration,
                  extra_meta={"kinds": [str(k) for k in kinds], "settle": settle})
    print(outcome.table)
    print(f"history, report, timeline: {out}/")
    return 0 if outcome.result.ok else 1


def _config(model: Any, args: argparse.Namespace) -> Any:
    """A driver's config from --config (defaults otherwise) with --mode over it, validated once."""
    data: dict[str, Any] = model.load(args.config).model_dump(exclude_unset=True) if args.config else {}
    if args.mode:
        data["mode"] = args.mode
    return model.model_validate(data)


def _driver(args: argparse.Namespace) -> tuple[Any, frozenset[FaultKind]]:
    """The system's driver (its config from --config) and the fault kinds it supports here."""
    if args.system == "valet":
        from labs.chaos.valet import ValetChaosConfig, ValetDriver

        out = args.out or Path(f"chaos-{args.system}-{args.seed}")
        driver = ValetDriver(_config(ValetChaosConfig, args), workdir=out.resolve())
        return driver, driver.supported
    if args.system == "agent":
        from labs.chaos.agent import AgentChaosConfig, AgentDriver

        agent = AgentDriver(_config(AgentChaosConfig, args))
        return agent, agent.supported
    if args.system == "docker":
        from labs.chaos.docker import DockerChaosConfig, DockerDriver

        docker = DockerDriver(_config(DockerChaosConfig, args))
        return docker, docker.supported
    from labs.chaos.schedule import NETEM_KINDS
    from labs.chaos.vrrp import VrrpChaosConfig, VrrpDriver, netem_available

    cfg = VrrpChaosConfig.load(args.config) if args.config else VrrpChaosConfig()
    supported = VrrpDriver.supported
    if not netem_available():
        supported = supported - NETEM_KINDS
        print("note: this kernel has no sch_netem: netem_loss, netem_delay, netem_dup are unavailable", file=sys.stderr)
    return VrrpDriver(cfg), supported


if __name__ == "__main__":
    sys.exit(main())

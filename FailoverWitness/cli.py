"""Command line of the witness: ``failover-witness [-c /etc/failover-witness/witness.toml] [-t]``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os

from failover_core.shell.cli import add_check_argument, load_or_exit, run_check
from FailoverWitness.config import DEFAULT_CONFIG_PATH, WitnessConfig, load_witness_config, render_effective

DESCRIPTION = ("witness for failover pairs: a small third vote on a third machine (signed heartbeats in, "
               "signed answers out; several groups)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="failover-witness", description=DESCRIPTION)
    p.add_argument("-c", "--config", default=os.environ.get("FAILOVER_WITNESS_CONFIG", DEFAULT_CONFIG_PATH),
                   help=f"config file, .toml or .json (default: $FAILOVER_WITNESS_CONFIG, else {DEFAULT_CONFIG_PATH})")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    add_check_argument(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def load() -> WitnessConfig:
        return load_witness_config(args.config)

    if args.check:
        return run_check(load, lambda cfg: json.dumps(render_effective(cfg), indent=2))
    cfg = load_or_exit(load)
    logging.basicConfig(level=getattr(logging, args.log_level),
                        format=f"%(asctime)s {cfg.name} %(levelname)s %(name)s: %(message)s")
    from FailoverWitness.server import serve  # the I/O side is imported only to run

    return asyncio.run(serve(cfg))

"""Command line of HaValet (placeholder until its issue lands: parses --help, says not implemented)."""

from __future__ import annotations

import argparse
import sys

from failover_core.shell.cli import add_check_argument

DESCRIPTION = "a process valet: test/start/stop commands, priorities, stand-by hosts"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ha-valet", description=DESCRIPTION)
    p.add_argument("-c", "--config", help="configuration file")
    add_check_argument(p)
    return p


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    print("ha-valet: not implemented yet", file=sys.stderr)
    return 1

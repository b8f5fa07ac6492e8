"""Command line of VrrpFailover (placeholder until its issue lands: parses --help, says not implemented)."""

from __future__ import annotations

import argparse
import sys

from failover_core.shell.cli import add_check_argument

DESCRIPTION = "a VRRPv3/v2 router that moves virtual IP addresses, interoperable with keepalived"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vrrp-failover", description=DESCRIPTION)
    p.add_argument("-c", "--config", help="configuration file")
    add_check_argument(p)
    return p


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    print("vrrp-failover: not implemented yet", file=sys.stderr)
    return 1

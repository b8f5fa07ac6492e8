"""Command line of DockerFailover (placeholder until its issue lands: parses --help, says not implemented)."""

from __future__ import annotations

import argparse
import sys

from failover_core.shell.cli import add_check_argument

DESCRIPTION = "active/passive Docker container failover between two hosts (HTTP heartbeats)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="docker-failover", description=DESCRIPTION)
    p.add_argument("-c", "--config", help="configuration file")
    add_check_argument(p)
    return p


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    print("docker-failover: not implemented yet", file=sys.stderr)
    return 1

"""Command line of VrrpFailover: ``vrrp-failover -c vrrp-config.json`` / ``python -m VrrpFailover``.

Exit status: 0 after a clean stop (SIGTERM/SIGINT), 2 for a bad configuration (nothing touched),
1 when the host cannot run the router (no permission for raw sockets, no IPv4 address on the
interface, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from failover_core.config import ConfigError
from failover_core.shell.cli import EXIT_CONFIG, add_check_argument, run_check
from VrrpFailover.config import InstanceConfig, load_config
from VrrpFailover.netio import check_interfaces

DESCRIPTION = "a VRRPv3/v2 router that moves virtual IP addresses, interoperable with keepalived"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vrrp-failover", description=DESCRIPTION)
    p.add_argument("-c", "--config", required=True, help="configuration file (JSON or TOML): one instance or a list")
    add_check_argument(p)
    p.add_argument("--status-file", help="write a JSON status (states, counters) here on each transition and SIGUSR1")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def load_checked(path: str) -> tuple[InstanceConfig, ...]:
    configs = load_config(path)
    check_interfaces(configs, path)
    return configs


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s.%(msecs)03d %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    if args.check:
        try:
            return run_check(lambda: list(load_checked(args.config)))
        except SystemExit as e:  # load_or_exit's exit 2 on a bad config
            return int(e.code or 0)
    try:
        configs = load_checked(args.config)
    except ConfigError as e:
        print(f"configuration error:\n{e}", file=sys.stderr)
        return EXIT_CONFIG
    from VrrpFailover.driver import VrrpDaemon  # import after validation: --check needs no sockets

    daemon = VrrpDaemon(configs, status_file=args.status_file)
    try:
        return asyncio.run(daemon.run())
    except PermissionError as e:
        print(f"vrrp-failover: not permitted: {e} (raw sockets need root or CAP_NET_RAW/CAP_NET_ADMIN)",
              file=sys.stderr)
        return 1
    except OSError as e:
        print(f"vrrp-failover: cannot start: {e}", file=sys.stderr)
        return 1

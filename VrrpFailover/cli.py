"""Command line of VrrpFailover: ``vrrp-failover -c vrrp-config.json`` / ``python -m VrrpFailover``.

``--from-keepalived keepalived.conf`` prints that file's vrrp_instance (and vrrp_sync_group) blocks as our config
instead (``VrrpFailover.keepalived_import``) and names every line it did not convert on stderr.

Exit status: 0 after a clean stop (SIGTERM/SIGINT), 2 for a bad configuration (nothing touched),
1 when the host cannot run the router (no permission for raw sockets, no IPv4 address on the
interface, ...).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from failover_core.config import ConfigError
from failover_core.shell.cli import EXIT_CONFIG, add_check_argument, run_check
from failover_core.shell.config_file import read_config_text
from VrrpFailover.config import VrrpConfig, load_vrrp_config, plain, validate_vrrp_config
from VrrpFailover.netio import check_interfaces

DESCRIPTION = "a VRRPv3/v2 router that moves virtual IP addresses, interoperable with keepalived"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vrrp-failover", description=DESCRIPTION)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("-c", "--config", help="configuration file (JSON or TOML): one instance, a list, or "
                                             "{instances, sync_groups}")
    what.add_argument("--from-keepalived", metavar="KEEPALIVED_CONF",
                      help="print keepalived.conf's vrrp_instance blocks as our config (stdout) and name every line "
                           "not converted (stderr); exit 2 if the file cannot be read or parsed")
    p.add_argument("--format", choices=["json", "toml"], default="json", help="output of --from-keepalived")
    add_check_argument(p)
    p.add_argument("--status-file", help="write a JSON status (states, counters) here on each transition and SIGUSR1")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def load_checked(path: str) -> VrrpConfig:
    config = load_vrrp_config(path)
    check_interfaces(config.instances, path)
    if any(c.vmac_name is not None for c in config.instances):
        from VrrpFailover.vmac import check_vmac_names

        check_vmac_names(config.instances, path)
    return config


def import_keepalived(path: str, fmt: str) -> int:
    """--from-keepalived: the converted config on stdout, the lines not converted on stderr (0), or exit 2."""
    from VrrpFailover.keepalived_import import convert, document_to_toml

    try:
        conversion = convert(read_config_text(path), path)
        try:
            # (instances as a list: a problem's key then names the instance, [n].key, as before sync groups)
            validate_vrrp_config(conversion.document() if conversion.sync_groups else conversion.instances,
                                 source=path)
        except ConfigError as e:  # point at the vrrp_instance (or vrrp_sync_group) each problem is in
            raise ConfigError(path, [(k, v, a, conversion.line_of(k)) for k, v, a in e.problems]) from None
    except ConfigError as e:
        print(f"configuration error:\n{e}", file=sys.stderr)
        return EXIT_CONFIG
    for s in sorted(conversion.skipped, key=lambda s: s.line):
        print(f"{path}:{s.line}: not converted: {s.text}: {s.why}", file=sys.stderr)
    document = conversion.document()
    if fmt == "toml":
        sys.stdout.write(document_to_toml(document))
    else:
        print(json.dumps(document, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.from_keepalived:
        return import_keepalived(args.from_keepalived, args.format)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s.%(msecs)03d %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    if args.check:
        try:
            return run_check(lambda: load_checked(args.config).effective())
        except SystemExit as e:  # load_or_exit's exit 2 on a bad config
            return int(e.code or 0)
    try:
        config = load_checked(args.config)
    except ConfigError as e:
        print(f"configuration error:\n{e}", file=sys.stderr)
        return EXIT_CONFIG
    return exec_daemon(config, args)


def exec_daemon(config: VrrpConfig, args: argparse.Namespace) -> int:
    """Become the lean run-time process (``VrrpFailover.daemon``): the same PID, a fresh interpreter that never
    imports pydantic; the validated config goes along as JSON in a memfd (why: that module's docstring). Returns
    only if the exec fails (exit 1)."""
    data = json.dumps(plain(config)).encode()
    fd = os.memfd_create("vrrp-failover-config", 0)
    os.set_inheritable(fd, True)  # the new image reads it
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    argv = [sys.executable, "-m", "VrrpFailover.daemon", "--config-fd", str(fd), "--source", args.config,
            "--log-level", args.log_level]
    if args.status_file:
        argv += ["--status-file", args.status_file]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(sys.executable, argv)
    except OSError as e:
        print(f"vrrp-failover: cannot start the daemon ({sys.executable}): {e}", file=sys.stderr)
        return 1
    return 1  # (not reached)

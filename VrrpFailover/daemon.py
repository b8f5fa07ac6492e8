"""The lean run-time entry point: the CLI (``VrrpFailover.cli``) validated the config and re-executed itself into
``python -m VrrpFailover.daemon --config-fd N ...`` (``os.execv``: the same process, the same PID for the operator's
pid file and the benches), with the validated config as JSON in an anonymous memory file (``memfd_create``) on
fd N.

Why a re-exec (measured, docs/vrrp.md "Measured"): what the validation needs (pydantic, the config models' schemas,
about 14 MiB) stays resident for the process's life once imported; a new image starts from a fresh interpreter that
imports only what runs. This module never imports pydantic or ``VrrpFailover.config`` (a test asserts it): it
builds ``VrrpFailover.settings`` dataclasses from the JSON.

Why a memfd, not a pipe or a temp file: a pipe's buffer (64 KiB) is smaller than a config of 1000 instances, and
the process that writes it is the one that reads it after the exec (it would block forever); a temp file is a name
on disk someone must delete, also when the process is killed between the write and the read. A memfd has no name,
no size limit and goes with its last descriptor (this module closes it after reading).

No ``ssl`` either: asyncio imports it when it can (for TLS transports, which nothing here uses), and it costs about
4 MiB resident (libssl and libcrypto; measured, docs/vrrp.md). ``main`` marks it absent (``sys.modules["ssl"] =
None``: an ``import ssl`` then raises ImportError) before asyncio is imported, and asyncio takes its own path for a
Python built without ssl (``try: import ssl / except ImportError: ssl = None``). Nothing in the daemon speaks TLS:
notify hooks and track scripts are processes of their own. Not with ``use_vmac``: pyroute2, which makes the
macvlans, imports ssl itself (pyroute2.netlink.rtnl.probe_msg), and that process has pyroute2's 11 MiB anyway.

An idle IPv4 Backup waits in C between decisions (``VrrpFailover._idlewait``, driver ``_wait_natively``) when
setup.py could build it; ``VRRP_FAILOVER_NATIVE_WAIT=0`` in the environment keeps the Python wait (the benches'
A/B, and a way out should the C wait ever be suspected).

Exit status as the CLI's: 0 after a clean stop, 1 when the host cannot run the router, 2 for input that is not
what the CLI writes (a programming error: the CLI validated it).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

EXIT_CONFIG = 2


def read_config_fd(fd: int) -> object:
    """The JSON the CLI wrote on ``fd`` (read from its start), and the fd closed."""
    with os.fdopen(fd, "rb", closefd=True) as f:
        f.seek(0)
        return json.loads(f.read())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="vrrp-failover (daemon)", description="run validated VRRP instances (started by "
                                                                           "vrrp-failover -c, not by hand)")
    p.add_argument("--config-fd", type=int, required=True)
    p.add_argument("--source", default="(config)", help="the config file's name, for messages")
    p.add_argument("--status-file")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s.%(msecs)03d %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    from VrrpFailover.settings import from_plain

    try:
        config = from_plain(read_config_fd(args.config_fd))  # type: ignore[arg-type]
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"vrrp-failover: cannot read the validated configuration of {args.source} (fd {args.config_fd}): {e}",
              file=sys.stderr)
        return EXIT_CONFIG
    if "asyncio" not in sys.modules and all(c.vmac_name is None for c in config.instances):
        sys.modules.setdefault("ssl", None)  # type: ignore[assignment]  # (see the docstring)
    from VrrpFailover.driver import VrrpDaemon
    from VrrpFailover.lean_loop import LeanLoop

    hot = LeanLoop()  # timers and VRRP sockets; asyncio (netlink, trackers, signals) is stepped inside it
    daemon = VrrpDaemon(config.instances, status_file=args.status_file, sync_groups=config.sync_groups,
                        hot_loop=hot, native_wait=os.environ.get("VRRP_FAILOVER_NATIVE_WAIT", "1") != "0")
    try:
        return hot.run(daemon.run())
    except PermissionError as e:
        print(f"vrrp-failover: not permitted: {e} (raw sockets need root or CAP_NET_RAW/CAP_NET_ADMIN)",
              file=sys.stderr)
        return 1
    except OSError as e:
        print(f"vrrp-failover: cannot start: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

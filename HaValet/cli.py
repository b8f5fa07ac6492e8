"""Command line of HaValet: ``ha-valet -c ha_valet.cfg [-p NAME] [-t] [--status] [--status-file F]``.

- ``-t/--check``: validate the config, print the effective configuration (every command as it will
  run on every host, placeholders filled) and the warnings; exit 0, or 2 on a bad config.
- ``--status``: print the status file written by a running valet (process, state, active host,
  last transition); exit 1 when there is none.
- otherwise run until SIGTERM/SIGINT. A bad config exits 2 before anything runs. ``kill -USR1`` writes
  every thread's stack to stderr (what a valet that does not exit is waiting for); ``kill -USR2`` logs every
  asyncio task and where it waits (what an idle valet that does not exit awaits).
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import io
import json
import logging
import resource
import signal
import sys
from pathlib import Path

from failover_core.shell.cli import add_check_argument, load_or_exit, render_effective, run_check
from HaValet.config import ValetConfig, load_config
from HaValet.valet import Valet, render_status

DESCRIPTION = "a process valet: test/start/stop commands, priorities, stand-by hosts (ha_valet.cfg compatible)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ha-valet", description=DESCRIPTION)
    p.add_argument("-c", "--config", required=True, help="ha_valet.cfg (or .toml) file")
    p.add_argument("-p", "--process", metavar="NAME", help="watch only this logical process")
    p.add_argument("--status", action="store_true", help="print the status written by a running valet and exit")
    p.add_argument("--status-file", help="where to write (or read, with --status) the status JSON "
                                         "(default: status_file from [valet])")
    p.add_argument("-v", "--verbose", action="store_true", help="log every test result too")
    add_check_argument(p)
    return p


def _load(args: argparse.Namespace) -> ValetConfig:
    config = load_config(args.config)
    return config.only(args.process) if args.process else config


def describe_mode(config: ValetConfig) -> list[str]:
    """What ``--check`` says about the mode (stderr): which one, and what a cut link does."""
    hm = config.settings.host_mode
    if hm is None:
        return ["mode: single valet (this valet tests, starts and stops every host's instance through the "
                "commands; it is the one point of failure: set [valet] node, secret and peers for the per-host "
                "mode)"]
    lines = [f"mode: per-host, node {hm.node}, listening on {hm.listen} (whether it can be bound is only known at "
             "start), peers "
             + ", ".join(f"{n}={u}" for n, u in hm.peers.items())
             + "; pairs only (each process has exactly two hosts: the first is the primary)"]
    if hm.standard:
        lines.append(f"standard mode (witness {hm.witness_url}, groups "
                     + ", ".join(hm.witness_group(p.name) for p in config.processes) + "): "
                     + hm.timing_summary()
                     + f"; configure each witness group with timeout = {hm.heartbeat_timeout:g} (heartbeat_timeout)")
        lines.append(f"timing: {hm.fencing.explain()}")
    else:
        lines.append(f"simple mode (no witness): a peer silent for {hm.heartbeat_timeout:g}s is taken as down, "
                     "so a cut link between the valets gives TWO ACTIVE instances until it heals (then the "
                     "secondary stops within a heartbeat); set witness_url and witness_secret to prevent it")
    lines.append("keeper on: if this valet is killed (SIGKILL) its keeper stops the processes at once; if it freezes, "
                 "at its lease's end (with a witness)" if hm.keeper else
                 "keeper off: a valet killed with SIGKILL leaves its processes running (see docs/valet.md, bounds)")
    return lines


def _render_check(config: ValetConfig) -> str:
    """The effective config as JSON (stdout); mode and warnings go to stderr so stdout stays JSON."""
    for line in describe_mode(config):
        print(line, file=sys.stderr)
    for w in config.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return render_effective(_masked(config))


def _masked(config: ValetConfig) -> ValetConfig:
    """Secrets masked: --check output lands in logs and tickets."""
    hm = config.settings.host_mode
    if hm is None:
        return config
    masked = hm.model_copy(update={"secret": f"*** ({len(hm.secret)} characters)",
                                   "witness_secret": None if hm.witness_secret is None
                                   else f"*** ({len(hm.witness_secret)} characters)"})
    return config.model_copy(update={"settings": config.settings.model_copy(update={"host_mode": masked})})


def log_tasks() -> None:
    """kill -USR2: every asyncio task of the valet and the line it waits at, to the log."""
    tasks = asyncio.all_tasks()
    out = io.StringIO()
    for task in sorted(tasks, key=lambda t: t.get_name()):
        task.print_stack(limit=8, file=out)
    logging.getLogger("HaValet").warning("ha-valet: %d asyncio task(s) (kill -USR2):\n%s", len(tasks),
                                         out.getvalue().rstrip())


async def _run(config: ValetConfig, status_file: str | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR2, log_tasks)
    if config.settings.host_mode is not None:
        from HaValet.host_valet import HostValet  # aiohttp is imported only for the per-host mode

        await HostValet(config, status_path=status_file).run(stop)
        return
    await Valet(config, status_path=status_file).run(stop)


def _raise_fd_limit(wanted: int = 65536) -> None:
    """Each command in flight holds two fds (pidfd, output pipe): lift the soft limit toward the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as e:
            logging.getLogger("HaValet").warning("cannot raise the open-files limit from %d: %s", soft, e)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.check:
        return run_check(lambda: _load(args), _render_check)
    config = load_or_exit(lambda: _load(args))
    status_file = args.status_file or config.settings.status_file
    if args.status:
        if not status_file:
            print("ha-valet: no status file (set status_file in [valet] or pass --status-file)", file=sys.stderr)
            return 1
        try:
            data = json.loads(Path(status_file).read_text())
        except (OSError, ValueError) as e:
            print(f"ha-valet: cannot read status file {status_file}: {e}", file=sys.stderr)
            return 1
        print(render_status(data))
        return 0
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _raise_fd_limit()
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # kill -USR1: every thread's stack to stderr
    asyncio.run(_run(config, status_file))
    return 0

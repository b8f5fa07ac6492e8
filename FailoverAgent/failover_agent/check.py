"""``python -m failover_agent --check CONFIG`` (also ``failover-agent --check CONFIG``): validate an agent config.

The convention of the three daemons' ``-t/--check`` (``failover_core.shell.cli``): the effective configuration with
defaults filled in (the secret masked) on stdout and exit 0, or the error (file, key, value, what is allowed) on
stderr and exit 2; a one-line summary and the warnings go to stderr. Nothing of VOLTTRON is imported or touched:
whether the platforms at ``remote_vip`` and ``witness_vip`` answer is only known once the agent runs.
"""

from __future__ import annotations

import argparse
import json
import sys

from failover_agent.config import FailoverConfig, WitnessConfig
from failover_agent.config_file import load_agent_config
from failover_core.shell.cli import EXIT_CONFIG, add_check_argument, run_check


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="failover-agent", description=(
        "the VOLTTRON failover agent (or its witness); it runs under a platform (vctl install), so from a shell "
        "only --check runs"))
    p.add_argument("config", nargs="?", help="the agent config file (JSON or YAML, as vctl stores it)")
    p.add_argument("-c", "--config", dest="config_option", help="the same, as an option")
    add_check_argument(p)
    return p


def summary(cfg: FailoverConfig | WitnessConfig) -> str:
    """One line for stderr: what this config makes the agent do."""
    hmac = "on" if cfg.heartbeat_secret else "OFF"
    if isinstance(cfg, WitnessConfig):
        return f"witness: calls a node down after {cfg.timeout:g}s of silence; heartbeat HMAC {hmac}"
    witness = f", witness {cfg.witness_vip}" if cfg.role.uses_witness else ""
    return (f"{cfg.agent_id}: role {cfg.role.value}, peer {cfg.peer_id} at {cfg.remote_vip}{witness}, managing "
            f"{', '.join(cfg.managed_identities) or 'tag ' + str(cfg.volttron_ctl_tag)}; heartbeat HMAC {hmac}")


def render(cfg: FailoverConfig | WitnessConfig) -> str:
    """The effective config as JSON (stdout), the secret masked; the summary and warnings go to stderr."""
    data = cfg.model_dump(mode="json")
    if cfg.heartbeat_secret:
        data["heartbeat_secret"] = f"*** ({len(cfg.heartbeat_secret)} characters)"
    print(f"failover-agent: {summary(cfg)}", file=sys.stderr)
    if isinstance(cfg, FailoverConfig):
        print(f"failover-agent: timing: {cfg.timing_summary()}", file=sys.stderr)
        for w in cfg.warnings:
            print(f"failover-agent: warning: {w}", file=sys.stderr)
        print("failover-agent: not checked: whether the platforms named by remote_vip/witness_vip answer (only "
              "known at start)", file=sys.stderr)
    if cfg.auth_warning:
        print(f"failover-agent: warning: {cfg.auth_warning}", file=sys.stderr)
    return json.dumps(data, indent=2)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    path = args.config or args.config_option
    if not args.check or not path:
        print("failover-agent: from a shell only `failover-agent --check CONFIG` runs (the agent itself runs under a "
              "VOLTTRON platform)", file=sys.stderr)
        return EXIT_CONFIG
    try:
        return run_check(lambda: load_agent_config(path), render)
    except SystemExit as e:  # load_or_exit's exit 2 on a bad config
        return int(e.code or 0)


if __name__ == "__main__":
    raise SystemExit(main())

"""Command line of DockerFailover: ``docker-failover --server server1 [--config /app/config.py] [-t]``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path

from DockerFailover.config import DEFAULT_CONFIG_PATH, FENCE_KEEPER_SPAWN, NodeConfig, load_node_config
from DockerFailover.shell.container_check import spawned_keeper_unsafe
from failover_core.shell.cli import EXIT_CONFIG, add_check_argument, load_or_exit, run_check

DESCRIPTION = "active/passive Docker container failover between two hosts (HTTP heartbeats)"


def default_config_path() -> str:
    env = os.environ.get("DOCKER_FAILOVER_CONFIG")
    if env:
        return env
    return DEFAULT_CONFIG_PATH if os.path.exists(DEFAULT_CONFIG_PATH) else "config.py"


def render_without_secret(cfg: NodeConfig) -> str:
    """The effective configuration as JSON, the shared secret masked (``-t`` output lands in logs)."""
    data = cfg.model_dump(mode="json")
    data["secret"] = f"*** ({len(cfg.secret)} characters)"
    if cfg.witness is not None:
        data["witness"]["secret"] = f"*** ({len(cfg.witness.secret)} characters)"
        timing = cfg.fencing
        assert timing is not None
        data["fencing"] = {"timeout": timing.timeout, "kill_bound": timing.stop_bound,
                           "lease": round(timing.lease, 3), "margin": round(timing.margin, 3),
                           "down_after": round(timing.down_after, 3)}
    data["warnings"] = list(cfg.warnings)
    data["mode"] = cfg.mode
    data["mode_summary"] = cfg.mode_summary()
    return json.dumps(data, indent=2)


def spawn_in_container_problem(cfg: NodeConfig, pid: int | None = None, root: Path = Path("/"),
                               peer_pid: int | str | None = "ask") -> str | None:
    """Standard mode with a spawned keeper, in a container whose end would not end the managed containers: the
    keeper would die with the agent's container (DockerFailover.shell.container_check). The message names the key
    and the fix; None: no problem."""
    if cfg.witness is None or cfg.fence_keeper != FENCE_KEEPER_SPAWN:
        return None
    found = spawned_keeper_unsafe(cfg.docker_url, os.getpid() if pid is None else pid, root, peer_pid)
    if found is None:
        return None
    return (f"standard mode with fence_keeper = \"spawn\" in a container ({found.evidence}; {found.why}): the fence "
            "keeper would be the agent's child and die with the agent's container, so a killed agent container would "
            "leave the containers running beside the peer's. Run the keeper as a container of its own (the same "
            "image: python -m DockerFailover.fence --listen /run/docker-failover/keeper.sock, with the Docker socket "
            "and a volume shared with the agent at /run/docker-failover; DockerFailover/deploy/compose.yaml's "
            "`keeper` service) and set fence_keeper = \"/run/docker-failover/keeper.sock\", or run the agent on the "
            "host (systemd).")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="docker-failover", description=DESCRIPTION)
    p.add_argument("-s", "--server", default=os.environ.get("DOCKER_FAILOVER_SERVER"),
                   help="which server of the config this agent is (e.g. server1); env DOCKER_FAILOVER_SERVER")
    p.add_argument("-c", "--config", default=None,
                   help="config file: .py (literal assignments, never executed), .toml or .json "
                        f"(default: $DOCKER_FAILOVER_CONFIG, else {DEFAULT_CONFIG_PATH} if it exists, "
                        "else ./config.py)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    add_check_argument(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.server:
        print("docker-failover: --server NAME is required (the name of this host in the config)", file=sys.stderr)
        return EXIT_CONFIG
    path = args.config or default_config_path()

    def load() -> NodeConfig:
        return load_node_config(path, args.server)

    if args.check:
        rc = run_check(load, render_without_secret)
        cfg = load_or_exit(load)
        problem = spawn_in_container_problem(cfg)
        if problem is not None:
            print(f"docker-failover: {problem}", file=sys.stderr)
            return EXIT_CONFIG
        print(f"docker-failover: {cfg.mode_summary()}", file=sys.stderr)
        for w in cfg.warnings:
            print(f"docker-failover: warning: {w}", file=sys.stderr)
        print(f"docker-failover: not checked: whether {cfg.listen}:{cfg.port} can be bound and the peer at "
              f"{cfg.endpoint} answers (only known at start)", file=sys.stderr)
        return rc
    cfg = load_or_exit(load)
    problem = spawn_in_container_problem(cfg)
    if problem is not None:
        print(f"docker-failover: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    logging.basicConfig(level=getattr(logging, args.log_level),
                        format=f"%(asctime)s {cfg.name} %(levelname)s %(name)s: %(message)s")
    from DockerFailover.shell.agent import Agent  # the I/O side is imported only to run

    try:
        agent = Agent(cfg)
    except OSError as e:
        print(f"docker-failover: {e}", file=sys.stderr)
        return 1
    return asyncio.run(agent.run())

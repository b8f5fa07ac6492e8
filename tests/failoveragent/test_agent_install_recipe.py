"""The install recipe, as the docs show it, run on three real platforms (standard mode: primary, secondary, witness).

docs/failoveragent.md ("Install") and README.md carry the same blocks, each a ```sh fence after a marker
``<!-- recipe: HOST ... -->`` naming the hosts it runs on. The test reads the blocks from the docs and runs each
command exactly as written, in order, with ``bash`` as the platform user in that host's own checkout (a copy of
FailoverAgent/ and config/), VOLTTRON's venv first on PATH, VOLTTRON_HOME set; the variables the docs use come
from where the docs say: ``ROLE`` is the host, ``PRIMARY_AGENT_KEY``/``SECONDARY_AGENT_KEY`` are what the
documented ``vctl auth agentcred platform.failover`` printed there. The config files the docs say to edit are
the repository's examples with the addresses, ``vctl auth servercred`` keys, secret and managed agent filled in.

Each command must exit 0 with no error text, and say what it did (vctl's auth/authz commands exit 0 even when
they fail). Then the agents must run (``vctl status``) and work: the primary starts the managed agent, the
secondary decides ``secondary.primary_up.witness_up`` (so heartbeats and witness calls cross with the
registered keys) and does not run it.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labs.volttron_cluster import _DECISION, SECRET, SERVICE, Wheels
from labs.volttron_platform import Platform, chown_tree, make_shared_dir, private_venv

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
HOSTS = ("primary", "secondary", "witness")
BLOCK = re.compile(r"<!-- recipe: ([a-z ]+) -->\n```sh\n(.*?)```", re.S)
IDENTITY = "platform.failover"
ERROR = re.compile(r"error|unable|traceback|not running", re.I)


def recipe(path: Path) -> list[tuple[list[str], list[str]]]:
    """The (hosts, commands) blocks of a document, in order; a command is one logical shell line (continuations
    joined), comment-only lines dropped."""
    blocks = []
    for hosts, body in BLOCK.findall(path.read_text()):
        lines, current = [], ""
        for raw in body.splitlines():
            if not current and (not raw.strip() or raw.lstrip().startswith("#")):
                continue
            current += raw.rstrip()
            if current.endswith("\\"):
                current = current[:-1].rstrip() + " "
                continue
            lines.append(" ".join(current.split()))
            current = ""
        blocks.append((hosts.split(), lines))
    return blocks


def test_readme_and_docs_show_the_same_recipe() -> None:
    docs, readme = recipe(REPO / "docs" / "failoveragent.md"), recipe(REPO / "README.md")
    assert docs == readme
    commands = [c for _, cmds in docs for c in cmds]
    # the three the issue names are there, so a vanished block cannot pass unnoticed
    assert "pip wheel --no-deps --no-build-isolation ./FailoverAgent -w dist" in commands
    assert any(c.startswith(f"vctl authz add agent {IDENTITY} --rpc-capabilities") for c in commands)
    assert any(c.startswith(f"vctl auth add {IDENTITY}.primary --publickey=") for c in commands)
    assert all(set(hosts) <= set(HOSTS) for hosts, _ in docs)


@pytest.fixture(scope="module")
def hosts() -> Iterator[dict[str, Platform]]:
    base = make_shared_dir("ft-agent-recipe-")
    venv = private_venv(base / "platform-venv")  # the recipe's vctl install writes into the venv
    platforms = {n: Platform(n, base, venv=venv) for n in HOSTS}
    try:
        for p in platforms.values():
            p.start()
            checkout = p.root / "checkout"  # each host its own checkout of the repository
            shutil.copytree(REPO / "FailoverAgent", checkout / "FailoverAgent",
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "dist", "build"))
            shutil.copytree(REPO / "config", checkout / "config")
            chown_tree(checkout, p.user)
        yield platforms
    finally:
        for p in platforms.values():
            p.stop()
        shutil.rmtree(base, ignore_errors=True)


def write_configs(hosts: dict[str, Platform], serverkeys: dict[str, str]) -> None:
    """What the docs ask the operator to edit: the examples in config/, filled in for these platforms."""
    for name, p in hosts.items():
        config = p.root / "checkout" / "config" / f"failoveragent-{name}.json"
        cfg = json.loads(config.read_text())
        cfg.update(heartbeat_secret=SECRET, timeout=4)
        if name != "witness":
            peer = "secondary" if name == "primary" else "primary"
            cfg.update(remote_vip=hosts[peer].address, remote_serverkey=serverkeys[peer],
                       witness_vip=hosts["witness"].address, witness_serverkey=serverkeys["witness"],
                       agent_vip_identity=SERVICE, heartbeat_period=1, failback_delay=0)
        config.write_text(json.dumps(cfg, indent=2))
        chown_tree(config, p.user)


def test_the_documented_commands_install_a_working_pair_and_witness(hosts: dict[str, Platform]) -> None:
    blocks = recipe(REPO / "docs" / "failoveragent.md")
    assert blocks
    _, service_wheel = Wheels.get()
    for name in ("primary", "secondary"):  # the operator's own managed agent, installed and stopped
        hosts[name].install(service_wheel, SERVICE, {}, tag="service")
    variables: dict[str, str] = {}
    serverkeys: dict[str, str] = {}
    ran: list[str] = []
    for block_hosts, commands in blocks:
        for name in block_hosts:
            p = hosts[name]
            for command in commands:
                r = p.shell(command, cwd=p.root / "checkout", env={"ROLE": name, **variables})
                said = f"[{name}] $ {command}\nrc={r.returncode}\n{r.stdout}\n{r.stderr}"
                assert r.returncode == 0 and not ERROR.search(r.stdout + r.stderr), said
                words = command.split()
                if words[:2] == ["vctl", "install"]:
                    assert re.search(r"Agent [0-9a-f-]{36} installed", r.stdout), said
                elif words[:3] == ["vctl", "authz", "add"]:
                    assert "Added Agent" in r.stdout, said
                elif words[:3] == ["vctl", "auth", "add"]:
                    assert "with provided public key" in r.stdout, said  # an empty key would make new ones
                elif words[:3] == ["vctl", "auth", "servercred"]:
                    serverkeys[name] = r.stdout.split()[-1]
                    assert serverkeys[name] == p.serverkey(), said
                elif words[:3] == ["vctl", "auth", "agentcred"]:
                    key = r.stdout.split()[-1]
                    assert key == p.agent_publickey(IDENTITY), said
                    variables[f"{name.upper()}_AGENT_KEY"] = key
                ran.append(f"{name}: {command}")
        if set(serverkeys) == set(HOSTS) and "configs" not in ran:
            write_configs(hosts, serverkeys)  # "Then edit config/failoveragent-*.json"
            ran.append("configs")
    assert "configs" in ran, "the recipe never printed every platform's server key (vctl auth servercred)"

    for name, identity in (("primary", IDENTITY), ("secondary", IDENTITY), ("witness", "volttron.central")):
        status = hosts[name].vctl("status")
        assert re.search(rf"{re.escape(identity)}\s.*running \[\d+\]", status), status

    # and they work: the primary runs the managed agent, the secondary hears the primary and the witness
    def service_running(name: str) -> bool:
        return bool(re.search(rf"{re.escape(SERVICE)}\s.*running \[\d+\]", hosts[name].vctl("status")))

    def secondary_decided() -> bool:
        log = hosts["secondary"].log
        return any((m := _DECISION.match(line)) and m.group(3) == "secondary.primary_up.witness_up"
                   for line in log.read_text(errors="replace").splitlines()) if log.exists() else False

    deadline = time.monotonic() + 30
    while not (service_running("primary") and secondary_decided()):
        assert time.monotonic() < deadline, "the installed agents did not converge (primary runs, secondary holds)"
        time.sleep(0.5)
    assert not service_running("secondary")

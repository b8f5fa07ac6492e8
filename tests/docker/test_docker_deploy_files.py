"""The shipped examples and deployment files: configs validate, the Dockerfile is well-formed and
copies paths that exist, the compose file and the systemd unit point at the right things."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from DockerFailover.config import load_node_config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "DockerFailover" / "deploy"
INSTRUCTIONS = {"FROM", "ARG", "ENV", "WORKDIR", "COPY", "ADD", "RUN", "VOLUME", "HEALTHCHECK", "ENTRYPOINT",
                "CMD", "EXPOSE", "USER", "LABEL", "STOPSIGNAL", "SHELL", "ONBUILD"}


@pytest.mark.parametrize("name", ["docker-config.py", "docker-config.toml", "docker-config.json"])
def test_example_configs_validate_and_agree(name: str) -> None:
    for server in ("server1", "server2"):
        assert load_node_config(REPO / "config" / name, server) == \
            load_node_config(REPO / "config" / "docker-config.py", server)


def dockerfile_instructions(text: str) -> list[tuple[int, str, str]]:
    """(line, KEYWORD, arguments) per logical instruction; raises on a broken continuation."""
    out: list[tuple[int, str, str]] = []
    pending: list[str] = []
    start = 0
    lines = text.splitlines()
    for i, raw in enumerate(lines, 1):
        if raw.rstrip() != raw and raw.rstrip().endswith("\\"):
            raise AssertionError(f"line {i}: whitespace after the continuation backslash")
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and not stripped:
            raise AssertionError(f"line {i}: empty line inside a continued instruction (started line {start})")
        if not pending:
            start = i
        if stripped.endswith("\\"):
            pending.append(stripped[:-1])
            if i == len(lines):
                raise AssertionError(f"line {i}: file ends inside a continued instruction")
            continue
        pending.append(stripped)
        logical = " ".join(pending)
        pending = []
        keyword, _, args = logical.partition(" ")
        out.append((start, keyword.upper(), args.strip()))
    return out


def test_dockerfile_is_well_formed_and_copies_existing_paths() -> None:
    ins = dockerfile_instructions((DEPLOY / "Dockerfile").read_text())
    assert ins[0][1] in ("ARG", "FROM")
    for line, kw, args in ins:
        assert kw in INSTRUCTIONS, f"line {line}: unknown instruction {kw}"
        if kw == "COPY" and "--from=" not in args:  # a COPY --from copies out of an earlier stage
            for src in [a for a in args.split() if not a.startswith("--")][:-1]:
                assert (REPO / src).exists(), f"line {line}: COPY source {src} does not exist"
        if kw == "RUN":
            assert not re.search(r"&&\s*$|\\\s*$", args), f"line {line}: dangling && or backslash"
    entry = [a for _, kw, a in ins if kw == "ENTRYPOINT"]
    assert entry == ['["docker-failover"]']
    assert "docker-failover=DockerFailover.cli:main" in (REPO / "setup.py").read_text()


def test_dockerfile_checker_catches_a_broken_continuation() -> None:
    with pytest.raises(AssertionError, match="empty line"):
        dockerfile_instructions("FROM x\nRUN a \\\n\n    && b\n")
    with pytest.raises(AssertionError, match="whitespace after"):
        dockerfile_instructions("FROM x\nRUN a \\ \n    && b\n")


def test_compose_file_runs_the_agent_and_only_creates_the_managed_container() -> None:
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    agent = doc["services"]["failover"]
    assert (DEPLOY / agent["build"]["context"] / agent["build"]["dockerfile"]).resolve() == \
        (DEPLOY / "Dockerfile").resolve()
    assert agent["network_mode"] == "host"
    assert any(v.endswith(":/app/config.py:ro") for v in agent["volumes"])
    assert any(v.startswith("/var/run/docker.sock:") for v in agent["volumes"])
    web = doc["services"]["web"]
    assert web["profiles"] == ["managed"] and web["container_name"] == "web" and web["init"] is True
    # standard mode's fence keeper: a service of its own, the same image, started before the agent, sharing the
    # directory of its unix socket with it, with the Docker socket and no network
    keeper = doc["services"]["keeper"]
    assert keeper["image"] == agent["image"] and keeper["build"] == agent["build"]
    assert keeper["entrypoint"] == ["python", "-m", "DockerFailover.fence"]
    sock = keeper["command"][keeper["command"].index("--listen") + 1]
    assert sock == "/run/docker-failover/keeper.sock" and keeper["network_mode"] == "none"
    assert "keeper" in agent["depends_on"]
    shared = [v for v in keeper["volumes"] if v.endswith(":/run/docker-failover")]
    assert shared and shared[0] in agent["volumes"] and shared[0].split(":")[0] in doc["volumes"]
    assert any(v.startswith("/var/run/docker.sock:") for v in keeper["volumes"])
    assert keeper["healthcheck"]["test"][-2:] == ["--ping", sock]


def test_systemd_unit_runs_the_console_script_per_server() -> None:
    text = (DEPLOY / "docker-failover@.service").read_text()
    assert re.search(r"^ExecStart=\S+/docker-failover --server %i --config \S+$", text, re.M)
    assert "Restart=always" in text and "KillSignal=SIGTERM" in text
    assert "KillMode=process" in text  # the fence keeper outlives the agent (docs/docker.md, standard mode)
    if shutil.which("systemd-analyze"):
        r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(DEPLOY / "docker-failover@.service")],
                           capture_output=True, text=True, timeout=60)
        # a template cannot be verified without an instance; anything else must be clean
        bad = [ln for ln in r.stderr.splitlines() if "template" not in ln.lower() and "instance" not in ln.lower()
               and "No such file" not in ln and "Executable path" not in ln]
        assert not bad, r.stderr

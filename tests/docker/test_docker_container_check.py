"""Standard mode's refusal of a spawned fence keeper in a container (DockerFailover.shell.container_check and the
command line), and the ``fence_keeper`` key. The container facts are read from made-up /proc and marker files;
the real refusal, inside a container of the image, is in test_docker_keeper_container.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from DockerFailover.cli import spawn_in_container_problem
from DockerFailover.config import load_node_config
from DockerFailover.shell.container_check import container_ends_with, container_evidence, spawned_keeper_dies_with_agent
from failover_core.config import ConfigError

GOOD = '''secret = "0123456789abcdef-secret"
containers = ["web"]
servers = {
    "server1": {"endpoint": "http://10.0.0.12:8700", "port": 8700},
    "server2": {"endpoint": "http://10.0.0.11:8700", "port": 8700},
}
'''
WITNESS = 'witness = {"url": "http://10.0.0.13:8790", "secret": "witness-secret-0123456789", "kill_bound": 0.5}\n'


def write(tmp_path: Path, text: str, name: str = "config.py") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def fake_root(tmp_path: Path, procs: dict[int, tuple[str, int]], *, marker: str | None = "/.dockerenv",
              cgroup: str = "0::/\n") -> Path:
    """A root with ``marker`` and a /proc of ``pid: (comm, ppid)``."""
    root = tmp_path / "root"
    for pid, (comm, ppid) in procs.items():
        d = root / "proc" / str(pid)
        d.mkdir(parents=True)
        (d / "stat").write_text(f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 0 0\n")
        (d / "comm").write_text(comm + "\n")
    (root / "proc" / "1").mkdir(parents=True, exist_ok=True)
    (root / "proc" / "1" / "cgroup").write_text(cgroup)
    if marker is not None:
        (root / marker.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (root / marker.lstrip("/")).write_text("")
    return root


def test_the_agent_as_pid_1_or_as_the_only_child_of_an_init_dies_with_its_container(tmp_path: Path) -> None:
    root = fake_root(tmp_path, {1: ("docker-failove", 0)})
    found = spawned_keeper_dies_with_agent(1, root)
    assert found is not None and found.evidence == "/.dockerenv" and "PID 1" in found.why
    root = fake_root(tmp_path / "init", {1: ("docker-init", 0), 7: ("docker-failove", 1)})
    found = spawned_keeper_dies_with_agent(7, root)
    assert found is not None and "only child of PID 1 (docker-init)" in found.why


def test_an_agent_among_other_services_or_outside_any_container_passes(tmp_path: Path) -> None:
    # a system container (systemd as PID 1 with other services): the keeper outlives the agent as on a host
    root = fake_root(tmp_path / "sys", {1: ("systemd", 0), 40: ("sshd", 1), 41: ("docker-failove", 1)},
                     marker="/run/.containerenv")
    assert container_evidence(root) == "/run/.containerenv" and container_ends_with(41, root / "proc") is None
    # started by something else (a shell, pytest, a supervisor): not the container's main process
    root = fake_root(tmp_path / "dev", {1: ("process_api", 0), 9: ("bash", 1), 10: ("python", 9)})
    assert spawned_keeper_dies_with_agent(10, root) is None
    # a host: no marker, no runtime in PID 1's cgroup
    root = fake_root(tmp_path / "host", {1: ("systemd", 0)}, marker=None, cgroup="0::/init.scope\n")
    assert container_evidence(root) is None and spawned_keeper_dies_with_agent(1, root) is None
    root = fake_root(tmp_path / "v1", {1: ("sh", 0)}, marker=None, cgroup="12:pids:/docker/0123abcd\n")
    assert container_evidence(root) == "/proc/1/cgroup names docker"


def test_standard_mode_with_spawn_is_refused_naming_the_key_and_the_fix(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    standard = load_node_config(write(tmp_path, GOOD + WITNESS), "server1")
    root = fake_root(tmp_path, {1: ("docker-failove", 0)})
    msg = spawn_in_container_problem(standard, pid=1, root=root)
    assert msg is not None
    assert 'fence_keeper = "spawn" in a container (/.dockerenv; the agent is PID 1' in msg
    assert "python -m DockerFailover.fence --listen /run/docker-failover/keeper.sock" in msg
    assert 'fence_keeper = "/run/docker-failover/keeper.sock"' in msg
    keeper = load_node_config(write(tmp_path, GOOD + WITNESS + 'fence_keeper = "/run/k/keeper.sock"\n', "k.py"),
                              "server1")
    assert keeper.keeper_socket == "/run/k/keeper.sock" and spawn_in_container_problem(keeper, pid=1, root=root) is None
    simple = load_node_config(write(tmp_path, GOOD, "simple.py"), "server1")
    assert spawn_in_container_problem(simple, pid=1, root=root) is None  # no keeper in simple mode


@pytest.mark.parametrize(("value", "words"), [
    ('"keeper.sock"', 'must be "spawn" or the absolute path'),
    ('"/run/k/"', 'must be "spawn" or the absolute path'),
    ('"' + "/x" * 60 + '"', "at most 107 characters"),
    ("True", "valid string"),
])
def test_bad_fence_keeper_values_name_the_key(tmp_path: Path, value: str, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_node_config(write(tmp_path, GOOD + WITNESS + f"fence_keeper = {value}\n"), "server1")
    assert "fence_keeper" in str(e.value) and words in str(e.value), str(e.value)


def test_a_keeper_socket_in_simple_mode_is_a_warning(tmp_path: Path) -> None:
    cfg = load_node_config(write(tmp_path, GOOD + 'fence_keeper = "/run/k/keeper.sock"\n'), "server1")
    assert cfg.keeper_socket is None and "standard mode only" in cfg.warnings[0]

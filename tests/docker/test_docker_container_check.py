"""Standard mode's refusal of a spawned fence keeper in a container whose end would not end the managed containers
(DockerFailover.shell.container_check and the command line), and the ``fence_keeper`` key. The container facts
are read from made-up /proc and marker files, the Docker daemon's peer PID from real unix sockets (ours: a visible
peer); PID 0 (a daemon outside our PID namespace) is what a container of the image sees, checked for real in
test_docker_keeper_container.py."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from DockerFailover.cli import spawn_in_container_problem
from DockerFailover.config import load_node_config
from DockerFailover.shell.container_check import (
    container_ends_with,
    container_evidence,
    socket_peer_pid,
    spawned_keeper_unsafe,
)
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


def test_a_daemon_outside_our_pid_namespace_or_over_the_network_makes_a_spawned_keeper_unsafe(
        tmp_path: Path) -> None:
    root = fake_root(tmp_path, {1: ("docker-failove", 0)})
    found = spawned_keeper_unsafe("unix:///var/run/docker.sock", 1, root, peer_pid=0)
    assert found is not None and found.evidence == "/.dockerenv" and "outside this container's PID namespace" in \
        found.why
    found = spawned_keeper_unsafe("tcp://10.0.0.5:2375", 77, root)
    assert found is not None and "over the network" in found.why
    # the daemon inside our own PID namespace (this suite's lab: dockerd are our children): it ends with us
    assert spawned_keeper_unsafe("unix:///var/run/docker.sock", 1, root, peer_pid=4242) is None
    # outside any container nothing is asked
    host = fake_root(tmp_path / "host", {1: ("systemd", 0)}, marker=None, cgroup="0::/init.scope\n")
    assert spawned_keeper_unsafe("tcp://10.0.0.5:2375", 1, host) is None


def test_the_peer_pid_of_a_real_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "d.sock")
    assert socket_peer_pid(path) is None  # nothing there
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lst.bind(path)
    lst.listen(1)
    try:
        assert socket_peer_pid(path) == os.getpid()  # the listener is us, visible in our namespace
    finally:
        lst.close()


def test_a_daemon_that_does_not_answer_falls_back_to_the_containers_shape(tmp_path: Path) -> None:
    root = fake_root(tmp_path, {1: ("docker-failove", 0)})
    found = spawned_keeper_unsafe(None, 1, root, peer_pid=None)
    assert found is not None and "PID 1" in found.why and "did not answer" in found.why
    root = fake_root(tmp_path / "init", {1: ("docker-init", 0), 7: ("docker-failove", 1)})
    found = spawned_keeper_unsafe(None, 7, root, peer_pid=None)
    assert found is not None and "only child of PID 1 (docker-init)" in found.why
    # a system container (systemd as PID 1 with other services): the keeper outlives the agent as on a host
    root = fake_root(tmp_path / "sys", {1: ("systemd", 0), 40: ("sshd", 1), 41: ("docker-failove", 1)},
                     marker="/run/.containerenv")
    assert container_evidence(root) == "/run/.containerenv" and container_ends_with(41, root / "proc") is None
    # started by something else (a shell, a supervisor): not the container's main process
    root = fake_root(tmp_path / "dev", {1: ("process_api", 0), 9: ("bash", 1), 10: ("python", 9)})
    assert spawned_keeper_unsafe(None, 10, root, peer_pid=None) is None
    root = fake_root(tmp_path / "v1", {1: ("sh", 0)}, marker=None, cgroup="12:pids:/docker/0123abcd\n")
    assert container_evidence(root) == "/proc/1/cgroup names docker"


def test_standard_mode_with_spawn_is_refused_naming_the_key_and_the_fix(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    standard = load_node_config(write(tmp_path, GOOD + WITNESS), "server1")
    root = fake_root(tmp_path, {1: ("docker-failove", 0)})
    msg = spawn_in_container_problem(standard, pid=1, root=root, peer_pid=0)
    assert msg is not None
    assert 'fence_keeper = "spawn" in a container (/.dockerenv; the Docker daemon behind /var/run/docker.sock runs ' \
        "outside this container's PID namespace" in msg
    assert "python -m DockerFailover.fence --listen /run/docker-failover/keeper.sock" in msg
    assert 'fence_keeper = "/run/docker-failover/keeper.sock"' in msg
    keeper = load_node_config(write(tmp_path, GOOD + WITNESS + 'fence_keeper = "/run/k/keeper.sock"\n', "k.py"),
                              "server1")
    assert keeper.keeper_socket == "/run/k/keeper.sock"
    assert spawn_in_container_problem(keeper, pid=1, root=root, peer_pid=0) is None
    simple = load_node_config(write(tmp_path, GOOD, "simple.py"), "server1")
    assert spawn_in_container_problem(simple, pid=1, root=root, peer_pid=0) is None  # no keeper in simple mode


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

"""Would a spawned fence keeper die while the containers it guards run on? Then standard mode must not spawn it.

A spawned keeper is the agent's child, in the agent's PID namespace. In a container, the kernel kills every process
of that namespace when the container's init exits (``docker kill`` of the agent's container, or the agent's crash
when the agent is that init), the keeper included. That is harmless when the Docker daemon (with its container
shims) lives in the same PID namespace: it dies too, and the managed containers with it, as in a node crash (this
toolkit's own test machine runs its lab daemons so). It breaks the keeper's promise when the daemon runs outside:
the agent's container reaches the host's Docker through a mounted socket, the managed containers outlive it, and
the peer takes over beside them (measured: 5.1 s of two copies, bench/docker_keeper_in_container.py).

So, in standard mode with ``fence_keeper = "spawn"``, the agent refuses to run when

- it is in a container: ``/.dockerenv``, ``/run/.containerenv``, or a container runtime named in
  ``/proc/1/cgroup``; and
- its Docker daemon is outside that container's PID namespace: reached over the network (``tcp://``, ``ssh://``),
  or a unix socket whose peer process is not visible here (``SO_PEERCRED`` reports PID 0 for a process of a PID
  namespace that is not ours or a descendant). When the socket cannot be asked (the daemon is down at start), the
  fallback is the shape of the container: the agent is PID 1, or the only child of PID 1 (``docker run --init``,
  tini, ``sh -c``).
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

MARKERS = ("/.dockerenv", "/run/.containerenv")
CGROUP_WORDS = ("docker", "containerd", "kubepods", "libpod", "crio")
DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"


@dataclass(frozen=True, slots=True)
class ContainerFinding:
    evidence: str  # what says this is a container
    why: str  # why the managed containers would outlive the agent's container (and its spawned keeper)


def container_evidence(root: Path = Path("/")) -> str | None:
    """What shows we run in a container, or None."""
    for marker in MARKERS:
        if (root / marker.lstrip("/")).exists():
            return marker
    try:
        cgroup = (root / "proc/1/cgroup").read_text()
    except OSError:
        return None
    for word in CGROUP_WORDS:
        if word in cgroup:
            return f"/proc/1/cgroup names {word}"
    return None


def docker_socket_path(docker_url: str | None) -> str | None:
    """The unix socket of ``docker_url`` (None: DOCKER_HOST, else the default); None for a network daemon."""
    url = docker_url or os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_DOCKER_SOCKET}"
    parts = urlsplit(url)
    return parts.path if parts.scheme == "unix" else None


def socket_peer_pid(path: str, timeout: float = 2.0) -> int | None:
    """The PID of the process listening on unix socket ``path`` as seen from our PID namespace (0: it is in a
    namespace we cannot see); None when the socket cannot be reached."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(path)
        pid, _uid, _gid = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                           struct.calcsize("3i")))
        return int(pid)
    except OSError:
        return None
    finally:
        s.close()


def _ppid(proc: Path, pid: int) -> int | None:
    """The parent of ``pid`` from ``/proc/PID/stat`` (the field after the command in parentheses)."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    try:
        return int(fields[1])
    except (IndexError, ValueError):
        return None


def _comm(proc: Path, pid: int) -> str:
    try:
        return (proc / str(pid) / "comm").read_text().strip()
    except OSError:
        return "?"


def container_ends_with(pid: int, proc: Path = Path("/proc")) -> str | None:
    """Why the container ends when process ``pid`` ends (None: it does not, as far as we can tell)."""
    if pid == 1:
        return "the agent is PID 1 of its container"
    if _ppid(proc, pid) != 1:
        return None
    for entry in proc.iterdir():
        if entry.name.isdigit() and int(entry.name) not in (1, pid) and _ppid(proc, int(entry.name)) == 1:
            return None
    return f"the agent is the only child of PID 1 ({_comm(proc, 1)}), which exits with it"


def spawned_keeper_unsafe(docker_url: str | None, pid: int, root: Path = Path("/"),
                          peer_pid: int | str | None = "ask") -> ContainerFinding | None:
    """Why a keeper spawned by process ``pid`` could die while the managed containers run on (None: it cannot, as
    far as we can tell). ``peer_pid``: the Docker socket's peer as ``socket_peer_pid`` says ("ask": ask it)."""
    evidence = container_evidence(root)
    if evidence is None:
        return None
    path = docker_socket_path(docker_url)
    if path is None:
        where = docker_url or "DOCKER_HOST"
        return ContainerFinding(evidence, f"the Docker daemon is reached over the network ({where}), so the managed "
                                          "containers outlive this container")
    peer = socket_peer_pid(path) if peer_pid == "ask" else peer_pid
    if peer == 0:
        return ContainerFinding(evidence, f"the Docker daemon behind {path} runs outside this container's PID "
                                          "namespace, so the managed containers outlive this container")
    if peer is None:  # the daemon does not answer now: judge by the container's shape
        why = container_ends_with(pid, root / "proc")
        return None if why is None else ContainerFinding(evidence, f"{why} (the Docker daemon behind {path} did "
                                                                   "not answer, so its whereabouts are unknown)")
    return None  # the daemon is in our PID namespace: it and the managed containers end with this container

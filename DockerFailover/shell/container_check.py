"""Does the agent run as the main process of a container? Then a spawned fence keeper would die with it.

A child in the agent's container shares its PID namespace; when the namespace's init exits, the kernel kills every
other process in it, so ``docker kill`` of the agent's container (or the agent's crash, when the agent is the
container) takes the keeper along, and the containers it guards run on beside the peer's (measured: 5.1 s of
two copies). The agent checks this at start in standard mode with ``fence_keeper = "spawn"`` and refuses to run.

Two facts, both needed: **a container** (``/.dockerenv``, ``/run/.containerenv``, or a container runtime named in
``/proc/1/cgroup``), and **the container ends with the agent**: the agent is PID 1 there, or PID 1 is its parent
and has no other child (``docker run --init``'s docker-init, tini, dumb-init, ``sh -c``). An agent that is one
service among others in a system container (LXC or systemd-nspawn running systemd, or a development container)
passes: its keeper outlives it as on a host.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MARKERS = ("/.dockerenv", "/run/.containerenv")
CGROUP_WORDS = ("docker", "containerd", "kubepods", "libpod", "crio")


@dataclass(frozen=True, slots=True)
class ContainerFinding:
    evidence: str  # what says this is a container
    why: str  # why the agent's end is the container's end


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


def container_ends_with(pid: int, proc: Path = Path("/proc")) -> str | None:
    """Why the container ends when process ``pid`` ends (None: it does not, as far as we can tell)."""
    if pid == 1:
        return "the agent is PID 1 of its container"
    ppid = _ppid(proc, pid)
    if ppid != 1:
        return None
    others = []
    for entry in proc.iterdir():
        if entry.name.isdigit() and int(entry.name) not in (1, pid) and _ppid(proc, int(entry.name)) == 1:
            others.append(entry.name)
    if others:
        return None
    return f"the agent is the only child of PID 1 ({_comm(proc, 1)}), which exits with it"


def spawned_keeper_dies_with_agent(pid: int, root: Path = Path("/")) -> ContainerFinding | None:
    evidence = container_evidence(root)
    if evidence is None:
        return None
    why = container_ends_with(pid, root / "proc")
    return None if why is None else ContainerFinding(evidence=evidence, why=why)

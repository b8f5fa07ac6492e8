"""The fence keeper's rules (DockerFailover.fence.FenceKeeper) over a real pipe, with a recording kill function;
its real kill through a Docker socket is exercised in test_docker_standard_lab.py (agent SIGKILL, SIGSTOP)."""

from __future__ import annotations

import os
import threading
import time

from DockerFailover.fence import FenceKeeper, docker_connection


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[float, list[str]]] = []

    def __call__(self, docker_url: str | None, names: list[str]) -> list[str]:
        self.calls.append((time.monotonic(), list(names)))
        return ["killed"] * len(names)


def run_keeper(lines: list[str], *, linger: float = 0.0) -> tuple[list[tuple[float, list[str]]], Recorder, int,
                                                                 FenceKeeper]:
    """Feed ``lines``, wait ``linger`` s, note the kills so far, then close the pipe (end-of-file)."""
    rec = Recorder()
    keeper = FenceKeeper("unix:///nonexistent.sock", ["web", "db"], kill=rec)
    r, w = os.pipe()
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(keeper.run(r)))
    t.start()
    for line in lines:
        os.write(w, line.encode())
    time.sleep(linger)
    before_eof = list(rec.calls)
    os.close(w)
    t.join(5)
    os.close(r)
    return before_eof, rec, result[0] if result else -1, keeper


def test_end_of_file_while_holding_kills_at_once() -> None:
    t0 = time.monotonic()
    _, rec, rc, _ = run_keeper([f"hold {time.monotonic() + 60:.6f}\n"])
    assert rc == 0 and len(rec.calls) == 1 and rec.calls[0][1] == ["web", "db"]
    assert rec.calls[0][0] - t0 < 1.0


def test_an_expired_lease_kills_and_the_keeper_stays_for_a_new_one() -> None:
    until = time.monotonic() + 0.2
    before_eof, _, _, keeper = run_keeper([f"hold {until:.6f}\n"], linger=0.5)
    assert len(before_eof) == 1 and before_eof[0][0] >= until  # not before the deadline
    assert before_eof[0][0] - until < 0.2 and keeper.deadline is None  # nothing held: end-of-file kills nothing


def test_renewals_postpone_and_release_or_detach_kill_nothing() -> None:
    soon = time.monotonic() + 0.2
    before_eof, _, _, _ = run_keeper([f"hold {soon:.6f}\n", f"hold {soon + 60:.6f}\n"], linger=0.4)
    assert not before_eof  # renewed before the first deadline
    _, rec, rc, _ = run_keeper([f"hold {time.monotonic() + 60:.6f}\n", "release\n"])
    assert rc == 0 and not rec.calls
    _, rec, rc, _ = run_keeper([f"hold {time.monotonic() + 60:.6f}\n", "detach\n"], linger=0.1)
    assert rc == 0 and not rec.calls


def test_a_hold_already_past_kills_at_once() -> None:
    _, rec, _, _ = run_keeper([f"hold {time.monotonic() - 1:.6f}\n", "release\n"])
    assert len(rec.calls) == 1


def test_docker_urls() -> None:
    assert docker_connection("unix:///run/docker.sock").socket_path == "/run/docker.sock"  # type: ignore[attr-defined]
    assert docker_connection("tcp://10.0.0.1:2375").host == "10.0.0.1"

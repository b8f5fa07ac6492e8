"""labs.docker.forget_dead_containerd: a zombie's or a dead process's containerd.pid goes, a live one stays
(a 30-minute Docker chaos run lost 15 s per dockerd restart to a zombie containerd's PID)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from labs.docker import forget_dead_containerd


def pidfile(root: Path, pid: int) -> Path:
    (root / "containerd").mkdir(parents=True, exist_ok=True)
    p = root / "containerd" / "containerd.pid"
    p.write_text(f"{pid}\n")
    return p


def test_a_live_containerd_is_left_alone(tmp_path: Path) -> None:
    p = pidfile(tmp_path, os.getpid())
    assert forget_dead_containerd(tmp_path) is False and p.exists()


def test_a_zombie_s_pid_is_forgotten(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline, "the child never exited"
        time.sleep(0.01)
    p = pidfile(tmp_path, child.pid)  # exited, not reaped: kill(pid, 0) would still say "alive"
    try:
        assert forget_dead_containerd(tmp_path) is True and not p.exists()
    finally:
        child.wait()


def test_a_gone_process_s_pid_is_forgotten_and_no_file_is_no_error(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    p = pidfile(tmp_path, child.pid)
    assert forget_dead_containerd(tmp_path) is True and not p.exists()
    assert forget_dead_containerd(tmp_path) is False
    p.write_text("not a pid\n")
    assert forget_dead_containerd(tmp_path) is False and p.exists()

"""The chaos probes' own traps, without a bed: a reused pid must not make a starting router look started."""

import subprocess
import sys

from labs.chaos.vrrp import VrrpDriver
from labs.vrrp import RouterProcess


def test_chaos_vrrp_seed_1_a_new_router_with_a_reused_pid_is_still_starting(tmp_path):
    """pid_max is 32768 here: over a 30-minute run pids wrap, and a restarted router once got the pid of a
    router that had been past its start-up; keyed by pid, the probe counted it active 30 ms after its start,
    holding its crashed predecessor's VIP (bench seed 1, t = 1621.7: 0.36 s of "two Masters")."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        driver = VrrpDriver()
        done = tmp_path / "old.status.json"
        done.write_text("{}")
        old = RouterProcess("ours", "a", proc, tmp_path / "old.log", status_path=done)
        driver.routers["a"] = old
        assert driver.running("a")  # past its start-up: its status file is written
        new = RouterProcess("ours", "a", proc, tmp_path / "new.log", status_path=tmp_path / "new.status.json")
        driver.routers["a"] = new  # the same pid, a new router that has not written its status yet
        assert not driver.running("a")
        (tmp_path / "new.status.json").write_text("{}")
        assert driver.running("a")
    finally:
        proc.kill()
        proc.wait()

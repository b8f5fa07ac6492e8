"""HaValet against real processes: a small HTTP service under a real valet process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from .helpers import PY, pid_alive, wait_until

pytestmark = pytest.mark.integration


def service_cfg(state: Path, hosts: tuple[str, ...] = ("a",), extra: str = "", timing: str = "") -> str:
    standby = f"stand_by_list = {','.join(hosts[1:])}\n" if len(hosts) > 1 else ""
    return textwrap.dedent(f"""\
        [valet]
        interval = 0.5
        command_timeout = 3
        start_grace = 5
        backoff_initial = 0.2
        {timing}
        [placeholders]
        PY = {PY}
        STATE = {state}

        :Web
            host = {hosts[0]}
            {standby}
            user = {os.environ.get("USER", "root")}
            protocol = http
            start_command = "@PY@ -m labs.valet_service start --state-dir @STATE@ --name %s" % (host)
            stop_command = "@PY@ -m labs.valet_service stop --state-dir @STATE@ --name %s" % (host)
            test_command = "@PY@ -m labs.valet_service probe --state-dir @STATE@ --name %s" % (host)
        """) + extra


def service_pid(state: Path, name: str) -> int | None:
    try:
        return int((state / f"{name}.pid").read_text())
    except (OSError, ValueError):
        return None


def probe(state: Path, name: str) -> int:
    return subprocess.run([PY, "-m", "labs.valet_service", "probe", "--state-dir", str(state), "--name", name],
                          timeout=10).returncode


def test_killed_service_is_restarted_within_interval_plus_start_time(state_dir, run_valet):
    valet = run_valet(service_cfg(state_dir))
    valet.wait_state("Web", "active", timeout=20, host="a")
    first = service_pid(state_dir, "a")
    assert first and probe(state_dir, "a") == 1
    os.kill(first, signal.SIGKILL)
    killed_at = time.monotonic()
    wait_until(lambda: (p := service_pid(state_dir, "a")) and p != first and probe(state_dir, "a") == 1,
               timeout=20, what="a new service process", on_fail=valet.diagnostics)
    took = time.monotonic() - killed_at
    wait_until(lambda: valet.log().count("Web: STARTING -> ACTIVE") == 2, 10, "the restart logged", valet.diagnostics)
    start_times = [float(t) for t in re.findall(r"start on a: exit 0 \(exit 0, ([0-9.]+)s\)", valet.log())]
    assert len(start_times) == 2, valet.diagnostics()
    # one interval to notice + the start itself + test/poll latency; generous slack for a loaded 2-core CI box
    assert took < 0.5 + max(start_times) + 2.0, f"restart took {took:.2f}s\n{valet.diagnostics()}"
    assert "Web: ACTIVE -> STARTING (no instance up (a: exit 0: down)" in valet.log()
    assert "Warning" not in valet.log(), valet.diagnostics()


def test_test_exit_codes_drive_priority(state_dir, run_valet):
    # both instances already run; b answers priority 1, a (preferred by config) answers 3: a must go
    for name in ("a", "b"):
        subprocess.run([PY, "-m", "labs.valet_service", "start", "--state-dir", str(state_dir), "--name", name],
                       check=True, timeout=20)
    (state_dir / "a.priority").write_text("3\n")
    valet = run_valet(service_cfg(state_dir, hosts=("a", "b")))
    valet.wait_state("Web", "active", timeout=20, host="b")
    assert probe(state_dir, "a") == 0 and probe(state_dir, "b") == 1
    log = valet.log()
    assert "Web: UNKNOWN -> CONFLICT (2 instances up: b (priority 1), a (priority 3); keeping b, stopping a)" in log
    assert "[conflict_resolved]" in log
    # now b reports a worse priority and a comes back with a better one: b is stopped instead
    (state_dir / "b.priority").write_text("9\n")
    (state_dir / "a.priority").write_text("2\n")
    subprocess.run([PY, "-m", "labs.valet_service", "start", "--state-dir", str(state_dir), "--name", "a"],
                   check=True, timeout=20)
    valet.wait_state("Web", "active", timeout=20, host="a")
    wait_until(lambda: probe(state_dir, "b") == 0, 10, "b stopped", valet.diagnostics)


def test_hanging_test_command_is_timed_out_and_counted_as_down(tmp_path, run_valet):
    pids = tmp_path / "test-pids"
    starts = tmp_path / "starts"
    cfg = textwrap.dedent(f"""\
        [valet]
        interval = 0.5
        command_timeout = 0.5
        start_grace = 0.3
        max_failures = 2
        backoff_initial = 0.1
        [Hang]
        host = localhost
        user = nobody
        start_command = "echo start >> {starts}"
        stop_command = "true"
        test_command = "echo $$ >> {pids}; exec sleep 30"
        """)
    t0 = time.monotonic()
    valet = run_valet(cfg)
    wait_until(starts.exists, 15, "a start after the hanging test", valet.diagnostics)
    # first round (up to 1 interval spread) + the 0.5 s timeout + spawn slack
    assert time.monotonic() - t0 < 0.5 + 0.5 + 5.0
    valet.wait_state("Hang", "fatal", timeout=20)
    assert "test on localhost: did not run to completion (timed out after 0.5s (process group killed)" in valet.log()
    recorded = [int(p) for p in pids.read_text().split()]
    assert len(recorded) >= 2
    # every timed-out test was killed with its process group (the last one may still be within its timeout)
    wait_until(lambda: not any(pid_alive(p) for p in recorded), 5, "timed-out tests killed", valet.diagnostics)
    assert not any(pid_alive(p) for p in recorded)


def test_restart_limit_gives_up_alerts_and_recovers_by_itself(tmp_path, run_valet):
    up = tmp_path / "up"
    starts = tmp_path / "starts"
    notify_log = tmp_path / "notify.log"
    hook = tmp_path / "notify.sh"
    hook.write_text(f'#!/bin/sh\necho "$1 $2 $3 $FAILOVER_CODE" >> {notify_log}\n')
    hook.chmod(0o755)
    cfg = textwrap.dedent(f"""\
        [valet]
        interval = 0.3
        max_failures = 3
        failure_window = 60
        backoff_initial = 0.1
        notify = {hook}
        [Flaky]
        host = h1
        stand_by_list = h2
        user = nobody
        start_command = "echo %s >> {starts}; exit 1" % (host)
        stop_command = "true"
        test_command = "test ! -e {up}.%s" % (host)
        """)
    valet = run_valet(cfg)
    valet.wait_state("Flaky", "fatal", timeout=20)
    wait_until(lambda: notify_log.exists() and "FATAL gave_up" in notify_log.read_text(), 10, "the alert",
               valet.diagnostics)
    assert starts.read_text().split() == ["h1", "h2", "h1"]  # h1, next host h2, backoff, h1: 3rd failure
    assert "gave up: start on h1 failed (exit 1)" in valet.log()
    # keeps testing but does not start any more
    rounds_before = valet.log().count("Flaky")
    time.sleep(1.0)  # several intervals: asserting that nothing happens needs a duration
    assert starts.read_text().split() == ["h1", "h2", "h1"]
    assert valet.process("Flaky")["state"] == "fatal" and valet.log().count("Flaky") == rounds_before
    up.with_name("up.h1").touch()  # the process comes back by itself (test exits 1 = up, priority 1)
    valet.wait_state("Flaky", "active", timeout=10, host="h1")
    wait_until(lambda: "Flaky FATAL ACTIVE recovered" in notify_log.read_text(), 10, "recovery notice",
               valet.diagnostics)
    lines = notify_log.read_text().splitlines()
    assert lines == ["Flaky UNKNOWN STARTING starting", "Flaky STARTING BACKOFF all_hosts_failed",
                     "Flaky BACKOFF STARTING starting", "Flaky STARTING FATAL gave_up",
                     "Flaky FATAL ACTIVE recovered"]


def test_startup_follows_order_and_cannot_run_counts_as_down(tmp_path, run_valet):
    log = tmp_path / "starts"
    flags = tmp_path / "flags"
    flags.mkdir()
    sections = []
    for name, order in (("Second", 2), ("First", 1), ("Third", 3)):
        sections.append(textwrap.dedent(f"""\
            [{name}]
            order = {order}
            host = {name}
            user = nobody
            start_command = "sleep 0.3; echo %s >> {log}; touch {flags}/%s" % (host, host)
            stop_command = "rm -f {flags}/%s" % (host)
            test_command = "test ! -e {flags}/%s" % (host)
            """))
    sections.append(textwrap.dedent("""\
        [Missing]
        host = nowhere
        user = nobody
        max_failures = 1
        start_command = "/nonexistent/start-it"
        stop_command = "true"
        test_command = "/nonexistent/test-it"
        """))
    valet = run_valet("[valet]\ninterval = 0.5\n" + "\n".join(sections))
    for name in ("First", "Second", "Third"):
        valet.wait_state(name, "active", timeout=20)
    assert log.read_text().split() == ["First", "Second", "Third"]
    valet.wait_state("Missing", "fatal", timeout=20)
    text = valet.log()
    assert "test on nowhere: did not run to completion (cannot run: [Errno 2]" in text
    assert "start on nowhere failed (cannot run: [Errno 2]" in text


def test_sigterm_mid_command_exits_cleanly_and_ends_the_command(tmp_path, run_valet):
    pid_file = tmp_path / "test-pid"
    cfg = textwrap.dedent(f"""\
        [valet]
        interval = 0.2
        command_timeout = 30
        [Slow]
        host = localhost
        user = nobody
        start_command = "true"
        stop_command = "true"
        test_command = "echo $$ > {pid_file}; exec sleep 30"
        """)
    valet = run_valet(cfg)
    pid = wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), 15, "the test running",
                     valet.diagnostics)
    assert pid_alive(int(pid))
    assert valet.stop() == 0
    assert not pid_alive(int(pid))  # the in-flight test was killed and reaped before the valet exited
    log = valet.log()
    assert "ha-valet: stopped" in log
    assert "Warning" not in log and "Exception ignored" not in log and "Traceback" not in log, log


def test_sample_service_start_when_running_keeps_the_running_one(state_dir):
    """Chaos seed 3: a second start failed to bind, but had already deleted the pid file of the running service:
    stop then stopped nothing and the orphan kept answering. A start of a running service now returns 0 at once."""
    cmd = [PY, "-m", "labs.valet_service"]
    args = ["--state-dir", str(state_dir), "--name", "x"]
    assert subprocess.run([*cmd, "start", *args], timeout=30).returncode == 0
    pid = service_pid(state_dir, "x")
    try:
        assert subprocess.run([*cmd, "start", *args], timeout=30).returncode == 0
        assert service_pid(state_dir, "x") == pid
    finally:
        assert subprocess.run([*cmd, "stop", *args], timeout=30).returncode == 0
    assert pid is not None and not pid_alive(pid)


def test_a_test_that_times_out_while_the_valet_is_stopped_is_run_again_not_taken_for_a_death(state_dir, tmp_path,
                                                                                              run_valet):
    """SIGSTOP of the valet while a test hangs past command_timeout: after SIGCONT its timeout is noticed late
    (stalled), the test runs again and answers up: the running service is kept (no restart, no transition)."""
    hang, inflight, tests = tmp_path / "hang-once", tmp_path / "in-flight", tmp_path / "tests-run"
    cfg = service_cfg(state_dir).replace(
        'test_command = "@PY@',
        f'test_command = "echo >> {tests}; if [ -e {hang} ]; then rm {hang}; touch {inflight}; sleep 30; fi; @PY@')
    valet = run_valet(cfg)
    valet.wait_state("Web", "active", timeout=20, host="a")
    first = service_pid(state_dir, "a")
    hang.touch()
    wait_until(inflight.exists, 10, "a hanging test in flight", valet.diagnostics)
    os.kill(valet.proc.pid, signal.SIGSTOP)
    try:
        time.sleep(3 + 1.5)  # the fault: the valet is stopped across the test's 3 s timeout
    finally:
        os.kill(valet.proc.pid, signal.SIGCONT)
    wait_until(lambda: "[retest]" in valet.log(), 10, "the re-test logged", valet.diagnostics)
    rounds = valet.log().count("[retest]")
    seen = len(tests.read_text().splitlines())
    wait_until(lambda: len(tests.read_text().splitlines()) >= seen + 3, 10, "three more tests after the thaw",
               valet.diagnostics)
    log = valet.log()
    assert "ACTIVE -> STARTING" not in log and service_pid(state_dir, "a") == first, valet.diagnostics()
    assert valet.process("Web")["state"] == "active" and rounds == 1

"""HaValet.commands.run_command with real processes: timeouts, process groups, drained output."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from HaValet.commands import close_lingering, needs_shell, run_command

from .helpers import pid_alive, wait_until

pytestmark = pytest.mark.integration


def run(command: str, timeout: float = 5.0):
    async def one():
        try:
            return await run_command(command, timeout=timeout)
        finally:
            close_lingering()  # as the valet does before its loop ends
    return asyncio.run(one())


def test_exit_status_and_output():
    r = run("echo hello; echo oops >&2; exit 7")
    assert (r.rc, r.detail) == (7, "exit 7")
    assert r.output.splitlines() == ["hello", "oops"]


def test_plain_command_runs_without_a_shell_with_the_same_meaning():
    assert not needs_shell("test ! -e /nonexistent/x") and needs_shell("exit 3")
    assert run("test ! -e /nonexistent/x").rc == 0
    assert run("test ! -e /").rc == 1


def test_missing_binary_is_not_a_result():
    r = run("/nonexistent/bin/check")
    assert r.rc is None and r.detail.startswith("cannot run:")


def test_timeout_kills_the_whole_process_group(tmp_path):
    pids = tmp_path / "pids"
    started = time.monotonic()
    r = run(f"sleep 30 & echo $! > {pids}; sleep 30", timeout=0.5)
    assert r.rc is None and r.detail == "timed out after 0.5s (process group killed)"
    assert time.monotonic() - started < 3.0
    grandchild = int(pids.read_text())
    wait_until(lambda: not pid_alive(grandchild), 5, "the background sleep killed with its group")


def test_killed_by_signal_is_reported_as_negative():
    r = run("kill -9 $$")
    assert r.rc == -9 and r.detail == "killed by signal 9"


def test_large_output_is_drained_without_deadlock():
    r = run("head -c 5000000 /dev/zero | tr '\\0' x; exit 3", timeout=20)
    assert r.rc == 3 and len(r.output) == 4096


def test_daemon_holding_the_pipe_does_not_hold_the_command(tmp_path):
    pids = tmp_path / "pid"

    async def scenario():
        started = time.monotonic()
        r = await run_command(f"(while true; do echo tick; sleep 0.05; done) & echo $! > {pids}; echo started",
                              timeout=10)
        took = time.monotonic() - started
        await asyncio.sleep(0.3)  # the daemon keeps writing: it must not block or die of EPIPE meanwhile
        alive = pid_alive(int(pids.read_text()))
        close_lingering()
        return r, took, alive

    try:
        r, took, alive = asyncio.run(scenario())
        assert r.rc == 0 and "started" in r.output
        assert took < 2.0
        assert alive
    finally:
        os.killpg(os.getpgid(int(pids.read_text())), signal.SIGKILL)  # the daemon's group: only ours


def _frozen(command: str, timeout: float, stop_at: float, stop_for: float):
    """Run ``command`` while a helper SIGSTOPs this process ``stop_at`` s after the command started, for ``stop_for``
    s (a frozen valet)."""
    import subprocess
    import sys
    me = os.getpid()
    helper = subprocess.Popen([sys.executable, "-c", f"import os, signal, sys, time; sys.stdin.readline(); "
                               f"time.sleep({stop_at}); os.kill({me}, signal.SIGSTOP); time.sleep({stop_for}); "
                               f"os.kill({me}, signal.SIGCONT)"], stdin=subprocess.PIPE)

    async def one():
        assert helper.stdin is not None
        helper.stdin.write(b"go\n")
        helper.stdin.flush()
        try:
            return await run_command(command, timeout=timeout)
        finally:
            close_lingering()
    try:
        return asyncio.run(one())
    finally:
        helper.wait(10)


def test_a_command_that_exited_while_the_valet_was_frozen_is_not_a_timeout():
    """Chaos seed 3: after SIGCONT, epoll returns nothing once its deadline passed, so the timeout ran before the
    exit was seen and a test that had answered "up" during the freeze came back "did not run to completion"."""
    r = _frozen("sleep 0.3; exit 3", timeout=0.8, stop_at=0.1, stop_for=1.2)
    assert r.rc == 3, r  # before: rc None, "timed out after 0.8s"
    assert not r.stalled


def test_a_timeout_noticed_after_a_freeze_is_stalled():
    r = _frozen("sleep 5", timeout=0.4, stop_at=0.1, stop_for=1.2)
    assert r.rc is None and r.stalled and r.late > 0.5, r
    assert not run("sleep 5", timeout=0.3).stalled  # an ordinary timeout is not

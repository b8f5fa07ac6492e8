"""A valet's shutdown cancels its loops and waits for them: a cancel must end each one, whatever it was waiting for.

Found by SIGTERMing real per-host valets in a loop (2 hangs in 140 stops, idle in epoll, the keeper still there):
CPython 3.11's ``asyncio.wait_for`` drops a cancel that arrives after the awaited thing finished but before the
task resumed, so the status writer (``wait_for(dirty.wait(), period)``) went on writing and ``cancel_and_wait``
waited for it forever; the chaos valet run's clean stop then waited 7 s for the old valet and its failback came
after the fault's recovery window (CI, seed 20262469). Every interleaving of "dirty set" and "cancel" is tried.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from failover_core.shell.tasks import cancel_and_wait
from HaValet.status_file import StatusFile


@pytest.mark.parametrize("steps", range(6))
def test_the_status_writer_ends_on_a_cancel_that_comes_with_a_change(tmp_path: Path, steps: int) -> None:
    async def scenario() -> tuple[bool, bool]:
        writer = StatusFile(tmp_path / "status.json", lambda: {"state": "LEFT"}, period=30.0)
        task = asyncio.create_task(writer.run())
        for _ in range(3):
            await asyncio.sleep(0)  # it waits for a change now
        writer.dirty.set()  # e.g. the last transition of the shutdown
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=1.0)
        if task not in done:
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        return task in done, task.cancelled()

    ended, cancelled = asyncio.run(scenario())
    assert ended and cancelled


def test_cancel_and_wait_ends_a_task_that_swallows_one_cancel() -> None:
    """A library coroutine may drop a cancel the same way (asyncio.wait_for before 3.12): the shutdown cancels
    again until the task has ended, so one dropped cancel cannot hold the exit."""

    async def stubborn(started: asyncio.Event) -> None:
        started.set()
        with contextlib.suppress(asyncio.CancelledError):  # dropped, as wait_for does
            await asyncio.sleep(30)
        await asyncio.sleep(30)

    async def scenario() -> tuple[bool, float]:
        started = asyncio.Event()
        task = asyncio.create_task(stubborn(started))
        await started.wait()
        t0 = asyncio.get_running_loop().time()
        await asyncio.wait_for(cancel_and_wait([task]), 5.0)
        return task.cancelled(), asyncio.get_running_loop().time() - t0

    cancelled, took = asyncio.run(scenario())
    assert cancelled and took < 2.0

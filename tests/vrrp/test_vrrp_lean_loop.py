"""LeanLoop (``VrrpFailover.lean_loop``): its own timers and readers, and the asyncio work stepped inside it
(tasks, asyncio timers, a future completed from one of its callbacks, a thread's call_soon_threadsafe, a
subprocess, a signal handler). Real sockets, processes and signals; no mocks."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time

import pytest

from VrrpFailover.lean_loop import LeanLoop


@pytest.fixture
def lean():
    loop = LeanLoop()
    try:
        yield loop
    finally:
        loop.close()


def test_timers_fire_in_time_order_and_a_cancelled_one_does_not(lean):
    fired: list[str] = []

    async def main() -> list[str]:
        now = lean.time()
        lean.call_at(now + 0.03, fired.append, "c")
        lean.call_at(now + 0.01, fired.append, "a")
        lean.call_at(now + 0.02, fired.append, "b")
        lean.call_at(now + 0.015, fired.append, "cancelled").cancel()
        await asyncio.sleep(0.05)  # an asyncio timer: the lean loop wakes for it too
        return fired

    assert lean.run(main()) == ["a", "b", "c"]


def test_a_timer_does_not_fire_early(lean):
    seen: list[float] = []

    async def main() -> None:
        at = lean.time() + 0.05
        lean.call_at(at, lambda: seen.append(lean.time() - at))
        await asyncio.sleep(0.08)

    lean.run(main())
    assert len(seen) == 1 and 0 <= seen[0] < 0.03


def test_a_reader_is_called_when_its_socket_is_readable_and_not_after_removal(lean):
    a, b = socket.socketpair()
    got: list[bytes] = []

    def on_readable() -> None:
        got.append(a.recv(100))

    async def main() -> None:
        lean.add_reader(a.fileno(), on_readable)
        b.send(b"one")
        await asyncio.sleep(0.02)
        assert lean.remove_reader(a.fileno())
        b.send(b"two")  # stays queued: nobody reads it
        await asyncio.sleep(0.02)

    try:
        lean.run(main())
        assert got == [b"one"]
        assert a.recv(100) == b"two"
    finally:
        a.close()
        b.close()


def test_asyncio_work_started_from_a_lean_callback_runs_at_once(lean):
    """A lean timer puts into an asyncio.Queue (as the driver queues address changes): the consumer task runs in
    the same wake-up, not at the next unrelated one."""
    q: asyncio.Queue[float] = asyncio.Queue()

    async def main() -> float:
        lean.call_at(lean.time() + 0.02, lambda: q.put_nowait(lean.time()))
        put_at = await q.get()
        return lean.time() - put_at

    assert lean.run(main()) < 0.01


def test_a_thread_and_a_subprocess_wake_the_loop(lean):
    async def main() -> tuple[str, int]:
        aloop = asyncio.get_running_loop()
        fut: asyncio.Future[str] = aloop.create_future()
        threading.Timer(0.02, lambda: aloop.call_soon_threadsafe(fut.set_result, "from thread")).start()
        proc = await asyncio.create_subprocess_exec("sh", "-c", "exit 3")
        rc = await asyncio.wait_for(proc.wait(), 5)
        return await asyncio.wait_for(fut, 5), rc

    assert lean.run(main()) == ("from thread", 3)


def test_a_signal_handler_runs_at_once(lean):
    async def main() -> float:
        aloop = asyncio.get_running_loop()
        got: asyncio.Future[float] = aloop.create_future()
        aloop.add_signal_handler(signal.SIGUSR1, lambda: got.set_result(lean.time()))
        try:
            sent = lean.time()
            os.kill(os.getpid(), signal.SIGUSR1)
            return await asyncio.wait_for(got, 5) - sent
        finally:
            aloop.remove_signal_handler(signal.SIGUSR1)

    assert lean.run(main()) < 0.05


def test_idle_it_sleeps_until_the_next_timer(lean):
    """One epoll return per timer, no polling in between."""
    async def main() -> None:
        t0 = lean.time()
        for k in range(1, 6):
            lean.call_at(t0 + 0.02 * k, lambda: None)
        await asyncio.sleep(0.11)

    t = time.monotonic()
    lean.run(main())
    assert time.monotonic() - t >= 0.11
    assert lean.wakeups <= 10  # 5 lean timers + the asyncio sleep (+ the task's own steps)

"""A small epoll loop for the driver's hot path, with asyncio stepped inside it only when asyncio has work.

Why (measured, docs/vrrp.md "Measured"): on this VM one wake-up of a bare asyncio loop costs about 50 us more
than one of a bare ``epoll.poll`` loop (a Python Master that only sends a prebuilt advert every 0.1 s: 166 us vs
116 us per advert; keepalived 83 us). An idle router wakes for nothing but its timer and its VRRP sockets, so
those live here: ``call_at`` timers on a heap and ``add_reader`` file descriptors on one epoll.

Everything else (netlink address changes, track scripts as asyncio subprocesses, signal handlers,
the interface watcher, the driver's own coroutine) stays on an ordinary asyncio loop, which ``run`` steps (one
``call_soon(stop)`` + ``run_forever()`` iteration) when its selector's epoll descriptor is readable (I/O, a signal,
a thread's ``call_soon_threadsafe``), one of its timers is due, or it has callbacks ready (a future this loop's
callbacks completed, such as ``asyncio.Queue.put_nowait``). The last two are read from the loop's ``_scheduled``
and ``_ready`` (CPython's BaseEventLoop internals, unchanged from 3.8 to 3.13); nothing else of asyncio is
touched. The clock is ``time.monotonic``, asyncio's too.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import select
import selectors
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class TimerHandle:
    __slots__ = ("args", "callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.when, self.callback, self.args, self.cancelled = when, callback, args, False

    def cancel(self) -> None:
        self.cancelled = True


class LeanLoop:
    """``call_at`` / ``add_reader`` / ``remove_reader`` / ``time`` for the hot path; ``run(coro)`` runs the
    driver's coroutine on an asyncio loop stepped inside this one and returns its result."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._readers: dict[int, tuple[Callable[..., Any], tuple[Any, ...]]] = {}
        self._timers: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()
        self.wakeups = 0  # epoll returns (tests, status)
        self.asyncio_steps = 0
        self.aloop: asyncio.AbstractEventLoop | None = None

    time = staticmethod(time.monotonic)

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        h = TimerHandle(when, callback, args)
        heapq.heappush(self._timers, (when, next(self._seq), h))
        return h

    def add_reader(self, fd: int, callback: Callable[..., Any], *args: Any) -> None:
        if fd in self._readers:
            self._epoll.modify(fd, select.EPOLLIN)
        else:
            self._epoll.register(fd, select.EPOLLIN)
        self._readers[fd] = (callback, args)

    def remove_reader(self, fd: int) -> bool:
        if self._readers.pop(fd, None) is None:
            return False
        with contextlib.suppress(OSError, ValueError):  # already closed
            self._epoll.unregister(fd)
        return True

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on a fresh asyncio loop (its selector an epoll this loop watches) until it returns."""
        selector = selectors.EpollSelector()
        aloop = self.aloop = asyncio.SelectorEventLoop(selector)
        asyncio.set_event_loop(aloop)
        afd = selector.fileno()
        self._epoll.register(afd, select.EPOLLIN)
        try:
            task = aloop.create_task(coro)
            self._step_asyncio(aloop)
            while not task.done():
                self._once(aloop, afd)
            return task.result()
        finally:
            self._epoll.unregister(afd)
            try:
                _cancel_all(aloop)
                aloop.run_until_complete(aloop.shutdown_asyncgens())
            finally:
                asyncio.set_event_loop(None)
                aloop.close()
                self.aloop = None

    def close(self) -> None:
        self._epoll.close()

    def fileno(self) -> int:
        """The hot loop's epoll: a native wait (``VrrpFailover._idlewait``) returns as soon as it is ready."""
        return self._epoll.fileno()

    def quiet_until(self) -> float | None:
        """When this loop next has work of its own (its earliest timer, asyncio's earliest), +inf if none, or
        None when it has work now (asyncio callbacks ready, or not inside ``run``): how long a native wait may
        block this thread."""
        aloop = self.aloop
        if aloop is None or aloop._ready:  # type: ignore[attr-defined]  # (see the module docstring)
            return None
        timers = self._timers
        while timers and timers[0][2].cancelled:
            heapq.heappop(timers)
        at = timers[0][0] if timers else float("inf")
        scheduled: Any = aloop._scheduled  # type: ignore[attr-defined]  # (a cancelled head only ends it early)
        if scheduled and scheduled[0].when() < at:
            at = scheduled[0].when()
        return at

    # -- one iteration ------------------------------------------------------------------------
    def _once(self, aloop: asyncio.AbstractEventLoop, afd: int) -> None:
        timers = self._timers
        while timers and timers[0][2].cancelled:
            heapq.heappop(timers)
        ready: Any = aloop._ready  # type: ignore[attr-defined]  # (see the module docstring)
        if ready:
            timeout = 0.0
        else:
            timeout = -1.0
            at = timers[0][0] if timers else None
            scheduled: Any = aloop._scheduled  # type: ignore[attr-defined]
            if scheduled:
                a_at = scheduled[0].when()
                at = a_at if at is None or a_at < at else at
            if at is not None:
                timeout = max(0.0, at - time.monotonic())
        events = self._epoll.poll(timeout)
        self.wakeups += 1
        step = bool(ready)
        for fd, _mask in events:
            if fd == afd:
                step = True
                continue
            reader = self._readers.get(fd)
            if reader is not None:
                reader[0](*reader[1])
        now = time.monotonic()
        while timers and timers[0][0] <= now:
            h = heapq.heappop(timers)[2]
            if not h.cancelled:
                h.cancelled = True  # (fired: a later cancel() is a no-op)
                h.callback(*h.args)
        scheduled = aloop._scheduled  # type: ignore[attr-defined]
        if step or aloop._ready or (scheduled and scheduled[0].when() <= now):  # type: ignore[attr-defined]
            self._step_asyncio(aloop)

    def _step_asyncio(self, aloop: asyncio.AbstractEventLoop) -> None:
        """One iteration of the asyncio loop: its ready callbacks, due timers and I/O (selector polled with
        timeout 0, since ``stop`` is ready)."""
        self.asyncio_steps += 1
        aloop.call_soon(aloop.stop)
        aloop.run_forever()


def _cancel_all(aloop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(aloop)
    for t in tasks:
        t.cancel()
    if tasks:
        aloop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))

"""Tracker I/O: run track scripts, read track files, watch tracked interfaces; report what was seen.

Nothing here decides: every reading goes to the router as a ``TrackResult`` (``VrrpFailover.machine.Tracking``
applies rise/fall, weights and Fault). A check that cannot run (missing binary), times out or exits non-zero is
a failed check, never a passed one; a file that is missing, unreadable, not a regular file (a FIFO would block
the loop) or holds no integer is a failed file; an interface that is gone is down.

- ``TrackScriptRunner``: runs the check every ``interval`` s (asyncio subprocess, its own process group,
  killed on timeout) and reports EVERY result (rise and fall count them).
- ``TrackFileRunner``: reads the file every ``interval`` s (non-blocking open, at most 64 bytes) and reports
  when the reading changes; ``read_track_file`` is the one read, also used at start.
- ``InterfaceWatcher``: one netlink socket joined to the link group (RTMGRP_LINK): the kernel wakes it when
  a link changes (admin up/down, carrier), no polling; it then reads the flags of the tracked interfaces
  (``interface_up``: IFF_UP and IFF_RUNNING, by ioctl) and reports those that changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shlex
import signal
import socket
import stat
import struct
from collections.abc import Callable, Iterable

from failover_core.shell.tasks import cancel_and_wait
from VrrpFailover.settings import TrackFileRules, TrackScriptRules

log = logging.getLogger("vrrp.track")

SIOCGIFFLAGS = 0x8913
IFF_UP = 0x1
IFF_RUNNING = 0x40  # operationally up: carrier (and not dormant)
RTMGRP_LINK = 0x1
MAX_TRACK_FILE_BYTES = 64


async def run_check(argv: list[str], timeout: float) -> tuple[bool, str]:
    try:
        proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
    except OSError as e:
        return False, f"cannot run {argv[0]}: {e.strerror or e}"
    try:
        async with asyncio.timeout(timeout):  # not wait_for: 3.11's drops a cancel that meets the exit
            rc = await proc.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        return False, f"timed out after {timeout:g}s"
    return rc == 0, f"exit {rc}"


class _Periodic:
    """A task that calls ``_once`` every ``interval`` s until stopped."""

    interval: float
    name: str

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])

    async def _loop(self) -> None:
        while True:
            await self._once()
            await asyncio.sleep(self.interval)

    async def _once(self) -> None:
        raise NotImplementedError


class TrackScriptRunner(_Periodic):
    """Runs one track script; ``on_result(ok, detail)`` after every run."""

    def __init__(self, key: str, subject: str, script: TrackScriptRules,
                 on_result: Callable[[bool, str], None]) -> None:
        super().__init__()
        self.key, self.subject, self.script = key, subject, script
        self.argv = shlex.split(script.command) if isinstance(script.command, str) else list(script.command)
        self.on_result = on_result
        self.interval = script.interval
        self.name = f"track-{subject}-{key}"
        self._last: bool | None = None

    async def _once(self) -> None:
        ok, detail = await run_check(self.argv, self.script.effective_timeout)
        if ok != self._last:
            log.info("%s: %s %s (%s)", self.subject, self.key, "passes" if ok else "FAILS", detail)
            self._last = ok
        self.on_result(ok, detail)


def read_track_file(path: str) -> tuple[bool, int | None, str]:
    """(readable and holds an integer, the integer, what was seen). Never blocks: a FIFO is refused."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        return False, None, f"cannot open: {e.strerror or e}"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False, None, "not a regular file"
        data = os.read(fd, MAX_TRACK_FILE_BYTES + 1)
    except OSError as e:
        return False, None, f"cannot read: {e.strerror or e}"
    finally:
        os.close(fd)
    text = data.decode("ascii", errors="replace").strip()
    if len(data) > MAX_TRACK_FILE_BYTES:
        return False, None, f"longer than {MAX_TRACK_FILE_BYTES} bytes"
    try:
        value = int(text, 10)
    except ValueError:
        return False, None, f"holds no integer ({text[:20]!r})"
    return True, value, f"holds {value}"


class TrackFileRunner(_Periodic):
    """Reads one track file every ``interval`` s; ``on_result(ok, value, detail)`` when the reading changes."""

    def __init__(self, key: str, subject: str, spec: TrackFileRules,
                 on_result: Callable[[bool, int | None, str], None]) -> None:
        super().__init__()
        self.key, self.subject, self.spec = key, subject, spec
        self.on_result = on_result
        self.interval = spec.interval
        self.name = f"track-{subject}-{key}"
        self.last: tuple[bool, int | None, str] | None = None

    def read(self) -> tuple[bool, int | None, str]:
        return read_track_file(self.spec.path)

    async def _once(self) -> None:
        reading = self.read()
        if reading != self.last:
            self.last = reading
            log.info("%s: %s %s", self.subject, self.key, reading[2])
            self.on_result(*reading)


def interface_up(name: str, sock: socket.socket) -> tuple[bool, str]:
    """(up, what was seen): up = administratively up with carrier (IFF_UP and IFF_RUNNING)."""
    try:
        res = fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, struct.pack("16sH14x", name.encode()[:15], 0))
    except OSError:
        return False, "no such interface"
    flags = struct.unpack_from("16sH", res)[1]
    if not flags & IFF_UP:
        return False, "administratively down"
    if not flags & IFF_RUNNING:
        return False, "no carrier"
    return True, "up"


class InterfaceWatcher:
    """Wakes on the kernel's link notifications; ``on_change(name, up, detail)`` for each tracked interface
    whose state changed (and once for each at ``start``)."""

    def __init__(self, names: Iterable[str], on_change: Callable[[str, bool, str], None]) -> None:
        self.names = sorted(set(names))
        self.on_change = on_change
        self.state: dict[str, tuple[bool, str]] = {}
        self._nl: socket.socket | None = None
        self._ioctl: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._ioctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        try:
            nl.bind((0, RTMGRP_LINK))
            nl.setblocking(False)
        except OSError:
            nl.close()
            raise
        self._nl, self._loop = nl, loop
        loop.add_reader(nl.fileno(), self._on_readable)
        self.check()

    def check(self) -> None:
        assert self._ioctl is not None
        for name in self.names:
            now = interface_up(name, self._ioctl)
            if self.state.get(name) != now:
                self.state[name] = now
                self.on_change(name, *now)

    def _on_readable(self) -> None:
        assert self._nl is not None
        while True:  # the messages only say "a link changed": read the flags of ours afterwards
            try:
                self._nl.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # ENOBUFS: messages were lost; the flags are read below anyway
                break
        self.check()

    def close(self) -> None:
        if self._nl is not None:
            if self._loop is not None:
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(self._nl.fileno())
            self._nl.close()
        if self._ioctl is not None:
            self._ioctl.close()

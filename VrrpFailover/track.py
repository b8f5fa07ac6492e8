"""Track scripts: run the operator's check command every ``interval`` s and report pass/fail changes.

A check that cannot run (missing binary), times out or exits non-zero is a failed check, never a
passed one. The runner is asyncio-native (no thread, no polling of the VRRP state): it sleeps
``interval`` between runs and calls ``on_change(ok, detail)`` when the result differs from the
last one (the first result is always reported unless it is a pass, the assumed start state).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
from collections.abc import Callable

from VrrpFailover.config import TrackScript

log = logging.getLogger("vrrp.track")


async def run_check(argv: list[str], timeout: float) -> tuple[bool, str]:
    try:
        proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
    except OSError as e:
        return False, f"cannot run {argv[0]}: {e.strerror or e}"
    try:
        rc = await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        return False, f"timed out after {timeout:g}s"
    return rc == 0, f"exit {rc}"


class TrackScriptRunner:
    def __init__(self, subject: str, script: TrackScript, on_change: Callable[[bool, str], None]) -> None:
        self.subject = subject
        self.script = script
        self.argv = shlex.split(script.command) if isinstance(script.command, str) else list(script.command)
        self.on_change = on_change
        self.last_ok = True  # assumed until the first check says otherwise
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"track-{self.subject}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            ok, detail = await run_check(self.argv, self.script.effective_timeout)
            if ok != self.last_ok:
                self.last_ok = ok
                log.info("%s: track script %s (%s)", self.subject, "passes" if ok else "FAILS", detail)
                self.on_change(ok, detail)
            await asyncio.sleep(self.script.interval)

"""StatusFile: a valet's status JSON on disk, replaced atomically when something changed (at most every
0.1 s) and at least every ``period`` seconds, so ``ha-valet --status`` and monitoring read a fresh file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("HaValet")


class StatusFile:
    def __init__(self, path: Path | None, build: Callable[[], dict[str, Any]], *, period: float) -> None:
        self.path = path
        self.build = build
        self.period = period
        self.dirty = asyncio.Event()  # set it when something worth showing changed

    def write(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(self.build(), indent=2) + "\n")
            tmp.replace(self.path)
        except OSError as e:
            log.warning("cannot write status file %s: %s", self.path, e)

    async def run(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: 3.11's wait_for drops a cancel that comes just as the change does,
            # and the shutdown then waited for this loop forever (tests/valet/test_shutdown_cancel.py)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.period):
                    await self.dirty.wait()
            self.dirty.clear()
            self.write()
            await asyncio.sleep(0.1)

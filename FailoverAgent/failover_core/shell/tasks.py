"""Ending asyncio tasks at a daemon's shutdown: ``cancel_and_wait`` cancels until each task has ended.

CPython 3.11's ``asyncio.wait_for`` drops a cancel that arrives after the awaited thing finished but before the
task resumed (fixed in 3.12); a loop written around it then goes on, and a shutdown that cancels it once and waits
waits forever (a per-host valet did, 2 stops in 140). The drivers use ``asyncio.timeout`` instead, and cancel
through this helper, which cancels again every ``again`` seconds until the task has ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

CANCEL_AGAIN = 0.2  # s: how often a cancel a task dropped is repeated


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]], again: float = CANCEL_AGAIN) -> None:
    """Cancel ``tasks`` and wait until each has ended; their exceptions, cancellation included, are swallowed
    (retrieved, so none is reported as "never retrieved")."""
    pending = set(tasks)
    while pending:
        for t in pending:
            t.cancel()
        done, pending = await asyncio.wait(pending, timeout=again)
        for t in done:
            if not t.cancelled():
                t.exception()

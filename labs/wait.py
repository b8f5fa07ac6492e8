"""poll_until: poll a condition until it is truthy or a deadline on the monotonic clock passes.

The one deadline loop behind the test beds' wait helpers (labs.vrrp, labs.docker, labs.volttron_platform,
labs.volttron_cluster, tests/valet/helpers). Each keeps its own name, argument order and failure type
and delegates here; ``sleep`` is injectable (gevent.sleep for the VOLTTRON harness).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class WaitTimeout(TimeoutError):
    """The condition did not become true in time; the message names what was awaited."""


def poll_until(cond: Callable[[], Any], timeout: float, *, what: str = "condition", interval: float = 0.05,
               sleep: Callable[[float], Any] | None = None) -> Any:
    """Return the first truthy value of ``cond()``; raise WaitTimeout once ``timeout`` seconds have passed.
    ``sleep`` defaults to ``time.sleep`` as it is at the call (gevent's, once VOLTTRON has patched it)."""
    sleep = sleep or time.sleep
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what}")
        sleep(interval)

"""Run the operator's notify command once per transition, in order, with a timeout.

``SubprocessHookRunner`` is a HookRunner: it runs ``command + [subject, from, to, reason]`` (or
``command + args_for(transition)``, for a system whose operators' scripts expect another order, such
as keepalived's) with the same facts in FAILOVER_* environment variables (plus what
``env_for(transition)`` adds, such as the term of that transition), in its own process group, and
kills the group on timeout. A command that cannot run or times out is a failed hook (logged), never
an exception. ``NotifyDispatcher``
feeds transitions through a HookQueue to one worker thread, so hooks run in transition order, one at a
time, each exactly once, without blocking the driver.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from failover_core.hooks import HookQueue, HookResult, HookRunner
from failover_core.transitions import Transition

_log = logging.getLogger(__name__)


class SubprocessHookRunner:
    def __init__(self, command: str | list[str], timeout: float = 10.0, extra_env: dict[str, str] | None = None,
                 env_for: Callable[[Transition], Mapping[str, str]] | None = None,
                 args_for: Callable[[Transition], Sequence[str]] | None = None):
        self.argv = shlex.split(command) if isinstance(command, str) else list(command)
        if not self.argv:
            raise ValueError("notify command is empty")
        self.timeout = timeout
        self.extra_env = extra_env or {}
        self.env_for = env_for
        self.args_for = args_for

    def run(self, transition: Transition) -> HookResult:
        t = transition
        per_transition = dict(self.env_for(t)) if self.env_for is not None else {}
        env = dict(os.environ, **self.extra_env, **per_transition, FAILOVER_SUBJECT=t.subject,
                   FAILOVER_FROM=t.from_state, FAILOVER_TO=t.to_state, FAILOVER_REASON=t.reason, FAILOVER_CODE=t.code,
                   FAILOVER_SEQ=str(t.seq))
        args = list(self.args_for(t)) if self.args_for is not None else [t.subject, t.from_state, t.to_state, t.reason]
        start = time.monotonic()
        try:
            proc = subprocess.Popen([*self.argv, *args], env=env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        except OSError as e:
            return HookResult(seq=t.seq, ok=False, returncode=None, detail=f"cannot run {self.argv[0]}: {e}",
                              duration=time.monotonic() - start)
        try:
            out, _ = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return HookResult(seq=t.seq, ok=False, returncode=None, detail=f"timed out after {self.timeout:g}s",
                              duration=time.monotonic() - start)
        text = out.decode(errors="replace").strip()
        if text:
            _log.info("notify %s seq %d output: %s", t.subject, t.seq, text[-2000:])
        rc = proc.returncode
        detail = f"exit {rc}" if rc >= 0 else f"killed by signal {-rc}"
        return HookResult(seq=t.seq, ok=rc == 0, returncode=rc, detail=detail, duration=time.monotonic() - start)


class NotifyDispatcher:
    """One worker thread draining a HookQueue through a HookRunner. ``submit`` never blocks."""

    def __init__(self, runner: HookRunner, name: str = "notify") -> None:
        self.runner = runner
        self.queue = HookQueue()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, transition: Transition) -> None:
        with self._cond:
            self.queue.push(transition)
            self._cond.notify()

    def _work(self) -> None:
        while True:
            with self._cond:
                t = self.queue.take()
                while t is None and not self._stopping:
                    self._cond.wait()
                    t = self.queue.take()
                if t is None:
                    return
            result = self.runner.run(t)
            level = logging.INFO if result.ok else logging.WARNING
            _log.log(level, "notify %s seq %d (%s -> %s): %s in %.2fs", t.subject, t.seq, t.from_state,
                     t.to_state, result.detail, result.duration)
            with self._cond:
                self.queue.done(result)
                self._cond.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait until every submitted hook has run; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.queue):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Run what is pending (up to ``timeout``), then stop the worker."""
        self.drain(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)

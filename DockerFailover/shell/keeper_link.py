"""The agent's end of the fence keeper (standard mode): a spawned child on a pipe, or a connection to a keeper that
runs on its own (``fence_keeper`` = its unix socket). Both take the same lines (``hold T``, ``release``,
``detach``: DockerFailover.fence); the agent's decider says what to hold (``HoldFence``).

``SpawnedKeeper``: the keeper as the agent's child, in a session of its own; restarted if it died.
``SocketKeeper``: connects, says ``guard SERVER NAME...``, waits for ``ok``; then the link is up
(``on_ready``) and the decider re-sends its hold. A refused, failed or closed connection is ``on_lost`` (the
decider alerts and stops being eligible) and the link retries every ``retry`` seconds, for as long as the agent
runs. A line said while the link is down is dropped: the decider says its current hold again on ``on_ready``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
from collections.abc import Callable

_log = logging.getLogger("docker_failover.keeper")
ANSWER_TIMEOUT = 2.0  # the keeper answers ``guard`` at once; a keeper that does not is as good as none


class SpawnedKeeper:
    """``python -m DockerFailover.fence NAME...`` as our child, its stdin a pipe."""

    def __init__(self, name: str, docker_url: str | None, containers: list[str]) -> None:
        self.argv = [sys.executable, "-m", "DockerFailover.fence", "--name", name,
                     *(["--docker-url", docker_url] if docker_url else []), *containers]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # a session of its own: a signal to the agent (or its process group) does not reach the keeper
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, start_new_session=True)
        _log.info("fence keeper started (pid %d)", self.proc.pid)

    def tell(self, line: str) -> None:
        for attempt in (1, 2):
            if self.proc is None or self.proc.poll() is not None:
                if self.proc is not None:
                    _log.error("fence keeper exited (%s): starting a new one", self.proc.returncode)
                self.start()
            assert self.proc is not None and self.proc.stdin is not None
            try:
                self.proc.stdin.write(line.encode())
                self.proc.stdin.flush()
                return
            except (BrokenPipeError, OSError) as e:
                _log.error("fence keeper pipe (attempt %d): %s", attempt, e)

    async def close(self, last: str) -> None:
        """Say ``last`` (detach or release), close the pipe, let the keeper exit."""
        if self.proc is None:
            return
        self.tell(last)
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.get_running_loop().run_in_executor(None, self.proc.wait, 2)


class SocketKeeper:
    """A connection to ``python -m DockerFailover.fence --listen PATH``, kept up while the agent runs."""

    def __init__(self, path: str, name: str, containers: list[str], *, retry: float,
                 on_ready: Callable[[str], None], on_lost: Callable[[str], None]) -> None:
        self.path, self.name, self.containers, self.retry = path, name, containers, retry
        self.on_ready, self.on_lost = on_ready, on_lost
        self.writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.on_ready_count = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._keep_connected())

    @property
    def connected(self) -> bool:
        return self.writer is not None

    def tell(self, line: str) -> None:
        if self.writer is None:
            _log.debug("fence keeper not connected: %r dropped (said again on reconnect)", line.strip())
            return
        try:
            self.writer.write(line.encode())  # buffered in the kernel at once unless the keeper stopped reading
        except (OSError, RuntimeError) as e:
            _log.error("fence keeper connection: %s", e)

    async def _session(self) -> str:
        """One connection: guard, the answer, then read until the keeper closes; returns why it ended."""
        try:
            reader, writer = await asyncio.open_unix_connection(self.path)
        except OSError as e:
            return f"cannot connect to {self.path}: {type(e).__name__}: {e.strerror or e}"
        try:
            writer.write(f"guard {self.name} {' '.join(self.containers)}\n".encode())
            try:
                answer = (await asyncio.wait_for(reader.readline(), ANSWER_TIMEOUT)).decode(errors="replace").strip()
            except (TimeoutError, OSError) as e:
                return f"no answer from the keeper at {self.path} ({type(e).__name__})"
            if not answer.startswith("ok"):
                return f"the keeper at {self.path} {answer or 'closed the connection'}"
            self.writer = writer
            self.on_ready_count += 1
            _log.warning("fence keeper at %s: %s", self.path, answer)
            self.on_ready(answer)
            while True:
                line = await reader.readline()
                if not line:
                    return f"the keeper at {self.path} closed the connection"
                _log.info("fence keeper says: %s", line.decode(errors="replace").strip()[:200])
        except OSError as e:
            return f"the connection to the keeper at {self.path} failed: {type(e).__name__}: {e}"
        finally:
            self.writer = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _keep_connected(self) -> None:
        last_why, failures = "", 0
        while not self._closing:
            was_up = self.on_ready_count
            why = await self._session()
            if self._closing:
                return
            failures = 0 if self.on_ready_count != was_up else failures + 1
            if why != last_why or failures % 100 == 1:  # once per outage and reason, not every retry
                _log.error("fence keeper: %s; retrying every %gs", why, self.retry)
            last_why = why
            self.on_lost(why)
            await asyncio.sleep(self.retry)

    async def close(self, last: str) -> None:
        """Say ``last`` (detach or release) if connected, then close the connection (the keeper reads our lines
        before the end-of-file, so a ``release`` or ``detach`` before it means: kill nothing)."""
        self._closing = True
        writer = self.writer
        if writer is not None:
            self.tell(last)
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.drain(), 1.0)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

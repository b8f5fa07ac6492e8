"""Running the operator's commands: asyncio subprocesses with a timeout, their own process group,
output drained, and a result that never claims "up" for a command that did not run.

- A command with shell syntax (quotes, pipes, ``$``, redirections, builtins such as ``exit``) runs under
  ``/bin/sh -c`` like the original tool (``shell=True``); a plain ``prog arg ...`` is executed directly,
  which saves one exec per check (measured in bench/valet.py) with the same meaning.
- Every command gets its own session (process group). On timeout the whole group is killed
  (SIGKILL) and the result is ``rc=None``: "did not run to completion", which the supervisor counts
  as down / failed.
- stdout and stderr go to one pipe that is always drained, so a chatty command cannot block on a full
  pipe. A start command that leaves a daemon holding the pipe open does not hold us up: once the
  command itself has exited we keep what was read, and a background task goes on discarding the
  daemon's output until it closes the pipe (the daemon never sees EPIPE).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass

OUTPUT_KEEP = 4096  # bytes of output kept per command (the tail)
EXIT_DRAIN_GRACE = 0.05  # after exit, how long to wait for the last output before moving on
_SHELL_CHARS = re.compile(r"[|&;<>()$`\\\"'*?\[\]#~={}\n]")
_lingering: set[_CommandProtocol] = set()
_SHELL_WORDS = frozenset({"!", ".", ":", "[[", "alias", "break", "case", "cd", "command", "continue", "eval",
                          "exec", "exit", "export", "for", "function", "if", "local", "read", "return", "set",
                          "shift", "source", "trap", "ulimit", "umask", "unset", "until", "wait", "while", "{"})


@dataclass(frozen=True, slots=True)
class CommandResult:
    rc: int | None  # exit status; negative = killed by that signal; None = could not run or timed out
    detail: str  # "exit 0", "timed out after 5s", "cannot run: ..." , "killed by signal 9"
    output: str  # tail of stdout+stderr
    duration: float


def needs_shell(command: str) -> bool:
    """True when the command uses any shell syntax; False for a plain ``program arg ...``."""
    if _SHELL_CHARS.search(command):
        return True
    words = command.split()
    return not words or words[0] in _SHELL_WORDS


@functools.lru_cache(maxsize=4096)
def _argv(command: str) -> tuple[str, ...]:
    """Commands repeat every interval: split each once."""
    return ("/bin/sh", "-c", command) if needs_shell(command) else tuple(shlex.split(command))


class _CommandProtocol(asyncio.SubprocessProtocol):
    """Keeps the tail of the output; learns of the exit itself and of the pipe closing, separately."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.exited: asyncio.Future[None] = loop.create_future()
        self.pipe_closed: asyncio.Future[None] = loop.create_future()
        self.buf = bytearray()
        self.collecting = True
        self.timed_out = False
        self.transport: asyncio.SubprocessTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self in _lingering:  # the daemon finally closed the pipe: release the transport
            _lingering.discard(self)
            if self.transport is not None:
                self.transport.close()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if self.collecting:  # after the command returned, a daemon's output is read and dropped
            self.buf += data
            if len(self.buf) > OUTPUT_KEEP:
                del self.buf[:-OUTPUT_KEEP]

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if not self.pipe_closed.done():
            self.pipe_closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def kill_group(self) -> None:
        """Timeout (a loop timer, no extra task): SIGKILL the command's whole process group."""
        if not self.exited.done() and self.transport is not None:
            self.timed_out = True
            _kill_group(self.transport.get_pid())


async def run_command(command: str, *, timeout: float, env: dict[str, str] | None = None) -> CommandResult:
    """Run one command to completion or timeout. Never raises for the command's own failures.

    Python 3.11's ``Process.wait()`` waits for the pipes to close too, so a start command that leaves
    a daemon behind would look hung; the protocol here resolves on the exit of the command itself.
    """
    start = time.monotonic()
    loop = asyncio.get_running_loop()
    spawn = asyncio.ensure_future(loop.subprocess_exec(
        lambda: _CommandProtocol(loop), *_argv(command), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True, env=env))
    try:
        transport, protocol = await asyncio.shield(spawn)  # a cancelled spawn would leave an unreaped child
    except (OSError, ValueError) as e:
        return CommandResult(None, f"cannot run: {e}", "", time.monotonic() - start)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            transport, protocol = await spawn
            await _abort(transport, protocol)
        raise
    timer = loop.call_later(timeout, protocol.kill_group)
    try:
        await asyncio.shield(protocol.exited)  # shielded: a cancel must not cancel the exit future itself
        if not protocol.pipe_closed.done():
            # usually the pipe closes with the exit (or the group kill); give the last output a moment
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(protocol.pipe_closed), EXIT_DRAIN_GRACE)
    except asyncio.CancelledError:  # the valet is shutting down: end the command, reap it, release it
        await _abort(transport, protocol)
        raise
    finally:
        timer.cancel()
    protocol.collecting = False
    if protocol.pipe_closed.done():
        transport.close()  # exited and pipe closed: nothing left to watch
    else:
        _lingering.add(protocol)  # a daemon kept the pipe: go on draining it while the valet runs
    output = bytes(protocol.buf).decode(errors="replace").strip()
    duration = time.monotonic() - start
    if protocol.timed_out:
        return CommandResult(None, f"timed out after {timeout:g}s (process group killed)", output, duration)
    rc = transport.get_returncode()
    assert rc is not None
    detail = f"exit {rc}" if rc >= 0 else f"killed by signal {-rc}"
    return CommandResult(rc, detail, output, duration)


def close_lingering() -> int:
    """At shutdown: close pipes that daemons left open (before the loop closes). Returns how many."""
    n = 0
    for protocol in list(_lingering):
        if protocol.transport is not None and not protocol.loop.is_closed():
            protocol.transport.close()
            n += 1
    _lingering.clear()
    return n


async def _abort(transport: asyncio.SubprocessTransport, protocol: _CommandProtocol) -> None:
    """Kill the command's process group, wait (briefly) until it is reaped, release the transport."""
    _kill_group(transport.get_pid())
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(asyncio.shield(protocol.exited), 2.0)
    transport.close()


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def use_pidfd_child_watcher() -> str:
    """Python 3.11's default child watcher starts one thread per child; pidfd needs none. Returns the name."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            loop = asyncio.get_running_loop()
            watcher = asyncio.PidfdChildWatcher()
            watcher.attach_loop(loop)
            asyncio.set_child_watcher(watcher)
            return "pidfd"
        except (AttributeError, OSError, NotImplementedError, RuntimeError):
            return "default"

"""Running the operator's commands from the event loop: a timeout, their own process group, output
drained, and a result that never claims "up" for a command that did not run.

- A command with shell syntax (quotes, pipes, ``$``, redirections, builtins such as ``exit``) runs under
  ``/bin/sh -c`` like the original tool (``shell=True``); a plain ``prog arg ...`` is executed directly,
  which saves one exec per check (measured in bench/valet.py) with the same meaning.
- Every command gets its own session (process group). On timeout the whole group is killed
  (SIGKILL) and the result is ``rc=None``: "did not run to completion", which the supervisor counts
  as down / failed. A command that had exited when its timeout comes due is not a timeout: after the
  valet was stalled (SIGSTOP: Python's epoll returns nothing once its deadline passed, so the timer runs
  before the exit is seen) its own exit status counts. A timeout the loop noticed more than
  ``STALL_LATE`` late is ``stalled`` (the valet did not run: the command's time cannot be trusted).
- stdout and stderr go to one pipe that is always drained, so a chatty command cannot block on a full
  pipe. A start command that leaves a daemon holding the pipe open does not hold us up: once the
  command itself has exited we keep what was read, and the loop goes on reading and discarding the
  daemon's output until it closes the pipe (the daemon never sees EPIPE while the valet runs).
- Mechanism (measured, see docs/valet.md): ``os.posix_spawnp`` (new session, stdin /dev/null,
  stdout+stderr to the pipe) plus a pidfd and the pipe registered with the event loop. It costs
  0.14 ms of valet CPU per command against 0.31 ms for ``asyncio.create_subprocess_exec`` (Popen,
  transports, child watcher), which matters at hundreds of checks per second. Linux >= 5.3 (pidfd).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import select
import shlex
import signal
import time
from dataclasses import dataclass

OUTPUT_KEEP = 4096  # bytes of output kept per command (the tail)
EXIT_DRAIN_GRACE = 0.05  # after exit, how long to wait for the last output before moving on
STALL_LATE = 0.5  # a timeout noticed this much after it came due: the valet was stalled (SIGSTOP, a paused VM)
_SHELL_CHARS = re.compile(r"[|&;<>()$`\\\"'*?\[\]#~={}\n]")
_lingering: set[_Command] = set()
_SHELL_WORDS = frozenset({"!", ".", ":", "[[", "alias", "break", "case", "cd", "command", "continue", "eval",
                          "exec", "exit", "export", "for", "function", "if", "local", "read", "return", "set",
                          "shift", "source", "trap", "ulimit", "umask", "unset", "until", "wait", "while", "{"})


@dataclass(frozen=True, slots=True)
class CommandResult:
    rc: int | None  # exit status; negative = killed by that signal; None = could not run or timed out
    detail: str  # "exit 0", "timed out after 5s", "cannot run: ..." , "killed by signal 9"
    output: str  # tail of stdout+stderr
    duration: float
    late: float = 0.0  # how late the loop noticed the timeout (timed-out commands only)

    @property
    def stalled(self) -> bool:
        """Timed out while the valet itself was stalled: its clock jumped past the deadline."""
        return self.rc is None and self.late > STALL_LATE


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


class _Command:
    """One spawned command: its pid, pidfd and output pipe, registered with the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pid: int, out_fd: int) -> None:
        self.loop = loop
        self.pid = pid
        self.out_fd: int | None = out_fd
        self.buf = bytearray()
        self.collecting = True
        self.timed_out = False
        self.late = 0.0
        self.exited: asyncio.Future[int] = loop.create_future()
        self.pipe_closed: asyncio.Future[None] = loop.create_future()
        self.pidfd: int | None = os.pidfd_open(pid)
        loop.add_reader(self.pidfd, self._on_exit)
        loop.add_reader(out_fd, self._on_output)

    def _on_exit(self) -> None:
        if self.pidfd is not None:
            self.loop.remove_reader(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = None
        try:
            _, status = os.waitpid(self.pid, 0)
            rc = os.waitstatus_to_exitcode(status)
        except ChildProcessError:  # reaped elsewhere (should not happen): we cannot know, so not "up"
            rc = -signal.SIGKILL
        if not self.exited.done():
            self.exited.set_result(rc)

    def _on_output(self) -> None:
        try:
            data = os.read(self.out_fd, 65536) if self.out_fd is not None else b""
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close_pipe()
            return
        if self.collecting:  # after the command returned, a daemon's output is read and dropped
            self.buf += data
            if len(self.buf) > OUTPUT_KEEP:
                del self.buf[:-OUTPUT_KEEP]

    def close_pipe(self) -> None:
        if self.out_fd is not None:
            if not self.loop.is_closed():
                self.loop.remove_reader(self.out_fd)
            os.close(self.out_fd)
            self.out_fd = None
        _lingering.discard(self)
        if not self.pipe_closed.done():
            self.pipe_closed.set_result(None)

    def on_timeout(self, due: float) -> None:
        self.late = self.loop.time() - due
        if self.pidfd is not None and select.select([self.pidfd], [], [], 0)[0]:
            self._on_exit()  # it exited before we looked (the loop was stalled): its exit status counts
            return
        self.kill_group(timed_out=True)

    def kill_group(self, timed_out: bool = False) -> None:
        if not self.exited.done():
            self.timed_out = self.timed_out or timed_out
            _kill_group(self.pid)

    async def abort(self) -> None:
        """Kill the process group, wait (briefly) until it is reaped, close the pipe."""
        self.kill_group()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.exited), 2.0)
        self.close_pipe()


def _spawn(argv: tuple[str, ...], env: dict[str, str] | None) -> tuple[int, int]:
    """Start ``argv`` in a new session; returns (pid, read end of its stdout+stderr pipe)."""
    r, w = os.pipe()  # both ends close-on-exec; the child gets w as fds 1 and 2 only
    try:
        pid = os.posix_spawnp(argv[0], list(argv), os.environ if env is None else env,
                              file_actions=[(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                                            (os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, w, 2)],
                              setsid=True)
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
    os.set_blocking(r, False)
    return pid, r


async def run_command(command: str, *, timeout: float, env: dict[str, str] | None = None) -> CommandResult:
    """Run one command to completion or timeout. Never raises for the command's own failures."""
    start = time.monotonic()
    loop = asyncio.get_running_loop()
    try:
        pid, out_fd = _spawn(_argv(command), env)
    except (OSError, ValueError) as e:
        return CommandResult(None, f"cannot run: {e}", "", time.monotonic() - start)
    try:
        cmd = _Command(loop, pid, out_fd)
    except OSError as e:  # no pidfd (out of fds, old kernel): do not leave the child behind
        _kill_group(pid)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        os.close(out_fd)
        return CommandResult(None, f"cannot watch the command: {e}", "", time.monotonic() - start)
    timer = loop.call_later(timeout, lambda: cmd.on_timeout(timer.when()))
    try:
        rc = await asyncio.shield(cmd.exited)  # shielded: a cancel must not cancel the exit future itself
        if not cmd.pipe_closed.done():
            # usually the pipe closes with the exit (or the group kill); give the last output a moment
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(cmd.pipe_closed), EXIT_DRAIN_GRACE)
    except asyncio.CancelledError:  # the valet is shutting down: end the command, reap it, release it
        await cmd.abort()
        raise
    finally:
        timer.cancel()
    cmd.collecting = False
    if not cmd.pipe_closed.done():
        _lingering.add(cmd)  # a daemon kept the pipe: go on draining it while the valet runs
    output = bytes(cmd.buf).decode(errors="replace").strip()
    duration = time.monotonic() - start
    if cmd.timed_out:
        return CommandResult(None, f"timed out after {timeout:g}s (process group killed)", output, duration,
                             late=cmd.late)
    detail = f"exit {rc}" if rc >= 0 else f"killed by signal {-rc}"
    return CommandResult(rc, detail, output, duration)


def close_lingering() -> int:
    """At shutdown: close pipes that daemons left open (before the loop closes). Returns how many."""
    n = 0
    for cmd in list(_lingering):
        cmd.close_pipe()
        n += 1
    _lingering.clear()
    return n


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)

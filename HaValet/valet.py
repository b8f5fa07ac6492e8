"""The HaValet driver: one asyncio loop, one coroutine per logical process, every command concurrent.

It owns every process, clock and file; HaValet.supervisor decides. For each process it feeds a
``Tick`` at the supervisor's next deadline (monotonic clock) and a ``TestDone``/``StartDone``/
``StopDone`` when a command finishes, and carries out each returned Step in one place
(``_carry_out``: failover_core.shell.carry_out logs the decision with its code, hands transitions to
notify, and hands each action to its handler, which spawns the command as a concurrent task). It
keeps the status file current. Processes start in ``order`` (ascending): a level begins once every
process of the lower levels has settled (is active, in backoff or has given up). First rounds of one
level are spread over min(interval, 1 s) so 500 processes do not spawn 500 commands in the same
millisecond.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from failover_core.shell.carry_out import DecisionLog, Handlers, carry_out
from failover_core.shell.clock import MonotonicClock
from failover_core.shell.notify import NotifyDispatcher, SubprocessHookRunner
from failover_core.shell.tasks import cancel_and_wait
from failover_core.step import Reason, Step
from failover_core.transitions import Transition
from HaValet.codes import NoteCode
from HaValet.commands import CommandResult, close_lingering, run_command
from HaValet.config import ProcessSpec, ValetConfig
from HaValet.events import Action, Event, RunStart, RunStop, RunTest, StartDone, StopDone, TestDone, Tick
from HaValet.status_file import StatusFile
from HaValet.supervisor import ProcessSupervisor, ProcState, describe_rc

log = logging.getLogger("HaValet")
SETTLED = (ProcState.ACTIVE, ProcState.CONFLICT, ProcState.BACKOFF, ProcState.FATAL)


@dataclass
class _Process:
    spec: ProcessSpec
    sup: ProcessSupervisor
    env: dict[str, dict[str, str]]
    decisions: DecisionLog
    handlers: Handlers = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    settled: asyncio.Event = field(default_factory=asyncio.Event)


class TransitionSink:
    """Where carry_out hands each transition: the notify hook, the embedder's callback, the status file."""

    def __init__(self, notify: NotifyDispatcher | None, on_transition: Callable[[Transition], None] | None,
                 status_dirty: asyncio.Event) -> None:
        self.notify = notify
        self.on_transition = on_transition
        self.status_dirty = status_dirty

    def submit(self, transition: Transition) -> None:
        if self.notify is not None:
            self.notify.submit(transition)
        if self.on_transition is not None:
            self.on_transition(transition)
        self.status_dirty.set()


def decisions_without_transition(step: Step[Action]) -> list[Reason]:
    """The step's notes and, when it changed no state, its reason (what ``on_note`` is told), in order."""
    reasons = list(step.notes)
    if step.reason is not None and not step.transitions:
        reasons.append(step.reason)
    return [r for r in reasons if r.code != NoteCode.STALE_RESULT]


def _failed(action: Action, detail: str, now: float) -> Event:
    """The result to feed when running ``action`` raised inside the valet: a failed command."""
    if isinstance(action, RunTest):
        return TestDone(host=action.host, rc=None, tag=action.tag, now=now)
    if isinstance(action, RunStart):
        return StartDone(host=action.host, rc=None, tag=action.tag, now=now, detail=detail)
    return StopDone(host=action.host, rc=None, now=now, detail=detail)


async def tick_loop(tick: Callable[[], None], next_deadline: Callable[[], float | None], wake: asyncio.Event,
                    clock: MonotonicClock) -> None:
    """One process's loop, shared by both valets: feed a Tick, then sleep until the decider's next deadline
    or until ``wake`` is set (a command result arrived, a heartbeat moved a deadline). A plain loop timer
    sets the same event a command result sets (cheaper than wait_for's task)."""
    loop = asyncio.get_running_loop()
    while True:
        tick()
        deadline = next_deadline()
        wake.clear()
        timer = None if deadline is None else loop.call_later(max(deadline - clock.now(), 0.001), wake.set)
        try:
            await wake.wait()
        finally:
            if timer is not None:
                timer.cancel()


class Valet:
    def __init__(self, config: ValetConfig, *, status_path: str | Path | None = None,
                 notify: NotifyDispatcher | None = None, clock: MonotonicClock | None = None,
                 on_transition: Callable[[Transition], None] | None = None,
                 on_note: Callable[[str, str, str], None] | None = None) -> None:
        self.config = config
        self.clock = clock or MonotonicClock()
        path = status_path or config.settings.status_file
        self.status_path = Path(path) if path else None
        if notify is None and config.settings.notify:
            notify = NotifyDispatcher(SubprocessHookRunner(config.settings.notify,
                                                           timeout=config.settings.timing.command_timeout))
        self.notify = notify
        self.on_transition = on_transition
        self.on_note = on_note  # (process, code, reason) for decisions without a state change
        self.processes: dict[str, _Process] = {}
        self.commands_run = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self.status_file = StatusFile(self.status_path, self.status, period=2.0)
        self._status_dirty = self.status_file.dirty
        self._transitions = TransitionSink(notify, on_transition, self._status_dirty)

    # ------------------------------------------------------------------ main
    async def run(self, stop: asyncio.Event) -> None:
        log.info("ha-valet: watching %d process(es) from %s", len(self.config.processes), self.config.source)
        for w in self.config.warnings:
            log.warning("config: %s", w)
        loops: list[asyncio.Task[None]] = []
        writer = asyncio.create_task(self.status_file.run())
        try:
            levels = sorted({p.order for p in self.config.processes})
            for level in levels:
                specs = [p for p in self.config.processes if p.order == level]
                now = self.clock.now()
                for i, spec in enumerate(specs):
                    spread = min(spec.timing.interval, 1.0) * i / len(specs)
                    sup = ProcessSupervisor(spec.name, spec.hosts, spec.timing, now=now, first_round_at=now + spread)
                    env = {inst.host: {**os.environ, **inst.environment(spec.name)} for inst in spec.instances}
                    proc = _Process(spec, sup, env, DecisionLog(log, spec.name, rate_limited={NoteCode.STALE_RESULT}))
                    proc.handlers = {RunTest: partial(self._spawn, proc, self._run_test),
                                     RunStart: partial(self._spawn, proc, self._run_start),
                                     RunStop: partial(self._spawn, proc, self._run_stop)}
                    self.processes[spec.name] = proc
                    loops.append(asyncio.create_task(self._process_loop(proc), name=f"valet:{spec.name}"))
                if level != levels[-1]:
                    log.info("start-up order %d: waiting for %s to settle", level, ", ".join(s.name for s in specs))
                    waiters = [asyncio.ensure_future(self.processes[s.name].settled.wait()) for s in specs]
                    stopper = asyncio.ensure_future(stop.wait())
                    await asyncio.wait([stopper, asyncio.gather(*waiters)], return_when=asyncio.FIRST_COMPLETED)
                    stopper.cancel()
                    for w in waiters:
                        w.cancel()
                    if stop.is_set():
                        break
            await stop.wait()
        finally:
            await cancel_and_wait([*loops, *self._tasks])
            await cancel_and_wait([writer])  # after the loops: it writes what they left
            self.write_status()
            close_lingering()
            if self.notify is not None:
                await asyncio.to_thread(self.notify.close, 5.0)
            log.info("ha-valet: stopped (monitored processes are left as they are)")

    async def _process_loop(self, p: _Process) -> None:
        await tick_loop(lambda: self._carry_out(p, p.sup.handle(Tick(now=self.clock.now()))), p.sup.next_deadline,
                        p.wake, self.clock)

    # ------------------------------------------------------------------ carrying out a Step (the one place)
    def _carry_out(self, p: _Process, step: Step[Action]) -> None:
        """Log and notify through failover_core's carry_out, which hands each action to ``p.handlers``.

        The handlers spawn their command as a task, so a round's tests run concurrently (carry_out_async
        would await each in turn); every result comes back through ``_command`` as an event.
        """
        carry_out(step, p.handlers, log=p.decisions, notify=self._transitions)
        if self.on_note is not None:
            for reason in decisions_without_transition(step):
                self.on_note(p.spec.name, reason.code, reason.text)
        if p.sup.state in SETTLED:
            p.settled.set()

    def _spawn(self, p: _Process, run: Callable[[_Process, Any], Awaitable[Event]], action: Action) -> None:
        task = asyncio.create_task(self._command(p, run, action))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _command(self, p: _Process, run: Callable[[_Process, Any], Awaitable[Event]], action: Action) -> None:
        """Run one command and feed its result back (a failure inside the valet counts as a failed command)."""
        try:
            event = await run(p, action)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug or an OS surprise must not leave the supervisor waiting forever
            log.exception("%s: %s on %s failed inside the valet", p.spec.name, type(action).__name__, action.host)
            event = _failed(action, f"valet error: {e}", self.clock.now())
        self._carry_out(p, p.sup.handle(event))
        p.wake.set()

    # ------------------------------------------------------------------ the commands
    async def _run_test(self, p: _Process, action: RunTest) -> TestDone:
        self.commands_run += 1
        command = p.spec.instance(action.host).test_command
        r = await run_command(command, timeout=p.spec.timing.command_timeout, env=p.env[action.host])
        self._log_result(p, "test", action.host, r, describe_rc(r.rc), logging.DEBUG)
        if r.stalled:
            log.warning("%s: test on %s timed out, but the valet was stalled (its timeout came due late): not a "
                        "verdict, testing again", p.spec.name, action.host)
        return TestDone(host=action.host, rc=r.rc, tag=action.tag, now=self.clock.now(), stalled=r.stalled)

    async def _run_start(self, p: _Process, action: RunStart) -> StartDone:
        self.commands_run += 1
        command = p.spec.instance(action.host).start_command
        log.info("%s: starting on %s: %s", p.spec.name, action.host, command)
        r = await run_command(command, timeout=p.spec.timing.start_timeout, env=p.env[action.host])
        self._log_result(p, "start", action.host, r, r.detail, logging.INFO)
        return StartDone(host=action.host, rc=r.rc, tag=action.tag, now=self.clock.now(), detail=r.detail)

    async def _run_stop(self, p: _Process, action: RunStop) -> StopDone:
        self.commands_run += 1
        command = p.spec.instance(action.host).stop_command
        log.info("%s: stopping on %s: %s", p.spec.name, action.host, command)
        r = await run_command(command, timeout=p.spec.timing.stop_timeout, env=p.env[action.host])
        self._log_result(p, "stop", action.host, r, r.detail, logging.INFO)
        return StopDone(host=action.host, rc=r.rc, now=self.clock.now(), detail=r.detail)

    @staticmethod
    def _log_result(p: _Process, kind: str, host: str, r: CommandResult, what: str, level: int) -> None:
        if r.rc is None:
            level = logging.WARNING
        if log.isEnabledFor(level):
            out = f"; output: {r.output[-500:]}" if r.output else ""
            log.log(level, "%s: %s on %s: %s (%s, %.3fs)%s", p.spec.name, kind, host, what, r.detail, r.duration, out)

    # ------------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        mono, wall = self.clock.now(), time.time()
        procs = []
        for p in self.processes.values():
            snap = p.sup.snapshot(mono)
            at = snap.pop("last_transition_at")
            snap["last_transition_time"] = (
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall - (mono - at))) if isinstance(at, float) else None)
            bu = snap.pop("backoff_until")
            snap["backoff_left"] = round(bu - mono, 3) if isinstance(bu, float) and bu > mono else None
            procs.append(snap)
        return {"valet_pid": os.getpid(), "config": self.config.source,
                "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall)), "processes": procs}

    def write_status(self) -> None:
        self.status_file.write()


def render_status(data: dict[str, Any]) -> str:
    """The ``--status`` table: one line per process."""
    rows = [("PROCESS", "STATE", "ACTIVE ON", "LAST TRANSITION")]
    for p in data.get("processes", []):
        active = p.get("active_host") or (f"(starting on {p['starting_on']})" if p.get("starting_on") else "-")
        last = p.get("last_transition") or "-"
        if p.get("last_transition_time"):
            last = f"{p['last_transition_time']} {last}"
        rows.append((str(p.get("process")), str(p.get("state")), str(active), last))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}" for r in rows]
    lines.append(f"(status of ha-valet pid {data.get('valet_pid')} at {data.get('updated')}, "
                 f"config {data.get('config')})")
    return "\n".join(lines)

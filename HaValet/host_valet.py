"""The per-host mode's driver: one valet per host, acting on its own host, arbitrating with its peer valets.

It owns every process, socket, clock and file; ``HaValet.arbiter.PairArbiter`` decides (one per process).
For each process it feeds a ``Tick`` at the arbiter's next deadline (monotonic clock), ``TestDone``/
``StartDone``/``StopDone`` when a local command finishes, ``PeerHeard`` when the peer valet's signed heartbeat
or answer arrives, ``WitnessAnswered`` when the witness acknowledges ours, and carries out each Step in one
place (``_carry_out``: failover_core.shell.carry_out logs, notifies and hands each action to its handler,
which spawns the command or the HTTP request as a task).

HTTP (aiohttp): the valet listens on ``listen`` for ``POST /v1/valet/heartbeat`` (``HaValet.wire``) and
``GET /status``; it sends its heartbeats to each process's peer and, with a witness, to the witness
(``FailoverWitness.client.WitnessClient``, group = ``witness_group_prefix`` + process name). On SIGTERM it
hands each process it runs over to a peer that can take it (stops it here first), says goodbye to its
peers, and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from failover_core.errors import RemoteInputError
from failover_core.request_auth import MAX_BODY, SIG_HEADER, NotAuthenticated, RequestAuthenticator
from failover_core.shell.carry_out import DecisionLog, Handlers, carry_out
from failover_core.shell.clock import MonotonicClock
from failover_core.shell.notify import NotifyDispatcher, SubprocessHookRunner
from failover_core.shell.tasks import cancel_and_wait
from failover_core.step import Step
from failover_core.transitions import Transition
from FailoverWitness.client import WitnessClient, WitnessError
from HaValet.arbiter import DeciderBug, PairArbiter
from HaValet.codes import PairNoteCode
from HaValet.commands import close_lingering, run_command
from HaValet.config import HostMode, ProcessSpec, ValetConfig
from HaValet.events import (
    Leave,
    PairAction,
    PairEvent,
    PeerHeard,
    RunStart,
    RunStop,
    RunTest,
    SendHeartbeat,
    StartDone,
    StopDone,
    TestDone,
    Tick,
    WitnessAnswered,
)
from HaValet.status_file import StatusFile
from HaValet.supervisor import describe_rc
from HaValet.valet import TransitionSink, tick_loop
from HaValet.wire import HEARTBEAT_PATH, ValetHeartbeat, ValetInbox, ValetSender

log = logging.getLogger("HaValet")
LEAVE_GRACE = 2.0  # on SIGTERM, beyond the stop command's own timeout: time to say goodbye
LOGGED_AT = (1, 10, 100, 1000)
SERVER_SHUTDOWN_TIMEOUT = 1.0  # our heartbeat handler answers at once; a slower request is a stuck peer
SLOW_PHASE = 0.5  # a shutdown phase longer than this is logged (what a stuck exit waited for)


class _PhaseTimer:
    """Logs a shutdown phase that took longer than SLOW_PHASE, so that a slow exit says what it waited for."""

    def __init__(self, clock: MonotonicClock) -> None:
        self.clock, self.since = clock, clock.now()

    def done(self, what: str) -> None:
        now = self.clock.now()
        if now - self.since > SLOW_PHASE:
            log.warning("ha-valet: shutdown: %s took %.1fs", what, now - self.since)
        self.since = now


@dataclass
class _Process:
    spec: ProcessSpec
    arb: PairArbiter
    env: dict[str, str]
    decisions: DecisionLog
    peer_url: str
    witness: WitnessClient | None
    handlers: Handlers = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class HostValet:
    """The per-host valet (module docstring). ``run(stop)`` until ``stop`` is set."""

    def __init__(self, config: ValetConfig, *, status_path: str | Path | None = None,
                 clock: MonotonicClock | None = None,
                 on_transition: Callable[[Transition], None] | None = None) -> None:
        if config.settings.host_mode is None:
            raise ValueError("HostValet needs [valet] node (the per-host mode)")
        self.config = config
        self.mode: HostMode = config.settings.host_mode
        self.clock = clock or MonotonicClock()
        path = status_path or config.settings.status_file
        self.status_path = Path(path) if path else None
        notify = None
        if config.settings.notify:
            notify = NotifyDispatcher(SubprocessHookRunner(config.settings.notify,
                                                           timeout=config.settings.timing.command_timeout))
        self.notify = notify
        self.boot = secrets.token_hex(8)
        self.auth = RequestAuthenticator(self.mode.secret, self.mode.max_clock_skew)
        by_peer: dict[str, set[str]] = {}
        for p in config.processes:
            for h in p.hosts:
                if h != self.mode.node:
                    by_peer.setdefault(h, set()).add(p.name)
        self.inbox = ValetInbox(self.auth, {k: frozenset(v) for k, v in by_peer.items()}, self.mode.max_clock_skew)
        self.sender = ValetSender(self.auth)
        self.processes: dict[str, _Process] = {}
        self.rejected: dict[str, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.status_file = StatusFile(self.status_path, self.status, period=1.0)
        self._status_dirty = self.status_file.dirty
        self._transitions = TransitionSink(notify, on_transition, self._status_dirty)
        self._http: aiohttp.ClientSession | None = None
        self._warned_down_after: set[str] = set()
        self._keeper: subprocess.Popen[bytes] | None = None
        self._told_keeper: dict[str, tuple[bool, float | None]] = {}

    # ------------------------------------------------------------------ main
    async def run(self, stop: asyncio.Event) -> None:
        m = self.mode
        log.info("ha-valet: per-host mode on %s (%s), %d process(es) from %s; %s", m.node,
                 "standard: witness " + str(m.witness_url) if m.standard else "simple: no witness",
                 len(self.config.processes), self.config.source, m.timing_summary())
        for w in self.config.warnings:
            log.warning("config: %s", w)
        now = self.clock.now()
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=m.request_timeout))
        for spec in self.config.processes:
            arb = PairArbiter(spec.name, spec.hosts, m.node, m, spec.timing, now=now)
            inst = spec.instance(m.node)
            witness = None
            if m.witness_url is not None and m.witness_secret is not None:
                witness = WitnessClient(m.witness_url, m.witness_group(spec.name), m.node, m.witness_secret,
                                        timeout=m.request_timeout, boot=self.boot, max_skew=m.max_clock_skew)
            proc = _Process(spec, arb, {**os.environ, **inst.environment(spec.name)},
                            DecisionLog(log, spec.name, rate_limited={PairNoteCode.STALE_RESULT}),
                            m.peers[arb.peer], witness)
            proc.handlers = {RunTest: partial(self._spawn, proc, self._run_test),
                             RunStart: partial(self._spawn, proc, self._run_start),
                             RunStop: partial(self._spawn, proc, self._run_stop),
                             SendHeartbeat: partial(self._spawn, proc, self._send_heartbeat)}
            self.processes[spec.name] = proc
        if m.keeper:
            self._start_keeper()
        # a peer's request still in flight at shutdown may hold the exit this long (aiohttp's default is 60 s)
        runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=SERVER_SHUTDOWN_TIMEOUT)
        await runner.setup()
        host, port = m.listen_address
        await web.TCPSite(runner, host, port, reuse_address=True).start()
        log.info("ha-valet: listening on %s:%d for %s", host, port, ", ".join(m.peers))
        loops = [asyncio.create_task(self._process_loop(p), name=f"valet:{p.spec.name}")
                 for p in self.processes.values()]
        writer = asyncio.create_task(self.status_file.run())
        try:
            await stop.wait()
            log.info("ha-valet: stopping (SIGTERM/SIGINT)")
            leaving = _PhaseTimer(self.clock)
            await self._leave()
            leaving.done("handing over and saying goodbye")
        finally:
            phase = _PhaseTimer(self.clock)
            await cancel_and_wait([*loops, *self._tasks])
            await cancel_and_wait([writer])  # after the loops: it writes what they left
            phase.done("ending the loops and commands in flight")
            self.write_status()
            await runner.cleanup()
            phase.done("closing the heartbeat server")
            for p in self.processes.values():
                if p.witness is not None:
                    await p.witness.close()
            await self._http.close()
            phase.done("closing the HTTP clients")
            self._close_keeper()
            phase.done("saying goodbye to the keeper")
            close_lingering()
            if self.notify is not None:
                await asyncio.to_thread(self.notify.close, 5.0)
                phase.done("waiting for notify hooks")
            log.info("ha-valet: stopped")

    async def _leave(self) -> None:
        """Hand over (stop here first) what a peer can take, say goodbye, wait for the goodbyes to go out."""
        for p in self.processes.values():
            self._feed(p, Leave(now=self.clock.now()))
        limit = max((p.spec.timing.stop_timeout for p in self.processes.values()), default=0.0) + LEAVE_GRACE
        deadline = self.clock.now() + limit
        while not all(p.arb.finished for p in self.processes.values()) and self.clock.now() < deadline:
            await asyncio.sleep(0.02)
        pending = [t for t in self._tasks if t.get_name().startswith("heartbeat:")]
        if pending:
            await asyncio.wait(pending, timeout=LEAVE_GRACE)

    async def _process_loop(self, p: _Process) -> None:
        await tick_loop(lambda: self._feed(p, Tick(now=self.clock.now())), p.arb.next_deadline, p.wake, self.clock)

    # ------------------------------------------------------------------ carrying out a Step (the one place)
    def _carry_out(self, p: _Process, step: Step[PairAction]) -> None:
        carry_out(step, p.handlers, log=p.decisions, notify=self._transitions)
        p.wake.set()  # deadlines may have moved
        if self._keeper is not None:
            self._tell_keeper(p)

    # ------------------------------------------------------------------ the keeper (HaValet.keeper)
    def _start_keeper(self) -> None:
        self._keeper = subprocess.Popen([sys.executable, "-m", "HaValet.keeper"], stdin=subprocess.PIPE,
                                        start_new_session=True)
        log.info("ha-valet: keeper pid %d stops the processes if this valet dies or freezes past its lease",
                 self._keeper.pid)
        for p in self.processes.values():
            self._keeper_line({"process": p.spec.name, "host": self.mode.node,
                               "stop_command": p.spec.instance(self.mode.node).stop_command,
                               "stop_timeout": p.spec.timing.stop_timeout, "env": p.env})

    def _tell_keeper(self, p: _Process) -> None:
        a = p.arb
        until = None
        if a.standard:
            until = a.lease_until
        state = (a.claims_running and not a.finished, until)
        if self._told_keeper.get(p.spec.name) != state:
            self._told_keeper[p.spec.name] = state
            self._keeper_line({"process": p.spec.name, "running": state[0], "until": until})

    def _keeper_line(self, msg: dict[str, Any]) -> None:
        k = self._keeper
        if k is None or k.stdin is None:
            return
        try:
            k.stdin.write(json.dumps(msg).encode() + b"\n")
            k.stdin.flush()
        except OSError as e:
            log.error("ha-valet: the keeper (pid %d) is gone (%s): a SIGKILL of this valet would now leave its "
                      "processes running", k.pid, e)
            self._keeper = None

    def _close_keeper(self) -> None:
        """Clean exit: goodbye to the keeper (what runs now stays as the hand-over left it)."""
        k = self._keeper
        if k is None:
            return
        self._keeper_line({"bye": True})
        with contextlib.suppress(OSError):
            if k.stdin is not None:
                k.stdin.close()
        try:
            k.wait(5)
        except subprocess.TimeoutExpired:
            k.kill()
            k.wait(5)
        self._keeper = None

    def _feed(self, p: _Process, event: PairEvent) -> None:
        """One event in, its Step carried out. A bug inside the arbiter never ends the process's loop: its error is
        logged, the actions it had queued are carried out (their bookkeeping is set: a stop it counts as running
        really runs) and it tests again at once (``DeciderBug``)."""
        try:
            step = p.arb.handle(event)
        except DeciderBug as e:
            log.error("%s: the arbiter failed on %s (%s: %s); carrying out the %d action(s) it queued and testing "
                      "again", p.spec.name, type(event).__name__, type(e.__cause__).__name__, e.__cause__,
                      len(e.step.actions), exc_info=e.__cause__)
            step = e.step
        self._carry_out(p, step)

    def _spawn(self, p: _Process, run: Callable[[_Process, Any], Any], action: PairAction) -> None:
        name = f"heartbeat:{p.spec.name}" if isinstance(action, SendHeartbeat) else f"command:{p.spec.name}"
        task = asyncio.create_task(self._command(p, run, action), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _command(self, p: _Process, run: Callable[[_Process, Any], Any], action: PairAction) -> None:
        try:
            await run(p, action)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug or an OS surprise must not leave the arbiter waiting forever
            log.exception("%s: %s failed inside the valet", p.spec.name, type(action).__name__)
            now = self.clock.now()
            if isinstance(action, RunTest):
                self._feed(p, TestDone(host=action.host, rc=None, tag=action.tag, now=now))
            elif isinstance(action, RunStart):
                self._feed(p, StartDone(host=action.host, rc=None, tag=action.tag, now=now, detail=f"valet: {e}"))
            elif isinstance(action, RunStop):
                self._feed(p, StopDone(host=action.host, rc=None, now=now, detail=f"valet: {e}"))

    # ------------------------------------------------------------------ local commands
    async def _run_test(self, p: _Process, a: RunTest) -> None:
        r = await run_command(p.spec.instance(a.host).test_command, timeout=p.spec.timing.command_timeout, env=p.env)
        log.debug("%s: test on %s: %s (%s, %.3fs)", p.spec.name, a.host, describe_rc(r.rc), r.detail, r.duration)
        if r.stalled:
            log.warning("%s: test on %s %s, but the valet was stalled (its timeout came due %.1fs late): not "
                        "trusted, testing again", p.spec.name, a.host, r.detail, r.late)
        self._feed(p, TestDone(host=a.host, rc=r.rc, tag=a.tag, now=self.clock.now(), stalled=r.stalled))

    async def _run_start(self, p: _Process, a: RunStart) -> None:
        command = p.spec.instance(a.host).start_command
        log.info("%s: starting on %s (term %d): %s", p.spec.name, a.host, a.term, command)
        r = await run_command(command, timeout=p.spec.timing.start_timeout,
                              env={**p.env, "HAVALET_TERM": str(a.term)})
        log.info("%s: start on %s: %s (%.3fs)%s", p.spec.name, a.host, r.detail, r.duration,
                 f"; output: {r.output[-500:]}" if r.output and r.rc != 0 else "")
        self._feed(p, StartDone(host=a.host, rc=r.rc, tag=a.tag, now=self.clock.now(), detail=r.detail))

    async def _run_stop(self, p: _Process, a: RunStop) -> None:
        command = p.spec.instance(a.host).stop_command
        log.info("%s: stopping on %s: %s", p.spec.name, a.host, command)
        r = await run_command(command, timeout=p.spec.timing.stop_timeout, env=p.env)
        log.info("%s: stop on %s: %s (%.3fs)", p.spec.name, a.host, r.detail, r.duration)
        self._feed(p, StopDone(host=a.host, rc=r.rc, now=self.clock.now(), detail=r.detail))

    # ------------------------------------------------------------------ heartbeats out
    def _state_of(self, p: _Process, *, seq: int, acked_seq: int | None = None) -> ValetHeartbeat:
        a = p.arb
        now = self.clock.now()
        return ValetHeartbeat(sender=self.mode.node, process=p.spec.name, boot=self.boot, seq=seq, term=a.term,
                              running=a.claims_running, eligible=a.eligible(now), priority=a.priority,
                              ranking=a.ranking, leaving=a.finished, acked_seq=acked_seq)

    async def _send_heartbeat(self, p: _Process, a: SendHeartbeat) -> None:
        hb = ValetHeartbeat(sender=self.mode.node, process=p.spec.name, boot=self.boot, seq=a.seq, term=a.term,
                            running=a.running, eligible=a.eligible, priority=a.priority, ranking=p.arb.ranking,
                            leaving=a.leaving)
        jobs = [self._post_peer(p, hb)]
        if p.witness is not None:
            jobs.append(self._post_witness(p, a))
        await asyncio.gather(*jobs)

    async def _post_peer(self, p: _Process, hb: ValetHeartbeat) -> None:
        assert self._http is not None
        nonce = secrets.token_hex(16)
        body, headers = self.sender.request(hb, wall_now=time.time(), nonce=nonce)
        try:
            async with self._http.post(p.peer_url + HEARTBEAT_PATH, data=body,
                                       headers={**headers, "Content-Type": "application/json"}) as r:
                data = await r.content.read(MAX_BODY + 1)
                if r.status != 200:
                    self._count(f"peer_http_{r.status}", f"{p.spec.name}: peer {p.arb.peer} refused our heartbeat: "
                                f"HTTP {r.status} {data[:200]!r}")
                    return
                answer = self.sender.answer(hb, nonce, data, r.headers.get(SIG_HEADER), p.arb.peer)
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            log.debug("%s: heartbeat %d to %s: %s", p.spec.name, hb.seq, p.arb.peer, type(e).__name__)
            return
        except RemoteInputError as e:
            self._count(f"peer_answer_{e.reason}", f"{p.spec.name}: bad answer from {p.arb.peer}: {e}")
            return
        self._feed(p, self._peer_event(answer, acked_seq=answer.acked_seq))

    async def _post_witness(self, p: _Process, a: SendHeartbeat) -> None:
        assert p.witness is not None
        try:
            ack = await p.witness.heartbeat(a.term, a.running, a.seq)
        except WitnessError as e:
            log.debug("%s: witness heartbeat %d: %s", p.spec.name, a.seq, e)
            return
        ours = self.mode.peer_down_after  # = fencing.down_after = heartbeat_timeout
        if abs(ack.down_after - ours) > 0.01 and p.spec.name not in self._warned_down_after:
            self._warned_down_after.add(p.spec.name)
            log.warning("%s: the witness calls a node down after %.3fs of silence (group %s), we after %.3fs: "
                        "give the witness group timeout = %g (our heartbeat_timeout); the active's lease "
                        "(%.3fs) only protects against a witness that waits at least that long",
                        p.spec.name, ack.down_after, ack.group, ours, self.mode.heartbeat_timeout, self.mode.lease)
        view = ack.view_of(p.arb.peer)
        self._feed(p, WitnessAnswered(seq=ack.seq, now=self.clock.now(), peer_state=view.state.value,
                                      peer_may_be_active=view.may_be_active, highest_term=ack.highest_term))

    def _peer_event(self, hb: ValetHeartbeat, acked_seq: int | None = None) -> PeerHeard:
        return PeerHeard(peer=hb.sender, now=self.clock.now(), term=hb.term, running=hb.running,
                         eligible=hb.eligible, priority=hb.priority, ranking=hb.ranking, leaving=hb.leaving,
                         acked_seq=acked_seq)

    def _count(self, reason: str, text: str) -> None:
        n = self.rejected[reason] = self.rejected.get(reason, 0) + 1
        if n in LOGGED_AT or n % 10000 == 0:
            log.warning("%s (%s, %d so far)", text, reason, n)

    # ------------------------------------------------------------------ heartbeats in
    def _app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)

        async def heartbeat(request: web.Request) -> web.Response:
            body = await request.read()
            try:
                nonce, hb = self.inbox.heartbeat(request.method, request.path, body, request.headers,
                                                 wall_now=time.time())
            except RemoteInputError as e:
                self._count(e.reason, f"heartbeat from {request.remote} refused: {e.detail}")
                return web.json_response({"error": e.reason}, status=401 if isinstance(e, NotAuthenticated) else 400)
            p = self.processes[hb.process]
            self._feed(p, self._peer_event(hb))
            data, headers = self.inbox.answer(nonce, self._state_of(p, seq=p.arb.seq, acked_seq=hb.seq))
            return web.Response(body=data, content_type="application/json", headers=headers)

        async def status(request: web.Request) -> web.Response:
            return web.json_response(self.status())

        app.router.add_post(HEARTBEAT_PATH, heartbeat)
        app.router.add_get("/status", status)
        return app

    # ------------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        mono, wall = self.clock.now(), time.time()
        procs = []
        for p in self.processes.values():
            snap = p.arb.snapshot(mono)
            at = snap.pop("last_transition_at")
            snap["last_transition_time"] = (
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall - (mono - at))) if isinstance(at, float) else None)
            snap.pop("backoff_until")
            procs.append(snap)
        return {"valet_pid": os.getpid(), "config": self.config.source, "node": self.mode.node,
                "mode": "per-host " + ("standard" if self.mode.standard else "simple"),
                "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall)), "processes": procs,
                "rejected": dict(self.rejected)}

    def write_status(self) -> None:
        self.status_file.write()

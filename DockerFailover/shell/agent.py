"""The agent process: one asyncio loop driving the pure pair decider (``DockerFailover.decider``).

It owns every socket, thread and clock reading: the aiohttp server and client, the Docker worker
thread (inspect/start/stop, one at a time, in order), the Docker event follower, the periodic
reconcile, the term file and the notify hooks. Each fact becomes an event for ``PairNode.decide``;
each step it returns is carried out in one place, ``apply``, by failover_core's ``carry_out_async``:
the decision logged, transitions to the notify hooks, each action to its handler below (a new term
is on disk before the actions after it). Handlers never await: a step is carried out at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
from aiohttp import web

from DockerFailover.config import NodeConfig
from DockerFailover.decider import PairNode, PairSettings
from DockerFailover.events import (
    Action,
    Alert,
    ContainersObserved,
    ContainersStarted,
    ContainersStopped,
    DockerUnreachable,
    Event,
    HandOverAnswer,
    HandOverAnswered,
    HandOverRequested,
    HeartbeatAnswer,
    HeartbeatReceived,
    HoldFence,
    KeeperConnected,
    KeeperLost,
    PeerAcknowledged,
    PeerAlive,
    PeerHeartbeat,
    PersistTerm,
    RequestHandOver,
    Resumed,
    Role,
    SendHeartbeat,
    ShutdownRequested,
    StartContainers,
    StopContainers,
    TermNotPersisted,
    Tick,
    WitnessAnswered,
    WitnessUnreachable,
)
from DockerFailover.shell.docker_host import DockerHost, DockerUnavailable, EventFollower
from DockerFailover.shell.http_api import build_app
from DockerFailover.shell.keeper_link import SocketKeeper, SpawnedKeeper
from DockerFailover.shell.status import agent_status
from DockerFailover.shell.term_store import TermStore, write_service_term
from DockerFailover.wire import SIG_HEADER, HandOverRequest, PeerInbox, RequestAuthenticator, decode_body, encode_body
from failover_core.errors import RemoteInputError
from failover_core.hooks import HookResult
from failover_core.shell.carry_out import DecisionLog, carry_out_async
from failover_core.shell.clock import MonotonicClock
from failover_core.shell.notify import NotifyDispatcher, SubprocessHookRunner
from failover_core.shell.tasks import cancel_and_wait
from failover_core.step import Step
from failover_core.transitions import Transition
from FailoverWitness.client import WitnessClient, WitnessError

_log = logging.getLogger("docker_failover")


class TermHookRunner(SubprocessHookRunner):
    """The notify hook with ``FAILOVER_TERM``: the term the node was in right after the transition (recorded
    by ``TermTaggingSink`` when the step is carried out; the hooks run later, in order, on one thread)."""

    def __init__(self, command: str | list[str], timeout: float) -> None:
        super().__init__(command, timeout)
        self.terms: dict[int, int] = {}

    def run(self, transition: Transition) -> HookResult:
        self.extra_env = {"FAILOVER_TERM": str(self.terms.pop(transition.seq, ""))}
        return super().run(transition)


class TermTaggingSink:
    """What ``carry_out`` hands transitions to: note the node's term, then queue the hook."""

    def __init__(self, node: PairNode, runner: TermHookRunner, dispatcher: NotifyDispatcher) -> None:
        self.node, self.runner, self.dispatcher = node, runner, dispatcher

    def submit(self, transition: Transition) -> None:
        self.runner.terms[transition.seq] = self.node.term
        self.dispatcher.submit(transition)
MAX_HEARTBEATS_IN_FLIGHT = 3


def pair_settings(cfg: NodeConfig) -> PairSettings:
    return PairSettings(
        name=cfg.name, peer=cfg.peer, preferred=cfg.preferred, containers=tuple(cfg.containers),
        heartbeat_interval=cfg.heartbeat_interval, heartbeat_timeout=cfg.heartbeat_timeout,
        startup_grace_period=cfg.startup_grace_period, restart_grace_period=cfg.restart_grace_period,
        stop_timeout=cfg.stop_timeout, failback=cfg.failback, failback_hold_down=cfg.failback_hold_down,
        fencing=cfg.fencing, keeper_connects=cfg.keeper_socket is not None)


class Agent:
    """The driver of one node; ``http_api`` reaches it as a ``PairEndpoint``."""

    def __init__(self, cfg: NodeConfig) -> None:
        self.cfg = cfg
        self.clock = MonotonicClock()
        self.terms = TermStore(cfg.state_dir, cfg.name)
        term = self.terms.load()
        self.terms.save(term)  # fail at start, not at the first takeover, if the state dir is not writable
        self.node = PairNode(pair_settings(cfg), term=term, booted_at=self.clock.now())
        self.auth = RequestAuthenticator(cfg.secret, cfg.max_clock_skew)
        self.inbox = PeerInbox(self.auth, cfg.peer, cfg.max_clock_skew)
        self.boot_id = secrets.token_hex(8)
        self.docker = DockerHost(cfg.docker_url, timeout=max(5.0, cfg.request_timeout))
        self.docker_worker = ThreadPoolExecutor(1, thread_name_prefix="docker")
        self.notify: NotifyDispatcher | None = None
        self.notify_sink: TermTaggingSink | None = None
        if cfg.notify:
            runner = TermHookRunner(cfg.notify, cfg.notify_timeout)
            self.notify = NotifyDispatcher(runner)
            self.notify_sink = TermTaggingSink(self.node, runner, self.notify)
        self.decisions = DecisionLog(_log)
        self.handlers: dict[type, Any] = {
            PersistTerm: self._persist_term, Alert: self._alert, StartContainers: self._start,
            StopContainers: self._stop, RequestHandOver: self._hand_over, SendHeartbeat: self._heartbeat,
            HandOverAnswer: self._answered, HeartbeatAnswer: lambda a: None, HoldFence: self._hold_fence,
        }
        self.witness: WitnessClient | None = None
        if cfg.witness is not None:
            self.witness = WitnessClient(cfg.witness.url, cfg.witness.group, cfg.name, cfg.witness.secret,
                                         timeout=cfg.request_timeout, boot=self.boot_id,
                                         max_skew=cfg.max_clock_skew)
        self._witness_in_flight = 0
        self.keeper: SpawnedKeeper | SocketKeeper | None = None
        if cfg.witness is not None and cfg.keeper_socket is not None:
            self.keeper = SocketKeeper(cfg.keeper_socket, cfg.name, list(cfg.containers), retry=cfg.heartbeat_interval,
                                       on_ready=self._keeper_ready, on_lost=self._keeper_lost)
        elif cfg.witness is not None:
            self.keeper = SpawnedKeeper(cfg.name, cfg.docker_url, list(cfg.containers))
        self._fence_line = "release\n"
        self.rejected: collections.Counter[str] = collections.Counter()
        self.alerts: collections.deque[dict[str, Any]] = collections.deque(maxlen=20)
        self.docker_detail = ""
        self.last_loop = self.clock.now()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._heartbeats_in_flight = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._heartbeat_tasks: set[asyncio.Task[Any]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: EventFollower | None = None

    # ------------------------------------------------------------------ PairEndpoint (the HTTP API's view)

    def wall_now(self) -> float:
        return time.time()

    def count_rejected(self, reason: str, detail: str) -> None:
        self.rejected[reason] += 1
        n = self.rejected[reason]
        if n <= 10 or n % 100 == 0:
            _log.warning("rejected request (%s, #%d): %s", reason, n, detail)

    def status(self) -> dict[str, Any]:
        return agent_status(self.node, self.clock.now(), docker_detail=self.docker_detail, rejected=self.rejected,
                            alerts=self.alerts)

    def health(self) -> tuple[bool, str, str]:
        role = self.node.role.value
        lag = self.clock.now() - self.last_loop
        if lag > max(2.0, 4 * self.cfg.check_heartbeat_interval):
            return False, f"agent loop stalled for {lag:.1f}s", role
        if self.node.docker_ok is False:
            return False, f"Docker daemon unreachable: {self.docker_detail}", role
        return True, "ok", role

    async def on_heartbeat(self, heartbeat: PeerHeartbeat, news: bool) -> dict[str, Any]:
        now = self.clock.now()
        step = await self.feed(HeartbeatReceived(now=now, heartbeat=heartbeat, posted=True) if news
                               else PeerAlive(now=now))
        return {"ok": True, **step.of_type(HeartbeatAnswer)[0].fields, "boot": self.boot_id}

    async def on_hand_over_request(self, request: HandOverRequest) -> HandOverAnswer:
        step = await self.feed(HandOverRequested(now=self.clock.now(), sender=request.sender, term=request.term,
                                                 reason=request.reason))
        return step.of_type(HandOverAnswer)[0]

    # ------------------------------------------------------------------ feeding the decider, carrying out its steps

    async def _check_stall(self, now: float) -> None:
        """Frozen (SIGSTOP) or starved for longer than a heartbeat timeout? Tell the decider before it
        reads anything that may have waited in our sockets meanwhile."""
        stalled_for = now - self.last_loop
        self.last_loop = now
        if stalled_for > self.cfg.stall_threshold:
            await self.apply(self.node.handle(Resumed(now=now, stalled_for=stalled_for)))

    async def feed(self, event: Event) -> Step[Action]:
        await self._check_stall(event.now)
        step = self.node.handle(event)
        await self.apply(step)
        return step

    async def apply(self, step: Step[Action]) -> None:
        """The one place a step is carried out."""
        await carry_out_async(step, self.handlers, log=self.decisions, notify=self.notify_sink)
        self._wake.set()

    def _persist_term(self, a: PersistTerm) -> None:
        try:
            self.terms.save(a.term)
        except OSError as e:  # checked writable at start; keep running, say so loudly
            _log.error("cannot persist term %d to %s: %s", a.term, self.terms.path, e)
            self._spawn(self.feed(TermNotPersisted(now=self.clock.now(), term=a.term, detail=str(e))))

    def _alert(self, a: Alert) -> None:
        _log.warning("alert [%s]: %s", a.code.value, a.message)
        self.alerts.append({"code": a.code.value, "message": a.message, "wall": round(self.wall_now(), 3)})

    def _start(self, a: StartContainers) -> None:
        _log.info("starting %s in term %d (%s)", ", ".join(a.names), a.term, a.reason)
        term_file = self.cfg.term_file

        def start() -> tuple[bool, str]:
            if term_file is not None:
                try:
                    write_service_term(term_file, a.term)
                except OSError as e:  # the containers would read a stale term: do not start them
                    return False, f"cannot write the term to {term_file}: {e}"
            return self.docker.start(a.names)
        self._docker_op(start, ContainersStarted)

    def _stop(self, a: StopContainers) -> None:
        if a.kill:
            _log.warning("killing %s (%s)", ", ".join(a.names), a.reason)
            self._docker_op(lambda: self.docker.kill(a.names), ContainersStopped)
            return
        _log.info("stopping %s, timeout %gs (%s)", ", ".join(a.names), a.timeout, a.reason)
        self._docker_op(lambda: self.docker.stop(a.names, a.timeout), ContainersStopped)

    def _hand_over(self, a: RequestHandOver) -> None:
        self._spawn(self._request_hand_over(a))

    def _heartbeat(self, a: SendHeartbeat) -> None:
        if self._heartbeats_in_flight < MAX_HEARTBEATS_IN_FLIGHT:
            task = self._spawn(self._send_heartbeat({**a.fields, "boot": self.boot_id}, a.seq))
            self._heartbeat_tasks.add(task)
            task.add_done_callback(self._heartbeat_tasks.discard)
        if self.witness is not None and self._witness_in_flight < MAX_HEARTBEATS_IN_FLIGHT:
            self._spawn(self._send_witness_heartbeat(a))

    # ------------------------------------------------------------------ the fence keeper (standard mode)

    def _keeper_ready(self, detail: str) -> None:
        self._spawn(self.feed(KeeperConnected(now=self.clock.now(), detail=detail)))

    def _keeper_lost(self, detail: str) -> None:
        self._spawn(self.feed(KeeperLost(now=self.clock.now(), detail=detail)))

    def _hold_fence(self, a: HoldFence) -> None:
        self._fence_line = "release\n" if a.until is None else f"hold {a.until:.6f}\n"
        if self.keeper is not None:
            self.keeper.tell(self._fence_line)

    async def _stop_fence(self) -> None:
        """On a deliberate exit: detach (containers left running on purpose) or release, then close the pipe or
        the connection."""
        if self.keeper is None:
            return
        holding = self._fence_line.startswith("hold")
        if holding:
            _log.warning("exiting with the containers running and nobody to hand them to: the fence keeper is "
                         "detached (start this agent again soon: see docs/docker.md, standard mode shutdown)")
        await self.keeper.close("detach\n" if holding else "release\n")

    def _answered(self, a: HandOverAnswer) -> None:
        _log.info("become_primary from %s (term %d): %s", a.asked_by, a.asked_term,
                  "accepted" if a.accepted else f"refused: {a.detail}")

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ Docker (one worker thread, in order)

    def _docker_op(self, op: Any, result_event: type[ContainersStarted] | type[ContainersStopped]) -> None:
        async def run() -> None:
            loop = asyncio.get_running_loop()
            t0 = self.clock.now()
            try:
                ok, detail = await loop.run_in_executor(self.docker_worker, op)
            except DockerUnavailable as e:
                ok, detail = False, f"Docker daemon unreachable: {e}"
            except Exception as e:  # an unexpected SDK error is a failed operation
                ok, detail = False, f"{type(e).__name__}: {e}"
            _log.info("%s: %s in %.3fs", result_event.__name__, detail, self.clock.now() - t0)
            await self.feed(result_event(now=self.clock.now(), ok=ok, detail=detail))
            await self._inspect(self.cfg.containers)
        self._spawn(run())

    async def _inspect(self, names: list[str] | tuple[str, ...]) -> None:
        loop = asyncio.get_running_loop()
        try:
            obs = await loop.run_in_executor(self.docker_worker, self.docker.inspect, names)
        except DockerUnavailable as e:
            self.docker_detail = str(e)[:300]
            await self.feed(DockerUnreachable(now=self.clock.now(), detail=self.docker_detail))
            return
        except Exception as e:  # never let an SDK surprise kill the agent
            self.docker_detail = f"{type(e).__name__}: {e}"[:300]
            await self.feed(DockerUnreachable(now=self.clock.now(), detail=self.docker_detail))
            return
        self.docker_detail = ""
        await self.feed(ContainersObserved(now=self.clock.now(), observations=obs))

    def _on_docker_event(self, name: str, action: str) -> None:  # called from the event thread
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._spawn, self._inspect((name,)))

    def _on_event_gap(self) -> None:  # called from the event thread after (re)connecting
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._spawn, self._inspect(tuple(self.cfg.containers)))

    async def _reconcile_loop(self) -> None:
        while not self._stopping.is_set():
            await self._inspect(self.cfg.containers)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.cfg.check_heartbeat_interval):
                    await self._stopping.wait()

    # ------------------------------------------------------------------ HTTP client

    async def _post(self, path: str, fields: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        assert self._session is not None
        body = encode_body(fields)
        nonce = secrets.token_hex(16)
        headers = self.auth.sign_request("POST", path, body, wall_now=self.wall_now(), nonce=nonce)
        headers["Content-Type"] = "application/json"
        async with self._session.post(self.cfg.endpoint + path, data=body, headers=headers) as resp:
            data = await resp.read()
            if resp.status != 200:
                return resp.status, None
            self.auth.verify_response(nonce, data, resp.headers.get(SIG_HEADER))
            return resp.status, decode_body(data)

    async def _send_heartbeat(self, fields: dict[str, Any], seq: int) -> None:
        self._heartbeats_in_flight += 1
        try:
            status, answer = await self._post("/heartbeat", fields)
            if status != 200:
                _log.debug("heartbeat to %s answered %d", self.cfg.peer, status)
                return
            try:  # a signed answer: the peer has this heartbeat (renews our lease) and says how it is now
                news = self.inbox.answer_news(answer, wall_now=self.wall_now())
            except RemoteInputError as e:  # an answer without news renews nothing
                if e.reason != "no_news":  # (the peer just started: its first answers say nothing yet)
                    self.count_rejected(e.reason, f"answer to heartbeat {seq} from {self.cfg.peer}: {e}")
                return
            acked = seq if self.witness is not None else None
            if news is not None:
                await self.feed(HeartbeatReceived(now=self.clock.now(), heartbeat=news, acked_seq=acked))
            elif acked is not None:  # we already hold newer news than the answer's
                await self.feed(PeerAcknowledged(now=self.clock.now(), seq=acked))
        except (aiohttp.ClientError, TimeoutError, RemoteInputError, OSError) as e:
            _log.debug("heartbeat to %s failed: %s: %s", self.cfg.peer, type(e).__name__, e)
        finally:
            self._heartbeats_in_flight -= 1

    async def _send_witness_heartbeat(self, a: SendHeartbeat) -> None:
        assert self.witness is not None
        self._witness_in_flight += 1
        try:
            ack = await self.witness.heartbeat(int(a.fields["term"]), a.claims_active, a.seq)
        except WitnessError as e:
            _log.debug("witness heartbeat %d: %s", a.seq, e)
            await self.feed(WitnessUnreachable(now=self.clock.now(), seq=a.seq, detail=str(e)[:200]))
            return
        finally:
            self._witness_in_flight -= 1
        await self.feed(WitnessAnswered(now=self.clock.now(), ack=ack))

    async def _request_hand_over(self, a: RequestHandOver) -> None:
        fields = {"sender": self.cfg.name, "term": a.term, "reason": a.reason}
        accepted, term, ambiguous = False, None, False
        try:
            status, data = await self._post("/become_primary", fields)
            if status != 200 or data is None:
                detail = f"HTTP {status}"
            else:
                answered_term = data.get("term")
                accepted = data.get("accepted") is True
                if isinstance(answered_term, int) and not isinstance(answered_term, bool):
                    term = answered_term
                detail = str(data.get("detail", ""))[:200]
        except TimeoutError as e:  # sent, maybe received and acted on: the peer's next heartbeat tells
            ambiguous, detail = True, f"no answer within {self.cfg.request_timeout:g}s ({type(e).__name__})"
        except (aiohttp.ClientError, RemoteInputError, OSError) as e:
            detail = f"{type(e).__name__}: {e}"[:200]
        await self.feed(HandOverAnswered(now=self.clock.now(), accepted=accepted, term=term, detail=detail,
                                         ambiguous=ambiguous))

    # ------------------------------------------------------------------ main loop

    async def _decide_loop(self) -> None:
        while not self._stopping.is_set():
            now = self.clock.now()
            try:
                await self.feed(Tick(now=now))
            except Exception:  # a bug must not silently stop the heartbeats: log it loudly, keep deciding
                _log.exception("decision cycle failed")
                await asyncio.sleep(self.cfg.check_heartbeat_interval)
            self._wake.clear()
            delay = max(0.0, min(self.node.next_deadline(now) - self.clock.now(), self.cfg.check_heartbeat_interval))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):  # not wait_for: 3.11's drops a cancel that meets a wake-up
                    await self._wake.wait()

    async def run(self) -> int:
        self._loop = asyncio.get_running_loop()
        self.last_loop = self.clock.now()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, self._stopping.set)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.cfg.request_timeout))
        runner = web.AppRunner(build_app(self, self.inbox), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.cfg.listen, self.cfg.port, reuse_address=True)
        try:
            await site.start()
        except OSError as e:
            _log.error("cannot listen on %s:%d: %s", self.cfg.listen, self.cfg.port, e)
            await runner.cleanup()
            await self._session.close()
            self.docker_worker.shutdown(wait=False)
            return 1
        _log.warning("%s listening on %s:%d, peer %s at %s, term %d, containers %s", self.cfg.name, self.cfg.listen,
                     self.cfg.port, self.cfg.peer, self.cfg.endpoint, self.node.term, ", ".join(self.cfg.containers))
        _log.warning("%s", self.cfg.mode_summary())
        for w in self.cfg.warnings:
            _log.warning("config warning: %s", w)
        if self.keeper is not None:
            self.keeper.start()
        self._events = EventFollower(self.cfg.docker_url, self.cfg.containers, self._on_docker_event,
                                     self._on_event_gap)
        self._events.start()
        loops = [asyncio.create_task(self._decide_loop()), asyncio.create_task(self._reconcile_loop())]
        await self._stopping.wait()
        await self._shutdown()
        await cancel_and_wait(loops)
        self._events.stop()
        await runner.cleanup()
        await cancel_and_wait(list(self._tasks))
        await self._session.close()
        if self.witness is not None:
            await self.witness.close()
        await self._stop_fence()
        self.docker_worker.shutdown(wait=False, cancel_futures=True)
        if self.notify is not None:
            self.notify.close(timeout=self.cfg.notify_timeout)
        _log.warning("%s stopped as %s, term %d", self.cfg.name, self.node.role.value, self.node.term)
        return 0

    async def _shutdown(self) -> None:
        """Before exiting: an active agent hands over if the peer can take over; a hand-over that fails restarts
        our containers, and we wait for that start (the service must never be left running nowhere); an agent
        with nothing to hand over tells the peer it is leaving, and we wait for that heartbeat to be delivered."""
        await self.apply(self.node.handle(ShutdownRequested(now=self.clock.now())))
        deadline = self.clock.now() + self.cfg.stop_timeout + 2 * self.cfg.request_timeout + 10
        while (self.node.role is Role.HANDING_OVER or self.node.ops_pending) and self.clock.now() < deadline:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    await self._wake.wait()
        if self.node.role is Role.HANDING_OVER or self.node.ops_pending:
            _log.error("exiting with a hand-over or a container operation unfinished after %.0fs",
                       deadline - self.clock.now())
        if self.node.leaving:
            _log.info("leaving: told %s", self.cfg.peer)
        pending = [t for t in self._heartbeat_tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=self.cfg.request_timeout + 0.5)

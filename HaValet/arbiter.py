"""PairArbiter: the per-host mode's sans-I/O decider for one process on this host, beside its peer's valet.

One valet runs on each of a process's two hosts and acts on its OWN host only (test, start, stop run
locally, no ssh). Who runs the process is decided by failover_core's documented tables
(``failover_core.decide``): the first host of the process's ranking is the primary, the other the
secondary; without a witness the simple tables (``simple_primary`` / ``simple_secondary``), with one the
standard tables, the witness's verdict for the secondary's VERIFY cell, the rejoin guard
(``Facts.witness_peer_active`` from the witness's answer) and self-fencing by ``ContactLease``.
Reads no clock and does no I/O: the driver (``HaValet.host_valet``) feeds one event at a time::

    step = arb.handle(Tick(now=now))                          # tests, heartbeats, deadlines
    step = arb.handle(TestDone(host=node, rc=rc, tag=t, now=now))
    step = arb.handle(StartDone(...)) / arb.handle(StopDone(...))
    step = arb.handle(PeerHeard(peer=..., term=..., running=..., eligible=..., acked_seq=..., now=now))
    step = arb.handle(WitnessAnswered(seq=..., peer_state=..., peer_may_be_active=..., now=now))
    step = arb.handle(Leave(now=now))                         # the valet stops cleanly
    arb.next_deadline()

and carries out the Step's actions: ``RunTest``/``RunStart``/``RunStop`` on this host, ``SendHeartbeat`` to the
peer valet and the witness (their answers come back as ``PeerHeard(acked_seq=...)`` / ``WitnessAnswered``).

Every event ends with one decision (``_decide``), ordered guards first, then the tables:

0. leaving      the valet is stopping (a hand-over's stop is under way): change nothing more.
1. startup      no local test result yet: change nothing.
2. ranking      the peer ranks the hosts differently (the two configs disagree on who is primary): change
                nothing and say so (acting on two opinions of "primary" could run the process twice).
3. fencing      (witness) the local instance runs or starts and the lease expired (no acknowledged contact
                with the peer or the witness for the lease = heartbeat_timeout - fencing margin, counted from the
                SEND time; before the first acknowledgement, from the valet's start): stop it.
4. failed here  a start failed on this host: do not run it until the retry delay (backoff) ends.
5. peer left    the peer valet said goodbye and runs nothing: start here at once (no need to wait out its
                silence: it told us, signed).
6. peer cannot  the preferred peer is heard, runs nothing and says it cannot run it (its start failed):
                start here (the secondary's table would wait for it forever).
7. the tables   ``decide(role, Facts(...), Policy(failback_delay, wait_for_peer_state=True))``, with the
                peer's liveness measured from our last receipt of anything from it (heartbeat or answer):
                silence of ``peer_down_after`` = heartbeat_timeout (T, both modes) = DOWN; with a witness the
                fencing margin comes off the active's lease, so the active has stopped before T runs out.
8. contact      (witness) the answer is "start" but our lease is not valid: hold (we would fence at once).
The answer is carried out on this host: start (a new term) when not running, stop when running, else
nothing. A stop launched while a start command still runs is repeated when that start returns successfully (it
may have started the process after the stop ran); until it returns the process counts as running here. A local
start that fails (non-zero, timeout, never tests up within start_grace) is stopped
(best effort) and makes this host ineligible for backoff_initial, doubling up to backoff_max: the peer
then takes over (guard 6 on its side).

Late and stale results (chaos seed 3, docs/chaos.md). A command's result counts only for the state it was asked
in: a round test launched before a start or a stop was launched, or before a stop returned, is stale (ignored by
its tag; the next test runs at once); while a start attempt is in flight (STARTING) a round test changes nothing
(the attempt ends by its own result, its polls or start_grace); a test that timed out while the valet itself
was stalled (SIGSTOP, a paused VM: ``TestDone.stalled``, the driver saw its clock jump) is re-run at once before
anything is decided on it (an operator's monitor timeout after a pause). A round test gone for longer than
command_timeout + ``TEST_LOST_AFTER`` is forgotten and run again, so a valet that runs or may run the process
always has a test ahead. A bug inside ``handle`` raises ``DeciderBug`` carrying the actions queued before it
(their bookkeeping is already set: the driver carries them out) and schedules a test at once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from failover_core.decide import Decision, Facts, Policy, decide
from failover_core.errors import LocalUsageError
from failover_core.fencing import ContactLease
from failover_core.liveness import Liveness, PeerLiveness
from failover_core.step import Step, StepBuilder
from failover_core.tables import Action as TableAction
from failover_core.tables import Role, Verdict
from failover_core.transitions import StateMachine
from HaValet.codes import PairCode, PairNoteCode
from HaValet.config import HostMode, Timing
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
from HaValet.supervisor import describe_rc, runtime_priority


class PairState(enum.Enum):
    WAITING = "waiting"  # no local test result yet
    PASSIVE = "passive"  # the process does not run here
    STARTING = "starting"  # start command in flight, or testing the started instance until start_grace ends
    ACTIVE = "active"  # the local instance runs
    STOPPING = "stopping"  # stop command in flight
    FAILED = "failed"  # a start failed here: not eligible until the retry delay ends
    LEFT = "left"  # the valet stopped cleanly (said goodbye)


ALLOWED_MOVES: dict[PairState, set[PairState]] = {
    PairState.WAITING: {PairState.PASSIVE, PairState.ACTIVE, PairState.STOPPING, PairState.LEFT},
    PairState.PASSIVE: {PairState.STARTING, PairState.ACTIVE, PairState.STOPPING, PairState.LEFT},
    PairState.STARTING: {PairState.ACTIVE, PairState.FAILED, PairState.STOPPING, PairState.LEFT},
    PairState.ACTIVE: {PairState.PASSIVE, PairState.STARTING, PairState.STOPPING, PairState.LEFT},
    PairState.STOPPING: {PairState.PASSIVE, PairState.FAILED, PairState.ACTIVE, PairState.LEFT},
    PairState.FAILED: {PairState.PASSIVE, PairState.ACTIVE, PairState.STOPPING, PairState.LEFT},
    PairState.LEFT: set(),
}
MAY_RUN = (PairState.STARTING, PairState.ACTIVE, PairState.STOPPING)
TEST_LOST_AFTER = 2.0  # a round test not back within command_timeout + this is forgotten: test again


class DeciderBug(Exception):
    """``handle`` failed on a bug. ``step`` holds what it queued before: each action's bookkeeping is already set
    (a stop counted as in flight, a test tag awaited), so the driver must carry it out; a test is due at once."""

    def __init__(self, event: PairEvent, step: Step[PairAction]) -> None:
        super().__init__(f"the arbiter failed on {type(event).__name__}")
        self.event = event
        self.step = step


@dataclass(slots=True)
class _PeerNews:
    """The last thing the peer valet said about this process."""

    term: int
    running: bool
    eligible: bool
    priority: int
    ranking: tuple[str, ...]
    leaving: bool


@dataclass(slots=True)
class _Attempt:
    tag: str
    verifying: bool = False
    grace_deadline: float = 0.0
    next_poll_at: float = 0.0
    poll_tag: str | None = None


class PairArbiter:
    """One process on this host in per-host mode (module docstring)."""

    def __init__(self, name: str, ranking: tuple[str, ...], node: str, mode: HostMode, timing: Timing, *,
                 now: float) -> None:
        if len(ranking) != 2 or node not in ranking:
            raise LocalUsageError(f"{name}: per-host mode needs two hosts including {node}, got {ranking}")
        self.name = name
        self.node = node
        self.peer = next(h for h in ranking if h != node)
        self.ranking = tuple(ranking)
        self.mode = mode
        self.timing = timing
        self.standard = mode.standard
        primary = ranking[0] == node
        self.role = ((Role.PRIMARY if primary else Role.SECONDARY) if self.standard
                     else (Role.SIMPLE_PRIMARY if primary else Role.SIMPLE_SECONDARY))
        self.policy = Policy(failback_delay=mode.failback_delay, exclusive_handover=True, wait_for_peer_state=True)
        self.machine: StateMachine[PairState] = StateMachine(name, PairState.WAITING, ALLOWED_MOVES)
        self.started_at = now
        self.peer_live = PeerLiveness(self.peer, timeout=mode.peer_down_after, watch_started=now)
        self.witness_live = PeerLiveness("witness", timeout=mode.heartbeat_timeout, watch_started=now)
        # standard mode: the lease is T minus the fencing margin (failover_core.fencing); simple mode sends no
        # lease-bearing heartbeat and never asks it, so its length there is only a placeholder
        self.lease_length = mode.lease if self.standard else mode.heartbeat_timeout
        self.lease = ContactLease(self.lease_length)
        self.peer_news: _PeerNews | None = None
        self.witness_news: WitnessAnswered | None = None
        self.running = False  # the last local test said up
        self.priority = 0
        self.tested = False
        self.term = 0
        self.known_term = 0
        self.seq = 0
        self.last_decision: Decision | None = None
        self._counter = 0
        self._next_test_at = now
        self._test_tag: str | None = None
        self._test_sent_at = now
        self._next_heartbeat_at = now
        self._attempt: _Attempt | None = None
        self._stop_in_flight = False
        self._start_in_flight: str | None = None  # the tag of a start command that has not returned yet
        self._stop_after_start = False  # a stop was launched while that start ran: it may have started it after
        self._stop_pending = False  # ... and a second stop waits for the first to return
        self._retry_at: float | None = None
        self._backoff = 0.0
        self._leaving = False
        # after a fence: the last seq sent before it, and when the lease came back (FENCE_HOLD, _contact)
        self._fence_seq: int | None = None
        self._lease_back_at: float | None = None

    # ------------------------------------------------------------------ queries
    @property
    def state(self) -> PairState:
        return self.machine.state

    @property
    def lease_until(self) -> float:
        """When the right to run ends (standard mode): the newest acknowledged send + the lease; before the first
        acknowledgement, the valet's start + the lease (no heartbeat is sent before the start, so an instance
        never runs unacknowledged longer than the lease after the first send)."""
        expires = self.lease.expires_at
        return expires if expires is not None else self.started_at + self.lease_length

    def lease_valid(self, now: float) -> bool:
        """Simple mode: always. With a witness: acknowledged contact within the lease of its send time (a valet
        that just started has the lease from its start to hear back)."""
        if not self.standard:
            return True
        return now < self.lease_until

    def eligible(self, now: float) -> bool:
        """May this host run the process now? (told to the peer in every heartbeat)"""
        return self.state not in (PairState.FAILED, PairState.LEFT) and not self._leaving and self.lease_valid(now)

    @property
    def claims_running(self) -> bool:
        """What we tell the peer and the witness: the process may run here (tests up, or a start or a stop is
        under way: until the stop command returned, it may still run)."""
        return self.running or self.state in MAY_RUN or self._stop_in_flight or self._start_in_flight is not None

    def next_deadline(self) -> float | None:
        if self.state is PairState.LEFT:
            return None
        times = [self._next_heartbeat_at]
        if self._test_tag is None and self._attempt is None:
            times.append(self._next_test_at)
        elif self._test_tag is not None:
            times.append(self._test_lost_at)
        a = self._attempt
        if a is not None and a.verifying and a.poll_tag is None:
            times += [a.next_poll_at, a.grace_deadline]
        if self._retry_at is not None and self.state is PairState.FAILED:  # (a stop runs first: FAILED after it)
            times.append(self._retry_at)
        if self.standard and self.claims_running:
            times.append(self.lease_until)
        times.append(self.peer_live.deadline())
        if self.standard:
            times.append(self.witness_live.deadline())
        if self.policy.failback_delay and self.peer_live.up_since is not None:
            times.append(self.peer_live.up_since + self.policy.failback_delay)
        return min(times)

    def snapshot(self, now: float) -> dict[str, object]:
        last = self.machine.last
        news = self.peer_news
        return {
            "process": self.name, "mode": "per-host, " + ("standard (witness)" if self.standard else "simple"),
            "node": self.node, "role": self.role.value, "state": self.state.value,
            "active_host": self.node if self.running else (self.peer if news and news.running else None),
            "starting_on": self.node if self.state is PairState.STARTING else None,
            "hosts": {self.node: self.priority}, "term": self.term, "eligible": self.eligible(now),
            "peer": {"name": self.peer, "state": self.peer_live.state(now).value,
                     "running": news.running if news else None, "eligible": news.eligible if news else None,
                     "term": news.term if news else None},
            "witness": None if not self.standard else self.witness_live.state(now).value,
            "lease_left": round(self.lease.remaining(now), 3) if self.standard else None,
            "decision": str(self.last_decision) if self.last_decision else None,
            "failures_in_window": 0, "backoff_until": self._retry_at,
            "last_transition": str(last) if last else None,
            "last_transition_code": last.code if last else None,
            "last_transition_at": last.at if last else None,
        }

    @property
    def _test_lost_at(self) -> float:
        return self._test_sent_at + self.timing.command_timeout + TEST_LOST_AFTER

    # ------------------------------------------------------------------ one event in, one Step out
    def handle(self, event: PairEvent) -> Step[PairAction]:
        if not isinstance(event, PairEvent):  # bad input is refused before anything changes
            raise LocalUsageError(f"{self.name}: not a per-host event: {event!r}")
        if isinstance(event, PeerHeard) and event.peer != self.peer:
            raise LocalUsageError(f"{self.name}: news from {event.peer}, our peer is {self.peer}")
        b: StepBuilder[PairAction] = StepBuilder()
        try:
            return self._handle(b, event)
        except Exception as e:  # a bug: hand back what was queued (module docstring), test again at once
            self._test_tag = None
            self._next_test_at = min(self._next_test_at, event.now)
            raise DeciderBug(event, b.build()) from e

    def _handle(self, b: StepBuilder[PairAction], event: PairEvent) -> Step[PairAction]:
        match event:
            case Tick():
                self._on_tick(b, event.now)
            case TestDone():
                self._on_test_done(b, event)
            case StartDone():
                self._on_start_done(b, event)
            case StopDone():
                self._on_stop_done(b, event)
            case PeerHeard():
                self._on_peer(b, event)
            case WitnessAnswered():
                self._on_witness(event)
            case Leave():
                self._on_leave(b, event.now)
                return b.build()
        if self.state is not PairState.LEFT:
            self._decide(b, event.now)
            if b.transitions and self.state is not PairState.LEFT:
                self._heartbeat(b, event.now)  # the peer hears of every change at once
        return b.build()

    def _change(self, b: StepBuilder[PairAction], to: PairState, code: str, text: str, now: float) -> None:
        b.changed(self.machine.change(to, code=code, reason=text, now=now))

    def _tag(self, kind: str) -> str:
        self._counter += 1
        return f"{kind}:{self._counter}"

    # ------------------------------------------------------------------ inputs
    def _on_tick(self, b: StepBuilder[PairAction], now: float) -> None:
        if self.state is PairState.LEFT:
            return
        if now >= self._next_heartbeat_at:
            self._heartbeat(b, now)
        a = self._attempt
        if a is not None and a.verifying and a.poll_tag is None:
            if now >= a.grace_deadline:
                self._start_failed(b, now, f"not up within start_grace {self.timing.start_grace:g}s")
            elif now >= a.next_poll_at:
                a.poll_tag = self._tag("verify")
                b.act(RunTest(host=self.node, tag=a.poll_tag))
        if self._test_tag is not None and now >= self._test_lost_at:  # never came back: test again
            b.note(PairNoteCode.STALE_RESULT, f"test {self._test_tag} not back after "
                   f"{now - self._test_sent_at:.1f}s: testing again")
            self._forget_test(now)
        if self._test_tag is None and self._attempt is None and now >= self._next_test_at:
            self._test_tag = self._tag("test")
            self._test_sent_at = now
            self._next_test_at = max(self._next_test_at + self.timing.interval, now)
            b.act(RunTest(host=self.node, tag=self._test_tag))
        if self.state is PairState.FAILED and self._retry_at is not None and now >= self._retry_at:
            self._retry_at = None
            self._change(b, PairState.PASSIVE, PairCode.RETRY, "retry delay over: may run the process again", now)

    def _on_test_done(self, b: StepBuilder[PairAction], e: TestDone) -> None:
        a = self._attempt
        if a is not None and e.tag == a.poll_tag:
            a.poll_tag = None
            if e.stalled and e.rc is None:  # timed out while the valet was stalled: poll again at once
                b.note(PairNoteCode.RETEST, f"verification test {e.tag} timed out while the valet was stalled: "
                       f"testing again")
                a.next_poll_at = e.now
                return
            self._record_test(e.rc)
            if self.running:
                self._attempt = None
                self._backoff = 0.0
                self._change(b, PairState.ACTIVE, PairCode.STARTED,
                             f"started on {self.node} ({describe_rc(e.rc)}), term {self.term}", e.now)
            else:
                a.next_poll_at = e.now + self.timing.start_poll
            return
        if e.tag != self._test_tag:
            b.note(PairNoteCode.STALE_RESULT, f"ignored test result for {e.tag}")
            return
        self._test_tag = None
        if e.stalled and e.rc is None:  # its timeout came due while the valet was stalled: not a verdict
            b.note(PairNoteCode.RETEST, f"test {e.tag} on {self.node} timed out while the valet was stalled "
                   f"(its clock jumped): testing again before deciding")
            self._next_test_at = e.now
            return
        first = not self.tested
        self._record_test(e.rc)
        if self._attempt is not None or self._stop_in_flight:  # a start or a stop is under way: its result decides
            return
        state = self.state
        if state is PairState.STARTING:  # with no attempt: only a bug (DeciderBug) leaves that; settle it
            if self.running:
                self._change(b, PairState.ACTIVE, PairCode.FOUND_UP,
                             f"instance on {self.node} tests up ({describe_rc(e.rc)}); its start was lost", e.now)
            else:
                self._start_failed(b, e.now, "the start was lost inside the valet")
        elif self.running and state in (PairState.WAITING, PairState.PASSIVE):
            self._change(b, PairState.ACTIVE, PairCode.FOUND_UP,
                         f"instance on {self.node} tests up ({describe_rc(e.rc)})", e.now)
        elif not self.running and state is PairState.ACTIVE:
            self._change(b, PairState.PASSIVE, PairCode.WENT_DOWN,
                         f"instance on {self.node} went down ({describe_rc(e.rc)})", e.now)
        elif first and state is PairState.WAITING:
            self._change(b, PairState.PASSIVE, PairCode.STOPPED,
                         f"instance on {self.node} is not running ({describe_rc(e.rc)})", e.now)

    def _record_test(self, rc: int | None) -> None:
        self.tested = True
        self.priority = runtime_priority(rc)
        self.running = self.priority > 0

    def _on_start_done(self, b: StepBuilder[PairAction], e: StartDone) -> None:
        if e.tag == self._start_in_flight:
            self._start_in_flight = None
        a = self._attempt
        if a is None or e.tag != a.tag:
            b.note(PairNoteCode.STALE_RESULT, f"ignored start result for {e.tag}")
            if self._stop_after_start and self._start_in_flight is None and self.state is not PairState.LEFT:
                self._stop_after_start = False
                if e.rc == 0:  # the start given up may have started the process after our stop ran: stop again
                    self._stop_again(b, e.now)
                elif self._leaving and not self._stop_in_flight:
                    self._say_goodbye(b, e.now)  # the hand-over's stop returned earlier and waited for this
            return
        if e.rc != 0:
            self._start_failed(b, e.now, e.detail or f"exit {e.rc}")
            return
        a.verifying = True
        a.grace_deadline = e.now + self.timing.start_grace
        a.poll_tag = self._tag("verify")
        b.act(RunTest(host=self.node, tag=a.poll_tag))

    def _on_stop_done(self, b: StepBuilder[PairAction], e: StopDone) -> None:
        if self._stop_pending:  # a start given up returned while this stop ran: stop once more
            self._stop_pending = False
            self._launch_stop(b)
            return
        self._stop_in_flight = False
        if e.rc == 0:
            self.running = False
            self.priority = 0
        self._forget_test(e.now)  # test at once: did it stop? (a test launched before now says nothing)
        if self._leaving:
            if self._start_in_flight is None:  # else: a start given up may still start it (_on_start_done)
                self._say_goodbye(b, e.now)
            return
        if self.state is PairState.STOPPING:
            if e.rc == 0:
                self._change(b, PairState.FAILED if self._retry_at is not None else PairState.PASSIVE,
                             PairCode.STOPPED, f"stopped on {self.node}", e.now)
            else:
                b.note(PairNoteCode.HOLD, f"stop on {self.node} failed ({e.detail or e.rc}); testing again")

    def _on_peer(self, b: StepBuilder[PairAction], e: PeerHeard) -> None:
        self.peer_live.heard(e.now)
        self.peer_news = _PeerNews(term=e.term, running=e.running, eligible=e.eligible, priority=e.priority,
                                   ranking=tuple(e.ranking), leaving=e.leaving)
        self.known_term = max(self.known_term, e.term)
        if e.acked_seq is not None:
            self.lease.acknowledged(e.acked_seq)
            if self._fence_seq is not None and e.acked_seq > self._fence_seq:
                self._fence_seq = None  # the peer answered a heartbeat sent after the fence: its news is fresh
        self._note_lease_back(e.now)

    def _on_witness(self, e: WitnessAnswered) -> None:
        self.witness_live.heard(e.now)
        self.witness_news = e
        self.known_term = max(self.known_term, e.highest_term)
        self.lease.acknowledged(e.seq)
        self._note_lease_back(e.now)

    def _note_lease_back(self, now: float) -> None:
        if self._fence_seq is not None and self._lease_back_at is None and self.lease_valid(now):
            self._lease_back_at = now

    # ------------------------------------------------------------------ the decision (module docstring)
    def _decide(self, b: StepBuilder[PairAction], now: float) -> None:
        d = self._verdict(now)
        repeated = self.last_decision is not None and self.last_decision.code == d.code
        self.last_decision = d
        if d.action is TableAction.START:
            if not self.claims_running and self.state is not PairState.FAILED:
                self._start(b, now, d)
                return
            if (self.running and self.state is not PairState.ACTIVE and not self._stop_in_flight
                    and self._attempt is None):  # (an attempt in flight ends by its own result)
                self._change(b, PairState.ACTIVE, PairCode.FOUND_UP, d.reason, now)
                return
        elif d.action is TableAction.STOP and (self.claims_running and not self._stop_in_flight
                                               and not self._stop_after_start):  # (that one stops again itself)
            if d.code is PairCode.FENCED:
                self._fence_seq, self._lease_back_at = self.seq, None
            self._stop(b, now, d)
            return
        if not repeated:  # a decision that changes nothing is logged when it differs from the last one
            b.because(d.code, d.reason)

    def _verdict(self, now: float) -> Decision:
        hold = TableAction.HOLD
        if self._leaving:  # the hand-over's stop is under way: start nothing, stop nothing more
            return Decision(hold, PairCode.LEAVING, "valet stopping: handing over")
        if not self.tested:
            return Decision(hold, PairNoteCode.HOLD, "no local test result yet")
        news = self.peer_news
        peer = self.peer_live.state(now)
        if news is not None and peer is Liveness.UP and news.ranking != self.ranking:
            return Decision(hold, PairNoteCode.RANKING_MISMATCH,
                            f"{self.peer} ranks the hosts {list(news.ranking)}, we rank {list(self.ranking)}: "
                            f"fix the configs (the same process sections on both hosts)")
        if self.standard and self.claims_running and not self.lease_valid(now):
            return Decision(TableAction.STOP, PairCode.FENCED,
                            f"no acknowledged contact with {self.peer} or the witness within the lease "
                            f"({self.lease_length:.3f}s = heartbeat_timeout {self.mode.heartbeat_timeout:g} - "
                            f"fencing margin): fencing (stopping the process here)")
        if self.state is PairState.FAILED:
            return Decision(TableAction.STOP, PairCode.START_FAILED, "a start failed here: not running it until "
                            "the retry delay ends")
        if news is not None and news.leaving and not news.running:
            return self._contact(now, Decision(TableAction.START, PairCode.PEER_LEFT,
                                               f"{self.peer}'s valet left and runs nothing: taking over"))
        if (self.role in (Role.SECONDARY, Role.SIMPLE_SECONDARY) and news is not None and peer is Liveness.UP
                and not news.eligible and not news.running):
            return self._contact(now, Decision(TableAction.START, PairCode.PEER_CANNOT_RUN,
                                               f"{self.peer} is heard, runs nothing and cannot run it"))
        witness = self.witness_live.state(now) if self.standard else Liveness.UP
        w = self.witness_news if witness is Liveness.UP else None
        verdict = None
        if w is not None:
            verdict = {"down": Verdict.PRIMARY_DOWN, "up": Verdict.PRIMARY_ALIVE}.get(w.peer_state)
        facts = Facts(peer=peer, witness=witness, verdict=verdict,
                      peer_active=None if news is None else news.running, self_active=self.claims_running,
                      peer_up_for=self.peer_live.up_for(now),
                      witness_peer_active=None if w is None else w.peer_may_be_active)
        d = decide(self.role, facts, self.policy)
        if d.action is TableAction.VERIFY:  # no verdict yet: keep what runs
            return Decision(hold, d.code, d.reason + " (waiting for the witness's word)")
        return self._contact(now, d)

    def _contact(self, now: float, d: Decision) -> Decision:
        if d.action is not TableAction.START or self.claims_running:
            return d
        if not self.lease_valid(now):
            return Decision(TableAction.HOLD, PairNoteCode.NO_CONTACT,
                            f"{d.reason}; but no acknowledged contact with the peer or the witness: not starting")
        if self._fence_seq is not None and self._lease_back_at is not None:
            # Back from a fence: what we last heard from the peer may predate its answer to our fenced state
            # (not running, not eligible: a secondary starts on that at once). Hear it anew first, or wait
            # two heartbeat intervals (a peer we cannot reach is not told anything either).
            held_until = self._lease_back_at + 2 * self.mode.heartbeat_interval
            if self.peer_live.state(now) is Liveness.UP and now < held_until:
                return Decision(TableAction.HOLD, PairNoteCode.FENCE_HOLD,
                                f"{d.reason}; but back from a fence: waiting until {self.peer} answers a heartbeat "
                                f"sent since (at most {held_until - now:.3f}s more)")
            self._fence_seq = None
        return d

    # ------------------------------------------------------------------ acting on this host
    def _forget_test(self, now: float) -> None:
        """A round test in flight now answers for a host that is changing: its result will be ignored as stale
        (tag); the next test is due at once."""
        self._test_tag = None
        self._next_test_at = now

    def _start(self, b: StepBuilder[PairAction], now: float, d: Decision) -> None:
        self._forget_test(now)
        self.term = self.known_term = max(self.term, self.known_term) + 1
        self._attempt = _Attempt(tag=self._tag("start"))
        self._start_in_flight = self._attempt.tag
        b.act(RunStart(host=self.node, tag=self._attempt.tag, term=self.term))
        self._change(b, PairState.STARTING, d.code, f"{d.reason}: starting on {self.node}, term {self.term}", now)

    def _launch_stop(self, b: StepBuilder[PairAction]) -> None:
        """Stop the local instance now. A start command still running may start it after the stop returned:
        until that start returns we keep claiming the process (``claims_running``), then stop again if it
        succeeded (``_on_start_done``)."""
        self._attempt = None
        self._stop_in_flight = True
        self._test_tag = None  # a test launched before the stop says nothing about after it
        if self._start_in_flight is not None:
            self._stop_after_start = True
        b.act(RunStop(host=self.node))

    def _stop_again(self, b: StepBuilder[PairAction], now: float) -> None:
        if self._stop_in_flight:
            self._stop_pending = True
            return
        self._launch_stop(b)
        if self.state in (PairState.PASSIVE, PairState.ACTIVE, PairState.STARTING, PairState.WAITING):
            self._change(b, PairState.STOPPING, PairCode.STOPPING,
                         f"a start given up returned after its stop ran: stopping on {self.node} again", now)

    def _stop(self, b: StepBuilder[PairAction], now: float, d: Decision) -> None:
        self._launch_stop(b)
        self._change(b, PairState.STOPPING, d.code, f"{d.reason}: stopping on {self.node}", now)

    def _start_failed(self, b: StepBuilder[PairAction], now: float, why: str) -> None:
        self._backoff = min(max(self._backoff * 2, self.timing.backoff_initial), self.timing.backoff_max)
        self._retry_at = now + self._backoff
        self._launch_stop(b)  # best effort: a late riser must not become a second active one
        # from STARTING: FAILED at once; from any other state (a bug put us there): STOPPING, then FAILED once the
        # stop returns (_retry_at is set), never an illegal move
        to = PairState.FAILED if self.machine.can(PairState.FAILED) else PairState.STOPPING
        self._change(b, to, PairCode.START_FAILED,
                     f"start on {self.node} failed ({why}): not eligible for {self._backoff:g}s", now)

    def _heartbeat(self, b: StepBuilder[PairAction], now: float, *, leaving: bool = False) -> None:
        self.seq += 1
        if self.standard:
            self.lease.sent(self.seq, now)
        self._next_heartbeat_at = now + self.mode.heartbeat_interval
        b.act(SendHeartbeat(seq=self.seq, term=self.term, running=self.running if leaving else self.claims_running,
                            eligible=False if leaving else self.eligible(now), priority=self.priority,
                            leaving=leaving))

    # ------------------------------------------------------------------ leaving cleanly
    def _on_leave(self, b: StepBuilder[PairAction], now: float) -> None:
        if self.state is PairState.LEFT or self._leaving:
            return
        self._leaving = True
        news = self.peer_news
        peer_can = (news is not None and self.peer_live.state(now) is Liveness.UP and news.eligible
                    and not news.leaving)
        if self.claims_running and peer_can:
            self._launch_stop(b)
            self._change(b, PairState.STOPPING, PairCode.HANDING_OVER,
                         f"valet stopping: stopping on {self.node} so that {self.peer} takes over", now)
            return
        if self.claims_running:
            b.note(PairNoteCode.KEEP_ON_LEAVE, f"valet stopping and {self.peer} cannot take over: the process "
                   f"keeps running on {self.node} without a valet")
        self._say_goodbye(b, now)

    def _say_goodbye(self, b: StepBuilder[PairAction], now: float) -> None:
        self._heartbeat(b, now, leaving=True)
        self._change(b, PairState.LEFT, PairCode.LEAVING,
                     f"valet stopping; told {self.peer} (process {'running' if self.running else 'not running'} "
                     f"here)", now)

    @property
    def finished(self) -> bool:
        return self.state is PairState.LEFT

"""The pair decider of one DockerFailover agent: one event in, one ``Step`` out. No I/O, no clock.

Roles: STARTING (just booted, learning the peer) -> PASSIVE / ACTIVE; ACTIVE -> HANDING_OVER
(stopping its containers, then asking the peer to take over) -> PASSIVE or back to ACTIVE.
Every role change goes through one StateMachine and comes out in ``Step.transitions`` with a
stable ``TransitionCode`` (also the step's reason). Terms (epochs) only grow; a term change is a
``PersistTerm`` action that the driver writes to disk before carrying out the actions after it.

How ``handle(event)`` reads, top to bottom:
1. ``_learn``: the event updates the facts and decides nothing: the peer's last heartbeat and
   liveness, the containers' watches, Docker reachability, operations in flight, the term an answer
   carried, the hold after a stall. It reports what it saw change (Docker back, a start that failed).
2. One decision function per role (``_starting``, ``_passive``, ``_active``, ``_handing_over``):
   ordered guards, Patroni style, the first that applies decides. Guards on what just happened (a
   hand-over request, a shutdown, a heartbeat, a stop or an answer) come first, then guards on the
   facts at ``now``. A role change made because of an event goes on with the new role's guards on
   the facts (``Tick``) in the same step; one made on the facts ends the step.
3. The heartbeat timer, last.

Rules:
- a node boots STARTING; it goes PASSIVE as soon as it hears an ACTIVE peer, ACTIVE after
  ``startup_grace_period`` if the peer stayed silent, or at once if both are idle and it is the
  cold-start candidate (containers already up here, else the first server listed);
- a PASSIVE node takes over when the peer's heartbeats stop for ``heartbeat_timeout`` (a deadline),
  but only while its own Docker daemon answers;
- an ACTIVE node that hears an ACTIVE peer with a higher term steps down; with an equal term the
  non-preferred one steps down; the one that stays sends a heartbeat at once (one heartbeat resolves it);
- a failed container on the ACTIVE node: stop the managed containers, ask the peer to take over;
  if it cannot be confirmed, start them again and wait before trying again;
- Docker unreachable is reported (alert, ``eligible: false``), never a reason to fail over;
- standard mode (a witness): the active runs only while its ContactLease holds (``FencingTiming.lease`` =
  heartbeat_timeout - fencing margin after its newest acknowledged send) and kills its containers when it
  ends; the passive still waits ``heartbeat_timeout`` since its last receipt, then asks the witness;
  with a listening fence keeper (``keeper_connects``) a node is not eligible while no keeper holds its lease
  (``KeeperConnected`` / ``KeeperLost``): it never starts the containers unguarded.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from DockerFailover.codes import AlertCode, NoteCode, TransitionCode
from DockerFailover.containers import ContainerWatch
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
from failover_core.decide import Decision, Facts, decide
from failover_core.fencing import ContactLease, FencingTiming
from failover_core.liveness import Liveness, PeerLiveness
from failover_core.step import Deadlines, Step, StepBuilder
from failover_core.tables import Action as TableAction
from failover_core.tables import Role as TableRole
from failover_core.tables import Verdict
from failover_core.transitions import StateMachine
from failover_core.witness_protocol import WitnessAck

ALLOWED_MOVES: dict[Role, frozenset[Role]] = {
    Role.STARTING: frozenset({Role.PASSIVE, Role.ACTIVE}),
    Role.PASSIVE: frozenset({Role.ACTIVE}),
    Role.ACTIVE: frozenset({Role.PASSIVE, Role.HANDING_OVER}),
    Role.HANDING_OVER: frozenset({Role.PASSIVE, Role.ACTIVE}),
}

Build = StepBuilder[Action]


class Timer(enum.StrEnum):
    """The decider's own named deadlines (``PairNode.timers``)."""

    HEARTBEAT = "heartbeat"  # the next heartbeat is due
    HOLD_TAKEOVER = "hold_takeover"  # after our own stall: read what the peer sent meanwhile first
    HANDOVER_WAIT = "handover_wait"  # a hand-over request went unanswered: wait for the peer's word until then
    RETRY = "retry"  # after a hand-over that failed (or a local restart): no new attempt before
    CLAIM = "claim"  # standard mode: our claim to the witness must be answered by then, else it is withdrawn


@dataclass(frozen=True, slots=True, kw_only=True)
class PairSettings:
    name: str
    peer: str
    preferred: bool
    containers: tuple[str, ...]
    heartbeat_interval: float
    heartbeat_timeout: float
    startup_grace_period: float
    restart_grace_period: float
    stop_timeout: float
    failback: bool = False
    failback_hold_down: float = 60.0
    fencing: FencingTiming | None = None  # standard mode (a witness); None: simple mode
    keeper_connects: bool = False  # standard mode with a listening fence keeper: not eligible until it accepts us

    @property
    def standard(self) -> bool:
        return self.fencing is not None

    @property
    def peer_down_after(self) -> float:
        """Silence (since the last receipt) after which the peer is DOWN: heartbeat_timeout in both modes (standard
        mode's fencing margin comes off the active's lease, not off this wait)."""
        return self.fencing.down_after if self.fencing is not None else self.heartbeat_timeout

    @property
    def retry_hold(self) -> float:
        """After a hand-over that failed (or a local restart), wait this long before trying again."""
        return max(self.heartbeat_timeout, self.restart_grace_period, self.startup_grace_period)


@dataclass(slots=True)
class PeerView:
    """The peer as we know it: its last heartbeat (or what a hand-over told us) and whether we said it is lost."""

    heartbeat: PeerHeartbeat | None = None
    lost_alerted: bool = False
    idle_since: float | None = None  # receipt time of the first heartbeat of its current idle streak


def _peer_after_hand_over(hb: PeerHeartbeat | None, sender: str, role: Role, term: int) -> PeerHeartbeat:
    """What a hand-over tells us about the peer's role (before its next heartbeat says so)."""
    return PeerHeartbeat(sender=sender, term=term, role=role, eligible=hb.eligible if hb else True,
                         containers_up=role is Role.ACTIVE and (hb.containers_up if hb else False))


@dataclass(slots=True)
class PairNode:
    """One agent's view of the pair. The driver calls ``handle(event)`` and sleeps until ``next_deadline``."""

    settings: PairSettings
    term: int
    booted_at: float
    machine: StateMachine[Role] = field(init=False)
    liveness: PeerLiveness = field(init=False)
    peer: PeerView = field(default_factory=PeerView)
    watches: dict[str, ContainerWatch] = field(init=False)
    docker_ok: bool | None = None  # None until the first reconcile
    ops_pending: int = 0  # start/stop operations handed to the driver and not reported back
    timers: Deadlines[Timer] = field(default_factory=Deadlines)
    failed_alerted: bool = False
    handover_detail: str = ""  # why the unanswered hand-over request got no answer
    leaving: bool = False  # our agent is shutting down: never take over again, tell the peer
    # standard mode (settings.fencing): the arbiter's facts
    seq: int = 0  # our heartbeats, to the peer and the witness alike
    lease: ContactLease | None = None  # our right to run the containers (acknowledged contact)
    witness: PeerLiveness | None = None  # do we reach the witness (an ack within heartbeat_timeout)?
    witness_ack: WitnessAck | None = None  # its last good answer
    witness_alerted: bool = False  # WITNESS_UNREACHABLE said, not yet WITNESS_BACK
    witness_timing_alerted: bool = False
    claim_seq: int | None = None  # we claimed "about to run" in this heartbeat; start on its answer
    claim_purpose: str = ""  # "takeover" (the peer is silent: the table) or "cold_start" (both idle)
    claim_not_before: float = 0.0  # after a withdrawn claim, no new one before this
    fence_sent: tuple[bool, float | None] = (False, None)  # the last HoldFence: (sent at all, until)
    keeper_up: bool = True  # a listening fence keeper accepted us (always True with a spawned one)
    keeper_alerted: bool = False  # KEEPER_UNREACHABLE said, not yet KEEPER_BACK
    table_code: str | None = None  # the table's last HOLD/STOP code while the peer is silent (said once)
    asked_in_silence: float | None = None  # the peer's last receipt when we last asked the witness afresh

    def __post_init__(self) -> None:
        s = self.settings
        self.machine = StateMachine(s.name, Role.STARTING, ALLOWED_MOVES)
        self.liveness = PeerLiveness(s.peer, s.peer_down_after, self.booted_at)
        if s.fencing is not None:
            self.lease = ContactLease(s.fencing.lease)  # T - fencing margin: gone before the others wait out T
            self.witness = PeerLiveness("witness", s.heartbeat_timeout, self.booted_at)
            self.keeper_up = not s.keeper_connects  # until the keeper accepts us we may not start anything
        self.watches = {n: ContainerWatch(n) for n in s.containers}
        self.timers.set(Timer.HEARTBEAT, self.booted_at)

    # ------------------------------------------------------------------ facts

    @property
    def role(self) -> Role:
        return self.machine.state

    @property
    def eligible(self) -> bool:
        """Could we run the containers? Our Docker daemon answers, none of them is missing here, and (standard mode
        with a listening keeper) a fence keeper holds our lease: never start without one."""
        return not self.leaving and self.docker_ok is True and self.keeper_up and \
            all(w.last is None or w.last.exists for w in self.watches.values())

    @property
    def containers_up(self) -> bool:
        return all(w.up for w in self.watches.values())

    def heartbeat_fields(self) -> dict[str, Any]:
        return {"sender": self.settings.name, "term": self.term, "role": self.role.value,
                "eligible": self.eligible, "containers_up": self.containers_up, "leaving": self.leaving}

    def _answer_fields(self) -> dict[str, Any]:
        """What we answer the peer's heartbeat with: our news, under the next seq (heartbeats and answers share
        one order, so the peer keeps the newer of the two). The answer renews the peer's lease, and the news
        must come with it: a lease renewed by an answer that said nothing let an active that had fenced itself
        under packet loss cold-start on the peer's older "passive" while the peer, having heard nothing for the
        timeout, had taken over with the witness's word (chaos, Docker standard, seed 20261436: 0.38 s of two).
        Empty (no news, the answer renews nothing) before our Docker daemon answered once: "eligible" would
        mean nothing yet (a peer took itself for the cold-start candidate on such an answer)."""
        if self.docker_ok is None:  # as with our heartbeats: nothing to say before Docker answered once
            return {}
        self.seq += 1
        return {**self.heartbeat_fields(), "seq": self.seq}

    def _before(self, timer: Timer, now: float) -> bool:
        """Is ``timer`` set and still in the future?"""
        at = self.timers.get(timer)
        return at is not None and now < at

    def _peer_idle(self, now: float) -> bool:
        hb = self.peer.heartbeat
        return self.liveness.is_up(now) and hb is not None and hb.role in (Role.PASSIVE, Role.STARTING)

    def _peer_ready(self, now: float) -> bool:
        """Could the peer take over? Alive, idle and eligible."""
        hb = self.peer.heartbeat
        return self._peer_idle(now) and hb is not None and hb.eligible

    def _cold_start_candidate(self) -> bool:
        """Both idle: who takes it? Symmetric on both sides, so exactly one answers True."""
        hb = self.peer.heartbeat
        if not self.eligible or hb is None:
            return False
        if not hb.eligible:
            return True
        if self.containers_up != hb.containers_up:
            return self.containers_up
        return self.settings.preferred

    def _stray_running(self, now: float) -> bool:
        """Our managed containers run here while the live peer is active (and nothing of ours is in flight)."""
        hb = self.peer.heartbeat
        return (self.ops_pending == 0 and self.docker_ok is True and hb is not None and hb.role is Role.ACTIVE
                and self.liveness.is_up(now) and any(w.running for w in self.watches.values()))

    def _cannot_take_over(self, now: float) -> bool:
        """An idle node whose peer is silent while its own Docker daemon does not answer (said once)."""
        return (self.liveness.state(now) is Liveness.DOWN and not self.eligible and self.docker_ok is False
                and not self.peer.lost_alerted)

    def _describe(self, name: str) -> str:
        w = self.watches[name]
        return "never observed" if w.last is None else w.last.describe()

    # ------------------------------------------------------------------ the decision

    def handle(self, event: Event) -> Step[Action]:
        """One event in, one step out: learn the facts, then the current role decides."""
        b: Build = StepBuilder()
        if self._learn(event, b):
            if self.settings.standard and self.role in (Role.ACTIVE, Role.HANDING_OVER) and \
                    not self._lease_valid(event.now):
                self._self_fence(event.now, b)
            else:
                self._decide_as(self.role, event, b)
        self._fence_sync(event.now, b)
        if isinstance(event, PeerAlive) or (isinstance(event, HeartbeatReceived) and event.posted):
            b.act(HeartbeatAnswer(fields=self._answer_fields()))  # what we are after this step, the peer learns
        return b.build()

    def _decide_as(self, role: Role, event: Event, b: Build) -> None:
        match role:
            case Role.STARTING:
                self._starting(event, b)
            case Role.PASSIVE:
                self._passive(event, b)
            case Role.ACTIVE:
                self._active(event, b)
            case Role.HANDING_OVER:
                self._handing_over(event, b)

    # ------------------------------------------------------------------ 1. events update the facts

    def _learn(self, event: Event, b: Build) -> bool:
        """Update the facts from ``event``; False when the event asks for no decision."""
        now = event.now
        match event:
            case Resumed(stalled_for=stalled_for):
                # frozen: the peer's heartbeats may be waiting unread; no takeover on silence and no cold start
                # until they had a chance to be read (two heartbeat intervals), and the peer must be heard idle
                # anew: the idle heartbeats read first are from before the stall (chaos, Docker seed 1: a frozen
                # active fenced itself at the thaw and, its peer "idle" and the witness "silent" as far as its
                # stale facts went, started again as the cold-start candidate beside the peer that had taken over)
                hold = self._hold_on_old_news(now)
                b.act(Alert(code=AlertCode.STALLED, message=f"agent was stalled for {stalled_for:.1f}s; no takeover "
                                                            f"on silence before {hold:g}s"))
                return False
            case TermNotPersisted(detail=detail):
                b.act(Alert(code=AlertCode.TERM_NOT_PERSISTED, message=detail))
                return False
            case HeartbeatReceived(heartbeat=hb):
                self.liveness.heard(now)
                was_leaving = self.peer.heartbeat is not None and self.peer.heartbeat.leaving
                self.peer.heartbeat = hb
                if hb.role in (Role.PASSIVE, Role.STARTING):
                    self.peer.idle_since = now if self.peer.idle_since is None else self.peer.idle_since
                else:
                    self.peer.idle_since = None
                if hb.leaving and not was_leaving:
                    b.act(Alert(code=AlertCode.PEER_LEAVING, message=f"{hb.sender} is shutting down "
                                                                     f"({hb.role.value}): it cannot take over"))
                if self.peer.lost_alerted:
                    b.act(Alert(code=AlertCode.PEER_BACK, message=f"heartbeats from {hb.sender} again "
                                                                  f"({hb.role.value}, term {hb.term})"))
                    self.peer.lost_alerted = False
                if event.acked_seq is not None and self.lease is not None:
                    # after the news it came with: a lease renewed by the peer's answer is never decided on
                    # with older news of the peer (chaos, Docker standard, seed 20261436)
                    self.lease.acknowledged(event.acked_seq)
            case ContainersObserved(observations=observations):
                if self.docker_ok is False:
                    b.act(Alert(code=AlertCode.DOCKER_BACK, message="Docker daemon answers again"))
                self.docker_ok = True
                if not self.ops_pending:  # else inspected before our start/stop finished: stale, inspected again
                    for obs in observations:
                        w = self.watches.get(obs.name)
                        if w is not None:
                            w.observe(obs, now, self.settings.restart_grace_period)
            case DockerUnreachable(detail=detail):
                if self.docker_ok is not False:
                    b.act(Alert(code=AlertCode.DOCKER_UNREACHABLE,
                                message=f"Docker daemon unreachable ({detail}); containers may still run: "
                                        "not failing over on that alone"))
                self.docker_ok = False
            case ContainersStarted(ok=ok, detail=detail):
                self.ops_pending = max(0, self.ops_pending - 1)
                if not ok:
                    b.act(Alert(code=AlertCode.START_FAILED, message=f"starting containers failed: {detail}"))
            case ContainersStopped(ok=ok, detail=detail):
                self.ops_pending = max(0, self.ops_pending - 1)
                if ok:
                    for w in self.watches.values():
                        w.last = None  # stopped; what we saw before is stale until the next inspect
                elif self.role is not Role.HANDING_OVER:  # handing over, a failed stop is the role's decision
                    b.act(Alert(code=AlertCode.STOP_FAILED_PASSIVE, message=f"stopping containers failed: {detail}"))
            case HandOverAnswered(term=int() as term):
                self._set_term(term, b)
            case PeerAlive():
                self.liveness.heard(now)
            case PeerAcknowledged(seq=seq):
                if self.lease is not None:
                    self.lease.acknowledged(seq)
                return self.role in (Role.ACTIVE, Role.HANDING_OVER)  # nothing to decide unless we run
            case WitnessAnswered(ack=ack):
                return self._learn_witness(ack, now, b)
            case WitnessUnreachable(detail=detail):
                if self.witness is not None and not self.witness_alerted and \
                        self.witness.state(now) is not Liveness.UP:
                    self.witness_alerted = True
                    b.act(Alert(code=AlertCode.WITNESS_UNREACHABLE, message=f"witness unreachable ({detail}); "
                                                                            "alone this changes nothing"))
                return self.claim_seq is not None  # a claim may have to be withdrawn
            case KeeperConnected(detail=detail):
                self.keeper_up = True
                self.fence_sent = (False, None)  # a new keeper holds nothing: tell it our lease (or release) again
                if self.keeper_alerted:
                    self.keeper_alerted = False
                    b.act(Alert(code=AlertCode.KEEPER_BACK, message=f"the fence keeper accepted us again ({detail})"))
            case KeeperLost(detail=detail):
                self.keeper_up = False
                if not self.keeper_alerted:
                    self.keeper_alerted = True
                    running = self.role in (Role.ACTIVE, Role.HANDING_OVER)
                    b.act(Alert(code=AlertCode.KEEPER_UNREACHABLE, message=(
                        f"no fence keeper ({detail}): " + (
                            "we keep the containers and kill them ourselves when the lease ends; reconnecting"
                            if running else "not eligible (no cold start, no takeover) until one accepts us"))))
        return True

    def _learn_witness(self, ack: WitnessAck, now: float, b: Build) -> bool:
        fencing = self.settings.fencing
        if fencing is None or self.witness is None or self.lease is None:
            return False
        self.witness.heard(now)
        self.lease.acknowledged(ack.seq)
        if self.witness_alerted:
            self.witness_alerted = False
            b.act(Alert(code=AlertCode.WITNESS_BACK, message=f"witness {ack.witness} answers again"))
        if ack.down_after + 1e-3 < fencing.down_after:
            if not self.witness_timing_alerted:
                self.witness_timing_alerted = True
                b.act(Alert(code=AlertCode.WITNESS_TIMING, message=(
                    f"witness {ack.witness} calls a node down after {ack.down_after:.3f}s, before our fencing "
                    f"deadline needs ({fencing.down_after:.3f}s): its answers are not used")))
            self.witness_ack = None
            return self.claim_seq is not None
        if self.witness_ack is None or ack.seq >= self.witness_ack.seq:
            self.witness_ack = ack
        if self.role in (Role.STARTING, Role.PASSIVE) and ack.highest_term > self.term and \
                not self.liveness.is_up(now):
            self._set_term(ack.highest_term, b)  # a term claimed while we did not hear the peer: learn it
        return True

    # ------------------------------------------------------------------ 2. one decision function per role

    def _starting(self, event: Event, b: Build) -> None:
        now = event.now
        match event:
            case HandOverRequested():
                return self._answer_as_idle(event, b)
            case ShutdownRequested():
                return self._leave(now, b)
            case HeartbeatReceived(heartbeat=hb) if hb.role is Role.ACTIVE:
                self._set_term(hb.term, b)
                self._change(Role.PASSIVE, TransitionCode.PEER_ACTIVE, f"peer {hb.sender} is active in term "
                             f"{hb.term}", now, b)
                return self._passive(Tick(now=now), b)
            case HeartbeatReceived(heartbeat=hb):
                self._set_term(hb.term, b)  # an idle peer that knows a later term: learn it
        peer_down = self.liveness.state(now) is Liveness.DOWN
        if self.claim_seq is not None and not self._claim_still_wanted(now):
            self._withdraw_claim(f"{self.settings.peer} is no longer silent/idle", now, b)
        if self.eligible and self._peer_idle(now) and self._cold_start_candidate() and self._may_run(now):
            self._cold_start(now, b)
        elif self.eligible and peer_down and not self._before(Timer.HOLD_TAKEOVER, now) and \
                now >= self.booted_at + self.settings.startup_grace_period:
            if self.settings.standard:
                self._takeover_by_table(now, b)
            else:
                self._become_active(TransitionCode.STARTUP_PEER_SILENT, f"no heartbeat from {self.settings.peer} "
                                    "within the start-up grace", now, b, new_term=self.term + 1)
        elif self._cannot_take_over(now):
            self._alert_cannot_take_over(b)
        self._heartbeat_timer(now, b)
        return None

    def _passive(self, event: Event, b: Build) -> None:
        now = event.now
        match event:
            case HandOverRequested():
                return self._answer_as_idle(event, b)
            case ShutdownRequested():
                return self._leave(now, b)
            case HeartbeatReceived(heartbeat=hb):
                self._set_term(hb.term, b)  # a later term, active or idle: learn it
        s = self.settings
        peer_down = self.liveness.state(now) is Liveness.DOWN
        if self.claim_seq is not None and not self._claim_still_wanted(now):
            self._withdraw_claim(f"{s.peer} is no longer silent/idle, or we cannot run the containers", now, b)
        if self.eligible and peer_down and not self._before(Timer.HOLD_TAKEOVER, now):
            if s.standard:
                self._takeover_by_table(now, b)
            else:
                silent = self.liveness.silent_for(now)
                took = f"{silent:.2f}s" if silent is not None else "ever"
                self._become_active(TransitionCode.PEER_HEARTBEAT_LOST, f"no heartbeat from {s.peer} for {took}", now,
                                    b, new_term=self.term + 1)
        elif self.eligible and self._peer_idle(now) and self._cold_start_candidate() and self._may_run(now):
            self._cold_start(now, b)
        elif self._stray_running(now):
            names = [n for n, w in self.watches.items() if w.running]
            b.act(Alert(code=AlertCode.STRAY_CONTAINERS,
                        message=f"{', '.join(names)} running here while {s.peer} is active: stopping them"))
            self._stop_all(f"{s.peer} is active", b)
        elif self._cannot_take_over(now):
            self._alert_cannot_take_over(b)
        self._heartbeat_timer(now, b)
        return None

    def _active(self, event: Event, b: Build) -> None:
        now = event.now
        s = self.settings
        match event:
            case HandOverRequested():
                return self._refuse(event, f"not idle (we are {self.role.value})", b)
            case ShutdownRequested():
                # hand over if the peer can take it; else leave the containers running (stopping them would
                # leave nothing running)
                if self._peer_ready(now) and not self.ops_pending:
                    self._change(Role.HANDING_OVER, TransitionCode.SHUTDOWN, f"agent shutting down; handing over "
                                 f"to {s.peer}", now, b)
                    self._stop_all("shutdown hand-over", b)
                    return None
                return self._leave(now, b)
            case HeartbeatReceived(heartbeat=hb) if hb.role is Role.ACTIVE and hb.term > self.term:
                self._set_term(hb.term, b)
                self._step_down(TransitionCode.HIGHER_TERM, f"peer {hb.sender} is active with higher term "
                                f"{hb.term}", now, b)
                return self._passive(Tick(now=now), b)
            case HeartbeatReceived(heartbeat=hb) if hb.role is Role.ACTIVE and hb.term == self.term \
                    and not s.preferred:
                self._step_down(TransitionCode.SPLIT_BRAIN_TIEBREAK, f"peer {hb.sender} is also active in term "
                                f"{hb.term}; the preferred server keeps it", now, b)
                return self._passive(Tick(now=now), b)
            case HeartbeatReceived(heartbeat=hb) if hb.role is Role.ACTIVE:
                self.timers.set(Timer.HEARTBEAT, now)  # equal term (we are preferred) or lower: it learns at once
            case HeartbeatReceived(heartbeat=hb) if hb.term > self.term:
                self._set_term(hb.term + 1, b)  # an idle peer knows a later term: move past it, stay in charge
                self.timers.set(Timer.HEARTBEAT, now)
        if self.liveness.state(now) is Liveness.DOWN and not self.peer.lost_alerted:
            self.peer.lost_alerted = True
            b.act(Alert(code=AlertCode.PEER_LOST, message=f"{s.peer} is silent: we keep the containers"))
        failed = [n for n, w in self.watches.items() if w.failed(now)]
        if self.docker_ok is not True or self.ops_pending:
            pass  # nothing known for sure about the containers right now
        elif failed and self._before(Timer.RETRY, now):
            pass  # a hand-over or restart just failed: not again before the retry hold
        elif failed and self._peer_ready(now):
            what = ", ".join(f"{n} ({self._describe(n)})" for n in failed)
            self._change(Role.HANDING_OVER, TransitionCode.CONTAINER_FAILED, f"{what} down past its grace; "
                         f"handing over to {s.peer}", now, b)
            self._stop_all("hand-over", b)
        elif failed:
            if not self.failed_alerted:
                what = ", ".join(f"{n} ({self._describe(n)})" for n in failed)
                b.act(Alert(code=AlertCode.CONTAINER_FAILED_NO_PEER,
                            message=f"{what} down past its grace and {s.peer} cannot take over: restarting here"))
            self._start_all(now, "restart after failure, no peer to hand over to", b)
            self.failed_alerted = True
            self.timers.set(Timer.RETRY, now + s.retry_hold)
        elif s.failback and not s.preferred and self._peer_ready(now) and self.containers_up and \
                self.liveness.up_for(now) >= s.failback_hold_down:
            self._change(Role.HANDING_OVER, TransitionCode.FAILBACK, f"failback: preferred {s.peer} has been up "
                         f"for {self.liveness.up_for(now):.1f}s (hold-down {s.failback_hold_down:g}s)", now, b)
            self._stop_all("failback", b)
        self._heartbeat_timer(now, b)
        return None

    def _handing_over(self, event: Event, b: Build) -> None:
        now = event.now
        s = self.settings
        match event:
            case HandOverRequested():
                return self._refuse(event, f"not idle (we are {self.role.value})", b)
            case ShutdownRequested():
                return None  # already handing over
            case HeartbeatReceived(heartbeat=hb) if hb.role is Role.ACTIVE and hb.term > self.term:
                # the peer took over (e.g. our request went unanswered but reached it)
                self._set_term(hb.term, b)
                self._step_down(TransitionCode.HIGHER_TERM, f"peer {hb.sender} is active with higher term "
                                f"{hb.term}", now, b)
                return self._passive(Tick(now=now), b)
            case HeartbeatReceived(heartbeat=hb) if hb.role is not Role.ACTIVE and hb.term > self.term:
                self._set_term(hb.term + 1, b)  # an idle peer knows a later term: move past it
                self.timers.set(Timer.HEARTBEAT, now)
            case ContainersStopped(ok=True):
                last = self.machine.last
                b.act(RequestHandOver(term=self.term, reason=last.reason if last else ""))
            case ContainersStopped(detail=detail):
                reason = f"could not stop the containers before handing over ({detail}); keeping them"
                self._change(Role.ACTIVE, TransitionCode.STOP_FAILED, reason, now, b)
                self.timers.set(Timer.RETRY, now + s.retry_hold)
                self._start_all(now, reason, b)
                return self._active(Tick(now=now), b)
            case HandOverAnswered(accepted=True):
                # a signed answer from the peer: it is alive and now active in the new term
                self.liveness.heard(now)
                self.peer.heartbeat = _peer_after_hand_over(self.peer.heartbeat, s.peer, Role.ACTIVE, self.term)
                self._change(Role.PASSIVE, TransitionCode.HANDED_OVER, f"{s.peer} took over in term {self.term}",
                             now, b)
                return self._passive(Tick(now=now), b)
            case HandOverAnswered(ambiguous=True, detail=detail) if Timer.HANDOVER_WAIT not in self.timers:
                # it may have taken over: its next heartbeat says so (higher term -> we step down). Only if none
                # says so within heartbeat_timeout do we start our containers again.
                self.timers.set(Timer.HANDOVER_WAIT, now + s.heartbeat_timeout)
                self.handover_detail = detail
            case HandOverAnswered(detail=detail):
                self._handover_failed(detail, now, b)
                return self._active(Tick(now=now), b)
        wait = self.timers.get(Timer.HANDOVER_WAIT)
        if wait is not None and now >= wait:
            self._handover_failed(f"{self.handover_detail}; no sign of {s.peer} taking over within "
                                  f"{s.heartbeat_timeout:g}s", now, b)
        self._heartbeat_timer(now, b)
        return None

    def _answer_as_idle(self, ev: HandOverRequested, b: Build) -> None:
        """STARTING or PASSIVE: the active peer asks us to take over. Ordered guards, then accept."""
        now = ev.now
        if not self.eligible:
            missing = [n for n, w in self.watches.items() if w.last is not None and not w.last.exists]
            why = f"missing here: {', '.join(missing)}" if missing else \
                "no fence keeper holds our lease" if not self.keeper_up else "our Docker daemon does not answer"
            return self._refuse(ev, why, b)
        if self._before(Timer.HOLD_TAKEOVER, now):
            # we were frozen: this request may have waited in our socket long after its sender gave up
            return self._refuse(ev, "just resumed from a stall", b)
        if ev.term < self.term:
            return self._refuse(ev, f"stale request: term {ev.term} < our term {self.term}", b)
        if not self._may_run(now):
            return self._refuse(ev, "no acknowledged contact with the peer or the witness: we may not run", b)
        self.liveness.heard(now)
        self.peer.heartbeat = _peer_after_hand_over(self.peer.heartbeat, ev.sender, Role.PASSIVE, ev.term)
        self._become_active(TransitionCode.HANDOVER_ACCEPTED, f"{ev.sender} handed over: {ev.reason}"[:300], now, b,
                            new_term=max(ev.term, self.term) + 1)
        b.act(HandOverAnswer(accepted=True, term=self.term, detail="accepted", asked_by=ev.sender,
                             asked_term=ev.term))
        return self._active(Tick(now=now), b)

    def _leave(self, now: float, b: Build) -> None:
        """Shutting down with nothing to hand over: what runs here keeps running; tell the peer at once that we
        are leaving (``leaving``, not eligible), so an active peer does not stop its containers for a hand-over
        to us that cannot happen, and an idle one knows we will not take over."""
        if not self.leaving:
            self.leaving = True
            self.timers.set(Timer.HEARTBEAT, now)
        self._heartbeat_timer(now, b)

    def _refuse(self, ev: HandOverRequested, detail: str, b: Build) -> None:
        b.act(HandOverAnswer(accepted=False, term=self.term, detail=detail, asked_by=ev.sender, asked_term=ev.term))

    # ------------------------------------------------------------------ standard mode (a witness)

    def _lease_valid(self, now: float) -> bool:
        return self.lease is not None and self.lease.valid(now)

    def _may_run(self, now: float) -> bool:
        """Simple mode: always. Standard mode: only with a valid ContactLease (acknowledged contact)."""
        return not self.settings.standard or self._lease_valid(now)

    def _table_decision(self, now: float) -> Decision:
        """failover_core.decide's documented table for a node that does not run the containers: the
        preferred server is the table's primary, the other its secondary; the witness's word is its last ack."""
        s = self.settings
        role = TableRole.PRIMARY if s.preferred else TableRole.SECONDARY
        assert self.witness is not None
        ack = self.witness_ack
        view = ack.view_of(s.peer) if ack is not None else None
        verdict = None
        if view is not None and not s.preferred:
            verdict = {Liveness.DOWN: Verdict.PRIMARY_DOWN, Liveness.UP: Verdict.PRIMARY_ALIVE}.get(view.state)
        hb = self.peer.heartbeat
        facts = Facts(peer=self.liveness.state(now), witness=self.witness.state(now), verdict=verdict,
                      peer_active=None if hb is None else hb.role is Role.ACTIVE, self_active=False,
                      witness_peer_active=None if view is None else view.may_be_active)
        return decide(role, facts)

    def _claim_still_wanted(self, now: float) -> bool:
        if not self.eligible:
            return False
        if self.claim_purpose == "takeover":
            return self.liveness.state(now) is Liveness.DOWN
        return self._peer_idle(now)

    def _claim(self, purpose: str, why: str, now: float, b: Build) -> None:
        """Our next heartbeat (at once) tells the witness we are about to run the containers."""
        if now < self.claim_not_before:
            return
        self.claim_seq, self.claim_purpose = self.seq + 1, purpose
        self.timers.set(Timer.CLAIM, now + self.settings.heartbeat_timeout)
        self.timers.set(Timer.HEARTBEAT, now)
        b.note(NoteCode.CLAIMING, why)

    def _claim_answer(self, now: float, b: Build) -> WitnessAck | None:
        """The witness's answer to our claim (None: not yet; a claim unanswered past its deadline is withdrawn)."""
        ack = self.witness_ack
        if self.claim_seq is not None and ack is not None and ack.seq >= self.claim_seq:
            return ack
        if self.claim_seq is not None and not self._before(Timer.CLAIM, now):
            self._withdraw_claim(f"no answer from the witness within {self.settings.heartbeat_timeout:g}s", now, b)
        return None

    def _takeover_by_table(self, now: float, b: Build) -> None:
        """The peer is silent for ``down_after``: the table decides; a START is a claim first (our next heartbeat
        tells the witness we are about to run), and we start only if the witness's answer to that claim
        still says START (two nodes claiming at once: the witness answers the second with the first's claim)."""
        d = self._table_decision(now)
        if self.claim_seq is None:
            if d.action is TableAction.START and self._may_run(now):
                self._claim("takeover", f"{d.reason} [{d.code}]", now, b)
            elif self.asked_in_silence != self.liveness.last_heard:
                # the witness's word we hold was given before the peer went silent (up to a heartbeat ago): ask it
                # afresh now (a heartbeat at once) rather than a heartbeat interval later, and say nothing until
                # its answer (or the next tick) decides; once per silence
                self.asked_in_silence = self.liveness.last_heard
                self.timers.set(Timer.HEARTBEAT, now)
                return
            elif d.code != self.table_code:
                b.act(Alert(code=AlertCode.TAKEOVER_HELD, message=f"{self.settings.peer} is silent: {d} "
                                                                  "(not starting)"))
            self.table_code = d.code
            return
        ack = self._claim_answer(now, b)
        if ack is None:
            return
        if d.action is TableAction.START and self._may_run(now):
            self._claim_done()
            self._become_active(TransitionCode.WITNESS_CONFIRMED, f"{d.reason} [{d.code}]", now, b,
                                new_term=max(self.term, ack.highest_term) + 1)
        else:
            self._withdraw_claim(str(d), now, b)

    def _cold_start(self, now: float, b: Build) -> None:
        """Both idle and we are the candidate. Simple mode: start. Standard mode: only after the peer has been
        heard idle for two heartbeat intervals (heartbeats held up by a cut link arrive in a burst when it
        heals, and the first may be an old "passive"), and, when the witness answers, only after its answer
        to our claim says the peer runs nothing."""
        s = self.settings
        reason = f"{s.peer} is idle too and we are the cold-start candidate"
        if not s.standard:
            self._become_active(TransitionCode.COLD_START_CANDIDATE, reason, now, b, new_term=self.term + 1)
            return
        idle_since = self.peer.idle_since
        if idle_since is None or now - idle_since < 2 * s.heartbeat_interval or self._before(Timer.HOLD_TAKEOVER, now):
            return
        assert self.witness is not None
        if self.claim_seq is None:
            witness = self.witness.state(now)
            if witness is Liveness.UP:
                self._claim("cold_start", reason, now, b)
            elif witness is Liveness.DOWN:  # the witness down alone changes nothing: the pair's own rule
                self._become_active(TransitionCode.COLD_START_CANDIDATE, f"{reason} (witness unreachable)", now, b,
                                    new_term=self.term + 1)
            return
        ack = self._claim_answer(now, b)
        if ack is None:
            return
        if ack.view_of(s.peer).may_be_active is False:
            self._claim_done()
            self._become_active(TransitionCode.COLD_START_CANDIDATE, f"{reason}; the witness confirms it runs "
                                "nothing", now, b, new_term=max(self.term, ack.highest_term) + 1)
        else:
            self._withdraw_claim(f"the witness says {s.peer} may run the containers: "
                                 f"{ack.view_of(s.peer).as_fields()}", now, b)

    def _claim_done(self) -> None:
        self.claim_seq = None
        self.timers.clear(Timer.CLAIM)
        self.table_code = None

    def _withdraw_claim(self, why: str, now: float, b: Build) -> None:
        self.claim_seq = None
        self.claim_not_before = now + self.settings.heartbeat_interval
        self.timers.clear(Timer.CLAIM)
        self.timers.set(Timer.HEARTBEAT, now)  # say at once that we do not run
        b.note(NoteCode.CLAIM_WITHDRAWN, why)

    def _hold_on_old_news(self, now: float) -> float:
        """After a stall or a self-fence: no takeover on silence and no cold start for two heartbeat intervals
        (the peer's heartbeats may be waiting unread), and the peer must be heard idle anew. Returns the hold."""
        hold = 2 * self.settings.heartbeat_interval
        self.timers.set(Timer.HOLD_TAKEOVER, now + hold)
        self.peer.idle_since = None
        return hold

    def _self_fence(self, now: float, b: Build) -> None:
        """Our lease expired (no acknowledged contact with the peer or the witness for ``FencingTiming.lease``
        = heartbeat_timeout - fencing margin since a heartbeat was sent), or nothing was ever acknowledged:
        kill the containers now, before anyone may call us gone (they wait heartbeat_timeout)."""
        assert self.lease is not None
        since = "never acknowledged" if self.lease.expires_at is None else \
            f"lease expired {now - self.lease.expires_at:.3f}s ago"
        reason = (f"no acknowledged contact with {self.settings.peer} or the witness ({since}): "
                  "killing the containers (fencing)")
        self._change(Role.PASSIVE, TransitionCode.SELF_FENCED, reason, now, b)
        # out of contact: what we last heard of the peer (idle) may be old news, as after a stall (Docker chaos,
        # standard, seed 3: a 1.4 s freeze)
        self._hold_on_old_news(now)
        for w in self.watches.values():
            w.forget()
        self.ops_pending += 1
        b.act(StopContainers(names=self.settings.containers, timeout=0, reason=reason, kill=True))
        self._heartbeat_timer(now, b)

    def claims_active(self) -> bool:
        """What our heartbeats tell the witness: we run (or are about to run) the containers."""
        return self.role in (Role.ACTIVE, Role.HANDING_OVER) or self.claim_seq is not None or \
            any(w.running for w in self.watches.values())

    def _fence_sync(self, now: float, b: Build) -> None:
        """Standard mode: the fence keeper holds our lease while containers may run here (or are being
        started or stopped); it kills them when the lease runs out, or when our process dies."""
        if self.lease is None:
            return
        holding = self.role in (Role.ACTIVE, Role.HANDING_OVER) or self.ops_pending > 0 or \
            any(w.running for w in self.watches.values())
        until = (self.lease.expires_at if self.lease.expires_at is not None else now) if holding else None
        if self.fence_sent != (True, until):
            self.fence_sent = (True, until)
            b.act(HoldFence(until=until))

    # ------------------------------------------------------------------ what the guards do

    def _change(self, to: Role, code: TransitionCode, reason: str, now: float, b: Build) -> None:
        t = self.machine.change(to, code=code.value, reason=reason, now=now)
        if to is not Role.HANDING_OVER:
            self.timers.clear(Timer.HANDOVER_WAIT)
        if t is not None:
            b.changed(t)
            b.because(code, reason)
            self.timers.set(Timer.HEARTBEAT, now)  # tell the peer at once

    def _set_term(self, term: int, b: Build) -> None:
        if term > self.term:
            self.term = term
            b.act(PersistTerm(term=term))

    def _start_all(self, now: float, reason: str, b: Build) -> None:
        for w in self.watches.values():
            w.started_by_us(now, self.settings.startup_grace_period)
        self.failed_alerted = False
        self.ops_pending += 1
        b.act(StartContainers(names=self.settings.containers, reason=reason, term=self.term))

    def _stop_all(self, reason: str, b: Build) -> None:
        for w in self.watches.values():
            w.forget()
        self.ops_pending += 1
        b.act(StopContainers(names=self.settings.containers, timeout=self.settings.stop_timeout, reason=reason))

    def _become_active(self, code: TransitionCode, reason: str, now: float, b: Build, *, new_term: int) -> None:
        self._set_term(new_term, b)
        self._change(Role.ACTIVE, code, reason, now, b)
        self._start_all(now, reason, b)

    def _step_down(self, code: TransitionCode, reason: str, now: float, b: Build) -> None:
        was = self.role
        self._change(Role.PASSIVE, code, reason, now, b)
        if was is Role.ACTIVE or was is Role.HANDING_OVER:
            self._stop_all(reason, b)

    def _handover_failed(self, detail: str, now: float, b: Build) -> None:
        reason = f"hand-over to {self.settings.peer} not confirmed ({detail}); restarting our containers"
        self.timers.clear(Timer.HANDOVER_WAIT)
        self._change(Role.ACTIVE, TransitionCode.HANDOVER_FAILED, reason, now, b)
        self.timers.set(Timer.RETRY, now + self.settings.retry_hold)
        self._start_all(now, reason, b)

    def _alert_cannot_take_over(self, b: Build) -> None:
        self.peer.lost_alerted = True
        b.act(Alert(code=AlertCode.PEER_LOST, message=f"{self.settings.peer} is silent and our Docker daemon does "
                                                      "not answer: cannot take over"))

    # ------------------------------------------------------------------ 3. the timer, last

    def _heartbeat_timer(self, now: float, b: Build) -> None:
        # no heartbeat before our Docker daemon answered or failed once: "eligible" must mean something
        due = self.timers.get(Timer.HEARTBEAT)
        if due is not None and now >= due and self.docker_ok is not None:
            self.timers.set(Timer.HEARTBEAT, now + self.settings.heartbeat_interval)
            self.seq += 1
            if self.lease is not None:
                self.lease.sent(self.seq, now)
            b.act(SendHeartbeat(fields={**self.heartbeat_fields(), "seq": self.seq}, seq=self.seq,
                                claims_active=self.claims_active()))

    def deadlines(self, now: float) -> Deadlines[str]:
        """Every instant at which a ``Tick`` may decide something, by name (some may be past)."""
        s = self.settings
        d: Deadlines[str] = Deadlines()
        for timer, at in self.timers:
            if timer is not Timer.RETRY or self.role is Role.ACTIVE:
                d.set(timer.value, at)
        silent = self.liveness.next_deadline(now)
        if silent is not None:
            d.set("peer_silent", silent)
        if self.lease is not None and self.lease.expires_at is not None and \
                self.role in (Role.ACTIVE, Role.HANDING_OVER):
            d.set("lease", self.lease.expires_at)
        if self.witness is not None:
            w = self.witness.next_deadline(now)
            if w is not None:
                d.set("witness_silent", w)
        if self.role is Role.STARTING:
            d.set("startup_grace", self.booted_at + s.startup_grace_period)
        if self.role is Role.ACTIVE:
            for name, w in self.watches.items():
                at = w.deadline()
                if at is not None:
                    d.set(f"container.{name}", at)
            if s.failback and self.liveness.up_since is not None and self.liveness.is_up(now):
                d.set("failback", self.liveness.up_since + s.failback_hold_down)
        return d

    def next_deadline(self, now: float) -> float:
        """The next instant at which a ``Tick`` may act on its own (the driver sleeps until then)."""
        future = [at for _, at in self.deadlines(now) if at > now]
        return min(future) if future else now + self.settings.heartbeat_interval


__all__ = ["ALLOWED_MOVES", "PairNode", "PairSettings", "PeerView", "Timer"]

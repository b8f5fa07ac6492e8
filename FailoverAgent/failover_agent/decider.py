"""AgentDecider: the failover agent's decisions, one frozen event in, one ``failover_core`` Step out.

It keeps the facts (peer and witness liveness as deadlines, what the peer says it runs, the last
witness verdict, the service's state machine) and decides with ``failover_core.decide`` (the
documented tables and their guards). No I/O and no clock: every event carries ``now``. The driver
(``agent``) feeds it and carries each Step out with ``failover_core.shell.carry_out``.

Standard mode keeps the timing argument of ``failover_core.fencing`` (T = ``timeout``, S = ``stop_bound``,
M = the margin, the active's lease L = T - M, ``down_after`` = T):

- "the peer (or the witness) is reachable" is a reason to run (the primary's table, and any active):
  it counts only while the ``ContactLease`` of that link is valid: the send time of our newest heartbeat
  they acknowledged (the peer's echo of its seq, the witness's signed ack) + L. A heartbeat merely
  *received* never keeps a node running: with its outgoing traffic cut it still hears the others, and
  fences all the same. A link never acknowledged since the agent started is UNKNOWN (the decision holds
  what runs) for L after the start, no longer: every heartbeat is sent after the start, so a node never
  runs unacknowledged longer than L after its first send;
- "the peer is gone" is a reason to start for the secondary: it calls the primary DOWN only
  ``down_after`` (T) after its last heartbeat was *received*, the same wait the witness keeps before it
  answers DOWN: the isolated active has stopped by then (hearing the primary only ever makes the
  secondary stop; a running secondary keeps the service on the witness's verdict, by the witness lease);
- the witness's ack carries what it knows of our peer (``Facts.witness_peer_active``): a node back from
  isolation that hears the witness before its peer does not start while the witness says (or cannot
  rule out) that the peer runs the service (``primary.rejoin``);
- a verified takeover is claimed at the witness (a heartbeat saying "we run it", acknowledged) BEFORE
  the service starts, and every heartbeat says "active" from that claim on: the witness can never tell
  the primary "the secondary runs nothing" while it starts;
- a term travels with every claim: a node that starts the service takes the highest term it has seen
  (its own, the peer's, the witness's) + 1;
- leaving (``Leave``: the agent stops cleanly): an active node that has a peer able to take over (peer link
  UP by lease, the witness link UP in standard mode, the peer not leaving itself) hands over: it stops the
  service (``StopManaged``, bounded by ``stop_bound``), then sends its last heartbeat flagged leaving and
  not active (``SendLeaving``); a passive node sends leaving too; otherwise the service keeps running,
  and the heartbeat says leaving *and active*. A peer heard leaving and not active is DOWN at once for a
  node that counts the peer by receipt (the secondary, simple mode): it takes over without waiting for the
  timeout (the witness, told first, calls it DOWN at once too). A peer heard leaving *and active* left the
  service running: in standard mode this node starts nothing until that peer is heard again
  (``*.peer_left_running``), and the witness never calls it down.

Reading order: the facts that events bring (heartbeats, acks, dropped input), then one cycle with
its ordered guards (platform unreadable -> the table via ``decide`` -> a VERIFY cell asks the witness
-> the verdict, a raced or unanswered verification), then what the cycle's start/stop produced (the
transition, its alert), and the timer last (when the loop must wake up on its own).
"""

from __future__ import annotations

import collections
import enum
from dataclasses import dataclass, replace

from failover_agent.alerts import alert_context, alert_key
from failover_agent.codes import AlertCode, DecisionCode, DropCode, TransitionCode
from failover_agent.config import FailoverConfig
from failover_agent.events import (
    AgentAction,
    AskWitness,
    ClaimAtWitness,
    CycleStarted,
    Event,
    HeartbeatReceived,
    HeartbeatSent,
    InputRejected,
    Leave,
    ManagedRead,
    ManagedView,
    PlatformUnavailable,
    RaiseAlert,
    RunCycleNow,
    SendHeartbeatNow,
    SendLeaving,
    StartService,
    StopManaged,
    StopService,
    WitnessAcked,
    WitnessAnswered,
    WitnessClaimed,
)
from failover_agent.wire import WitnessAnswer
from failover_core.decide import Decision, Facts, Policy, decide
from failover_core.errors import LocalUsageError
from failover_core.fencing import ContactLease
from failover_core.liveness import Liveness, PeerLiveness
from failover_core.step import Deadlines, Step, StepBuilder
from failover_core.tables import Action
from failover_core.transitions import StateMachine
from failover_core.witness_book import WitnessView

KEEP_TERMS = 64  # terms of the last transitions kept for the notify hook (FAILOVER_TERM)

CONFIG_ALERT_KEY = "failover config"
SECURITY_ALERT_KEY = "failover security"


class ServiceState(enum.Enum):
    UNKNOWN = "unknown"  # not observed yet (agent just started)
    RUNNING = "running"
    STOPPED = "stopped"


SERVICE_MOVES = {
    ServiceState.UNKNOWN: {ServiceState.RUNNING, ServiceState.STOPPED},
    ServiceState.RUNNING: {ServiceState.STOPPED},
    ServiceState.STOPPED: {ServiceState.RUNNING},
}


def config_error_step(error: str) -> Step[AgentAction]:
    """What an agent with an invalid config does: publish the error, mark itself unhealthy, manage nothing."""
    context = f"Configuration error: {error}"
    return Step(actions=(RaiseAlert(code=AlertCode.CONFIG_ERROR, key=CONFIG_ALERT_KEY, context=context,
                                    healthy=False),))


def auth_warning_step(warning: str) -> Step[AgentAction]:
    """What an agent without a heartbeat_secret says at start: an alert (it runs; its health stays good)."""
    return Step(actions=(RaiseAlert(code=AlertCode.HEARTBEAT_AUTH_OFF, key=SECURITY_ALERT_KEY,
                                    context=f"SECURITY: {warning}", healthy=True),))


@dataclass(slots=True)
class _Verification:
    """A cycle waiting for the witness's verdict: the facts it asked with and what ran then."""

    facts: Facts
    managed: ManagedView


class AgentDecider:
    """The decisions of one failover agent (primary or secondary, simple or standard mode)."""

    def __init__(self, config: FailoverConfig, *, subject: str, now: float) -> None:
        self.config = config
        self.role = config.role
        self.policy = Policy(failback_delay=config.failback_delay, wait_for_peer_state=True)
        # standard mode only: simple mode has no fencing (and its timeout need not leave a lease)
        self.timing = config.timing if self.role.uses_witness else None
        self.watch_started = now
        # receipts of the peer's heartbeats: the passive's view (down after T, since the last receipt)
        hear_for = self.timing.down_after if self.timing is not None else config.timeout
        self.peer = PeerLiveness(config.peer_id, hear_for, watch_started=now)
        # acknowledged contact: the active's view, one lease per link (L; simple mode never reads them)
        self.lease_length = self.timing.lease if self.timing is not None else config.timeout
        self.leases = {"peer": ContactLease(self.lease_length), "witness": ContactLease(self.lease_length)}
        self.peer_active: bool | None = None  # what the peer's last heartbeat said about its service
        self.witness_answer: WitnessAnswer | None = None
        self.witness_peer: WitnessView | None = None  # the witness's word on our peer, from its last ack
        self.term = 0  # ours: the term of our last start of the service
        self.peer_term = 0  # the highest term the peer claimed to us
        self.witness_term = 0  # the highest term the witness told us about (its group, our peer's claims)
        self.terms_by_seq: collections.OrderedDict[int, int] = collections.OrderedDict()  # transition seq -> term
        self.decision: Decision | None = None  # the last cycle's decision (get_status)
        self.service: StateMachine[ServiceState] = StateMachine(subject, ServiceState.UNKNOWN, SERVICE_MOVES)
        self.rejected: collections.Counter[str] = collections.Counter()
        self.deadlines: Deadlines[str] = Deadlines()  # "verify": ask the witness again then
        self._verifying: _Verification | None = None
        self._acting: Decision | None = None  # a start/stop waiting for its ManagedRead
        self._claiming: ManagedView | None = None  # a takeover waiting for the witness's ack of our claim
        self._reported_missing: tuple[str, ...] = ()
        self.peer_leaving = False  # the peer's last heartbeat said its agent is stopping
        self.leaving = False  # our agent is stopping (Leave): the loop runs no more cycles

    def handle(self, event: Event) -> Step[AgentAction]:
        """One event in, one Step out."""
        handler = self._HANDLERS.get(type(event))
        if handler is None:
            raise LocalUsageError(f"AgentDecider cannot handle {type(event).__name__}")
        b: StepBuilder[AgentAction] = StepBuilder()
        handler(self, event, b)
        return b.build()

    # -- facts that events bring --------------------------------------------------------------------
    def _heartbeat_sent(self, e: HeartbeatSent, b: StepBuilder[AgentAction]) -> None:
        self.leases[e.link].sent(e.seq, e.now)

    def _heartbeat(self, e: HeartbeatReceived, b: StepBuilder[AgentAction]) -> None:
        was_up, lease_was = self.peer.is_up(e.now), self.link_state("peer", e.now)
        self.peer.heard(e.now)
        if e.echo is not None:
            self.leases["peer"].acknowledged(e.echo)
        self.peer_term = max(self.peer_term, e.term)
        changed = not was_up or e.active != self.peer_active or lease_was is not self.link_state("peer", e.now) \
            or e.leaving != self.peer_leaving
        self.peer_active = e.active
        if e.leaving and not self.peer_leaving:
            left = " and left the service running there" if e.active else ", nothing runs there"
            b.note(DecisionCode.PEER_LEAVING, f"the peer's agent is stopping{left}")
        self.peer_leaving = e.leaving
        if changed:
            b.act(RunCycleNow())

    def _witness_acked(self, e: WitnessAcked, b: StepBuilder[AgentAction]) -> None:
        was = self.link_state("witness", e.now)
        said = self.witness_peer_active
        if e.seq is not None:
            self.leases["witness"].acknowledged(e.seq)
        self.witness_peer = e.peer
        self.witness_term = max(self.witness_term, e.term, (e.peer.term or 0) if e.peer is not None else 0)
        if was is not self.link_state("witness", e.now) or said is not self.witness_peer_active:
            b.act(RunCycleNow())

    def _rejected(self, e: InputRejected, b: StepBuilder[AgentAction]) -> None:
        code = DropCode(e.reason)
        key = code.value if e.source == "peer" else f"witness_{code.value}"
        self.rejected[key] += 1
        n = self.rejected[key]
        if e.source == "witness" or n in (1, 10, 100) or n % 1000 == 0:  # peer floods are logged sparsely
            b.note(code, f"{e.source} input dropped ({n} so far): {e.detail}")

    # -- the facts a cycle reads ------------------------------------------------------------------------
    def link_state(self, link: str, now: float) -> Liveness:
        """A link as the active sees it: UP while its lease is valid; UNKNOWN while never acknowledged and
        still within the start-up grace (the lease's length from the agent's start); DOWN otherwise."""
        lease = self.leases[link]
        if lease.valid(now):
            return Liveness.UP
        if lease.expires_at is None and now < self.grace_ends:
            return Liveness.UNKNOWN
        return Liveness.DOWN

    @property
    def grace_ends(self) -> float:
        """End of the start-up grace of a link never acknowledged: the agent's start + the lease (module docstring)."""
        return self.watch_started + self.lease_length

    def peer_state(self, now: float, self_active: bool) -> Liveness:
        """The peer as this node must see it (module docstring). The primary: by lease (reaching the
        secondary is its reason to run). The secondary: by the receipt of the primary's heartbeats, with
        ``down_after`` (the primary's silence is its reason to start; hearing the primary only ever makes
        it stop, which needs no proof of contact; a running secondary keeps the service only on the
        witness's verdict and fences when its witness lease lapses). Simple mode: by receipt, ``timeout``.
        ``self_active`` is part of the question for any future rule; today the answer does not depend on it."""
        del self_active
        if self.role.uses_witness and self.role.is_primary:
            return self.link_state("peer", now)
        if self.peer_leaving and self.peer_active is False:  # gone on purpose, runs nothing: no need to wait
            return Liveness.DOWN
        return self.peer.state(now)

    @property
    def peer_left_running(self) -> bool:
        """Did the peer's agent stop leaving the service running there (its last heartbeat: leaving, active)?"""
        return self.peer_leaving and bool(self.peer_active)

    @property
    def witness_peer_active(self) -> bool | None:
        return None if self.witness_peer is None else self.witness_peer.may_be_active

    @property
    def highest_term_seen(self) -> int:
        return max(self.term, self.peer_term, self.witness_term)

    def facts(self, now: float, self_active: bool) -> Facts:
        peer_state = self.peer_state(now, self_active)
        return Facts(peer=peer_state,
                     witness=self.link_state("witness", now) if self.role.uses_witness else Liveness.UNKNOWN,
                     peer_active=self.peer_active if peer_state is Liveness.UP else None,
                     self_active=self_active, peer_up_for=self.peer.up_for(now),
                     witness_peer_active=self.witness_peer_active if self.role.uses_witness else None)

    # -- one cycle: the ordered guards ------------------------------------------------------------------

    def _platform_unavailable(self, e: PlatformUnavailable, b: StepBuilder[AgentAction]) -> None:
        # 1. we cannot see what runs here: decide nothing, keep everything as it is
        self._decided(b, Decision(Action.HOLD, DecisionCode.LOCAL_PLATFORM_UNAVAILABLE,
                                  f"cannot read the managed agents' state from platform.control: {e.error}"))

    def _cycle(self, e: CycleStarted, b: StepBuilder[AgentAction]) -> None:
        # 2. the documented table and the guards of failover_core.decide
        self._verifying = self._acting = self._claiming = None  # a cycle that failed half-way left nothing to wait for
        facts = self.facts(e.now, e.managed.active)
        decision = decide(self.role, facts, self.policy)
        self.deadlines.clear("verify")
        if decision.action is Action.VERIFY:
            # 3. a VERIFY cell: ask the witness; the answer decides (WitnessAnswered)
            self._verifying = _Verification(facts, e.managed)
            b.act(AskWitness(subject=self.config.peer_id))
            return
        self._conclude(b, decision, e.managed, e.now)

    def _witness_answered(self, e: WitnessAnswered, b: StepBuilder[AgentAction]) -> None:
        asked = self._verifying
        if asked is None:
            raise LocalUsageError("WitnessAnswered without a pending AskWitness")
        self._verifying = None
        if e.dropped is not None:
            self._rejected(e.dropped, b)
        if e.answer is not None:
            self.witness_answer = e.answer
            self.witness_term = max(self.witness_term, e.answer.term or 0)
            if e.answer.state is not Liveness.DOWN:  # ask again when the witness's own deadline passes
                self.deadlines.set("verify", e.now + min(e.answer.remaining, self.config.heartbeat_period))
        if self.peer_state(e.now, asked.facts.self_active) is not asked.facts.peer:
            # 4. the primary spoke while we asked: the verdict answers an old question
            self._decided(b, Decision(Action.HOLD, DecisionCode.SECONDARY_VERIFY_RACED,
                                      "the primary was heard during the verification; deciding again"))
            b.act(RunCycleNow())
            return
        decision = decide(self.role, replace(asked.facts, verdict=e.answer.verdict), self.policy) \
            if e.answer is not None else None
        if decision is None or decision.action is Action.VERIFY:
            # 5. no verdict: keep what runs now
            decision = Decision(Action.HOLD, DecisionCode.SECONDARY_VERIFY_FAILED,
                                "the witness did not answer the verification; keeping the current state")
        self._conclude(b, decision, asked.managed, e.now)

    def _decided(self, b: StepBuilder[AgentAction], decision: Decision) -> Decision:
        code = DecisionCode(decision.code)  # every decision code is a member (ValueError: a bug)
        decision = Decision(decision.action, code, decision.reason)
        self.decision = decision
        b.because(code, f"{decision.action.value}: {decision.reason}")
        return decision

    def _conclude(self, b: StepBuilder[AgentAction], decision: Decision, managed: ManagedView, now: float) -> None:
        """Carry the decision: start or stop what needs it (then ManagedRead), or observe at once."""
        if decision.action is Action.START and not managed.active and self.role.uses_witness \
                and self.peer_left_running:
            code = DecisionCode(f"{self.role.value}.peer_left_running")
            decision = Decision(Action.HOLD, code, f"{decision.reason}; but the peer's agent stopped and left the "
                                                   f"service running there: not starting beside it")
        decision = self._decided(b, decision)
        if decision.action is Action.START and managed.startable:
            self._acting = decision
            self.term = self.highest_term_seen + 1  # the fencing token of this start: above every claim seen
            if decision.code == DecisionCode.SECONDARY_VERIFIED_PRIMARY_DOWN:
                self._claiming = managed  # tell the witness first (module docstring)
                b.act(ClaimAtWitness())
            else:
                b.act(StartService())
        elif decision.action is Action.STOP and managed.stoppable:
            self._acting = decision
            b.act(StopService())
        else:
            self._observe(b, decision, managed, (), now)

    def _claimed(self, e: WitnessClaimed, b: StepBuilder[AgentAction]) -> None:
        managed, decision = self._claiming, self._acting
        if managed is None or decision is None:
            raise LocalUsageError("WitnessClaimed without a pending ClaimAtWitness")
        self._claiming = None
        if e.ack is not None:
            self.witness_term = max(self.witness_term, e.ack.term)
            b.act(StartService())
            return
        self._acting = None
        self._conclude(b, Decision(Action.HOLD, DecisionCode.SECONDARY_CLAIM_FAILED,
                                   "the witness did not acknowledge our claim to the service; not starting"),
                       managed, e.now)

    @property
    def claims_active(self) -> bool:
        """Must our heartbeats say "active" although the service may not run yet? From a claim on, until the
        start's result is read."""
        return self._acting is not None and self._acting.action is Action.START

    # -- what the start/stop produced --------------------------------------------------------------------
    def _managed_read(self, e: ManagedRead, b: StepBuilder[AgentAction]) -> None:
        decision = self._acting
        if decision is None:
            raise LocalUsageError("ManagedRead without a pending StartService/StopService")
        self._acting = None
        if decision.code == DecisionCode.LEAVE_HANDOVER:
            # the hand-over's stop is done (or not): tell the witness and the peer first, then the rest
            if e.managed.active:
                b.note(DecisionCode.LEAVE_STOP_FAILED, f"{e.managed.names} still running after the stop: "
                                                       f"leaving it running, the peer is told so")
            b.act(SendLeaving(active=e.managed.active))
        self._observe(b, decision, e.managed, e.acted, e.now)

    # -- leaving (the agent stops cleanly) ---------------------------------------------------------------
    def peer_can_take_over(self, now: float) -> str | None:
        """None when the peer can take the service over now; otherwise why not (module docstring)."""
        if self.peer_leaving:
            return "the peer's agent is stopping too"
        if self.link_state("peer", now) is not Liveness.UP:
            return "the peer has not acknowledged a heartbeat of ours within the lease"
        if self.role.uses_witness and self.link_state("witness", now) is not Liveness.UP:
            return "the witness is not reachable (the peer could not have its takeover verified)"
        return None

    def _leave(self, e: Leave, b: StepBuilder[AgentAction]) -> None:
        self._verifying = self._acting = self._claiming = None  # the loop was ended wherever it was
        self.deadlines.clear("verify")
        self.leaving = True
        if e.managed is None:
            self._decided(b, Decision(Action.HOLD, DecisionCode.LEAVE_PLATFORM_UNAVAILABLE,
                                      "the agent is stopping and cannot read the managed agents' state: stopping "
                                      "nothing, telling the peer the service may run here"))
            b.act(SendLeaving(active=True))
            return
        if not e.managed.active:
            self._decided(b, Decision(Action.HOLD, DecisionCode.LEAVE_PASSIVE,
                                      "the agent is stopping and the service does not run here: telling the "
                                      "witness and the peer"))
            b.act(SendLeaving(active=False))
            return
        why_not = self.peer_can_take_over(e.now)
        if why_not is None and e.managed.stoppable:
            self._acting = self._decided(b, Decision(Action.STOP, DecisionCode.LEAVE_HANDOVER,
                                                     "the agent is stopping and the peer can take over: "
                                                     "handing over"))
            b.act(StopManaged(within=self.config.stop_bound))
            return
        self._decided(b, Decision(Action.HOLD, DecisionCode.LEAVE_KEEP_RUNNING,
                                  f"the agent is stopping but {why_not or 'nothing here can be stopped'}: "
                                  f"the service keeps running here, unguarded until the agent is back"))
        b.act(SendLeaving(active=True))

    def _observe(self, b: StepBuilder[AgentAction], decision: Decision, managed: ManagedView,
                 acted: tuple[str, ...], now: float) -> None:
        missing = managed.missing if decision.action is Action.START else ()
        if missing and missing != self._reported_missing:
            b.note(DecisionCode.LOCAL_MANAGED_MISSING, f"cannot start {', '.join(missing)}: not installed on "
                                                       f"this platform")
        self._reported_missing = missing
        observed = ServiceState.RUNNING if managed.active else ServiceState.STOPPED
        if acted:
            code, reason = TransitionCode(decision.code), decision.reason
        else:  # changed by someone else (an operator, a crash), or the first look after start-up
            code, reason = TransitionCode.OBSERVED, f"managed agent(s) found {observed.value}"
        t = self.service.change(observed, code=code.value, reason=reason, now=now)
        if t is None:
            return
        b.act(SendHeartbeatNow())  # tell the peer at once what we run now
        if t.from_state == ServiceState.UNKNOWN.name and not acted:
            b.note(TransitionCode.OBSERVED, f"first look after start-up: {t.subject} {t.to_state}")
            return  # nothing changed, nothing to alert or notify
        b.changed(t)
        self.terms_by_seq[t.seq] = self.term
        while len(self.terms_by_seq) > KEEP_TERMS:
            self.terms_by_seq.popitem(last=False)
        action = Action.START if observed is ServiceState.RUNNING else Action.STOP
        b.act(RaiseAlert(code=AlertCode.SERVICE_TRANSITION, key=alert_key(self.config.agent_id),
                         context=alert_context(t.code, action, ", ".join(acted) or managed.names), healthy=True))

    # -- the timer ---------------------------------------------------------------------------------------
    def next_deadline(self, now: float) -> float | None:
        """When a fact changes on its own (a liveness deadline) or the witness must be asked again."""
        due = [d for d in (self.peer.next_deadline(now), self.deadlines.earliest()) if d is not None]
        for lease in self.leases.values() if self.role.uses_witness else ():
            ends = lease.expires_at if lease.expires_at is not None else self.grace_ends
            if ends > now:
                due.append(ends)
        return min(due, default=None)

    _HANDLERS = {
        HeartbeatSent: _heartbeat_sent,
        HeartbeatReceived: _heartbeat,
        WitnessAcked: _witness_acked,
        InputRejected: _rejected,
        PlatformUnavailable: _platform_unavailable,
        CycleStarted: _cycle,
        WitnessAnswered: _witness_answered,
        WitnessClaimed: _claimed,
        ManagedRead: _managed_read,
        Leave: _leave,
    }


__all__ = ["SERVICE_MOVES", "AgentDecider", "ServiceState", "config_error_step"]

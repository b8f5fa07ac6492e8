"""AgentDecider with a fake clock: every table cell through its Step, the guards, the agent's own codes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import failover_agent
from failover_agent.codes import AlertCode, DecisionCode, DropCode, TransitionCode
from failover_agent.config import FailoverConfig, parse_agent_config
from failover_agent.decider import AgentDecider, ServiceState, auth_warning_step, config_error_step
from failover_agent.events import (
    AgentState,
    AskWitness,
    ClaimAtWitness,
    CycleStarted,
    HeartbeatReceived,
    HeartbeatSent,
    InputRejected,
    ManagedRead,
    ManagedView,
    PlatformUnavailable,
    RaiseAlert,
    RunCycleNow,
    SendHeartbeatNow,
    StartService,
    StopService,
    WitnessAcked,
    WitnessAnswered,
    WitnessClaimed,
)
from failover_agent.wire import WitnessAck, WitnessAnswer
from failover_core.clock import FakeClock
from failover_core.decide import Facts, Policy, decide
from failover_core.errors import LocalUsageError
from failover_core.liveness import Liveness
from failover_core.step import Step
from failover_core.tables import TABLES, VERIFY_TABLE, Action, Role, Verdict
from failover_core.witness_book import WitnessView

UP, DOWN, UNKNOWN = Liveness.UP, Liveness.DOWN, Liveness.UNKNOWN
TIMEOUT = 4.0  # with heartbeat 1 s and stop_bound 1 s: a lease of 2.642 s, two heartbeats and more
SVC = "svc"
PEER_OF = {Role.PRIMARY: "secondary", Role.SECONDARY: "primary", Role.SIMPLE_PRIMARY: "simple_secondary",
           Role.SIMPLE_SECONDARY: "simple_primary"}


def config(role: Role, **extra: object) -> FailoverConfig:
    data: dict = {"agent_id": role.value, "remote_vip": "ipc://@/peer", "agent_vip_identity": SVC,
                  "heartbeat_period": 1, "timeout": TIMEOUT, **extra}
    if role.uses_witness:
        data.update(simple_behavior=False, witness_vip="ipc://@/witness")
    cfg = parse_agent_config(data, source="test")
    assert isinstance(cfg, FailoverConfig) and cfg.role is role
    return cfg


LEASE = config(Role.PRIMARY).timing.lease  # T - M: the active's right to run after an acknowledged send


def values(codes: type) -> set[str]:
    return {c.value for c in codes}


def view(running: bool, installed: bool = True) -> ManagedView:
    return ManagedView(states=(AgentState(SVC, "uuid-1" if installed else None, running),), names=SVC)


class Node:
    """A decider and a fake clock; ``settle`` moves the peer and witness to UP or DOWN.

    ``hear`` and ``ack`` are the two halves of contact: a heartbeat of the peer received (with the echo
    of our newest heartbeat sent on that link), and the witness's ack of our newest heartbeat to it."""

    def __init__(self, role: Role, **extra: object) -> None:
        self.clock = FakeClock(100.0)
        self.role = role
        self.decider = AgentDecider(config(role, **extra), subject=SVC, now=self.clock.now())
        self.seq = 0

    def send(self, link: str) -> int:
        self.seq += 1
        self.feed(HeartbeatSent(now=self.clock.now(), link=link, seq=self.seq))
        return self.seq

    def hear(self, active: bool = False, *, echo: bool = True, term: int = 0) -> Step:
        """The peer's heartbeat arrives now, echoing our heartbeat sent now (``echo``) or nothing."""
        seq = self.send("peer") if echo else None
        return self.feed(HeartbeatReceived(now=self.clock.now(), active=active, term=term, echo=seq))

    def ack(self, *, peer: WitnessView | None = None, term: int = 0) -> Step:
        """The witness acknowledges our heartbeat sent now, with its word on our peer."""
        seq = self.send("witness")
        return self.feed(WitnessAcked(now=self.clock.now(), seq=seq, term=term, peer=peer))

    def feed(self, event: object) -> Step:
        step = self.decider.handle(event)
        assert isinstance(step, Step)
        return step

    def settle(self, peer: Liveness, witness: Liveness = DOWN, peer_active: bool = False) -> None:
        """Past every start-up grace, then hear the ones that must be UP (the others stay silent: DOWN)."""
        self.clock.advance(2 * TIMEOUT)
        if peer is UP:
            self.hear(peer_active)
        if witness is UP:  # the witness hears (or misses) the peer as we do
            self.ack(peer=peer_view(self.role, active=peer_active) if peer is UP
                     else peer_view(self.role, active=None, state=DOWN, term=None))

    def cycle(self, running: bool, installed: bool = True) -> Step:
        return self.feed(CycleStarted(now=self.clock.now(), managed=view(running, installed)))

    def observe_first(self, running: bool) -> None:
        """The first cycle records what runs (UNKNOWN -> RUNNING/STOPPED) without an alert."""
        self.decider.service.change(ServiceState.RUNNING if running else ServiceState.STOPPED, code="observed",
                                    reason="test set-up", now=self.clock.now())


def peer_view(role: Role, *, active: bool | None, state: Liveness = UP, term: int | None = 0) -> WitnessView:
    """What the witness would say of ``role``'s peer."""
    return WitnessView(node=PEER_OF[role], state=state, term=term, active=active, silent_for=0.0,
                       down_in=0.0 if state is DOWN else TIMEOUT)


def cells() -> list[tuple[Role, tuple[Liveness, ...], object]]:
    return [(role, key, cell) for role, table in TABLES.items() for key, cell in table.items()]


def key_facts(role: Role, key: tuple[Liveness, ...]) -> tuple[Liveness, Liveness]:
    if role is Role.SIMPLE_PRIMARY:
        return UP, DOWN
    if role is Role.SIMPLE_SECONDARY:
        return key[0], DOWN
    return key[0], key[1]


# -- every table cell through the decider ----------------------------------------------------------
@pytest.mark.parametrize(("role", "key", "cell"), cells(), ids=lambda v: getattr(v, "code", None) or str(v))
def test_every_table_cell_through_the_deciders_step(role, key, cell) -> None:
    node = Node(role)
    peer, witness = key_facts(role, key)
    node.settle(peer, witness)
    running_before = cell.action is Action.STOP  # so that the cell has something to do
    node.observe_first(running_before)
    step = node.cycle(running=running_before)
    if cell.action is Action.VERIFY:
        assert step.actions == (AskWitness(subject=PEER_OF[role]),) and step.reason is None
        return
    assert step.reason is not None and step.reason.code == cell.code and step.reason.code in values(DecisionCode)
    assert step.reason.text == f"{cell.action.value}: {cell.reason}"
    assert step.actions == ((StartService(),) if cell.action is Action.START else (StopService(),))
    assert step.transitions == ()
    after = node.feed(ManagedRead(now=node.clock.now(), acted=(SVC,), managed=view(not running_before)))
    assert [(t.from_state, t.to_state, t.code) for t in after.transitions] == [
        ("STOPPED", "RUNNING", cell.code) if cell.action is Action.START else ("RUNNING", "STOPPED", cell.code)]
    assert after.transitions[0].code in values(TransitionCode)
    assert after.of_type(SendHeartbeatNow) == [SendHeartbeatNow()]
    (alert,) = after.of_type(RaiseAlert)
    assert alert.code is AlertCode.SERVICE_TRANSITION and alert.key == f"failover {role.value}" and alert.healthy
    assert SVC in alert.context
    status = node.decider.decision
    assert status is not None and (status.action, status.code) == (cell.action, cell.code)


@pytest.mark.parametrize(("verdict", "cell"), list(VERIFY_TABLE.items()), ids=lambda v: getattr(v, "code", str(v)))
def test_the_secondary_verify_cell_and_the_witness_verdict(verdict, cell) -> None:
    node = Node(Role.SECONDARY)
    node.settle(DOWN, UP)
    node.observe_first(False)
    ask = node.cycle(running=False)
    assert ask.actions == (AskWitness(subject="primary"),)
    state = DOWN if verdict is Verdict.PRIMARY_DOWN else UP
    answer = WitnessAnswer(verdict, state, 0.0 if state is DOWN else 1.5)
    step = node.feed(WitnessAnswered(now=node.clock.now(), answer=answer))
    assert step.reason is not None and step.reason.code == cell.code
    assert node.decider.witness_answer == answer
    if cell.action is Action.START:
        assert step.actions == (ClaimAtWitness(),)  # the witness learns of the takeover before it happens
        assert node.decider.claims_active and node.decider.term == 1
        claimed = node.feed(WitnessClaimed(now=node.clock.now(), ack=WitnessAck(seq=99, term=0, peers=())))
        assert claimed.actions == (StartService(),)
        after = node.feed(ManagedRead(now=node.clock.now(), acted=(SVC,), managed=view(True)))
        assert after.transitions[0].code == "secondary.verified.primary_down"
        assert after.of_type(RaiseAlert)[0].context == f"Primary is inactive starting agent {SVC}"
        assert node.decider.next_deadline(node.clock.now()) == node.clock.now() + LEASE  # the witness lease's end
    else:
        assert step.actions == ()  # nothing runs: nothing to stop
        # ask again when the witness would call the primary down (1.5 s), not a heartbeat later
        assert node.decider.deadlines.get("verify") == node.clock.now() + 1.0  # min(remaining, heartbeat_period)


# -- the guards -----------------------------------------------------------------------------------
@pytest.mark.parametrize("role", list(Role))
def test_startup_guard_holds_until_the_peer_is_heard(role) -> None:
    node = Node(role)
    step = node.cycle(running=False)
    assert step.reason is not None and step.reason.code == f"{role.value}.startup"
    assert step.actions == (SendHeartbeatNow(),) and step.transitions == ()  # first look: no alert, no notify
    assert [n.code for n in step.notes] == ["observed"]
    assert node.decider.service.state is ServiceState.STOPPED


@pytest.mark.parametrize("role", [Role.PRIMARY, Role.SIMPLE_PRIMARY])
def test_handover_guard_waits_for_the_secondary_to_release(role) -> None:
    node = Node(role)
    node.settle(UP, UP, peer_active=True)
    node.observe_first(False)
    held = node.cycle(running=False)
    assert held.reason is not None and held.reason.code == f"{role.value}.handover" and held.actions == ()
    released = node.feed(HeartbeatReceived(now=node.clock.now(), active=False))
    assert released.actions == (RunCycleNow(),)  # the peer's claim changed: decide again at once
    assert node.cycle(running=False).actions == (StartService(),)


@pytest.mark.parametrize("role", [Role.SECONDARY, Role.SIMPLE_SECONDARY])
def test_failback_hold_keeps_the_service_until_the_primary_stayed_up(role) -> None:
    node = Node(role, failback_delay=5)
    node.settle(UP, UP)
    node.observe_first(True)
    held = node.cycle(running=True)
    assert held.reason is not None and held.reason.code == f"{role.value}.failback_hold" and held.actions == ()
    for _ in range(6):  # the primary keeps talking for 6 s
        node.clock.advance(1.0)
        node.hear(False)
        node.ack()
    assert node.cycle(running=True).actions == (StopService(),)


def test_heartbeats_wake_the_loop_only_when_a_fact_changes() -> None:
    node = Node(Role.SIMPLE_SECONDARY)
    now = node.clock.now()
    assert node.hear(True).actions == (RunCycleNow(),)  # peer came up
    node.clock.advance(1)
    assert node.hear(True).empty  # nothing new
    node.clock.advance(1)
    assert node.hear(False).actions == (RunCycleNow(),)  # released
    assert node.ack().actions == (RunCycleNow(),)
    node.clock.advance(1)
    assert node.ack().empty
    assert node.decider.next_deadline(now + 3) == now + 2 + TIMEOUT  # the peer's deadline comes first


# -- the codes the driver used to invent ---------------------------------------------------------------
def test_platform_unavailable_holds_and_is_the_decision() -> None:
    node = Node(Role.PRIMARY)
    step = node.feed(PlatformUnavailable(now=node.clock.now(), error="no answer"))
    assert step.reason is not None and step.reason.code == DecisionCode.LOCAL_PLATFORM_UNAVAILABLE
    assert step.reason.code == "local.platform_unavailable" and "no answer" in step.reason.text
    assert step.actions == () and step.transitions == ()
    assert node.decider.decision is not None and node.decider.decision.action is Action.HOLD


def test_a_verification_raced_by_the_primarys_heartbeat_decides_again() -> None:
    node = Node(Role.SECONDARY)
    node.settle(DOWN, UP)
    node.observe_first(False)
    assert node.cycle(running=False).of_type(AskWitness)
    node.feed(HeartbeatReceived(now=node.clock.now(), active=True))  # the primary speaks while we ask
    answer = WitnessAnswer(Verdict.PRIMARY_DOWN, DOWN, 0.0)
    step = node.feed(WitnessAnswered(now=node.clock.now(), answer=answer))
    assert step.reason is not None and step.reason.code == "secondary.verify_raced"
    assert step.actions == (RunCycleNow(),) and step.transitions == ()
    assert node.decider.service.state is ServiceState.STOPPED


def test_an_unanswered_verification_holds() -> None:
    node = Node(Role.SECONDARY)
    node.settle(DOWN, UP)
    node.observe_first(False)
    node.cycle(running=False)
    step = node.feed(WitnessAnswered(now=node.clock.now(), answer=None))
    assert step.reason is not None and step.reason.code == "secondary.verify_failed" and step.actions == ()
    with pytest.raises(LocalUsageError):  # no question pending
        node.feed(WitnessAnswered(now=node.clock.now(), answer=None))


def test_a_dropped_verdict_is_counted_and_holds() -> None:
    node = Node(Role.SECONDARY)
    node.settle(DOWN, UP)
    node.observe_first(False)
    node.cycle(running=False)
    step = node.feed(WitnessAnswered(now=node.clock.now(), answer=None,
                                     dropped=InputRejected(source="witness", reason="bad_mac", detail="forged")))
    assert step.reason is not None and step.reason.code == "secondary.verify_failed"
    assert [n.code for n in step.notes] == ["bad_mac"]
    assert node.decider.rejected == {"witness_bad_mac": 1}


def test_a_change_made_by_someone_else_is_observed_and_alerted() -> None:
    node = Node(Role.SIMPLE_SECONDARY)
    node.settle(UP)
    node.observe_first(True)  # after a takeover, the primary is back: STOP; an operator already stopped it
    step = node.cycle(running=False)
    assert step.reason is not None and step.reason.code == "simple_secondary.primary_up"
    assert [(t.from_state, t.to_state, t.code) for t in step.transitions] == [("RUNNING", "STOPPED", "observed")]
    assert step.transitions[0].code in values(TransitionCode)
    (alert,) = step.of_type(RaiseAlert)
    assert alert.context == f"Agent {SVC} found stopped (not by the failover agent)"


def test_a_managed_agent_not_installed_is_noted_once() -> None:
    node = Node(Role.SIMPLE_PRIMARY)
    node.settle(UP)
    node.observe_first(False)
    first = node.cycle(running=False, installed=False)
    assert first.actions == () and [n.code for n in first.notes] == ["local.managed_missing"]
    assert node.cycle(running=False, installed=False).notes == ()


def test_rejected_heartbeats_are_counted_and_noted_sparsely() -> None:
    node = Node(Role.SIMPLE_SECONDARY)
    noted = [bool(node.feed(InputRejected(source="peer", reason="replayed")).notes) for _ in range(12)]
    assert noted == [True] + [False] * 8 + [True, False, False]  # the 1st and the 10th
    assert node.decider.rejected == {"replayed": 12}
    assert node.feed(InputRejected(source="witness", reason="malformed")).notes[0].code == DropCode.MALFORMED
    assert node.decider.rejected["witness_malformed"] == 1
    with pytest.raises(ValueError):
        node.feed(InputRejected(source="peer", reason="no_such_code"))


def test_config_error_step_publishes_the_error_unhealthy() -> None:
    step = config_error_step("bad.json: key 'x'")
    assert step.actions == (RaiseAlert(code=AlertCode.CONFIG_ERROR, key="failover config",
                                       context="Configuration error: bad.json: key 'x'", healthy=False),)


def test_no_secret_is_an_alert_at_start_but_the_agent_stays_healthy() -> None:
    step = auth_warning_step("heartbeat_secret is not set")
    assert step.actions == (RaiseAlert(code=AlertCode.HEARTBEAT_AUTH_OFF, key="failover security",
                                       context="SECURITY: heartbeat_secret is not set", healthy=True),)


def test_unknown_event_is_a_local_error() -> None:
    with pytest.raises(LocalUsageError):
        Node(Role.PRIMARY).feed(object())


# -- the codes: every code the decider can produce is a member ------------------------------------------
def test_every_table_cell_code_is_a_decision_code_and_start_stop_cells_are_transition_codes() -> None:
    all_cells = [cell for _, _, cell in cells()] + list(VERIFY_TABLE.values())
    for cell in all_cells:
        assert cell.code in values(DecisionCode), cell.code
        if cell.action in (Action.START, Action.STOP):
            assert cell.code in values(TransitionCode), cell.code
    transition_codes = {c.value for c in TransitionCode} - {"observed", "leave.handover"}  # leaving: not a cell
    assert transition_codes == {c.code for c in all_cells if c.action in (Action.START, Action.STOP)}


def test_every_code_decide_can_return_is_a_decision_code() -> None:
    values = (UP, DOWN, UNKNOWN)
    seen = set()
    for role in Role:
        for peer in values:
            for witness in values:
                for verdict in (None, *Verdict):
                    for peer_active in (None, False, True):
                        for self_active in (False, True):
                            for policy in (Policy(), Policy(failback_delay=10, wait_for_peer_state=True)):
                                facts = Facts(peer=peer, witness=witness, verdict=verdict, peer_active=peer_active,
                                              self_active=self_active, peer_up_for=1.0 if peer is UP else 0.0)
                                seen.add(decide(role, facts, policy).code)
    assert seen <= {c.value for c in DecisionCode}, seen - {c.value for c in DecisionCode}
    agent_own = {"secondary.verify_raced", "secondary.verify_failed", "secondary.claim_failed",
                 "local.platform_unavailable", "local.managed_missing",
                 # leaving (tests/failoveragent/test_agent_leave.py)
                 "primary.peer_left_running", "secondary.peer_left_running", "peer.leaving", "leave.handover",
                 "leave.passive", "leave.keep_running", "leave.stop_failed", "leave.platform_unavailable"}
    assert {c.value for c in DecisionCode} == seen | agent_own  # no member that nothing produces


def test_every_drop_reason_of_the_wire_checks_is_a_drop_code() -> None:
    package = Path(failover_agent.__file__).parent
    sources = [package / "wire.py", package.parent / "failover_core" / "heartbeat_auth.py"]
    reasons = set()
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "RemoteInputError":
                first = node.args[0]
                assert isinstance(first, ast.Constant), f"{path.name}: a RemoteInputError reason is not a literal"
                reasons.add(first.value)
    assert reasons and reasons <= {c.value for c in DropCode}, reasons


def test_alert_contexts_are_keyed_by_transition_codes() -> None:
    from failover_agent import alerts

    assert set(alerts._CONTEXT_BY_CODE) <= set(TransitionCode)


# -- standard mode timing: leases (T - M) for the active, T for the passive, the rejoin guard, terms ------------


def running_primary() -> Node:
    node = Node(Role.PRIMARY)
    node.settle(UP, UP)
    node.observe_first(True)
    assert node.cycle(running=True).reason.code == "primary.secondary_up.witness_up"
    return node


def test_the_lease_and_the_margin_are_the_documented_figures() -> None:
    timing = config(Role.PRIMARY).timing
    assert (timing.down_after, round(timing.lease, 3), round(timing.margin, 3)) == (TIMEOUT, 2.642, 1.358)
    assert round(config(Role.PRIMARY, stop_bound=1.5).timing.lease, 3) == 2.142  # 1.5 s more to stop: 0.5 s less
    assert Node(Role.PRIMARY).decider.leases["peer"].length == LEASE == Node(Role.SECONDARY).decider.leases[
        "witness"].length
    assert Node(Role.SIMPLE_PRIMARY).decider.timing is None  # simple mode: no fencing


def test_a_link_never_acknowledged_is_unknown_for_the_lease_after_the_start_not_the_timeout() -> None:
    """A restarted active that finds the service running holds it (startup) only while it may still be
    within a lease of its first heartbeat: never longer unacknowledged than the lease after its first send."""
    node = Node(Role.PRIMARY)
    started = node.clock.now()
    node.observe_first(True)
    node.send("peer"), node.send("witness")  # sent at the start, never acknowledged
    assert node.cycle(running=True).reason.code == "primary.startup"
    assert node.decider.next_deadline(started) == pytest.approx(started + LEASE)
    node.clock.advance(LEASE - 0.001)
    assert node.cycle(running=True).reason.code == "primary.startup"
    node.clock.advance(0.001)
    step = node.cycle(running=True)  # T - M after the start, not T: fenced in time
    assert step.reason.code == "primary.secondary_down.witness_down" and step.actions == (StopService(),)


def test_a_healthy_active_keeps_its_peer_lease_although_the_echo_lags_a_heartbeat() -> None:
    """The peer echoes our heartbeat in ITS next heartbeat: the echo arrives up to a period after our send,
    and names a send up to a period before the one just gone. With T = 4 s the lease (2.642 s) still outlasts
    the gap to the next echo; only the peer link is answered here (the witness is silent)."""
    node = Node(Role.PRIMARY)
    node.settle(UP, DOWN)
    node.observe_first(True)
    for _ in range(10):  # our heartbeat goes out; the peer's next heartbeat echoes it 0.99 s later
        seq = node.send("peer")
        node.clock.advance(0.99)
        node.feed(HeartbeatReceived(now=node.clock.now(), active=False, echo=seq))
        node.clock.advance(0.01)
        assert node.decider.link_state("peer", node.clock.now()) is UP
        assert node.decider.leases["peer"].remaining(node.clock.now()) == pytest.approx(LEASE - 1.0)
        assert node.cycle(running=True).actions == ()
    # the worst case before the next echo arrives: our newest echoed send was ~2 periods ago
    node.clock.advance(0.99)
    assert node.decider.link_state("peer", node.clock.now()) is UP


def test_the_active_fences_when_nothing_it_sent_is_acknowledged_even_if_it_still_hears_the_peer() -> None:
    node = running_primary()
    sent_at = node.clock.now()  # settle's heartbeats were the last acknowledged ones
    for _ in range(2):  # outgoing cut: the secondary's heartbeats still arrive, with a stale echo
        node.clock.advance(1.0)
        node.send("peer"), node.send("witness")
        node.feed(HeartbeatReceived(now=node.clock.now(), active=False, echo=1))
    node.clock.advance(LEASE - 2.0 - 0.001)
    assert node.cycle(running=True).reason.code == "primary.secondary_up.witness_up"  # the lease still holds
    assert node.decider.next_deadline(node.clock.now()) == pytest.approx(sent_at + LEASE)
    node.clock.advance(0.001)
    assert node.decider.peer.is_up(node.clock.now())  # heard 1 s ago ...
    step = node.cycle(running=True)  # ... but no reason to run: fence
    assert step.reason.code == "primary.secondary_down.witness_down" and step.actions == (StopService(),)


def test_a_late_acknowledgement_extends_the_lease_from_its_send_time_only() -> None:
    node = running_primary()
    node.clock.advance(1.0)
    old = node.send("witness")
    node.clock.advance(1.5)
    node.send("witness")
    node.feed(WitnessAcked(now=node.clock.now(), seq=old))  # acknowledged 1.5 s after it was sent
    assert node.decider.leases["witness"].expires_at == pytest.approx(node.clock.now() - 1.5 + LEASE)
    node.feed(WitnessAcked(now=node.clock.now(), seq=999))  # never sent: ignored
    assert node.decider.leases["witness"].expires_at == pytest.approx(node.clock.now() - 1.5 + LEASE)


def test_the_passive_secondary_calls_the_primary_down_the_timeout_after_its_last_receipt() -> None:
    node = Node(Role.SECONDARY)
    node.settle(UP, UP)
    node.observe_first(False)
    heard = node.clock.now()
    for _ in range(3):  # the witness keeps answering; the primary has gone silent
        node.clock.advance(1.0)
        node.ack()
    node.clock.advance(heard + TIMEOUT - 0.001 - node.clock.now())
    assert node.cycle(running=False).reason.code == "secondary.primary_up.witness_up"  # the lease has passed, T not
    assert node.decider.next_deadline(node.clock.now()) == pytest.approx(heard + TIMEOUT)
    node.clock.advance(0.001)
    node.ack()
    assert node.cycle(running=False).actions == (AskWitness(subject="primary"),)


def test_a_running_secondary_fences_by_lease_too() -> None:
    node = Node(Role.SECONDARY)
    node.settle(DOWN, UP)
    node.observe_first(True)
    node.clock.advance(LEASE)  # its heartbeats to the witness are not acknowledged any more
    step = node.cycle(running=True)
    assert step.reason.code == "secondary.primary_down.witness_down" and step.actions == (StopService(),)


@pytest.mark.parametrize(("view", "expected"), [
    (None, "primary.rejoin"),  # no word on the secondary (yet)
    (dict(active=True), "primary.rejoin"),  # the witness sees it run the service
    (dict(active=None, state=UNKNOWN, term=None), "primary.rejoin"),  # a witness just restarted
    (dict(active=False), "primary.secondary_down.witness_up"),  # it says it runs nothing
    (dict(active=True, state=DOWN), "primary.secondary_down.witness_up"),  # silent past T: fenced by then
])
def test_the_rejoin_guard_follows_the_witnesss_view_of_the_secondary(view, expected) -> None:
    node = Node(Role.PRIMARY)
    node.clock.advance(2 * TIMEOUT)
    node.observe_first(False)
    node.ack(peer=None if view is None else peer_view(Role.PRIMARY, **view))
    step = node.cycle(running=False)
    assert step.reason.code == expected
    assert step.actions == (() if expected == "primary.rejoin" else (StartService(),))


def test_the_witness_changing_its_word_wakes_the_loop() -> None:
    node = Node(Role.PRIMARY)
    node.clock.advance(2 * TIMEOUT)
    node.ack(peer=peer_view(Role.PRIMARY, active=True))
    node.clock.advance(1.0)
    assert node.ack(peer=peer_view(Role.PRIMARY, active=True)).empty
    assert node.ack(peer=peer_view(Role.PRIMARY, active=False)).actions == (RunCycleNow(),)


def test_a_start_takes_the_highest_term_seen_plus_one_and_the_transition_keeps_it() -> None:
    node = Node(Role.PRIMARY)
    node.settle(UP, UP)
    node.hear(False, term=4)
    node.ack(peer=peer_view(Role.PRIMARY, active=False, term=4), term=6)
    node.observe_first(False)
    assert node.cycle(running=False).actions == (StartService(),)
    assert node.decider.term == 7 and node.decider.highest_term_seen == 7
    after = node.feed(ManagedRead(now=node.clock.now(), acted=(SVC,), managed=view(True)))
    assert node.decider.terms_by_seq[after.transitions[0].seq] == 7


def test_the_verdict_term_counts_as_seen() -> None:
    node = Node(Role.SECONDARY)
    node.settle(DOWN, UP)
    node.observe_first(False)
    node.cycle(running=False)
    node.feed(WitnessAnswered(now=node.clock.now(), answer=WitnessAnswer(Verdict.PRIMARY_DOWN, DOWN, 0.0, 9)))
    assert node.decider.term == 10


def test_a_takeover_the_witness_did_not_acknowledge_does_not_start() -> None:
    node = Node(Role.SECONDARY)
    node.settle(DOWN, UP)
    node.observe_first(False)
    node.cycle(running=False)
    assert node.feed(WitnessAnswered(now=node.clock.now(), answer=WitnessAnswer(Verdict.PRIMARY_DOWN, DOWN, 0.0))) \
        .actions == (ClaimAtWitness(),)
    assert node.decider.claims_active  # heartbeats say "active" from the claim on
    step = node.feed(WitnessClaimed(now=node.clock.now(), ack=None))
    assert step.reason.code == "secondary.claim_failed" and step.actions == ()
    assert not node.decider.claims_active and node.decider.service.state is ServiceState.STOPPED
    with pytest.raises(LocalUsageError):  # no claim pending
        node.feed(WitnessClaimed(now=node.clock.now(), ack=None))

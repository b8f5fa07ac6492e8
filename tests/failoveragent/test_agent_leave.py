"""Leaving (the agent's clean stop, ``Leave``) and a peer heard leaving: the decider, the wire and the witness book.

The chaos finding of seed 20261128: ``vctl stop`` of the active primary's failover agent left the service running
unguarded and the secondary started beside it T later. Now an active node with a peer able to take over hands
over (stop first, then the leaving heartbeat), a passive one says it leaves, and one that cannot hand over keeps
the service running and says so, which keeps the witness and the peer from starting beside it.
"""

from __future__ import annotations

import time

import pytest

from failover_agent.codes import DecisionCode
from failover_agent.decider import ServiceState
from failover_agent.events import (
    AskWitness,
    ClaimAtWitness,
    HeartbeatReceived,
    Leave,
    ManagedRead,
    RaiseAlert,
    SendLeaving,
    StartService,
    StopManaged,
    WitnessAnswered,
)
from failover_agent.wire import HEARTBEAT_FIELDS, Heartbeat, WitnessAnswer, check_heartbeat, make_heartbeat
from failover_core.errors import RemoteInputError
from failover_core.heartbeat_auth import HeartbeatSigner, ReplayWindow
from failover_core.liveness import Liveness
from failover_core.tables import Role, Verdict
from failover_core.witness_book import Claim, WitnessBook

from .test_agent_decider import DOWN, SVC, TIMEOUT, UP, Node, peer_view, view


def code(step) -> str:
    assert step.reason is not None
    return step.reason.code


def active_primary(peer: Liveness = UP, witness: Liveness = UP) -> Node:
    node = Node(Role.PRIMARY)
    node.settle(peer, witness)
    node.observe_first(True)
    return node


def leave(node: Node, running: bool | None) -> object:
    return node.feed(Leave(now=node.clock.now(), managed=None if running is None else view(running)))


# -- our agent leaves ---------------------------------------------------------------------------------------
def test_the_active_hands_over_stop_first_then_leaving_not_active() -> None:
    node = active_primary()
    step = leave(node, running=True)
    assert code(step) == "leave.handover" and step.actions == (StopManaged(within=1.0),)
    assert not node.decider.claims_active  # a stop under way: heartbeats never say "active" for it
    done = node.feed(ManagedRead(now=node.clock.now(), acted=(SVC,), managed=view(False)))
    assert done.actions[0] == SendLeaving(active=False)  # after the stop, before anything else
    assert [(t.to_state, t.code) for t in done.transitions] == [("STOPPED", "leave.handover")]
    alerts = done.of_type(RaiseAlert)
    assert alerts and alerts[0].context == f"Failover agent stopping, handing over stopping agent {SVC}"
    assert node.decider.service.state is ServiceState.STOPPED


def test_a_stop_that_leaves_the_service_running_says_so() -> None:
    node = active_primary()
    leave(node, running=True)
    done = node.feed(ManagedRead(now=node.clock.now(), acted=(SVC,), managed=view(True)))
    assert done.actions[0] == SendLeaving(active=True)
    assert [n.code for n in done.notes] == ["leave.stop_failed"] and done.transitions == ()


@pytest.mark.parametrize(("peer", "witness"), [(UP, DOWN), (DOWN, UP), (DOWN, DOWN)])
def test_with_no_peer_able_to_take_over_the_service_keeps_running(peer, witness) -> None:
    node = active_primary(peer, witness)
    step = leave(node, running=True)
    assert code(step) == "leave.keep_running" and step.actions == (SendLeaving(active=True),)
    assert "unguarded" in step.reason.text


def test_a_peer_leaving_too_cannot_take_over() -> None:
    node = active_primary()
    node.feed(HeartbeatReceived(now=node.clock.now(), active=False, leaving=True))
    assert node.decider.peer_can_take_over(node.clock.now()) == "the peer's agent is stopping too"
    assert code(leave(node, running=True)) == "leave.keep_running"


def test_a_passive_node_says_it_leaves() -> None:
    node = Node(Role.SECONDARY)
    node.settle(UP, UP, peer_active=True)
    step = leave(node, running=False)
    assert code(step) == "leave.passive" and step.actions == (SendLeaving(active=False),)


def test_an_unreadable_platform_stops_nothing_and_claims_the_service() -> None:
    node = active_primary()
    step = leave(node, running=None)
    assert code(step) == "leave.platform_unavailable" and step.actions == (SendLeaving(active=True),)


def test_the_simple_primary_hands_over_to_a_peer_it_hears() -> None:
    node = Node(Role.SIMPLE_PRIMARY)
    node.settle(UP)
    node.observe_first(True)
    assert leave(node, running=True).actions == (StopManaged(within=1.0),)


# -- a peer heard leaving -----------------------------------------------------------------------------------
def passive_secondary() -> Node:
    node = Node(Role.SECONDARY)
    node.settle(UP, UP, peer_active=True)
    node.observe_first(False)
    assert code(node.cycle(running=False)) == "secondary.primary_up.witness_up"
    return node


def test_the_secondary_takes_over_at_once_from_a_primary_that_handed_over() -> None:
    node = passive_secondary()
    heard = node.feed(HeartbeatReceived(now=node.clock.now(), active=False, leaving=True))
    assert [n.code for n in heard.notes] == ["peer.leaving"] and heard.actions  # RunCycleNow
    assert node.decider.peer_state(node.clock.now(), False) is DOWN  # not T later
    assert node.cycle(running=False).actions == (AskWitness(subject="primary"),)
    step = node.feed(WitnessAnswered(now=node.clock.now(), answer=WitnessAnswer(Verdict.PRIMARY_DOWN, DOWN, 0.0)))
    assert step.actions == (ClaimAtWitness(),)


def test_the_secondary_never_starts_beside_a_primary_that_left_the_service_running() -> None:
    node = passive_secondary()
    node.feed(HeartbeatReceived(now=node.clock.now(), active=True, leaving=True))
    assert node.decider.peer_left_running
    assert code(node.cycle(running=False)) == "secondary.primary_up.witness_up"  # heard: up for T, as before
    node.clock.advance(TIMEOUT + 0.1)
    node.ack(peer=peer_view(Role.SECONDARY, active=True))  # the witness keeps the left-running primary up
    assert node.cycle(running=False).actions == (AskWitness(subject="primary"),)
    # a witness that never got the leaving heartbeat calls it down after T: we still hold
    step = node.feed(WitnessAnswered(now=node.clock.now(), answer=WitnessAnswer(Verdict.PRIMARY_DOWN, DOWN, 0.0)))
    assert code(step) == "secondary.peer_left_running" and step.actions == ()
    # the primary's agent is back (an ordinary heartbeat): the guard is gone
    node.hear(active=True)
    assert not node.decider.peer_left_running


def test_the_primary_starts_at_once_when_the_active_secondary_hands_over() -> None:
    node = Node(Role.PRIMARY)
    node.settle(UP, UP, peer_active=True)
    node.observe_first(False)
    assert code(node.cycle(running=False)) == "primary.handover"
    node.hear(active=False)  # its leaving heartbeat (not active), echoing ours
    node.feed(HeartbeatReceived(now=node.clock.now(), active=False, leaving=True))
    assert node.cycle(running=False).actions == (StartService(),)


def test_the_primary_holds_when_the_secondary_left_the_service_running() -> None:
    node = Node(Role.PRIMARY)
    node.settle(UP, UP, peer_active=True)
    node.observe_first(False)
    node.feed(HeartbeatReceived(now=node.clock.now(), active=True, leaving=True))
    node.clock.advance(TIMEOUT)  # its lease lapsed; the witness says (rightly) it cannot rule it out
    node.ack(peer=peer_view(Role.PRIMARY, active=False, state=DOWN, term=None))
    step = node.cycle(running=False)
    assert code(step) == "primary.peer_left_running" and step.actions == ()


def test_the_active_changes_nothing_when_the_passive_leaves() -> None:
    node = active_primary()
    assert code(node.cycle(running=True)) == "primary.secondary_up.witness_up"
    node.feed(HeartbeatReceived(now=node.clock.now(), active=False, leaving=True))
    step = node.cycle(running=True)
    assert code(step) == "primary.secondary_up.witness_up" and step.actions == () and step.transitions == ()


def test_simple_secondary_starts_at_once_after_a_handover_but_not_beside_a_left_running_primary() -> None:
    node = Node(Role.SIMPLE_SECONDARY)
    node.settle(UP, peer_active=True)
    node.observe_first(False)
    node.feed(HeartbeatReceived(now=node.clock.now(), active=True, leaving=True))
    assert node.cycle(running=False).actions == ()  # left running: the timeout applies, as for silence
    node.feed(HeartbeatReceived(now=node.clock.now(), active=False, leaving=True))
    assert node.cycle(running=False).actions == (StartService(),)


def test_every_leave_code_is_a_decision_code() -> None:
    for c in ("leave.handover", "leave.passive", "leave.keep_running", "leave.stop_failed",
              "leave.platform_unavailable", "peer.leaving", "primary.peer_left_running",
              "secondary.peer_left_running"):
        assert DecisionCode(c)


# -- the wire: a compatible extra field ----------------------------------------------------------------------
def hb(seq: int, leaving: bool) -> Heartbeat:
    return Heartbeat("primary", "boot1", seq, time.time(), False, leaving=leaving)


def test_the_leaving_flag_round_trips_and_is_signed() -> None:
    signer = HeartbeatSigner("s")
    msg = make_heartbeat(signer, hb(1, True))
    assert msg["leaving"] is True and msg["leaving_mac"]
    got = check_heartbeat(signer, ReplayWindow(), msg, expected_sender="primary", wall_now=time.time())
    assert got.leaving
    plain = make_heartbeat(signer, hb(2, False))
    assert "leaving" not in plain and "leaving_mac" not in plain
    assert not check_heartbeat(signer, ReplayWindow(), plain, expected_sender="primary", wall_now=time.time()).leaving
    for forged, reason in (({**plain, "leaving": True}, "malformed"),  # someone adds the flag: no leaving_mac
                           ({**plain, "leaving": True, "leaving_mac": plain["mac"]}, "bad_mac")):
        with pytest.raises(RemoteInputError) as e:
            check_heartbeat(signer, ReplayWindow(), forged, expected_sender="primary", wall_now=time.time())
        assert e.value.reason == reason
    with pytest.raises(RemoteInputError) as e:
        check_heartbeat(signer, ReplayWindow(), {**plain, "leaving": "yes"}, expected_sender="primary",
                        wall_now=time.time())
    assert e.value.reason == "malformed"


def test_an_older_receiver_takes_a_leaving_heartbeat_for_an_ordinary_one() -> None:
    """An older agent or witness builds the signed fields from the keys it knows and checks ``mac``."""
    signer = HeartbeatSigner("s")
    msg = make_heartbeat(signer, hb(1, True))
    signer.verify({f: msg[f] for f in HEARTBEAT_FIELDS}, msg["mac"])  # passes: no bad_mac


# -- the witness book ------------------------------------------------------------------------------------
def test_the_witness_calls_a_node_that_left_running_nothing_down_at_once() -> None:
    book = WitnessBook(down_after=TIMEOUT, started_at=0.0)
    book.heard(Claim(group="g", node="primary", term=1, active=True), 10.0)
    book.heard(Claim(group="g", node="primary", term=1, active=False, leaving=True), 10.5)
    v = book.view("g", "primary", 10.5)
    assert v.state is DOWN and v.may_be_active is False


def test_the_witness_never_calls_down_a_node_that_left_the_service_running() -> None:
    book = WitnessBook(down_after=TIMEOUT, started_at=0.0)
    book.heard(Claim(group="g", node="primary", term=1, active=True, leaving=True), 10.0)
    v = book.view("g", "primary", 10.0 + 100 * TIMEOUT)
    assert v.state is UP and v.may_be_active is True and v.down_in == TIMEOUT
    book.heard(Claim(group="g", node="primary", term=1, active=True), 500.0)  # its agent is back
    assert book.view("g", "primary", 500.0 + TIMEOUT + 1).state is DOWN  # ordinary rules again

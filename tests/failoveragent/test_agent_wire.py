"""Heartbeats, witness acks and verdicts: what is accepted, and what is dropped with which reason."""

from __future__ import annotations

import pytest

from failover_agent.alerts import alert_context
from failover_agent.wire import (
    Heartbeat,
    check_ack,
    check_heartbeat,
    check_verdict,
    make_ack,
    make_heartbeat,
    make_verdict,
)
from failover_core.decide import Facts, Policy, decide
from failover_core.errors import RemoteInputError
from failover_core.heartbeat_auth import HeartbeatSigner, ReplayWindow
from failover_core.liveness import Liveness
from failover_core.tables import Action, Role, Verdict
from failover_core.witness_book import WitnessView

SIGNER = HeartbeatSigner("shared")
NOW = 1_700_000_000.0


def hb(seq: int = 1, sender: str = "primary", t: float = NOW, active: bool = True) -> Heartbeat:
    return Heartbeat(sender, "boot-1", seq, t, active)


def reason(fn, *args, **kwargs) -> str:
    with pytest.raises(RemoteInputError) as err:
        fn(*args, **kwargs)
    return err.value.reason


def test_valid_heartbeat_round_trip() -> None:
    msg = make_heartbeat(SIGNER, hb())
    got = check_heartbeat(SIGNER, ReplayWindow(), msg, expected_sender="primary", wall_now=NOW + 0.5)
    assert got == hb()


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda m: m.update(active=False), "bad_mac"),  # a field changed after signing
    (lambda m: m.update(mac="0" * 64), "bad_mac"),
    (lambda m: m.pop("seq"), "malformed"),
    (lambda m: m.update(sender="intruder"), "wrong_sender"),
    (lambda m: m.update(active="yes"), "malformed"),
])
def test_tampered_heartbeats_are_rejected(mutate, expected) -> None:
    msg = make_heartbeat(SIGNER, hb())
    mutate(msg)
    assert reason(check_heartbeat, SIGNER, ReplayWindow(), msg, expected_sender="primary", wall_now=NOW) == expected


def test_forged_with_another_secret_replayed_and_stale_are_rejected() -> None:
    window = ReplayWindow(max_skew=30)
    forged = make_heartbeat(HeartbeatSigner("guess"), hb())
    assert reason(check_heartbeat, SIGNER, window, forged, expected_sender="primary", wall_now=NOW) == "bad_mac"
    real = make_heartbeat(SIGNER, hb(seq=5))
    check_heartbeat(SIGNER, window, real, expected_sender="primary", wall_now=NOW)
    assert reason(check_heartbeat, SIGNER, window, real, expected_sender="primary", wall_now=NOW) == "replayed"
    old = make_heartbeat(SIGNER, hb(seq=6, t=NOW - 100))
    assert reason(check_heartbeat, SIGNER, window, old, expected_sender="primary", wall_now=NOW) == "stale"
    assert reason(check_heartbeat, SIGNER, window, "not a dict", expected_sender="primary", wall_now=NOW) \
        == "malformed"


def test_unsigned_heartbeat_rejected_when_a_secret_is_configured() -> None:
    unsigned = make_heartbeat(HeartbeatSigner(None), hb())
    assert unsigned["mac"] == ""
    assert reason(check_heartbeat, SIGNER, ReplayWindow(), unsigned, expected_sender="primary", wall_now=NOW) \
        == "bad_mac"


def test_heartbeat_carries_term_and_echo_signed() -> None:
    sent = Heartbeat("secondary", "boot-2", 3, NOW, False, term=5, echo_boot="boot-1", echo_seq=41, group="pair-a")
    got = check_heartbeat(SIGNER, ReplayWindow(), make_heartbeat(SIGNER, sent), expected_sender="secondary",
                          wall_now=NOW)
    assert got == sent and got.echo_of("boot-1") == 41
    assert got.echo_of("boot-0") is None  # an echo of another boot of ours renews nothing
    for field, value in (("term", 6), ("echo_seq", 42), ("group", "pair-b")):
        msg = make_heartbeat(SIGNER, sent)
        msg[field] = value
        assert reason(check_heartbeat, SIGNER, ReplayWindow(), msg, expected_sender="secondary", wall_now=NOW) \
            == "bad_mac"
    msg = make_heartbeat(SIGNER, sent)
    msg["term"] = -1
    assert reason(check_heartbeat, SIGNER, ReplayWindow(), msg, expected_sender="secondary", wall_now=NOW) \
        == "malformed"


def test_witness_ack_carries_the_partners_view_and_the_term_signed() -> None:
    view = WitnessView(node="secondary", state=Liveness.UP, term=4, active=True, silent_for=0.25, down_in=4.1)
    msg = make_ack(SIGNER, witness="volttron.central", sender="primary", seq=9, term=4, peers=[view])
    ack = check_ack(SIGNER, msg, sender="primary", seq=9)
    assert ack.term == 4 and ack.peer("secondary") == view and ack.peer("other") is None
    assert ack.peer("secondary").may_be_active is True
    msg["peers"] = msg["peers"].replace('"active":true', '"active":false')  # flipped in transit
    assert reason(check_ack, SIGNER, msg, sender="primary", seq=9) == "bad_mac"
    bad = make_ack(SIGNER, witness="w", sender="primary", seq=9)
    bad["peers"] = "[{}]"
    bad["mac"] = SIGNER.sign({k: bad[k] for k in ("kind", "witness", "sender", "seq", "term", "peers")})
    assert reason(check_ack, SIGNER, bad, sender="primary", seq=9) == "malformed"


def test_witness_ack_must_answer_our_heartbeat() -> None:
    ack = make_ack(SIGNER, witness="volttron.central", sender="secondary", seq=7)
    check_ack(SIGNER, ack, sender="secondary", seq=7)
    assert reason(check_ack, SIGNER, ack, sender="secondary", seq=8) == "malformed"
    forged = make_ack(HeartbeatSigner("guess"), witness="volttron.central", sender="secondary", seq=7)
    assert reason(check_ack, SIGNER, forged, sender="secondary", seq=7) == "bad_mac"


@pytest.mark.parametrize(("state", "verdict"), [
    (Liveness.DOWN, Verdict.PRIMARY_DOWN),
    (Liveness.UP, Verdict.PRIMARY_ALIVE),
    (Liveness.UNKNOWN, Verdict.PRIMARY_ALIVE),  # a witness that has not heard anything yet never confirms
])
def test_verdict_maps_witness_view(state: Liveness, verdict: Verdict) -> None:
    msg = make_verdict(SIGNER, witness="w", subject="primary", nonce="n" * 16, state=state, remaining=1.25)
    answer = check_verdict(SIGNER, msg, subject="primary", nonce="n" * 16)
    assert answer.verdict is verdict and answer.remaining == 1.25 and answer.term is None
    with_term = make_verdict(SIGNER, witness="w", subject="primary", nonce="n" * 16, state=state, remaining=1,
                             term=3)
    assert check_verdict(SIGNER, with_term, subject="primary", nonce="n" * 16).term == 3


def test_verdict_for_another_nonce_or_forged_is_rejected() -> None:
    msg = make_verdict(SIGNER, witness="w", subject="primary", nonce="a" * 16, state=Liveness.DOWN, remaining=0)
    assert reason(check_verdict, SIGNER, msg, subject="primary", nonce="b" * 16) == "malformed"
    msg["state"] = "up"  # flipped in transit
    assert reason(check_verdict, SIGNER, msg, subject="primary", nonce="a" * 16) == "bad_mac"


def test_alert_contexts_are_the_documented_strings() -> None:
    assert alert_context("simple_primary.always", Action.START, "x") == "Starting agent x"
    assert alert_context("simple_secondary.primary_down", Action.START, "x") == "Primary is inactive starting agent x"
    assert alert_context("simple_secondary.primary_up", Action.STOP, "x") == "Primary is active stopping agent x"
    assert alert_context("secondary.verified.primary_down", Action.START, "x") == \
        "Primary is inactive starting agent x"
    assert alert_context("primary.secondary_down.witness_down", Action.STOP, "x") == \
        "Secondary and witness are inactive stopping agent x"


def test_core_guard_a_restarted_primary_waits_to_hear_the_secondary() -> None:
    # the witness says the secondary runs nothing (without that word the rejoin guard holds: see below)
    facts = Facts(peer=Liveness.UNKNOWN, witness=Liveness.UP, witness_peer_active=False)
    assert decide(Role.PRIMARY, facts).action is Action.START  # default policy: unchanged behaviour
    no_word = decide(Role.PRIMARY, Facts(peer=Liveness.UNKNOWN, witness=Liveness.UP))
    assert no_word.action is Action.HOLD and no_word.code == "primary.rejoin"
    held = decide(Role.PRIMARY, facts, Policy(wait_for_peer_state=True))
    assert held.action is Action.HOLD and held.code == "primary.startup"
    simple = decide(Role.SIMPLE_PRIMARY, Facts(peer=Liveness.UNKNOWN), Policy(wait_for_peer_state=True))
    assert simple.action is Action.HOLD
    running = decide(Role.SIMPLE_PRIMARY, Facts(peer=Liveness.UNKNOWN, self_active=True),
                     Policy(wait_for_peer_state=True))
    assert running.action is Action.START  # already running: nothing to wait for
    heard = decide(Role.PRIMARY, Facts(peer=Liveness.UP, witness=Liveness.UP, peer_active=False),
                   Policy(wait_for_peer_state=True))
    assert heard.action is Action.START


def test_failback_delay_holds_the_service_on_the_secondary_until_the_primary_has_stayed_up() -> None:
    policy = Policy(failback_delay=30, wait_for_peer_state=True)  # what the agent builds from its config
    for role in (Role.SIMPLE_SECONDARY, Role.SECONDARY):
        early = decide(role, Facts(peer=Liveness.UP, witness=Liveness.UP, self_active=True, peer_up_for=5), policy)
        assert early.action is Action.HOLD and early.code == f"{role.value}.failback_hold"
        late = decide(role, Facts(peer=Liveness.UP, witness=Liveness.UP, self_active=True, peer_up_for=31), policy)
        assert late.action is Action.STOP

"""The ordered guards in front of the tables: startup, handover, failback hold-down, misuse."""

import pytest

from failover_core import Action, Facts, Liveness, LocalUsageError, Policy, Role, Verdict, decide

UP, DOWN, UNKNOWN = Liveness.UP, Liveness.DOWN, Liveness.UNKNOWN


def test_secondary_that_has_not_heard_the_primary_yet_holds():
    d = decide(Role.SECONDARY, Facts(peer=UNKNOWN, witness=UP))
    assert (d.action, d.code) == (Action.HOLD, "secondary.startup")
    assert "primary" in d.reason


def test_simple_secondary_at_startup_holds_instead_of_starting():
    d = decide(Role.SIMPLE_SECONDARY, Facts(peer=UNKNOWN))
    assert d.action is Action.HOLD


def test_unknown_fact_that_cannot_change_the_answer_is_resolved():
    # primary hears the secondary; the witness is unknown: both substitutions say START
    d = decide(Role.PRIMARY, Facts(peer=UP, witness=UNKNOWN))
    assert d.action is Action.START
    # secondary hears the primary: STOP whatever the witness
    d = decide(Role.SECONDARY, Facts(peer=UP, witness=UNKNOWN))
    assert d.action is Action.STOP


def test_primary_with_nobody_heard_yet_waits():
    # restarted primary: it must not start as a second active on its config alone
    d = decide(Role.PRIMARY, Facts(peer=UNKNOWN, witness=UNKNOWN))
    assert d.action is Action.HOLD
    # ... and once the grace is over and it still hears nobody, it fences itself
    d = decide(Role.PRIMARY, Facts(peer=DOWN, witness=DOWN))
    assert d.action is Action.STOP


def test_primary_waits_for_the_secondary_to_release_before_starting():
    d = decide(Role.PRIMARY, Facts(peer=UP, witness=UP, peer_active=True))
    assert (d.action, d.code) == (Action.HOLD, "primary.handover")
    d = decide(Role.PRIMARY, Facts(peer=UP, witness=UP, peer_active=False))
    assert d.action is Action.START


def test_handover_guard_does_not_stop_a_primary_already_running():
    d = decide(Role.PRIMARY, Facts(peer=UP, witness=UP, peer_active=True, self_active=True))
    assert d.action is Action.START


def test_handover_guard_can_be_switched_off():
    d = decide(Role.PRIMARY, Facts(peer=UP, witness=UP, peer_active=True), Policy(exclusive_handover=False))
    assert d.action is Action.START


def test_failback_hold_down_keeps_the_secondary_running_until_primary_is_stable():
    policy = Policy(failback_delay=10.0)
    held = decide(Role.SECONDARY, Facts(peer=UP, witness=UP, self_active=True, peer_up_for=9.9), policy)
    assert (held.action, held.code) == (Action.HOLD, "secondary.failback_hold")
    released = decide(Role.SECONDARY, Facts(peer=UP, witness=UP, self_active=True, peer_up_for=10.0), policy)
    assert released.action is Action.STOP
    simple = decide(Role.SIMPLE_SECONDARY, Facts(peer=UP, self_active=True, peer_up_for=1.0), policy)
    assert simple.action is Action.HOLD


def test_failback_hold_down_never_starts_a_stopped_secondary():
    d = decide(Role.SECONDARY, Facts(peer=UP, witness=UP, self_active=False, peer_up_for=0.0),
               Policy(failback_delay=10.0))
    assert d.action is Action.STOP


@pytest.mark.parametrize("bad", [
    lambda: Facts(peer="up"),
    lambda: Facts(peer=UP, witness=None),
    lambda: Facts(peer=UP, verdict="primary_down"),
    lambda: Facts(peer=UP, peer_up_for=-1),
    lambda: Policy(failback_delay=-1),
    lambda: decide("primary", Facts(peer=UP)),
])
def test_misuse_is_a_local_error(bad):
    with pytest.raises(LocalUsageError):
        bad()


def test_decision_is_pure():
    f = Facts(peer=DOWN, witness=UP)
    assert decide(Role.SECONDARY, f) == decide(Role.SECONDARY, f)
    with pytest.raises(AttributeError):
        f.peer = UP  # frozen


@pytest.mark.parametrize(("said", "words"), [(True, "says the secondary runs the service"),
                                             (None, "has no word yet")])
def test_primary_back_from_isolation_does_not_start_while_the_witness_may_see_the_secondary_run(said, words):
    # it hears the witness again but not yet the secondary: the table cell alone would say start
    d = decide(Role.PRIMARY, Facts(peer=Liveness.DOWN, witness=Liveness.UP, witness_peer_active=said))
    assert (d.action, d.code) == (Action.HOLD, "primary.rejoin")
    assert words in d.reason


def test_primary_starts_once_the_witness_says_the_secondary_cannot_be_running():
    d = decide(Role.PRIMARY, Facts(peer=Liveness.DOWN, witness=Liveness.UP, witness_peer_active=False))
    assert (d.action, d.code) == (Action.START, "primary.secondary_down.witness_up")


def test_rejoin_guard_never_stops_a_running_primary_nor_touches_simple_mode_or_a_verified_secondary():
    running = decide(Role.PRIMARY, Facts(peer=Liveness.DOWN, witness=Liveness.UP, self_active=True,
                                         witness_peer_active=True))
    assert running.action is Action.START
    simple = decide(Role.SIMPLE_SECONDARY, Facts(peer=Liveness.DOWN, witness=Liveness.UP, witness_peer_active=True))
    assert simple.action is Action.START
    verified = decide(Role.SECONDARY, Facts(peer=Liveness.DOWN, witness=Liveness.UP, verdict=Verdict.PRIMARY_DOWN,
                                            witness_peer_active=True))
    assert (verified.action, verified.code) == (Action.START, "secondary.verified.primary_down")
    # a stale verdict handed to a primary does not bypass the guard
    stale = decide(Role.PRIMARY, Facts(peer=Liveness.DOWN, witness=Liveness.UP, verdict=Verdict.PRIMARY_DOWN))
    assert stale.code == "primary.rejoin"

"""The pure RFC 5798 state machine, driven by hand-made events and a fake time line.

``handle`` returns a failover_core Step: the tests read ``step.actions`` (as a list, ``out``),
``step.transitions``, ``step.reason`` and ``step.notes``."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from failover_core.errors import LocalUsageError
from failover_core.step import Step
from VrrpFailover import machine as m
from VrrpFailover.codes import AdvertDropCode as Drop
from VrrpFailover.codes import DecisionCode as Decision
from VrrpFailover.codes import PacketDropCode as PacketDrop
from VrrpFailover.codes import TransitionCode as Code
from VrrpFailover.config import InstanceConfig
from VrrpFailover.events import (
    AddAddresses,
    AdvertIn,
    Deadline,
    RemoveAddresses,
    SendAdvert,
    SendGarp,
    SetTimer,
    Shutdown,
    Startup,
    TrackResult,
)
from VrrpFailover.machine import VrrpRouter, VrrpState
from VrrpFailover.packet import Advert

VIP = IPv4Address("10.99.0.100")
ME = IPv4Address("10.99.0.12")
LOWER = IPv4Address("10.99.0.11")
HIGHER = IPv4Address("10.99.0.13")
T0 = 1000.0


def cfg(**kw) -> InstanceConfig:
    base = {"name": "VR_1", "vrid": 51, "interface_name": "eth0", "ip_addresses": ["10.99.0.100/24"],
            "priority": 100, "advert_interval": 1}
    base.update(kw)
    return InstanceConfig.model_validate(base)


def advert(prio: int, *, interval: float = 1.0, version: int = 3, vrid: int = 51, addrs=(VIP,)) -> Advert:
    return Advert(version=version, vrid=vrid, priority=prio, interval=interval, addresses=tuple(addrs))


def started(**kw) -> VrrpRouter:
    r = VrrpRouter(cfg(**kw), ME)
    r.handle(Startup(now=T0))
    return r


def master(**kw) -> VrrpRouter:
    r = started(**kw)
    r.handle(Deadline(now=r.deadline))
    assert r.state is VrrpState.MASTER
    return r


def kinds(actions) -> list[type]:
    return [type(a) for a in actions]


def transitions(step: Step) -> list[tuple[str, str, str]]:
    return [(t.from_state, t.to_state, t.code) for t in step.transitions]


def run(r: VrrpRouter, event) -> tuple[Step, list]:
    """Feed one event: the step and its actions as a list."""
    step = r.handle(event)
    assert isinstance(step, Step) and isinstance(step.actions[-1], SetTimer)  # the timer always last
    return step, list(step.actions)


def test_timings_follow_rfc_5798_formulas():
    assert m.skew_time(100, 1.0, 3) == pytest.approx(156 / 256)
    assert m.master_down_interval(100, 1.0, 3) == pytest.approx(3 + 156 / 256)
    assert m.master_down_interval(150, 0.1, 3) == pytest.approx(0.3 + 0.1 * 106 / 256)
    assert m.skew_time(100, 5.0, 2) == pytest.approx(156 / 256)  # v2 skew ignores the interval


def test_startup_goes_backup_with_master_down_timer():
    r = VrrpRouter(cfg(), ME)
    step, out = run(r, Startup(now=T0))
    assert transitions(step) == [("INITIALIZE", "BACKUP", Code.STARTUP_BACKUP)]
    assert out[-1] == SetTimer(T0 + 3 + 156 / 256)
    assert not any(isinstance(a, SendAdvert | AddAddresses) for a in out)
    assert step.reason is not None and step.reason.code == Code.STARTUP_BACKUP


def test_early_deadline_is_a_no_op():
    r = started()
    step, out = run(r, Deadline(now=T0 + 1))
    assert out == [SetTimer(r.deadline)] and r.state is VrrpState.BACKUP
    assert step.reason is None and not step.transitions and not step.notes


def test_master_down_timer_makes_master_and_sends_advert_addresses_garp():
    r = started()
    t = r.deadline
    step, out = run(r, Deadline(now=t))
    assert kinds(out) == [SendAdvert, AddAddresses, SendGarp, SetTimer]
    assert out[0] == SendAdvert(100) and out[1] == AddAddresses((VIP,))
    assert transitions(step) == [("BACKUP", "MASTER", Code.MASTER_DOWN_INTERVAL_EXPIRED)]
    assert out[-1] == SetTimer(t + 1)
    assert step.reason is not None and step.reason.code == Code.MASTER_DOWN_INTERVAL_EXPIRED


def test_master_sends_adverts_on_a_drift_free_schedule():
    r = master(garp_repeat=1)  # one gratuitous ARP round: the repeats have their own tests below
    t = r.deadline
    for _k in range(1, 4):
        step, out = run(r, Deadline(now=t + 0.003))  # woke 3 ms late
        assert out == [SendAdvert(100), SetTimer(t + 1)]
        assert step.reason is None  # routine: no decision line per advert
        t += 1
    # woken far too late (e.g. process stopped): no burst of catch-up adverts
    _, out = run(r, Deadline(now=t + 10))
    assert out == [SendAdvert(100), SetTimer(t + 11)]


def test_backup_resets_timer_and_learns_master_interval_from_advert():
    r = started()
    step, out = run(r, AdvertIn(now=T0 + 2, source=HIGHER, advert=advert(150, interval=0.5)))
    assert r.master_adver_interval == 0.5
    assert out == [SetTimer(T0 + 2 + 1.5 + 0.5 * 156 / 256)]
    assert r.master_address == HIGHER
    assert step.reason is None and not step.notes  # routine: the Master's advert decides nothing new


def test_backup_hearing_priority_zero_takes_over_after_skew_time():
    r = started()
    r.handle(AdvertIn(now=T0 + 1, source=HIGHER, advert=advert(150)))
    step, out = run(r, AdvertIn(now=T0 + 2, source=HIGHER, advert=advert(0)))
    assert out == [SetTimer(T0 + 2 + 156 / 256)]
    assert step.reason is not None and step.reason.code == Decision.MASTER_RESIGNING
    step, out = run(r, Deadline(now=T0 + 2 + 156 / 256))
    assert transitions(step) == [("BACKUP", "MASTER", Code.MASTER_SENT_PRIORITY_ZERO)]


def test_backup_with_preempt_ignores_lower_priority_master_and_preempts():
    r = started(priority=200)
    deadline = r.deadline
    step, out = run(r, AdvertIn(now=T0 + 1, source=HIGHER, advert=advert(100)))
    assert out == [SetTimer(deadline)]  # not reset
    assert step.reason is not None and step.reason.code == Decision.PREEMPT_PENDING
    step, out = run(r, AdvertIn(now=T0 + 2, source=HIGHER, advert=advert(100)))
    assert out == [SetTimer(deadline)] and step.reason is None  # decided already: no second line
    step, out = run(r, Deadline(now=deadline))
    assert transitions(step) == [("BACKUP", "MASTER", Code.PREEMPT_LOWER_PRIORITY_MASTER)]


def test_backup_without_preempt_accepts_lower_priority_master():
    r = started(priority=200, preempt_mode=False)
    for k in range(1, 10):
        _, out = run(r, AdvertIn(now=T0 + k, source=LOWER, advert=advert(100)))
        assert out[-1].at == pytest.approx(T0 + k + r.master_down_interval)
    assert r.state is VrrpState.BACKUP


def test_preempt_delay_holds_preemption_after_start():
    r = started(priority=200, preempt_delay=5)
    r.handle(AdvertIn(now=T0 + 1, source=LOWER, advert=advert(100)))
    assert r.deadline == pytest.approx(T0 + 1 + r.master_down_interval)  # accepted during the delay
    before = r.deadline
    r.handle(AdvertIn(now=T0 + 6, source=LOWER, advert=advert(100)))
    assert r.deadline == before  # after the delay: ignored, we will preempt


def test_equal_priority_backup_stays_backup():
    r = started()
    r.handle(AdvertIn(now=T0 + 1, source=LOWER, advert=advert(100)))
    assert r.deadline == pytest.approx(T0 + 1 + r.master_down_interval)


def test_master_yields_to_higher_priority_and_removes_addresses():
    r = master()
    now = r.deadline
    step, out = run(r, AdvertIn(now=now, source=LOWER, advert=advert(101, interval=0.2)))
    assert kinds(out) == [SendAdvert, RemoveAddresses, SetTimer]  # one last advert (higher_prio_send_advert)
    assert out[0] == SendAdvert(100, stepping_down=True)
    assert transitions(step) == [("MASTER", "BACKUP", Code.HIGHER_PRIORITY_ADVERT)]
    assert out[-1].at == pytest.approx(now + 0.6 + 0.2 * 156 / 256)
    assert step.reason is not None and step.reason.code == Code.HIGHER_PRIORITY_ADVERT


def test_higher_prio_send_advert_false_steps_down_silently_like_keepalived_default():
    r = master(higher_prio_send_advert=False)
    _, out = run(r, AdvertIn(now=r.deadline, source=LOWER, advert=advert(101)))
    assert kinds(out) == [RemoveAddresses, SetTimer] and r.state is VrrpState.BACKUP


def test_master_equal_priority_tie_broken_by_higher_primary_address():
    r = master()
    step, _ = run(r, AdvertIn(now=r.deadline, source=LOWER, advert=advert(100)))
    assert r.state is VrrpState.MASTER and not transitions(step)
    step, _ = run(r, AdvertIn(now=r.deadline, source=HIGHER, advert=advert(100)))
    assert transitions(step) == [("MASTER", "BACKUP", Code.EQUAL_PRIORITY_HIGHER_ADDRESS)]


def test_master_ignores_lower_priority_and_answers_priority_zero_at_once():
    r = master(garp_repeat=1, garp_lower_prio_repeat=0)  # no GARP round pending, no answer to a lower priority
    t = r.deadline - 0.5
    assert list(r.handle(AdvertIn(now=t, source=HIGHER, advert=advert(50))).actions) == [SetTimer(r.deadline)]
    step, out = run(r, AdvertIn(now=t, source=HIGHER, advert=advert(0)))
    assert out == [SendAdvert(100), SetTimer(t + 1)]
    assert step.reason is not None and step.reason.code == Decision.ANSWERED_PRIORITY_ZERO


def test_shutdown_of_master_sends_priority_zero_and_removes_addresses():
    r = master()
    step, out = run(r, Shutdown(now=r.deadline))
    assert kinds(out) == [SendAdvert, RemoveAddresses, SetTimer]
    assert out[0] == SendAdvert(0) and out[-1] == SetTimer(None)
    assert transitions(step) == [("MASTER", "INITIALIZE", Code.SHUTDOWN)]


def test_shutdown_of_backup_sends_nothing():
    r = started()
    step, out = run(r, Shutdown(now=T0 + 1))
    assert kinds(out) == [SetTimer] and out[-1] == SetTimer(None)
    assert transitions(step) == [("BACKUP", "INITIALIZE", Code.SHUTDOWN)]


def test_address_owner_goes_master_at_once_and_never_removes_its_addresses():
    r = VrrpRouter(cfg(priority=255), ME)
    step, out = run(r, Startup(now=T0))
    assert transitions(step) == [("INITIALIZE", "MASTER", Code.STARTUP_ADDRESS_OWNER)]
    assert out[0] == SendAdvert(255)
    # RFC 5798 6.4.1: advert and gratuitous ARP; the addresses are the owner's own: nothing to add
    assert kinds(out) == [SendAdvert, SendGarp, SetTimer]
    _, out = run(r, Shutdown(now=T0 + 1))
    assert SendAdvert(0) in out and not any(isinstance(a, RemoveAddresses) for a in out)


@pytest.mark.parametrize(("adv", "source", "reason", "kw"), [
    (advert(200, version=2), HIGHER, Drop.WRONG_VERSION, {}),
    (advert(200, vrid=52), HIGHER, Drop.WRONG_VRID, {}),
    (advert(200, addrs=(VIP, IPv4Address("10.99.0.101"))), HIGHER, Drop.ADDRESS_LIST_MISMATCH, {}),
    (advert(200, addrs=(IPv4Address("10.99.0.101"),)), HIGHER, Drop.ADDRESS_LIST_MISMATCH, {}),
    (advert(200, version=2, interval=2), HIGHER, Drop.INTERVAL_MISMATCH, {"version": 2}),
    (advert(200), HIGHER, Drop.NOT_A_UNICAST_PEER, {"unicast_peers": ["10.99.0.11"]}),
    (advert(200), ME, Drop.OWN_ADVERT, {}),
])
def test_invalid_adverts_are_dropped_and_counted_without_effect(adv, source, reason, kw):
    for r in (started(**kw), master(**kw)):
        state, deadline = r.state, r.deadline
        step, out = run(r, AdvertIn(now=T0 + 0.5, source=source, advert=adv))
        assert out == [SetTimer(deadline)] and r.state is state
        assert r.drops[reason] == 1
        assert step.reason is None and [n.code for n in step.notes] == [reason]  # the drop is a note


def test_fault_from_master_resigns_and_recovery_waits_as_backup():
    r = master(track_script={"command": "check"})
    step, out = run(r, TrackResult(tracker="script:0", now=r.deadline, ok=False, detail="exit 1"))
    assert kinds(out) == [SendAdvert, RemoveAddresses, SetTimer]
    assert out[0] == SendAdvert(0) and r.state is VrrpState.FAULT and out[-1] == SetTimer(None)
    assert transitions(step) == [("MASTER", "FAULT", Code.TRACK_SCRIPT_FAULT)]
    assert "exit 1" in step.transitions[0].reason
    step, out = run(r, TrackResult(tracker="script:0", now=T0 + 20, ok=True))
    assert transitions(step) == [("FAULT", "BACKUP", Code.TRACK_SCRIPT_RECOVERED)]
    assert out[-1].at == pytest.approx(T0 + 20 + r.master_down_interval)


def test_faulty_router_ignores_adverts_and_timers():
    r = started(track_script={"command": "check", "fault": True})
    r.handle(TrackResult(tracker="script:0", now=T0 + 1, ok=False))
    assert list(r.handle(Deadline(now=T0 + 100)).actions) == [SetTimer(None)]
    assert list(r.handle(AdvertIn(now=T0 + 100, source=HIGHER, advert=advert(0))).actions) == [SetTimer(None)]
    assert r.state is VrrpState.FAULT


def test_priority_change_in_master_is_advertised_at_once():
    r = master(track_script={"command": "check", "weight": -40})
    step, out = run(r, TrackResult(tracker="script:0", now=r.deadline - 0.5, ok=False))
    assert out[0] == SendAdvert(60) and r.priority == 60
    assert step.reason is not None and step.reason.code == Decision.PRIORITY_CHANGED


def test_transition_sequence_is_numbered_in_order():
    r = master()
    r.handle(AdvertIn(now=r.deadline, source=HIGHER, advert=advert(200)))
    r.handle(Shutdown(now=r.deadline))
    seqs = [t.seq for t in r.machine.history]
    assert seqs == [1, 2, 3, 4]
    assert [t.to_state for t in r.machine.history] == ["BACKUP", "MASTER", "BACKUP", "INITIALIZE"]


# ---- track scripts: the effective priority and Fault are the router's ------------------------

@pytest.mark.parametrize(("priority", "weight", "results", "expected"), [
    (100, -40, [], 100),  # no result yet: the base priority
    (100, -40, [False], 60),  # a negative weight applies while the check fails
    (100, -40, [False, True], 100),
    (100, 20, [False], 100),  # a positive weight applies while the check passes
    (100, 20, [False, True], 120),
    (250, 20, [False, True], 254),  # clamped to 254: only the owner has 255
    (10, -50, [False], 1),  # clamped to 1: 0 would mean "resigning"
    (255, -50, [False], 255),  # the address owner keeps 255
])
def test_track_script_weight_moves_the_effective_priority(priority, weight, results, expected):
    r = started(priority=priority, track_script={"command": "check", "weight": weight})
    for k, ok in enumerate(results, start=1):
        r.handle(TrackResult(tracker="script:0", now=T0 + k, ok=ok))
    assert r.priority == r.tracked_priority() == expected
    assert r.state is (VrrpState.MASTER if priority == 255 else VrrpState.BACKUP)  # a weight never faults


def test_priority_change_in_backup_changes_skew_time_but_sends_nothing():
    r = started(track_script={"command": "check", "weight": -40})
    step, out = run(r, TrackResult(tracker="script:0", now=T0 + 1, ok=False, detail="exit 1"))
    assert out == [SetTimer(r.deadline)] and r.priority == 60
    assert r.master_down_interval == pytest.approx(3 + 196 / 256)
    assert step.reason is not None and step.reason.code == Decision.PRIORITY_CHANGED
    assert "100 -> 60" in step.reason.text and "exit 1" in step.reason.text


def test_a_track_result_that_leaves_the_priority_as_it_is_decides_nothing():
    r = master(track_script={"command": "check", "weight": 20})  # +20 applies only while it passes
    step, out = run(r, TrackResult(tracker="script:0", now=r.deadline - 0.5, ok=False))
    assert out == [SetTimer(r.wake_at)] and step.reason is None and r.priority == 100


def test_fault_script_failing_before_start_starts_in_fault():
    r = VrrpRouter(cfg(track_script={"command": "check"}), ME)
    step, out = run(r, TrackResult(tracker="script:0", now=T0, ok=False))
    assert r.state is VrrpState.INITIALIZE and not step.transitions and out == [SetTimer(None)]
    step, out = run(r, Startup(now=T0 + 1))
    assert transitions(step) == [("INITIALIZE", "FAULT", Code.TRACK_SCRIPT_FAULT)]
    assert out == [SetTimer(None)]


def test_a_track_result_without_a_track_script_is_a_driver_bug():
    with pytest.raises(LocalUsageError):
        started().handle(TrackResult(tracker="script:0", now=T0 + 1, ok=False))


# ---- several trackers: rise/fall, init_fail, files, interfaces (keepalived's rules) -------------

def script_result(r: VrrpRouter, key: str, ok: bool, t: float) -> Step:
    return r.handle(TrackResult(now=t, tracker=key, ok=ok, detail="exit 0" if ok else "exit 1"))


def test_fall_and_rise_count_results_in_a_row():
    r = master(track_script={"command": "check", "name": "chk", "fall": 3, "rise": 2})
    t = r.deadline - 0.9
    script_result(r, "script:chk", True, t)
    for k in range(2):  # two failures: not yet
        script_result(r, "script:chk", False, t + 0.01 * k)
        assert r.state is VrrpState.MASTER
    script_result(r, "script:chk", True, t + 0.03)  # a pass in between starts the count again
    script_result(r, "script:chk", False, t + 0.04)
    script_result(r, "script:chk", False, t + 0.05)
    assert r.state is VrrpState.MASTER
    step = script_result(r, "script:chk", False, t + 0.06)  # the third in a row
    assert transitions(step) == [("MASTER", "FAULT", Code.TRACK_SCRIPT_FAULT)]
    assert "script:chk fails (exit 1)" in step.transitions[0].reason
    script_result(r, "script:chk", True, t + 1)
    assert r.state is VrrpState.FAULT  # rise 2: one pass is not enough
    step = script_result(r, "script:chk", True, t + 2)
    assert transitions(step) == [("FAULT", "BACKUP", Code.TRACK_SCRIPT_RECOVERED)]


@pytest.mark.parametrize(("init_fail", "first_state"), [(False, VrrpState.MASTER), (True, VrrpState.FAULT)])
def test_init_fail_starts_failed_and_needs_rise_passes(init_fail, first_state):
    """Without init_fail the script is unknown until its first result (which decides at once, like keepalived's
    init state); with init_fail it starts failed: Fault at start, and back only after ``rise`` passes."""
    r = VrrpRouter(cfg(priority=255, track_script={"command": "check", "rise": 2, "init_fail": init_fail}), ME)
    r.handle(Startup(now=T0))
    assert r.state is first_state
    script_result(r, "script:0", True, T0 + 1)
    assert r.state is first_state  # one pass: init_fail still needs a second
    script_result(r, "script:0", True, T0 + 2)
    assert r.state is VrrpState.MASTER


def test_several_weighted_scripts_add_up_and_a_fault_script_wins():
    r = started(priority=100, track_script=[{"command": "a", "name": "up", "weight": 30},
                                            {"command": "b", "name": "down", "weight": -50},
                                            {"command": "c", "name": "must"}])
    script_result(r, "script:up", True, T0 + 1)
    assert r.priority == 130
    script_result(r, "script:down", False, T0 + 2)
    assert r.priority == 80
    script_result(r, "script:up", False, T0 + 3)
    assert r.priority == 50
    step = script_result(r, "script:must", False, T0 + 4)
    assert r.state is VrrpState.FAULT and transitions(step) == [("BACKUP", "FAULT", Code.TRACK_SCRIPT_FAULT)]


@pytest.mark.parametrize(("weight", "value", "ok", "priority", "fault"), [
    (1, 20, True, 120, False),  # weight defaults to 1: the value is added
    (-2, 10, True, 80, False),
    (10, -30, True, 1, True),  # -300 < -253: a fault (keepalived)
    (10, 30, True, 254, False),  # clamped
    (0, 0, True, 100, False),  # weight 0: 0 is fine ...
    (0, 3, True, 100, True),  # ... anything else is a fault
    (1, None, False, 100, True),  # missing / unreadable / no integer: a fault
])
def test_track_file_value_times_weight(weight, value, ok, priority, fault):
    r = started(track_file={"path": "/run/prio", "weight": weight})
    step, _ = run(r, TrackResult(now=T0 + 1, tracker="file:/run/prio", ok=ok, value=value,
                                 detail=f"holds {value}" if ok else "cannot open: No such file or directory"))
    assert r.priority == priority
    assert (r.state is VrrpState.FAULT) is fault
    if fault:
        assert transitions(step) == [("BACKUP", "FAULT", Code.TRACK_FILE_FAULT)]
        step, _ = run(r, TrackResult(now=T0 + 2, tracker="file:/run/prio", ok=True, value=0, detail="holds 0"))
        assert transitions(step) == [("FAULT", "BACKUP", Code.TRACK_FILE_RECOVERED)]


def test_interface_down_is_a_fault_without_weight_and_a_weight_with_one():
    r = master(track_interface=[{"name": "eth1"}, {"name": "eth2", "weight": -60}])
    step, out = run(r, TrackResult(now=r.deadline - 0.5, tracker="interface:eth2", ok=False, detail="no carrier"))
    assert out[0] == SendAdvert(40) and r.state is VrrpState.MASTER and "interface:eth2 is down" in step.reason.text
    step, out = run(r, TrackResult(now=r.deadline - 0.4, tracker="interface:eth1", ok=False,
                                   detail="administratively down"))
    assert transitions(step) == [("MASTER", "FAULT", Code.TRACK_INTERFACE_FAULT)]
    assert out[0] == SendAdvert(0) and "administratively down" in step.transitions[0].reason
    step, _ = run(r, TrackResult(now=T0 + 20, tracker="interface:eth1", ok=True, detail="up"))
    assert transitions(step) == [("FAULT", "BACKUP", Code.TRACK_INTERFACE_RECOVERED)] and r.priority == 40


def test_recovery_waits_for_every_fault_to_clear():
    r = started(track_script={"command": "c"}, track_interface={"name": "eth1"})
    script_result(r, "script:0", False, T0 + 1)
    run(r, TrackResult(now=T0 + 2, tracker="interface:eth1", ok=False))
    step = script_result(r, "script:0", True, T0 + 3)
    assert r.state is VrrpState.FAULT and not step.transitions  # the interface still makes a fault
    step, _ = run(r, TrackResult(now=T0 + 4, tracker="interface:eth1", ok=True))
    assert transitions(step) == [("FAULT", "BACKUP", Code.TRACK_INTERFACE_RECOVERED)]


def test_a_reading_of_an_unknown_tracker_is_a_driver_bug():
    with pytest.raises(LocalUsageError, match="interface:eth9"):
        started(track_interface={"name": "eth1"}).handle(TrackResult(now=T0 + 1, tracker="interface:eth9", ok=False))


# ---- gratuitous ARP rounds after becoming Master ------------------------------------------

def test_garp_rounds_follow_garp_delay_and_share_the_timer_with_adverts():
    r = started(garp_repeat=3, garp_delay=0.4)
    t = r.deadline
    step, out = run(r, Deadline(now=t))
    assert kinds(out) == [SendAdvert, AddAddresses, SendGarp, SetTimer] and out[-1] == SetTimer(t + 0.4)
    step, out = run(r, Deadline(now=t + 0.4))
    assert out == [SendGarp((VIP,)), SetTimer(t + 0.8)] and step.reason is None  # routine: no line
    step, out = run(r, Deadline(now=t + 0.8))
    assert out == [SendGarp((VIP,)), SetTimer(t + 1)]  # the third and last round
    step, out = run(r, Deadline(now=t + 1))
    assert out == [SendAdvert(100), SetTimer(t + 2)]
    assert r.garp_at is None and r.garp_rounds_left == 0


def test_default_garp_round_goes_out_with_the_first_advert():
    r = started()  # garp_repeat 2, garp_delay 1 s, advert_interval 1 s
    t = r.deadline
    r.handle(Deadline(now=t))
    step, out = run(r, Deadline(now=t + 1.003))
    assert out == [SendAdvert(100), SendGarp((VIP,)), SetTimer(t + 2)] and step.reason is None
    _, out = run(r, Deadline(now=t + 2))
    assert out == [SendAdvert(100), SetTimer(t + 3)]


def test_garp_repeat_1_sends_one_round_only():
    r = started(garp_repeat=1)
    t = r.deadline
    _, out = run(r, Deadline(now=t))
    assert out.count(SendGarp((VIP,))) == 1 and r.garp_at is None and out[-1] == SetTimer(t + 1)


def test_garp_delay_0_sends_the_next_round_at_the_next_wake_up():
    r = started(garp_repeat=2, garp_delay=0)
    t = r.deadline
    _, out = run(r, Deadline(now=t))
    assert out.count(SendGarp((VIP,))) == 1 and out[-1] == SetTimer(t)
    _, out = run(r, Deadline(now=t))
    assert out == [SendGarp((VIP,)), SetTimer(t + 1)]


@pytest.mark.parametrize("leave", ["higher_priority", "shutdown", "fault"])
def test_leaving_master_ends_the_garp_rounds(leave):
    r = started(garp_repeat=5, garp_delay=0.3, track_script={"command": "check"})
    t = r.deadline
    r.handle(Deadline(now=t))
    if leave == "higher_priority":
        r.handle(AdvertIn(now=t + 0.1, source=HIGHER, advert=advert(200)))
    elif leave == "shutdown":
        r.handle(Shutdown(now=t + 0.1))
    else:
        r.handle(TrackResult(tracker="script:0", now=t + 0.1, ok=False))
    assert r.garp_at is None
    for k in range(1, 10):
        assert not r.handle(Deadline(now=t + 0.3 * k)).of_type(SendGarp)


def test_a_new_term_as_master_restarts_the_garp_rounds():
    r = started(garp_repeat=2, garp_delay=0.3)
    t = r.deadline
    r.handle(Deadline(now=t))
    r.handle(AdvertIn(now=t + 0.1, source=HIGHER, advert=advert(200)))  # Backup again
    t2 = r.deadline
    step, out = run(r, Deadline(now=t2))  # no advert since: Master again
    assert transitions(step) == [("BACKUP", "MASTER", Code.MASTER_DOWN_INTERVAL_EXPIRED)]
    assert out.count(SendGarp((VIP,))) == 1 and out[-1] == SetTimer(t2 + 0.3)


# ---- the answer to a lower priority (keepalived's garp_lower_prio_repeat / garp_lower_prio_delay) ----

def test_master_answers_a_lower_priority_with_gratuitous_arp_now_and_one_second_later_by_default():
    r = master(garp_repeat=1)  # the becoming-Master rounds are done: what follows is the answer alone
    assert (r.config.garp_lower_prio_repeat, r.config.garp_lower_prio_delay) == (1, 1.0)  # = garp_repeat/_delay
    r = master()  # garp_repeat 2, garp_delay 1 s: keepalived's default is garp_master_repeat/_delay
    t = r.deadline  # the becoming-Master second round and the next advert are due here
    r.handle(Deadline(now=t))
    assert r.garp_at is None
    step, out = run(r, AdvertIn(now=t + 0.3, source=HIGHER, advert=advert(50)))
    assert out == [SendGarp((VIP,)), SetTimer(t + 1)]  # the round at once; the Adver_Timer is earlier
    assert step.reason is not None and step.reason.code == Decision.LOWER_PRIORITY_ANSWERED
    assert "priority 50 < 100" in step.reason.text and not step.transitions and not step.notes
    _, out = run(r, Deadline(now=t + 1))
    assert out == [SendAdvert(100), SetTimer(t + 1.3)]
    step, out = run(r, Deadline(now=t + 1.3))
    assert out == [SendGarp((VIP,)), SetTimer(t + 2)] and step.reason is None  # the second and last round
    assert r.state is VrrpState.MASTER and r.lp_garp_at is None and not r.drops


def test_garp_lower_prio_repeat_and_delay_set_the_rounds():
    r = master(garp_repeat=1, garp_lower_prio_repeat=3, garp_lower_prio_delay=0.25)
    t = r.deadline - 0.9
    _, out = run(r, AdvertIn(now=t, source=HIGHER, advert=advert(99)))
    assert out == [SendGarp((VIP,)), SetTimer(t + 0.25)]
    _, out = run(r, Deadline(now=t + 0.25))
    assert out == [SendGarp((VIP,)), SetTimer(t + 0.5)]
    _, out = run(r, Deadline(now=t + 0.5))
    assert out == [SendGarp((VIP,)), SetTimer(r.deadline)]  # three rounds, then the Adver_Timer alone


def test_garp_lower_prio_delay_below_the_spacing_is_raised_to_it():
    r = master(garp_repeat=1, garp_lower_prio_repeat=2, garp_lower_prio_delay=0)
    t = r.deadline - 0.9
    _, out = run(r, AdvertIn(now=t, source=HIGHER, advert=advert(99)))
    assert out == [SendGarp((VIP,)), SetTimer(t + m.LOWER_PRIO_GARP_SPACING)]


def test_garp_lower_prio_repeat_0_answers_nothing():
    r = master(garp_repeat=1, garp_lower_prio_repeat=0)
    t = r.deadline - 0.5
    step, out = run(r, AdvertIn(now=t, source=HIGHER, advert=advert(1)))
    assert out == [SetTimer(r.deadline)] and step.reason is None and not step.notes


def test_equal_priority_from_a_lower_address_is_answered_too():
    r = master(garp_repeat=1)
    t = r.deadline - 0.5
    step, out = run(r, AdvertIn(now=t, source=LOWER, advert=advert(100)))
    assert out[0] == SendGarp((VIP,)) and r.state is VrrpState.MASTER
    assert step.reason is not None and "= (lower address)" in step.reason.text


@pytest.mark.parametrize("state", ["backup", "fault"])
def test_only_a_master_answers_a_lower_priority(state):
    r = started(track_script={"command": "check"}, preempt_mode=False)
    if state == "fault":
        r.handle(TrackResult(tracker="script:0", now=T0 + 0.1, ok=False))
    step, _ = run(r, AdvertIn(now=T0 + 0.2, source=HIGHER, advert=advert(50)))
    assert not step.of_type(SendGarp) and r.lp_garp_at is None


def test_a_flood_of_lower_priority_adverts_gets_one_round_per_spacing_is_counted_and_changes_nothing():
    r = master(garp_repeat=1)
    t0 = r.deadline - 0.95
    garps, reasons = 0, []
    for k in range(2000):  # 2000 forged adverts over 1 s, the router's timer served as asked
        now = t0 + k * 0.0005
        while r.wake_at is not None and r.wake_at <= now:
            step = r.handle(Deadline(now=r.wake_at))
            garps += len(step.of_type(SendGarp))
            assert not step.transitions
        step = r.handle(AdvertIn(now=now, source=HIGHER, advert=advert(1 + k % 99)))
        garps += len(step.of_type(SendGarp))
        assert not step.transitions
        if step.reason is not None:
            reasons.append(step.reason.code)
    assert r.state is VrrpState.MASTER
    assert garps <= 1 + 1.0 / m.LOWER_PRIO_GARP_SPACING  # 5 a second at most, however many arrive
    assert reasons == [Decision.LOWER_PRIORITY_ANSWERED]  # one log line; the rest are notes (rate-limited)
    assert r.drops[Drop.LOWER_PRIORITY_RATE_LIMITED] == 1999  # every advert but the first: counted
    assert r.lp_garp_at is not None  # the flood's last round is still due at the end of the spacing


def test_rate_limited_answers_fold_into_one_round_at_the_end_of_the_spacing():
    r = master(garp_repeat=1, garp_lower_prio_repeat=1)
    t = r.deadline - 0.9
    run(r, AdvertIn(now=t, source=HIGHER, advert=advert(50)))
    step, out = run(r, AdvertIn(now=t + 0.05, source=HIGHER, advert=advert(50)))  # the other Master's late GARP
    assert out == [SetTimer(t + m.LOWER_PRIO_GARP_SPACING)] and step.reason is None
    assert [n.code for n in step.notes] == [Drop.LOWER_PRIORITY_RATE_LIMITED]
    run(r, AdvertIn(now=t + 0.1, source=HIGHER, advert=advert(50)))
    step, out = run(r, Deadline(now=t + m.LOWER_PRIO_GARP_SPACING))
    assert out == [SendGarp((VIP,)), SetTimer(r.deadline)]  # one round for both
    assert r.drops[Drop.LOWER_PRIORITY_RATE_LIMITED] == 2


def test_an_answer_round_due_with_a_becoming_master_round_is_sent_once():
    r = started(garp_repeat=2, garp_delay=0.4, garp_lower_prio_repeat=2, garp_lower_prio_delay=0.4)
    t = r.deadline
    r.handle(Deadline(now=t))  # Master: first round; the second at t + 0.4
    r.handle(AdvertIn(now=t, source=HIGHER, advert=advert(50)))  # within the spacing of nothing: at once
    _, out = run(r, Deadline(now=t + 0.4))
    assert out.count(SendGarp((VIP,))) == 1
    assert r.garp_at is None and r.lp_garp_at is None


def test_leaving_master_ends_the_answer_rounds():
    r = master(garp_repeat=1, garp_lower_prio_repeat=5, garp_lower_prio_delay=0.3)
    t = r.deadline - 0.9
    r.handle(AdvertIn(now=t, source=HIGHER, advert=advert(50)))
    assert r.lp_garp_at == pytest.approx(t + 0.3)
    r.handle(AdvertIn(now=t + 0.1, source=HIGHER, advert=advert(200)))
    assert r.state is VrrpState.BACKUP and r.lp_garp_at is None
    for k in range(1, 10):  # (all before the Master_Down_Timer, 3.6 s)
        assert not r.handle(Deadline(now=t + 0.1 + 0.3 * k)).of_type(SendGarp)
    assert r.state is VrrpState.BACKUP


# ---- reason codes ------------------------------------------------------------------------------

def test_reason_codes_keep_their_values():
    """Logs, counters (status file drops), notify hooks and docs use these strings: they do not change."""
    assert [c.value for c in Code] == [
        "startup_address_owner", "startup_backup", "master_down_interval_expired", "master_sent_priority_zero",
        "preempt_lower_priority_master", "higher_priority_advert", "equal_priority_higher_address", "shutdown",
        "track_script_fault", "track_script_recovered", "track_interface_fault", "track_interface_recovered",
        "track_file_fault", "track_file_recovered", "sync_group_fault", "sync_group_recovered", "sync_group_backup"]
    assert [c.value for c in Drop] == [
        "wrong_version", "wrong_vrid", "address_list_mismatch", "interval_mismatch", "not_a_unicast_peer",
        "own_advert", "lower_priority_rate_limited"]
    assert [c.value for c in Decision] == [
        "master_resigning", "preempt_pending", "answered_priority_zero", "priority_changed",
        "lower_priority_answered", "sync_group_wait", "sync_group_holds_fault"]
    assert [c.value for c in PacketDrop] == [
        "short_packet", "not_ipv4", "not_vrrp_protocol", "ttl_not_255", "hop_limit_not_255", "bad_version", "bad_type",
        "bad_length", "bad_checksum", "auth_type_unsupported", "zero_interval", "unknown_vrid"]
    assert all(c.meaning for enum_ in (Code, Decision, Drop, PacketDrop) for c in enum_)


class FakeLink:
    """h11-style: several routers wired through a lossless multicast link on a fake time line."""

    def __init__(self, routers: dict[IPv4Address, VrrpRouter]) -> None:
        self.routers = routers
        self.alive = dict.fromkeys(routers, True)
        self.now = T0
        self.log: list[tuple[float, IPv4Address, int]] = []
        self.garps: list[tuple[float, IPv4Address]] = []  # gratuitous ARP rounds sent: what hosts follow
        self.blocked: set[tuple[IPv4Address, IPv4Address]] = set()  # (src, dst) pairs a cut separates

    def _apply(self, src: IPv4Address, step: Step) -> None:
        for a in step.actions:
            if isinstance(a, SendGarp) and self.alive[src]:
                self.garps.append((self.now, src))
            if isinstance(a, SendAdvert) and self.alive[src]:
                self.log.append((self.now, src, a.priority))
                r = self.routers[src]
                adv = advert(a.priority, interval=r.config.advert_interval)
                for dst, other in self.routers.items():
                    if dst != src and self.alive[dst] and (src, dst) not in self.blocked:
                        self._apply(dst, other.handle(AdvertIn(now=self.now, source=src, advert=adv)))

    def start(self, src: IPv4Address) -> None:
        self._apply(src, self.routers[src].handle(Startup(now=self.now)))

    def run_until(self, t: float) -> None:
        while True:
            due = [(r.wake_at, s) for s, r in self.routers.items() if self.alive[s] and r.wake_at is not None]
            if not due or min(due)[0] > t:
                self.now = t
                return
            at, s = min(due)
            self.now = at
            self._apply(s, self.routers[s].handle(Deadline(now=at)))


def test_two_routers_on_a_fake_link_elect_and_fail_over():
    a, b = VrrpRouter(cfg(priority=150), LOWER), VrrpRouter(cfg(priority=100), ME)
    link = FakeLink({LOWER: a, ME: b})
    link.start(LOWER)
    link.start(ME)
    link.run_until(T0 + 10)
    assert (a.state, b.state) == (VrrpState.MASTER, VrrpState.BACKUP)
    last_a = max(t for t, s, _ in link.log if s == LOWER)
    link.alive[LOWER] = False  # crash: no priority 0
    link.run_until(T0 + 20)
    first_b = min(t for t, s, _ in link.log if s == ME)
    assert first_b - last_a == pytest.approx(b.master_down_interval)


def test_equal_priorities_after_a_split_resolve_to_the_higher_address():
    lo, hi = VrrpRouter(cfg(), LOWER), VrrpRouter(cfg(), HIGHER)
    link = FakeLink({LOWER: lo, HIGHER: hi})
    link.alive[HIGHER] = False
    link.start(LOWER)
    link.run_until(T0 + 5)
    link.alive[HIGHER] = True
    link.alive[LOWER] = False
    link.start(HIGHER)
    link.run_until(T0 + 10)
    assert lo.state is hi.state is VrrpState.MASTER  # split brain while the link is cut
    link.alive[LOWER] = True
    link.run_until(T0 + 13)
    assert (lo.state, hi.state) == (VrrpState.BACKUP, VrrpState.MASTER)


@pytest.mark.parametrize("b_sends_last_advert", [True, False])
def test_after_a_split_the_master_that_stayed_sends_the_last_gratuitous_arp(b_sends_last_advert):
    """Seed 20261128's finding, on a fake link: b was Master during a cut and sent gratuitous ARP (hosts
    follow b); a never stopped being Master. After the heal a hears b's lower priority and answers: the
    last gratuitous ARP on the link is a's, one advert interval at most after the heal. On this link a's
    advert reaches b first: without b's last advert (higher_prio_send_advert) a hears b's next one only
    if b is still Master, which here it is not: then nobody answers (the race the namespaces showed)."""
    a = VrrpRouter(cfg(priority=150, advert_interval=0.1), LOWER)
    b = VrrpRouter(cfg(priority=100, advert_interval=0.1, higher_prio_send_advert=b_sends_last_advert), ME)
    link = FakeLink({LOWER: a, ME: b})
    link.start(LOWER)
    link.start(ME)
    link.run_until(T0 + 5)
    link.blocked = {(LOWER, ME), (ME, LOWER)}  # cut_both
    link.run_until(T0 + 7)  # (b's second gratuitous ARP round is behind us)
    assert a.state is b.state is VrrpState.MASTER and link.garps[-1][1] == ME
    assert a.deadline is not None and b.deadline is not None
    if b.deadline < a.deadline:
        link.run_until(b.deadline + 1e-9)
    assert a.deadline < b.deadline
    link.run_until(a.deadline - 1e-6)
    link.blocked = set()  # the heal, just before a's advert: it reaches b first (b steps down at once)
    heal = link.now
    link.run_until(T0 + 10)
    assert (a.state, b.state) == (VrrpState.MASTER, VrrpState.BACKUP)
    after = [(t, s) for t, s in link.garps if t >= heal]
    if not b_sends_last_advert:
        assert after == []  # the client would stay on b's MAC
        return
    assert after and after[-1][1] == LOWER and after[0][1] == LOWER  # nothing from b after the heal here
    assert after[0][0] - heal <= 0.1 + 1e-9  # b's last advert, answered at once
    assert a.drops == {} or set(a.drops) == {Drop.LOWER_PRIORITY_RATE_LIMITED}

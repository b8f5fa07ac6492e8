"""The pure RFC 5798 state machine, driven by hand-made events and a fake time line."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from VrrpFailover import machine as m
from VrrpFailover.config import InstanceConfig
from VrrpFailover.machine import (
    AddAddresses,
    AdvertIn,
    Changed,
    Deadline,
    FaultChange,
    PriorityChange,
    RemoveAddresses,
    SendAdvert,
    SendGarp,
    SetTimer,
    Shutdown,
    Startup,
    VrrpRouter,
    VrrpState,
)
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


def transitions(actions) -> list[tuple[str, str, str]]:
    return [(a.transition.from_state, a.transition.to_state, a.transition.code) for a in actions
            if isinstance(a, Changed)]


def test_timings_follow_rfc_5798_formulas():
    assert m.skew_time(100, 1.0, 3) == pytest.approx(156 / 256)
    assert m.master_down_interval(100, 1.0, 3) == pytest.approx(3 + 156 / 256)
    assert m.master_down_interval(150, 0.1, 3) == pytest.approx(0.3 + 0.1 * 106 / 256)
    assert m.skew_time(100, 5.0, 2) == pytest.approx(156 / 256)  # v2 skew ignores the interval


def test_startup_goes_backup_with_master_down_timer():
    r = VrrpRouter(cfg(), ME)
    out = r.handle(Startup(now=T0))
    assert transitions(out) == [("INITIALIZE", "BACKUP", m.CODE_STARTUP_BACKUP)]
    assert out[-1] == SetTimer(T0 + 3 + 156 / 256)
    assert not any(isinstance(a, SendAdvert | AddAddresses) for a in out)


def test_early_deadline_is_a_no_op():
    r = started()
    out = r.handle(Deadline(now=T0 + 1))
    assert out == [SetTimer(r.deadline)] and r.state is VrrpState.BACKUP


def test_master_down_timer_makes_master_and_sends_advert_addresses_garp():
    r = started()
    t = r.deadline
    out = r.handle(Deadline(now=t))
    assert kinds(out) == [SendAdvert, AddAddresses, SendGarp, Changed, SetTimer]
    assert out[0] == SendAdvert(100) and out[1] == AddAddresses((VIP,))
    assert transitions(out) == [("BACKUP", "MASTER", m.CODE_MASTER_DOWN)]
    assert out[-1] == SetTimer(t + 1)


def test_master_sends_adverts_on_a_drift_free_schedule():
    r = master()
    t = r.deadline
    for _k in range(1, 4):
        out = r.handle(Deadline(now=t + 0.003))  # woke 3 ms late
        assert out == [SendAdvert(100), SetTimer(t + 1)]
        t += 1
    # woken far too late (e.g. process stopped): no burst of catch-up adverts
    out = r.handle(Deadline(now=t + 10))
    assert out == [SendAdvert(100), SetTimer(t + 11)]


def test_backup_resets_timer_and_learns_master_interval_from_advert():
    r = started()
    out = r.handle(AdvertIn(now=T0 + 2, source=HIGHER, advert=advert(150, interval=0.5)))
    assert r.master_adver_interval == 0.5
    assert out == [SetTimer(T0 + 2 + 1.5 + 0.5 * 156 / 256)]
    assert r.master_address == HIGHER


def test_backup_hearing_priority_zero_takes_over_after_skew_time():
    r = started()
    r.handle(AdvertIn(now=T0 + 1, source=HIGHER, advert=advert(150)))
    out = r.handle(AdvertIn(now=T0 + 2, source=HIGHER, advert=advert(0)))
    assert out == [SetTimer(T0 + 2 + 156 / 256)]
    out = r.handle(Deadline(now=T0 + 2 + 156 / 256))
    assert transitions(out) == [("BACKUP", "MASTER", m.CODE_MASTER_RESIGNED)]


def test_backup_with_preempt_ignores_lower_priority_master_and_preempts():
    r = started(priority=200)
    deadline = r.deadline
    out = r.handle(AdvertIn(now=T0 + 1, source=HIGHER, advert=advert(100)))
    assert out == [SetTimer(deadline)]  # not reset
    out = r.handle(Deadline(now=deadline))
    assert transitions(out) == [("BACKUP", "MASTER", m.CODE_PREEMPT)]


def test_backup_without_preempt_accepts_lower_priority_master():
    r = started(priority=200, preempt_mode=False)
    for k in range(1, 10):
        out = r.handle(AdvertIn(now=T0 + k, source=LOWER, advert=advert(100)))
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
    out = r.handle(AdvertIn(now=now, source=LOWER, advert=advert(101, interval=0.2)))
    assert kinds(out) == [RemoveAddresses, Changed, SetTimer]
    assert transitions(out) == [("MASTER", "BACKUP", m.CODE_HIGHER_PRIORITY)]
    assert out[-1].at == pytest.approx(now + 0.6 + 0.2 * 156 / 256)


def test_master_equal_priority_tie_broken_by_higher_primary_address():
    r = master()
    out = r.handle(AdvertIn(now=r.deadline, source=LOWER, advert=advert(100)))
    assert r.state is VrrpState.MASTER and not transitions(out)
    out = r.handle(AdvertIn(now=r.deadline, source=HIGHER, advert=advert(100)))
    assert transitions(out) == [("MASTER", "BACKUP", m.CODE_EQUAL_HIGHER_ADDRESS)]


def test_master_ignores_lower_priority_and_answers_priority_zero_at_once():
    r = master()
    t = r.deadline - 0.5
    assert r.handle(AdvertIn(now=t, source=HIGHER, advert=advert(50))) == [SetTimer(r.deadline)]
    out = r.handle(AdvertIn(now=t, source=HIGHER, advert=advert(0)))
    assert out == [SendAdvert(100), SetTimer(t + 1)]


def test_shutdown_of_master_sends_priority_zero_and_removes_addresses():
    r = master()
    out = r.handle(Shutdown(now=r.deadline))
    assert kinds(out) == [SendAdvert, RemoveAddresses, Changed, SetTimer]
    assert out[0] == SendAdvert(0) and out[-1] == SetTimer(None)
    assert transitions(out) == [("MASTER", "INITIALIZE", m.CODE_SHUTDOWN)]


def test_shutdown_of_backup_sends_nothing():
    r = started()
    out = r.handle(Shutdown(now=T0 + 1))
    assert kinds(out) == [Changed, SetTimer] and out[-1] == SetTimer(None)


def test_address_owner_goes_master_at_once_and_never_removes_its_addresses():
    r = VrrpRouter(cfg(priority=255), ME)
    out = r.handle(Startup(now=T0))
    assert transitions(out) == [("INITIALIZE", "MASTER", m.CODE_STARTUP_OWNER)]
    assert out[0] == SendAdvert(255)
    out = r.handle(Shutdown(now=T0 + 1))
    assert SendAdvert(0) in out and not any(isinstance(a, RemoveAddresses) for a in out)


@pytest.mark.parametrize(("adv", "source", "reason", "kw"), [
    (advert(200, version=2), HIGHER, m.DROP_WRONG_VERSION, {}),
    (advert(200, vrid=52), HIGHER, m.DROP_WRONG_VRID, {}),
    (advert(200, addrs=(VIP, IPv4Address("10.99.0.101"))), HIGHER, m.DROP_ADDRESS_LIST, {}),
    (advert(200, addrs=(IPv4Address("10.99.0.101"),)), HIGHER, m.DROP_ADDRESS_LIST, {}),
    (advert(200, version=2, interval=2), HIGHER, m.DROP_INTERVAL_MISMATCH, {"version": 2}),
    (advert(200), HIGHER, m.DROP_NOT_A_PEER, {"unicast_peers": ["10.99.0.11"]}),
    (advert(200), ME, m.DROP_OWN, {}),
])
def test_invalid_adverts_are_dropped_and_counted_without_effect(adv, source, reason, kw):
    for r in (started(**kw), master(**kw)):
        state, deadline = r.state, r.deadline
        out = r.handle(AdvertIn(now=T0 + 0.5, source=source, advert=adv))
        assert out == [SetTimer(deadline)] and r.state is state
        assert r.drops[reason] == 1


def test_fault_from_master_resigns_and_recovery_waits_as_backup():
    r = master()
    out = r.handle(FaultChange(now=r.deadline, faulty=True, detail="exit 1"))
    assert kinds(out) == [SendAdvert, RemoveAddresses, Changed, SetTimer]
    assert out[0] == SendAdvert(0) and r.state is VrrpState.FAULT and out[-1] == SetTimer(None)
    out = r.handle(FaultChange(now=T0 + 20, faulty=False))
    assert transitions(out) == [("FAULT", "BACKUP", m.CODE_FAULT_CLEARED)]
    assert out[-1].at == pytest.approx(T0 + 20 + r.master_down_interval)


def test_faulty_router_ignores_adverts_and_timers():
    r = started()
    r.handle(FaultChange(now=T0 + 1, faulty=True))
    assert r.handle(Deadline(now=T0 + 100)) == [SetTimer(None)]
    assert r.handle(AdvertIn(now=T0 + 100, source=HIGHER, advert=advert(0))) == [SetTimer(None)]
    assert r.state is VrrpState.FAULT


def test_priority_change_in_master_is_advertised_at_once():
    r = master()
    out = r.handle(PriorityChange(now=r.deadline - 0.5, priority=60))
    assert out[0] == SendAdvert(60) and r.priority == 60


def test_transition_sequence_is_numbered_in_order():
    r = master()
    r.handle(AdvertIn(now=r.deadline, source=HIGHER, advert=advert(200)))
    r.handle(Shutdown(now=r.deadline))
    seqs = [t.seq for t in r.machine.history]
    assert seqs == [1, 2, 3, 4]
    assert [t.to_state for t in r.machine.history] == ["BACKUP", "MASTER", "BACKUP", "INITIALIZE"]


class FakeLink:
    """h11-style: several routers wired through a lossless multicast link on a fake time line."""

    def __init__(self, routers: dict[IPv4Address, VrrpRouter]) -> None:
        self.routers = routers
        self.alive = dict.fromkeys(routers, True)
        self.now = T0
        self.log: list[tuple[float, IPv4Address, int]] = []

    def _apply(self, src: IPv4Address, out) -> None:
        for a in out:
            if isinstance(a, SendAdvert) and self.alive[src]:
                self.log.append((self.now, src, a.priority))
                r = self.routers[src]
                adv = advert(a.priority, interval=r.config.advert_interval)
                for dst, other in self.routers.items():
                    if dst != src and self.alive[dst]:
                        self._apply(dst, other.handle(AdvertIn(now=self.now, source=src, advert=adv)))

    def start(self, src: IPv4Address) -> None:
        self._apply(src, self.routers[src].handle(Startup(now=self.now)))

    def run_until(self, t: float) -> None:
        while True:
            due = [(r.deadline, s) for s, r in self.routers.items() if self.alive[s] and r.deadline is not None]
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

"""The router's two routine cases without a Step (``VrrpRouter.routine_adver_timer``, ``routine_advert``): each must
do exactly what ``handle`` does for that case, or nothing at all.

Twin routers get the same random event sequence (adverts from a small pool of advert objects, so the same object
comes back as it does from the driver's decode cache; deadlines, early or due; tracker readings that move the
priority; several configs). One only ever uses ``handle``; the other tries the routine path first and uses
``handle`` only when that returns None. Whenever the routine path applied, the twin's Step must be that routine
Step (the one action the driver carries out, no reason, no note, no transition), and after every event both
routers must be in the same state, field by field."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from VrrpFailover.config import InstanceConfig
from VrrpFailover.events import AdvertIn, Deadline, SendAdvert, SetTimer, Startup, TrackResult
from VrrpFailover.machine import VrrpRouter, VrrpState
from VrrpFailover.packet import Advert

VIP = IPv4Address("10.99.0.100")
ME = IPv4Address("10.99.0.12")
SOURCES = (IPv4Address("10.99.0.11"), IPv4Address("10.99.0.13"), ME, IPv4Address("10.99.0.11"))
T0 = 1000.0

ADVERTS = tuple(Advert(version=v, vrid=vrid, priority=p, interval=i, addresses=(VIP,))
                for v in (3, 2) for vrid in (51, 52) for p in (0, 60, 100, 150, 255) for i in (1.0, 0.5))


def cfg(**kw: Any) -> InstanceConfig:
    base = {"name": "VR_1", "vrid": 51, "interface_name": "eth0", "ip_addresses": ["10.99.0.100/24"],
            "priority": 100, "advert_interval": 1, "track_script": {"command": "check", "weight": -50}}
    base.update(kw)
    return InstanceConfig.model_validate(base)


CONFIGS = (
    {},
    {"preempt_mode": False},
    {"version": 2},
    {"garp_repeat": 3, "garp_delay": 0.3, "garp_master_refresh": 2},
    {"garp_lower_prio_repeat": 3, "garp_lower_prio_delay": 0.4},
    {"priority": 150, "preempt_delay": 3},
    {"priority": 150, "preempt_delay": 3, "garp_master_refresh": 1.5},
)


def snapshot(r: VrrpRouter) -> dict[str, Any]:
    out = {k: v for k, v in vars(r).items() if k not in ("machine", "tracking", "config", "drops")}
    out["state"] = r.machine.state
    out["history"] = [(t.from_state, t.to_state, t.code, t.at) for t in r.machine.history]
    out["drops"] = dict(r.drops)
    out["trackers"] = {k: vars(s).copy() for k, s in r.tracking.states.items()}
    return out


event_st = st.one_of(
    st.tuples(st.just("advert"), st.sampled_from(range(len(ADVERTS))), st.sampled_from(range(len(SOURCES))),
              st.floats(0, 1.5)),
    st.tuples(st.just("deadline"), st.one_of(st.floats(-0.2, 0.05), st.floats(0.05, 2.5)), st.just(0), st.just(0.0)),
    st.tuples(st.just("track"), st.booleans(), st.just(0), st.floats(0, 0.5)),
)


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(range(len(CONFIGS))), st.lists(event_st, min_size=1, max_size=60))
def test_the_routine_paths_do_what_handle_does(conf: int, events: list[tuple[Any, ...]]) -> None:
    c = cfg(**CONFIGS[conf])
    plain, fast = VrrpRouter(c, ME), VrrpRouter(c, ME)
    for r in (plain, fast):
        r.handle(Startup(now=T0))
    now = T0
    used = {"advert": 0, "timer": 0}
    for kind, a, b, dt in events:
        if kind == "advert":
            now += dt
            adv, src = ADVERTS[a], SOURCES[b]
            wake = fast.routine_advert(src, adv, now)
            step = plain.handle(AdvertIn(now=now, source=src, advert=adv))
            if wake is None:
                assert fast.handle(AdvertIn(now=now, source=src, advert=adv)) == step
            else:
                used["advert"] += 1
                assert plain.state is VrrpState.BACKUP
                assert list(step.actions) == [SetTimer(wake)]
                assert step.reason is None and not step.notes and not step.transitions
        elif kind == "deadline":
            at = plain.wake_at
            if at is None:
                continue
            now = max(now, at + a)  # early (a no-op for the router) or due
            prio = fast.priority
            wake = fast.routine_adver_timer(now)
            step = plain.handle(Deadline(now=now))
            if wake is None:
                assert fast.handle(Deadline(now=now)) == step
            else:
                used["timer"] += 1
                assert list(step.actions) == [SendAdvert(prio), SetTimer(wake)]
                assert step.reason is None and not step.notes and not step.transitions
        else:
            now += dt
            ev = TrackResult(tracker="script:0", now=now, ok=a)
            assert fast.handle(ev) == plain.handle(ev)
        assert snapshot(fast) == snapshot(plain)


def test_the_routine_paths_apply_to_an_idle_master_and_backup() -> None:
    """They are used at all (the property above would pass if they always said None): the Master's every
    Adver_Timer and the Backup's every advert after the first from its Master."""
    c = cfg()
    m = VrrpRouter(c, ME)
    m.handle(Startup(now=T0))
    m.handle(Deadline(now=m.wake_at))
    assert m.state is VrrpState.MASTER
    assert m.routine_adver_timer(m.deadline) is None  # the second gratuitous ARP round is due with it
    m.handle(Deadline(now=m.deadline))
    for _ in range(5):
        d = m.deadline
        assert m.routine_adver_timer(d) == d + 1.0 == m.wake_at
    assert m.routine_adver_timer(m.deadline - 0.01) is None  # early: handle decides (a no-op)

    b = VrrpRouter(c, ME)
    b.handle(Startup(now=T0))
    adv = Advert(version=3, vrid=51, priority=150, interval=1.0, addresses=(VIP,))
    src = IPv4Address("10.99.0.11")
    assert b.routine_advert(src, adv, T0 + 1) is None  # never seen: handle checks it first
    b.handle(AdvertIn(now=T0 + 1, source=src, advert=adv))
    for k in range(2, 6):
        assert b.routine_advert(src, adv, T0 + k) == T0 + k + b.master_down_interval == b.deadline
    same = Advert(version=3, vrid=51, priority=150, interval=1.0, addresses=(VIP,))
    assert b.routine_advert(src, same, T0 + 7) is None  # an equal advert but another object: handle again
    zero = Advert(version=3, vrid=51, priority=0, interval=1.0, addresses=(VIP,))
    b.handle(AdvertIn(now=T0 + 8, source=src, advert=zero))
    assert b.routine_advert(src, adv, T0 + 8.1) == T0 + 8.1 + b.master_down_interval  # the Master is back
    assert b.routine_advert(IPv4Address("10.99.0.13"), adv, T0 + 9) is None  # another source

    # a lower priority is routine only while preempt_delay holds preemption: never on the routine path
    p = VrrpRouter(cfg(priority=150, preempt_delay=3), ME)
    p.handle(Startup(now=T0))
    low = Advert(version=3, vrid=51, priority=100, interval=1.0, addresses=(VIP,))
    p.handle(AdvertIn(now=T0 + 1, source=src, advert=low))
    assert p.routine_advert(src, low, T0 + 4) is None and p.deadline == T0 + 1 + p.master_down_interval

    # a gratuitous ARP refresh due with the Adver_Timer goes through handle
    r = VrrpRouter(cfg(garp_repeat=1, garp_master_refresh=2), ME)
    r.handle(Startup(now=T0))
    r.handle(Deadline(now=r.wake_at))
    assert r.refresh_at == r.deadline + 1.0
    r.handle(Deadline(now=r.deadline))
    assert r.refresh_at == r.deadline
    assert r.routine_adver_timer(r.deadline) is None

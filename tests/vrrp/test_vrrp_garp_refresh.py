"""garp_master_refresh (keepalived's): a Master sends gratuitous ARP for its addresses every N seconds.

Pure: the schedule on a fake time line. In namespaces: a client whose ARP entry for the VIP holds a wrong MAC
gets the Master's back within the refresh period, and keeps the wrong one with the refresh off."""

from __future__ import annotations

import time
from ipaddress import IPv4Address

import pytest

from failover_core.config import ConfigError
from labs.vrrp import VIP, Lab, ours_config, wait_for
from VrrpFailover.config import InstanceConfig, validate_instances
from VrrpFailover.events import AdvertIn, Deadline, SendGarp, Startup
from VrrpFailover.machine import VrrpRouter, VrrpState
from VrrpFailover.packet import Advert

ME = IPv4Address("10.99.0.12")
HIGHER = IPv4Address("10.99.0.13")
ADDR = IPv4Address("10.99.0.100")
T0 = 1000.0


def master(**kw) -> tuple[VrrpRouter, float]:
    cfg = InstanceConfig.model_validate({"name": "VR_1", "vrid": 51, "interface_name": "eth0",
                                         "ip_addresses": [f"{ADDR}/24"], "advert_interval": 1, **kw})
    r = VrrpRouter(cfg, ME)
    r.handle(Startup(now=T0))
    t = r.deadline
    r.handle(Deadline(now=t))
    assert r.state is VrrpState.MASTER
    return r, t


def garps_until(r: VrrpRouter, end: float) -> list[tuple[float, int]]:
    """Wake the router whenever it asks until ``end``: (time, gratuitous ARP rounds) of each wake-up that sent any."""
    out = []
    while r.wake_at is not None and r.wake_at <= end:
        now = r.wake_at
        n = len(r.handle(Deadline(now=now)).of_type(SendGarp))
        if n:
            out.append((round(now - T0, 6), n))
    return out


def test_no_refresh_by_default():
    r, t = master(garp_repeat=2, garp_delay=1)
    assert [(round(at + T0 - t, 6), n) for at, n in garps_until(r, t + 30)] == [(1.0, 1)]  # the 2nd round only


def test_refresh_every_period_after_the_becoming_master_rounds_with_its_repeat():
    r, t = master(garp_repeat=2, garp_delay=1, garp_master_refresh=5, garp_master_refresh_repeat=3)
    got = [(round(at + T0 - t, 6), n) for at, n in garps_until(r, t + 17)]
    assert got == [(1.0, 1), (6.0, 3), (11.0, 3), (16.0, 3)]


def test_refresh_starts_at_once_after_a_single_becoming_master_round_and_stops_on_leaving_master():
    r, t = master(garp_repeat=1, garp_master_refresh=0.5)
    assert r.refresh_at == pytest.approx(t + 0.5)
    assert [round(at + T0 - t, 6) for at, _ in garps_until(r, t + 1.6)] == [0.5, 1.0, 1.5]
    r.handle(AdvertIn(now=t + 1.7, source=HIGHER, advert=Advert(version=3, vrid=51, priority=200, interval=1.0,
                                                                 addresses=(ADDR,))))
    assert r.state is VrrpState.BACKUP and r.refresh_at is None


def test_a_late_wake_up_neither_drifts_nor_bursts():
    r, t = master(garp_repeat=1, garp_master_refresh=1)
    r.handle(Deadline(now=t + 1.05))  # 50 ms late: the next one stays on the schedule
    assert r.refresh_at == pytest.approx(t + 2)
    step = r.handle(Deadline(now=t + 4.4))  # the loop was late 2.4 s: one refresh, not three
    assert len(step.of_type(SendGarp)) == 1 and r.refresh_at == pytest.approx(t + 5.4)


@pytest.mark.parametrize(("change", "what"), [({"garp_master_refresh": 0.05}, "at least 0.1"),
                                              ({"garp_master_refresh": -1}, "greater than or equal to 0"),
                                              ({"garp_master_refresh_repeat": 0}, "greater than or equal to 1")])
def test_bad_refresh_values_are_refused(change, what):
    base = {"name": "x", "vrid": 1, "interface_name": "eth0", "ip_addresses": ["10.0.0.1"]}
    with pytest.raises(ConfigError, match=what):
        validate_instances({**base, **change}, source="f")


# ---- in namespaces ---------------------------------------------------------------------------------

WRONG_MAC = "02:00:00:00:99:99"
REFRESH = 0.5
WINDOW = REFRESH + 1.5  # generous: the refresh is due within REFRESH of the poisoning


def poison_and_watch(lab: Lab, mac_a: str) -> float | None:
    """Point the client's entry for the VIP at a MAC nobody has (stale: nothing uses it, so the kernel probes
    nothing by itself; a gratuitous ARP overrides it even within locktime); seconds until it holds a's MAC
    again, None within WINDOW."""
    lab.exec("c", ["ip", "neigh", "replace", str(VIP), "lladdr", WRONG_MAC, "dev", "eth0", "nud", "stale"],
             check=True)
    assert lab.neighbour_mac("c") == WRONG_MAC
    t = time.monotonic()
    while time.monotonic() - t < WINDOW:
        if lab.neighbour_mac("c") == mac_a:
            return time.monotonic() - t
        time.sleep(0.02)
    return None


@pytest.mark.integration
@pytest.mark.parametrize("refresh", [REFRESH, 0])
def test_a_client_with_a_wrong_arp_entry_gets_the_masters_mac_back_only_with_the_refresh(lab: Lab, refresh):
    a = lab.start_ours("a", ours_config(priority=150, garp_repeat=1, garp_master_refresh=refresh))
    a.wait_state("Master", 10)
    mac_a = lab.mac("a")
    wait_for(lambda: lab.ping("c"), 5, what="the client reaches the VIP")
    assert lab.neighbour_mac("c") == mac_a
    took = poison_and_watch(lab, mac_a)
    print(f"\ngarp_master_refresh {refresh}: client's entry back on a's MAC after "
          f"{'never' if took is None else f'{took * 1000:.0f} ms'} (window {WINDOW} s)")
    if refresh:
        assert took is not None and took <= REFRESH + 0.5
        assert lab.ping("c")  # and the VIP answers
    else:
        assert took is None and lab.neighbour_mac("c") == WRONG_MAC

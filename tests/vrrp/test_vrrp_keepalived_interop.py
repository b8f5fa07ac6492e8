"""Interop with the reference peer, keepalived 2.2.7, sharing one virtual router in either role."""

from __future__ import annotations

import signal
import time

import pytest

from labs.vrrp import VIP, Lab, keepalived_config, ours_config, wait_for
from VrrpFailover.machine import master_down_interval, skew_time

pytestmark = pytest.mark.integration

ADV = 0.1
MDI_100 = master_down_interval(100, ADV, 3)
SKEW_100 = skew_time(100, ADV, 3)
MARGIN = 1.5


def accepts_quietly(lab: Lab, backup, holder: str, seconds: float) -> None:
    """The backup stays Backup (it accepts the master's adverts) and only the master holds the VIP."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert backup.current_state() == "Backup", backup.log_text()[-2000:]
        assert lab.holders() == [holder]
        time.sleep(0.05)


def test_keepalived_master_ours_backup_takes_over_when_keepalived_is_killed(lab):
    obs = lab.observer("c")
    ka = lab.start_keepalived("a", keepalived_config(priority=150))
    wait_for(lambda: lab.has_vip("a"), 10, what="keepalived Master")
    ours = lab.start_ours("b", ours_config(priority=100))
    ours.wait_state("Backup", 10)
    accepts_quietly(lab, ours, "a", 8 * MDI_100)
    t_kill = ka.kill(signal.SIGKILL)
    ours.wait_state("Master", MDI_100 + MARGIN)
    assert time.monotonic() - t_kill < MDI_100 + MARGIN
    wait_for(lambda: lab.has_vip("b"), 2, what="VIP on ours")
    last_ka = obs.last(lambda s: s.rx.source == lab.address("a"))
    first = obs.wait_first(lambda s: s.rx.source == lab.address("b"), after=t_kill)
    assert MDI_100 - 0.02 <= first.kt - last_ka.kt < MDI_100 + MARGIN
    assert lab.ping("c", VIP, timeout=2)


def test_ours_master_keepalived_backup_takes_over_when_ours_is_killed(lab):
    ours = lab.start_ours("a", ours_config(priority=150))
    ours.wait_state("Master", 10)
    ka = lab.start_keepalived("b", keepalived_config(priority=100))
    ka.wait_state("Backup", 10)
    accepts_quietly(lab, ka, "a", 8 * MDI_100)  # keepalived is strict: it accepts our adverts
    t_kill = ours.kill(signal.SIGKILL)
    ka.wait_state("Master", MDI_100 + MARGIN)
    wait_for(lambda: lab.has_vip("b"), 2, what="VIP on keepalived")
    assert time.monotonic() - t_kill < MDI_100 + MARGIN
    assert lab.ping("c", VIP, timeout=2)


@pytest.mark.parametrize("preempt", [True, False])
def test_higher_priority_keepalived_preempts_ours_unless_nopreempt(lab, preempt):
    ours = lab.start_ours("a", ours_config(priority=100))
    ours.wait_state("Master", 10)
    ka = lab.start_keepalived("b", keepalived_config(priority=150, preempt=preempt))
    if preempt:  # (its Backup phase lasts only 0.34 s: wait for the end state)
        ka.wait_state("Master", 10)
        ours.wait_state("Backup", 5)
        wait_for(lambda: lab.holders() == ["b"], 5, what="VIP on keepalived only")
        assert "[higher_priority_advert]" in ours.log_text()
    else:
        ka.wait_state("Backup", 10)
        accepts_quietly(lab, ka, "a", 8 * MDI_100)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_our_priority_zero_makes_keepalived_take_over_after_skew(lab, sig):
    obs = lab.observer("c")
    ours = lab.start_ours("a", ours_config(priority=150))
    ours.wait_state("Master", 10)
    ka = lab.start_keepalived("b", keepalived_config(priority=100))
    ka.wait_state("Backup", 10)
    t_kill = ours.kill(sig)
    ka.wait_state("Master", SKEW_100 + MARGIN)
    assert ours.wait(5) == 0
    wait_for(lambda: lab.holders() == ["b"], 2, what="VIP on keepalived only")
    assert "priority 0" in ka.log_text()  # keepalived logs the priority-0 advert it received
    zero = obs.wait_first(lambda s: s.rx.source == lab.address("a") and s.rx.advert.priority == 0, after=t_kill)
    first_ka = obs.wait_first(lambda s: s.rx.source == lab.address("b"), after=t_kill)
    assert SKEW_100 - 0.02 <= first_ka.kt - zero.kt < SKEW_100 + MARGIN


def test_keepalived_priority_zero_makes_ours_take_over_after_skew(lab):
    ka = lab.start_keepalived("a", keepalived_config(priority=150))
    wait_for(lambda: lab.has_vip("a"), 10, what="keepalived Master")
    ours = lab.start_ours("b", ours_config(priority=100))
    ours.wait_state("Backup", 10)
    ka.kill(signal.SIGTERM)
    ours.wait_state("Master", SKEW_100 + MARGIN)
    assert "[master_sent_priority_zero]" in ours.log_text()


@pytest.mark.parametrize("ours_host", ["a", "b"])
def test_equal_priorities_resolve_the_same_way_on_both(lab, ours_host):
    """Both Master during a split (ports isolated, carrier up); on healing the higher address
    (host b, 10.99.0.12) stays Master whichever implementation it runs."""
    ka_host = "b" if ours_host == "a" else "a"
    lab.isolate("a", "b")
    ours = lab.start_ours(ours_host, ours_config(priority=100))
    ka = lab.start_keepalived(ka_host, keepalived_config(priority=100))
    ours.wait_state("Master", 10)
    ka.wait_state("Master", 10)
    wait_for(lambda: lab.holders() == ["a", "b"], 5, what="split brain during the split")
    lab.isolate("a", "b", on=False)
    winner, loser = (ours, ka) if ours_host == "b" else (ka, ours)
    loser.wait_state("Backup", 5)
    wait_for(lambda: lab.holders() == ["b"], 5, what="VIP on the higher address only")
    time.sleep(5 * MDI_100)
    assert (winner.current_state(), loser.current_state(), lab.holders()) == ("Master", "Backup", ["b"])


def test_vrrpv2_interop_both_ways(lab):
    """VRRPv2, advert_int 1 s: keepalived accepts our v2 adverts as Backup and takes over on our
    priority 0; then ours (priority 50) accepts keepalived's v2 adverts as Backup and takes over
    when keepalived is killed."""
    ours = lab.start_ours("a", ours_config(priority=150, version=2, advert_interval=1))
    ours.wait_state("Master", 10)
    ka = lab.start_keepalived("b", keepalived_config(priority=100, version=2, advert_int=1))
    ka.wait_state("Backup", 10)
    accepts_quietly(lab, ka, "a", 4.0)  # > its Master_Down_Interval 3.6 s
    ours.kill(signal.SIGTERM)
    ka.wait_state("Master", skew_time(100, 1, 2) + MARGIN)
    wait_for(lambda: lab.holders() == ["b"], 2, what="VIP on keepalived")
    ours2 = lab.start_ours("a", ours_config(priority=50, version=2, advert_interval=1))
    ours2.wait_state("Backup", 10)
    accepts_quietly(lab, ours2, "b", master_down_interval(50, 1, 2) + 0.5)
    ka.kill(signal.SIGKILL)
    ours2.wait_state("Master", master_down_interval(50, 1, 2) + MARGIN)
    wait_for(lambda: lab.has_vip("a"), 2, what="VIP on ours")


def test_unicast_peers_interop(lab):
    """unicast_peers: adverts go to the peer's address (no multicast); keepalived accepts ours and
    takes over on our priority 0; ours accepts keepalived's."""
    obs = lab.observer("c")  # a bystander: it must hear no multicast advert from either side
    a, b = str(lab.address("a")), str(lab.address("b"))
    ours = lab.start_ours("a", ours_config(priority=150, unicast_peers=[b]))
    ours.wait_state("Master", 10)
    ka = lab.start_keepalived("b", keepalived_config(priority=100, unicast_peers=[a]))
    ka.wait_state("Backup", 10)
    accepts_quietly(lab, ka, "a", 8 * MDI_100)
    ours.kill(signal.SIGTERM)
    ka.wait_state("Master", SKEW_100 + MARGIN)
    ours2 = lab.start_ours("a", ours_config(priority=50, unicast_peers=[b]))
    ours2.wait_state("Backup", 10)
    accepts_quietly(lab, ours2, "b", 8 * MDI_100)
    assert obs.snapshot() == []

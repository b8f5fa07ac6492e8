"""Two (or three) of our routers in real network namespaces (advert_interval 0.1 s, v3)."""

from __future__ import annotations

import json
import signal
import socket
import time
from ipaddress import IPv4Address

import pytest

from labs.vrrp import VIP, Lab, ours_config, wait_for
from VrrpFailover.machine import master_down_interval, skew_time
from VrrpFailover.packet import VRRP_GROUP, Advert, encode

pytestmark = pytest.mark.integration

ADV = 0.1
MDI_B = master_down_interval(100, ADV, 3)  # 0.361 s
SKEW_B = skew_time(100, ADV, 3)  # 0.061 s
MARGIN = 1.5  # generous: other suites share the 2 cores


def elect(lab: Lab, **b_extra):
    a = lab.start_ours("a", ours_config(priority=150))
    a.wait_state("Master", 10)
    b = lab.start_ours("b", ours_config(priority=100, **b_extra))
    b.wait_state("Backup", 10)
    return a, b


def test_higher_priority_becomes_master_vip_answers_ping_and_notify_runs(lab, tmp_path):
    out = tmp_path / "notify.log"
    hook = tmp_path / "hook.sh"
    hook.write_text(f'#!/bin/sh\necho "$1 $2 $3" >> {out}\n')
    hook.chmod(0o755)
    b = lab.start_ours("b", ours_config(priority=100, notify=str(hook)))
    a = lab.start_ours("a", ours_config(priority=150, notify=str(hook)))
    wait_for(lambda: lab.holders(hosts=("a", "b")) == ["a"], 10, what="VIP on a only")
    a.wait_state("Master", 5)
    # b may have become Master before a started; either way it must end Backup and hold nothing
    b.wait_state("Backup", 5)
    assert lab.holders() == ["a"]
    assert lab.ping("c", VIP, timeout=2)
    time.sleep(5 * MDI_B)  # stable: no flapping over several Master_Down_Intervals
    assert (a.current_state(), b.current_state(), lab.holders()) == ("Master", "Backup", ["a"])
    wait_for(lambda: out.exists() and "VR_1 BACKUP MASTER" in out.read_text(), 5, what="notify hook")
    lines = out.read_text().splitlines()
    assert lines.count("VR_1 INITIALIZE BACKUP") == 2  # both started as Backup, each hook ran once


def test_sigkill_of_master_backup_takes_over_within_master_down_interval(lab):
    obs = lab.observer("c")
    a, b = elect(lab, garp_repeat=1)  # one gratuitous ARP round only: the check below sees that one
    arp = lab.in_ns("c", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806)))
    arp.bind(("eth0", 0x0806))
    arp.settimeout(0.1)
    t_kill = a.kill(signal.SIGKILL)
    wait_for(lambda: lab.has_vip("b"), MDI_B + MARGIN, what="VIP on b")
    took = time.monotonic() - t_kill
    assert took < MDI_B + MARGIN
    b.wait_state("Master", 2)
    assert "[master_down_interval_expired]" in b.log_text()
    last_a = obs.last(lambda s: s.rx.source == lab.address("a"))
    first_b = obs.wait_first(lambda s: s.rx.source == lab.address("b"), after=t_kill)
    assert last_a is not None and first_b is not None
    gap = first_b.kt - last_a.kt
    assert MDI_B - 0.02 <= gap < MDI_B + MARGIN  # never early: the RFC figure is a lower bound
    # the new Master sent a gratuitous ARP: broadcast request, sender = target = VIP, from b's MAC
    mac_b = bytes.fromhex(lab.mac("b").replace(":", ""))
    garp = b"\xff" * 6 + mac_b + b"\x08\x06" + bytes.fromhex("0001 0800 06 04 0001") + mac_b + VIP.packed + \
        b"\0" * 6 + VIP.packed

    def heard_garp() -> bool:
        try:
            return arp.recv(2048)[:42] == garp
        except TimeoutError:
            return False
    try:
        wait_for(heard_garp, 3, interval=0, what="gratuitous ARP from b")
    finally:
        arp.close()
    assert lab.ping("c", VIP, timeout=2)


def test_restart_after_crash_removes_left_over_vip_and_preempts(lab):
    a, b = elect(lab)
    a.kill(signal.SIGKILL)
    b.wait_state("Master", MDI_B + MARGIN)
    assert lab.has_vip("a")  # the crash left it behind (like keepalived)
    a2 = lab.start_ours("a", ours_config(priority=150))
    wait_for(lambda: "removed left-over address 10.99.0.100/24" in a2.log_text(), 10, what="left-over removal")
    a2.wait_state("Master", 10)  # preempt_mode true (default): the higher priority returns to Master
    b.wait_state("Backup", 5)
    wait_for(lambda: lab.holders() == ["a"], 5, what="VIP on a only")
    assert "[preempt_lower_priority_master]" in a2.log_text()


def test_no_preemption_with_preempt_mode_false(lab):
    a, b = elect(lab)
    a.kill(signal.SIGKILL)
    b.wait_state("Master", MDI_B + MARGIN)
    a2 = lab.start_ours("a", ours_config(priority=150, preempt_mode=False))
    a2.wait_state("Backup", 10)
    wait_for(lambda: lab.holders() == ["b"], 5, what="left-over VIP removed from a")
    time.sleep(10 * MDI_B)
    assert (a2.current_state(), b.current_state(), lab.holders()) == ("Backup", "Master", ["b"])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_sends_priority_zero_and_backup_takes_over_after_skew(lab, sig):
    obs = lab.observer("c")
    a, b = elect(lab)
    t_kill = a.kill(sig)
    wait_for(lambda: lab.has_vip("b"), SKEW_B + MARGIN, what="VIP on b")
    assert time.monotonic() - t_kill < SKEW_B + MARGIN
    assert a.wait(5) == 0
    assert not lab.has_vip("a")  # removed on the way out
    zero = obs.wait_first(lambda s: s.rx.source == lab.address("a") and s.rx.advert.priority == 0, after=t_kill)
    first_b = obs.wait_first(lambda s: s.rx.source == lab.address("b"), after=t_kill)
    assert zero is not None and first_b is not None
    assert zero.at - t_kill < 0.5  # handled at once, not at the next loop tick
    assert SKEW_B - 0.02 <= first_b.kt - zero.kt < SKEW_B + MARGIN
    b.wait_state("Master", 1)
    assert "[master_sent_priority_zero]" in b.log_text()


def test_track_script_fault_moves_the_vip_and_back(lab, tmp_path):
    flag = tmp_path / "healthy"
    flag.touch()
    a = lab.start_ours("a", ours_config(priority=150, track_script={"command": ["test", "-e", str(flag)],
                                                                      "interval": 0.1}))
    a.wait_state("Master", 10)
    b = lab.start_ours("b", ours_config(priority=100))
    b.wait_state("Backup", 10)
    flag.unlink()
    a.wait_state("Fault", 5)
    b.wait_state("Master", 5)
    wait_for(lambda: lab.holders() == ["b"], 5, what="VIP on b only")
    flag.touch()
    a.wait_state("Master", 10)
    wait_for(lambda: lab.holders() == ["a"], 5, what="VIP back on a")


def test_several_virtual_routers_in_one_process(lab):
    def two(p51: int, p52: int):
        return [ours_config(name="VR_51", vrid=51, priority=p51),
                ours_config(name="VR_52", vrid=52, priority=p52, vips=["10.99.0.200/24"])]
    a = lab.start_ours("a", two(150, 100))
    b = lab.start_ours("b", two(100, 150))
    a.wait_state("Master", 10, name="VR_51")
    b.wait_state("Master", 10, name="VR_52")
    a.wait_state("Backup", 10, name="VR_52")
    b.wait_state("Backup", 10, name="VR_51")
    wait_for(lambda: lab.holders() == ["a"] and lab.holders(IPv4Address("10.99.0.200")) == ["b"], 5,
             what="one VIP on each host")


def forged_sender(lab: Lab, ttl: int = 255) -> socket.socket:
    def make() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
        return s
    return lab.in_ns("c", make)


def test_malformed_and_foreign_adverts_are_dropped_counted_and_change_nothing(lab):
    a = lab.start_ours("a", ours_config(priority=150))
    a.wait_state("Master", 10)
    src = lab.address("c")
    good = Advert(version=3, vrid=51, priority=254, interval=0.1, addresses=(VIP,))
    bad_csum = bytearray(encode(good, src))
    bad_csum[7] ^= 0xFF
    wrong_list = encode(Advert(version=3, vrid=51, priority=254, interval=0.1,
                               addresses=(VIP, lab.address("c"))), src)
    v2 = encode(Advert(version=2, vrid=51, priority=254, interval=1, addresses=(VIP,)), src)
    other_vrid = encode(Advert(version=3, vrid=77, priority=254, interval=0.1, addresses=(VIP,)), src)
    ttl1, ttl255 = forged_sender(lab, ttl=1), forged_sender(lab)
    try:
        for _ in range(20):
            ttl1.sendto(encode(good, src), (str(VRRP_GROUP), 0))  # would win, but TTL 1
            for pkt in (bytes(bad_csum), wrong_list, v2, other_vrid, b"\x31\x33"):
                ttl255.sendto(pkt, (str(VRRP_GROUP), 0))
            time.sleep(0.02)
    finally:
        ttl1.close()
        ttl255.close()
    time.sleep(5 * MDI_B)
    assert a.current_state() == "Master" and lab.holders() == ["a"]
    before = a.status_path.stat().st_mtime_ns
    a.kill(signal.SIGUSR1)
    wait_for(lambda: a.status_path.stat().st_mtime_ns != before, 5, what="status refresh")
    st = json.loads(a.status_path.read_text())
    iface = st["interfaces"]["eth0"]["drops"]
    inst = st["instances"]["VR_1"]["drops"]
    assert iface == {"ttl_not_255": 20, "bad_checksum": 20, "unknown_vrid": 20, "short_packet": 20}
    assert inst == {"address_list_mismatch": 20, "wrong_version": 20}


@pytest.mark.parametrize("bad", [{"vrid": 0}, {"priority": 256}, {"advert_interval": 0.001},
                                 {"interface_name": "nosuch0"}, {"ip_addresses": ["10.99.0.300/24"]}])
def test_bad_config_exits_2_and_leaves_the_interface_untouched(lab, bad):
    lab.exec("a", ["ip", "addr", "add", f"{VIP}/24", "dev", "eth0"], check=True)  # e.g. left by a crash
    before = lab.addresses("a")
    rp = lab.start_ours("a", ours_config(**bad))
    assert rp.wait(20) == 2
    assert "configuration error" in rp.log_text()
    assert lab.addresses("a") == before


def fresh_status(rp) -> dict:
    before = rp.status_path.stat().st_mtime_ns
    rp.kill(signal.SIGUSR1)
    wait_for(lambda: rp.status_path.stat().st_mtime_ns != before, 5, what="status refresh")
    return json.loads(rp.status_path.read_text())


def test_idle_backup_sleeps_between_deadlines_but_priority_zero_wakes_it_at_once(lab):
    """advert_interval 1 s: an all-Backup interface reads its queue only at deadlines (about one wake-up
    per Master_Down_Interval - interval, 2.6-3.6 s); a priority-0 advert must still be acted on at
    once: takeover after Skew_Time (0.61 s), far below the 2.6 s a deferred read could take."""
    obs = lab.observer("c")
    a = lab.start_ours("a", ours_config(priority=150, advert_interval=1))
    a.wait_state("Master", 15)
    b = lab.start_ours("b", ours_config(priority=100, advert_interval=1))
    b.wait_state("Backup", 15)
    time.sleep(2)
    s0 = fresh_status(b)
    time.sleep(6)
    s1 = fresh_status(b)
    iface0, iface1 = s0["interfaces"]["eth0"], s1["interfaces"]["eth0"]
    assert iface1["reading"] is False
    assert iface1["received"] - iface0["received"] >= 5  # it heard the adverts ...
    assert iface1["wakeups"] - iface0["wakeups"] <= 4  # ... in a few batches (6 s / 2.6 s, +1 SIGUSR1)
    # ... and fed the Master's repeated advert only as the last of each batch (test_vrrp_drain.py: same decisions)
    assert iface1["repeats"] - iface0["repeats"] >= 2
    # ... waiting in C between decisions (VrrpFailover._idlewait: the CLI's hot loop turns it on)
    assert s1["native_wait"] is True and iface1["native_waits"] - iface0["native_waits"] >= 1
    # ... as the Master sends its routine adverts from C (the >= 5 heard above came from there)
    assert fresh_status(a)["interfaces"]["eth0"]["native_waits"] >= 1
    t_kill = a.kill(signal.SIGTERM)
    b.wait_state("Master", 5)
    zero = obs.wait_first(lambda s: s.rx.source == lab.address("a") and s.rx.advert.priority == 0, after=t_kill)
    first_b = obs.wait_first(lambda s: s.rx.source == lab.address("b"), after=t_kill)
    skew = skew_time(100, 1, 3)
    assert skew - 0.02 <= first_b.kt - zero.kt < skew + 1.0


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_idle_backup_of_several_vrids_wakes_once_per_interface_and_still_takes_over_on_time(lab, sig):
    """Five VRIDs in each process (advert_interval 1 s), a the Master of all: the Backup's first deadline reads
    the queue for every router and moves each one's timer to its new deadline, so the interface wakes about once
    per Master_Down_Interval - interval, not once per router. Each router still takes over on time: SIGKILL ->
    Master_Down_Interval after the Master's last advert of that VRID (3.61 s), SIGTERM -> Skew_Time (0.61 s) after
    its priority-0 advert (the priority-0 socket wakes the Backup at once)."""
    vrids = range(61, 66)

    def configs(priority: int) -> list[dict]:
        return [ours_config(name=f"VR_{k}", vrid=k, priority=priority, advert_interval=1,
                            vips=[f"10.99.0.{140 + k}/24"]) for k in vrids]

    obs = lab.observer("c")
    a = lab.start_ours("a", configs(150))
    for k in vrids:
        a.wait_state("Master", 15, name=f"VR_{k}")
    b = lab.start_ours("b", configs(100))
    for k in vrids:
        b.wait_state("Backup", 15, name=f"VR_{k}")
    time.sleep(2)
    if sig == signal.SIGKILL:  # the wake-ups counted once (the suite's time budget): the same idle either way
        s0 = fresh_status(b)
        time.sleep(8)
        s1 = fresh_status(b)
        iface0, iface1 = s0["interfaces"]["eth0"], s1["interfaces"]["eth0"]
        assert iface1["reading"] is False
        assert iface1["received"] - iface0["received"] >= 5 * 7  # every VRID's adverts were heard ...
        # ... in a few reads for all five (8 s / 2.6-3.6 s, +1 SIGUSR1; a timer per router would make 11-16)
        assert iface1["wakeups"] - iface0["wakeups"] <= 6
    t_kill = a.kill(sig)
    mdi, skew = master_down_interval(100, 1, 3), skew_time(100, 1, 3)
    for k in vrids:
        b.wait_state("Master", mdi + 5, name=f"VR_{k}")
        first_b = obs.wait_first(lambda s, k=k: s.rx.source == lab.address("b") and s.rx.advert.vrid == k,
                                 after=t_kill)
        if sig == signal.SIGKILL:
            last_a = obs.last(lambda s, k=k: s.rx.source == lab.address("a") and s.rx.advert.vrid == k,
                              before=t_kill)
            assert last_a is not None
            assert mdi - 0.02 <= first_b.kt - last_a.kt < mdi + MARGIN
        else:
            zero = obs.wait_first(lambda s, k=k: s.rx.source == lab.address("a") and s.rx.advert.vrid == k
                                  and s.rx.advert.priority == 0, after=t_kill)
            assert skew - 0.02 <= first_b.kt - zero.kt < skew + MARGIN

"""use_vmac in namespaces with keepalived 2.2.7 as the peer, both on the virtual MAC 00:00:5e:00:01:33 (VRID 51).

A client (c) learns the VIP at the virtual MAC whoever is Master; its ARP entry is then frozen (PERMANENT: it
can neither expire nor be changed by gratuitous ARP) and its ping to the VIP still goes on after a takeover,
which is the point of a virtual MAC; without use_vmac the same frozen entry leads nowhere after the takeover (the
control case, so the check can fail). The macvlan is gone after SIGTERM, and a crash's left-over is replaced at
the next start.

keepalived's host gets ``arp_announce=2`` on eth0 as its design notes tell the operator to (ours sets it itself,
VrrpFailover.vmac): without it the Master's ARP request for the client names the VIP as its sender with eth0's
MAC and the client's entry moves there."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

import pytest

from labs.vrrp import VIP, Lab, keepalived_config, ours_config, wait_for
from VrrpFailover.machine import master_down_interval

pytestmark = pytest.mark.integration

ADV = 0.1
MARGIN = 1.5
VMAC = "00:00:5e:00:01:33"  # RFC 5798 7.3, VRID 51
MDI_100 = master_down_interval(100, ADV, 3)


def link_details(lab: Lab, host: str, name: str = "vrrp.51") -> str | None:
    r = lab.exec(host, ["ip", "-d", "-o", "link", "show", name], capture_output=True)
    return r.stdout.decode() if r.returncode == 0 else None


def addresses_of(lab: Lab, host: str, ifname: str) -> str:
    return lab.exec(host, ["ip", "-4", "-o", "addr", "show", "dev", ifname], capture_output=True).stdout.decode()


def sysctl(lab: Lab, host: str, key: str) -> int:
    return int(lab.exec(host, ["cat", f"/proc/sys/net/ipv4/conf/eth0/{key}"], capture_output=True,
                        check=True).stdout.decode())


def freeze_client_entry(lab: Lab) -> str:
    """The client's entry for the VIP as learnt now, made PERMANENT (no expiry, no gratuitous ARP changes it)."""
    wait_for(lambda: lab.ping("c"), 5, what="the client reaches the VIP")
    mac = lab.neighbour_mac("c")
    assert mac is not None
    lab.exec("c", ["ip", "neigh", "replace", str(VIP), "lladdr", mac, "dev", "eth0", "nud", "permanent"], check=True)
    return mac


def advert_source_mac(lab: Lab, sender: str, timeout: float = 3.0) -> str:
    """The Ethernet source of an advert from ``sender``'s address, read by a packet socket on the client."""
    sock = lab.in_ns("c", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800)))
    try:
        sock.bind(("eth0", 0x0800))
        sock.settimeout(0.2)
        src_ip = lab.address(sender).packed
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                frame = sock.recv(2048)
            except TimeoutError:
                continue
            if len(frame) >= 34 and frame[23] == 112 and frame[26:30] == src_ip:  # IPv4 protocol VRRP, source
                return ":".join(f"{b:02x}" for b in frame[6:12])
        raise TimeoutError(f"no advert from {sender} within {timeout} s")
    finally:
        sock.close()


def igmp_sources(sock: socket.socket, seconds: float) -> set[str]:
    """Source MACs of the IGMP frames a client's packet socket (ETH_P_ALL) has queued or gets within ``seconds``
    (adverts keep arriving: the read is bounded by time, not by an empty queue)."""
    out = set()
    sock.settimeout(0.1)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            frame = sock.recv(2048)
        except TimeoutError:
            continue
        if len(frame) >= 34 and frame[12:14] == b"\x08\x00" and frame[23] == 2:  # IPv4, protocol IGMP
            out.add(":".join(f"{b:02x}" for b in frame[6:12]))
    return out


def keepalived_vmac_host(lab: Lab, host: str, priority: int, vmac: bool = True):
    lab.exec(host, ["sysctl", "-q", "-w", "net.ipv4.conf.eth0.arp_announce=2"], check=True)
    return lab.start_keepalived(host, keepalived_config(priority=priority, extra="use_vmac" if vmac else ""))


def test_ours_master_keepalived_backup_on_the_virtual_mac_then_a_crash_takeover_and_a_restart(lab: Lab):
    a = lab.start_ours("a", ours_config(priority=150, use_vmac=True))
    a.wait_state("Master", 10)
    ka = keepalived_vmac_host(lab, "b", 100)
    ka.wait_state("Backup", 10)
    details = link_details(lab, "a")
    assert details is not None and "macvlan mode private" in details and VMAC in details
    assert f"{VIP}/24" in addresses_of(lab, "a", "vrrp.51") and str(VIP) not in addresses_of(lab, "a", "eth0")
    assert freeze_client_entry(lab) == VMAC  # ours answers ARP for the VIP with the virtual MAC
    assert ka.current_state() == "Backup"  # keepalived hears our adverts, sent from the virtual MAC
    assert advert_source_mac(lab, "a") == VMAC
    # crash: SIGKILL and the cable pulled (the dead host keeps its macvlan and the VIP, as keepalived would)
    a.kill(signal.SIGKILL)
    a.wait(5)
    lab.set_link("a", False)
    ka.wait_state("Master", MDI_100 + MARGIN)
    wait_for(lambda: lab.ping("c", timeout=0.2), 2, what="the client's ping answered by keepalived")
    assert lab.neighbour_mac("c") == VMAC
    assert link_details(lab, "a") is not None  # the crash left the macvlan behind
    lab.set_link("a", True)
    a2 = lab.start_ours("a", ours_config(priority=150, use_vmac=True))
    a2.wait_state("Master", 10)  # preempts keepalived (150 > 100)
    ka.wait_state("Backup", 5)
    assert "removed left-over virtual MAC interface vrrp.51" in a2.log_text()
    wait_for(lambda: lab.ping("c", timeout=0.2), 2, what="the client's ping answered by ours again")
    assert lab.neighbour_mac("c") == VMAC
    wait_for(lambda: lab.holders() == [], 2, what="no VIP on any eth0")
    a2.kill(signal.SIGTERM)
    assert a2.wait(5) == 0
    assert link_details(lab, "a") is None  # gone after SIGTERM
    assert lab.exec("a", ["nft", "list", "tables"], capture_output=True).stdout.decode().strip() == ""


@pytest.mark.parametrize("use_vmac", [True, False])
def test_keepalived_master_ours_backup_takeover_keeps_the_client_going_only_with_the_virtual_mac(lab: Lab, use_vmac):
    before = {k: sysctl(lab, "a", k) for k in ("arp_ignore", "arp_filter", "arp_announce")}
    ka = keepalived_vmac_host(lab, "b", 150, vmac=use_vmac)
    ka.wait_state("Master", 10)
    capture = lab.in_ns("c", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003)))
    capture.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    capture.bind(("eth0", 0))
    try:
        a = lab.start_ours("a", ours_config(priority=100, use_vmac=use_vmac))
        a.wait_state("Backup", 10)
        igmp = igmp_sources(capture, 1.5)  # joining 224.0.0.18 sends IGMP reports at once and again within ~1 s
    finally:
        capture.close()
    assert (lab.mac("a") in igmp) is not use_vmac  # without a macvlan the report goes out from eth0 (seen) ...
    assert VMAC not in igmp  # ... with one it is dropped: from a Backup's macvlan it would pull the switch's entry
    mac = freeze_client_entry(lab)
    assert (mac == VMAC) is use_vmac
    if use_vmac:
        assert {k: sysctl(lab, "a", k) for k in before} == {"arp_ignore": 1, "arp_filter": 1, "arp_announce": 2}
    ka.kill(signal.SIGTERM)  # priority 0: ours takes over after Skew_Time (it hears it on its macvlan)
    a.wait_state("Master", 1 + MARGIN)
    assert "[master_sent_priority_zero]" in a.log_text()
    answered = True
    try:
        wait_for(lambda: lab.ping("c", timeout=0.2), 2, what="the client's ping answered by ours")
    except TimeoutError:
        answered = False
    assert lab.neighbour_mac("c") == mac  # frozen: the same MAC before and after
    assert answered is use_vmac  # without a virtual MAC the frozen entry names keepalived's host
    a.kill(signal.SIGTERM)
    assert a.wait(5) == 0
    assert link_details(lab, "a") is None
    assert {k: sysctl(lab, "a", k) for k in before} == before  # put back at exit


def test_a_vmac_name_taken_by_an_interface_of_another_kind_exits_2_naming_the_key_and_touches_nothing(lab: Lab):
    lab.exec("a", ["ip", "link", "add", "vrrp.51", "type", "veth", "peer", "name", "vmpeer0"], check=True)
    cfg = lab.dir / "taken.json"
    cfg.write_text(json.dumps(ours_config(use_vmac=True)))
    r = lab.exec("a", [sys.executable, "-m", "VrrpFailover", "-c", str(cfg)], capture_output=True, timeout=30,
                 stdin=subprocess.DEVNULL)
    assert r.returncode == 2
    err = r.stderr.decode()
    assert "key '[0].use_vmac'" in err and "already exists (veth interface" in err, err
    details = link_details(lab, "a")
    assert details is not None and "veth" in details  # still the veth, untouched


def test_vmac_xmit_base_adverts_from_eth0_and_arp_on_the_virtual_mac(lab: Lab):
    a = lab.start_ours("a", ours_config(priority=150, use_vmac=True, vmac_xmit_base=True))
    a.wait_state("Master", 10)
    lab.exec("b", ["sysctl", "-q", "-w", "net.ipv4.conf.eth0.arp_announce=2"], check=True)
    ka = lab.start_keepalived("b", keepalived_config(priority=100, extra="use_vmac\n    vmac_xmit_base"))
    ka.wait_state("Backup", 10)
    assert freeze_client_entry(lab) == VMAC
    assert f"{VIP}/24" in addresses_of(lab, "a", "vrrp.51")
    assert advert_source_mac(lab, "a") == lab.mac("a")  # vmac_xmit_base: adverts from eth0
    a.kill(signal.SIGTERM)
    ka.wait_state("Master", 1 + MARGIN)
    wait_for(lambda: lab.ping("c", timeout=0.2), 2, what="the client's ping answered by keepalived")
    assert a.wait(5) == 0 and link_details(lab, "a") is None


def test_a_preempted_master_s_last_advert_leaves_from_its_own_mac_not_the_virtual_one(lab: Lab):
    """Found by a chaos run with use_vmac (seed 5): at a preemption the Master that steps down sends one last
    advert (higher_prio_send_advert); from the virtual MAC it pulled the switch's entry for that MAC back to
    itself, and the client's traffic to the VIP went to a Backup until the new Master's next advert (0.1 s
    lost). That advert now leaves from the interface's own MAC (VrrpFailover.netio.AdvertSender). Read on the
    client: every advert of a after b's first is from a's MAC (and there is one); a's adverts as Master were
    from the virtual MAC."""
    a = lab.start_ours("a", ours_config(priority=100, use_vmac=True))
    a.wait_state("Master", 10)
    sock = lab.in_ns("c", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800)))
    frames: list[tuple[bytes, str, int]] = []  # (source IP, source MAC, priority) of each advert, in order
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind(("eth0", 0x0800))
        sock.settimeout(0.1)
        b = lab.start_ours("b", ours_config(priority=150, use_vmac=True))
        b.wait_state("Master", 10)
        a.wait_state("Backup", 5)
        end = time.monotonic() + 0.5  # what was sent meanwhile is queued; then b's adverts only
        while time.monotonic() < end:
            try:
                f = sock.recv(2048)
            except TimeoutError:
                continue
            if len(f) >= 40 and f[23] == 112:  # IPv4 protocol VRRP: IPv4 header 20 bytes, priority at VRRP + 2
                frames.append((f[26:30], ":".join(f"{x:02x}" for x in f[6:12]), f[14 + 20 + 2]))
    finally:
        sock.close()
    a_ip, b_ip = lab.address("a").packed, lab.address("b").packed
    first_b = next(i for i, (ip, _, prio) in enumerate(frames) if ip == b_ip and prio == 150)
    before = {mac for ip, mac, _ in frames[:first_b] if ip == a_ip}
    after = [mac for ip, mac, _ in frames[first_b:] if ip == a_ip]
    assert before == {VMAC}, frames[:first_b]  # a as Master: from the virtual MAC
    assert after and set(after) == {lab.mac("a")}, frames  # its stepping-down advert: from its own
    assert "[higher_priority_advert]" in a.log_text()
    wait_for(lambda: lab.ping("c", timeout=0.2), 2, what="the client's ping answered by b")

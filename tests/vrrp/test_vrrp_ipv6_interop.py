"""VRRPv3 over IPv6 with keepalived 2.2.7 in namespaces: both roles, a client's ping6 after each takeover.

The lab (``Lab(ipv6=True)``): hosts a, b, c with fd00:99::11/12/13 and the link-local fe80::11/12/13 (no
duplicate-address detection), the VIP fd00:99::100/64. "Killing the Master" is SIGKILL and pulling its cable
at once: the dead host's address (keepalived leaves its VIP behind) must not answer the client, so a ping that
succeeds came from the new Master, which the client can only reach because the new Master's unsolicited
neighbour advertisement (Override) replaced the old MAC in the client's neighbour cache: without it the entry
stays REACHABLE with the dead MAC for 15-45 s.
"""

from __future__ import annotations

import json
import signal
import socket
import struct
import time
from ipaddress import IPv6Address

import pytest

from labs.vrrp import VIP6, Lab, keepalived_config, ours_config, wait_for
from VrrpFailover.machine import master_down_interval, skew_time
from VrrpFailover.nd import na_frame
from VrrpFailover.packet import VRRP_GROUP6, Advert, decode_ipv6, encode

pytestmark = pytest.mark.integration

ADV = 0.1
MDI_100 = master_down_interval(100, ADV, 3)
MARGIN = 1.5
PING_BOUND = 2.0  # seconds from the takeover to the first answered ping (generous: measured below)
VIPS = [f"{VIP6}/64"]
IPV6_MULTICAST_ALL = 29


def accepts_quietly(lab: Lab, backup, holder: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert backup.current_state() == "Backup", backup.log_text()[-2000:]
        assert lab.holders(VIP6) == [holder]
        time.sleep(0.05)


def tentative(lab: Lab, host: str) -> bool:
    out = lab.exec(host, ["ip", "-6", "addr", "show", "dev", "eth0", "to", str(VIP6)], capture_output=True,
                   check=True).stdout.decode()
    assert str(VIP6) in out
    return "tentative" in out


def took_over(what: str, since: float) -> float:
    """Seconds from ``since`` (a kill) until now (the new Master seen), printed for docs/vrrp.md."""
    took = time.monotonic() - since
    print(f"\n[measured] {what}: {took * 1000:.0f} ms")
    return took


def kill_host(lab: Lab, rp) -> float:
    """SIGKILL the router and pull its host's cable at once; returns the time of the kill."""
    t = rp.kill(signal.SIGKILL)
    lab.set_link(rp.host, False)
    return t


def ping_after_takeover(lab: Lab, new_master: str) -> float:
    """The client's neighbour entry for the VIP follows the new Master's MAC and ping -6 is answered; returns the
    seconds from now until the first answered ping."""
    t = time.monotonic()
    wait_for(lambda: lab.ping("c", VIP6, timeout=0.3), PING_BOUND, what="ping -6 to the VIP answered")
    took = time.monotonic() - t
    assert lab.neighbour_mac("c", VIP6) == lab.mac(new_master)
    print(f"\n[measured] {new_master} Master -> first ping -6 to the VIP answered: {took * 1000:.0f} ms")
    return took


def status(rp) -> dict:
    before = rp.status_path.stat().st_mtime_ns
    rp.kill(signal.SIGUSR1)
    wait_for(lambda: rp.status_path.stat().st_mtime_ns != before, 5, what="status refresh")
    return json.loads(rp.status_path.read_text())


class Capture6:
    """An independent raw IPv6 VRRP socket (not the router's code) on eth0 of the namespace it is made in."""

    def __init__(self) -> None:
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 112)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0)
        self.index = socket.if_nametoindex("eth0")
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, VRRP_GROUP6.packed + struct.pack("@I", self.index))
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self.index)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
        s.settimeout(5)
        self.sock = s

    def recv(self) -> tuple[bytes, IPv6Address, IPv6Address, int]:
        data, anc, _flags, addr = self.sock.recvmsg(2048, 256)
        hop, dst = -1, IPv6Address("::")
        for level, kind, payload in anc:
            if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_HOPLIMIT:
                hop = struct.unpack("@i", payload[:4])[0]
            elif level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO:
                dst = IPv6Address(payload[:16])
        return data, IPv6Address(addr[0].split("%")[0]), dst, hop

    def send(self, msg: bytes, src: IPv6Address, hop_limit: int) -> None:
        self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, hop_limit)
        self.sock.sendmsg([msg], [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO,
                                   src.packed + struct.pack("@I", self.index))], 0,
                          (str(VRRP_GROUP6), 0, 0, self.index))

    def close(self) -> None:
        self.sock.close()


class NaCapture:
    """Neighbour advertisements (ICMPv6 136) for one target seen on eth0 of the namespace it is made in."""

    def __init__(self, target: IPv6Address) -> None:
        self.target = target
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x86DD))
        self.sock.bind(("eth0", 0x86DD))
        self.sock.settimeout(5)

    def next_na(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frame = self.sock.recv(2048)
            if len(frame) >= 86 and frame[20] == 58 and frame[54] == 136 and frame[62:78] == self.target.packed:
                return frame
        raise TimeoutError("no neighbour advertisement")

    def close(self) -> None:
        self.sock.close()


def test_keepalived_master_ours_backup_ipv6_takeover_and_ping(lab6):
    lab = lab6
    cap = lab.in_ns("c", Capture6)
    try:
        ka = lab.start_keepalived("a", keepalived_config(priority=150, vips=VIPS))
        wait_for(lambda: lab.has_vip("a", VIP6), 10, what="keepalived Master with the IPv6 VIP")
        data, src, dst, hop = cap.recv()
        # keepalived's own advert, decoded and checksum-verified by our codec (IPv6 pseudo-header), from a's
        # link-local address to ff02::12 with hop limit 255
        rx = decode_ipv6(data, src, dst, hop)
        assert (rx.source, rx.destination, rx.ttl) == (lab.link_local("a"), VRRP_GROUP6, 255)
        assert rx.advert == Advert(version=3, vrid=51, priority=150, interval=ADV, addresses=(VIP6,))
        assert encode(rx.advert, src, dst) == data  # and ours encodes the same bytes
    finally:
        cap.close()
    ours = lab.start_ours("b", ours_config(priority=100, vips=VIPS))
    ours.wait_state("Backup", 10)
    accepts_quietly(lab, ours, "a", 8 * MDI_100)  # it accepts keepalived's IPv6 adverts
    st = status(ours)
    assert st["interfaces"]["eth0/ipv6"]["received"] > 0 and st["interfaces"]["eth0/ipv6"]["drops"] == {}
    assert lab.ping("c", VIP6, timeout=2) and lab.neighbour_mac("c", VIP6) == lab.mac("a")
    t_kill = kill_host(lab, ka)
    ours.wait_state("Master", MDI_100 + MARGIN)
    assert took_over("keepalived Master killed -> ours Master (advert 0.1 s)", t_kill) < MDI_100 + MARGIN
    assert lab.has_vip("b", VIP6) or wait_for(lambda: lab.has_vip("b", VIP6), 2, what="VIP6 on ours")
    assert not tentative(lab, "b")  # added nodad: usable at once
    ping_after_takeover(lab, "b")


def test_ours_master_keepalived_backup_ipv6_takeover_and_ping(lab6):
    lab = lab6
    ours = lab.start_ours("a", ours_config(priority=150, vips=VIPS))
    ours.wait_state("Master", 10)
    wait_for(lambda: lab.has_vip("a", VIP6), 2, what="VIP6 on ours")
    assert not tentative(lab, "a")
    ping_after_takeover(lab, "a")  # answered at once: no duplicate-address detection wait
    ka = lab.start_keepalived("b", keepalived_config(priority=100, vips=VIPS))
    ka.wait_state("Backup", 10)
    accepts_quietly(lab, ka, "a", 8 * MDI_100)  # keepalived accepts our IPv6 adverts (checksum, source, hops)
    log = ka.log_text().lower()
    assert "checksum" not in log and "ttl" not in log and "hop" not in log, log[-2000:]
    na = lab.in_ns("c", lambda: NaCapture(VIP6))
    try:
        t_kill = kill_host(lab, ours)
        ka.wait_state("Master", MDI_100 + MARGIN)
        assert took_over("ours Master killed -> keepalived Master (advert 0.1 s)", t_kill) < MDI_100 + MARGIN
        # keepalived's unsolicited NA, byte for byte what ours builds for the same MAC and VIP
        frame = na.next_na(3)
        assert frame == na_frame(bytes.fromhex(lab.mac("b").replace(":", "")), VIP6, router=False)
    finally:
        na.close()
    ping_after_takeover(lab, "b")


def test_ours_sends_neighbour_advertisements_on_takeover(lab6):
    """Ours as the new Master: garp_repeat rounds of unsolicited NA (Override) for the VIP, garp_delay apart."""
    lab = lab6
    a = lab.start_ours("a", ours_config(priority=150, vips=VIPS))
    a.wait_state("Master", 10)
    b = lab.start_ours("b", ours_config(priority=100, vips=VIPS, garp_repeat=3, garp_delay=0.2))
    b.wait_state("Backup", 10)
    na = lab.in_ns("c", lambda: NaCapture(VIP6))
    try:
        kill_host(lab, a)
        b.wait_state("Master", MDI_100 + MARGIN)
        frames = [na.next_na(3) for _ in range(3)]
    finally:
        na.close()
    mac_b = bytes.fromhex(lab.mac("b").replace(":", ""))
    assert frames == [na_frame(mac_b, VIP6, router=False)] * 3
    ping_after_takeover(lab, "b")


@pytest.mark.parametrize("ours_role", ["master", "backup"])
def test_priority_zero_over_ipv6_hands_over_after_skew(lab6, ours_role):
    """advert_interval 1 s: SIGTERM of the Master sends priority 0; the Backup takes over after Skew_Time, not at
    its Master_Down_Interval (ours as Backup is woken by its priority-0 socket: IPv6 filter offsets)."""
    lab = lab6
    if ours_role == "master":
        master = lab.start_ours("a", ours_config(priority=150, vips=VIPS, advert_interval=1))
        master.wait_state("Master", 10)
        backup = lab.start_keepalived("b", keepalived_config(priority=100, vips=VIPS, advert_int=1))
    else:
        master = lab.start_keepalived("a", keepalived_config(priority=150, vips=VIPS, advert_int=1))
        wait_for(lambda: lab.has_vip("a", VIP6), 10, what="keepalived Master")
        backup = lab.start_ours("b", ours_config(priority=100, vips=VIPS, advert_interval=1))
    backup.wait_state("Backup", 10)
    time.sleep(2.2)  # into the Backup's Master_Down_Interval (3.6 s): a late read would show
    t = master.kill(signal.SIGTERM)
    backup.wait_state("Master", skew_time(100, 1, 3) + 0.5)
    assert took_over(f"SIGTERM of the Master -> Backup Master, ours {ours_role} (advert 1 s)", t) < \
        skew_time(100, 1, 3) + 0.5
    wait_for(lambda: lab.holders(VIP6) == ["b"], 2, what="VIP6 on b only")
    if ours_role == "backup":
        assert "[master_sent_priority_zero]" in backup.log_text()


def test_hop_limit_below_255_is_dropped_and_counted(lab6):
    """A forged higher-priority IPv6 advert with hop limit 254 (otherwise valid: right checksum, link-local source)
    is dropped and counted; the same advert with hop limit 255 makes our Master step down."""
    lab = lab6
    ours = lab.start_ours("a", ours_config(priority=100, vips=VIPS))
    ours.wait_state("Master", 10)
    cap = lab.in_ns("c", Capture6)
    try:
        src = lab.link_local("c")
        msg = encode(Advert(version=3, vrid=51, priority=200, interval=ADV, addresses=(VIP6,)), src, VRRP_GROUP6)
        for _ in range(10):
            cap.send(msg, src, 254)
        wait_for(lambda: status(ours)["interfaces"]["eth0/ipv6"]["drops"].get("hop_limit_not_255") == 10, 5,
                 what="10 hop-limit drops counted")
        assert ours.current_state() == "Master"
        cap.send(msg[:-1] + bytes([msg[-1] ^ 1]), src, 255)  # a bad checksum is counted too
        wait_for(lambda: status(ours)["interfaces"]["eth0/ipv6"]["drops"].get("bad_checksum") == 1, 5,
                 what="the bad checksum counted")
        assert ours.current_state() == "Master"
        cap.send(msg, src, 255)
        wait_for(lambda: "[higher_priority_advert]" in ours.log_text(), 2, what="ours stepping down")
    finally:
        cap.close()

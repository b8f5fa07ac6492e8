"""The grey link faults without sch_netem, on real traffic in namespaces made by labs.netns: ``delay`` (NFQUEUE and
a labs.delayer process) and ``duplicate`` (TEE). Needs root, iptables, ping and tcpdump.
"""

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from labs.delayer import Delay, DelayError
from labs.netns import NetnsSegment

pytestmark = pytest.mark.integration

A, B, C = "10.77.0.1", "10.77.0.2", "10.77.0.3"
VRRP_GROUP = "224.0.0.18"


@pytest.fixture(autouse=True)
def _testbed(require_bed):
    require_bed(("ip", "iptables", "ping", "tcpdump"), "network namespaces, NFQUEUE, TEE")


@pytest.fixture
def seg() -> Iterator[NetnsSegment]:
    net = NetnsSegment({"a": A, "b": B, "c": C}, tag="nq").up()
    try:
        yield net
    finally:
        assert net.teardown() == []


def ping(net: NetnsSegment, n: int = 10, interval: str = "0.02", to: str = B) -> tuple[list[float], int]:
    """(round-trip times in ms, duplicates) of ``n`` pings from a."""
    out = net.exec("a", ["ping", "-n", "-c", str(n), "-i", interval, "-W", "2", to], capture_output=True,
                   text=True).stdout
    rtts = [float(x) for x in re.findall(r"time=([\d.]+) ms", out)]
    return rtts, out.count("(DUP!)")


def rules(net: NetnsSegment, key: str, table: str = "filter") -> str:
    return net.exec(key, ["iptables", "-t", table, "-S", "OUTPUT"], capture_output=True, text=True).stdout


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_delay_raises_the_rtt_by_d_and_its_heal_restores_it(seg):
    before, _ = ping(seg)
    assert max(before) < 10, before
    d = seg.delay("a", 4242, 40)
    assert "--queue-num 4242" in rules(seg, "a") and alive(d.pid)
    during, _ = ping(seg, 20)
    stats = d.stop()
    after, _ = ping(seg)
    # only a's sending is held: the round trip grows by D (plus up to a millisecond of the delayer's timer)
    assert len(during) == 20 and all(40 <= r < 40 + 25 for r in during), during
    assert max(after) < 10, after
    assert stats["delayer_rc"] == 0 and stats["packets"] >= 20, stats
    assert 40 <= stats["max_hold_ms"] < 65 and stats["queue_dropped"] == 0, stats
    assert "NFQUEUE" not in rules(seg, "a") and not alive(stats["delayer_pid"])
    assert d.stop() == {}  # a second stop does nothing


def test_jitter_spreads_the_holds_within_d_plus_minus_j(seg):
    d = seg.delay("a", 4243, 40, 20, seed=7)
    during, _ = ping(seg, 30, "0.01")
    stats = d.stop()
    assert all(20 <= r < 60 + 25 for r in during), during
    assert max(during) - min(during) > 10, during  # the draws differ: not one fixed delay
    assert stats["packets"] >= 30 and stats["max_hold_ms"] <= 60 + 25, stats


def test_a_dead_delayer_lets_packets_pass_undelayed_and_is_not_a_cut(seg):
    d = seg.delay("a", 4244, 200)
    assert d.pid is not None
    os.kill(d.pid, signal.SIGKILL)
    while alive(d.pid) and d.proc is not None and d.proc.poll() is None:
        time.sleep(0.01)
    rtts, _ = ping(seg, 5)
    stats = d.stop()
    assert len(rtts) == 5 and max(rtts) < 10, rtts  # --queue-bypass: no listener, the rule lets them through
    assert stats["delayer_rc"] == -signal.SIGKILL and "NFQUEUE" not in rules(seg, "a")


def test_two_delays_in_one_namespace_use_their_own_queues(seg):
    first = seg.delay("a", 4245, 30)
    second = seg.delay("a", 4246, 30)
    try:
        rtts, _ = ping(seg, 5)
    finally:
        newer, older = second.stop(), first.stop()
    assert len(rtts) == 5 and all(30 <= r < 30 + 25 for r in rtts), rtts  # held once, not twice
    # the first rule in the chain (the newest) takes every packet; accepted, it leaves the chain
    assert newer["packets"] >= 5 and older["packets"] == 0, (newer, older)


def test_a_delayer_that_cannot_bind_is_an_error_and_leaves_nothing(seg):
    # a queue number outside 0-65535 is refused by the delayer itself (exit 2) before any rule goes in
    with pytest.raises(DelayError, match="did not start"):
        Delay(seg, "a", 70000, 10).start()
    assert "NFQUEUE" not in rules(seg, "a")


def test_dup_sends_a_share_of_what_a_sends_twice_ping_reports_dup(seg):
    to = seg.duplicate("a", 100)
    assert sorted(to) == [B, C]
    cap = seg.popen("b", ["tcpdump", "-n", "-l", "-i", "eth0", "icmp[icmptype] == icmp-echo"],
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        time.sleep(1.0)  # tcpdump attached
        rtts, dups = ping(seg, 5, "0.1")
    finally:
        time.sleep(0.3)
        cap.terminate()
        seen = cap.communicate(timeout=5)[0]
    seg.duplicate("a", 100, on=False)
    # each echo request arrived twice: two replies each (ping may stop before the last one's copy)
    assert dups >= 4 and len(rtts) == 5 + dups, (rtts, dups)
    assert len([ln for ln in seen.splitlines() if f"{A} > {B}" in ln]) == 10, seen
    assert "TEE" not in rules(seg, "a", "mangle")
    rtts, dups = ping(seg, 5, "0.05")
    assert len(rtts) == 5 and dups == 0


def test_dup_copies_multicast_vrrp_adverts_to_each_peer(seg):
    """A multicast packet (VRRP: IP protocol 112 to 224.0.0.18, TTL 255) is copied to each peer's MAC with the
    group address; each peer's socket that joined the group receives it twice, with TTL 255 (RFC 5798 drops
    adverts with any other TTL)."""
    def receiver(key: str) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                     socket.inet_aton(VRRP_GROUP) + socket.inet_aton(seg.address(key)))  # on eth0 (no route)
        s.settimeout(0.5)
        return s

    rx = {k: seg.in_ns(k, lambda k=k: receiver(k)) for k in ("b", "c")}
    tx = seg.in_ns("a", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, 112))
    tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(A))
    try:
        seg.duplicate("a", 100)
        for i in range(3):
            tx.sendto(bytes([0x31, 51, 100, 1, 0, 10, 0, 0]) + bytes([i]), (VRRP_GROUP, 0))
        time.sleep(0.2)
        seg.duplicate("a", 100, on=False)
        got: dict[str, list[tuple[int, int]]] = {}
        for k, s in rx.items():
            got[k] = []
            while True:
                try:
                    data = s.recv(2048)
                except TimeoutError:
                    break
                if socket.inet_ntoa(data[12:16]) == A:
                    got[k].append((data[8], data[-1]))  # (TTL, our sequence byte)
    finally:
        tx.close()
        for s in rx.values():
            s.close()
    for k in ("b", "c"):
        assert sorted(got[k]) == [(255, 0), (255, 0), (255, 1), (255, 1), (255, 2), (255, 2)], (k, got)

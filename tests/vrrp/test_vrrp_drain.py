"""The driver's read of a queued batch of adverts (``VrrpDaemon._drain_queue``) decides what feeding every advert
decides: a repeated routine advert is skipped only between two that are fed, a decoded datagram is remembered by
the bytes its decode depends on. A reference router fed every advert with ``handle`` is the oracle; the socket is a
list of datagrams and the loop only records timers (no I/O in these tests)."""

from __future__ import annotations

import itertools
import logging
import socket
import struct
from collections import deque
from dataclasses import replace
from ipaddress import IPv4Address

from failover_core.shell.carry_out import DecisionLog
from VrrpFailover.config import InstanceConfig
from VrrpFailover.driver import Instance, InterfaceRuntime, VrrpDaemon
from VrrpFailover.events import AdvertIn, Startup
from VrrpFailover.machine import VrrpRouter, VrrpState
from VrrpFailover.netio import SO_TIMESTAMPNS, InterfaceFacts, VrrpSocket, read_repeats
from VrrpFailover.packet import VRRP_GROUP, Advert, decode_ip_packet, encode

OFFSET = 0.0  # wall clock - monotonic clock (0: arrival times come out exact, as the reference's)
OURS = IPv4Address("10.99.0.12")
MASTER = IPv4Address("10.99.0.11")
VIP = IPv4Address("10.99.0.100")


def datagram(priority: int, *, ident: int = 0, addresses: tuple[IPv4Address, ...] = (VIP,), ttl: int = 255) -> bytes:
    msg = encode(Advert(version=3, vrid=51, priority=priority, interval=0.1, addresses=addresses), MASTER, VRRP_GROUP)
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0xC0, 20 + len(msg), ident, 0, ttl, 112, ident ^ 0xFFFF,
                       MASTER.packed, VRRP_GROUP.packed) + msg


class ListSocket:
    group = VRRP_GROUP
    decode = staticmethod(decode_ip_packet)
    cache_key = staticmethod(VrrpSocket.cache_key)

    def __init__(self) -> None:
        self.queue: deque[tuple[bytes, float | None]] = deque()

    def recv(self) -> tuple[bytes, float | None] | None:
        return self.queue.popleft() if self.queue else None


class CountingSocket(ListSocket):
    @staticmethod
    def decode(data: bytes):  # type: ignore[override]
        CountingSocket.count += 1
        return decode_ip_packet(data)

    count = 0


class TimerLoop:
    """What the driver asks of its loop here: the time and timers (recorded, never run)."""

    def __init__(self) -> None:
        self.now = 100.0

    def time(self) -> float:
        return self.now

    def call_at(self, at: float, *_args: object) -> TimerLoop.Handle:
        return TimerLoop.Handle()

    class Handle:
        def cancel(self) -> None:
            pass


def backup(priority: int = 100, **extra: object) -> tuple[VrrpDaemon, Instance, InterfaceRuntime]:
    config = InstanceConfig(name="VR_1", vrid=51, interface_name="eth0", ip_addresses=[f"{VIP}/24"],
                            priority=priority, advert_interval=0.1, **extra)
    d = VrrpDaemon((config,))
    d._loop = d._hot = TimerLoop()  # type: ignore[assignment]
    facts = InterfaceFacts(name="eth0", index=2, mac=b"\0" * 6, primary_ip=OURS)
    rt = InterfaceRuntime(facts=facts, sock=ListSocket(), garp=None, wake=None)  # type: ignore[arg-type]
    inst = Instance(config=config, router=VrrpRouter(config, OURS), iface=rt,
                    decisions=DecisionLog(logging.getLogger("test"), "VR_1"))
    inst.handlers = d._handlers(inst)
    rt.routers[51] = inst
    d.instances.append(inst)
    d._feed(inst, Startup(now=0.0))
    assert inst.router.state is VrrpState.BACKUP
    return d, inst, rt


def reference(priority: int, adverts: list[tuple[bytes, float]], **extra: object) -> VrrpRouter:
    config = InstanceConfig(name="VR_1", vrid=51, interface_name="eth0", ip_addresses=[f"{VIP}/24"],
                            priority=priority, advert_interval=0.1, **extra)
    r = VrrpRouter(config, OURS)
    r.handle(Startup(now=0.0))
    for data, at in adverts:
        rx = decode_ip_packet(data)
        r.handle(AdvertIn(now=at, source=rx.source, advert=rx.advert))
    return r


def read(d: VrrpDaemon, rt: InterfaceRuntime, adverts: list[tuple[bytes, float]], now: float) -> None:
    for data, at in adverts:
        rt.sock.queue.append((data, OFFSET + at))  # type: ignore[union-attr]
    d._loop.now = now  # type: ignore[union-attr]
    d._drain_queue(rt, now, OFFSET, False, adverts[0][1] - 0.01, None)


def same(a: VrrpRouter, b: VrrpRouter) -> None:
    assert (a.state, a.deadline, a.wake_at, a.master_address, a.master_adver_interval, dict(a.drops)) == \
           (b.state, b.deadline, b.wake_at, b.master_address, b.master_adver_interval, dict(b.drops))


def test_a_batch_of_the_masters_routine_adverts_feeds_the_first_and_the_last_and_decides_the_same():
    # IP identification and header checksum differ per datagram (as the kernel's may): decoded once all the same
    adverts = [(datagram(150, ident=k), 10.0 + 0.1 * k) for k in range(4)]
    d, inst, rt = backup()
    read(d, rt, adverts, now=10.35)
    same(inst.router, reference(100, adverts))
    assert rt.repeats == 2  # the second and third; the first and the last were fed
    assert len(rt.decoded) == 1
    # the next read: the first advert repeats the last one fed, so only the last of this read is fed
    more = [(datagram(150, ident=k), 10.0 + 0.1 * k) for k in range(4, 8)]
    read(d, rt, more, now=10.75)
    same(inst.router, reference(100, adverts + more))
    assert rt.repeats == 2 + 3


def test_a_lower_priority_master_while_preempting_is_fed_every_advert():
    # the path depends on the arrival time (preempt_delay): nothing is skipped, decisions as the reference's
    adverts = [(datagram(50), 10.0 + 0.1 * k) for k in range(5)]
    d, inst, rt = backup(preempt_delay=10.25)
    read(d, rt, adverts, now=10.45)
    same(inst.router, reference(100, adverts, preempt_delay=10.25))
    assert rt.repeats == 0


def test_dropped_adverts_are_each_fed_and_counted():
    other = (IPv4Address("10.99.0.200"),)  # an address list that differs from ours: the router drops it
    adverts = [(datagram(150, addresses=other), 10.0 + 0.1 * k) for k in range(4)]
    d, inst, rt = backup()
    read(d, rt, adverts, now=10.35)
    same(inst.router, reference(100, adverts))
    assert sum(inst.router.drops.values()) == 4
    assert rt.repeats == 0


def test_another_event_in_between_ends_the_repeat():
    adverts = [(datagram(150), 10.0 + 0.1 * k) for k in range(2)]
    d, inst, rt = backup()
    read(d, rt, adverts, now=10.15)
    assert inst.repeat_of is not None
    d._feed(inst, Startup(now=10.2))  # any event the driver feeds (a tracker reading, a timer)
    assert inst.repeat_of is None


def test_a_datagram_whose_header_the_decoder_checks_is_not_remembered():
    d, _, rt = backup()
    rt.sock = CountingSocket()  # type: ignore[assignment]
    bad = datagram(150, ttl=64)
    read(d, rt, [(bad, 10.0), (bad, 10.1)], now=10.15)
    assert CountingSocket.count == 2 and not rt.decoded  # each decoded (and dropped: TTL), none remembered
    assert rt.drops["ttl_not_255"] == 2


# ---- the routine paths (VrrpRouter.routine_advert / routine_adver_timer) and the timers after a drain ----------

class RecordingLoop(TimerLoop):
    """Records each timer armed (and whether it was cancelled since)."""

    def __init__(self) -> None:
        super().__init__()
        self.timers: list[RecordingLoop.Timer] = []

    def call_at(self, at: float, *_args: object) -> RecordingLoop.Timer:  # type: ignore[override]
        h = RecordingLoop.Timer(at)
        self.timers.append(h)
        return h

    class Timer:
        def __init__(self, at: float) -> None:
            self.at, self.cancelled = at, False

        def cancel(self) -> None:
            self.cancelled = True


class SendingSocket(ListSocket):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[bytes, object]] = []

    @staticmethod
    def sockaddr(dst: IPv4Address) -> tuple[str, int]:
        return (str(dst), 0)

    def send_to(self, message: bytes, sockaddr: tuple[str, int]) -> None:
        self.sent.append((message, sockaddr))


def no_handle(*_a: object) -> None:
    raise AssertionError("the routine path must not build a Step")


def test_the_backups_routine_adverts_after_the_first_are_not_handled_and_decide_the_same():
    adverts = [(datagram(150, ident=k), 10.0 + 0.1 * k) for k in range(4)]
    d, inst, rt = backup()
    read(d, rt, adverts[:1], now=10.05)  # the first from this Master: handle checks it
    inst.router.handle = no_handle  # type: ignore[method-assign]
    read(d, rt, adverts[1:], now=10.35)
    same(inst.router, reference(100, adverts))
    assert inst.repeat_of is not None  # the next read may skip it again


def test_the_masters_routine_adver_timer_sends_the_prebuilt_advert_without_a_step():
    d, inst, rt = backup()
    d._hot = d._loop = RecordingLoop()  # type: ignore[assignment]
    rt.sock = SendingSocket()  # type: ignore[assignment]
    rt.reading = True
    rt.garp = type("NoGarp", (), {"send": staticmethod(lambda _a: 1)})()  # type: ignore[assignment]
    r = inst.router
    d._loop.now = r.deadline  # type: ignore[union-attr]
    d._on_timer(inst)  # Master_Down_Interval: handle makes it Master (advert, addresses, ARP)
    assert r.state is VrrpState.MASTER
    d._netlink_q = type(d._netlink_q)()  # (the queued address change is not this test's)
    while r.garp_at is not None:  # the becoming-Master gratuitous ARP rounds go through handle
        d._loop.now = r.wake_at  # type: ignore[union-attr]
        d._on_timer(inst)
    r.handle = no_handle  # type: ignore[method-assign]
    sent_before = len(rt.sock.sent)  # type: ignore[union-attr]
    for _ in range(3):
        due = r.deadline
        d._loop.now = due  # type: ignore[union-attr]
        d._on_timer(inst)
        assert inst.timer_at == r.wake_at == due + 0.1
    wire = inst.advert_bytes(100, VRRP_GROUP)
    assert rt.sock.sent[sent_before:] == [(wire, (str(VRRP_GROUP), 0))] * 3  # type: ignore[union-attr]
    assert inst.sent == sent_before + 3


def test_a_drain_moves_every_routers_timer_to_its_new_deadline():
    """Two VRIDs on one interface: the drain at the first one's deadline reads the other's adverts too, and its
    timer moves to its new deadline (it would otherwise fire for nothing at the old one)."""
    d, inst, rt = backup()
    loop = RecordingLoop()
    d._hot = d._loop = loop  # type: ignore[assignment]
    config2 = inst.config.model_copy(update={"name": "VR_2", "vrid": 52})
    inst2 = Instance(config=config2, router=VrrpRouter(config2, OURS), iface=rt,
                     decisions=DecisionLog(logging.getLogger("test"), "VR_2"))
    inst2.handlers = d._handlers(inst2)
    rt.routers[52] = inst2
    d._feed(inst2, Startup(now=0.0))

    def dgram(vrid: int, k: int) -> bytes:
        msg = encode(Advert(version=3, vrid=vrid, priority=150, interval=0.1, addresses=(VIP,)), MASTER, VRRP_GROUP)
        return struct.pack("!BBHHHBBH4s4s", 0x45, 0xC0, 20 + len(msg), k, 0, 255, 112, 0, MASTER.packed,
                           VRRP_GROUP.packed) + msg

    for k in range(3):
        for vrid, phase in ((51, 0.0), (52, 0.05)):
            rt.sock.queue.append((dgram(vrid, k), OFFSET + 10.0 + phase + 0.1 * k))  # type: ignore[union-attr]
    loop.now = 10.3
    d._drain(rt)
    first = {i.config.vrid: i.timer_at for i in (inst, inst2)}
    assert first == {51: inst.router.wake_at, 52: inst2.router.wake_at}
    for k in range(3, 6):
        for vrid, phase in ((51, 0.0), (52, 0.05)):
            rt.sock.queue.append((dgram(vrid, k), OFFSET + 10.0 + phase + 0.1 * k))  # type: ignore[union-attr]
    loop.now = 10.6
    d._drain(rt)
    for i in (inst, inst2):
        assert i.timer_at == i.router.wake_at > first[i.config.vrid]
        assert i.timer is loop.timers[-1] or i.timer is loop.timers[-2]
        assert not i.timer.cancelled  # type: ignore[union-attr]
    assert sum(not t.cancelled for t in loop.timers) == 2  # the old ones were cancelled


# ---- an idle Backup's wake-up (VrrpDaemon._drain_repeats, VrrpSocket.read_repeats) ------------------------------

class RepeatSocket(ListSocket):
    def read_repeats(self, key: object) -> tuple[int, object, list[object]]:
        return read_repeats(self.recv, self.cache_key, key)


def idle_backup() -> tuple[VrrpDaemon, Instance, InterfaceRuntime, RecordingLoop]:
    """A Backup that heard two routine adverts (the second one was its routine case), its wall clock the loop's."""
    d, inst, rt = backup()
    loop = RecordingLoop()
    d._hot = d._loop = loop  # type: ignore[assignment]
    d._wall = lambda: loop.now + OFFSET  # type: ignore[method-assign]
    rt.sock = RepeatSocket()  # type: ignore[assignment]
    read(d, rt, FIRST, now=10.15)
    assert inst.repeat_of is not None and inst.repeat_key is not None
    return d, inst, rt, loop


FIRST = [(datagram(150, ident=k), 10.0 + 0.1 * k) for k in range(2)]


def wake(d: VrrpDaemon, inst: Instance, rt: InterfaceRuntime, queued: list[tuple[bytes, float]]) -> None:
    """The Backup's timer fires at its deadline with ``queued`` in the socket."""
    for data, at in queued:
        rt.sock.queue.append((data, OFFSET + at))  # type: ignore[union-attr]
    d._loop.now = inst.router.deadline  # type: ignore[union-attr]
    inst.timer = None
    d._on_timer(inst)


def test_an_idle_backups_wake_up_reads_the_repeats_in_one_loop_and_decides_what_feeding_each_decides():
    d, inst, rt, loop = idle_backup()
    inst.router.handle = no_handle  # type: ignore[method-assign]  # (nothing but the routine case)
    more = [(datagram(150, ident=k), 10.0 + 0.1 * k) for k in range(2, 5)]  # new IP ids: the same advert
    drained = rt.last_drain
    wake(d, inst, rt, more)
    same(inst.router, reference(100, FIRST + more))
    assert (rt.repeats, rt.received, rt.held) == (0 + 2, 2 + 3, [])  # the last of the three fed, two counted
    assert inst.timer_at == inst.router.wake_at == 10.4 + inst.router.master_down_interval
    assert loop.timers[-1].at == inst.timer_at and rt.last_drain > drained


def test_a_different_advert_after_the_repeats_goes_the_whole_way_and_decides_the_same():
    d, inst, rt, _ = idle_backup()
    better = (datagram(200), 10.35)  # a better Master: handle decides (Backup still, its address learnt)
    queued = [(datagram(150, ident=7), 10.2), (datagram(150, ident=8), 10.3), better]
    wake(d, inst, rt, queued)
    same(inst.router, reference(100, FIRST + queued))
    assert rt.held == [] and inst.timer_at == inst.router.wake_at
    assert rt.received == 2 + 3


def test_a_repeat_the_router_no_longer_finds_routine_goes_the_whole_way():
    d, inst, rt, _ = idle_backup()
    inst.repeat_of = replace(inst.repeat_of, ttl=255)  # an equal advert, but not the object the router accepted
    queued = [(datagram(150, ident=7), 10.2), (datagram(150, ident=8), 10.3)]
    wake(d, inst, rt, queued)
    same(inst.router, reference(100, FIRST + queued))
    assert rt.held == [] and rt.received == 2 + 2


def test_silence_at_the_deadline_makes_the_backup_master_as_the_router_decides():
    d, inst, rt, loop = idle_backup()
    loop.add_reader = lambda *_a: None  # type: ignore[attr-defined]  # (a Master reads each advert at once)
    d._netlink_q = type(d._netlink_q)()
    rt.garp = type("NoGarp", (), {"send": staticmethod(lambda _a: 1)})()  # type: ignore[assignment]
    rt.sock = type("Sending", (RepeatSocket, SendingSocket), {"fileno": lambda _s: 99})()  # type: ignore[assignment]
    wake(d, inst, rt, [])
    assert inst.router.state is VrrpState.MASTER


class RecvmsgSocket:
    """recvmsg over a list of (datagram, kernel time), as the kernel hands them out, then EAGAIN."""

    def __init__(self, queued: list[tuple[bytes, float]]) -> None:
        self.queued = deque(queued)

    def recvmsg(self, _size: int, _ancsize: int) -> tuple[bytes, list[tuple[int, int, bytes]], int, tuple[str, int]]:
        if not self.queued:
            raise BlockingIOError
        data, t = self.queued.popleft()
        sec = int(t)
        anc = [(socket.SOL_SOCKET, SO_TIMESTAMPNS, struct.pack("@qq", sec, round((t - sec) * 1e9)))]
        return data, anc, 0, (str(MASTER), 0)


def test_the_ipv4_sockets_own_repeat_loop_reads_what_the_generic_one_reads():
    a, b = datagram(150, ident=1), datagram(150, ident=2)
    other, low_ttl = datagram(160), datagram(150, ttl=64)  # another advert; the same bytes after a TTL not 255
    key = VrrpSocket.cache_key(a)
    for queued in ([], [(a, 1.5)], [(a, 1.5), (b, 2.25), (a, 3.0)], [(a, 1.5), (other, 2.0), (b, 2.5)],
                   [(other, 1.0)], [(a, 1.0), (low_ttl, 1.5)]):
        s = VrrpSocket.__new__(VrrpSocket)
        s.sock = RecvmsgSocket(queued)  # type: ignore[assignment]
        generic = VrrpSocket.__new__(VrrpSocket)
        generic.sock = RecvmsgSocket(queued)  # type: ignore[assignment]
        got = s.read_repeats(key)
        assert got == read_repeats(generic.recv, VrrpSocket.cache_key, key)
        assert list(s.sock.queued) == list(generic.sock.queued)  # type: ignore[attr-defined]
        n, last, rest = got
        assert n == sum(1 for _ in itertools.takewhile(lambda q: q[0] in (a, b), queued))
        assert (last is None) == (n == 0) and len(rest) == (n < len(queued))
        if last is not None:
            assert abs(last[1] - queued[n - 1][1]) < 1e-6  # its kernel time

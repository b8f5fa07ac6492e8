"""VrrpFailover._idlewait, the idle IPv4 Backup's wait in C, on real sockets: datagrams shaped like VRRP adverts
(IPv4 header, TTL 255, protocol 112) sent over loopback UDP (the C loop only peeks, reads and compares bytes, so any
datagram socket with SO_TIMESTAMPNS will do), a real epoll for the hot loop's other descriptors, real signals.
The driver's use of it runs in every two-router and interop test (the CLI's LeanLoop turns it on)."""

from __future__ import annotations

import select
import signal
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from VrrpFailover import _idlewait as native  # built by setup.py (scripts/bootstrap.sh checks); no skip without it
from VrrpFailover.netio import SO_TIMESTAMPNS, VrrpSocket


def advert(priority: int = 100, ttl: int = 255) -> bytes:
    body = bytes([0x31, 7, priority, 1, 0, 100, 0, 0]) + bytes([10, 0, 0, 100])
    total = 20 + len(body)
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0, ttl, 112, 0, bytes([10, 0, 0, 1]),
                       bytes([224, 0, 0, 18]))
    return head + body


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket, select.epoll]]:
    with (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
          as tx, select.epoll() as ep):
        rx.bind(("127.0.0.1", 0))
        rx.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        rx.setblocking(False)
        tx.connect(rx.getsockname())
        yield rx, tx, ep


def _key(datagram: bytes) -> bytes:
    key = VrrpSocket.cache_key(datagram)
    assert key is not None
    return key


def _sender(tx: socket.socket, datagram: bytes, every: float, until: float, sent: list[float]) -> threading.Thread:
    def run() -> None:
        while time.monotonic() < until:
            tx.send(datagram)
            sent.append(time.time())
            time.sleep(every)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_repeats_keep_it_waiting_and_silence_past_the_deadline_ends_it(pair) -> None:
    rx, tx, ep = pair
    a = advert()
    sent: list[float] = []
    start = time.monotonic()
    t = _sender(tx, a, 0.02, start + 0.4, sent)
    status, n, last = native.idle_wait(ep.fileno(), rx.fileno(), _key(a), start + 0.1, 0.1, start + 10)
    took = time.monotonic() - start
    t.join()
    assert status == native.SILENCE
    assert n == len(sent)  # every repeat read, none left
    assert abs(last - sent[-1]) < 0.05  # the kernel's receive time of the last one (CLOCK_REALTIME)
    assert 0.45 <= took < 1.5  # the last repeat (~0.4 s) + 0.1 s; never before (generous upper bound)
    with pytest.raises(BlockingIOError):
        rx.recv(2048)


def test_a_datagram_that_is_not_a_repeat_ends_it_and_stays_queued(pair) -> None:
    rx, tx, ep = pair
    a, better = advert(100), advert(200)
    for _ in range(3):
        tx.send(a)
    tx.send(better)
    tx.send(a)
    start = time.monotonic()
    status, n, _last = native.idle_wait(ep.fileno(), rx.fileno(), _key(a), start, 0.1, start + 10)
    assert (status, n) == (native.OTHER, 3)
    assert rx.recv(2048) == better and rx.recv(2048) == a  # peeked only: Python reads it, in order


@pytest.mark.parametrize("odd", [advert(ttl=64), advert()[:-1], b"\x45" * 40])
def test_what_the_socket_would_not_cache_is_not_a_repeat(pair, odd: bytes) -> None:
    rx, tx, ep = pair
    tx.send(odd)
    start = time.monotonic()
    status, n, _ = native.idle_wait(ep.fileno(), rx.fileno(), _key(advert()), start, 0.1, start + 10)
    assert (status, n) == (native.OTHER, 0)
    assert rx.recv(2048) == odd


def test_the_hot_loop_s_readiness_ends_it_at_once(pair) -> None:
    rx, _tx, ep = pair
    other_rx, other_tx = socket.socketpair()
    ep.register(other_rx.fileno(), select.EPOLLIN)
    try:
        start = time.monotonic()
        threading.Timer(0.1, other_tx.send, (b"x",)).start()
        status, n, _ = native.idle_wait(ep.fileno(), rx.fileno(), _key(advert()), start + 5, 1.0, start + 10)
        took = time.monotonic() - start
        assert (status, n) == (native.EVENT, 0) and took < 1.0
    finally:
        other_rx.close()
        other_tx.close()


def test_the_hot_loop_s_next_timer_ends_it(pair) -> None:
    rx, _tx, ep = pair
    start = time.monotonic()
    status, n, _ = native.idle_wait(ep.fileno(), rx.fileno(), _key(advert()), start + 5, 1.0, start + 0.15)
    took = time.monotonic() - start
    assert (status, n) == (native.LIMIT, 0) and 0.15 <= took < 1.0


def test_a_signal_ends_it_and_its_handler_runs(pair) -> None:
    rx, _tx, ep = pair
    seen: list[int] = []
    old = signal.signal(signal.SIGALRM, lambda signum, _frame: seen.append(signum))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        start = time.monotonic()
        status, n, _ = native.idle_wait(ep.fileno(), rx.fileno(), _key(advert()), start + 5, 1.0, start + 10)
        took = time.monotonic() - start
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert (status, n) == (native.EVENT, 0) and took < 1.0
    assert seen == [signal.SIGALRM]


def test_a_closed_descriptor_is_an_error_not_a_hang(pair) -> None:
    _rx, _tx, ep = pair
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    fd = dead.fileno()
    dead.close()
    start = time.monotonic()
    with pytest.raises(OSError):
        native.idle_wait(ep.fileno(), fd, _key(advert()), start, 0.1, start + 10)


# -- master_wait: a routine Master's sends, on raw IPPROTO_VRRP sockets over loopback (needs root, as the suite) -----
LOOPBACK = socket.inet_aton("127.0.0.1")


@pytest.fixture
def raw() -> Iterator[tuple[socket.socket, socket.socket, select.epoll]]:
    with (socket.socket(socket.AF_INET, socket.SOCK_RAW, 112) as tx, socket.socket(socket.AF_INET, socket.SOCK_RAW,
                                                                                   112) as rx, select.epoll() as ep):
        rx.setblocking(False)
        yield tx, rx, ep


def _drain(rx: socket.socket) -> list[bytes]:
    got = []
    while True:
        try:
            got.append(rx.recv(2048))
        except BlockingIOError:
            return got


def test_master_wait_sends_each_advert_at_its_deadline_until_the_limit(raw) -> None:
    tx, rx, ep = raw
    body = advert()[20:]
    start = time.monotonic()
    status, rounds, last, failed, err = native.master_wait(
        ep.fileno(), start + 0.55, [(tx.fileno(), body, LOOPBACK, start + 0.05, 0.1)])
    took = time.monotonic() - start
    assert (status, failed, err) == (native.LIMIT, -1, 0)
    assert rounds == (6,)  # at 0.05, 0.15, ... 0.55: the last one is due at the limit itself
    assert 0.5 <= last[0] - start < 0.8 and 0.55 <= took < 1.5
    got = _drain(rx)
    assert [g[20:] for g in got] == [body] * 6  # the kernel put the IPv4 header on: what a VRRP peer receives


def test_master_wait_keeps_each_sender_on_its_own_schedule(raw) -> None:
    tx, rx, ep = raw
    fast, slow = advert(150)[20:], advert(100)[20:]
    start = time.monotonic()
    status, rounds, _last, _failed, _err = native.master_wait(
        ep.fileno(), start + 0.42, [(tx.fileno(), fast, LOOPBACK, start, 0.05), (tx.fileno(), slow, LOOPBACK, start,
                                                                                 0.2)])
    assert status == native.LIMIT
    assert rounds[0] in (8, 9) and rounds[1] == 3  # 0, 0.05, ... and 0, 0.2, 0.4
    got = [g[20:] for g in _drain(rx)]
    assert got.count(fast) == rounds[0] and got.count(slow) == rounds[1]


def test_master_wait_returns_when_the_hot_loop_has_work_and_counts_what_it_sent(raw) -> None:
    tx, _rx, ep = raw
    other_rx, other_tx = socket.socketpair()
    ep.register(other_rx.fileno(), select.EPOLLIN)  # (the Master's VRRP socket is one: an advert came in)
    try:
        start = time.monotonic()
        threading.Timer(0.22, other_tx.send, (b"x",)).start()
        status, rounds, _last, _failed, _err = native.master_wait(
            ep.fileno(), start + 10, [(tx.fileno(), advert()[20:], LOOPBACK, start, 0.1)])
        assert status == native.EVENT and rounds == (3,) and time.monotonic() - start < 1.0
    finally:
        other_rx.close()
        other_tx.close()


def test_master_wait_reports_a_failed_send_and_the_round_it_was(raw) -> None:
    _tx, _rx, ep = raw
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # port 0 is no destination for UDP: EINVAL
    try:
        start = time.monotonic()
        status, rounds, _last, failed, err = native.master_wait(
            ep.fileno(), start + 10, [(udp.fileno(), b"x", LOOPBACK, start, 0.1)])
    finally:
        udp.close()
    assert (status, rounds, failed) == (native.SENDERR, (1,), 0) and err != 0


@pytest.mark.parametrize("bad", [(0, b"x", b"\x7f\0\0", 0.0, 0.1), (0, b"x", LOOPBACK, 0.0, 0.0), (0, "x")])
def test_master_wait_refuses_a_malformed_sender(raw, bad) -> None:
    _tx, _rx, ep = raw
    with pytest.raises((ValueError, TypeError)):
        native.master_wait(ep.fileno(), time.monotonic() + 1, [bad])

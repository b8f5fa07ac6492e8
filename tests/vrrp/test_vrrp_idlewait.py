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
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    rx.setblocking(False)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect(rx.getsockname())
    ep = select.epoll()
    try:
        yield rx, tx, ep
    finally:
        ep.close()
        rx.close()
        tx.close()


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

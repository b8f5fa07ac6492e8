"""The floor under any Python VRRP router on this machine, next to keepalived in the same run.

`python -m bench.vrrp_floor` (root). Minimal Python processes that do only the I/O of a role, no decisions:
  - Master: send a prebuilt advert every interval, sleeping in a bare ``epoll.poll`` loop, then in asyncio
    (``call_at``), each heard by a keepalived Backup;
  - Backup: read every advert as it comes (epoll), or read the queue only at the Master_Down deadline (epoll, then
    asyncio), each beside a keepalived Backup hearing the same keepalived Master; and the same
    wait in C that VrrpFailover's idle Backup uses (``VrrpFailover._idlewait.idle_wait``, docs/vrrp.md "The
    Backup's wake-up").
Prints CPU (schedstat) per advert interval. What VrrpFailover spends above these lines is its own Python per
wake-up (the router's decision, the driver); what they spend above keepalived is the interpreter's.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import struct
import sys
import time
from ipaddress import IPv4Address

VRRP_GROUP = "224.0.0.18"


def _master(adv: float, loop: str, src: str) -> None:
    from VrrpFailover.packet import VRRP_GROUP as GROUP
    from VrrpFailover.packet import Advert, encode

    msg = encode(Advert(version=3, vrid=51, priority=150, interval=adv, addresses=(IPv4Address("10.99.0.100"),)),
                 IPv4Address(src), GROUP)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
    idx = socket.if_nametoindex("eth0")
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, GROUP.packed + IPv4Address(src).packed
                 + struct.pack("@i", idx))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    dst = (VRRP_GROUP, 0)
    if loop == "asyncio":
        import asyncio

        async def run() -> None:
            lp = asyncio.get_running_loop()

            def tick(at: float) -> None:
                s.sendto(msg, dst)
                lp.call_at(at + adv, tick, at + adv)
            lp.call_at(lp.time(), tick, lp.time())
            await asyncio.Event().wait()
        asyncio.run(run())
    ep = select.epoll()
    t = time.monotonic()
    while True:
        t += adv
        ep.poll(max(0.0, t - time.monotonic()))
        s.sendto(msg, dst)


def _native_wait(s: socket.socket, mdi: float) -> None:
    """Learn the Master's advert, then wait in VrrpFailover's C (``_idlewait.idle_wait``, as the driver does) until a
    datagram differs (learn it) or the silence passes the deadline (start over)."""
    from VrrpFailover import _idlewait
    from VrrpFailover.netio import VrrpSocket

    nothing = select.epoll()  # the driver passes its hot loop's; here nothing else can end the wait
    ep = select.epoll()
    ep.register(s.fileno(), select.EPOLLIN)
    while True:
        ep.poll()
        key = VrrpSocket.cache_key(s.recvmsg(2048, 64)[0])
        if key is None:
            continue
        _idlewait.idle_wait(nothing.fileno(), s.fileno(), key, time.monotonic() + mdi, mdi, float("inf"))


def _backup(adv: float, loop: str) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
    s.setsockopt(socket.IPPROTO_IP, 49, 0)  # IP_MULTICAST_ALL
    idx = socket.if_nametoindex("eth0")
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(VRRP_GROUP) + b"\0" * 4
                 + struct.pack("@i", idx))
    s.setsockopt(socket.SOL_SOCKET, 35, 1)  # SO_TIMESTAMPNS
    s.setblocking(False)
    mdi = 3 * adv + adv * 156 / 256
    if loop == "native":
        _native_wait(s, mdi)

    def read_all() -> bool:
        got = False
        while True:
            try:
                s.recvmsg(2048, 64)
            except BlockingIOError:
                return got
            got = True
    if loop == "batch-asyncio":
        import asyncio

        async def run() -> None:
            lp = asyncio.get_running_loop()
            deadline = [lp.time() + mdi]

            def tick() -> None:
                if read_all():
                    deadline[0] = lp.time() + mdi
                lp.call_at(deadline[0], tick)
            lp.call_at(deadline[0], tick)
            await asyncio.Event().wait()
        asyncio.run(run())
    ep = select.epoll()
    if loop == "each":
        ep.register(s.fileno(), select.EPOLLIN)
    deadline = time.monotonic() + mdi
    while True:
        ep.poll(max(0.0, deadline - time.monotonic()))
        if read_all():
            deadline = time.monotonic() + mdi


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--window", type=float, default=20.0)
    p.add_argument("--role", help=argparse.SUPPRESS)  # (a child: master|backup LOOP [SRC])
    p.add_argument("--loop", help=argparse.SUPPRESS)
    p.add_argument("--src", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.role == "master":
        _master(a.interval, a.loop, a.src)
        return 0
    if a.role == "backup":
        _backup(a.interval, a.loop)
        return 0
    return _measure(a)


def _measure(a: argparse.Namespace) -> int:
    from bench.vrrp import cpu_seconds, pids
    from labs.vrrp import Lab, keepalived_config

    adv, window = a.interval, a.window
    me = [sys.executable, "-m", "bench.vrrp_floor", "--interval", str(adv)]

    def measure(named: dict[str, list[int]]) -> None:
        c0 = {k: sum(cpu_seconds(x) for x in v) for k, v in named.items()}
        t0 = time.monotonic()
        time.sleep(window)
        dt = time.monotonic() - t0
        for k, v in named.items():
            used = sum(cpu_seconds(x) for x in v) - c0[k]
            print(f"  {k:40} {100 * used / dt:7.4f} %  {1e6 * used / (dt / adv):7.1f} us per interval", flush=True)

    print(f"advert_interval {adv:g}s, {window:g}s windows (CPU from schedstat)")
    with Lab(("a", "b", "c", "d", "e", "f")) as lab:
        km = lab.start_keepalived("a", keepalived_config(priority=150, advert_int=adv))
        km.wait_state("Master", 15)
        kb = lab.start_keepalived("b", keepalived_config(priority=100, advert_int=adv))
        kb.wait_state("Backup", 15)
        kids = {name: lab.net.popen(host, [*me, "--role", "backup", "--loop", loop], env=dict(os.environ))
                for name, host, loop in (("python Backup, each advert (epoll)", "c", "each"),
                                         ("python Backup, at deadlines (epoll)", "d", "batch"),
                                         ("python Backup, at deadlines (asyncio)", "e", "batch-asyncio"),
                                         ("VrrpFailover's C Backup wait (_idlewait)", "f", "native"))}
        time.sleep(2)
        measure({"keepalived Master": pids(km), "keepalived Backup": pids(kb),
                 **{k: [v.pid] for k, v in kids.items()}})
        dead = [k for k, v in kids.items() if v.poll() is not None]
        if dead:  # (a process that died would show as cheap)
            raise RuntimeError(f"exited during the window: {', '.join(dead)}")
        for v in kids.values():
            v.kill()
            v.wait()
    with Lab(("a", "b")) as lab:
        kb = lab.start_keepalived("b", keepalived_config(priority=100, advert_int=adv))
        time.sleep(0.5)
        for loop in ("epoll", "asyncio"):
            m = lab.net.popen("a", [*me, "--role", "master", "--loop", loop, "--src", str(lab.address("a"))],
                              env=dict(os.environ))
            time.sleep(2)
            measure({f"python Master ({loop})": [m.pid]})
            m.kill()
            m.wait()
        if kb.current_state() != "Backup":
            raise RuntimeError("the keepalived Backup did not hear the Python Master")
        km = lab.start_keepalived("a", keepalived_config(priority=150, advert_int=adv))
        km.wait_state("Master", 15)
        time.sleep(1)
        measure({"keepalived Master (same receivers)": pids(km)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

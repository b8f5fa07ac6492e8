"""The IPv6 operating-system edge of VrrpFailover (VRRPv3 over IPv6, RFC 5798 5.1.2): sockets, nothing that decides.

The counterparts of ``netio``'s IPv4 classes, with the same methods, so the driver treats both alike:

- ``read_facts6(nl, ifname, exclude)``: ifindex, MAC and the interface's IPv6 link-local address, the
  advert source (RFC 5798 5.1.2.1); a tentative one (duplicate-address detection still running) is
  waited for, a few seconds at most.
- ``Vrrp6Socket``: the raw IPv6 IPPROTO_VRRP socket of one interface: SO_BINDTODEVICE,
  IPV6_MULTICAST_ALL=0 (only the groups this socket joined), ff02::12 joined on the interface,
  IPV6_MULTICAST_IF, multicast and unicast hop limit 255, no loop, traffic class 0xC0,
  IPV6_RECVHOPLIMIT and IPV6_RECVPKTINFO (the kernel strips the IPv6 header: the hop limit and the
  destination come as ancillary data), SO_TIMESTAMPNS. Each advert goes out with IPV6_PKTINFO naming
  the link-local source and the interface. The checksum is ours (IPV6_CHECKSUM is not set, so the
  kernel drops nothing silently: a bad checksum is counted like any bad packet).
- ``PriorityZero6Socket``: a second raw socket whose classic BPF filter passes priority-0 adverts only
  (over the VRRP message itself: an IPv6 raw socket's filter sees no IP header).
- ``NaSender``: ONE persistent AF_PACKET socket per interface sending unsolicited neighbour
  advertisements (``VrrpFailover.nd``: Override set, Router as the interface forwards). It is made
  with protocol 0, so it receives nothing (one bound to ETH_P_IPV6 would get a copy of every IPv6
  frame on the link).
- ``open_ipv6(nl, ifname, exclude)``: all of the above for one interface, closed again on failure.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
import time
from collections.abc import Iterable
from ipaddress import IPv6Address

from VrrpFailover.nd import ETH_P_IPV6, na_frame
from VrrpFailover.netio import (
    SO_TIMESTAMPNS,
    TOS_NETWORK_CONTROL,
    FilteredSocket,
    InterfaceFacts,
    read_repeats,
)
from VrrpFailover.packet import IPPROTO_VRRP, VRRP_GROUP6, VRRP_TTL, Received, decode_ipv6
from VrrpFailover.rtnetlink import RtNetlink

IPV6_MULTICAST_ALL = 29  # Linux 4.20+; not in Python 3.11's socket module
IFA_F_DADFAILED = 0x08
IFA_F_TENTATIVE = 0x40
LINK_LOCAL_WAIT = 5.0  # seconds to wait for a tentative link-local address (DAD takes about 1-2 s)
_ANCILLARY = socket.CMSG_SPACE(4) + socket.CMSG_SPACE(20) + socket.CMSG_SPACE(16) + 64

Raw6 = tuple[bytes, str, bytes | None, int | None]  # message, source text, destination, hop limit


def usable_link_local(addresses: Iterable[tuple[IPv6Address, int]], exclude: Iterable[IPv6Address]
                      ) -> tuple[IPv6Address | None, bool]:
    """(the first link-local address that is neither excluded nor tentative nor failed DAD, whether a tentative
    one exists) from (address, IFA flags) pairs."""
    skip = set(exclude)
    tentative = False
    for ip, flags in addresses:
        if not ip.is_link_local or ip in skip or flags & IFA_F_DADFAILED:
            continue
        if flags & IFA_F_TENTATIVE:
            tentative = True
            continue
        return ip, tentative
    return None, tentative


async def read_facts6(nl: RtNetlink, ifname: str, exclude: Iterable[IPv6Address],
                      wait: float = LINK_LOCAL_WAIT) -> InterfaceFacts:
    """ifindex, MAC and link-local address of ``ifname``: the advert source. ``exclude``: the virtual addresses
    (a link-local virtual address moves: it is not the interface's own)."""
    idx = nl.link_lookup(ifname=ifname)
    if not idx:
        raise OSError(errno.ENODEV, f"no interface {ifname}")
    index = idx[0]
    mac = nl.link_mac(index) or bytes(6)
    skip = tuple(exclude)
    deadline = time.monotonic() + wait
    while True:
        found = [(ip, flags) for ip, _len, flags in nl.addresses(index, socket.AF_INET6)]
        ip, tentative = usable_link_local(found, skip)
        if ip is not None:
            return InterfaceFacts(name=ifname, index=index, mac=mac, primary_ip=ip)
        if not tentative or time.monotonic() >= deadline:
            why = "only a tentative one (duplicate-address detection did not finish)" if tentative else "none"
            raise OSError(errno.EADDRNOTAVAIL, f"interface {ifname} has no usable IPv6 link-local address of its "
                                               f"own ({why}); VRRP over IPv6 sends from it (RFC 5798 5.1.2.1)")
        await asyncio.sleep(0.1)


def _vrrp6_raw_socket(facts: InterfaceFacts) -> socket.socket:
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_VRRP)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, facts.name.encode())
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, VRRP_GROUP6.packed + struct.pack("@I", facts.index))
        s.setblocking(False)
    except OSError:
        s.close()
        raise
    return s


class Vrrp6Socket:
    """Raw IPv6 VRRP socket of one interface. ``recv()`` returns (the message with the facts of its IPv6 header,
    kernel receive time on the CLOCK_REALTIME scale); ``decode`` turns the first into a ``Received``."""

    group = VRRP_GROUP6

    def __init__(self, facts: InterfaceFacts) -> None:
        self.facts = facts
        s = _vrrp6_raw_socket(facts)
        try:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, facts.index)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, VRRP_TTL)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, VRRP_TTL)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, TOS_NETWORK_CONTROL)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            s.close()
            raise
        self.sock = s
        # the source and the interface of every advert (struct in6_pktinfo)
        self._pktinfo = [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO,
                          facts.primary_ip.packed + struct.pack("@I", facts.index))]

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, message: bytes, dst: IPv6Address = VRRP_GROUP6) -> None:
        self.sock.sendmsg([message], self._pktinfo, 0, (str(dst), 0, 0, self.facts.index))

    def sockaddr(self, dst: IPv6Address) -> tuple[str, int, int, int]:
        """What ``send_to`` takes for ``dst``: made once per destination, not per advert."""
        return (str(dst), 0, 0, self.facts.index)

    def send_to(self, message: bytes, sockaddr: tuple[str, int, int, int]) -> None:
        self.sock.sendmsg([message], self._pktinfo, 0, sockaddr)

    @staticmethod
    def cache_key(packet: Raw6) -> Raw6:
        """``decode`` depends on the message and the facts of its header only: the packet itself is the key."""
        return packet

    def recv(self) -> tuple[Raw6, float | None] | None:
        try:
            data, anc, _flags, addr = self.sock.recvmsg(65535, _ANCILLARY)
        except (BlockingIOError, InterruptedError):
            return None
        hop: int | None = None
        dst: bytes | None = None
        kernel_time: float | None = None
        for level, kind, payload in anc:
            if level == socket.IPPROTO_IPV6:
                if kind == socket.IPV6_HOPLIMIT and len(payload) >= 4:
                    hop = struct.unpack_from("@i", payload)[0]
                elif kind == socket.IPV6_PKTINFO and len(payload) >= 16:
                    dst = payload[:16]
            elif level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
                sec, nsec = struct.unpack_from("@qq", payload)
                kernel_time = sec + nsec / 1e9
        return (data, addr[0], dst, hop), kernel_time

    def read_repeats(self, key: Raw6) -> tuple[int, tuple[Raw6, float | None] | None,
                                               list[tuple[Raw6, float | None]]]:
        """``netio.VrrpSocket.read_repeats`` for IPv6, through ``recv`` (the key is the whole packet)."""
        return read_repeats(self.recv, self.cache_key, key)

    @staticmethod
    def decode(packet: Raw6) -> Received:
        """RemoteInputError(reason) for what must be dropped (``packet.decode_ipv6``)."""
        data, source, dst, hop = packet
        src = IPv6Address(source.partition("%")[0])  # a link-local source comes as fe80::1%eth0
        return decode_ipv6(data, src, IPv6Address(dst) if dst is not None else VRRP_GROUP6, hop)

    def close(self) -> None:
        self.sock.close()


# classic BPF over the VRRP message (an IPv6 raw socket's filter sees no IPv6 header): A = byte 2 (the priority);
# keep the packet if A == 0, else drop it.
_PRIORITY_ZERO_FILTER6 = (
    (0x30, 0, 0, 2),  # ldb [2]
    (0x15, 0, 1, 0),  # jeq #0, keep, drop
    (0x06, 0, 0, 0xFFFF),  # keep: ret #65535
    (0x06, 0, 0, 0),  # drop: ret #0
)


class PriorityZero6Socket(FilteredSocket):
    """Wakes the driver for priority-0 adverts only (content is read again from the Vrrp6Socket)."""

    def __init__(self, facts: InterfaceFacts) -> None:
        super().__init__(_vrrp6_raw_socket(facts), _PRIORITY_ZERO_FILTER6)


class NaSender:
    """Unsolicited neighbour advertisements from one persistent AF_PACKET socket that receives nothing."""

    def __init__(self, facts: InterfaceFacts) -> None:
        self.facts = facts
        self._forwarding = f"/proc/sys/net/ipv6/conf/{facts.name}/forwarding"
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self.sock.setblocking(False)

    def router(self) -> bool:
        """The NA's Router flag: does this host forward IPv6 on the interface (as keepalived decides)?"""
        try:
            with open(self._forwarding, "rb") as f:
                return f.read().strip() not in (b"", b"0")
        except OSError:
            return False

    def send(self, addresses: Iterable[IPv6Address]) -> int:
        router = self.router()
        sent = 0
        for ip in addresses:
            try:
                self.sock.sendto(na_frame(self.facts.mac, ip, router=router), (self.facts.name, ETH_P_IPV6))
                sent += 1
            except (BlockingIOError, InterruptedError):
                pass
        return sent

    def close(self) -> None:
        self.sock.close()


async def open_ipv6(nl: RtNetlink, ifname: str, exclude: Iterable[IPv6Address]
                    ) -> tuple[InterfaceFacts, Vrrp6Socket, NaSender, PriorityZero6Socket]:
    """The facts and the three sockets of one interface; whatever was opened is closed if a later one fails."""
    facts = await read_facts6(nl, ifname, exclude)
    opened: list[Vrrp6Socket | NaSender | PriorityZero6Socket] = []
    try:
        sock = Vrrp6Socket(facts)
        opened.append(sock)
        na = NaSender(facts)
        opened.append(na)
        wake = PriorityZero6Socket(facts)
    except OSError:
        for s in opened:
            s.close()
        raise
    return facts, sock, na, wake

"""The operating-system edge of VrrpFailover: sockets and netlink, nothing that decides.

- ``InterfaceFacts.read(nl, ifname, exclude)``: ifindex, MAC and primary IPv4 address.
- ``AddressManager``: add/remove/list IPv4 and IPv6 addresses on an interface (idempotent; IPv6 ones
  with ``nodad``: usable at once, no duplicate-address detection wait, as keepalived adds them).
  Both use ``VrrpFailover.rtnetlink`` (our own small rtnetlink client, not pyroute2: its resident memory, see
  that module).
- ``VrrpSocket``: the raw IPPROTO_VRRP socket of one interface, set up as measured in
  testbed/NOTES.md (SO_BINDTODEVICE, IP_MULTICAST_ALL=0, group membership on the ifindex,
  IP_MULTICAST_IF pinned to the primary address, TTL 255, no loop, TOS 0xC0, no bind()).
- ``PriorityZeroSocket``: a second raw socket with a classic BPF filter that passes only adverts
  with priority 0: it wakes a Backup that otherwise reads its queue only at its deadlines.
- ``GarpSender``: ONE persistent AF_PACKET socket per interface sending gratuitous ARP as a
  broadcast ARP request with sender = target = the virtual address (what keepalived sends).
- The IPv6 counterparts of the sockets are in ``VrrpFailover.netio6``.
- ``check_interfaces``: unknown interface, or priority 255 for addresses the interface does not own ->
  ConfigError before anything is touched.
"""

from __future__ import annotations

import ctypes
import errno
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface, ip_address
from typing import Any

from VrrpFailover.packet import IPPROTO_VRRP, VRRP_GROUP, VRRP_TTL, decode_ip_packet
from VrrpFailover.rtnetlink import NetlinkError, RtNetlink
from VrrpFailover.settings import InstanceRules

IP_MULTICAST_ALL = 49  # not in Python 3.11's socket module
SO_TIMESTAMPNS = 35  # Linux: kernel receive time (CLOCK_REALTIME) as a cmsg
SO_ATTACH_FILTER = 26
ETH_P_ARP = 0x0806
TOS_NETWORK_CONTROL = 0xC0
IFA_F_NODAD = 0x02
SOL_SOCKET = socket.SOL_SOCKET
_TIMESPEC = struct.Struct("@qq")


def address_family(version: int) -> socket.AddressFamily:
    return socket.AF_INET6 if version == 6 else socket.AF_INET


def interface_addresses(index: int, family: int = socket.AF_INET) -> set[IPv4Address | IPv6Address]:
    """The addresses of ``family`` on interface ``index`` now (for checks before the loop runs)."""
    with RtNetlink() as nl:
        return {ip for ip, _len, _flags in nl.addresses(index, family)}


def check_interfaces(configs: Iterable[InstanceRules], source: str) -> None:
    """What only the host can say, before anything is touched: the interface exists, and an instance with
    priority 255 really is the address owner (RFC 5798 5.2.4: every virtual address is one of the interface's
    own addresses). ConfigError naming the key and why otherwise."""
    problems: list[tuple[str, object, str]] = []
    for n, c in enumerate(configs):
        try:
            index = socket.if_nametoindex(c.interface_name)
        except OSError:
            problems.append((f"[{n}].interface_name", c.interface_name,
                             "no such network interface on this host"))
            continue
        if c.is_address_owner:
            own = interface_addresses(index, address_family(c.family))
            missing = [str(ip) for ip in c.addresses if ip not in own]
            if missing:
                has = ", ".join(sorted(map(str, own), key=lambda a: ip_address(a))) or "none"
                problems.append((f"[{n}].priority", c.priority,
                                 f"priority 255 is only for the address owner (RFC 5798 5.2.4): every address in "
                                 f"ip_addresses must be one of {c.interface_name}'s own addresses, and "
                                 f"{', '.join(missing)} is not (it has: {has}); use 1-254 for a virtual address "
                                 f"that moves"))
    if problems:
        from failover_core.config import ConfigError  # (the CLI's check, before the daemon runs: pydantic is there)

        raise ConfigError(source, problems)


@dataclass(frozen=True, slots=True)
class InterfaceFacts:
    name: str
    index: int
    mac: bytes
    primary_ip: IPv4Address | IPv6Address  # the advert source: IPv6's is the link-local address (netio6)

    @classmethod
    async def read(cls, nl: RtNetlink, ifname: str, exclude: Iterable[IPv4Address]) -> InterfaceFacts:
        """The primary address is the first IPv4 address of the interface that is not in ``exclude`` (the
        virtual addresses that move; an address owner's are the interface's own and may be the primary)."""
        idx = nl.link_lookup(ifname=ifname)
        if not idx:
            raise OSError(errno.ENODEV, f"no interface {ifname}")
        index = idx[0]
        mac = nl.link_mac(index) or bytes(6)
        skip = set(exclude)
        primary = None
        for ip, _len, _flags in nl.addresses(index, socket.AF_INET):
            if ip not in skip and primary is None:
                primary = ip
        if primary is None:
            raise OSError(errno.EADDRNOTAVAIL, f"interface {ifname} has no IPv4 address of its own "
                                               "(VRRP needs one as the advert source)")
        return cls(name=ifname, index=index, mac=mac, primary_ip=primary)


class AddressManager:
    """IPv4 and IPv6 addresses on interfaces via one (async) netlink socket. Adding a present address or
    removing an absent one is not an error (netlink errors 17 / 99 are expected on restarts). IPv6
    addresses are added with ``nodad``: usable at once (without it one stays tentative ~1.85 s here)."""

    def __init__(self, nl: RtNetlink) -> None:
        self.nl = nl

    async def present(self, index: int, family: int = socket.AF_INET) -> set[IPv4Address | IPv6Address]:
        return {ip for ip, _len, _flags in self.nl.addresses(index, family)}

    async def add(self, index: int, iface: IPv4Interface | IPv6Interface) -> bool:
        nodad = {"flags": IFA_F_NODAD} if iface.version == 6 else {}
        try:
            await self.nl.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen,
                                **nodad)
        except NetlinkError as e:
            if e.code == errno.EEXIST:
                return False
            raise
        return True

    async def remove(self, index: int, iface: IPv4Interface | IPv6Interface) -> bool:
        try:
            await self.nl.addr("del", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        except NetlinkError as e:
            if e.code in (errno.EADDRNOTAVAIL, errno.ENOENT, errno.ESRCH):
                return False
            raise
        return True


def _vrrp_raw_socket(facts: InterfaceFacts) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_VRRP)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, facts.name.encode())
        s.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
        mreqn = VRRP_GROUP.packed + facts.primary_ip.packed + struct.pack("@i", facts.index)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
        s.setblocking(False)
    except OSError:
        s.close()
        raise
    return s


def _set_send_options(s: socket.socket, facts: InterfaceFacts) -> None:
    """Adverts leave ``facts``' interface with TTL 255 (multicast and unicast), as network control, not looped."""
    mreqn = VRRP_GROUP.packed + facts.primary_ip.packed + struct.pack("@i", facts.index)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, VRRP_TTL)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, VRRP_TTL)  # unicast adverts too
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, TOS_NETWORK_CONTROL)


class VrrpSocket:
    """Raw VRRP socket of one interface. ``recv()`` returns (datagram including the IPv4 header,
    kernel receive time on the CLOCK_REALTIME scale); ``decode`` turns the datagram into a ``Received``."""

    group = VRRP_GROUP
    decode = staticmethod(decode_ip_packet)

    def __init__(self, facts: InterfaceFacts) -> None:
        self.facts = facts
        s = _vrrp_raw_socket(facts)
        try:
            _set_send_options(s, facts)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            s.close()
            raise
        self.sock = s

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, message: bytes, dst: IPv4Address = VRRP_GROUP) -> None:
        self.sock.sendto(message, (str(dst), 0))

    @staticmethod
    def sockaddr(dst: IPv4Address) -> tuple[str, int]:
        """What ``send_to`` takes for ``dst``: made once per destination, not per advert."""
        return (str(dst), 0)

    def send_to(self, message: bytes, sockaddr: tuple[str, int]) -> None:
        self.sock.sendto(message, sockaddr)

    @staticmethod
    def cache_key(datagram: bytes) -> bytes | None:
        """A key under which ``decode(datagram)`` may be remembered, or None: with a 20-byte IPv4 header, TTL 255,
        protocol VRRP and a total length that is the datagram's, the decoded result depends on the bytes from the
        source address on only (identification, flags and header checksum are not looked at)."""
        if (len(datagram) >= 28 and datagram[0] == 0x45 and datagram[8] == VRRP_TTL and datagram[9] == IPPROTO_VRRP
                and (datagram[2] << 8 | datagram[3]) == len(datagram)):
            return datagram[12:]
        return None

    def recv(self) -> tuple[bytes, float | None] | None:
        try:
            data, anc, _flags, _addr = self.sock.recvmsg(65535, 64)
        except (BlockingIOError, InterruptedError):
            return None
        return data, _kernel_time(anc)

    def read_repeats(self, key: bytes) -> tuple[int, tuple[bytes, float | None] | None,
                                                list[tuple[bytes, float | None]]]:
        """Read the queue while each datagram has the cache key ``key`` (the same advert again): returns how many
        did, the last of them as ``recv`` returns it (None if none), and the first datagram that did not, if one
        came (``[]`` when the queue is empty): the caller reads that one next. One loop, with the ancillary data
        of the last repeat only turned into its time: an idle Backup's every wake-up is this (driver
        ``_drain_repeats``)."""
        recvmsg, cache_key = self.sock.recvmsg, self.cache_key
        n = 0
        data = anc = None
        while True:
            try:
                got, got_anc, _flags, _addr = recvmsg(65535, 64)
            except (BlockingIOError, InterruptedError):
                return n, (None if data is None else (data, _kernel_time(anc))), []
            if cache_key(got) != key:
                return n, (None if data is None else (data, _kernel_time(anc))), [(got, _kernel_time(got_anc))]
            n += 1
            data, anc = got, got_anc

    def close(self) -> None:
        self.sock.close()


def read_repeats(recv: Callable[[], tuple[Any, float | None] | None], cache_key: Callable[[Any], Any], key: Any
                 ) -> tuple[int, tuple[Any, float | None] | None, list[tuple[Any, float | None]]]:
    """``VrrpSocket.read_repeats`` through any socket's ``recv`` and ``cache_key`` (IPv6's, and the oracle its
    own loop is tested against)."""
    n = 0
    last = None
    while (got := recv()) is not None:
        if cache_key(got[0]) != key:
            return n, last, [got]
        n += 1
        last = got
    return n, last, []


def _kernel_time(anc: list[tuple[int, int, bytes]] | None) -> float | None:
    """The SO_TIMESTAMPNS receive time (CLOCK_REALTIME seconds) in a datagram's ancillary data, or None."""
    for level, kind, payload in anc or ():
        if level == SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
            sec, nsec = _TIMESPEC.unpack_from(payload)
            return sec + nsec / 1e9
    return None


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


# classic BPF over the IPv4 datagram: X = 4 * IHL; A = byte at X + 2 (the VRRP priority);
# keep the packet if A == 0, else drop it.
_PRIORITY_ZERO_FILTER = (
    (0xB1, 0, 0, 0),  # ldxb 4*([0]&0xf)
    (0x50, 0, 0, 2),  # ldb [x+2]
    (0x15, 0, 1, 0),  # jeq #0, keep, drop
    (0x06, 0, 0, 0xFFFF),  # keep: ret #65535
    (0x06, 0, 0, 0),  # drop: ret #0
)


_KEEP_NOTHING = ((0x06, 0, 0, 0),)  # ret #0


def attach_filter(sock: socket.socket, program: tuple[tuple[int, int, int, int], ...]) -> None:
    """Attach a classic BPF ``program`` to ``sock`` (the kernel copies it); on failure ``sock`` is closed."""
    prog = (_SockFilter * len(program))(*(_SockFilter(*i) for i in program))
    fprog = _SockFprog(len(program), prog)  # points into prog, alive until setsockopt returned
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(fprog))
    except OSError:
        sock.close()
        raise


class FilteredSocket:
    """A raw socket with a classic BPF program attached: it only wakes the driver (content is read again from
    the main socket); ``discard_all`` empties it after each wake-up."""

    def __init__(self, sock: socket.socket, program: tuple[tuple[int, int, int, int], ...]) -> None:
        self.sock = sock
        attach_filter(sock, program)

    def fileno(self) -> int:
        return self.sock.fileno()

    def discard_all(self) -> int:
        n = 0
        while True:
            try:
                self.sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return n
            n += 1

    def close(self) -> None:
        self.sock.close()


class PriorityZeroSocket(FilteredSocket):
    """Wakes the driver for priority-0 adverts only (content is read again from the VrrpSocket)."""

    def __init__(self, facts: InterfaceFacts) -> None:
        super().__init__(_vrrp_raw_socket(facts), _PRIORITY_ZERO_FILTER)


class AdvertSender:
    """A send-only VRRP socket on an interface (its own MAC): with use_vmac, where a stepping-down Master's last
    advert leaves, so the switch keeps the virtual MAC at the new Master. It joins no group and a filter that
    keeps nothing stops the kernel from queueing what arrives (a raw socket gets every VRRP packet otherwise)."""

    def __init__(self, facts: InterfaceFacts) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_VRRP)
        attach_filter(s, _KEEP_NOTHING)  # first, so nothing is ever queued (it closes s if it fails)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, facts.name.encode())
            _set_send_options(s, facts)
            s.setblocking(False)
        except OSError:
            s.close()
            raise
        self.facts = facts
        self.sock = s

    def send_to(self, message: bytes, sockaddr: tuple[str, int]) -> None:
        self.sock.sendto(message, sockaddr)

    def close(self) -> None:
        self.sock.close()


def garp_frame(mac: bytes, ip: IPv4Address) -> bytes:
    """Broadcast Ethernet frame carrying an ARP request with sender IP = target IP = ``ip``."""
    broadcast = b"\xff" * 6
    eth = broadcast + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + ip.packed + b"\0" * 6 + ip.packed
    return eth + arp


class GarpSender:
    """One persistent AF_PACKET socket per interface (closing one costs 8-35 ms: keep it open)."""

    def __init__(self, facts: InterfaceFacts) -> None:
        self.facts = facts
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        try:
            self.sock.bind((facts.name, ETH_P_ARP))
            self.sock.setblocking(False)
        except OSError:
            self.sock.close()
            raise

    def send(self, addresses: Iterable[IPv4Address]) -> int:
        sent = 0
        for ip in addresses:
            try:
                self.sock.send(garp_frame(self.facts.mac, ip))
                sent += 1
            except (BlockingIOError, InterruptedError):
                pass
        return sent

    def close(self) -> None:
        self.sock.close()

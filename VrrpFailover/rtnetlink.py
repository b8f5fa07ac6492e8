"""A small rtnetlink client (AF_NETLINK / NETLINK_ROUTE, struct packing) for what the daemon does at run time.

The project's rule is pyroute2 for netlink unless a measured reason says otherwise. The reason here is resident
memory: importing pyroute2 adds 10.5-10.9 MiB to the daemon (measured here, docs/vrrp.md "Measured": on top of the
run-time modules 24.5 -> 35.0 MiB VmRSS), most of keepalived's whole process (12.9 MiB), and the daemon's RSS goal is
2x keepalived's. It was used for four requests, so this module does exactly those four:

- ``link_mac(index)``: RTM_GETLINK of one interface -> its IFLA_ADDRESS (the MAC);
- ``addresses(index, family)``: RTM_GETADDR dump -> (address, prefix length, flags) of one interface;
- ``addr("add"|"del", index=, address=, prefixlen=, flags=)``: RTM_NEWADDR / RTM_DELADDR, pyroute2's keywords and
  what pyroute2 sends for them (IPv4: IFA_LOCAL = IFA_ADDRESS = the address; IPv6: IFA_ADDRESS; ``flags`` in the
  header's ifa_flags, e.g. IFA_F_NODAD; add with NLM_F_CREATE | NLM_F_EXCL), so an error comes back as pyroute2's
  did: ``NetlinkError`` with ``.code`` the errno (EEXIST for a present address, EADDRNOTAVAIL for an absent one);
- ``link_lookup(ifname=)``: the index (``if_nametoindex``), ``[]`` when there is none, as pyroute2's.

The link events the interface watcher listens to were already raw netlink (``VrrpFailover.track``). pyroute2 stays,
imported only then, where it is rare and larger: making and removing the ``use_vmac`` macvlans
(``VrrpFailover.vmac``) and the CLI's checks before the daemon starts.

The socket is blocking (with a timeout): the kernel answers an rtnetlink request within the sendmsg call (the
reply is queued before ``send`` returns), so a request does not wait on anything but the kernel's own work; the
``async`` ``addr`` is so for its callers' sake (``netio.AddressManager``, pyroute2's AsyncIPRoute before).
Packing and parsing are pure functions (``pack_*``, ``parse_messages``, ``parse_attrs``): tests/vrrp
test_vrrp_rtnetlink.py checks them against the bytes the kernel sends and takes.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address, IPv6Address, ip_address

NLMSG_HDR = struct.Struct("=IHHII")  # length, type, flags, seq, port id
IFINFOMSG = struct.Struct("=BxHiII")  # family, (pad), type, index, flags, change
IFADDRMSG = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, index
RTA_HDR = struct.Struct("=HH")  # length, type
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_GETLINK, RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 18, 20, 21, 22
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP, NLM_F_EXCL, NLM_F_CREATE = 0x300, 0x200, 0x400
IFLA_ADDRESS = 1
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS = 1, 2, 8
TIMEOUT = 5.0  # s: a kernel that does not answer a request (it always does at once) is an error, not a hang


class NetlinkError(OSError):
    """The kernel refused a request: ``code`` is the errno (pyroute2's NetlinkError has the same ``code``)."""

    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(code, message or os.strerror(code))
        self.code = code


def _align(n: int) -> int:
    return (n + 3) & ~3


def pack_attr(kind: int, payload: bytes) -> bytes:
    length = RTA_HDR.size + len(payload)
    return RTA_HDR.pack(length, kind) + payload + b"\0" * (_align(length) - length)


def pack_message(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    return NLMSG_HDR.pack(NLMSG_HDR.size + len(body), kind, flags, seq, 0) + body


def pack_addr_request(op: str, seq: int, *, index: int, address: str, prefixlen: int, flags: int = 0) -> bytes:
    """RTM_NEWADDR (``op`` "add") or RTM_DELADDR ("del") for ``address``/``prefixlen`` on interface ``index``."""
    ip = ip_address(address)
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    body = IFADDRMSG.pack(family, prefixlen, flags & 0xFF, 0, index)
    if ip.version == 4:
        body += pack_attr(IFA_LOCAL, ip.packed)
    body += pack_attr(IFA_ADDRESS, ip.packed)
    if op == "add":
        return pack_message(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, body)
    if op == "del":
        return pack_message(RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, seq, body)
    raise ValueError(f"unknown address operation {op!r}")


def pack_addr_dump(seq: int, family: int) -> bytes:
    return pack_message(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq, IFADDRMSG.pack(family, 0, 0, 0, 0))


def pack_link_get(seq: int, index: int) -> bytes:
    return pack_message(RTM_GETLINK, NLM_F_REQUEST, seq, IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0))


def parse_messages(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """(type, flags, seq, body) of each netlink message in one datagram (a truncated one ends the datagram)."""
    pos = 0
    while pos + NLMSG_HDR.size <= len(data):
        length, kind, flags, seq, _port = NLMSG_HDR.unpack_from(data, pos)
        if length < NLMSG_HDR.size or pos + length > len(data):
            return
        yield kind, flags, seq, data[pos + NLMSG_HDR.size:pos + length]
        pos += _align(length)


def parse_attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    """Route attributes from ``offset`` on: type -> payload (the first of a type; nested ones are left packed)."""
    out: dict[int, bytes] = {}
    pos = offset
    while pos + RTA_HDR.size <= len(data):
        length, kind = RTA_HDR.unpack_from(data, pos)
        if length < RTA_HDR.size or pos + length > len(data):
            break
        out.setdefault(kind & 0x3FFF, data[pos + RTA_HDR.size:pos + length])  # (without NLA_F_NESTED / BYTEORDER)
        pos += _align(length)
    return out


def error_code(body: bytes) -> int:
    """The errno of an NLMSG_ERROR message (0: an acknowledgement)."""
    return -struct.unpack_from("=i", body)[0]


def parse_address(body: bytes) -> tuple[int, IPv4Address | IPv6Address, int, int] | None:
    """(interface index, address, prefix length, flags) of an RTM_NEWADDR message; the address is IFA_ADDRESS (as
    pyroute2's ``get("IFA_ADDRESS")``), the flags IFA_FLAGS when present (32 bits) else the header's."""
    if len(body) < IFADDRMSG.size:
        return None
    family, prefixlen, flags, _scope, index = IFADDRMSG.unpack_from(body)
    attrs = parse_attrs(body, IFADDRMSG.size)
    raw = attrs.get(IFA_ADDRESS, attrs.get(IFA_LOCAL))
    if raw is None or (family, len(raw)) not in ((socket.AF_INET, 4), (socket.AF_INET6, 16)):
        return None
    if IFA_FLAGS in attrs and len(attrs[IFA_FLAGS]) >= 4:
        flags = struct.unpack_from("=I", attrs[IFA_FLAGS])[0]
    return index, ip_address(raw), prefixlen, flags


def parse_link_mac(body: bytes) -> bytes | None:
    if len(body) < IFINFOMSG.size:
        return None
    return parse_attrs(body, IFINFOMSG.size).get(IFLA_ADDRESS)


class RtNetlink:
    """One NETLINK_ROUTE socket; requests one at a time (the driver's netlink worker serialises them)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        try:
            self.sock.bind((0, 0))
            self.sock.settimeout(TIMEOUT)
        except OSError:
            self.sock.close()
            raise
        self._seq = itertools.count(1)

    def __enter__(self) -> RtNetlink:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def _request(self, build: Callable[[int], bytes]) -> Iterator[tuple[int, int, bytes]]:
        """Send the message ``build(seq)`` makes; yield (type, flags, body) of each answer with that sequence number
        until the end (an acknowledgement, an error -> NetlinkError, or NLMSG_DONE of a dump)."""
        seq = next(self._seq)
        self.sock.send(build(seq))
        while True:
            data = self.sock.recv(1 << 16)
            for kind, flags, got_seq, body in parse_messages(data):
                if got_seq != seq:
                    continue  # (an answer to a request given up on: not ours any more)
                if kind == NLMSG_ERROR:
                    code = error_code(body)
                    if code:
                        raise NetlinkError(code)
                    return
                if kind == NLMSG_DONE:
                    return
                yield kind, flags, body
                if not flags & NLM_F_MULTI:
                    return

    def link_lookup(self, *, ifname: str) -> list[int]:
        try:
            return [socket.if_nametoindex(ifname)]
        except OSError:
            return []

    def link_mac(self, index: int) -> bytes:
        """The interface's MAC (IFLA_ADDRESS); b"" for one without (a tunnel, say)."""
        for _kind, _flags, body in self._request(lambda seq: pack_link_get(seq, index)):
            mac = parse_link_mac(body)
            if mac is not None:
                return mac
        return b""

    def addresses(self, index: int, family: int) -> list[tuple[IPv4Address | IPv6Address, int, int]]:
        """(address, prefix length, flags) of ``family`` on interface ``index``, in the kernel's order."""
        out = []
        for _kind, _flags, body in self._request(lambda seq: pack_addr_dump(seq, family)):
            got = parse_address(body)
            if got is not None and got[0] == index:
                out.append(got[1:])
        return out

    async def addr(self, op: str, *, index: int, address: str, prefixlen: int, flags: int = 0) -> None:
        """Add (``op`` "add") or remove ("del") an address: NetlinkError(EEXIST / EADDRNOTAVAIL ...) as pyroute2."""
        for _ in self._request(lambda seq: pack_addr_request(op, seq, index=index, address=address,
                                                             prefixlen=prefixlen, flags=flags)):
            pass


"""Unsolicited IPv6 neighbour advertisements (pure, no sockets): the IPv6 analogue of gratuitous ARP.

RFC 5798 6.4.1 (IPv6): a router that becomes Master sends an unsolicited Neighbor Advertisement
for each virtual address, with the Router flag as the node is (or not) a router and the Override
flag set, so hosts replace the link-layer address they had (RFC 4861 4.4, 7.2.6). ``na_frame``
builds the whole Ethernet frame, as keepalived 2.2.7 sends it through a packet socket:

    Ethernet: 33:33:00:00:00:01 (RFC 2464 7: ff02::1) <- the interface MAC, type 0x86DD
    IPv6:     source = the virtual address, destination ff02::1 (all nodes), hop limit 255,
              next header 58 (ICMPv6), payload 32 bytes
    ICMPv6:   type 136, code 0, checksum (IPv6 pseudo-header), flags R|S=0|O, target = the virtual
              address, option 2 (target link-layer address, length 1 = 8 bytes): the MAC

The frame's source MAC and the target link-layer address are the interface's MAC (no virtual MAC).
"""

from __future__ import annotations

import struct
from ipaddress import IPv6Address

from VrrpFailover.packet import internet_checksum

ETH_P_IPV6 = 0x86DD
ALL_NODES = IPv6Address("ff02::1")
ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"
IPPROTO_ICMPV6 = 58
ND_NEIGHBOR_ADVERT = 136
ND_HOP_LIMIT = 255  # RFC 4861 7.1.2: receivers drop ND messages with any other hop limit
ND_OPT_TARGET_LLADDR = 2
NA_FLAG_ROUTER = 0x80000000
NA_FLAG_SOLICITED = 0x40000000
NA_FLAG_OVERRIDE = 0x20000000
NA_LENGTH = 32  # ICMPv6 header 4 + flags 4 + target 16 + option 8


def na_message(mac: bytes, target: IPv6Address, *, router: bool, src: IPv6Address | None = None,
               dst: IPv6Address = ALL_NODES) -> bytes:
    """The ICMPv6 Neighbor Advertisement (unsolicited, Override set) for ``target`` at ``mac``, checksummed for
    the IPv6 header it goes in (source ``src``, default the target itself; destination ``dst``)."""
    if len(mac) != 6:
        raise ValueError(f"an Ethernet MAC is 6 bytes, not {len(mac)}")
    flags = NA_FLAG_OVERRIDE | (NA_FLAG_ROUTER if router else 0)
    body = struct.pack("!BBHI", ND_NEIGHBOR_ADVERT, 0, 0, flags) + target.packed + \
        struct.pack("!BB", ND_OPT_TARGET_LLADDR, 1) + mac
    source = target if src is None else src
    pseudo = source.packed + dst.packed + struct.pack("!I3xB", len(body), IPPROTO_ICMPV6)
    csum = internet_checksum(pseudo + body)
    return body[:2] + struct.pack("!H", csum) + body[4:]


def na_frame(mac: bytes, target: IPv6Address, *, router: bool) -> bytes:
    """The Ethernet frame carrying the unsolicited NA for ``target`` (see the module docstring)."""
    icmp = na_message(mac, target, router=router)
    ip6 = struct.pack("!IHBB", 6 << 28, len(icmp), IPPROTO_ICMPV6, ND_HOP_LIMIT) + target.packed + ALL_NODES.packed
    return ALL_NODES_MAC + mac + struct.pack("!H", ETH_P_IPV6) + ip6 + icmp

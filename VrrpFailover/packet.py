"""VRRP packet codec (pure, no sockets): VRRPv3 (RFC 5798) over IPv4 and IPv6, VRRPv2 (RFC 3768, IPv4 only).

``encode(advert, src, dst)`` returns the VRRP message (the kernel adds the IP header); the address
family is the source's. ``decode_ip_packet(datagram)`` takes what a raw IPv4 IPPROTO_VRRP socket
returns (IPv4 header + VRRP message); ``decode_ipv6(message, src, dst, hop_limit)`` takes what a raw
IPv6 one returns (the message alone: the kernel strips the IPv6 header, the source, destination and
hop limit come as the address and ancillary data of ``recvmsg``). Both return a ``Received``
(source, destination, TTL or hop limit, Advert) or raise ``RemoteInputError(reason)`` with a stable
reason code for the drop counters, a member of ``VrrpFailover.codes.PacketDropCode``. They never
raise anything else, whatever the bytes.

Wire layouts (network byte order)::

    v3: | ver=3 type=1 | VRID | priority | count | rsvd(4) max_adver_int(12, centiseconds) | checksum |
        | count * IPv4 address |                     checksum over IPv4 pseudo-header + message
    v2: | ver=2 type=1 | VRID | priority | count | auth type | adver_int (s) | checksum |
        | count * IPv4 address | 8 bytes auth data |  checksum over the message only
    v3 over IPv6 (RFC 5798 5.1.2): as v3, with count * 16-byte IPv6 addresses; the checksum covers the
        IPv6 pseudo-header (RFC 8200 8.1: source, destination, 32-bit length, 3 zero bytes, next header 112)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from failover_core.errors import RemoteInputError
from VrrpFailover.codes import PacketDropCode as Drop

IPPROTO_VRRP = 112
VRRP_GROUP = IPv4Address("224.0.0.18")
VRRP_GROUP6 = IPv6Address("ff02::12")  # RFC 5798 5.1.2.2
VRRP_TTL = 255  # the IPv4 TTL and the IPv6 hop limit (RFC 5798 5.1.1.3, 5.1.2.3)
TYPE_ADVERTISEMENT = 1
V3_MAX_INTERVAL_CS = 0x0FFF  # 40.95 s
AUTH_NONE = 0
V2_AUTH_DATA_LEN = 8

def internet_checksum(data: bytes) -> int:
    """RFC 1071 one's-complement sum of 16-bit words (odd length padded with a zero byte)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


IPAddress = IPv4Address | IPv6Address


def _pseudo_header(src: IPAddress, dst: IPAddress, length: int) -> bytes:
    """RFC 5798 5.2.8: the IPv4 pseudo-header (RFC 768) or the IPv6 one (RFC 8200 8.1)."""
    if src.version == 4:
        return src.packed + dst.packed + struct.pack("!BBH", 0, IPPROTO_VRRP, length)
    return src.packed + dst.packed + struct.pack("!I3xB", length, IPPROTO_VRRP)


@dataclass(frozen=True, slots=True, kw_only=True)
class Advert:
    """One VRRP advertisement. ``interval`` in seconds (v3: centisecond resolution; v2: whole seconds)."""

    version: int
    vrid: int
    priority: int
    interval: float
    addresses: tuple[IPAddress, ...]  # all of one family (an IPv6 advert carries only IPv6 addresses)
    auth_type: int = AUTH_NONE  # v2 only

    def __post_init__(self) -> None:
        if self.version not in (2, 3):
            raise ValueError(f"version must be 2 or 3, not {self.version}")
        if not 1 <= self.vrid <= 255:
            raise ValueError(f"vrid must be 1-255, not {self.vrid}")
        if not 0 <= self.priority <= 255:
            raise ValueError(f"priority must be 0-255, not {self.priority}")
        if not 0 < len(self.addresses) <= 255:
            raise ValueError("an advert carries 1-255 addresses")

    @property
    def interval_units(self) -> int:
        """The interval as carried on the wire: centiseconds (v3) or seconds (v2)."""
        return round(self.interval * 100) if self.version == 3 else round(self.interval)


@dataclass(frozen=True, slots=True, kw_only=True)
class Received:
    """A decoded advert with the IP header facts the receiver must check (``ttl``: the IPv6 hop limit for IPv6)."""

    source: IPAddress
    destination: IPAddress
    ttl: int
    advert: Advert


def encode(advert: Advert, src: IPAddress, dst: IPAddress = VRRP_GROUP) -> bytes:
    """The VRRP message (no IP header) with its checksum filled in; the family is ``src``'s."""
    if dst.version != src.version or any(a.version != src.version for a in advert.addresses):
        raise ValueError(f"an advert from {src} carries IPv{src.version} addresses only, to an IPv{src.version} "
                         "destination")
    if src.version == 6 and advert.version != 3:
        raise ValueError("VRRP over IPv6 is version 3 only (RFC 5798)")
    addrs = b"".join(a.packed for a in advert.addresses)
    units = advert.interval_units
    if advert.version == 3:
        if not 1 <= units <= V3_MAX_INTERVAL_CS:
            raise ValueError(f"v3 interval must be 0.01-40.95 s, not {advert.interval}")
        head = struct.pack("!BBBBHH", 0x31, advert.vrid, advert.priority, len(advert.addresses), units, 0)
        body = head + addrs
        csum = internet_checksum(_pseudo_header(src, dst, len(body)) + body)
    else:
        if not 1 <= units <= 255:
            raise ValueError(f"v2 interval must be 1-255 s, not {advert.interval}")
        head = struct.pack("!BBBBBBH", 0x21, advert.vrid, advert.priority, len(advert.addresses),
                           advert.auth_type, units, 0)
        body = head + addrs + b"\0" * V2_AUTH_DATA_LEN
        csum = internet_checksum(body)
    return body[:6] + struct.pack("!H", csum) + body[8:]


def decode_message(msg: bytes, src: IPAddress, dst: IPAddress) -> Advert:
    """Decode a VRRP message (no IP header) that came from ``src`` to ``dst``; its addresses are of their family.
    Raises RemoteInputError(reason) if it must be dropped."""
    if len(msg) < 8:
        raise RemoteInputError(Drop.SHORT_PACKET, f"{len(msg)} bytes")
    ver_type, vrid, priority, count = msg[0], msg[1], msg[2], msg[3]
    version, ptype = ver_type >> 4, ver_type & 0x0F
    if version not in (2, 3):
        raise RemoteInputError(Drop.BAD_VERSION, f"version {version}")
    width = 4 if src.version == 4 else 16
    if width == 16 and version != 3:
        raise RemoteInputError(Drop.BAD_VERSION, f"version {version} over IPv6 (only VRRPv3 runs over IPv6)")
    if ptype != TYPE_ADVERTISEMENT:
        raise RemoteInputError(Drop.BAD_TYPE, f"type {ptype}")
    if vrid == 0:
        raise RemoteInputError(Drop.BAD_LENGTH, "vrid 0")
    if count == 0:
        raise RemoteInputError(Drop.BAD_LENGTH, "address count 0")
    want = 8 + width * count + (V2_AUTH_DATA_LEN if version == 2 else 0)
    # The message must be exactly as long as its address count says (RFC 5798 5.2.8 / RFC 3768 5.3.9: the
    # checksum covers the entire VRRP message): keepalived drops a longer one ("vrrp packet ... too long") as well as
    # a shorter one. Ethernet padding lies beyond the IPv4 total length, which decode_ip_packet has already cut.
    if len(msg) < want:
        raise RemoteInputError(Drop.BAD_LENGTH, f"{len(msg)} bytes for {count} addresses (need {want})")
    if len(msg) > want:
        raise RemoteInputError(Drop.BAD_LENGTH, f"too long: {len(msg)} bytes for {count} addresses (expect {want})")
    if version == 3:
        if internet_checksum(_pseudo_header(src, dst, len(msg)) + msg) != 0:
            raise RemoteInputError(Drop.BAD_CHECKSUM, f"v3 checksum (with IPv{src.version} pseudo-header) mismatch")
        units = struct.unpack_from("!H", msg, 4)[0] & 0x0FFF
        interval = units / 100
        auth_type = AUTH_NONE
    else:
        if internet_checksum(msg) != 0:
            raise RemoteInputError(Drop.BAD_CHECKSUM, "v2 checksum mismatch")
        auth_type, units = msg[4], msg[5]
        if auth_type != AUTH_NONE:
            raise RemoteInputError(Drop.AUTH_TYPE_UNSUPPORTED, f"auth type {auth_type}")
        interval = float(units)
    if units == 0:
        raise RemoteInputError(Drop.ZERO_INTERVAL, "advertisement interval 0")
    if width == 4:
        addresses: tuple[IPAddress, ...] = tuple(IPv4Address(msg[8 + 4 * i: 12 + 4 * i]) for i in range(count))
    else:
        addresses = tuple(IPv6Address(msg[8 + 16 * i: 24 + 16 * i]) for i in range(count))
    return Advert(version=version, vrid=vrid, priority=priority, interval=interval, addresses=addresses,
                  auth_type=auth_type)


def decode_ip_packet(datagram: bytes) -> Received:
    """Decode what a raw IPPROTO_VRRP socket returns (IPv4 header + VRRP message)."""
    if len(datagram) < 20:
        raise RemoteInputError(Drop.SHORT_PACKET, f"{len(datagram)} bytes")
    if datagram[0] >> 4 != 4:
        raise RemoteInputError(Drop.NOT_IPV4, f"IP version {datagram[0] >> 4}")
    ihl = (datagram[0] & 0x0F) * 4
    total = struct.unpack_from("!H", datagram, 2)[0]
    if ihl < 20 or len(datagram) < ihl or total < ihl:
        raise RemoteInputError(Drop.SHORT_PACKET, f"IPv4 header length {ihl}, datagram {len(datagram)}")
    if datagram[9] != IPPROTO_VRRP:
        raise RemoteInputError(Drop.NOT_VRRP_PROTOCOL, f"protocol {datagram[9]}")
    ttl = datagram[8]
    src, dst = IPv4Address(datagram[12:16]), IPv4Address(datagram[16:20])
    if ttl != VRRP_TTL:
        raise RemoteInputError(Drop.TTL_NOT_255, f"TTL {ttl} from {src}")
    payload = datagram[ihl:min(total, len(datagram))]
    return Received(source=src, destination=dst, ttl=ttl, advert=decode_message(payload, src, dst))


def decode_ipv6(msg: bytes, src: IPv6Address, dst: IPv6Address, hop_limit: int | None) -> Received:
    """Decode what a raw IPv6 IPPROTO_VRRP socket returns: the message, with the source (the address of
    ``recvmsg``), the destination (IPV6_PKTINFO) and the hop limit (IPV6_HOPLIMIT; None when the kernel gave
    none) of its IPv6 header. RFC 5798 7.1: a hop limit other than 255 is dropped like an IPv4 TTL."""
    if hop_limit != VRRP_TTL:
        raise RemoteInputError(Drop.HOP_LIMIT_NOT_255, f"hop limit {hop_limit} from {src}")
    return Received(source=src, destination=dst, ttl=hop_limit, advert=decode_message(msg, src, dst))

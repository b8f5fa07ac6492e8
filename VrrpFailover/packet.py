"""VRRP packet codec (pure, no sockets): VRRPv3 (RFC 5798) and VRRPv2 (RFC 3768) IPv4 adverts.

``encode(advert, src, dst)`` returns the VRRP message (the kernel adds the IPv4 header);
``decode_ip_packet(datagram)`` takes what a raw IPPROTO_VRRP socket returns (IPv4 header + VRRP
message) and returns a ``Received`` (source, destination, TTL, Advert) or raises
``RemoteInputError(reason)`` with a stable reason code for the drop counters, a member of
``VrrpFailover.codes.PacketDropCode``. It never raises anything else, whatever the bytes.

Wire layouts (network byte order)::

    v3: | ver=3 type=1 | VRID | priority | count | rsvd(4) max_adver_int(12, centiseconds) | checksum |
        | count * IPv4 address |                     checksum over IPv4 pseudo-header + message
    v2: | ver=2 type=1 | VRID | priority | count | auth type | adver_int (s) | checksum |
        | count * IPv4 address | 8 bytes auth data |  checksum over the message only
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address

from failover_core.errors import RemoteInputError
from VrrpFailover.codes import PacketDropCode as Drop

IPPROTO_VRRP = 112
VRRP_GROUP = IPv4Address("224.0.0.18")
VRRP_TTL = 255
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


def _pseudo_header(src: IPv4Address, dst: IPv4Address, length: int) -> bytes:
    return src.packed + dst.packed + struct.pack("!BBH", 0, IPPROTO_VRRP, length)


@dataclass(frozen=True, slots=True, kw_only=True)
class Advert:
    """One VRRP advertisement. ``interval`` in seconds (v3: centisecond resolution; v2: whole seconds)."""

    version: int
    vrid: int
    priority: int
    interval: float
    addresses: tuple[IPv4Address, ...]
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
    """A decoded advert with the IPv4 header facts the receiver must check."""

    source: IPv4Address
    destination: IPv4Address
    ttl: int
    advert: Advert


def encode(advert: Advert, src: IPv4Address, dst: IPv4Address = VRRP_GROUP) -> bytes:
    """The VRRP message (no IPv4 header) with its checksum filled in."""
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


def decode_message(msg: bytes, src: IPv4Address, dst: IPv4Address) -> Advert:
    """Decode a VRRP message (no IPv4 header). Raises RemoteInputError(reason) if it must be dropped."""
    if len(msg) < 8:
        raise RemoteInputError(Drop.SHORT_PACKET, f"{len(msg)} bytes")
    ver_type, vrid, priority, count = msg[0], msg[1], msg[2], msg[3]
    version, ptype = ver_type >> 4, ver_type & 0x0F
    if version not in (2, 3):
        raise RemoteInputError(Drop.BAD_VERSION, f"version {version}")
    if ptype != TYPE_ADVERTISEMENT:
        raise RemoteInputError(Drop.BAD_TYPE, f"type {ptype}")
    if vrid == 0:
        raise RemoteInputError(Drop.BAD_LENGTH, "vrid 0")
    if count == 0:
        raise RemoteInputError(Drop.BAD_LENGTH, "address count 0")
    want = 8 + 4 * count + (V2_AUTH_DATA_LEN if version == 2 else 0)
    # The message must be exactly as long as its address count says (RFC 5798 5.2.8 / RFC 3768 5.3.9: the
    # checksum covers the entire VRRP message): keepalived drops a longer one ("vrrp packet ... too long") as well as
    # a shorter one. Ethernet padding lies beyond the IPv4 total length, which decode_ip_packet has already cut.
    if len(msg) < want:
        raise RemoteInputError(Drop.BAD_LENGTH, f"{len(msg)} bytes for {count} addresses (need {want})")
    if len(msg) > want:
        raise RemoteInputError(Drop.BAD_LENGTH, f"too long: {len(msg)} bytes for {count} addresses (expect {want})")
    if version == 3:
        if internet_checksum(_pseudo_header(src, dst, len(msg)) + msg) != 0:
            raise RemoteInputError(Drop.BAD_CHECKSUM, "v3 checksum (with IPv4 pseudo-header) mismatch")
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
    addresses = tuple(IPv4Address(msg[8 + 4 * i: 12 + 4 * i]) for i in range(count))
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

"""Codec tests: byte-exact against captured keepalived 2.2.7 adverts and RFC-layout vectors."""

from __future__ import annotations

import contextlib
import struct
from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from failover_core.errors import RemoteInputError
from VrrpFailover.codes import PacketDropCode as Drop
from VrrpFailover.packet import (
    VRRP_GROUP,
    Advert,
    decode_ip_packet,
    decode_message,
    encode,
    internet_checksum,
)

# Captured with tcpdump -xx in a namespace: keepalived 2.2.7 (Debian 12), vrid 51, priority 150,
# source 10.99.0.11, virtual addresses 10.99.0.100 and 10.99.0.101. IPv4 header + VRRP message.
KA_V3_ADVERT_INT_0_1 = bytes.fromhex(
    "45c0 0024 0001 0000 ff70 d028 0a63 000b e000 0012"
    "3133 9602 000a 3830 0a63 0064 0a63 0065")
KA_V2_ADVERT_INT_1 = bytes.fromhex(
    "45c0 002c 0001 0000 ff70 d020 0a63 000b e000 0012"
    "2133 9602 0001 333a 0a63 0064 0a63 0065 0000 0000 0000 0000")
SRC = IPv4Address("10.99.0.11")
VIPS = (IPv4Address("10.99.0.100"), IPv4Address("10.99.0.101"))


def reference_checksum(data: bytes) -> int:
    """A second, deliberately naive RFC 1071 implementation to check the codec's against."""
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) + (data[i + 1] if i + 1 < len(data) else 0)
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return 0xFFFF - total


def test_decode_captured_keepalived_v3():
    rx = decode_ip_packet(KA_V3_ADVERT_INT_0_1)
    assert (rx.source, rx.destination, rx.ttl) == (SRC, VRRP_GROUP, 255)
    assert rx.advert == Advert(version=3, vrid=51, priority=150, interval=0.1, addresses=VIPS)


def test_encode_matches_captured_keepalived_v3_byte_for_byte():
    adv = Advert(version=3, vrid=51, priority=150, interval=0.1, addresses=VIPS)
    assert encode(adv, SRC, VRRP_GROUP) == KA_V3_ADVERT_INT_0_1[20:]


def test_decode_captured_keepalived_v2():
    rx = decode_ip_packet(KA_V2_ADVERT_INT_1)
    assert rx.advert == Advert(version=2, vrid=51, priority=150, interval=1.0, addresses=VIPS)


def test_encode_matches_captured_keepalived_v2_byte_for_byte():
    adv = Advert(version=2, vrid=51, priority=150, interval=1, addresses=VIPS)
    assert encode(adv, SRC) == KA_V2_ADVERT_INT_1[20:]


def rfc5798_layout(vrid: int, prio: int, cs: int, addrs: list[str], src: str, dst: str = "224.0.0.18") -> bytes:
    """RFC 5798 5.1 figure, field by field, checksum over the pseudo-header (RFC 5798 5.2.8)."""
    a = b"".join(IPv4Address(x).packed for x in addrs)
    msg = bytes([(3 << 4) | 1, vrid, prio, len(addrs)]) + struct.pack("!H", cs & 0x0FFF) + b"\0\0" + a
    pseudo = IPv4Address(src).packed + IPv4Address(dst).packed + bytes([0, 112]) + struct.pack("!H", len(msg))
    c = reference_checksum(pseudo + msg)
    return msg[:6] + struct.pack("!H", c) + msg[8:]


def rfc3768_layout(vrid: int, prio: int, secs: int, addrs: list[str]) -> bytes:
    """RFC 3768 5.1 figure: auth type 0, 8 bytes of zero auth data, checksum over the message only."""
    a = b"".join(IPv4Address(x).packed for x in addrs)
    msg = bytes([(2 << 4) | 1, vrid, prio, len(addrs), 0, secs]) + b"\0\0" + a + b"\0" * 8
    c = reference_checksum(msg)
    return msg[:6] + struct.pack("!H", c) + msg[8:]


@pytest.mark.parametrize(("vrid", "prio", "cs", "addrs", "src"), [
    (1, 100, 100, ["192.0.2.1"], "192.0.2.10"),
    (255, 255, 4095, ["198.51.100.1", "198.51.100.2", "198.51.100.3"], "198.51.100.200"),
    (7, 0, 1, ["10.0.0.1"], "10.0.0.254"),
])
def test_v3_rfc_layout_roundtrip(vrid, prio, cs, addrs, src):
    wire = rfc5798_layout(vrid, prio, cs, addrs, src)
    adv = Advert(version=3, vrid=vrid, priority=prio, interval=cs / 100, addresses=tuple(map(IPv4Address, addrs)))
    assert encode(adv, IPv4Address(src)) == wire
    assert decode_message(wire, IPv4Address(src), VRRP_GROUP) == adv


@pytest.mark.parametrize(("vrid", "prio", "secs", "addrs"), [
    (1, 100, 1, ["192.0.2.1"]),
    (200, 254, 255, ["203.0.113.5", "203.0.113.6"]),
])
def test_v2_rfc_layout_roundtrip(vrid, prio, secs, addrs):
    wire = rfc3768_layout(vrid, prio, secs, addrs)
    adv = Advert(version=2, vrid=vrid, priority=prio, interval=secs, addresses=tuple(map(IPv4Address, addrs)))
    assert encode(adv, IPv4Address("192.0.2.99")) == wire
    assert decode_message(wire, IPv4Address("192.0.2.99"), VRRP_GROUP) == adv


def test_v3_checksum_covers_pseudo_header():
    """The same v3 message is valid from 10.99.0.11 and invalid when the IP source differs."""
    msg = KA_V3_ADVERT_INT_0_1[20:]
    decode_message(msg, SRC, VRRP_GROUP)
    with pytest.raises(RemoteInputError) as e:
        decode_message(msg, IPv4Address("10.99.0.12"), VRRP_GROUP)
    assert e.value.reason == Drop.BAD_CHECKSUM
    with pytest.raises(RemoteInputError):
        decode_message(msg, SRC, IPv4Address("10.99.0.12"))  # unicast destination changes it too


def test_v2_checksum_does_not_cover_pseudo_header():
    msg = KA_V2_ADVERT_INT_1[20:]
    assert decode_message(msg, IPv4Address("1.2.3.4"), IPv4Address("5.6.7.8")).vrid == 51


def test_checksum_agrees_with_reference_and_odd_lengths():
    for data in (b"", b"\x01", b"\xff\xff", bytes(range(37)), KA_V3_ADVERT_INT_0_1):
        assert internet_checksum(data) == reference_checksum(data)


def with_byte(b: bytes, i: int, v: int) -> bytes:
    return b[:i] + bytes([v]) + b[i + 1:]


@pytest.mark.parametrize(("packet", "reason"), [
    (with_byte(KA_V3_ADVERT_INT_0_1, 8, 1), Drop.TTL_NOT_255),  # TTL 1 (the multicast default)
    (with_byte(KA_V3_ADVERT_INT_0_1, 8, 254), Drop.TTL_NOT_255),
    (with_byte(KA_V3_ADVERT_INT_0_1, 9, 17), Drop.NOT_VRRP_PROTOCOL),
    (with_byte(KA_V3_ADVERT_INT_0_1, 27, 0x31), Drop.BAD_CHECKSUM),  # checksum byte flipped
    (with_byte(KA_V3_ADVERT_INT_0_1, 22, 151), Drop.BAD_CHECKSUM),  # priority changed, checksum not
    (with_byte(KA_V3_ADVERT_INT_0_1, 20, 0x41), Drop.BAD_VERSION),
    (with_byte(KA_V3_ADVERT_INT_0_1, 20, 0x32), Drop.BAD_TYPE),
    (with_byte(KA_V3_ADVERT_INT_0_1, 23, 3), Drop.BAD_LENGTH),  # claims 3 addresses, carries 2
    (KA_V3_ADVERT_INT_0_1[:20 + 6], Drop.SHORT_PACKET),
    (KA_V3_ADVERT_INT_0_1[:12], Drop.SHORT_PACKET),
])
def test_bad_packets_are_dropped_with_a_reason(packet, reason):
    with pytest.raises(RemoteInputError) as e:
        decode_ip_packet(packet)
    assert e.value.reason == reason


def test_priority_zero_advert_encodes_with_adjusted_checksum():
    adv = Advert(version=3, vrid=51, priority=0, interval=0.1, addresses=VIPS)
    wire = encode(adv, SRC)
    # keepalived's 150 advert has checksum 0x3830; dropping 0x96 from the high byte of word 1
    # raises the one's-complement checksum by 0x9600.
    assert wire[2] == 0 and struct.unpack("!H", wire[6:8])[0] == 0x3830 + 0x9600
    assert decode_message(wire, SRC, VRRP_GROUP).priority == 0


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=120))
def test_random_bytes_never_raise_anything_but_remote_input_error(data):
    with contextlib.suppress(RemoteInputError):
        decode_ip_packet(data)


@settings(max_examples=500, deadline=None)
@given(st.binary(min_size=20, max_size=20), st.binary(max_size=80))
def test_random_payload_behind_a_valid_vrrp_ip_header(header_noise, payload):
    header = bytes([0x45]) + header_noise[1:2] + struct.pack("!H", 20 + len(payload)) + header_noise[4:8] + \
        bytes([255, 112]) + header_noise[10:12] + SRC.packed + VRRP_GROUP.packed
    with contextlib.suppress(RemoteInputError):
        decode_ip_packet(header + payload)


@settings(max_examples=300, deadline=None)
@given(version=st.sampled_from([2, 3]), vrid=st.integers(1, 255), prio=st.integers(0, 255),
       units=st.integers(1, 255), addrs=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=20),
       src=st.integers(0, 2**32 - 1))
def test_roundtrip_property(version, vrid, prio, units, addrs, src):
    adv = Advert(version=version, vrid=vrid, priority=prio, interval=units / 100 if version == 3 else units,
                 addresses=tuple(IPv4Address(a) for a in addrs))
    s = IPv4Address(src)
    assert decode_message(encode(adv, s), s, VRRP_GROUP) == adv


def _ip(msg: bytes, *, total_extra: int = 0, padding: bytes = b"") -> bytes:
    """An IPv4 header (TTL 255, protocol 112, SRC -> the group) around ``msg``; ``padding`` after the IP total length
    (Ethernet padding), ``total_extra`` bytes counted in the total length."""
    header = bytes([0x45, 0xC0]) + struct.pack("!H", 20 + len(msg) + total_extra) + bytes(4) + bytes([255, 112]) + \
        bytes(2) + SRC.packed + VRRP_GROUP.packed
    return header + msg + padding


def _v3_checksummed(msg: bytes) -> bytes:
    """``msg`` with a v3 checksum over all of it (the pseudo-header counts its whole length)."""
    body = msg[:6] + b"\0\0" + msg[8:]
    pseudo = SRC.packed + VRRP_GROUP.packed + bytes([0, 112]) + struct.pack("!H", len(body))
    return body[:6] + struct.pack("!H", reference_checksum(pseudo + body)) + body[8:]


def test_a_v3_advert_longer_than_its_count_is_dropped_even_with_a_whole_message_checksum():
    """RFC 5798 5.2.8: the checksum covers the entire message; keepalived drops one longer than its count says."""
    longer = _v3_checksummed(KA_V3_ADVERT_INT_0_1[20:] + bytes([10, 99, 0, 102]))  # a third address, count says 2
    with pytest.raises(RemoteInputError) as e:
        decode_ip_packet(_ip(longer))
    assert e.value.reason == Drop.BAD_LENGTH and "too long" in str(e.value)


def test_a_v3_advert_with_a_tail_outside_its_checksum_is_dropped():
    """Before: the codec checksummed only the prefix the count covers and accepted any tail after it."""
    with pytest.raises(RemoteInputError) as e:
        decode_ip_packet(_ip(KA_V3_ADVERT_INT_0_1[20:] + b"junk"))
    assert e.value.reason == Drop.BAD_LENGTH


def test_a_v2_advert_longer_than_its_count_and_auth_data_is_dropped():
    with pytest.raises(RemoteInputError) as e:
        decode_ip_packet(_ip(KA_V2_ADVERT_INT_1[20:] + bytes(4)))
    assert e.value.reason == Drop.BAD_LENGTH and "too long" in str(e.value)


def test_ethernet_padding_beyond_the_ip_total_length_is_not_part_of_the_message():
    rx = decode_ip_packet(_ip(KA_V3_ADVERT_INT_0_1[20:], padding=bytes(10)))
    assert rx.advert.addresses == VIPS
    assert decode_ip_packet(KA_V3_ADVERT_INT_0_1 + bytes(6)).advert.addresses == VIPS  # captured frame, padded


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=40))
def test_any_tail_after_a_valid_advert_is_dropped_as_bad_length(tail):
    for msg in (KA_V3_ADVERT_INT_0_1[20:] + tail, _v3_checksummed(KA_V3_ADVERT_INT_0_1[20:] + tail),
                KA_V2_ADVERT_INT_1[20:] + tail):
        with pytest.raises(RemoteInputError) as e:
            decode_message(msg, SRC, VRRP_GROUP)
        assert e.value.reason == Drop.BAD_LENGTH

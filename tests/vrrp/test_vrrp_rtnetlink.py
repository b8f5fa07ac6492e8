"""VrrpFailover.rtnetlink: the bytes it sends and the bytes it reads (pure), then the same requests against a real
kernel in a lab namespace (what pyroute2's callers expect: EEXIST / EADDRNOTAVAIL, the addresses and the MAC)."""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
from ipaddress import IPv4Address, IPv4Interface, IPv6Address

import pytest

from VrrpFailover.netio import IFA_F_NODAD, AddressManager
from VrrpFailover.rtnetlink import (
    NetlinkError,
    RtNetlink,
    error_code,
    pack_addr_dump,
    pack_addr_request,
    pack_link_get,
    parse_address,
    parse_attrs,
    parse_link_mac,
    parse_messages,
)

# ---- packing: the expected bytes are spelled out field by field (linux/netlink.h, linux/if_addr.h) --------------


def test_ipv4_add_is_newaddr_create_excl_ack_with_local_and_address():
    got = pack_addr_request("add", 7, index=3, address="10.99.0.100", prefixlen=24)
    expected = (
        struct.pack("=IHHII", 16 + 8 + 8 + 8, 20, 0x1 | 0x4 | 0x400 | 0x200, 7, 0)  # RTM_NEWADDR
        + bytes((socket.AF_INET, 24, 0, 0)) + struct.pack("=I", 3)  # ifaddrmsg
        + struct.pack("=HH", 8, 2) + bytes((10, 99, 0, 100))  # IFA_LOCAL
        + struct.pack("=HH", 8, 1) + bytes((10, 99, 0, 100))  # IFA_ADDRESS
    )
    assert got == expected


def test_ipv6_add_carries_nodad_in_the_header_and_the_address_only():
    ip = IPv6Address("fd00:99::100")
    got = pack_addr_request("add", 1, index=4, address=str(ip), prefixlen=64, flags=IFA_F_NODAD)
    expected = (struct.pack("=IHHII", 16 + 8 + 20, 20, 0x605, 1, 0)
                + bytes((socket.AF_INET6, 64, IFA_F_NODAD, 0)) + struct.pack("=I", 4)
                + struct.pack("=HH", 20, 1) + ip.packed)
    assert got == expected


def test_delete_is_deladdr_with_ack_only_and_an_unknown_op_is_refused():
    got = pack_addr_request("del", 9, index=3, address="10.99.0.100", prefixlen=32)
    length, kind, flags, seq, _ = struct.unpack_from("=IHHII", got)
    assert (length, kind, flags, seq) == (len(got), 21, 0x1 | 0x4, 9)
    assert got[17] == 32  # prefix length
    with pytest.raises(ValueError):
        pack_addr_request("replace", 1, index=3, address="10.99.0.100", prefixlen=32)


def test_dump_and_link_requests():
    dump = pack_addr_dump(5, socket.AF_INET6)
    assert struct.unpack_from("=IHHII", dump) == (24, 22, 0x301, 5, 0)
    assert dump[16] == socket.AF_INET6
    link = pack_link_get(6, 12)
    assert struct.unpack_from("=IHHII", link) == (32, 18, 0x1, 6, 0)
    assert struct.unpack_from("=BxHiII", link, 16) == (socket.AF_UNSPEC, 0, 12, 0, 0)


# ---- parsing --------------------------------------------------------------------------------------------------


def _msg(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    length = 16 + len(body)
    return struct.pack("=IHHII", length, kind, flags, seq, 0) + body + b"\0" * (-length % 4)


def _attr(kind: int, payload: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(payload), kind) + payload + b"\0" * (-(4 + len(payload)) % 4)


def test_messages_are_split_at_aligned_lengths_and_a_truncated_one_ends_the_datagram():
    a = _msg(20, 2, 1, b"\x01\x02\x03")  # 19 bytes, padded to 20
    b = _msg(3, 2, 1, b"\0\0\0\0")
    got = list(parse_messages(a + b + b[:10]))
    assert got == [(20, 2, 1, b"\x01\x02\x03"), (3, 2, 1, b"\0\0\0\0")]


def test_attributes_padded_first_of_a_type_kept_and_nested_flag_masked():
    data = _attr(3, b"eth0\0") + _attr(1, b"\xaa" * 6) + _attr(1, b"\xbb" * 6) + _attr(0x8000 | 18, b"xy")
    attrs = parse_attrs(data)
    assert attrs[3] == b"eth0\0" and attrs[1] == b"\xaa" * 6 and attrs[18] == b"xy"
    assert parse_attrs(data[:-3]) == {3: b"eth0\0", 1: b"\xaa" * 6}  # a cut attribute is left out


def test_an_address_message_gives_index_address_prefix_and_the_32_bit_flags_when_present():
    head = bytes((socket.AF_INET, 24, 0x80, 0)) + struct.pack("=I", 5)
    body = head + _attr(2, bytes((10, 0, 0, 1))) + _attr(1, bytes((10, 0, 0, 1))) + _attr(8, struct.pack("=I", 0x280))
    assert parse_address(body) == (5, IPv4Address("10.0.0.1"), 24, 0x280)
    assert parse_address(head + _attr(1, bytes((10, 0, 0, 2)))) == (5, IPv4Address("10.0.0.2"), 24, 0x80)
    assert parse_address(head + _attr(2, bytes((10, 0, 0, 3)))) == (5, IPv4Address("10.0.0.3"), 24, 0x80)
    assert parse_address(head + _attr(1, b"\0" * 16)) is None  # an IPv6-long address in an IPv4 message
    assert parse_address(head[:6]) is None


def test_link_mac_and_error_codes():
    body = struct.pack("=BxHiII", 0, 1, 2, 0, 0) + _attr(3, b"eth0\0") + _attr(1, bytes.fromhex("020000000001"))
    assert parse_link_mac(body) == bytes.fromhex("020000000001")
    assert error_code(struct.pack("=i", -errno.EEXIST) + b"\0" * 16) == errno.EEXIST
    assert error_code(struct.pack("=i", 0) + b"\0" * 16) == 0
    e = NetlinkError(errno.EADDRNOTAVAIL)
    assert e.code == e.errno == errno.EADDRNOTAVAIL and isinstance(e, OSError)


# ---- against the kernel (a lab namespace) -----------------------------------------------------------------------


@pytest.mark.integration
def test_against_a_real_kernel_errors_addresses_and_mac_as_pyroute2_gave_them(lab):
    nl = lab.in_ns("a", RtNetlink)
    try:
        idx = lab.in_ns("a", lambda: socket.if_nametoindex("eth0"))  # (found inside the namespace)
        assert nl.link_mac(idx).hex(":") == lab.mac("a")
        vip = IPv4Interface("10.99.0.200/24")
        mgr = AddressManager(nl)
        assert asyncio.run(mgr.add(idx, vip)) is True
        assert asyncio.run(mgr.add(idx, vip)) is False  # EEXIST: present already
        with pytest.raises(NetlinkError) as e:
            asyncio.run(nl.addr("add", index=idx, address=str(vip.ip), prefixlen=24))
        assert e.value.code == errno.EEXIST
        assert vip.ip in asyncio.run(mgr.present(idx))
        assert vip.ip in lab.addresses("a")
        assert (vip.ip, 24) in [(ip, n) for ip, n, _f in nl.addresses(idx, socket.AF_INET)]
        assert asyncio.run(mgr.remove(idx, vip)) is True
        assert asyncio.run(mgr.remove(idx, vip)) is False  # EADDRNOTAVAIL: absent
        assert vip.ip not in lab.addresses("a")
        with pytest.raises(NetlinkError) as e:
            asyncio.run(nl.addr("add", index=idx + 1000, address=str(vip.ip), prefixlen=24))
        assert e.value.code == errno.ENODEV
    finally:
        nl.close()


"""VRRPv3 over IPv6 (RFC 5798 5.1.2), the pure parts: codec, neighbour advertisements, config, the router.

The interop with keepalived in namespaces is tests/vrrp/test_vrrp_ipv6_interop.py.
"""

from __future__ import annotations

import json
import struct
from ipaddress import IPv4Address, IPv6Address, IPv6Interface

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_vrrp_packet import reference_checksum  # the naive RFC 1071 sum the codec's is checked against

from failover_core.config import ConfigError
from failover_core.errors import RemoteInputError
from VrrpFailover.cli import main
from VrrpFailover.codes import AdvertDropCode as Drop
from VrrpFailover.codes import PacketDropCode as PacketDrop
from VrrpFailover.codes import TransitionCode as Code
from VrrpFailover.config import InstanceConfig, validate_instances
from VrrpFailover.driver import runtime_key
from VrrpFailover.events import (
    AddAddresses,
    AdvertIn,
    Deadline,
    RemoveAddresses,
    SendAdvert,
    SendGarp,
    SetTimer,
    Startup,
)
from VrrpFailover.machine import VrrpRouter, VrrpState
from VrrpFailover.nd import na_frame
from VrrpFailover.netio import IFA_F_NODAD, AddressManager
from VrrpFailover.netio6 import IFA_F_DADFAILED, IFA_F_TENTATIVE, Vrrp6Socket, usable_link_local
from VrrpFailover.packet import VRRP_GROUP6, Advert, decode_ipv6, decode_message, encode

LL_A = IPv6Address("fe80::11")
LL_B = IPv6Address("fe80::12")
LL_C = IPv6Address("fe80::13")
VIP6 = IPv6Address("fd00:99::100")
VIP6_2 = IPv6Address("fd00:99::101")


def rfc5798_ipv6_layout(vrid: int, prio: int, cs: int, addrs: list[str], src: str, dst: str = "ff02::12") -> bytes:
    """RFC 5798 5.1 figure with 16-byte addresses, checksummed over the IPv6 pseudo-header of RFC 8200 8.1
    (source, destination, 32-bit upper-layer length, three zero bytes, next header 112), built field by field."""
    a = b"".join(IPv6Address(x).packed for x in addrs)
    msg = bytes([0x31, vrid, prio, len(addrs)]) + struct.pack("!H", cs & 0x0FFF) + b"\0\0" + a
    pseudo = IPv6Address(src).packed + IPv6Address(dst).packed + len(msg).to_bytes(4, "big") + bytes([0, 0, 0, 112])
    c = reference_checksum(pseudo + msg)
    return msg[:6] + struct.pack("!H", c) + msg[8:]


# ---- codec --------------------------------------------------------------------------------

@pytest.mark.parametrize(("vrid", "prio", "cs", "addrs", "src"), [
    (51, 150, 10, ["fd00:99::100"], "fe80::11"),
    (255, 255, 4095, ["fe80::1", "2001:db8::1", "2001:db8::ffff:1"], "fe80::abcd:ef01:2345:6789"),
    (1, 0, 1, ["2001:db8::2"], "fe80::1"),
])
def test_ipv6_rfc_layout_roundtrip(vrid, prio, cs, addrs, src):
    wire = rfc5798_ipv6_layout(vrid, prio, cs, addrs, src)
    adv = Advert(version=3, vrid=vrid, priority=prio, interval=cs / 100, addresses=tuple(map(IPv6Address, addrs)))
    assert encode(adv, IPv6Address(src), VRRP_GROUP6) == wire
    assert len(wire) == 8 + 16 * len(addrs)
    rx = decode_ipv6(wire, IPv6Address(src), VRRP_GROUP6, 255)
    assert (rx.advert, rx.source, rx.destination, rx.ttl) == (adv, IPv6Address(src), VRRP_GROUP6, 255)


def test_ipv6_checksum_covers_the_ipv6_pseudo_header():
    wire = rfc5798_ipv6_layout(51, 150, 10, ["fd00:99::100"], "fe80::11")
    decode_message(wire, LL_A, VRRP_GROUP6)
    for src, dst in ((LL_B, VRRP_GROUP6), (LL_A, IPv6Address("ff02::1"))):
        with pytest.raises(RemoteInputError) as e:
            decode_message(wire, src, dst)
        assert e.value.reason == PacketDrop.BAD_CHECKSUM


@pytest.mark.parametrize("hop", [254, 1, 0, None])
def test_hop_limit_other_than_255_is_dropped_with_its_own_code(hop):
    wire = rfc5798_ipv6_layout(51, 150, 10, ["fd00:99::100"], "fe80::11")
    with pytest.raises(RemoteInputError) as e:
        decode_ipv6(wire, LL_A, VRRP_GROUP6, hop)
    assert e.value.reason == PacketDrop.HOP_LIMIT_NOT_255


def test_vrrpv2_over_ipv6_is_dropped_as_a_bad_version():
    v3 = rfc5798_ipv6_layout(51, 150, 100, ["fd00:99::100"], "fe80::11")
    v2 = bytes([0x21]) + v3[1:] + b"\0" * 8
    with pytest.raises(RemoteInputError) as e:
        decode_ipv6(v2, LL_A, VRRP_GROUP6, 255)
    assert e.value.reason == PacketDrop.BAD_VERSION


def test_ipv6_length_is_counted_in_16_byte_addresses():
    wire = rfc5798_ipv6_layout(51, 150, 10, ["fd00:99::100", "fd00:99::101"], "fe80::11")
    for cut in (wire[:-4], wire + b"\0" * 4, wire[:8 + 16]):
        with pytest.raises(RemoteInputError) as e:
            decode_ipv6(cut, LL_A, VRRP_GROUP6, 255)
        assert e.value.reason == PacketDrop.BAD_LENGTH


def test_encode_refuses_mixed_families_and_v2_over_ipv6():
    with pytest.raises(ValueError, match="IPv6 addresses only"):
        encode(Advert(version=3, vrid=1, priority=1, interval=1, addresses=(IPv4Address("10.0.0.1"),)), LL_A,
               VRRP_GROUP6)
    with pytest.raises(ValueError, match="IPv4 addresses only"):
        encode(Advert(version=3, vrid=1, priority=1, interval=1, addresses=(VIP6,)), IPv4Address("10.0.0.1"))
    with pytest.raises(ValueError, match="version 3 only"):
        encode(Advert(version=2, vrid=1, priority=1, interval=1, addresses=(VIP6,)), LL_A, VRRP_GROUP6)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=120), st.one_of(st.none(), st.integers(0, 255)))
def test_random_ipv6_messages_only_ever_raise_remote_input_error(data, hop):
    try:
        rx = decode_ipv6(data, LL_A, VRRP_GROUP6, hop)
    except RemoteInputError:
        return
    assert rx.advert.version == 3 and all(a.version == 6 for a in rx.advert.addresses)


def test_socket_decode_takes_the_kernel_facts_as_recvmsg_gives_them():
    """The source comes as text with the interface scope (``fe80::11%eth0``), the destination as 16 bytes of
    IPV6_PKTINFO, the hop limit as an int; the decoded source has no scope (it compares with config values)."""
    wire = rfc5798_ipv6_layout(51, 150, 10, ["fd00:99::100"], "fe80::11")
    rx = Vrrp6Socket.decode((wire, "fe80::11%eth0", VRRP_GROUP6.packed, 255))
    assert rx.source == LL_A and str(rx.source) == "fe80::11" and rx.destination == VRRP_GROUP6
    with pytest.raises(RemoteInputError):
        Vrrp6Socket.decode((wire, "fe80::11%eth0", VRRP_GROUP6.packed, 64))


# ---- unsolicited neighbour advertisements -----------------------------------------------------

MAC = bytes.fromhex("02aabbccdd01")


@pytest.mark.parametrize("router", [False, True])
def test_unsolicited_na_frame_layout(router):
    f = na_frame(MAC, VIP6, router=router)
    assert len(f) == 14 + 40 + 32
    assert f[:6] == bytes.fromhex("333300000001") and f[6:12] == MAC and f[12:14] == b"\x86\xdd"
    ip6, icmp = f[14:54], f[54:]
    assert ip6[0] >> 4 == 6 and struct.unpack("!H", ip6[4:6])[0] == 32 and ip6[6] == 58 and ip6[7] == 255
    assert ip6[8:24] == VIP6.packed and ip6[24:40] == IPv6Address("ff02::1").packed
    assert icmp[0] == 136 and icmp[1] == 0
    flags = icmp[4]
    assert flags & 0x20 and not flags & 0x40 and bool(flags & 0x80) is router  # Override, not Solicited, Router
    assert icmp[8:24] == VIP6.packed and icmp[24:26] == b"\x02\x01" and icmp[26:32] == MAC
    pseudo = ip6[8:40] + len(icmp).to_bytes(4, "big") + bytes([0, 0, 0, 58])
    assert reference_checksum(pseudo + icmp) == 0  # the checksum field makes the whole sum come out right


# ---- config -------------------------------------------------------------------------------

BASE6 = {"name": "VR6", "vrid": 51, "interface_name": "eth0", "ip_addresses": ["fd00:99::100/64"]}


def test_an_ipv6_instance_is_family_6_and_defaults_to_128():
    (c,) = validate_instances({**BASE6, "ip_addresses": ["fd00:99::100/64", "fd00:99::101"]}, source="t")
    assert c.family == 6 and c.version == 3
    assert c.ip_addresses == (IPv6Interface("fd00:99::100/64"), IPv6Interface("fd00:99::101/128"))
    assert c.addresses == (VIP6, VIP6_2)


@pytest.mark.parametrize(("change", "key", "says"), [
    ({"ip_addresses": ["fd00:99::100/64", "10.99.0.100/24"]}, "ip_addresses", "one address family per instance"),
    ({"ip_addresses": ["10.99.0.100/24", "fd00:99::100/64"]}, "ip_addresses", "mixed"),
    ({"version": 2}, "version", "IPv4 only"),
    ({"unicast_peers": ["10.99.0.12"]}, "unicast_peers", "ff02::12"),
    ({"ip_addresses": ["ff02::12"]}, "ip_addresses", "not a usable virtual address"),
    ({"ip_addresses": ["::1"]}, "ip_addresses", "not a usable virtual address"),
    ({"ip_addresses": ["fd00:99::1/129"]}, "ip_addresses[0]", "IPv4 or IPv6 address"),
])
def test_bad_ipv6_configs_name_the_key(change, key, says):
    with pytest.raises(ConfigError) as e:
        validate_instances({**BASE6, **change}, source="t.json")
    assert (key, says) in [(k, s) for k, _, a in e.value.problems for s in [says] if s in a], e.value.problems


def test_a_vrid_is_per_interface_and_family():
    v4 = {"name": "V4", "vrid": 51, "interface_name": "eth0", "ip_addresses": ["10.99.0.100/24"]}
    assert len(validate_instances([v4, BASE6], source="t")) == 2  # RFC 5798: the families are separate domains
    with pytest.raises(ConfigError, match="another IPv6 instance"):
        validate_instances([BASE6, {**BASE6, "name": "other", "ip_addresses": ["fd00:99::200"]}], source="t")


def test_cli_refuses_a_mixed_instance_with_exit_2(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({**BASE6, "ip_addresses": ["fd00:99::100/64", "10.99.0.100/24"]}))
    assert main(["-c", str(path), "--check"]) == 2
    assert "ip_addresses" in capsys.readouterr().err


def test_runtime_per_interface_and_family():
    v4 = InstanceConfig.model_validate({**BASE6, "ip_addresses": ["10.0.0.1"]})
    assert runtime_key(v4) == "eth0" and runtime_key(InstanceConfig.model_validate(BASE6)) == "eth0/ipv6"


# ---- the router does not care about the family -----------------------------------------------

def router6(**kw) -> VrrpRouter:
    r = VrrpRouter(InstanceConfig.model_validate({**BASE6, "priority": 100, "advert_interval": 1, **kw}), LL_B)
    r.handle(Startup(now=1000.0))
    return r


def adv6(prio: int, addrs=(VIP6,)) -> Advert:
    return Advert(version=3, vrid=51, priority=prio, interval=1.0, addresses=tuple(addrs))


def test_router_runs_the_rfc_with_ipv6_addresses():
    """The machine is unchanged for IPv6: Backup -> Master with the IPv6 VIPs added and announced (SendGarp:
    the driver sends neighbour advertisements for them), the Master's IPv6 adverts restart the timer, a different
    address list is dropped, equal priority is decided by the higher IPv6 address, leaving Master removes them."""
    r = router6()
    assert r.state is VrrpState.BACKUP
    t = r.deadline
    r.handle(AdvertIn(now=t - 0.1, source=LL_C, advert=adv6(150)))
    assert r.deadline > t and r.master_address == LL_C
    step = r.handle(AdvertIn(now=t, source=LL_C, advert=adv6(150, (VIP6_2,))))
    assert r.drops[Drop.ADDRESS_LIST_MISMATCH] == 1 and not step.transitions
    step = r.handle(Deadline(now=r.deadline))
    assert [type(a) for a in step.actions] == [SendAdvert, AddAddresses, SendGarp, SetTimer]
    assert step.actions[1] == AddAddresses((VIP6,)) and step.actions[2] == SendGarp((VIP6,))
    assert r.state is VrrpState.MASTER
    step = r.handle(AdvertIn(now=r.deadline - 0.5, source=LL_A, advert=adv6(100)))  # equal, lower address
    assert r.state is VrrpState.MASTER
    step = r.handle(AdvertIn(now=r.deadline - 0.4, source=LL_C, advert=adv6(100)))  # equal, higher address
    assert [(t.to_state, t.code) for t in step.transitions] == [("BACKUP", Code.EQUAL_PRIORITY_HIGHER_ADDRESS)]
    assert RemoveAddresses((VIP6,)) in step.actions


def test_router_drops_its_own_ipv6_advert():
    r = router6()
    r.handle(AdvertIn(now=1000.5, source=LL_B, advert=adv6(100)))
    assert r.drops[Drop.OWN_ADVERT] == 1


# ---- netlink and the interface's link-local address ---------------------------------------------

def test_link_local_choice_skips_virtual_tentative_and_failed_addresses():
    g = IPv6Address("fd00:99::11")
    assert usable_link_local([(g, 0), (LL_A, 0)], ()) == (LL_A, False)
    assert usable_link_local([(LL_A, IFA_F_TENTATIVE), (LL_B, 0)], ()) == (LL_B, True)
    assert usable_link_local([(LL_A, IFA_F_TENTATIVE)], ()) == (None, True)
    assert usable_link_local([(LL_A, IFA_F_DADFAILED)], ()) == (None, False)
    assert usable_link_local([(LL_A, 0), (LL_B, 0)], (LL_A,)) == (LL_B, False)  # a link-local VIP moves
    assert usable_link_local([(g, 0)], ()) == (None, False)


class RecordingNetlink:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    async def addr(self, op: str, **kw) -> None:
        self.calls.append((op, kw))


async def _add_both(ipr: RecordingNetlink) -> None:
    mgr = AddressManager(ipr)  # type: ignore[arg-type]
    await mgr.add(3, IPv6Interface("fd00:99::100/64"))
    from ipaddress import IPv4Interface
    await mgr.add(3, IPv4Interface("10.99.0.100/24"))


def test_ipv6_addresses_are_added_with_nodad_ipv4_ones_as_before():
    import asyncio

    ipr = RecordingNetlink()
    asyncio.run(_add_both(ipr))
    assert ipr.calls == [
        ("add", {"index": 3, "address": "fd00:99::100", "prefixlen": 64, "flags": IFA_F_NODAD}),
        ("add", {"index": 3, "address": "10.99.0.100", "prefixlen": 24}),
    ]


# ---- --from-keepalived ----------------------------------------------------------------------

KA_IPV6 = """global_defs {
    vrrp_version 2
}
vrrp_instance VI_6 {
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 0.1
    virtual_ipaddress {
        fd00:99::100/64 dev eth0
        10.99.0.100/24
        fd00:99::101/64
    }
}
"""


def test_keepalived_ipv6_instance_converts_as_keepalived_reads_it():
    """keepalived: the first address sets the family (the other family's are ignored, we name them), and an IPv6
    instance without its own version line is VRRPv3 even with a global vrrp_version 2."""
    from VrrpFailover.keepalived_import import convert

    conv = convert(KA_IPV6, "keepalived.conf")
    (inst,) = conv.instances
    assert inst["ip_addresses"] == ["fd00:99::100/64", "fd00:99::101/64"] and inst["version"] == 3
    assert [(s.line, "IPv4 address in an IPv6 instance" in s.why) for s in conv.skipped] == [(11, True)]
    (c,) = validate_instances(conv.instances, source="converted")
    assert c.family == 6

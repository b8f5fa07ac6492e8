"""Accept mode (RFC 5798 6.1, 6.4.3) and the nftables table that enforces it (VrrpFailover.firewall).

Pure: which instances accept (keepalived's defaults: accept unless strict_mode; the owner always), the rules.
In namespaces: with accept mode off the Master answers ARP for the VIP but a client's ping and TCP connection to
it get nothing back (dropped), while the Master's own address still answers; with it on (or by default) both are
answered (a TCP connection to a closed port is refused at once: something answered). The table is gone after
SIGTERM; after a SIGKILL it stays and the next start replaces it (one table, a left-over warning); nothing is
left in the namespace at the end."""

from __future__ import annotations

import signal
import sys

import pytest

from labs.vrrp import VIP, Lab, ours_config, wait_for
from VrrpFailover.config import InstanceConfig
from VrrpFailover.firewall import needs_table, parse_tables, remove_script, render, table_name

BASE = {"name": "VR_1", "vrid": 51, "interface_name": "eth0", "ip_addresses": ["10.99.0.100/24"]}


def cfg(**kw) -> InstanceConfig:
    return InstanceConfig.model_validate({**BASE, **kw})


@pytest.mark.parametrize(("kw", "accepts"), [
    ({}, True),  # keepalived's default without vrrp_strict: existing configs keep working
    ({"accept_mode": True}, True),
    ({"accept_mode": False}, False),
    ({"strict_mode": True}, False),  # keepalived's vrrp_strict: no accept unless asked
    ({"strict_mode": True, "accept_mode": True}, True),
    ({"priority": 255, "accept_mode": False}, True),  # the owner always accepts (RFC 5798 6.4.3)
])
def test_who_accepts(kw, accepts):
    assert cfg(**kw).accepts is accepts


def test_rules_drop_to_and_from_the_virtual_addresses_and_igmp_from_the_macvlan():
    text = render(cfg(accept_mode=False, ip_addresses=["10.99.0.100/24", "10.99.0.101/24"]))
    assert "table ip vrrp_failover_51_eth0 {" in text
    assert "type filter hook input priority -1; policy accept;" in text
    assert "ip daddr { 10.99.0.100, 10.99.0.101 } drop" in text and "ip saddr { 10.99.0.100, 10.99.0.101 } drop" in text
    assert "igmp" not in text
    vmac = render(cfg(use_vmac=True))  # accepts: only the IGMP rule
    assert 'oifname "vrrp.51" ip protocol igmp drop' in vmac and "daddr" not in vmac and "chain in" not in vmac
    six = render(cfg(accept_mode=False, ip_addresses=["fd00:99::100/64"]))
    assert six.startswith("table ip6 ") and six.index("nd-neighbor-solicit") < six.index("ip6 daddr")
    assert not needs_table(cfg()) and needs_table(cfg(strict_mode=True))
    assert table_name(cfg(interface_name="br-lan.10")) == "vrrp_failover_51_br_lan_10"
    assert remove_script([cfg()]) == "add table ip vrrp_failover_51_eth0\ndelete table ip vrrp_failover_51_eth0\n"
    assert parse_tables("table ip keepalived\ntable ip vrrp_failover_51_eth0\n") == {
        ("ip", "keepalived"), ("ip", "vrrp_failover_51_eth0")}


# ---- in namespaces ---------------------------------------------------------------------------------

CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], 9), timeout=1.0).close()
    print("connected")
except ConnectionRefusedError:
    print("refused")
except (TimeoutError, socket.timeout):
    print("timeout")
"""


def tcp_connect(lab: Lab, host: str, target) -> str:
    """A TCP connection to port 9 (nothing listens): refused = the host answered; timeout = dropped."""
    return lab.exec(host, [sys.executable, "-c", CONNECT, str(target)], capture_output=True,
                    check=True).stdout.decode().strip()


def tables(lab: Lab, host: str) -> list[str]:
    return [line for line in lab.exec(host, ["nft", "list", "tables"], capture_output=True,
                                      check=True).stdout.decode().splitlines() if line.strip()]


@pytest.mark.integration
@pytest.mark.parametrize("kw", [{"accept_mode": False}, {"strict_mode": True}, {}, {"accept_mode": True}],
                         ids=["accept_mode_false", "strict_mode", "default", "accept_mode_true"])
def test_the_master_answers_arp_and_drops_traffic_to_the_vip_only_without_accept_mode(lab: Lab, kw):
    accepts = cfg(**kw).accepts
    a = lab.start_ours("a", ours_config(priority=150, **kw))
    a.wait_state("Master", 10)
    mac_a = lab.mac("a")
    wait_for(lambda: lab.ping("c", lab.address("a"), timeout=0.5), 5, what="the Master's own address answers")
    answered = lab.ping("c", timeout=0.5)
    assert lab.neighbour_mac("c") == mac_a  # ARP for the VIP is answered either way
    assert answered is accepts
    assert tcp_connect(lab, "c", VIP) == ("refused" if accepts else "timeout")
    assert tcp_connect(lab, "c", lab.address("a")) == "refused"  # only the VIP is filtered
    assert tables(lab, "a") == ([] if accepts else ["table ip vrrp_failover_51_eth0"])
    a.kill(signal.SIGTERM)
    assert a.wait(5) == 0
    assert tables(lab, "a") == []


@pytest.mark.integration
def test_a_crash_leaves_the_table_and_the_macvlan_and_the_next_start_replaces_them(lab: Lab):
    config = ours_config(priority=150, accept_mode=False, use_vmac=True)
    a = lab.start_ours("a", config)
    a.wait_state("Master", 10)
    a.kill(signal.SIGKILL)
    a.wait(5)
    assert tables(lab, "a") == ["table ip vrrp_failover_51_eth0"]
    assert lab.exec("a", ["ip", "link", "show", "vrrp.51"], capture_output=True).returncode == 0
    a2 = lab.start_ours("a", config)
    a2.wait_state("Master", 10)
    log = a2.log_text()
    assert "removed left-over nftables table ip vrrp_failover_51_eth0" in log
    assert "removed left-over virtual MAC interface vrrp.51" in log
    assert tables(lab, "a") == ["table ip vrrp_failover_51_eth0"]
    assert not lab.ping("c", timeout=0.5) and tcp_connect(lab, "c", VIP) == "timeout"
    a2.kill(signal.SIGTERM)
    assert a2.wait(5) == 0
    assert lab.exec("a", ["nft", "list", "ruleset"], capture_output=True, check=True).stdout.decode().strip() == ""
    assert lab.exec("a", ["ip", "link", "show", "vrrp.51"], capture_output=True).returncode != 0
    # a start with accept mode on finds nothing to remove and makes only the macvlan's IGMP rule
    a3 = lab.start_ours("a", ours_config(priority=150, use_vmac=True))
    a3.wait_state("Master", 10)
    assert "left-over" not in a3.log_text()
    wait_for(lambda: lab.ping("c", timeout=0.2), 2, what="the VIP answers with accept mode on")
    a3.kill(signal.SIGTERM)
    assert a3.wait(5) == 0
    assert tables(lab, "a") == []

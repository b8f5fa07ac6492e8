"""Config validation and the CLI's --check / bad-config behaviour (no network needed)."""

from __future__ import annotations

import json
from ipaddress import IPv4Address

import pytest

from failover_core.config import ConfigError
from VrrpFailover.cli import main
from VrrpFailover.config import validate_instances

DOCUMENTED = {"name": "VR_1", "vrid": 51, "interface_name": "eth0", "ip_addresses": ["192.168.100.100/24"],
              "priority": 10, "advert_interval": 1, "preempt_mode": True}


def test_documented_config_is_accepted_as_is():
    (c,) = validate_instances(DOCUMENTED, source="vrrp-config.json")
    assert (c.name, c.vrid, c.interface_name, c.priority, c.advert_interval, c.preempt_mode, c.version) == \
        ("VR_1", 51, "eth0", 10, 1.0, True, 3)
    assert c.addresses == (IPv4Address("192.168.100.100"),)


def test_defaults():
    (c,) = validate_instances({"name": "x", "vrid": 1, "interface_name": "eth0", "ip_addresses": ["10.0.0.1"]},
                              source="f")
    assert (c.priority, c.advert_interval, c.preempt_mode, c.accept_mode, c.preempt_delay) == (100, 1.0, True,
                                                                                             None, 0.0)
    assert c.accepts and not c.strict_mode  # keepalived's default: accept unless strict
    assert c.use_vmac is False and c.vmac_name is None and not c.vmac_xmit_base
    assert str(c.ip_addresses[0]) == "10.0.0.1/32"


def test_list_of_instances_and_optional_keys():
    data = [DOCUMENTED, {**DOCUMENTED, "name": "VR_2", "vrid": 52, "version": 2, "accept_mode": True,
                         "preempt_delay": 3, "notify": "/bin/echo", "unicast_peers": ["10.0.0.2"],
                         "track_script": {"command": ["/bin/true"], "interval": 2, "weight": -20},
                         "garp_repeat": 3, "garp_delay": 0.5}]
    _a, b = validate_instances(data, source="f")
    assert b.version == 2 and b.track_script[0].weight == -20 and not b.track_script[0].is_fault
    assert b.unicast_peers == (IPv4Address("10.0.0.2"),)


def test_lower_prio_garp_defaults_follow_garp_repeat_and_delay_like_keepalived():
    """keepalived: garp_lower_prio_repeat / _delay default to garp_master_repeat / _delay (ours: garp_repeat /
    garp_delay); 0 rounds turns the answer off (keepalived's strict mode does that)."""
    base = {"name": "x", "vrid": 1, "interface_name": "eth0", "ip_addresses": ["10.0.0.1"]}
    (c,) = validate_instances(base, source="f")
    assert (c.garp_lower_prio_repeat, c.garp_lower_prio_delay) == (2, 1.0) == (c.garp_repeat, c.garp_delay)
    (c,) = validate_instances({**base, "garp_repeat": 4, "garp_delay": 0.5}, source="f")
    assert (c.garp_lower_prio_repeat, c.garp_lower_prio_delay) == (4, 0.5)
    (c,) = validate_instances({**base, "garp_lower_prio_repeat": 0, "garp_lower_prio_delay": 3}, source="f")
    assert (c.lower_prio_rounds, c.lower_prio_delay, c.garp_repeat) == (0, 3.0, 2)


@pytest.mark.parametrize(("change", "key"), [
    ({"vrid": 0}, "vrid"), ({"vrid": 256}, "vrid"),
    ({"priority": 0}, "priority"), ({"priority": 256}, "priority"),
    ({"advert_interval": 0.001}, "advert_interval"), ({"advert_interval": 41}, "advert_interval"),
    ({"advert_interval": 0.015}, "advert_interval"),
    ({"version": 2, "advert_interval": 1.5}, "advert_interval"), ({"version": 4}, "version"),
    ({"ip_addresses": ["192.168.100.300/24"]}, "ip_addresses"), ({"ip_addresses": []}, "ip_addresses"),
    ({"ip_addresses": ["10.0.0.2", "fd00::1"]}, "ip_addresses"),
    ({"ip_addresses": ["fd00::1"], "version": 2}, "version"),
    ({"ip_addresses": ["fd00::1"], "unicast_peers": ["10.0.0.2"]}, "unicast_peers"),
    ({"ip_addresses": ["10.0.0.1", "10.0.0.1/24"]}, "ip_addresses"),
    ({"interface_name": ""}, "interface_name"), ({"interface_name": "a/b"}, "interface_name"),
    ({"preempt_mode": "maybe"}, "preempt_mode"), ({"prority": 5}, "prority"),
    ({"track_script": {"command": "x", "weight": 5, "fault": True}}, "track_script"),
    ({"garp_lower_prio_repeat": -1}, "garp_lower_prio_repeat"), ({"garp_lower_prio_repeat": 101},
                                                                  "garp_lower_prio_repeat"),
    ({"garp_lower_prio_delay": -0.5}, "garp_lower_prio_delay"),
    ({"track_script": [{"command": "x", "rise": 0}]}, "track_script[0].rise"),
    ({"track_script": [{"command": "x", "name": "c"}, {"command": "y", "name": "c"}]}, "track_script"),
    ({"track_file": {"path": ""}}, "track_file[0].path"), ({"track_file": {"path": "/f", "weight": 255}},
                                                            "track_file[0].weight"),
    ({"track_interface": {"name": "eth1", "weight": 0}}, "track_interface[0]"),
    ({"track_interface": [{"name": "eth1"}, {"name": "eth1"}]}, "track_interface"),
    ({"notify_args": "keepalived2"}, "notify_args"),
])
def test_bad_values_name_file_key_and_value(change, key):
    with pytest.raises(ConfigError) as e:
        validate_instances({**DOCUMENTED, **change}, source="conf/vrrp.json")
    text = str(e.value)
    assert "conf/vrrp.json" in text and key in text


@pytest.mark.parametrize("missing", ["name", "vrid", "ip_addresses", "interface_name"])
def test_required_keys(missing):
    data = {k: v for k, v in DOCUMENTED.items() if k != missing}
    with pytest.raises(ConfigError, match=missing):
        validate_instances(data, source="f")


def test_duplicates_across_instances_are_rejected():
    with pytest.raises(ConfigError, match="unique"):
        validate_instances([DOCUMENTED, {**DOCUMENTED, "vrid": 9}], source="f")
    with pytest.raises(ConfigError, match="vrid already used"):
        validate_instances([DOCUMENTED, {**DOCUMENTED, "name": "other"}], source="f")


def test_error_in_second_instance_is_located():
    with pytest.raises(ConfigError, match=r"\[1\]\.vrid"):
        validate_instances([DOCUMENTED, {**DOCUMENTED, "name": "b", "vrid": 300}], source="f")


def write(tmp_path, data) -> str:
    p = tmp_path / "vrrp-config.json"
    p.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return str(p)


def test_cli_check_prints_effective_config(tmp_path, capsys):
    path = write(tmp_path, {**DOCUMENTED, "interface_name": "lo"})
    assert main(["-c", path, "--check"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["priority"] == 10 and out[0]["version"] == 3 and out[0]["garp_repeat"] == 2
    assert (out[0]["garp_lower_prio_repeat"], out[0]["garp_lower_prio_delay"]) == (2, 1.0)  # effective values


@pytest.mark.parametrize("data", [
    {**DOCUMENTED, "interface_name": "lo", "vrid": 0},
    {**DOCUMENTED, "interface_name": "nosuchif0"},
    '{"name": "VR_1", "vrid": ',
])
@pytest.mark.parametrize("check", [True, False])
def test_cli_bad_config_exits_2_with_a_clear_error(tmp_path, capsys, data, check):
    path = write(tmp_path, data)
    assert main(["-c", path, *(["--check"] if check else [])]) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and path in err


def test_cli_missing_file(tmp_path, capsys):
    assert main(["-c", str(tmp_path / "absent.json")]) == 2
    assert "cannot read" in capsys.readouterr().err


# ---- use_vmac ---------------------------------------------------------------------------------------

VMAC_BASE = {"name": "x", "vrid": 51, "interface_name": "eth0", "ip_addresses": ["10.0.0.100/24"]}


def test_use_vmac_names_and_the_rfc_mac():
    (c,) = validate_instances({**VMAC_BASE, "use_vmac": True}, source="f")
    assert c.vmac_name == "vrrp.51" and c.vmac_address == bytes.fromhex("00005e000133")  # keepalived's name
    (c,) = validate_instances({**VMAC_BASE, "use_vmac": "vip-web", "vmac_xmit_base": True}, source="f")
    assert c.vmac_name == "vip-web" and c.vmac_xmit_base


@pytest.mark.parametrize(("change", "key", "why"), [
    ({"use_vmac": "a" * 16}, "use_vmac", "1-15 bytes (IFNAMSIZ)"),
    ({"use_vmac": "vrrp:51"}, "use_vmac", "not a valid interface name"),
    ({"use_vmac": "a b"}, "use_vmac", "not a valid interface name"),
    ({"use_vmac": ""}, "use_vmac", "1-15 bytes"),
    ({"use_vmac": 1}, "use_vmac", "must be true, false or"),
    ({"use_vmac": "eth0"}, "use_vmac", "cannot be named like interface_name"),
    ({"use_vmac": True, "priority": 255}, "use_vmac", "address owner"),
    ({"use_vmac": True, "ip_addresses": ["fd00::1/64"]}, "use_vmac", "IPv4 instances only"),
    ({"vmac_xmit_base": True}, "vmac_xmit_base", "needs use_vmac"),
])
def test_bad_use_vmac_values_name_the_key(change, key, why):
    with pytest.raises(ConfigError) as e:
        validate_instances({**VMAC_BASE, **change}, source="f")
    assert f"key '{key}'" in str(e.value) and why in str(e.value)


def test_two_instances_cannot_share_a_virtual_mac_interface():
    data = [{**VMAC_BASE, "use_vmac": True}, {**VMAC_BASE, "name": "y", "interface_name": "eth1", "use_vmac": True}]
    with pytest.raises(ConfigError, match=r"key '\[1\]\.use_vmac'.*already another instance's"):
        validate_instances(data, source="f")


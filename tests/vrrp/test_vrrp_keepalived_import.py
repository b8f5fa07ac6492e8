"""``--from-keepalived``: keepalived.conf's vrrp_instance blocks as our config; every line not converted named.

The inputs are the configs the lab gives keepalived (labs.vrrp.keepalived_config) and a hand-written one with
lines we do not convert; the converted configs must pass our --check (in a namespace, where eth0 exists) and,
in one test, share a virtual router with keepalived."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import pytest

from labs.vrrp import Lab, keepalived_config, ours_config, wait_for
from VrrpFailover.cli import main
from VrrpFailover.config import load_config, load_vrrp_config, validate_instances, validate_vrrp_config
from VrrpFailover.machine import master_down_interval


def convert_file(tmp_path, text: str, capsys, *extra: str, name: str = "keepalived.conf") -> tuple[int, str, str]:
    path = tmp_path / name
    path.write_text(text)
    rc = main(["--from-keepalived", str(path), *extra])
    out, err = capsys.readouterr()
    return rc, out, err


# what ours_config() says for the same keepalived_config() arguments: the conversion must agree
LAB_CASES = [
    ({}, {}),
    ({"priority": 150}, {"priority": 150}),
    ({"version": 2, "advert_int": 1}, {"version": 2, "advert_interval": 1}),
    ({"preempt": False}, {"preempt_mode": False}),
    ({"vips": ["10.99.0.100/24", "10.99.0.101/24"]}, {"vips": ["10.99.0.100/24", "10.99.0.101/24"]}),
    ({"unicast_peers": ["10.99.0.12"]}, {"unicast_peers": ["10.99.0.12"]}),
    ({"extra": "higher_prio_send_advert\n    garp_lower_prio_repeat 3"},
     {"higher_prio_send_advert": True, "garp_lower_prio_repeat": 3}),
]


@pytest.mark.parametrize(("ka_kw", "ours_kw"), LAB_CASES)
def test_the_labs_keepalived_configs_convert_to_what_the_lab_runs_as_ours(tmp_path, capsys, ka_kw, ours_kw):
    rc, out, err = convert_file(tmp_path, keepalived_config(**ka_kw), capsys)
    assert rc == 0, err
    got = json.loads(out)
    (converted,) = validate_instances([got], source="converted")
    expected = ours_config(name="VI_1", **ours_kw)
    (wanted,) = validate_instances([{k: v for k, v in expected.items() if v != [] or k == "ip_addresses"}],
                                   source="ours")
    assert converted == wanted
    # only the global router_id is named (keepalived's "state BACKUP" is what ours does anyway)
    assert re.findall(r":(\d+): not converted: (\S+)", err) == [("2", "router_id")]


HAND_WRITTEN = """\
! a keepalived.conf as operators write it
global_defs {
    router_id edge1            # line 3: not converted
    enable_script_security
    vrrp_version 3
}
vrrp_script chk_nginx {
    script "/usr/bin/pgrep -x nginx"
    interval 0.5
    timeout 2
    weight -30
    rise 2
    fall 3
    user nobody
}
vrrp_script unused {
    script "/bin/true"
}
vrrp_track_file prio_file {
    file "/run/vrrp-prio"
    weight -1
}
vrrp_instance VI_edge
{
    state MASTER
    interface eth0
    virtual_router_id 42
    priority 120
    advert_int 0.5
    nopreempt
    authentication {
        auth_type PASS
        auth_pass secret
    }
    virtual_ipaddress {
        10.99.0.100/24 dev eth0
        10.99.0.101/24 dev eth0 label eth0:vip
        10.99.0.102/24 dev eth9
        fd00::1/64
    }
    track_script {
        chk_nginx
        chk_missing
    }
    track_interface {
        eth0
        eth1 weight -20
    }
    track_file {
        prio_file weight -2
    }
    notify "/etc/keepalived/notify.sh"
    notify_master /etc/keepalived/master.sh
    use_vmac
}
vrrp_sync_group G1 {
    group {
        VI_edge
    }
}
include /etc/keepalived/conf.d/*.conf
"""


def test_a_hand_written_config_converts_what_it_can_and_names_every_other_line(tmp_path, capsys):
    rc, out, err = convert_file(tmp_path, HAND_WRITTEN, capsys)
    assert rc == 0, err
    got = json.loads(out)
    assert got == {
        "name": "VI_edge", "interface_name": "eth0", "vrid": 42, "priority": 120, "advert_interval": 0.5,
        "preempt_mode": False, "version": 3, "ip_addresses": ["10.99.0.100/24"],
        "track_script": [{"name": "chk_nginx", "command": "/usr/bin/pgrep -x nginx", "interval": 0.5, "timeout": 2,
                          "weight": -30, "rise": 2, "fall": 3}],
        "track_interface": [{"name": "eth0"}, {"name": "eth1", "weight": -20}],
        "track_file": [{"path": "/run/vrrp-prio", "weight": -2}],
        "notify": "/etc/keepalived/notify.sh", "notify_args": "keepalived", "use_vmac": True,
    }
    validate_instances([got], source="converted")
    named = {int(n): what for n, what in re.findall(r"keepalived\.conf:(\d+): not converted: (.*)", err)}
    lines = [int(n) for n in re.findall(r"keepalived\.conf:(\d+): not converted", err)]
    assert lines == sorted(lines) == [3, 4, 14, 16, 25, 31, 37, 38, 39, 43, 53, 56, 61], err  # in file order
    assert "VRRPv2 authentication" in named[31] and "lines 31-34" in named[31]
    assert "label" in named[37] and "eth9" in named[38] and "IPv6" in named[39]
    assert "no vrrp_script chk_missing" in named[43] and "used by no converted" in named[16]
    assert "sync groups" in named[56] and "include" in named[61] and "user" in named[14]
    assert "address owner" in named[25] and "use notify" in named[53]


def test_toml_output_loads_as_our_config(tmp_path, capsys):
    rc, out, _ = convert_file(tmp_path, HAND_WRITTEN, capsys, "--format", "toml")
    assert rc == 0
    path = tmp_path / "converted.toml"
    path.write_text(out)
    (c,) = load_config(str(path))
    assert (c.name, c.vrid, len(c.track_script), c.track_file[0].weight, c.notify_args) == ("VI_edge", 42, 1, -2,
                                                                                             "keepalived")


@pytest.mark.parametrize(("text", "what"), [
    ("vrrp_instance VI_1 {\n    interface eth0\n", r"keepalived\.conf:1: .*never closed"),
    ("vrrp_instance VI_1 {\n}\n}\n", r"keepalived\.conf:3: .*closes no block"),
    ('vrrp_script s {\n    script "/bin/true\n}\n', r"keepalived\.conf:2: .*double quote is not closed"),
    ("global_defs {\n    router_id x\n}\n", "no vrrp_instance"),
    ("vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 300\n  virtual_ipaddress {\n    10.0.0.1\n  }\n}\n",
     r"keepalived\.conf:1: key '\[0\]\.vrid': value 300"),
    ("vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 3\n}\n", r"ip_addresses"),
    (b"vrrp_instance \xff {\n}\n", "not UTF-8"),
])
def test_a_file_that_cannot_be_parsed_or_converted_exits_2_naming_the_line(tmp_path, capsys, text, what):
    path = tmp_path / "keepalived.conf"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    rc = main(["--from-keepalived", str(path), "--format", "toml"])
    out, err = capsys.readouterr()
    assert rc == 2 and out == "" and "configuration error" in err
    assert re.search(what, err), err


def test_a_file_that_cannot_be_read_exits_2(tmp_path, capsys):
    assert main(["--from-keepalived", str(tmp_path / "absent.conf")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["--from-keepalived", str(tmp_path)]) == 2  # a directory


def test_python_m_vrrpfailover_converts_too(tmp_path):
    path = tmp_path / "keepalived.conf"
    path.write_text(keepalived_config(priority=90))
    r = subprocess.run([sys.executable, "-m", "VrrpFailover", "--from-keepalived", str(path)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and json.loads(r.stdout)["priority"] == 90 and "router_id" in r.stderr


@pytest.mark.integration
def test_converted_configs_pass_check_and_the_converted_one_interoperates_with_keepalived(lab: Lab, tmp_path):
    for n, (ka_kw, _) in enumerate(LAB_CASES):
        src = tmp_path / f"ka-{n}.conf"
        src.write_text(keepalived_config(**ka_kw))
        for fmt in ("json", "toml"):
            conv = subprocess.run([sys.executable, "-m", "VrrpFailover", "--from-keepalived", str(src),
                                   "--format", fmt], capture_output=True, text=True, timeout=60, check=True)
            dst = tmp_path / f"ours-{n}.{fmt}"
            dst.write_text(conv.stdout)
            check = lab.exec("a", [sys.executable, "-m", "VrrpFailover", "-c", str(dst), "--check"],
                             capture_output=True, text=True, timeout=60)
            assert check.returncode == 0, (ka_kw, fmt, check.stderr)
    # the same keepalived.conf for both routers but the priority: keepalived on a, the converted one on b
    ka = lab.start_keepalived("a", keepalived_config(priority=150))
    ka.wait_state("Master", 10)
    src = tmp_path / "b.conf"
    src.write_text(keepalived_config(priority=100))
    conv = subprocess.run([sys.executable, "-m", "VrrpFailover", "--from-keepalived", str(src)],
                          capture_output=True, text=True, timeout=60, check=True)
    ours = lab.start_ours("b", json.loads(conv.stdout))
    ours.wait_state("Backup", 10, name="VI_1")
    mdi = master_down_interval(100, 0.1, 3)
    wait_for(lambda: lab.holders() == ["a"], 3 * mdi, what="the VIP on keepalived only")
    ka.kill(signal.SIGKILL)
    ours.wait_state("Master", mdi + 1.5, name="VI_1")
    wait_for(lambda: lab.has_vip("b"), 2, what="the VIP on ours")


SYNC_GROUP = """\
global_defs {
    vrrp_version 3
    vrrp_garp_master_refresh 60
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        10.99.0.100/24
    }
    garp_master_refresh 10
    garp_master_refresh_repeat 2
}
vrrp_instance VI_2 {
    interface eth1
    virtual_router_id 52
    virtual_ipaddress {
        10.99.1.100/24
    }
}
vrrp_sync_group VG_1 {
    group {
        VI_1 VI_2
        VI_9
    }
    notify_master "/etc/keepalived/master.sh up"
    notify_fault /etc/keepalived/fault.sh
    notify /etc/keepalived/notify.sh
    track_script {
        chk
    }
}
"""


def test_a_sync_group_converts_to_the_sections_form_naming_what_it_leaves_out(tmp_path, capsys):
    rc, out, err = convert_file(tmp_path, SYNC_GROUP, capsys)
    assert rc == 0, err
    got = json.loads(out)
    assert got["sync_groups"] == {"VG_1": {
        "members": ["VI_1", "VI_2"], "notify_master": "/etc/keepalived/master.sh up",
        "notify_fault": "/etc/keepalived/fault.sh", "notify": "/etc/keepalived/notify.sh",
        "notify_args": "keepalived"}}
    vi1, vi2 = got["instances"]
    assert (vi1["garp_master_refresh"], vi1["garp_master_refresh_repeat"]) == (10, 2)  # its own beats global_defs
    assert vi2["garp_master_refresh"] == 60 and "garp_master_refresh_repeat" not in vi2
    c = validate_vrrp_config(got, source="converted")
    assert c.group_of("VI_2") == "VG_1"
    named = dict(re.findall(r"keepalived\.conf:(\d+): not converted: (.*)", err))
    assert sorted(map(int, named)) == [24, 29], err
    assert "no converted vrrp_instance VI_9" in named["24"] and "group's own trackers" in named["29"]
    rc, out, _ = convert_file(tmp_path, SYNC_GROUP, capsys, "--format", "toml")
    assert rc == 0
    path = tmp_path / "converted.toml"
    path.write_text(out)
    c2 = load_vrrp_config(str(path))
    assert c2.sync_groups == c.sync_groups and c2.instances == c.instances


@pytest.mark.parametrize(("group", "what", "groups"), [
    ("vrrp_sync_group G { group { VI_1 } }\n", "a group of 1 instance", set()),
    ("vrrp_sync_group G { group { VI_1 VI_2 } }\nvrrp_sync_group H { group { VI_2 VI_1 } }\n",
     "VI_2, VI_1 already in sync group G", {"G"}),
])
def test_a_sync_group_keepalived_would_not_use_is_named_not_converted(tmp_path, capsys, group, what, groups):
    text = SYNC_GROUP.split("vrrp_sync_group")[0] + group
    rc, out, err = convert_file(tmp_path, text, capsys)
    assert rc == 0 and what in err, err
    got = json.loads(out)
    assert (set(got["sync_groups"]) if isinstance(got, dict) else set()) == groups


def test_several_instances_as_toml_use_the_sections_form(tmp_path, capsys):
    text = keepalived_config() + keepalived_config(name="VI_2", vrid=52).split("}\n", 1)[1]
    rc, out, err = convert_file(tmp_path, text, capsys, "--format", "toml")
    assert rc == 0, err
    path = tmp_path / "two.toml"
    path.write_text(out)
    assert [i.vrid for i in load_config(str(path))] == [51, 52]


def _instance(body: str, global_defs: str = "") -> tuple[dict, list]:
    from VrrpFailover.keepalived_import import convert

    text = (f"global_defs {{\n{global_defs}\n}}\n" if global_defs else "") + (
        "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 51\n priority 100\n"
        f" virtual_ipaddress {{\n  10.99.0.100/24\n }}\n{body}\n}}\n")
    conv = convert(text, "k.conf")
    return conv.instances[0], conv.skipped


@pytest.mark.parametrize(("global_defs", "body", "want", "accepts"), [
    ("", "", {}, True),  # keepalived without vrrp_strict accepts: our default (accept_mode unset) does too
    ("vrrp_strict", "", {"strict_mode": True}, False),
    ("vrrp_strict", "accept", {"strict_mode": True, "accept_mode": True}, True),
    ("", "no_accept", {"accept_mode": False}, False),
    ("", "strict_mode", {"strict_mode": True}, False),
    ("vrrp_strict", "strict_mode off", {"strict_mode": False}, True),
    ("", "use_vmac", {"use_vmac": True}, True),
    ("", "use_vmac vmac51\n vmac_xmit_base", {"use_vmac": "vmac51", "vmac_xmit_base": True}, True),
])
def test_accept_strict_and_virtual_mac_keys_convert(global_defs, body, want, accepts):
    inst, skipped = _instance(body, global_defs)
    keys = ("strict_mode", "accept_mode", "use_vmac", "vmac_xmit_base")
    assert {k: inst[k] for k in keys if k in inst} == want
    assert skipped == []
    assert validate_instances([inst], source="converted")[0].accepts is accepts


def test_a_virtual_mac_of_ones_own_is_named_and_the_rfc_one_used():
    inst, skipped = _instance("use_vmac vmac51 02:00:00:00:00:33")
    assert inst["use_vmac"] == "vmac51"
    assert len(skipped) == 1 and "00:00:5e:00:01:VRID" in skipped[0].why

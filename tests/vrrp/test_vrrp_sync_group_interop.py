"""Sync groups in namespaces, keepalived 2.2.7 as the peer with the same two VRIDs in a vrrp_sync_group.

Ours (a, 150) holds both VIPs; only VR_1 tracks an interface. When it goes down VR_1 is in Fault and its group
takes VR_2 to Fault too: both VIPs move to keepalived (b, 100), whose own group moves both together. When it
comes back both of ours leave Fault together and preempt together (without the group VR_2, which tracks
nothing, would stay Master on a). Both groups' notify scripts (keepalived's arguments) see the moves."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from labs.vrrp import Lab, keepalived_sync_group_config, ours_config, wait_for
from VrrpFailover.machine import master_down_interval

pytestmark = pytest.mark.integration

ADV = 0.1
MARGIN = 1.5
MDI_100 = master_down_interval(100, ADV, 3)
MDI_150 = master_down_interval(150, ADV, 3)
VIP1, VIP2 = IPv4Address("10.99.0.100"), IPv4Address("10.99.0.101")


def test_a_fault_of_one_member_moves_both_vips_to_keepalived_and_back(lab: Lab, tmp_path):
    lab.exec("a", ["ip", "link", "add", "trk0", "type", "veth", "peer", "name", "trk1"], check=True)
    for ifname in ("trk1", "trk0"):
        lab.exec("a", ["ip", "link", "set", ifname, "up"], check=True)
    hook = tmp_path / "notify.sh"
    hook.write_text('#!/bin/sh\necho "$*" >> "$(dirname "$0")/$HOOK_OUT"\n')
    hook.chmod(0o755)
    ours_log, ka_log = tmp_path / "ours.log", tmp_path / "ka.log"

    def lines(path) -> list[str]:
        return path.read_text().splitlines() if path.exists() else []

    ours = lab.start_ours("a", {
        "instances": [ours_config(name="VR_1", vrid=51, priority=150, vips=[f"{VIP1}/24"],
                                  track_interface={"name": "trk0"}),
                      ours_config(name="VR_2", vrid=52, priority=150, vips=[f"{VIP2}/24"])],
        "sync_groups": {"G": {"members": ["VR_1", "VR_2"], "notify": ["env", f"HOOK_OUT={ours_log.name}", str(hook)],
                              "notify_args": "keepalived"}}})
    for name in ("VR_1", "VR_2"):
        ours.wait_instance_state(name, "Master", 10)
    ka = lab.start_keepalived("b", keepalived_sync_group_config(
        [{"name": "VI_1", "vrid": 51, "priority": 100, "vips": [f"{VIP1}/24"]},
         {"name": "VI_2", "vrid": 52, "priority": 100, "vips": [f"{VIP2}/24"]}],
        group_extra=f'notify "/usr/bin/env HOOK_OUT={ka_log.name} {hook}"'))
    for name in ("VI_1", "VI_2"):
        ka.wait_instance_state(name, "Backup", 10)
    wait_for(lambda: lab.holders(VIP1) == lab.holders(VIP2) == ["a"], 2, what="both VIPs on ours")

    lab.exec("a", ["ip", "link", "set", "trk0", "down"], check=True)
    for name in ("VR_1", "VR_2"):
        ours.wait_instance_state(name, "Fault", 2)
    for name in ("VI_1", "VI_2"):
        ka.wait_instance_state(name, "Master", MDI_100 + MARGIN)
    wait_for(lambda: lab.holders(VIP1) == lab.holders(VIP2) == ["b"], 2, what="both VIPs on keepalived only")
    log = ours.log_text()
    assert "VR_2: transition: VR_2: MASTER -> FAULT (sync group G: member VR_1 is in Fault (interface:trk0 is " \
           "down" in log and "[sync_group_fault]" in log
    assert ours.status()["sync_groups"]["G"]["state"] == "Fault"

    lab.exec("a", ["ip", "link", "set", "trk0", "up"], check=True)
    for name in ("VR_1", "VR_2"):  # Backup together (sync_group_recovered), then Master together (preempt)
        ours.wait_instance_state(name, "Master", MDI_150 + MARGIN)
    for name in ("VI_1", "VI_2"):
        ka.wait_instance_state(name, "Backup", 2)
    wait_for(lambda: lab.holders(VIP1) == lab.holders(VIP2) == ["a"], 2, what="both VIPs back on ours only")
    recovered = [ln for ln in ours.log_text().splitlines() if "transition:" in ln and "[sync_group_recovered]" in ln]
    assert [ln.split(": transition: ")[1].split(":")[0] for ln in recovered] == ["VR_1", "VR_2"]

    wait_for(lambda: lines(ours_log)[-1:] == ["GROUP G MASTER 0"], 5, what="our group's last notify")
    assert lines(ours_log) == ["GROUP G BACKUP 0", "GROUP G MASTER 0", "GROUP G FAULT 0", "GROUP G BACKUP 0",
                               "GROUP G MASTER 0"]
    wait_for(lambda: lines(ka_log)[-1:] == ["GROUP VG_1 BACKUP 0"], 5, what="keepalived's group's last notify")
    assert lines(ka_log) == ["GROUP VG_1 BACKUP 0", "GROUP VG_1 MASTER 0", "GROUP VG_1 BACKUP 0"]

"""Trackers in real namespaces: track_interface (carrier / admin down), track_file, a script that cannot run.

The interface is watched through netlink link notifications; keepalived 2.2.7 is the peer that takes over and
gives back, so the priority our router advertises after a weight moved it is checked on the wire too."""

from __future__ import annotations

import json
import signal

import pytest

from labs.vrrp import Lab, keepalived_config, ours_config, wait_for
from VrrpFailover.machine import master_down_interval

pytestmark = pytest.mark.integration

ADV = 0.1
MARGIN = 1.5
MDI_100 = master_down_interval(100, ADV, 3)


def fresh_status(rp) -> dict:
    before = rp.status_path.stat().st_mtime_ns
    rp.kill(signal.SIGUSR1)
    wait_for(lambda: rp.status_path.stat().st_mtime_ns != before, 5, what="status refresh")
    return json.loads(rp.status_path.read_text())["instances"]["VR_1"]


def test_carrier_loss_of_a_tracked_interface_is_a_fault_and_the_peer_takes_over_until_it_returns(lab: Lab):
    a = lab.start_ours("a", ours_config(priority=150, track_interface={"name": "eth0"}))
    a.wait_state("Master", 10)
    ka = lab.start_keepalived("b", keepalived_config(priority=100))
    ka.wait_state("Backup", 10)
    lab.set_link("a", False)  # the switch port: a's eth0 loses carrier
    a.wait_state("Fault", 2)
    assert "[track_interface_fault]" in a.log_text() and "no carrier" in a.log_text()
    ka.wait_state("Master", MDI_100 + MARGIN)
    wait_for(lambda: lab.holders() == ["b"], 2, what="VIP on b only (a removed it on Fault)")
    lab.set_link("a", True)
    a.wait_state("Master", 5)  # Backup first (track_interface_recovered), then it preempts with 150
    assert "[track_interface_recovered]" in a.log_text()
    ka.wait_state("Backup", 5)
    wait_for(lambda: lab.holders() == ["a"], 5, what="VIP back on a only")


def test_a_weighted_interface_moves_the_priority_and_keepalived_preempts_then_gives_back(lab: Lab):
    # a second link inside a's namespace (no dummy module here: a veth pair), gone with the namespace
    lab.exec("a", ["ip", "link", "add", "trk0", "type", "veth", "peer", "name", "trk1"], check=True)
    for ifname in ("trk1", "trk0"):
        lab.exec("a", ["ip", "link", "set", ifname, "up"], check=True)
    obs = lab.observer("c")
    a = lab.start_ours("a", ours_config(priority=150, track_interface=[{"name": "trk0", "weight": -60}]))
    a.wait_state("Master", 10)
    ka = lab.start_keepalived("b", keepalived_config(priority=100))
    ka.wait_state("Backup", 10)
    lab.exec("a", ["ip", "link", "set", "trk0", "down"], check=True)
    ka.wait_state("Master", MDI_100 + MARGIN)  # a advertises 90 < 100: keepalived preempts
    a.wait_state("Backup", 2)
    assert obs.last(lambda s: s.rx.source == lab.address("a")).rx.advert.priority == 90
    st = fresh_status(a)
    assert st["priority"] == 90 and st["trackers"]["interface:trk0"]["detail"] == "administratively down"
    lab.exec("a", ["ip", "link", "set", "trk0", "up"], check=True)
    a.wait_state("Master", MDI_100 + MARGIN)  # 150 again: a preempts
    ka.wait_state("Backup", 5)
    wait_for(lambda: lab.holders() == ["a"], 5, what="VIP back on a only")


def test_track_file_value_times_weight_then_a_missing_file_is_a_fault_and_a_script_that_cannot_run_fails(
        lab: Lab, tmp_path):
    prio = tmp_path / "prio"
    prio.write_text("0\n")
    a = lab.start_ours("a", ours_config(priority=150, track_file={"path": str(prio), "weight": -1, "interval": 0.1},
                                        track_script={"command": ["/nonexistent/check"], "weight": -5,
                                                      "interval": 0.1}))
    a.wait_state("Master", 10)
    b = lab.start_ours("b", ours_config(priority=100))
    b.wait_state("Backup", 10)
    wait_for(lambda: fresh_status(a)["priority"] == 145, 3, what="the script that cannot run counted as failed")
    assert "cannot run /nonexistent/check" in fresh_status(a)["trackers"]["script:0"]["detail"]
    prio.write_text("80\n")  # 145 - 80 = 65 < 100: b preempts
    b.wait_state("Master", 1 + MDI_100 + MARGIN)
    a.wait_state("Backup", 2)
    prio.write_text("0\n")
    a.wait_state("Master", 1 + MDI_100 + MARGIN)
    prio.unlink()  # missing: a fault
    a.wait_state("Fault", 2)
    assert "[track_file_fault]" in a.log_text() and "No such file" in a.log_text()
    b.wait_state("Master", MDI_100 + MARGIN)

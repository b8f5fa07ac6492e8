"""The address owner (RFC 5798): priority 255 only for the interface's own address, and then Master at once.

Real namespaces: the check reads the interface's addresses (netlink), so it is tested where they exist;
keepalived 2.2.7 is the peer that must accept the owner's adverts."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import pytest

from labs.vrrp import Lab, keepalived_config, ours_config
from VrrpFailover.machine import skew_time

pytestmark = pytest.mark.integration

ADV = 0.1
MARGIN = 1.5


def check_in_ns(lab: Lab, host: str, config: dict, tmp_path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"owner-{host}.json"
    path.write_text(json.dumps(config))
    return lab.exec(host, [sys.executable, "-m", "VrrpFailover", "-c", str(path), "--check"],
                    capture_output=True, text=True, timeout=60)


def test_priority_255_for_an_address_the_interface_does_not_own_is_a_config_error_that_says_why(lab, tmp_path):
    a_ip = lab.address("a")
    bad = check_in_ns(lab, "a", ours_config(priority=255), tmp_path)  # the VIP 10.99.0.100 is not a's own
    assert bad.returncode == 2, bad.stderr
    assert "key '[0].priority': value 255 is not allowed: priority 255 is only for the address owner" in bad.stderr
    assert "10.99.0.100 is not" in bad.stderr and f"it has: {a_ip}" in bad.stderr
    # one of two addresses owned is not enough: the owner owns every address of the virtual router
    both = check_in_ns(lab, "a", ours_config(priority=255, vips=[f"{a_ip}/24", "10.99.0.100/24"]), tmp_path)
    assert both.returncode == 2 and "10.99.0.100 is not" in both.stderr
    good = check_in_ns(lab, "a", ours_config(priority=255, vips=[f"{a_ip}/24"]), tmp_path)
    assert good.returncode == 0, good.stderr
    # starting (not only --check) refuses it too, before touching anything
    before = lab.addresses("a")
    rp = lab.start_ours("a", ours_config(priority=255))
    assert rp.wait(20) == 2 and "address owner" in rp.log_text()
    assert lab.addresses("a") == before


def test_address_owner_is_master_at_once_keepalived_accepts_it_and_the_owner_keeps_its_address(lab):
    """(Owner first: keepalived ignores adverts whose source is an address it holds, so a keepalived Master
    holding the owner's address would not hear the owner come back.)"""
    a_ip = lab.address("a")
    vips = [f"{a_ip}/24"]
    obs = lab.observer("c")
    t_start = time.monotonic()
    ours = lab.start_ours("a", ours_config(priority=255, vips=vips))
    ours.wait_state("Master", 10)
    log = ours.log_text()
    # straight from Initialize to Master (RFC 5798 6.4.1), never a Backup phase first
    assert re.search(r"INITIALIZE -> MASTER .*\[startup_address_owner\]", log), log[-2000:]
    assert "-> BACKUP" not in log
    first = obs.wait_first(lambda s: s.rx.source == a_ip, after=t_start)
    assert first.rx.advert.priority == 255
    ka = lab.start_keepalived("b", keepalived_config(priority=100, vips=vips))
    ka.wait_state("Backup", 10)
    time.sleep(10 * ADV)  # keepalived accepts the owner's adverts: it stays Backup and adds nothing
    assert (ka.current_state(), ours.current_state(), lab.holders(a_ip)) == ("Backup", "Master", ["a"])
    assert "cannot add address" not in ours.log_text()  # the owner adds nothing: the address is its own
    # stop: priority 0 hands over after keepalived's Skew_Time; the owner's own address stays on a
    ours.kill(signal.SIGTERM)
    assert ours.wait(5) == 0
    ka.wait_state("Master", skew_time(100, ADV, 3) + MARGIN)
    assert lab.has_vip("a", a_ip)

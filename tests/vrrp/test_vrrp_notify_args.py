"""notify_args: keepalived's argument order (``INSTANCE name STATE priority``), so its notify scripts run unchanged.

The namespace test runs ONE script under keepalived 2.2.7 and under ours (``notify_args: "keepalived"``) and
compares what the script was given."""

from __future__ import annotations

import signal
import time

import pytest

from failover_core.config import ConfigError
from failover_core.transitions import Transition
from labs.vrrp import keepalived_config, ours_config, wait_for
from VrrpFailover.config import validate_instances
from VrrpFailover.notify import keepalived_args


def _t(to: str) -> Transition:
    return Transition(subject="VI_1", from_state="BACKUP", to_state=to, code="c", reason="why", at=0.0, seq=1)


@pytest.mark.parametrize(("to", "state"), [("MASTER", "MASTER"), ("BACKUP", "BACKUP"), ("FAULT", "FAULT"),
                                           ("INITIALIZE", "STOP")])
def test_keepalived_args_are_instance_name_state_priority(to, state):
    assert keepalived_args(_t(to), 130) == ["INSTANCE", "VI_1", state, "130"]


def test_notify_args_is_ours_by_default_and_only_ours_or_keepalived():
    base = {"name": "x", "vrid": 1, "interface_name": "eth0", "ip_addresses": ["10.0.0.1"], "notify": "/bin/true"}
    (c,) = validate_instances(base, source="f")
    assert c.notify_args == "ours"
    (c,) = validate_instances({**base, "notify_args": "keepalived"}, source="f")
    assert c.notify_args == "keepalived"
    with pytest.raises(ConfigError, match=r"notify_args.*'keepalived'"):
        validate_instances({**base, "notify_args": "KEEPALIVED"}, source="f")


@pytest.mark.integration
def test_one_notify_script_gets_the_same_arguments_from_keepalived_and_from_ours(lab, tmp_path):
    out = tmp_path / "notify.log"
    hook = tmp_path / "notify.sh"
    hook.write_text(f'#!/bin/sh\necho "$#|$*" >> {out}\n')  # a keepalived-style script: counts and echoes its args
    hook.chmod(0o755)

    def lines() -> list[str]:
        return out.read_text().splitlines() if out.exists() else []

    ka = lab.start_keepalived("a", keepalived_config(priority=150, extra=f"notify {hook}"))
    ka.wait_state("Master", 10)
    wait_for(lambda: "4|INSTANCE VI_1 MASTER 150" in lines(), 5, what="keepalived's MASTER notify")
    ka.kill(signal.SIGTERM)
    assert ka.wait(10) == 0
    wait_for(lambda: "4|INSTANCE VI_1 STOP 150" in lines(), 5, what="keepalived's STOP notify")
    from_keepalived = lines()
    out.unlink()

    ours = lab.start_ours("a", ours_config(name="VI_1", priority=150, notify=str(hook), notify_args="keepalived"))
    ours.wait_state("Master", 10, name="VI_1")
    time.sleep(0.3)
    ours.kill(signal.SIGTERM)
    assert ours.wait(10) == 0
    from_ours = lines()
    # the same lines keepalived gave the script: BACKUP at start, MASTER, STOP on SIGTERM (keepalived's first
    # BACKUP raced its MASTER in one run of the exploration: only its last two are pinned)
    expected = ["4|INSTANCE VI_1 BACKUP 150", "4|INSTANCE VI_1 MASTER 150", "4|INSTANCE VI_1 STOP 150"]
    assert from_keepalived[-2:] == expected[1:] and set(from_keepalived) <= set(expected), from_keepalived
    assert from_ours == expected, from_ours

"""Sync groups (keepalived's vrrp_sync_group): the pure rules on a fake time line, the config, the group's hooks.

The namespace test with keepalived as the peer is ``test_vrrp_sync_group_interop.py``."""

from __future__ import annotations

import json
from ipaddress import IPv4Address

import pytest

from failover_core.config import ConfigError
from failover_core.errors import LocalUsageError
from failover_core.hooks import HookResult
from failover_core.transitions import Transition
from VrrpFailover.cli import main
from VrrpFailover.codes import DecisionCode as Decision
from VrrpFailover.codes import SyncGroupCode as GroupCode
from VrrpFailover.codes import TransitionCode as Code
from VrrpFailover.config import InstanceConfig, SyncGroupConfig, validate_vrrp_config
from VrrpFailover.events import (
    AddAddresses,
    AdvertIn,
    Deadline,
    GroupFault,
    RemoveAddresses,
    SendAdvert,
    SendGarp,
    SetTimer,
    Shutdown,
    Startup,
    TrackResult,
)
from VrrpFailover.group_notify import GroupHookRunner, group_hook_runner
from VrrpFailover.machine import VrrpRouter, VrrpState
from VrrpFailover.notify import keepalived_group_args
from VrrpFailover.packet import Advert
from VrrpFailover.sync_group import GroupStep, SyncGroup

S = VrrpState
ME = IPv4Address("10.99.0.12")
PEER = IPv4Address("10.99.0.11")
VIPS = {"VR_1": IPv4Address("10.99.0.100"), "VR_2": IPv4Address("10.99.1.100")}
VRIDS = {"VR_1": 51, "VR_2": 52}
T0 = 1000.0


def inst(name: str, **kw) -> InstanceConfig:
    base = {"name": name, "vrid": VRIDS[name], "interface_name": "eth0" if name == "VR_1" else "eth1",
            "ip_addresses": [f"{VIPS[name]}/24"], "priority": 100, "advert_interval": 1}
    return InstanceConfig.model_validate({**base, **kw})


def group(**per_member) -> SyncGroup:
    routers = {n: VrrpRouter(inst(n, **per_member.get(n, {})), ME, sync_group="G") for n in ("VR_1", "VR_2")}
    return SyncGroup("G", SyncGroupConfig(members=("VR_1", "VR_2")), routers)


def started(**per_member) -> SyncGroup:
    g = group(**per_member)
    g.handle("VR_1", Startup(now=T0))
    g.handle("VR_2", Startup(now=T0))
    return g


def advert(name: str, prio: int) -> Advert:
    return Advert(version=3, vrid=VRIDS[name], priority=prio, interval=1.0, addresses=(VIPS[name],))


def moves(gs: GroupStep) -> list[tuple[str, str, str, str]]:
    """Every member transition of a group step: (member, from, to, code), in order."""
    return [(m, t.from_state, t.to_state, t.code) for m, step in gs.members for t in step.transitions]


def group_moves(gs: GroupStep) -> list[tuple[str, str, str]]:
    return [(t.from_state, t.to_state, t.code) for t in gs.group.transitions]


def master_group(**per_member) -> SyncGroup:
    g = started(**per_member)
    for name in ("VR_1", "VR_2"):
        g.handle(name, Deadline(now=g.routers[name].deadline))
    assert g.state is S.MASTER and all(r.state is S.MASTER for r in g.routers.values())
    return g


def states(g: SyncGroup) -> dict[str, VrrpState]:
    return {m: r.state for m, r in g.routers.items()}


# ---- start ------------------------------------------------------------------------------------

def test_the_group_is_backup_once_every_member_started():
    g = group()
    gs = g.handle("VR_1", Startup(now=T0))
    assert g.state is S.INITIALIZE and not gs.group.transitions  # VR_2 not started yet
    gs = g.handle("VR_2", Startup(now=T0))
    assert group_moves(gs) == [("INITIALIZE", "BACKUP", GroupCode.GROUP_STARTED)]
    assert states(g) == {"VR_1": S.BACKUP, "VR_2": S.BACKUP}


def test_a_member_in_fault_at_start_holds_the_other_in_fault():
    g = group(VR_1={"track_script": {"command": "/bin/false", "init_fail": True}})
    g.handle("VR_1", Startup(now=T0))
    assert g.routers["VR_1"].state is S.FAULT
    gs = g.handle("VR_2", Startup(now=T0))
    assert moves(gs)[0] == ("VR_2", "INITIALIZE", "FAULT", Code.SYNC_GROUP_FAULT)
    assert group_moves(gs) == [("INITIALIZE", "FAULT", GroupCode.GROUP_MEMBER_FAULT)]
    assert "member VR_1 is in Fault (script:0 fails)" in gs.group.reason.text
    assert g.routers["VR_2"].wake_at is None  # no timer in Fault: it never takes over on its own
    gs = g.handle("VR_1", TrackResult(now=T0 + 1, tracker="script:0", ok=True))
    assert moves(gs) == [("VR_1", "FAULT", "BACKUP", Code.SYNC_GROUP_RECOVERED),
                         ("VR_2", "FAULT", "BACKUP", Code.SYNC_GROUP_RECOVERED)]
    assert group_moves(gs) == [("FAULT", "BACKUP", GroupCode.GROUP_RECOVERED)]


# ---- Master together ----------------------------------------------------------------------------

def test_a_member_whose_timer_runs_out_waits_as_backup_until_every_member_wants_master():
    g = started()
    r1, r2 = g.routers["VR_1"], g.routers["VR_2"]
    t1 = r1.deadline
    gs = g.handle("VR_1", Deadline(now=t1))
    (name, step), = gs.members
    assert name == "VR_1" and not step.transitions and step.reason.code == Decision.SYNC_GROUP_WAIT
    assert list(step.actions) == [SetTimer(t1 + r1.master_down_interval)]  # re-armed, nothing sent
    assert r1.state is S.BACKUP and r1.wants_master and g.state is S.BACKUP
    gs = g.handle("VR_1", Deadline(now=t1 + r1.master_down_interval))  # again: routine, no new line
    assert gs.members[0][1].reason is None and r1.state is S.BACKUP
    gs = g.handle("VR_2", Deadline(now=r2.deadline + 0.5))
    assert moves(gs) == [("VR_1", "BACKUP", "MASTER", Code.MASTER_DOWN_INTERVAL_EXPIRED),  # (config order)
                         ("VR_2", "BACKUP", "MASTER", Code.MASTER_DOWN_INTERVAL_EXPIRED)]
    assert group_moves(gs) == [("BACKUP", "MASTER", GroupCode.GROUP_MASTER)]
    vr1 = dict(gs.members)["VR_1"]
    assert [type(a) for a in vr1.actions] == [SendAdvert, AddAddresses, SendGarp, SetTimer]
    assert "every member wants Master" in vr1.transitions[0].reason


def test_a_member_whose_master_still_advertises_keeps_the_whole_group_backup():
    """keepalived prefers Backup to thrashing: VR_1's peer is gone, VR_2's is alive: nobody moves."""
    g = started()
    r1, r2 = g.routers["VR_1"], g.routers["VR_2"]
    t = T0
    for _ in range(20):
        t += 1.0
        g.handle("VR_2", AdvertIn(now=t, source=PEER, advert=advert("VR_2", 200)))
        if r1.deadline <= t:
            g.handle("VR_1", Deadline(now=t))
    assert r1.wants_master and not r2.wants_master and states(g) == {"VR_1": S.BACKUP, "VR_2": S.BACKUP}
    # VR_1's Master comes back: VR_1 no longer wants Master (keepalived: wantstate BACKUP)
    g.handle("VR_1", AdvertIn(now=t + 0.1, source=PEER, advert=advert("VR_1", 200)))
    assert not r1.wants_master


def test_priority_zero_on_both_members_makes_the_group_master_after_the_later_skew():
    g = started()
    g.handle("VR_1", AdvertIn(now=T0 + 1, source=PEER, advert=advert("VR_1", 0)))
    g.handle("VR_2", AdvertIn(now=T0 + 1.002, source=PEER, advert=advert("VR_2", 0)))
    g.handle("VR_1", Deadline(now=g.routers["VR_1"].deadline))
    assert g.state is S.BACKUP
    gs = g.handle("VR_2", Deadline(now=g.routers["VR_2"].deadline))
    assert {c for *_, c in moves(gs)} == {Code.MASTER_SENT_PRIORITY_ZERO} and g.state is S.MASTER


# ---- Backup together ----------------------------------------------------------------------------

def test_a_master_member_that_hears_a_higher_priority_takes_the_others_to_backup_without_priority_zero():
    g = master_group()
    t = g.routers["VR_1"].deadline - 0.5
    gs = g.handle("VR_2", AdvertIn(now=t, source=PEER, advert=advert("VR_2", 200)))
    assert moves(gs) == [("VR_2", "MASTER", "BACKUP", Code.HIGHER_PRIORITY_ADVERT),
                         ("VR_1", "MASTER", "BACKUP", Code.SYNC_GROUP_BACKUP)]
    assert group_moves(gs) == [("MASTER", "BACKUP", GroupCode.GROUP_BACKUP)]
    vr1 = dict(gs.members)["VR_1"]
    assert list(vr1.actions)[:-1] == [RemoveAddresses((VIPS["VR_1"],))]  # no priority-0 advert (keepalived)
    assert g.routers["VR_1"].deadline == pytest.approx(t + g.routers["VR_1"].master_down_interval)


# ---- Fault together -------------------------------------------------------------------------------

def test_a_member_fault_takes_every_member_to_fault_and_its_recovery_brings_them_back():
    g = master_group(VR_1={"track_interface": {"name": "eth9"}})
    t = T0 + 10
    gs = g.handle("VR_1", TrackResult(now=t, tracker="interface:eth9", ok=False, detail="no carrier"))
    assert moves(gs) == [("VR_1", "MASTER", "FAULT", Code.TRACK_INTERFACE_FAULT),
                         ("VR_2", "MASTER", "FAULT", Code.SYNC_GROUP_FAULT)]
    vr2 = dict(gs.members)["VR_2"]
    assert list(vr2.actions) == [SendAdvert(0), RemoveAddresses((VIPS["VR_2"],)), SetTimer(None)]
    assert vr2.transitions[0].reason == "sync group G: member VR_1 is in Fault (interface:eth9 is down (no carrier))"
    assert group_moves(gs) == [("MASTER", "FAULT", GroupCode.GROUP_MEMBER_FAULT)]
    # adverts and timers change nothing while the group is in Fault
    g.handle("VR_2", AdvertIn(now=t + 1, source=PEER, advert=advert("VR_2", 50)))
    assert states(g) == {"VR_1": S.FAULT, "VR_2": S.FAULT}
    gs = g.handle("VR_1", TrackResult(now=t + 2, tracker="interface:eth9", ok=True, detail="up"))
    assert moves(gs) == [("VR_1", "FAULT", "BACKUP", Code.SYNC_GROUP_RECOVERED),
                         ("VR_2", "FAULT", "BACKUP", Code.SYNC_GROUP_RECOVERED)]
    assert group_moves(gs) == [("FAULT", "BACKUP", GroupCode.GROUP_RECOVERED)]
    assert all(r.deadline is not None for r in g.routers.values())  # Master_Down_Timers run again


def test_the_group_leaves_fault_only_when_no_member_has_a_fault_of_its_own():
    g = started(VR_1={"track_interface": {"name": "eth8"}}, VR_2={"track_interface": {"name": "eth9"}})
    g.handle("VR_1", TrackResult(now=T0 + 1, tracker="interface:eth8", ok=False))
    gs = g.handle("VR_2", TrackResult(now=T0 + 2, tracker="interface:eth9", ok=False))
    assert not moves(gs) and gs.members[0][1].reason.code == Code.TRACK_INTERFACE_FAULT  # already in Fault
    gs = g.handle("VR_1", TrackResult(now=T0 + 3, tracker="interface:eth8", ok=True))
    assert not moves(gs) and gs.members[0][1].reason.code == Decision.SYNC_GROUP_HOLDS_FAULT
    assert states(g) == {"VR_1": S.FAULT, "VR_2": S.FAULT} and g.state is S.FAULT
    gs = g.handle("VR_2", TrackResult(now=T0 + 4, tracker="interface:eth9", ok=True))
    assert [m[2] for m in moves(gs)] == ["BACKUP", "BACKUP"] and g.state is S.BACKUP


def test_a_weighted_tracker_moves_only_its_members_priority_not_the_group():
    g = master_group(VR_1={"track_interface": {"name": "eth9", "weight": -50}})
    gs = g.handle("VR_1", TrackResult(now=T0 + 10, tracker="interface:eth9", ok=False))
    assert not moves(gs) and g.routers["VR_1"].priority == 50 and g.state is S.MASTER


# ---- stop and misuse ------------------------------------------------------------------------------

def test_the_group_stops_with_its_last_member():
    g = master_group()
    gs = g.handle("VR_1", Shutdown(now=T0 + 9))
    assert moves(gs) == [("VR_1", "MASTER", "INITIALIZE", Code.SHUTDOWN)] and not gs.group.transitions
    assert g.routers["VR_2"].state is S.MASTER  # no orders while stopping: the driver stops every member
    gs = g.handle("VR_2", Shutdown(now=T0 + 9))
    assert group_moves(gs) == [("MASTER", "INITIALIZE", GroupCode.GROUP_STOPPED)]


def test_misuse_is_a_local_usage_error():
    g = started()
    with pytest.raises(LocalUsageError, match="not a member"):
        g.handle("VR_9", Startup(now=T0))
    lone = VrrpRouter(inst("VR_1"), ME)
    with pytest.raises(LocalUsageError, match="in no sync group"):
        lone.handle(GroupFault(now=T0, group="G", why="x"))
    with pytest.raises(LocalUsageError, match="sync_group='G'"):
        SyncGroup("G", SyncGroupConfig(members=("VR_1", "VR_2")),
                  {"VR_1": lone, "VR_2": VrrpRouter(inst("VR_2"), ME, sync_group="G")})


def test_a_router_outside_any_group_still_takes_over_on_its_own():
    r = VrrpRouter(inst("VR_1"), ME)
    r.handle(Startup(now=T0))
    step = r.handle(Deadline(now=r.deadline))
    assert r.state is S.MASTER and step.transitions[0].code == Code.MASTER_DOWN_INTERVAL_EXPIRED


# ---- config -------------------------------------------------------------------------------------

TWO = [{"name": n, "vrid": VRIDS[n], "interface_name": "eth0", "ip_addresses": [str(VIPS[n])]} for n in VIPS]


def test_sync_groups_are_a_section_beside_the_instances():
    c = validate_vrrp_config({"instances": TWO, "sync_groups": {"G": {"members": ["VR_1", "VR_2"],
                                                                      "notify": "/bin/true",
                                                                      "notify_args": "keepalived",
                                                                      "notify_fault": ["/bin/echo", "f"]}}},
                             source="f")
    assert [i.name for i in c.instances] == ["VR_1", "VR_2"] and c.group_of("VR_2") == "G"
    assert c.sync_groups["G"].notify_fault == ["/bin/echo", "f"] and c.sync_groups["G"].notify_master is None
    assert validate_vrrp_config(TWO, source="f").sync_groups == {}  # the list form is unchanged
    assert c.effective()["sync_groups"]["G"].members == ("VR_1", "VR_2")


@pytest.mark.parametrize(("groups", "key", "what"), [
    ({"G": {"members": ["VR_1", "VR_9"]}}, "sync_groups.G.members[1]", "no instance has this name"),
    ({"G": {"members": ["VR_1", "VR_2"]}, "H": {"members": ["VR_2", "VR_1"]}}, "sync_groups.H.members[0]",
     "already a member of sync group G"),
    ({"G": {"members": ["VR_1"]}}, "sync_groups.G.members", "at least two different members"),
    ({"G": {"members": ["VR_1", "VR_1"]}}, "sync_groups.G.members", "at least two different members"),
    ({"G": {"members": ["VR_1", "VR_2"], "notify_args": "GROUP"}}, "sync_groups.G.notify_args", "keepalived"),
    ({"G": {"members": ["VR_1", "VR_2"], "track_script": {}}}, "sync_groups.G.track_script", "unknown key"),
    ({"G": ["VR_1", "VR_2"]}, "sync_groups.G", "valid dictionary"),
])
def test_a_bad_sync_group_is_an_error_naming_the_key(groups, key, what):
    with pytest.raises(ConfigError) as e:
        validate_vrrp_config({"instances": TWO, "sync_groups": groups}, source="vrrp.json")
    assert any(k == key and what in a for k, _v, a in e.value.problems), str(e.value)


def test_owners_and_other_instances_do_not_mix_in_a_group():
    two = [TWO[0], {**TWO[1], "priority": 255}]
    with pytest.raises(ConfigError, match="mixes address owners"):
        validate_vrrp_config({"instances": two, "sync_groups": {"G": {"members": ["VR_1", "VR_2"]}}}, source="f")


def test_instance_problems_in_the_sections_form_name_the_instance():
    with pytest.raises(ConfigError, match=r"key 'instances\[1\]\.vrid'"):
        validate_vrrp_config({"instances": [TWO[0], {**TWO[1], "vrid": 0}], "sync_groups": {}}, source="f")
    with pytest.raises(ConfigError, match="'instances' list"):
        validate_vrrp_config({"sync_groups": {}}, source="f")


def test_check_exits_2_on_an_unknown_member_and_prints_the_groups_when_valid(tmp_path, capsys):
    path = tmp_path / "vrrp.json"
    path.write_text(json.dumps({"instances": TWO, "sync_groups": {"G": {"members": ["VR_1", "VR_3"]}}}))
    assert main(["-c", str(path), "--check"]) == 2
    err = capsys.readouterr().err
    assert "key 'sync_groups.G.members[1]': value 'VR_3' is not allowed: no instance has this name" in err
    toml = tmp_path / "vrrp.toml"  # TOML: [[instances]] and [sync_groups.G]
    toml.write_text("".join(f'[[instances]]\nname = "{i["name"]}"\nvrid = {i["vrid"]}\ninterface_name = "lo"\n'
                            f'ip_addresses = ["{i["ip_addresses"][0]}"]\n\n' for i in TWO)
                    + '[sync_groups.G]\nmembers = ["VR_1", "VR_2"]\n')
    assert main(["-c", str(toml), "--check"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sync_groups"]["G"]["members"] == ["VR_1", "VR_2"] and len(out["instances"]) == 2


# ---- the group's hooks ------------------------------------------------------------------------------

def _t(to: str) -> Transition:
    return Transition(subject="G", from_state="BACKUP", to_state=to, code="c", reason="why", at=0.0, seq=7)


@pytest.mark.parametrize(("to", "state"), [("MASTER", "MASTER"), ("BACKUP", "BACKUP"), ("FAULT", "FAULT"),
                                           ("INITIALIZE", "STOP")])
def test_keepalived_group_args_are_group_name_state_zero(to, state):
    assert keepalived_group_args(_t(to)) == ["GROUP", "G", state, "0"]


class Recorder:
    def __init__(self, name: str, log: list[str], ok: bool = True) -> None:
        self.name, self.log, self.ok = name, log, ok

    def run(self, t: Transition) -> HookResult:
        self.log.append(f"{self.name}:{t.to_state}")
        return HookResult(seq=t.seq, ok=self.ok, returncode=0 if self.ok else 1, detail=self.name, duration=0.1)


def test_the_state_script_runs_before_notify_and_both_must_pass():
    log: list[str] = []
    runner = GroupHookRunner({"FAULT": Recorder("notify_fault", log, ok=False)}, Recorder("notify", log))
    r = runner.run(_t("FAULT"))
    assert log == ["notify_fault:FAULT", "notify:FAULT"] and not r.ok and r.detail == "notify_fault; notify"
    assert runner.run(_t("MASTER")).ok and log[-1] == "notify:MASTER"
    assert GroupHookRunner({}, None).run(_t("MASTER")).ok
    assert group_hook_runner(SyncGroupConfig(members=("a", "b"))) is None


def test_the_group_hooks_run_the_configured_commands(tmp_path):
    out = tmp_path / "out"
    script = tmp_path / "hook.sh"
    script.write_text(f'#!/bin/sh\necho "$0 $#|$*" >> {out}\n')
    script.chmod(0o755)
    runner = group_hook_runner(SyncGroupConfig(members=("a", "b"), notify=str(script), notify_args="keepalived",
                                               notify_master=[str(script), "master-arg"]))
    assert runner is not None and runner.run(_t("MASTER")).ok
    assert out.read_text().splitlines() == [f"{script} 1|master-arg", f"{script} 4|GROUP G MASTER 0"]


def test_the_config_samples_validate():
    from pathlib import Path

    from VrrpFailover.config import load_vrrp_config

    root = Path(__file__).resolve().parents[2] / "config"
    c = load_vrrp_config(str(root / "vrrp-sync-group.json"))
    assert c.group_of("VR_inside") == "VG_router" and c.instances[1].garp_master_refresh == 60
    assert load_vrrp_config(str(root / "vrrp-full.json")).instances[0].garp_master_refresh == 60

"""The lean run-time process (``VrrpFailover.daemon``): the CLI validates with pydantic and re-executes itself into
a process that runs from plain dataclasses (``VrrpFailover.settings``) and never imports pydantic, the config
models or pyroute2 (its resident memory: docs/vrrp.md "Measured")."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labs.vrrp import Lab, ours_config
from VrrpFailover.config import (
    InstanceConfig,
    SyncGroupConfig,
    TrackFile,
    TrackInterface,
    TrackScript,
    plain,
    validate_vrrp_config,
)
from VrrpFailover.settings import (
    InstanceSpec,
    SyncGroupSpec,
    TrackFileSpec,
    TrackInterfaceSpec,
    TrackScriptSpec,
    from_plain,
)

PAIRS = ((InstanceConfig, InstanceSpec), (TrackScript, TrackScriptSpec), (TrackFile, TrackFileSpec),
         (TrackInterface, TrackInterfaceSpec), (SyncGroupConfig, SyncGroupSpec))
DERIVED = ("scripts", "tracker_keys", "vmac_name", "vmac_address", "accepts", "lower_prio_rounds", "lower_prio_delay",
           "addresses", "family", "is_address_owner")
FORBIDDEN = ("pydantic", "pydantic_core", "VrrpFailover.config", "failover_core.config", "pyroute2",
             "failover_core.heartbeat_auth")
# (the daemon's main blocks ssl: its "import ssl" attempts are listed, and fail; _ssl is what would load libssl)
RUN_FORBIDDEN = (*FORBIDDEN, "_ssl", "hashlib", "_hashlib")


@pytest.mark.parametrize(("model", "spec"), PAIRS, ids=lambda c: c.__name__)
def test_the_run_time_carriers_have_the_models_keys_and_defaults(model, spec):
    fields = {f.name: f for f in dataclasses.fields(spec)}
    assert list(fields) == list(model.model_fields)
    for name, info in model.model_fields.items():
        if info.is_required():
            assert fields[name].default is dataclasses.MISSING, name
        else:
            default = info.get_default(call_default_factory=True)
            assert fields[name].default == (tuple(default) if isinstance(default, list) else default), name


DOCUMENT = {
    "instances": [
        {"name": "VR_1", "vrid": 51, "interface_name": "eth0", "ip_addresses": ["10.99.0.100/24", "10.99.0.101"],
         "priority": 150, "advert_interval": 0.1, "accept_mode": False, "notify": ["/bin/echo", "x"],
         "notify_args": "keepalived", "unicast_peers": ["10.99.0.2"], "garp_lower_prio_repeat": 0,
         "track_script": [{"command": "true", "name": "chk", "weight": -20, "rise": 2}, {"command": "false"}],
         "track_file": {"path": "/tmp/prio", "weight": -1}, "track_interface": [{"name": "eth1", "weight": 10}],
         "use_vmac": True, "garp_master_refresh": 2.5},
        {"name": "VR_6", "vrid": 52, "interface_name": "eth0", "ip_addresses": ["fd00:99::100/64"],
         "strict_mode": True, "preempt_mode": False, "preempt_delay": 3},
        {"name": "VR_O", "vrid": 53, "interface_name": "eth1", "ip_addresses": ["10.98.0.1/24"], "priority": 255,
         "version": 2, "advert_interval": 2},
    ],
    "sync_groups": {"G": {"members": ["VR_1", "VR_6"], "notify_master": "/bin/true", "notify_args": "keepalived"}},
}


def test_plain_data_through_json_gives_the_same_instances_groups_and_derived_rules():
    config = validate_vrrp_config(DOCUMENT, source="test")
    run = from_plain(json.loads(json.dumps(plain(config))))
    assert len(run.instances) == len(config.instances)
    for model, spec in zip(config.instances, run.instances, strict=True):
        for name in InstanceConfig.model_fields:
            got, want = getattr(spec, name), getattr(model, name)
            if name.startswith("track_"):
                assert [dataclasses.asdict(t) for t in got] == [t.model_dump() for t in want], name
            else:
                assert got == want, name
        for name in DERIVED:
            got, want = getattr(spec, name), getattr(model, name)
            if name == "scripts":
                assert [(k, dataclasses.asdict(t)) for k, t in got] == [(k, t.model_dump()) for k, t in want]
            else:
                assert got == want, name
    assert list(run.sync_groups) == ["G"]
    assert dataclasses.asdict(run.sync_groups["G"]) == {**config.sync_groups["G"].model_dump(),
                                                        "members": ("VR_1", "VR_6")}


def test_plain_data_of_another_version_is_refused_not_guessed():
    data = plain(validate_vrrp_config(DOCUMENT, source="test"))
    data["instances"][0]["colour"] = "red"
    with pytest.raises(TypeError, match="colour"):
        from_plain(data)


def test_importing_the_run_time_modules_loads_no_pydantic_config_or_pyroute2():
    """Every module the daemon imports at start, in a fresh interpreter (the run itself: the namespace test below)."""
    code = ("import sys, VrrpFailover.daemon, VrrpFailover.driver, VrrpFailover.lean_loop, VrrpFailover.settings\n"
            "from VrrpFailover.driver import VrrpDaemon\n"
            "print(' '.join(sorted(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ)).stdout.split()
    assert "VrrpFailover.driver" in out and "VrrpFailover.rtnetlink" in out
    loaded = [m for m in out if m.split(".")[0] in FORBIDDEN or m in FORBIDDEN]
    assert loaded == []


IMPORTTIME_HEADER = "import time: self [us] | cumulative | imported package"


@pytest.mark.integration
def test_the_cli_becomes_the_lean_daemon_same_pid_without_pydantic_pyroute2_or_ssl(lab: Lab, monkeypatch):
    """The real CLI in a namespace: validated, then exec'd into ``VrrpFailover.daemon`` (same PID), which runs a
    Master with its address and a tracked interface, and whose imports (PYTHONPROFILEIMPORTTIME: each interpreter
    prints its own header, the daemon's is the last) include none of pydantic, the config models, pyroute2, ssl or
    hashlib, and whose memory maps no libssl or libcrypto."""
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    a = lab.start_ours("a", ours_config(priority=150, track_interface=[{"name": "eth0"}]))
    a.wait_state("Master", 10)
    assert lab.has_vip("a")
    cmdline = Path(f"/proc/{a.pid}/cmdline").read_bytes().split(b"\0")
    assert b"VrrpFailover.daemon" in cmdline  # the Popen's own PID now runs the daemon
    log = a.log_text()
    assert log.count(IMPORTTIME_HEADER) == 2, log[:2000]
    cli_part, daemon_part = log.rsplit(IMPORTTIME_HEADER, 1)
    assert "pydantic" in cli_part  # (the CLI validated with it: the split is where it should be)
    imported = [line.rsplit("|", 1)[1].strip() for line in daemon_part.splitlines() if line.startswith("import time:")]
    assert "VrrpFailover.driver" in imported and "VrrpFailover.rtnetlink" in imported
    assert [m for m in imported if m.split(".")[0] in RUN_FORBIDDEN or m in RUN_FORBIDDEN] == []
    maps = Path(f"/proc/{a.pid}/maps").read_text()
    assert [lib for lib in ("pydantic_core", "libssl", "libcrypto") if lib in maps] == []

"""The ha-valet command line: --check, bad config exit 2, --status, -p."""

from __future__ import annotations

import json
import subprocess
import textwrap

import pytest

from HaValet.cli import main

from .helpers import PY

CFG = textwrap.dedent("""\
    :Web
        host = a
        stand_by_list = b
        user = u
        start_command = "start-web %s" % (host)
        stop_command = "stop-web %s" % (host)
        test_command = "test-web %s" % (host)
    :Db
        host = a
        user = u
        start_command = "x"
        stop_command = "y"
        test_command = "z"
    """)


def test_check_prints_effective_config_with_commands_per_host(tmp_path, capsys):
    cfg = tmp_path / "ha_valet.cfg"
    cfg.write_text(CFG)
    assert main(["-c", str(cfg), "--check"]) == 0
    out = json.loads(capsys.readouterr().out)
    web = out["processes"][0]
    assert [i["start_command"] for i in web["instances"]] == ["start-web a", "start-web b"]
    assert web["timing"]["interval"] == 5.0  # defaults are filled in


def test_check_with_one_process(tmp_path, capsys):
    cfg = tmp_path / "ha_valet.cfg"
    cfg.write_text(CFG)
    assert main(["-c", str(cfg), "-p", "Db", "-t"]) == 0
    assert [p["name"] for p in json.loads(capsys.readouterr().out)["processes"]] == ["Db"]


def test_bad_config_exits_2_with_file_and_line_and_runs_nothing(tmp_path):
    cfg = tmp_path / "ha_valet.cfg"
    cfg.write_text(CFG.replace('"x"', '__import__("os").system("touch pwned")'))
    r = subprocess.run([PY, "-m", "HaValet", "-c", str(cfg)], capture_output=True, text=True, timeout=30,
                       cwd=tmp_path)
    assert r.returncode == 2
    assert (f"{cfg}:11: key '[Db] start_command': value '__import__(\"os\").system(\"touch pwned\")' is not allowed: "
            "a command must be a quoted string") in r.stderr
    assert "missing required key" not in r.stderr
    assert not (tmp_path / "pwned").exists()


def test_status_prints_the_table(tmp_path, capsys):
    cfg = tmp_path / "ha_valet.cfg"
    cfg.write_text(CFG)
    status = tmp_path / "status.json"
    assert main(["-c", str(cfg), "--status", "--status-file", str(status)]) == 1  # no valet has run yet
    status.write_text(json.dumps({"valet_pid": 1, "config": str(cfg), "updated": "2026-01-01T00:00:00Z",
                                  "processes": [{"process": "Web", "state": "active", "active_host": "b",
                                                 "last_transition": "Web: STARTING -> ACTIVE (started on b) [started]",
                                                 "last_transition_time": "2026-01-01T00:00:00Z"}]}))
    capsys.readouterr()
    assert main(["-c", str(cfg), "--status", "--status-file", str(status)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["PROCESS", "STATE", "ACTIVE", "ON", "LAST", "TRANSITION"]
    assert lines[1].split()[:4] == ["Web", "active", "b", "2026-01-01T00:00:00Z"]


def test_check_says_which_mode_and_what_a_cut_link_does(tmp_path, capsys):
    cfg = tmp_path / "a.cfg"
    head = "[valet]\nnode = a\nlisten = 10.0.0.1:8791\nsecret = a shared secret of 16+\npeers = b=http://10.0.0.2:8791\n"
    cfg.write_text(head + CFG.split(":Db")[0])
    assert main(["-c", str(cfg), "--check"]) == 0
    out, err = capsys.readouterr()
    assert "mode: per-host, node a" in err and "pairs only" in err
    assert "TWO ACTIVE instances until it heals" in err
    assert "a shared secret" not in out and "*** (" in out  # secrets are masked
    witness = "witness_url = http://10.0.0.9:8790\nwitness_secret = witness secret 0123456\nstop_bound = 2.5\n"
    cfg.write_text(head + witness + "heartbeat_timeout = 5\n" + CFG.split(":Db")[0])
    assert main(["-c", str(cfg), "--check"]) == 0
    err = capsys.readouterr().err
    assert "standard mode (witness http://10.0.0.9:8790, groups Web)" in err
    assert ("the passive takes over 5s after the active went silent (heartbeat_timeout, then its start); the active "
            "gives up 2.14s after its last acknowledged heartbeat (fencing margin 2.86s") in err
    assert "configure each witness group with timeout = 5 (heartbeat_timeout)" in err and "warning" not in err
    cfg.write_text(head + witness + "heartbeat_timeout = 4.5\n" + CFG.split(":Db")[0])  # lease 1.64 s < 2 beats
    assert main(["-c", str(cfg), "--check"]) == 0
    assert "warning: [valet] heartbeat_timeout = 4.5: the active's lease (1.641s)" in capsys.readouterr().err
    cfg.write_text(head + witness + "heartbeat_timeout = 3\n" + CFG.split(":Db")[0])  # lease 0.144 s < 1 beat
    with pytest.raises(SystemExit) as exited:
        main(["-c", str(cfg), "--check"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "key '[valet] heartbeat_timeout': value 3.0" in err and "raise the timeout to at least 4.86s" in err
    cfg.write_text(CFG)
    assert main(["-c", str(cfg), "--check"]) == 0
    assert "mode: single valet" in capsys.readouterr().err

"""The ha-valet command line: --check, bad config exit 2, --status, -p."""

from __future__ import annotations

import json
import subprocess
import textwrap

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
    cfg.write_text(head + "witness_url = http://10.0.0.9:8790\nwitness_secret = witness secret 0123456\n"
                   + CFG.split(":Db")[0])
    assert main(["-c", str(cfg), "--check"]) == 0
    err = capsys.readouterr().err
    assert "standard mode (witness http://10.0.0.9:8790, groups Web)" in err and "stop_bound = 30.5" in err
    cfg.write_text(CFG)
    assert main(["-c", str(cfg), "--check"]) == 0
    assert "mode: single valet" in capsys.readouterr().err

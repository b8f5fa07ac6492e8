"""``python -m failover_agent --check CONFIG``: the daemons' convention (exit 0 valid, 2 invalid) for the agent."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from failover_agent.check import main

REPO = Path(__file__).resolve().parents[2]
GOOD = REPO / "config" / "failoveragent-primary.json"


def check(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "FailoverAgent"), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "failover_agent", *args], capture_output=True, text=True, timeout=30,
                          env=env)


def test_a_valid_config_prints_the_effective_config_secret_masked():
    r = check("--check", str(GOOD))
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["agent_id"] == "primary" and data["stop_bound"] == 1.0 and data["heartbeat_secret"].startswith("***")
    assert "REPLACE-with-a-long" not in r.stdout
    assert "failover-agent: primary: role primary" in r.stderr and "heartbeat HMAC on" in r.stderr


def test_a_bad_config_exits_2_naming_file_key_value(tmp_path):
    bad = tmp_path / "agent.json"
    bad.write_text(json.dumps({**json.loads(GOOD.read_text()), "timeout": True}))
    r = check("--check", str(bad))
    assert r.returncode == 2 and r.stdout == ""
    assert str(bad) in r.stderr and "'timeout'" in r.stderr and "boolean" in r.stderr


def test_a_fifo_is_refused_within_a_second(tmp_path):
    fifo = tmp_path / "agent.json"
    os.mkfifo(fifo)
    r = check("--check", str(fifo))  # the subprocess timeout (30 s) would fail the test on a hang
    assert r.returncode == 2 and "FIFO" in r.stderr


def test_without_a_secret_it_warns(tmp_path, capsys):
    cfg = tmp_path / "agent.json"
    cfg.write_text(json.dumps({k: v for k, v in json.loads(GOOD.read_text()).items() if k != "heartbeat_secret"}))
    assert main(["--check", str(cfg)]) == 0
    err = capsys.readouterr().err
    assert "heartbeat HMAC OFF" in err and "warning: heartbeat_secret is not set" in err


@pytest.mark.parametrize("args", [[], ["x.json"], ["--check"]])
def test_without_check_and_a_config_it_says_what_runs(args, capsys):
    assert main(args) == 2
    assert "--check CONFIG" in capsys.readouterr().err


def test_the_console_script_takes_check_too():
    """``failover-agent --check CONFIG`` (main.main, which imports VOLTTRON: in a subprocess, so that gevent's
    monkey-patching stays out of this test process)."""
    pytest.importorskip("volttron")
    code = ("import sys; sys.argv = ['failover-agent', '--check', sys.argv[1]]; "
            "from failover_agent.main import main; main()")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "FailoverAgent"), env.get("PYTHONPATH", "")])
    r = subprocess.run([sys.executable, "-c", code, str(GOOD)], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["agent_id"] == "primary"

"""Config: the documented config.py (parsed with ast, never executed), TOML and JSON; clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from DockerFailover.config import load_node_config, parse_python_config
from failover_core.config import ConfigError

GOOD = '''"""two hosts"""
heartbeat_interval = 1
check_heartbeat_interval = 0.5
heartbeat_timeout = 3.0
startup_grace_period = 10
restart_grace_period = 5
secret = "0123456789abcdef-secret"
containers = ["web", "db"]
failback = False
servers = {
    "server1": {"endpoint": "http://10.0.0.12:8700", "port": 8700},
    "server2": {"endpoint": "http://10.0.0.11:8700/", "port": 8701, "containers": ["web"]},
}
'''


def write(tmp_path: Path, text: str, name: str = "config.py") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def error_of(path: Path, server: str = "server1") -> str:
    with pytest.raises(ConfigError) as e:
        load_node_config(path, server)
    return str(e.value)


def test_documented_python_format_per_server(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD)
    c1, c2 = load_node_config(p, "server1"), load_node_config(p, "server2")
    assert (c1.preferred, c1.peer, c1.port, c1.containers) == (True, "server2", 8700, ["web", "db"])
    assert (c2.preferred, c2.peer, c2.port, c2.containers) == (False, "server1", 8701, ["web"])
    assert c2.endpoint == "http://10.0.0.11:8700"
    assert c1.heartbeat_timeout == 3.0 and c1.restart_grace_period == 5


def test_toml_and_json_mean_the_same(tmp_path: Path) -> None:
    data = parse_python_config(GOOD, source="x")
    j = write(tmp_path, json.dumps(data), "c.json")
    t = write(tmp_path, '''heartbeat_interval = 1
check_heartbeat_interval = 0.5
heartbeat_timeout = 3.0
startup_grace_period = 10
restart_grace_period = 5
secret = "0123456789abcdef-secret"
containers = ["web", "db"]
failback = false
[servers.server1]
endpoint = "http://10.0.0.12:8700"
port = 8700
[servers.server2]
endpoint = "http://10.0.0.11:8700/"
port = 8701
containers = ["web"]
''', "c.toml")
    py = write(tmp_path, GOOD)
    for s in ("server1", "server2"):
        assert load_node_config(j, s) == load_node_config(py, s) == load_node_config(t, s)


@pytest.mark.parametrize(("text", "line", "words"), [
    ("import os\nheartbeat_interval = 1\n", 1, "never executed"),
    ("secret = 'x' * 20\n", 1, "must be a literal"),
    ("a = 1\nsecret = open('/etc/shadow').read()\n", 2, "must be a literal"),
    ("x, y = 1, 2\n", 1, "one plain name"),
    ("print('hi')\n", 1, "never executed"),
    ("heartbeat_interval = 1\nheartbeat_interval = 2\n", 2, "assigned twice"),
    ("def f():\n    pass\n", 1, "never executed"),
    ("heartbeat_interval = (\n", 1, "not valid Python"),
])
def test_python_config_is_never_executed_and_errors_name_the_line(tmp_path: Path, text: str, line: int,
                                                                   words: str) -> None:
    marker = tmp_path / "executed"
    p = write(tmp_path, text.replace("/etc/shadow", str(marker)))
    msg = error_of(p)
    assert f"config.py:{line}" in msg and words in msg, msg
    assert not marker.exists()


@pytest.mark.parametrize(("change", "key", "words"), [
    (("heartbeat_interval = 1", "heartbeat_interval = 3"), "top level", "must be smaller than heartbeat_timeout"),
    (("heartbeat_interval = 1", "heartbeat_interval = 'fast'"), "heartbeat_interval", "valid number"),
    (('containers = ["web", "db"]', "containers = []"), "containers", "at least one container"),
    (('"http://10.0.0.12:8700"', '"10.0.0.12:8700"'), "servers.server1.endpoint", "http://HOST:PORT"),
    (('"http://10.0.0.12:8700"', '"http://10.0.0.12"'), "servers.server1.endpoint", "http://HOST:PORT"),
    (('"http://10.0.0.12:8700"', '"ftp://h:1"'), "servers.server1.endpoint", "scheme"),
    (("port\": 8700}", "port\": 70000}"), "servers.server1.port", "less than or equal to 65535"),
    (('secret = "0123456789abcdef-secret"', 'secret = "short"'), "secret", "at least 16"),
    (("failback = False", "failbak = False"), "failbak", "unknown key"),
])
def test_bad_values_name_the_key(tmp_path: Path, change: tuple[str, str], key: str, words: str) -> None:
    assert change[0] in GOOD
    msg = error_of(write(tmp_path, GOOD.replace(change[0], change[1], 1)))
    assert key in msg and words in msg, msg


def test_server_must_be_configured_and_servers_must_be_two(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD)
    assert "one of the configured servers: server1, server2" in error_of(p, "server3")
    line2 = '    "server2": {"endpoint": "http://10.0.0.11:8700/", "port": 8701, "containers": ["web"]},\n'
    one = GOOD.replace(line2, "")
    assert "exactly two servers" in error_of(write(tmp_path, one))


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "DockerFailover", *args], capture_output=True, text=True, timeout=60)


def test_cli_check_prints_effective_config_and_rejects_bad_config(tmp_path: Path) -> None:
    good = write(tmp_path, GOOD)
    r = run_cli("--server", "server2", "--config", str(good), "-t")
    assert r.returncode == 0, r.stderr
    eff = json.loads(r.stdout)
    assert eff["name"] == "server2" and eff["stop_timeout"] == 10.0 and eff["containers"] == ["web"]
    assert "0123456789abcdef-secret" not in r.stdout  # -t output ends up in logs: the secret is masked
    bad = write(tmp_path, GOOD.replace("heartbeat_interval = 1", "heartbeat_interval = 5"), "bad.py")
    r = run_cli("--server", "server1", "--config", str(bad))  # a daemon start with a bad config exits 2 too
    assert r.returncode == 2
    assert "bad.py" in r.stderr and "heartbeat_interval (5) must be smaller than heartbeat_timeout" in r.stderr
    r = run_cli("--config", str(good), "-t")
    assert r.returncode == 2 and "--server" in r.stderr


WITNESS = 'witness = {"url": "http://10.0.0.13:8790", "secret": "witness-secret-0123456789", "kill_bound": 0.5}\n'


def test_a_witness_means_standard_mode_with_its_fencing_figures(tmp_path: Path) -> None:
    cfg = load_node_config(write(tmp_path, GOOD + WITNESS), "server1")
    assert cfg.mode == "standard" and cfg.witness is not None and cfg.witness.group == "docker-failover"
    timing = cfg.fencing
    assert timing is not None and timing.timeout == 3.0 and timing.stop_bound == 0.5
    summary = cfg.mode_summary()
    # T = 3, S = 0.5, D = 0.25, rho = 0.001, slack 0.1: lease = 3 x 0.999/1.001 - 0.85 = 2.144 s, margin 0.856 s
    assert "takes over 3 s after the active went silent" in summary, summary
    assert "gives up 2.144 s after its last acknowledged heartbeat (fencing margin 0.856 s)" in summary, summary
    assert "The witness group must use timeout = 3." in summary and "stop_bound" not in summary
    assert cfg.warnings == ()
    simple = load_node_config(write(tmp_path, GOOD, "simple.py"), "server1")
    assert simple.mode == "simple" and simple.fencing is None
    assert "TWO ACTIVES" in simple.mode_summary()


@pytest.mark.parametrize(("witness", "key", "words"), [
    ('{"url": "10.0.0.13:8790", "secret": "witness-secret-0123456789"}', "witness.url", "http://HOST:PORT"),
    ('{"url": "http://10.0.0.13:8790/x", "secret": "witness-secret-0123456789"}', "witness.url", "path"),
    ('{"url": "http://10.0.0.13:8790", "secret": "short"}', "witness.secret", "at least 16"),
    ('{"url": "http://10.0.0.13:8790", "secret": "witness-secret-0123456789", "kill_bound": 0}',
     "witness.kill_bound", "greater than 0"),
    ('{"url": "http://10.0.0.13:8790", "secret": "witness-secret-0123456789", "grup": "x"}', "witness.grup",
     "unknown key"),
    ('"http://10.0.0.13:8790"', "witness", "valid dictionary"),
])
def test_bad_witness_settings_name_the_key(tmp_path: Path, witness: str, key: str, words: str) -> None:
    msg = error_of(write(tmp_path, GOOD + f"witness = {witness}\n"))
    assert key in msg and words in msg, msg


def test_check_says_plainly_what_each_mode_promises(tmp_path: Path) -> None:
    r = run_cli("--server", "server1", "--config", str(write(tmp_path, GOOD)), "-t")
    assert r.returncode == 0 and "TWO ACTIVES" in r.stderr and json.loads(r.stdout)["mode"] == "simple"
    r = run_cli("--server", "server1", "--config", str(write(tmp_path, GOOD + WITNESS, "std.py")), "-t")
    eff = json.loads(r.stdout)
    assert r.returncode == 0 and eff["mode"] == "standard" and "witness-secret" not in r.stdout
    assert eff["fencing"]["down_after"] == eff["fencing"]["timeout"] == 3.0
    assert eff["fencing"]["lease"] == 2.144 and eff["fencing"]["margin"] == 0.856 and eff["warnings"] == []
    assert "gives up 2.144 s after its last acknowledged heartbeat" in r.stderr and "warning" not in r.stderr


def with_timing(interval: float, timeout: float) -> str:
    return GOOD.replace("heartbeat_interval = 1", f"heartbeat_interval = {interval}").replace(
        "heartbeat_timeout = 3.0", f"heartbeat_timeout = {timeout}") + "request_timeout = 0.5\n" + WITNESS


def test_a_lease_not_longer_than_a_heartbeat_is_a_config_error_naming_the_smallest_timeout(tmp_path: Path) -> None:
    """T = 1.5, S = 0.5: lease 0.647 s < the interval 1 s: the active would fence itself between heartbeats."""
    msg = error_of(write(tmp_path, with_timing(1, 1.5)))
    assert all(k in msg for k in ("heartbeat_timeout (1.5)", "witness.kill_bound (0.5)", "heartbeat_interval (1)"))
    assert "raise the timeout to at least 2.86s" in msg, msg
    assert "0123456789abcdef-secret" not in msg and "witness-secret" not in msg  # the timings only, no secrets
    r = run_cli("--server", "server1", "--config", str(write(tmp_path, with_timing(1, 1.5), "short.py")), "-t")
    assert r.returncode == 2 and "configuration error" in r.stderr and "Traceback" not in r.stderr, r.stderr
    # simple mode has no lease: the same timings are fine there
    assert load_node_config(write(tmp_path, with_timing(1, 1.5).replace(WITNESS, ""), "simple.py"), "server1")


def test_no_lease_at_all_is_a_config_error_not_a_traceback(tmp_path: Path) -> None:
    """T = 0.8 s cannot cover S + D + slack = 0.85 s: FencingTiming's own refusal becomes a ConfigError."""
    msg = error_of(write(tmp_path, with_timing(0.5, 0.8)))
    assert "heartbeat_timeout (0.8)" in msg and "leaves the active no lease" in msg and "more than 0.852s" in msg
    r = run_cli("--server", "server1", "--config", str(write(tmp_path, with_timing(0.5, 0.8), "none.py")))
    assert r.returncode == 2 and "leaves the active no lease" in r.stderr and "Traceback" not in r.stderr


def test_a_lease_under_two_heartbeats_is_a_warning(tmp_path: Path) -> None:
    """T = 2.5 s, interval 1 s: lease 1.648 s, one lost heartbeat fences a healthy active: allowed, said."""
    cfg = load_node_config(write(tmp_path, with_timing(1, 2.5)), "server1")
    [warning] = cfg.warnings
    assert "shorter than two heartbeat intervals" in warning and "2.86s or more" in warning, warning
    r = run_cli("--server", "server1", "--config", str(write(tmp_path, with_timing(1, 2.5), "warn.py")), "-t")
    assert r.returncode == 0 and json.loads(r.stdout)["warnings"] == [warning]
    assert f"warning: {warning}" in r.stderr


def test_the_stall_threshold_catches_any_freeze_the_peer_could_call_death(tmp_path: Path) -> None:
    """A loop gap above ``stall_threshold`` makes the agent tell its decider it was stalled. The threshold was
    T: a 1.4 s freeze at the lab's T 1.5 s (heartbeat 0.2 s) went unnoticed and gave two actives (chaos, Docker
    standard, seed 3). Now: twice the loop's period, never above T - heartbeat_interval."""
    lab = GOOD.replace("heartbeat_interval = 1", "heartbeat_interval = 0.2").replace(
        "check_heartbeat_interval = 0.5", "check_heartbeat_interval = 0.2").replace(
        "heartbeat_timeout = 3.0", "heartbeat_timeout = 1.5")
    assert load_node_config(write(tmp_path, lab, "lab.py"), "server1").stall_threshold == pytest.approx(0.4)
    assert load_node_config(write(tmp_path, GOOD), "server1").stall_threshold == pytest.approx(1.0)
    slow_loop = GOOD.replace("check_heartbeat_interval = 0.5", "check_heartbeat_interval = 2")
    cfg = load_node_config(write(tmp_path, slow_loop, "slow.py"), "server1")
    assert cfg.stall_threshold == pytest.approx(cfg.heartbeat_timeout - cfg.heartbeat_interval) == pytest.approx(2.0)

"""The witness's config and ``-t/--check`` (through ``python -m FailoverWitness``), the shipped example and the
systemd unit."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from failover_core.config import ConfigError
from FailoverWitness.config import load_witness_config

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "FailoverWitness" / "deploy" / "failover-witness.service"
GOOD = """
listen = "127.0.0.1"
port = 8790
[groups.pair1]
secret = "0123456789abcdef0123"
timeout = 2.0
heartbeat_interval = 0.5
[groups.pair2]
secret = "fedcba9876543210fedc"
timeout = 3
"""


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "FailoverWitness", "-c", str(path), "--check"],
                          capture_output=True, text=True, timeout=60)


def test_check_prints_the_effective_config_with_each_groups_down_after(tmp_path: Path) -> None:
    path = tmp_path / "witness.toml"
    path.write_text(GOOD)
    r = check(path)
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert shown["name"] == "witness" and shown["listen"] == "127.0.0.1" and shown["max_clock_skew"] == 30.0
    for name, t in {"pair1": 2.0, "pair2": 3.0}.items():
        g = shown["groups"][name]
        assert g["down_after"] == t  # the nodes' timeout: their leases end earlier (failover_core.fencing)
        assert "0123" not in g["secret"] and "fedc" not in g["secret"]
    assert shown["groups"]["pair2"]["heartbeat_interval"] is None


def test_the_json_form_means_the_same(tmp_path: Path) -> None:
    toml, js = tmp_path / "w.toml", tmp_path / "w.json"
    toml.write_text(GOOD)
    js.write_text(json.dumps({"listen": "127.0.0.1", "port": 8790, "groups": {
        "pair1": {"secret": "0123456789abcdef0123", "timeout": 2.0, "heartbeat_interval": 0.5},
        "pair2": {"secret": "fedcba9876543210fedc", "timeout": 3}}}))
    assert load_witness_config(toml) == load_witness_config(js)


BAD = [  # (replace this, with that, the key named, the value shown)
    ('listen = "127.0.0.1"', 'listen = "localhost"', "listen", "'localhost'"),
    ('listen = "127.0.0.1"', 'listen = "10.0.0.300"', "listen", "'10.0.0.300'"),
    ("port = 8790", "port = 70000", "port", "70000"),
    ('secret = "0123456789abcdef0123"', 'secret = ""', "groups.pair1.secret", "'*** (0 characters)'"),
    ('secret = "0123456789abcdef0123"', 'secret = "short"', "groups.pair1.secret", "'*** (5 characters)'"),
    ('secret = "0123456789abcdef0123"\n', "", "groups.pair1.secret", "(missing)"),
    ("timeout = 2.0", "timeout = 0", "groups.pair1.timeout", "0"),
    ("timeout = 2.0", 'timeout = "two"', "groups.pair1.timeout", "'two'"),
    ("timeout = 2.0", "timeout = 2.0\nstop_bound = 1.0", "groups.pair1.stop_bound", "1.0"),  # gone: T alone
    ("timeout = 2.0", "timeout = nan", "groups.pair1.timeout", "nan"),
    ("heartbeat_interval = 0.5", "heartbeat_interval = 2.5", "groups.pair1", "heartbeat_interval (2.5)"),
    ("heartbeat_interval = 0.5", "heartbat_interval = 0.5", "groups.pair1.heartbat_interval", "0.5"),
    ("[groups.pair2]", "[groups.'pair 2']", "groups", "pair 2"),
    ('port = 8790', 'port = 8790\nnmae = "w"', "nmae", "'w'"),
]


@pytest.mark.parametrize(("old", "new", "key", "value"), BAD, ids=[b[1].split("=")[0].strip() or b[2] for b in BAD])
def test_a_bad_config_exits_2_naming_file_key_and_value(tmp_path: Path, old: str, new: str, key: str,
                                                        value: str) -> None:
    assert old in GOOD
    path = tmp_path / "witness.toml"
    path.write_text(GOOD.replace(old, new, 1))
    r = check(path)
    assert r.returncode == 2, r.stdout
    assert r.stdout == ""
    assert str(path) in r.stderr and f"'{key}" in r.stderr and value in r.stderr, r.stderr
    assert "0123456789abcdef0123" not in r.stderr and "short" not in r.stderr  # secrets are not shown


def test_no_groups_unreadable_and_unparsable_files_exit_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text('listen = "0.0.0.0"\n')
    broken = tmp_path / "broken.json"
    broken.write_text('{"groups": {')
    for path, words in ((empty, ["'groups'", "(missing)"]), (broken, ["broken.json", "not valid JSON"]),
                        (tmp_path / "absent.toml", ["absent.toml", "cannot read"])):
        r = check(path)
        assert r.returncode == 2 and all(w in r.stderr for w in words), r.stderr
    with pytest.raises(ConfigError):
        load_witness_config(empty)


def test_the_shipped_example_is_valid() -> None:
    cfg = load_witness_config(REPO / "config" / "witness.toml")
    assert set(cfg.groups) == {"web-pair", "db-pair"} and cfg.port == 8790
    assert check(REPO / "config" / "witness.toml").returncode == 0


def test_systemd_unit_runs_the_console_script_and_checks_the_config_first() -> None:
    text = UNIT.read_text()
    # the root-only config file reaches the unprivileged service user as a credential
    assert re.search(r"^LoadCredential=witness.toml:/etc/failover-witness/witness.toml$", text, re.M)
    assert re.search(r"^ExecStartPre=\S+/failover-witness --config %d/witness.toml --check$", text, re.M)
    assert re.search(r"^ExecStart=\S+/failover-witness --config %d/witness.toml$", text, re.M)
    assert "DynamicUser=yes" in text
    assert "Restart=always" in text and "KillSignal=SIGTERM" in text
    assert "failover-witness=FailoverWitness.cli:main" in (REPO / "setup.py").read_text()
    if shutil.which("systemd-analyze"):
        r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(UNIT)], capture_output=True, text=True,
                           timeout=60)
        # the venv is not installed at /opt/... on a build machine; anything else must be clean
        bad = [ln for ln in r.stderr.splitlines() if "No such file" not in ln and "Executable path" not in ln
               and "is not executable" not in ln]
        assert not bad, r.stderr

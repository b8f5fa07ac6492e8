"""Issue 12's classes of bad input, one named test each, against the four config parsers (VrrpFailover,
DockerFailover, HaValet, the FailoverAgent): a clear ConfigError within 1 s, never a traceback, a hang or a
silently accepted value."""

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from DockerFailover.config import load_node_config
from failover_agent.config_file import load_agent_config
from failover_core.config import ConfigError
from HaValet.config import load_config as load_valet
from HaValet.config import parse_config as parse_valet
from VrrpFailover.config import load_config as load_vrrp

VRRP = {"name": "VR_1", "vrid": 51, "interface_name": "eth0", "ip_addresses": ["192.168.100.100/24"],
        "priority": 10, "advert_interval": 1, "preempt_mode": True}
DOCKER = {"heartbeat_interval": 1.0, "heartbeat_timeout": 3.0, "containers": ["web"],
          "secret": "change-me-to-a-long-random-string",
          "servers": {"server1": {"endpoint": "http://192.0.2.12:8700", "port": 8700},
                      "server2": {"endpoint": "http://192.0.2.11:8700", "port": 8700}}}
AGENT = {"agent_id": "primary", "simple_behavior": False, "remote_vip": "tcp://192.0.2.12:22916",
         "remote_serverkey": "KEY", "agent_vip_identity": "platform.driver", "witness_vip": "tcp://192.0.2.13:22916",
         "witness_serverkey": "KEY2", "heartbeat_secret": "a-long-shared-secret", "heartbeat_period": 10,
         "timeout": 120}
VALET = """[valet]
interval = 2
[Web]
host = web1
stand_by_list = web2
user = web
priority = 1
start_command = "start %s" % (host)
stop_command = "stop"
test_command = "test"
"""


def _vrrp(tmp: Path, doc: Any) -> Any:
    p = tmp / "vrrp.json"
    p.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return load_vrrp(str(p))


def _docker(tmp: Path, doc: Any, suffix: str = ".json") -> Any:
    p = tmp / f"docker{suffix}"
    p.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return load_node_config(p, "server1")


def _agent(tmp: Path, doc: Any) -> Any:
    p = tmp / "agent.config"
    p.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return load_agent_config(str(p))


def _valet(tmp: Path, text: str, suffix: str = ".cfg") -> Any:
    p = tmp / f"valet{suffix}"
    p.write_text(text)
    return load_valet(p)


def refused(load: Callable[[], Any], *words: str) -> str:
    """``load()`` raises ConfigError within 1 s with a bounded message containing ``words``."""
    t0 = time.monotonic()
    with pytest.raises(ConfigError) as e:
        load()
    assert time.monotonic() - t0 < 1.0
    msg = str(e.value)
    assert len(msg) < 4000, msg[:500]
    for w in words:
        assert w in msg, msg
    return msg


def test_the_bases_are_valid(tmp_path):
    assert _vrrp(tmp_path, VRRP)[0].vrid == 51
    assert _docker(tmp_path, DOCKER).port == 8700
    assert _agent(tmp_path, AGENT).heartbeat_secret
    assert _valet(tmp_path, VALET).processes[0].hosts == ("web1", "web2")


# ---------------------------------------------------------------------------------------------- every parser

LOADERS = {"vrrp": (_vrrp, VRRP), "docker": (_docker, DOCKER), "agent": (_agent, AGENT)}


@pytest.mark.parametrize("system", ["vrrp", "docker", "agent", "valet"])
def test_a_fifo_as_the_config_is_refused_at_once(tmp_path, system):
    fifo = tmp_path / ("c.cfg" if system == "valet" else "c.json")
    os.mkfifo(fifo)
    load = {"vrrp": lambda: load_vrrp(str(fifo)), "docker": lambda: load_node_config(fifo, "server1"),
            "agent": lambda: load_agent_config(str(fifo)), "valet": lambda: load_valet(fifo)}[system]
    refused(load, "FIFO", "regular file")


@pytest.mark.parametrize("system", ["vrrp", "docker", "agent"])
@pytest.mark.parametrize("text", ['{"a": 1,\n', "[" * 10000 + "]" * 10000, '{"a": ' * 5000 + "1" + "}" * 5000],
                         ids=["cut-after-newline", "deep-list", "deep-object"])
def test_broken_or_deep_json_is_a_clear_error(tmp_path, system, text):
    load, _ = LOADERS[system]
    refused(lambda: load(tmp_path, text))


@pytest.mark.parametrize("system", ["vrrp", "docker", "agent"])
def test_duplicate_keys_are_refused(tmp_path, system):
    load, base = LOADERS[system]
    text = json.dumps(base)[:-1] + ', "' + next(iter(base)) + '": ' + json.dumps(next(iter(base.values()))) + "}"
    refused(lambda: load(tmp_path, text), "duplicate key")


@pytest.mark.parametrize("system", ["vrrp", "docker", "agent"])
def test_a_huge_value_gives_a_short_message(tmp_path, system):
    load, base = LOADERS[system]
    refused(lambda: load(tmp_path, {**base, "name" if system == "vrrp" else "notify": "x" * 900_000}))


# ---------------------------------------------------------------------------------------------- VrrpFailover

@pytest.mark.parametrize(("key", "value", "words"), [
    ("advert_interval", "Infinity", "finite"), ("advert_interval", 1e999, "finite"), ("priority", True, "boolean"),
    ("vrid", "51", "string"), ("preempt_mode", "no", "true or false"), ("advert_interval", 41, "40.95"),
    ("name", "VR\x1b[31m", "U+001B"), ("name", "VR\u202e1", "U+202E"), ("interface_name", "eth\x000", "U+0000"),
    ("notify", "", "non-empty command"), ("notify", [], "non-empty command"), ("version", 3.0, "integer"),
    ("preempt_delay", float("nan"), "finite"), ("garp_delay", 1e308, "less than or equal"),
])
def test_vrrp_refuses(tmp_path, key, value, words):
    doc = json.dumps({**VRRP, key: value}).replace('"Infinity"', "Infinity")
    refused(lambda: _vrrp(tmp_path, doc), key, words)


def test_vrrp_deep_track_script_is_refused(tmp_path):
    text = json.dumps({**VRRP, "track_script": {"command": "x"}}).replace('{"command": "x"}', "[" * 5000 + "]" * 5000)
    refused(lambda: _vrrp(tmp_path, text), "nested")


# ---------------------------------------------------------------------------------------------- DockerFailover

@pytest.mark.parametrize(("change", "words"), [
    ({"heartbeat_timeout": 1e999}, "finite"), ({"stop_timeout": 1e9}, "less than or equal"),
    ({"heartbeat_timeout": True}, "boolean"), ({"failback": "no"}, "true or false"),
    ({"heartbeat_interval": "0.5"}, "string"), ({"state_dir": ""}, "state_dir"), ({"state_dir": "rel"}, "absolute"),
    ({"docker_url": "garbage"}, "docker_url"), ({"docker_url": "unix://"}, "docker_url"),
    ({"listen": "not-an-ip"}, "IP address"), ({"notify": ""}, "non-empty command"),
    ({"notify": [""]}, "non-empty command"), ({"containers": ["web\x1b"]}, "container"),
])
def test_docker_refuses(tmp_path, change, words):
    refused(lambda: _docker(tmp_path, {**DOCKER, **change}), next(iter(change)), words)


def test_docker_port_true_is_not_port_1(tmp_path):
    doc = {**DOCKER, "servers": {**DOCKER["servers"], "server1": {"endpoint": "http://192.0.2.12:8700", "port": True}}}
    refused(lambda: _docker(tmp_path, doc), "port", "boolean")


def test_docker_both_endpoints_naming_one_agent(tmp_path):
    same = {"server1": {"endpoint": "http://192.0.2.12:8700", "port": 8700},
            "server2": {"endpoint": "http://192.0.2.12:8700/", "port": 8700}}
    refused(lambda: _docker(tmp_path, {**DOCKER, "servers": same}), "same agent")


def test_docker_python_config_bad_input(tmp_path):
    good = "".join(f"{k} = {v!r}\n" for k, v in DOCKER.items())
    assert _docker(tmp_path, good, ".py").port == 8700
    refused(lambda: _docker(tmp_path, good + "stop_timeout = 1e999\n", ".py"), "stop_timeout", "finite")
    refused(lambda: _docker(tmp_path, good + "x = " + "[" * 5000 + "]" * 5000 + "\n", ".py"))
    refused(lambda: _docker(tmp_path, good + "x = " + "9" * 5000 + "\n", ".py"))
    refused(lambda: _docker(tmp_path, good + "x = 1\0\n", ".py"))


def test_docker_toml_bad_input(tmp_path):
    refused(lambda: _docker(tmp_path, 'heartbeat_timeout = inf\n', ".toml"), "heartbeat_timeout", "finite")
    refused(lambda: _docker(tmp_path, "x = " + "[" * 5000 + "]" * 5000, ".toml"), "nested")


# ---------------------------------------------------------------------------------------------- FailoverAgent

@pytest.mark.parametrize(("change", "words"), [
    ({"heartbeat_secret": ""}, "heartbeat_secret"), ({"heartbeat_secret": "   "}, "heartbeat_secret"),
    ({"failback_delay": 1e308}, "less than or equal"), ({"timeout": 1e999}, "finite"),
    ({"timeout": True}, "boolean"), ({"heartbeat_period": "5"}, "string"), ({"simple_behavior": "no"}, "true or false"),
    ({"witness_vip": "tcp://192.0.2.12:22916"}, "same platform"), ({"remote_vip": "not a url"}, "VIP address"),
    ({"remote_vip": "http://192.0.2.12:22916"}, "VIP address"),
    ({"agent_vip_identity": "platform.\x1bdriver"}, "U+001B"),
    ({"agent_vip_identity": "evil\u202e"}, "U+202E"), ({"notify": ""}, "notify"), ({"notify": [" "]}, "notify"),
    ({"remote_id": "primary"}, "itself"),
])
def test_agent_refuses(tmp_path, change, words):
    refused(lambda: _agent(tmp_path, {**AGENT, **change}), words)


def test_agent_yaml_billion_laughs_and_duplicates(tmp_path):
    lol = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(9))
    refused(lambda: _agent(tmp_path, "agent_id: witness\n" + lol), "anchors and aliases")
    refused(lambda: _agent(tmp_path, "agent_id: witness\ntimeout: 9\ntimeout: 10\n"), "duplicate key")
    refused(lambda: _agent(tmp_path, "agent_id: witness\ntimeout: .inf\n"), "timeout", "finite")
    refused(lambda: _agent(tmp_path, "agent_id: witness\nheartbeat_secret: ''\n"), "heartbeat_secret")


def test_agent_without_a_secret_is_valid_but_warns():
    from failover_agent.config import parse_agent_config

    cfg = parse_agent_config({k: v for k, v in AGENT.items() if k != "heartbeat_secret"}, source="s")
    assert cfg.auth_warning and "NOT authenticated" in cfg.auth_warning
    assert parse_agent_config(AGENT, source="s").auth_warning is None


def test_agent_dict_config_is_bounded_too():
    from failover_agent.config import parse_agent_config

    deep: Any = 1
    for _ in range(100_000):
        deep = {"x": deep}
    refused(lambda: parse_agent_config({**AGENT, "group": deep}, source="s"), "nested")


# ---------------------------------------------------------------------------------------------- HaValet

@pytest.mark.parametrize(("old", "new", "words"), [
    ('"start %s" % (host)', '"start %999999999s" % (host)', "at most 4096"),
    ('"start %s" % (host)', '"start %*s" % (host)', "'*'"),
    ("stand_by_list = web2", "stand_by_list = ,,,", "none empty"),
    ("stand_by_list = web2", "stand_by_list = web1", "own host"),
    ("stand_by_list = web2", "stand_by_list = web2,web2", "twice"),
    ("stand_by_list = web2", "stand_by_list = web2,,web3", "none empty"),
    ("interval = 2", "interval = nan", "valid number"), ("interval = 2", "interval = inf", "valid number"),
    ("interval = 2", "interval = 1e999", "finite"), ("interval = 2", "interval = 1e9", "less than or equal"),
    ("priority = 1", "priority = true", "valid integer"), ("interval = 2", "notify =", "non-empty command"),
    ("host = web1", "host = web\x1b1", "U+001B"), ("host = web1", "host = we\u202eb1", "U+202E"),
    ("user = web", "user = w\x00eb", "U+0000"), ("[Web]", "[Web]\norder = 1000000000000000000000000000000", "order"),
])
def test_valet_cfg_refuses(tmp_path, old, new, words):
    assert old in VALET
    refused(lambda: _valet(tmp_path, VALET.replace(old, new, 1)), words)


def test_valet_readme_spelling_of_stand_by_lists_stays_valid():
    text = VALET.replace("stand_by_list = web2", "stand_by_list = web1,web2")
    assert parse_valet(text).processes[0].hosts == ("web1", "web2")


TOML = """[valet]
interval = 2.0
[Web]
host = "web1"
stand_by_list = ["web2"]
user = "web"
priority = 1
start_command = "start"
stop_command = "stop"
test_command = "test"
"""


@pytest.mark.parametrize(("old", "new", "words"), [
    ("interval = 2.0", 'interval = "5"', "string"), ("interval = 2.0", "interval = inf", "finite"),
    ("priority = 1", "priority = true", "boolean"), ('stand_by_list = ["web2"]', 'stand_by_list = ["", ""]', "empty"),
    ("priority = 1", "priority = 1\norder = 1000000000000000000000000000000", "64 bits"),
    ("interval = 2.0", "x = " + "[" * 5000 + "]" * 5000, "nested"),
])
def test_valet_toml_refuses(tmp_path, old, new, words):
    assert _valet(tmp_path, TOML, ".toml").processes[0].hosts == ("web1", "web2")
    refused(lambda: _valet(tmp_path, TOML.replace(old, new, 1), ".toml"), words)


def test_valet_listen_must_be_an_ip_address():
    head = ("[valet]\nnode = web1\nlisten = not-an-ip:8791\nsecret = a shared secret of 16+\n"
            "peers = web2=http://10.0.0.2:8791\n")
    refused(lambda: parse_valet(head + VALET.replace("[valet]\n", "")), "listen", "IP address")


@pytest.mark.parametrize("argv", [["VrrpFailover", "-c", "{fifo}", "--check"],
                                  ["DockerFailover", "--server", "server1", "-c", "{fifo}", "--check"],
                                  ["HaValet", "-c", "{fifo}", "--check"],
                                  ["failover_agent", "--check", "{fifo}"]], ids=lambda a: a[0])
def test_check_on_a_fifo_exits_2_at_once(tmp_path, argv):
    import subprocess
    import sys

    fifo = tmp_path / "config.json"
    os.mkfifo(fifo)
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), str(repo / "FailoverAgent"),
                                                        os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-m", *(a.replace("{fifo}", str(fifo)) for a in argv)], capture_output=True,
                       text=True, timeout=30, env=env)  # a hang fails on the timeout
    assert r.returncode == 2 and "FIFO" in r.stderr, r.stderr


@pytest.mark.parametrize("case", ["vrrp-instances", "vrrp-values", "docker-py", "docker-toml", "valet-sections",
                                  "valet-lines", "agent-yaml-nodes", "agent-yaml-size", "agent-json-values"])
def test_a_megabyte_of_many_small_things_is_bounded(tmp_path, case):
    """Under the size limit, the count of values, instances, sections and YAML nodes is bounded too: an error (or a
    valid config) well within a second, never a message per item."""
    many = "[" + ",".join(["1"] * 300_000) + "]"
    load = {
        "vrrp-instances": lambda: _vrrp(tmp_path, [VRRP] * 5000),
        "vrrp-values": lambda: _vrrp(tmp_path, [{"name": 1}] * 80_000),
        "docker-py": lambda: _docker(tmp_path, f"x = {many}\n", ".py"),
        "docker-toml": lambda: _docker(tmp_path, f"x = {many}\n", ".toml"),
        "valet-sections": lambda: _valet(tmp_path, VALET.replace("[Web]", "[W]") * 1200),
        "valet-lines": lambda: _valet(tmp_path, "junk\n" * 200_000),
        "agent-yaml-nodes": lambda: _agent(tmp_path, "agent_id: witness\nx: [" + ",".join(["1"] * 20_000) + "]\n"),
        "agent-yaml-size": lambda: _agent(tmp_path, "agent_id: witness\nx: " + "a" * 100_000 + "\n"),
        "agent-json-values": lambda: _agent(tmp_path, {"agent_id": "witness", "x": [1] * 200_000}),
    }[case]
    refused(load)


@pytest.mark.parametrize(("key", "value"), [("ip_addresses", [True]), ("ip_addresses", [3232261220]),
                                            ("unicast_peers", [True]), ("unicast_peers", [167772161])])
def test_vrrp_addresses_are_text_not_numbers_or_booleans(tmp_path, key, value):
    """pydantic builds an IPv4 address from an int: true was 0.0.0.1, silently accepted as a virtual address."""
    refused(lambda: _vrrp(tmp_path, {**VRRP, key: value}), key, "string")

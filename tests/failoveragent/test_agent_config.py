"""The agent's config: both documented formats, defaults, and errors that name key, value and rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from failover_agent.config import DEFAULT_WITNESS_IDENTITY, FailoverConfig, WitnessConfig, parse_agent_config
from failover_agent.config_file import load_agent_config
from failover_core.config import ConfigError
from failover_core.tables import Role

KEY = "x" * 43
LEGACY = {"agent_id": "simple_secondary", "remote_id": "simple_primary", "remote_vip": "tcp://10.0.0.1:22916",
          "remote_serverkey": KEY, "volttron_ctl_tag": "master_driver", "heartbeat_period": 10, "timeout": 120}
MODERN = {"agent_id": "primary", "simple_behavior": False, "remote_vip": "tcp://10.0.0.2:22916",
          "remote_serverkey": KEY, "agent_vip_identity": "platform.driver", "heartbeat_period": 10, "timeout": 120,
          "witness_vip": "tcp://10.0.0.3:22916", "witness_serverkey": KEY}


def parse(data: dict) -> FailoverConfig:
    cfg = parse_agent_config(data, source="test.json")
    assert isinstance(cfg, FailoverConfig)
    return cfg


def test_legacy_format_with_tag_and_simple_role() -> None:
    cfg = parse(LEGACY)
    assert cfg.role is Role.SIMPLE_SECONDARY
    assert cfg.peer_id == "simple_primary" and cfg.volttron_ctl_tag == "master_driver"
    assert cfg.managed_identities == ()


def test_modern_format_standard_mode_with_witness_default_identity() -> None:
    cfg = parse(MODERN)
    assert cfg.role is Role.PRIMARY and cfg.peer_id == "secondary"
    assert cfg.witness_identity == DEFAULT_WITNESS_IDENTITY == "volttron.central"
    assert cfg.managed_identities == ("platform.driver",)


def test_documented_defaults() -> None:
    cfg = parse({"agent_id": "secondary", "remote_vip": "ipc://@/x", "agent_vip_identity": ["a", "b"]})
    assert cfg.role is Role.SIMPLE_SECONDARY  # simple_behavior defaults to true
    assert (cfg.heartbeat_period, cfg.timeout, cfg.failback_delay) == (10, 120, 0)
    assert cfg.managed_identities == ("a", "b")
    assert (cfg.stop_bound, cfg.group) == (1.0, "default")
    # docs/failoveragent.md's figures for a standard-mode config with the defaults
    timing = parse({**MODERN, "heartbeat_period": 10, "timeout": 120}).timing
    assert timing.down_after == 120
    assert (round(timing.lease, 3), round(timing.margin, 3)) == (118.41, 1.59)


def test_the_witness_takes_only_the_timeout() -> None:
    cfg = parse_agent_config({"agent_id": "witness", "timeout": 4}, source="w.json")
    assert isinstance(cfg, WitnessConfig) and cfg.timeout == 4  # down_after = timeout, like the passive's
    with pytest.raises(ConfigError) as err:  # stop_bound was the witness's until the margin moved to the lease
        parse_agent_config({"agent_id": "witness", "timeout": 4, "stop_bound": 1}, source="w.json")
    assert "key 'stop_bound'" in str(err.value) and "unknown key (allowed keys: agent_id, heartbeat_secret, " \
        "timeout)" in str(err.value)


def test_a_lease_shorter_than_a_heartbeat_is_an_error_naming_the_keys_and_the_smallest_timeout() -> None:
    with pytest.raises(ConfigError) as err:  # lease 0.646 s <= heartbeat 1 s
        parse({**MODERN, "heartbeat_period": 1, "timeout": 2})
    text = str(err.value)
    assert "timeout 2, heartbeat_period 1, stop_bound 1:" in text and "lease (0.646s" in text
    assert "raise the timeout to at least 3.36s" in text
    with pytest.raises(ConfigError) as err:  # no lease at all (the timeout is shorter than stopping takes)
        parse({**MODERN, "heartbeat_period": 1, "timeout": 1.3})
    text = str(err.value)
    assert "timeout 1.3, heartbeat_period 1, stop_bound 1:" in text and "leaves the active no lease" in text
    assert "the timeout should be at least 3.36s" in text
    with pytest.raises(ConfigError, match="stop_bound 5"):  # a longer stop bound shortens the lease
        parse({**MODERN, "heartbeat_period": 1, "timeout": 6, "stop_bound": 5})


def test_a_lease_under_two_heartbeats_is_a_warning_and_simple_mode_has_no_lease_rule() -> None:
    cfg = parse({**MODERN, "heartbeat_period": 1, "timeout": 3})  # lease 1.644 s < 2 heartbeats
    assert len(cfg.warnings) == 1 and "shorter than two heartbeat intervals" in cfg.warnings[0]
    assert "timeout of 3.36s or more avoids that" in cfg.warnings[0]
    assert parse({**MODERN, "heartbeat_period": 1, "timeout": 4}).warnings == ()
    simple = parse({**LEGACY, "heartbeat_period": 1, "timeout": 1.2})  # no fencing, no lease: allowed
    assert simple.warnings == () and "simple mode" in simple.timing_summary()


def test_the_timing_summary_says_takeover_and_lease_in_words() -> None:
    assert parse({**MODERN, "heartbeat_period": 1, "timeout": 4}).timing_summary() == (
        "the passive takes over 4s after the active went silent (and the witness confirms it); the active gives "
        "up 2.64s after its last acknowledged heartbeat (fencing margin 1.36s) and has stopped within 3.90s")


@pytest.mark.parametrize(("change", "key", "words"), [
    ({"heartbeat_period": 120}, "", "heartbeat_period (120) must be less than timeout (120)"),
    ({"heartbeat_period": "ten"}, "heartbeat_period", "valid number"),
    ({"colour": "red"}, "colour", "unknown key"),
    ({"agent_id": "tertiary"}, "agent_id", "'primary'"),
    ({"remote_serverkey": None}, "", "remote_serverkey is required for the tcp address"),
    ({"witness_vip": None}, "", "needs witness_vip"),
    ({"agent_vip_identity": []}, "agent_vip_identity", "non-empty"),
    ({"agent_vip_identity": None}, "", "agent_vip_identity (string or list) or volttron_ctl_tag"),
    ({"timeout": -1}, "timeout", "greater than 0"),
    ({"failback_delay": -5}, "failback_delay", "greater than or equal to 0"),
    ({"stop_bound": 0}, "stop_bound", "greater than 0"),
    ({"stop_bound": "1s"}, "stop_bound", "valid number"),
    ({"stop_bound": 1000}, "stop_bound", "less than or equal to 300"),
    ({"group": "two words"}, "group", "pattern"),
])
def test_bad_config_is_a_clear_error(change: dict, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse({**MODERN, **change})
    text = str(err.value)
    assert text.startswith("test.json: ")
    assert words in text
    if key:
        assert f"key {key!r}" in text


def test_simple_role_contradicting_simple_behavior_is_refused() -> None:
    with pytest.raises(ConfigError, match="simple_behavior is false"):
        parse({**LEGACY, "simple_behavior": False})


def test_serverkey_inside_the_address_is_accepted() -> None:
    cfg = parse({**MODERN, "remote_serverkey": None, "remote_vip": f"tcp://10.0.0.2:22916?serverkey={KEY}"})
    assert cfg.remote_serverkey is None


def test_witness_config_selected_by_agent_id() -> None:
    cfg = parse_agent_config({"agent_id": "witness", "timeout": 30}, source="w.json")
    assert isinstance(cfg, WitnessConfig) and cfg.timeout == 30
    with pytest.raises(ConfigError, match="unknown key"):
        parse_agent_config({"agent_id": "witness", "remote_vip": "x"}, source="w.json")


def test_installed_config_file_is_yaml_or_json(tmp_path) -> None:
    (tmp_path / "yaml").write_text("agent_id: witness\ntimeout: 9\n")  # vctl stores configs as YAML
    (tmp_path / "json").write_text(json.dumps(MODERN))
    (tmp_path / "broken").write_text("{not: [valid")
    assert load_agent_config(str(tmp_path / "yaml")).timeout == 9
    assert load_agent_config(str(tmp_path / "json")).agent_id == "primary"
    with pytest.raises(ConfigError, match="cannot read or parse"):
        load_agent_config(str(tmp_path / "broken"))
    with pytest.raises(ConfigError, match="agent_id"):
        load_agent_config(None)


@pytest.mark.parametrize("name", ["primary", "secondary", "witness", "simple-secondary"])
def test_shipped_example_configs_are_valid(name: str) -> None:
    path = Path(__file__).resolve().parents[2] / "config" / f"failoveragent-{name}.json"
    cfg = load_agent_config(str(path))
    assert cfg.agent_id == name.replace("simple-", "simple_")


@pytest.mark.parametrize("notify", ["", "   ", [], [""]])
def test_empty_notify_command_is_a_config_error(notify):
    from failover_agent.config import parse_agent_config
    from failover_core import ConfigError

    with pytest.raises(ConfigError, match="notify"):
        parse_agent_config({"agent_id": "primary", "remote_vip": "ipc://x", "agent_vip_identity": "a",
                            "notify": notify}, source="cfg.json")

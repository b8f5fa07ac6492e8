"""Reading the installed agent config: the path the platform passes (vctl stores it as YAML), or nothing.

Shared by the failover agent and the witness (one distribution, ``agent_id`` selects which runs);
validation is ``config.parse_agent_config``.
"""

from __future__ import annotations

from typing import Any

from volttron.utils import load_config

from failover_agent.config import ConfigError, FailoverConfig, WitnessConfig, parse_agent_config


def load_agent_config(config_path: Any) -> FailoverConfig | WitnessConfig:
    """The validated config at ``config_path`` (a path, a mapping, or nothing); ConfigError otherwise."""
    if isinstance(config_path, dict):
        return parse_agent_config(config_path, source="<agent config>")
    if not config_path:
        return parse_agent_config({}, source="<no agent config installed>")
    try:
        data = load_config(config_path)  # volttron's loader: YAML, so JSON too
    except Exception as e:
        raise ConfigError(str(config_path), [("", str(config_path), f"cannot read or parse the file: {e}")]) from None
    return parse_agent_config(data, source=str(config_path))


__all__ = ["load_agent_config"]

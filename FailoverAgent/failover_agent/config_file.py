"""Reading the installed agent config: the path the platform passes (vctl stores it as YAML), or nothing.

Shared by the failover agent and the witness (one distribution, ``agent_id`` selects which runs);
validation is ``config.parse_agent_config``.
"""

from __future__ import annotations

from typing import Any

from failover_agent.config import ConfigError, FailoverConfig, WitnessConfig, parse_agent_config
from failover_core.config import parse_config_text
from failover_core.shell.config_file import read_config_text


def read_agent_file(path: str) -> Any:
    """The file's content like VOLTTRON's ``load_config`` reads it (YAML, so JSON too; JSON with comments), but
    bounded: a regular file of at most 1 MiB, no duplicate keys, no YAML anchors/aliases, no deep nesting."""
    text = read_config_text(path)
    if text.lstrip().startswith(("{", "[")):
        try:
            return parse_config_text(text, source=path, fmt="json")
        except ConfigError as e:
            if "not valid JSON" not in str(e):
                raise
            from volttron.utils.jsonapi import strip_comments  # VOLTTRON's fallback: JSON with comments

            try:
                return parse_config_text(strip_comments(text), source=path, fmt="json")
            except ConfigError:
                raise _unparsable(e) from None
    try:
        return parse_config_text(text, source=path, fmt="yaml")
    except ConfigError as e:
        raise _unparsable(e) if "not valid YAML" in str(e) else e from None


def _unparsable(e: ConfigError) -> ConfigError:
    return ConfigError(e.source, [(k, v, f"cannot read or parse the file: {a}", line)
                                  for (k, v, a), line in zip(e.problems, e.lines, strict=True)])


def load_agent_config(config_path: Any) -> FailoverConfig | WitnessConfig:
    """The validated config at ``config_path`` (a path, a mapping, or nothing); ConfigError otherwise."""
    if isinstance(config_path, dict):
        return parse_agent_config(config_path, source="<agent config>")
    if not config_path:
        return parse_agent_config({}, source="<no agent config installed>")
    return parse_agent_config(read_agent_file(str(config_path)), source=str(config_path))


__all__ = ["load_agent_config", "read_agent_file"]

"""The witness's configuration: TOML or JSON, validated once at start. Example (``config/witness.toml``)::

    name = "witness-1"            # how it signs its answers (default "witness")
    listen = "0.0.0.0"            # an IP address (IPv4 or IPv6)
    port = 8790                   # 0: any free port (logged at start)

    [groups.web-pair]             # one witness serves several groups (pairs or clusters)
    secret = "a long shared secret of the pair"
    timeout = 3.0                 # T: the nodes' heartbeat timeout
    heartbeat_interval = 1.0      # optional: checked to be below timeout

Per group, ``down_after`` = T: the silence after which the witness calls a node DOWN, the same timeout the
group's nodes use (a node warns when the witness's differs). The nodes' own leases end earlier, by the
fencing margin they compute from their stop bound (``failover_core.fencing.FencingTiming``), so the witness
needs only T. ``-t`` prints it. Errors are ConfigError (file, key, value, what is allowed).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from failover_core.config import ConfigError, StrictModel, as_mapping, validate_config
from failover_core.shell.config_file import load_config_file
from failover_core.witness_protocol import NAME, GroupPolicy

DEFAULT_CONFIG_PATH = "/etc/failover-witness/witness.toml"
DEFAULT_PORT = 8790


class GroupConfig(StrictModel):
    """One group the witness serves."""

    secret: str = Field(min_length=16, description="the group's shared HMAC secret (same on its nodes)")
    timeout: float = Field(gt=0, allow_inf_nan=False,
                           description="T: the nodes' heartbeat timeout, seconds: silent this long is DOWN")
    heartbeat_interval: float | None = Field(default=None, gt=0, description="the nodes' heartbeat period")

    @model_validator(mode="after")
    def _interval(self) -> GroupConfig:
        if self.heartbeat_interval is not None and self.heartbeat_interval >= self.timeout:
            raise ValueError(f"heartbeat_interval ({self.heartbeat_interval:g}) must be smaller than "
                             f"timeout ({self.timeout:g})")
        return self


class WitnessConfig(StrictModel):
    name: str = Field(default="witness", description="the witness's id in its answers")
    listen: str = Field(default="0.0.0.0", description="IP address to listen on")
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535, description="0: any free port")
    max_clock_skew: float = Field(default=30.0, gt=0, description="requests older/newer than this are refused")
    max_nodes_per_group: int = Field(default=16, ge=2, le=1024)
    groups: dict[str, GroupConfig] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError("a name: [A-Za-z0-9][A-Za-z0-9_.:@-]* (at most 128 characters)")
        return v

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        try:
            return str(ipaddress.ip_address(v))
        except ValueError:
            raise ValueError("an IP address, e.g. 0.0.0.0, 127.0.0.1 or ::") from None

    @field_validator("groups")
    @classmethod
    def _group_names(cls, v: dict[str, GroupConfig]) -> dict[str, GroupConfig]:
        for name in v:
            if not NAME.match(name):
                raise ValueError(f"group name {name!r} is not a name: [A-Za-z0-9][A-Za-z0-9_.:@-]*")
        return v

    def policies(self) -> list[GroupPolicy]:
        return [GroupPolicy(name=n, secret=g.secret, timeout=g.timeout) for n, g in self.groups.items()]


def _masked(value: object) -> object:
    """A value to show in an error without the secret in it (errors land in logs)."""
    if isinstance(value, dict):
        return {k: _masked_secret(v) if k == "secret" else _masked(v) for k, v in value.items()}
    return value


def _masked_secret(value: object) -> object:
    return f"*** ({len(value)} characters)" if isinstance(value, str) else value


def witness_config(data: Any, *, source: str) -> WitnessConfig:
    try:
        cfg = validate_config(WitnessConfig, as_mapping(data, source=source), source=source)
    except ConfigError as e:
        raise ConfigError(source, [(k, _masked_secret(v) if k.endswith(".secret") else _masked(v), allowed)
                                   for k, v, allowed in e.problems]) from None
    return cfg


def load_witness_config(path: str | Path) -> WitnessConfig:
    return witness_config(load_config_file(path), source=str(path))


def render_effective(cfg: WitnessConfig) -> dict[str, Any]:
    """The effective configuration for ``-t``: every default filled in, each group's down_after, secrets masked
    (the output lands in logs)."""
    data = cfg.model_dump(mode="json")
    for name, g in cfg.groups.items():
        data["groups"][name].update(secret=f"*** ({len(g.secret)} characters)", down_after=g.timeout)
    return data

"""The agent's configuration: both documented formats, validated once at start into frozen models.

Accepted as documented (VOLTTRON FailoverAgent)::

    {"agent_id": "primary"|"secondary"|"simple_primary"|"simple_secondary", "remote_id": "secondary",
     "remote_vip": "tcp://...", "volttron_ctl_tag": "driver", "heartbeat_period": 10, "timeout": 120}
    {"agent_id": "primary"|"secondary", "simple_behavior": true, "remote_vip": "tcp://...",
     "remote_serverkey": "...", "agent_vip_identity": "platform.driver", "heartbeat_period": 10, "timeout": 120}

plus our keys: ``witness_vip`` / ``witness_serverkey`` / ``witness_identity`` (standard mode),
``heartbeat_secret`` (HMAC of heartbeats), ``failback_delay`` (hold-down), ``remote_timeout`` (bound on
every call to another platform), ``remote_identity`` (our identity on the other platforms),
``stop_bound`` (seconds stopping the managed agents may take: the S of the fencing margin,
``failover_core.fencing``) and ``group`` (the pair's name at the witness, when one witness serves
several pairs). The witness agent is the same distribution with
``{"agent_id": "witness", "timeout": ..., "heartbeat_secret": ...}``: its ``timeout`` must equal the failover
agents' (it calls a node down after ``timeout`` of silence; the active's lease ends earlier, by the margin).

Standard mode checks the timing argument at start: the active's lease (``FencingTiming.lease``, the timeout
less the fencing margin) must be longer than ``heartbeat_period`` (an error otherwise: the active would fence
itself between two heartbeats) and should be two periods or more (``FailoverConfig.warnings``).
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from failover_core.config import (
    Bool,
    Command,
    ConfigError,
    Identity,
    Name,
    PositiveSeconds,
    Seconds,
    StrictModel,
    as_mapping,
    validate_config,
)
from failover_core.errors import LocalUsageError
from failover_core.fencing import FencingTiming
from failover_core.tables import Role

DEFAULT_WITNESS_IDENTITY = "volttron.central"  # Volttron Central's conventional identity
DEFAULT_STOP_BOUND = 1.0  # seconds: platform.control stops an agent well within this (measured ~0.1-0.3 s)
DEFAULT_GROUP = "default"
_PEER_OF = {"primary": "secondary", "secondary": "primary",
            "simple_primary": "simple_secondary", "simple_secondary": "simple_primary"}


def _serverkey_in(address: str) -> bool:
    return "serverkey=" in address


class FailoverConfig(StrictModel):
    agent_id: Literal["primary", "secondary", "simple_primary", "simple_secondary"]
    remote_id: Identity | None = None
    remote_vip: str = Field(min_length=1, max_length=4096)
    remote_serverkey: str | None = Field(None, min_length=1, max_length=4096)
    remote_identity: Identity | None = None
    agent_vip_identity: Identity | list[Identity] | None = None
    volttron_ctl_tag: Name | None = None
    simple_behavior: Bool | None = None
    heartbeat_period: PositiveSeconds = Field(10.0, le=3600)
    timeout: PositiveSeconds = 120.0
    witness_vip: str | None = Field(None, min_length=1, max_length=4096)
    witness_serverkey: str | None = Field(None, min_length=1, max_length=4096)
    witness_identity: Identity = DEFAULT_WITNESS_IDENTITY
    # HMAC of heartbeats; left out: no authentication (a loud warning at start), an empty string: an error
    heartbeat_secret: str | None = Field(None, min_length=1, max_length=4096)
    failback_delay: Seconds = 0.0
    remote_timeout: PositiveSeconds = Field(2.0, le=30)
    # operator hook run once per transition, in order: COMMAND SUBJECT FROM TO REASON (+ FAILOVER_* env)
    notify: Command | None = None
    notify_timeout: PositiveSeconds = Field(10.0, le=300)
    # S of the fencing argument: the managed agents stop within this once the agent decides to stop them
    stop_bound: PositiveSeconds = Field(DEFAULT_STOP_BOUND, le=300)
    group: str = Field(DEFAULT_GROUP, min_length=1, max_length=128, pattern=r"^[!-~]+$")

    @property
    def timing(self) -> FencingTiming:
        """T, S and the margin M: the passive and the witness wait T (``down_after``); the active's lease is
        T - M (``lease``). Valid (a lease > 0) for every standard-mode config that passed validation."""
        return FencingTiming(timeout=self.timeout, stop_bound=self.stop_bound)

    @property
    def warnings(self) -> tuple[str, ...]:
        """What is allowed but unwise (logged at start, shown in ``get_status``): a lease under two heartbeats."""
        if not self.role.uses_witness:
            return ()
        problem = self.timing.lease_problem(self.heartbeat_period)
        return () if problem is None else (f"timeout {self.timeout:g}, heartbeat_period {self.heartbeat_period:g}, "
                                           f"stop_bound {self.stop_bound:g}: {problem[1]}",)

    def timing_summary(self) -> str:
        """The timing in words an operator reads (the start log line)."""
        if not self.role.uses_witness:
            return (f"simple mode: the secondary takes over {self.timeout:g}s after the primary went silent, "
                    f"without a witness (no fencing)")
        t = self.timing
        return (f"the passive takes over {t.down_after:g}s after the active went silent (and the witness "
                f"confirms it); the active gives up {t.lease:.2f}s after its last acknowledged heartbeat (fencing "
                f"margin {t.margin:.2f}s) and has stopped within {t.fenced_by():.2f}s")

    @property
    def auth_warning(self) -> str | None:
        """Said loudly at start (a WARNING line) when heartbeats are not authenticated."""
        return None if self.heartbeat_secret else _NO_SECRET

    @field_validator("remote_vip", "witness_vip")
    @classmethod
    def _vip_address(cls, v: str | None) -> str | None:
        return None if v is None else vip_address(v)

    @field_validator("agent_vip_identity")
    @classmethod
    def _identities_not_empty(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and (not v or len(set(v)) != len(v)):
            raise ValueError("must be a non-empty identity or a non-empty list of distinct identities")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> FailoverConfig:
        if self.witness_vip is not None and _same_address(self.witness_vip, self.remote_vip):
            raise ValueError(f"witness_vip is the same platform as remote_vip ({self.remote_vip!r}): the witness must "
                             "be a third platform")
        if self.remote_id is not None and self.remote_id == self.agent_id:
            raise ValueError(f"remote_id names this agent itself ({self.agent_id!r}); it is the peer's agent_id")
        if self.heartbeat_period >= self.timeout:
            raise ValueError(f"heartbeat_period ({self.heartbeat_period:g}) must be less than timeout "
                             f"({self.timeout:g}), or every peer looks dead between two heartbeats")
        if self.agent_vip_identity is None and self.volttron_ctl_tag is None:
            raise ValueError("name the managed agent(s): agent_vip_identity (string or list) or volttron_ctl_tag")
        if self.agent_id.startswith("simple_") and self.simple_behavior is False:
            raise ValueError(f"agent_id {self.agent_id!r} is a simple-mode role but simple_behavior is false")
        for key, addr, skey in (("remote_serverkey", self.remote_vip, self.remote_serverkey),
                                ("witness_serverkey", self.witness_vip, self.witness_serverkey)):
            if addr and addr.startswith("tcp://") and not skey and not _serverkey_in(addr):
                raise ValueError(f"{key} is required for the tcp address {addr!r} "
                                 f"(the other platform's key: `vctl auth servercred` there)")
        if self.role.uses_witness and not self.witness_vip:
            raise ValueError("standard mode (simple_behavior false) needs witness_vip: the address of the "
                             "witness platform that verifies the primary is down")
        if self.role.uses_witness:
            self._check_lease()
        return self

    def _check_lease(self) -> None:
        """Standard mode: the active's lease must outlast a heartbeat period (``FencingTiming.lease_problem``)."""
        keys = (f"timeout {self.timeout:g}, heartbeat_period {self.heartbeat_period:g}, "
                f"stop_bound {self.stop_bound:g}")
        try:
            timing = self.timing
        except LocalUsageError as e:  # no lease at all: the timeout is shorter than stopping takes
            # timeout_for does not depend on the timeout: any valid one answers for this stop bound
            smallest = FencingTiming(timeout=1000.0, stop_bound=self.stop_bound).timeout_for(2 * self.heartbeat_period)
            raise ValueError(f"{keys}: {e}; with a heartbeat every {self.heartbeat_period:g}s the timeout should be "
                             f"at least {smallest:.2f}s") from None
        problem = timing.lease_problem(self.heartbeat_period)
        if problem is not None and problem[0] == "error":
            raise ValueError(f"{keys}: {problem[1]}")

    @property
    def role(self) -> Role:
        if self.agent_id.startswith("simple_"):
            return Role(self.agent_id)
        simple = True if self.simple_behavior is None else self.simple_behavior  # documented default: true
        return Role(f"simple_{self.agent_id}") if simple else Role(self.agent_id)

    @property
    def peer_id(self) -> str:
        return self.remote_id or _PEER_OF[self.agent_id]

    @property
    def managed_identities(self) -> tuple[str, ...]:
        v = self.agent_vip_identity
        if v is None:
            return ()
        return (v,) if isinstance(v, str) else tuple(v)


class WitnessConfig(StrictModel):
    agent_id: Literal["witness"]
    timeout: PositiveSeconds = 120.0  # the failover agents' timeout: silent this long is down
    heartbeat_secret: str | None = Field(None, min_length=1, max_length=4096)

    @property
    def auth_warning(self) -> str | None:
        return None if self.heartbeat_secret else _NO_SECRET


_NO_SECRET = ("heartbeat_secret is not set: heartbeats are NOT authenticated, so anyone who can publish on this "
              "platform's bus can pose as the peer or the witness; set the same long random heartbeat_secret in the "
              "configs of the primary, the secondary and the witness")


def vip_address(value: str) -> str:
    """A VOLTTRON VIP address: ``tcp://HOST:PORT`` (optionally ``?serverkey=...``) or ``ipc://PATH``; ValueError."""
    scheme, sep, rest = value.partition("://")
    if sep and scheme == "ipc" and rest:
        return value
    if sep and scheme == "tcp":
        try:
            parts = urlsplit(value)
            ok = bool(parts.hostname) and parts.port is not None and parts.path in ("", "/")
        except ValueError:
            ok = False
        if ok:
            return value
    raise ValueError("must be a VIP address: tcp://HOST:PORT (optionally ?serverkey=KEY) or ipc://PATH")


def _same_address(a: str, b: str) -> bool:
    return a.split("?", 1)[0].rstrip("/").lower() == b.split("?", 1)[0].rstrip("/").lower()


def parse_agent_config(data: object, *, source: str) -> FailoverConfig | WitnessConfig:
    """A mapping (the file's content) -> the failover or the witness config, or ConfigError."""
    mapping = as_mapping(data, source=source)
    if mapping.get("agent_id") == "witness":
        return validate_config(WitnessConfig, mapping, source=source)
    return validate_config(FailoverConfig, mapping, source=source)


__all__ = ["DEFAULT_GROUP", "DEFAULT_STOP_BOUND", "DEFAULT_WITNESS_IDENTITY", "ConfigError", "FailoverConfig",
           "WitnessConfig", "parse_agent_config"]

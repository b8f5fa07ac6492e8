"""Configuration of VrrpFailover: the documented ``vrrp-config.json`` object (or a list of them).

``load_config(path)`` reads the file and returns a tuple of ``InstanceConfig`` or raises
``ConfigError`` naming the file, the key, the bad value and what is allowed. Pure validation only;
whether the interface exists is checked by the shell (``VrrpFailover.netio.check_interfaces``)
before anything is touched.

Documented form, accepted as is::

    {"name": "VR_1", "vrid": 51, "interface_name": "eth0", "ip_addresses": ["192.168.100.100/24"],
     "priority": 10, "advert_interval": 1, "preempt_mode": true}
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface, ip_interface
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from failover_core.config import (
    Bool,
    Command,
    ConfigError,
    FilePath,
    Integer,
    Name,
    Number,
    Seconds,
    StrictModel,
    StringInput,
    validate_config,
)
from failover_core.shell.config_file import load_config_file

PRIORITY_OWNER = 255
MAX_INSTANCES = 1000  # virtual routers in one file (255 VRIDs per interface)


MAX_TRACKERS = 64  # of each kind per instance


class TrackScript(StrictModel):
    """A check command run every ``interval`` s. Failure (non-zero exit, timeout, cannot run) either
    puts the instance in Fault (``fault``: true, the default when no weight is given) or adds
    ``weight`` to the priority (keepalived's rule: a positive weight is added while the check
    succeeds, a negative one while it fails). keepalived's ``rise`` / ``fall``: the check changes
    state after that many results in a row; ``init_fail``: it starts as failed (else as passing)."""

    command: Command
    name: Name | None = Field(default=None, max_length=64)
    interval: Seconds = Field(default=1.0, ge=0.05, le=3600)
    timeout: Seconds | None = Field(default=None, gt=0, le=3600)
    weight: Integer | None = Field(default=None, ge=-253, le=253)
    fault: Bool | None = None
    rise: Integer = Field(default=1, ge=1, le=1000)
    fall: Integer = Field(default=1, ge=1, le=1000)
    init_fail: Bool = False

    @model_validator(mode="after")
    def _weight_or_fault(self) -> TrackScript:
        if self.weight is not None and self.fault:
            raise ValueError("give either 'weight' or 'fault': true, not both")
        if self.weight == 0:
            raise ValueError("weight 0 does nothing; leave it out to make a failure a fault")
        return self

    @property
    def is_fault(self) -> bool:
        return self.weight is None

    @property
    def effective_timeout(self) -> float:
        return self.timeout if self.timeout is not None else max(self.interval, 1.0)


class TrackFile(StrictModel):
    """keepalived's ``track_file``: a file holding an integer, read every ``interval`` s. Its value times
    ``weight`` is added to the priority; a result below -253 is a fault; with ``weight`` 0 any value but 0
    is a fault. A missing or unreadable file, or one that holds no integer, is a fault."""

    path: FilePath
    weight: Integer = Field(default=1, ge=-254, le=254)
    interval: Seconds = Field(default=1.0, ge=0.05, le=3600)


class TrackInterface(StrictModel):
    """keepalived's ``track_interface``: the interface is down when it is administratively down, has no
    carrier, or is gone. Without ``weight`` down is a fault; with it, keepalived's rule: a positive weight
    is added while the interface is up, a negative one while it is down."""

    name: Name = Field(max_length=15)
    weight: Integer | None = Field(default=None, ge=-253, le=253)

    @model_validator(mode="after")
    def _no_zero_weight(self) -> TrackInterface:
        if self.weight == 0:
            raise ValueError("weight 0 does nothing; leave it out to make a down interface a fault")
        return self


def _tracker_id(n: int, tracker: TrackScript | TrackFile | TrackInterface) -> str:
    if isinstance(tracker, TrackScript):
        return tracker.name if tracker.name is not None else str(n)
    return tracker.path if isinstance(tracker, TrackFile) else tracker.name


def _ip_interface(value: Any) -> Any:
    """``a.b.c.d[/len]`` or an IPv6 address ``x::y[/len]`` (no length: /32 or /128) -> IPv4Interface / IPv6Interface."""
    if isinstance(value, str):
        try:
            return ip_interface(value)
        except ValueError:
            raise ValueError("not an IPv4 or IPv6 address with an optional /prefix length") from None
    return value


VirtualAddress = Annotated[IPv4Interface | IPv6Interface, BeforeValidator(_ip_interface), StringInput]


def _one_or_list(value: Any) -> Any:
    """A tracker key takes one table or a list of them (``track_script`` was one table before)."""
    return [value] if isinstance(value, dict) else value


class InstanceConfig(StrictModel):
    """One virtual router."""

    name: Name = Field(max_length=64)
    vrid: Integer = Field(ge=1, le=255)
    interface_name: Name = Field(max_length=15)
    ip_addresses: tuple[VirtualAddress, ...] = Field(min_length=1, max_length=255)  # one family (RFC 5798)
    priority: Integer = Field(default=100, ge=1, le=255)
    advert_interval: Number = Field(default=1.0, gt=0, le=255)  # the version's own range: _interval_for_version
    preempt_mode: Bool = True
    version: Integer = Field(default=3, ge=2, le=3)  # VRRPv2 or VRRPv3
    accept_mode: Bool = False
    preempt_delay: Seconds = Field(default=0.0, le=1000)
    notify: Command | None = None
    notify_args: Literal["ours", "keepalived"] = "ours"  # ours: name from to reason; keepalived's: INSTANCE name
    #                                                      STATE priority (VrrpFailover.notify)
    track_script: Annotated[tuple[TrackScript, ...], BeforeValidator(_one_or_list)] = Field(
        default=(), max_length=MAX_TRACKERS)
    track_file: Annotated[tuple[TrackFile, ...], BeforeValidator(_one_or_list)] = Field(
        default=(), max_length=MAX_TRACKERS)
    track_interface: Annotated[tuple[TrackInterface, ...], BeforeValidator(_one_or_list)] = Field(
        default=(), max_length=MAX_TRACKERS)
    unicast_peers: tuple[Annotated[IPv4Address, StringInput], ...] = ()
    garp_repeat: Integer = Field(default=2, ge=1, le=100)
    garp_delay: Seconds = Field(default=1.0, le=3600)
    garp_lower_prio_repeat: Integer | None = Field(default=None, ge=0, le=100)
    garp_lower_prio_delay: Seconds | None = Field(default=None, le=3600)
    higher_prio_send_advert: Bool = True

    @field_validator("interface_name")
    @classmethod
    def _ifname(cls, v: str) -> str:
        if "/" in v or any(c.isspace() for c in v) or v in (".", ".."):
            raise ValueError("not a valid interface name")
        return v

    @field_validator("ip_addresses")
    @classmethod
    def _unique(cls, v: tuple[IPv4Interface | IPv6Interface, ...]) -> tuple[IPv4Interface | IPv6Interface, ...]:
        ips = [i.ip for i in v]
        if len(set(ips)) != len(ips):
            raise ValueError("an address is listed twice")
        if len({i.version for i in v}) > 1:
            raise ValueError("IPv4 and IPv6 addresses are mixed: one address family per instance (RFC 5798, as "
                             "keepalived); use one instance for each family")
        for i in v:
            if i.ip.is_multicast or i.ip.is_unspecified or i.ip.is_loopback:
                raise ValueError(f"{i} is not a usable virtual address")
        return v

    @field_validator("version")
    @classmethod
    def _ipv6_is_v3(cls, v: int, info: ValidationInfo) -> int:
        if v == 2 and any(i.version == 6 for i in info.data.get("ip_addresses", ())):
            raise ValueError("VRRPv2 (RFC 3768) is IPv4 only: IPv6 virtual addresses need version 3")
        return v

    @field_validator("unicast_peers")
    @classmethod
    def _peers_unique(cls, v: tuple[IPv4Address, ...], info: ValidationInfo) -> tuple[IPv4Address, ...]:
        if v and any(i.version == 6 for i in info.data.get("ip_addresses", ())):
            raise ValueError("an IPv6 instance advertises to ff02::12 only (unicast_peers is IPv4 only for now)")
        if len(set(v)) != len(v):
            raise ValueError("a peer is listed twice")
        for ip in v:
            if ip.is_multicast or ip.is_unspecified or ip.is_loopback:
                raise ValueError(f"{ip} is not a usable unicast peer address")
        return v

    @field_validator("track_script", "track_file", "track_interface")
    @classmethod
    def _trackers_unique(cls, v: tuple[Any, ...]) -> tuple[Any, ...]:
        keys = [_tracker_id(n, t) for n, t in enumerate(v)]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise ValueError(f"{', '.join(dup)} is listed twice (a tracker's name, path or interface must be unique)")
        return v

    @property
    def scripts(self) -> tuple[tuple[str, TrackScript], ...]:
        """(tracker key, script): the key is ``script:NAME`` (``script:N``, its place in the list, unnamed)."""
        return tuple((f"script:{_tracker_id(n, t)}", t) for n, t in enumerate(self.track_script))

    @property
    def tracker_keys(self) -> tuple[str, ...]:
        """Every tracker's key, as ``TrackResult.tracker`` names it: ``script:...``, ``file:PATH``,
        ``interface:NAME``."""
        return (*(k for k, _ in self.scripts), *(f"file:{f.path}" for f in self.track_file),
                *(f"interface:{i.name}" for i in self.track_interface))

    @model_validator(mode="after")
    def _interval_for_version(self) -> InstanceConfig:
        iv = self.advert_interval
        if self.version == 3:
            cs = round(iv * 100)
            if not 0.01 <= iv <= 40.95 or abs(cs - iv * 100) > 1e-6:
                raise ValueError(f"advert_interval {iv!r}: VRRPv3 allows 0.01-40.95 s in steps of 0.01 s")
        elif iv != int(iv) or not 1 <= iv <= 255:
            raise ValueError(f"advert_interval {iv!r}: VRRPv2 allows whole seconds 1-255")
        return self

    @model_validator(mode="after")
    def _lower_prio_defaults(self) -> InstanceConfig:
        """keepalived's defaults: the lower-priority answer repeats like becoming Master does."""
        if self.garp_lower_prio_repeat is None:
            object.__setattr__(self, "garp_lower_prio_repeat", self.garp_repeat)  # (frozen model: set once here)
        if self.garp_lower_prio_delay is None:
            object.__setattr__(self, "garp_lower_prio_delay", self.garp_delay)
        return self

    @property
    def lower_prio_rounds(self) -> int:
        """Gratuitous ARP rounds a Master sends when it hears a lower priority (0: none)."""
        return self.garp_repeat if self.garp_lower_prio_repeat is None else self.garp_lower_prio_repeat

    @property
    def lower_prio_delay(self) -> float:
        """Seconds between those rounds."""
        return self.garp_delay if self.garp_lower_prio_delay is None else self.garp_lower_prio_delay

    @property
    def addresses(self) -> tuple[IPv4Address | IPv6Address, ...]:
        return tuple(i.ip for i in self.ip_addresses)

    @property
    def family(self) -> int:
        """4 or 6: the IP version of the virtual addresses (and of the adverts: RFC 5798 5.1.1 / 5.1.2)."""
        return self.ip_addresses[0].version

    @property
    def is_address_owner(self) -> bool:
        return self.priority == PRIORITY_OWNER


def validate_instances(data: Any, *, source: str) -> tuple[InstanceConfig, ...]:
    """A mapping (one instance) or a list of mappings -> validated instances, cross-checked."""
    if isinstance(data, dict):
        items: Sequence[Any] = [data]
        single = True
    elif isinstance(data, list) and 0 < len(data) <= MAX_INSTANCES:
        items, single = data, False
    else:
        shown = type(data).__name__ if not isinstance(data, list) else f"a list of {len(data)}" if data else "[]"
        raise ConfigError(source, [("", shown,
                                    "the top level must be an instance object or a non-empty list of them "
                                    f"(at most {MAX_INSTANCES})")])
    out: list[InstanceConfig] = []
    problems: list[tuple[str, object, str]] = []
    for n, item in enumerate(items):
        try:
            out.append(validate_config(InstanceConfig, item, source=source))
        except ConfigError as e:
            prefix = "" if single else f"[{n}]"
            problems.extend((f"{prefix}.{k}" if prefix and k else (prefix or k), v, a) for k, v, a in e.problems)
    if problems:
        raise ConfigError(source, problems)
    seen_names: set[str] = set()
    seen_vr: set[tuple[str, int, int]] = set()  # VRIDs are per interface and address family (RFC 5798 5.2.3)
    for n, inst in enumerate(out):
        key = "name" if single else f"[{n}].name"
        if inst.name in seen_names:
            problems.append((key, inst.name, "instance names must be unique"))
        seen_names.add(inst.name)
        vr = (inst.interface_name, inst.family, inst.vrid)
        if vr in seen_vr:
            problems.append((key.replace("name", "vrid"), inst.vrid,
                             f"vrid already used by another IPv{inst.family} instance on {inst.interface_name}"))
        seen_vr.add(vr)
    if problems:
        raise ConfigError(source, problems)
    return tuple(out)


def load_config(path: str) -> tuple[InstanceConfig, ...]:
    return validate_instances(load_config_file(path), source=str(path))

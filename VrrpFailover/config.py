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
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv6Interface, ip_interface
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from failover_core.config import (
    MISSING,
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
from VrrpFailover.settings import (
    PRIORITY_OWNER,
    InstanceRules,
    SyncGroupRules,
    TrackFileRules,
    TrackInterfaceRules,
    TrackScriptRules,
    _tracker_id,
)

MAX_INSTANCES = 1000  # virtual routers in one file (255 VRIDs per interface)
IFNAMSIZ = 16  # Linux: an interface name has at most IFNAMSIZ - 1 = 15 bytes


MAX_TRACKERS = 64  # of each kind per instance
MIN_GARP_REFRESH = 0.1  # s: the shortest garp_master_refresh period (keepalived's is whole seconds)


class TrackScript(StrictModel, TrackScriptRules):
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


class TrackFile(StrictModel, TrackFileRules):
    """keepalived's ``track_file``: a file holding an integer, read every ``interval`` s. Its value times
    ``weight`` is added to the priority; a result below -253 is a fault; with ``weight`` 0 any value but 0
    is a fault. A missing or unreadable file, or one that holds no integer, is a fault."""

    path: FilePath
    weight: Integer = Field(default=1, ge=-254, le=254)
    interval: Seconds = Field(default=1.0, ge=0.05, le=3600)


class TrackInterface(StrictModel, TrackInterfaceRules):
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


def _ip_interface(value: Any) -> Any:
    """``a.b.c.d[/len]`` or an IPv6 address ``x::y[/len]`` (no length: /32 or /128) -> IPv4Interface / IPv6Interface."""
    if isinstance(value, str):
        try:
            return ip_interface(value)
        except ValueError:
            raise ValueError("not an IPv4 or IPv6 address with an optional /prefix length") from None
    return value


VirtualAddress = Annotated[IPv4Interface | IPv6Interface, BeforeValidator(_ip_interface), StringInput]


def interface_name_problem(name: str) -> str | None:
    """Why Linux would refuse ``name`` as an interface name (its dev_valid_name), or None."""
    if not name or len(name.encode()) >= IFNAMSIZ:
        return f"an interface name has 1-{IFNAMSIZ - 1} bytes (IFNAMSIZ), not {len(name.encode())}"
    if name in (".", "..") or any(c in "/:" or c.isspace() for c in name):
        return "not a valid interface name (no '/', ':' or spaces; not '.' or '..')"
    return None


def _use_vmac(value: Any) -> Any:
    """``use_vmac``: true (the name ``vrrp.<VRID>``, keepalived's), false, or the macvlan's name."""
    if isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise ValueError("must be true, false or the virtual MAC interface's name")
    why = interface_name_problem(value)
    if why:
        raise ValueError(why)
    return value


def _one_or_list(value: Any) -> Any:
    """A tracker key takes one table or a list of them (``track_script`` was one table before)."""
    return [value] if isinstance(value, dict) else value


class InstanceConfig(StrictModel, InstanceRules):
    """One virtual router."""

    name: Name = Field(max_length=64)
    vrid: Integer = Field(ge=1, le=255)
    interface_name: Name = Field(max_length=15)
    ip_addresses: tuple[VirtualAddress, ...] = Field(min_length=1, max_length=255)  # one family (RFC 5798)
    priority: Integer = Field(default=100, ge=1, le=255)
    advert_interval: Number = Field(default=1.0, gt=0, le=255)  # the version's own range: _interval_for_version
    preempt_mode: Bool = True
    version: Integer = Field(default=3, ge=2, le=3)  # VRRPv2 or VRRPv3
    accept_mode: Bool | None = None  # None: keepalived's default, accept unless strict_mode (``accepts``)
    strict_mode: Bool = False  # keepalived's vrrp_strict / strict_mode: here only accept_mode's default
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
    garp_master_refresh: Seconds = Field(default=0.0, le=86400)  # keepalived's: 0 = off; else >= MIN_GARP_REFRESH
    garp_master_refresh_repeat: Integer = Field(default=1, ge=1, le=100)
    use_vmac: Annotated[bool | str, BeforeValidator(_use_vmac)] = False  # keepalived's: a macvlan with the VRRP MAC
    vmac_xmit_base: Bool = False  # keepalived's: adverts to and from the base interface, the VIPs on the macvlan

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

    @field_validator("use_vmac")
    @classmethod
    def _vmac_rules(cls, v: bool | str, info: ValidationInfo) -> bool | str:
        if v is False:
            return v
        if any(i.version == 6 for i in info.data.get("ip_addresses", ())):
            raise ValueError("a virtual MAC is supported for IPv4 instances only (not yet for IPv6)")
        if info.data.get("priority") == PRIORITY_OWNER:
            raise ValueError("the address owner (priority 255) keeps its own addresses on its interface; a virtual "
                             "MAC needs addresses that move")
        if v == info.data.get("interface_name"):
            raise ValueError("the virtual MAC interface cannot be named like interface_name: it is a new interface "
                             "on top of it")
        return v

    @field_validator("vmac_xmit_base")
    @classmethod
    def _xmit_base_needs_vmac(cls, v: bool, info: ValidationInfo) -> bool:
        if v and info.data.get("use_vmac", False) is False:
            raise ValueError("vmac_xmit_base needs use_vmac (it says where the adverts of the virtual MAC go)")
        return v

    @field_validator("garp_master_refresh")
    @classmethod
    def _refresh_period(cls, v: float) -> float:
        if 0 < v < MIN_GARP_REFRESH:
            raise ValueError(f"garp_master_refresh {v!r}: 0 (off) or at least {MIN_GARP_REFRESH} s")
        return v

    @model_validator(mode="after")
    def _lower_prio_defaults(self) -> InstanceConfig:
        """keepalived's defaults: the lower-priority answer repeats like becoming Master does."""
        if self.garp_lower_prio_repeat is None:
            object.__setattr__(self, "garp_lower_prio_repeat", self.garp_repeat)  # (frozen model: set once here)
        if self.garp_lower_prio_delay is None:
            object.__setattr__(self, "garp_lower_prio_delay", self.garp_delay)
        return self

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
    seen_vmac: set[str] = set()
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
        vmac = inst.vmac_name
        if vmac is not None:
            if vmac in seen_vmac:
                problems.append((key.replace("name", "use_vmac"), inst.use_vmac,
                                 f"the virtual MAC interface {vmac} is already another instance's; give this one a "
                                 f"name of its own (\"use_vmac\": \"NAME\")"))
            seen_vmac.add(vmac)
    for n, inst in enumerate(out):
        if inst.vmac_name is not None and inst.vmac_name in {i.interface_name for i in out}:
            problems.append(("use_vmac" if single else f"[{n}].use_vmac", inst.use_vmac,
                             f"{inst.vmac_name} is another instance's interface_name"))
    if problems:
        raise ConfigError(source, problems)
    return tuple(out)


# ---- sync groups (keepalived's vrrp_sync_group) ----------------------------------------------

class SyncGroupConfig(StrictModel, SyncGroupRules):
    """keepalived's ``vrrp_sync_group``: instances (by name, possibly on different interfaces) that move
    together (VrrpFailover.sync_group). ``notify`` runs on each of the group's transitions (our arguments, or
    keepalived's ``GROUP name STATE 0`` with ``notify_args: "keepalived"``); ``notify_master`` /
    ``notify_backup`` / ``notify_fault`` / ``notify_stop`` run as they are (no arguments added) when the
    group enters that state, before ``notify``, as keepalived runs them."""

    members: tuple[Name, ...] = Field(max_length=MAX_INSTANCES)
    notify: Command | None = None
    notify_args: Literal["ours", "keepalived"] = "ours"
    notify_master: Command | None = None
    notify_backup: Command | None = None
    notify_fault: Command | None = None
    notify_stop: Command | None = None


GroupName = Annotated[Name, Field(max_length=64)]


class _Sections(StrictModel):
    """The top level with sections: the instances (checked by ``validate_instances``) and the sync groups."""

    instances: Any
    sync_groups: dict[GroupName, SyncGroupConfig] = Field(default_factory=dict, max_length=MAX_INSTANCES // 2)


@dataclass(frozen=True)
class VrrpConfig:
    """A whole config file: the instances and the sync groups (name -> group, in file order)."""

    instances: tuple[InstanceConfig, ...]
    sync_groups: dict[str, SyncGroupConfig] = field(default_factory=dict)

    def group_of(self, instance: str) -> str | None:
        return next((g for g, c in self.sync_groups.items() if instance in c.members), None)

    def effective(self) -> Any:
        """What ``--check`` prints: the list of instances as before, the sections when there are groups."""
        if not self.sync_groups:
            return list(self.instances)
        return {"instances": list(self.instances), "sync_groups": dict(self.sync_groups)}


def _check_groups(instances: tuple[InstanceConfig, ...], groups: dict[str, SyncGroupConfig]
                  ) -> list[tuple[str, object, str]]:
    """A member must be an instance, in one group only, in a group of two or more; owners and others do not mix."""
    by_name = {i.name: i for i in instances}
    problems: list[tuple[str, object, str]] = []
    group_of: dict[str, str] = {}
    for gname, group in groups.items():
        key = f"sync_groups.{gname}.members"
        if len(set(group.members)) < 2:
            problems.append((key, list(group.members), "a sync group needs at least two different members "
                                                        "(one alone moves by itself anyway)"))
        seen: set[str] = set()
        for n, member in enumerate(group.members):
            if member in seen:
                problems.append((f"{key}[{n}]", member, "listed twice in this sync group"))
                continue
            seen.add(member)
            if member not in by_name:
                problems.append((f"{key}[{n}]", member, f"no instance has this name (instances: "
                                                        f"{', '.join(sorted(by_name))})"))
            elif member in group_of:
                problems.append((f"{key}[{n}]", member, f"already a member of sync group {group_of[member]}: an "
                                                        "instance can be in one sync group only"))
            else:
                group_of[member] = gname
        owners = [m for m in seen if m in by_name and by_name[m].is_address_owner]
        if owners and len(owners) < len([m for m in seen if m in by_name]):
            problems.append((key, list(group.members), f"mixes address owners (priority 255: {', '.join(owners)}) "
                                                       "with other instances: they cannot move together (make "
                                                       "every member an owner or none)"))
    return problems


def validate_vrrp_config(data: Any, *, source: str) -> VrrpConfig:
    """The whole file: an instance object, a list of them (no sync groups), or the sections
    ``{"instances": [...], "sync_groups": {"NAME": {"members": [...], ...}}}``."""
    if not (isinstance(data, dict) and ("instances" in data or "sync_groups" in data)):
        return VrrpConfig(validate_instances(data, source=source))
    problems: list[tuple[str, object, str]] = []
    groups: dict[str, SyncGroupConfig] = {}
    try:
        groups = dict(validate_config(_Sections, data, source=source).sync_groups)
    except ConfigError as e:
        problems.extend(p for p in e.problems if not p[0].startswith("instances"))
    instances: tuple[InstanceConfig, ...] = ()
    if "instances" in data:
        try:
            instances = validate_instances(data["instances"], source=source)
        except ConfigError as e:
            single = isinstance(data["instances"], dict)
            problems.extend((f"instances{'.' if single and k else ''}{k}", v, a) for k, v, a in e.problems)
    else:
        problems.append(("instances", MISSING, "sync_groups needs the instances beside it, in an 'instances' list"))
    if problems:
        raise ConfigError(source, problems)
    problems = _check_groups(instances, groups)
    if problems:
        raise ConfigError(source, problems)
    return VrrpConfig(instances, groups)


def load_vrrp_config(path: str) -> VrrpConfig:
    return validate_vrrp_config(load_config_file(path), source=str(path))


def plain(config: VrrpConfig) -> dict[str, Any]:
    """The validated config as JSON-ready data for the run-time process (``VrrpFailover.settings.from_plain``)."""
    return {"instances": [i.model_dump(mode="json") for i in config.instances],
            "sync_groups": {n: g.model_dump(mode="json") for n, g in config.sync_groups.items()}}


def load_config(path: str) -> tuple[InstanceConfig, ...]:
    """The instances of the file (``load_vrrp_config`` gives its sync groups too)."""
    return load_vrrp_config(path).instances

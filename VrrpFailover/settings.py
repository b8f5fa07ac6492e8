"""The validated configuration as the daemon runs it: plain frozen dataclasses, no pydantic.

Why (measured, docs/vrrp.md "Measured"): pydantic and our config models cost the daemon about 14 MiB of resident
memory (pydantic +4.6 MiB, the models' schemas +9.5 MiB), more than keepalived's whole process. So the CLI
validates with ``VrrpFailover.config`` (pydantic: every error named, exit 2) and hands the result on as plain data
(``InstanceConfig.model_dump(mode="json")``); ``VrrpFailover.daemon`` builds these objects from it with
``from_plain`` and never imports pydantic.

The rules both forms share (``scripts``, ``tracker_keys``, ``family``, ``accepts``, ``vmac_name``, ...) are the
mixins here, which the pydantic models in ``VrrpFailover.config`` inherit too: one definition, two carriers. The
run-time code tests a tracker's kind with ``isinstance(spec, TrackScriptRules)`` (true for both forms).
``from_plain`` trusts its input: it comes from the validating CLI of the same version, in the same process.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface, ip_interface
from typing import TYPE_CHECKING, Any

PRIORITY_OWNER = 255


def _tracker_id(n: int, tracker: Any) -> str:
    if isinstance(tracker, TrackScriptRules):
        return tracker.name if tracker.name is not None else str(n)
    return tracker.path if isinstance(tracker, TrackFileRules) else tracker.name


class TrackScriptRules:
    """A check command (``track_script``): fault or weight, and its timeout."""

    __slots__ = ()
    if TYPE_CHECKING:
        command: str | list[str]
        name: str | None
        interval: float
        timeout: float | None
        weight: int | None
        fault: bool | None
        rise: int
        fall: int
        init_fail: bool

    @property
    def is_fault(self) -> bool:
        return self.weight is None

    @property
    def effective_timeout(self) -> float:
        return self.timeout if self.timeout is not None else max(self.interval, 1.0)


class TrackFileRules:
    """A file holding an integer (``track_file``)."""

    __slots__ = ()
    if TYPE_CHECKING:
        path: str
        weight: int
        interval: float


class TrackInterfaceRules:
    """An interface that must be up (``track_interface``)."""

    __slots__ = ()
    if TYPE_CHECKING:
        name: str
        weight: int | None


class SyncGroupRules:
    """A sync group (``vrrp_sync_group``): the members' names and its notify commands."""

    __slots__ = ()
    if TYPE_CHECKING:
        members: tuple[str, ...]
        notify: str | list[str] | None
        notify_args: str
        notify_master: str | list[str] | None
        notify_backup: str | list[str] | None
        notify_fault: str | list[str] | None
        notify_stop: str | list[str] | None


class InstanceRules:
    """What is derived from an instance's keys (both ``config.InstanceConfig`` and ``InstanceSpec``)."""

    __slots__ = ()
    if TYPE_CHECKING:
        name: str
        vrid: int
        interface_name: str
        ip_addresses: tuple[IPv4Interface | IPv6Interface, ...]
        priority: int
        accept_mode: bool | None
        strict_mode: bool
        track_script: tuple[TrackScriptRules, ...]
        track_file: tuple[TrackFileRules, ...]
        track_interface: tuple[TrackInterfaceRules, ...]
        garp_repeat: int
        garp_delay: float
        garp_lower_prio_repeat: int | None
        garp_lower_prio_delay: float | None
        use_vmac: bool | str

    @property
    def scripts(self) -> tuple[tuple[str, TrackScriptRules], ...]:
        """(tracker key, script): the key is ``script:NAME`` (``script:N``, its place in the list, unnamed)."""
        return tuple((f"script:{_tracker_id(n, t)}", t) for n, t in enumerate(self.track_script))

    @property
    def tracker_keys(self) -> tuple[str, ...]:
        """Every tracker's key, as ``TrackResult.tracker`` names it: ``script:...``, ``file:PATH``,
        ``interface:NAME``."""
        return (*(k for k, _ in self.scripts), *(f"file:{f.path}" for f in self.track_file),
                *(f"interface:{i.name}" for i in self.track_interface))

    @property
    def vmac_name(self) -> str | None:
        """The macvlan's name (``use_vmac`` true: ``vrrp.<VRID>``, as keepalived), None without a virtual MAC."""
        if self.use_vmac is False:
            return None
        return f"vrrp.{self.vrid}" if self.use_vmac is True else self.use_vmac

    @property
    def vmac_address(self) -> bytes:
        """RFC 5798 7.3: 00-00-5E-00-01-{VRID} (IPv4), 00-00-5E-00-02-{VRID} (IPv6)."""
        return bytes((0, 0, 0x5E, 0, 1 if self.family == 4 else 2, self.vrid))

    @property
    def accepts(self) -> bool:
        """Does the Master take packets addressed to the virtual addresses (RFC 5798 6.1 Accept_Mode)? The owner
        always; else ``accept_mode``, and when it is not given keepalived's default: yes unless ``strict_mode``."""
        if self.is_address_owner:
            return True
        return self.accept_mode if self.accept_mode is not None else not self.strict_mode

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


# ---- the run-time carriers (field names and defaults as config.py's models; test_vrrp_lean_runtime checks) ----

@dataclass(frozen=True, slots=True)
class TrackScriptSpec(TrackScriptRules):
    command: str | list[str]
    name: str | None = None
    interval: float = 1.0
    timeout: float | None = None
    weight: int | None = None
    fault: bool | None = None
    rise: int = 1
    fall: int = 1
    init_fail: bool = False


@dataclass(frozen=True, slots=True)
class TrackFileSpec(TrackFileRules):
    path: str
    weight: int = 1
    interval: float = 1.0


@dataclass(frozen=True, slots=True)
class TrackInterfaceSpec(TrackInterfaceRules):
    name: str
    weight: int | None = None


@dataclass(frozen=True, slots=True)
class InstanceSpec(InstanceRules):
    name: str
    vrid: int
    interface_name: str
    ip_addresses: tuple[IPv4Interface | IPv6Interface, ...]
    priority: int = 100
    advert_interval: float = 1.0
    preempt_mode: bool = True
    version: int = 3
    accept_mode: bool | None = None
    strict_mode: bool = False
    preempt_delay: float = 0.0
    notify: str | list[str] | None = None
    notify_args: str = "ours"
    track_script: tuple[TrackScriptSpec, ...] = ()
    track_file: tuple[TrackFileSpec, ...] = ()
    track_interface: tuple[TrackInterfaceSpec, ...] = ()
    unicast_peers: tuple[IPv4Address, ...] = ()
    garp_repeat: int = 2
    garp_delay: float = 1.0
    garp_lower_prio_repeat: int | None = None
    garp_lower_prio_delay: float | None = None
    higher_prio_send_advert: bool = True
    garp_master_refresh: float = 0.0
    garp_master_refresh_repeat: int = 1
    use_vmac: bool | str = False
    vmac_xmit_base: bool = False


@dataclass(frozen=True, slots=True)
class SyncGroupSpec(SyncGroupRules):
    members: tuple[str, ...]
    notify: str | list[str] | None = None
    notify_args: str = "ours"
    notify_master: str | list[str] | None = None
    notify_backup: str | list[str] | None = None
    notify_fault: str | list[str] | None = None
    notify_stop: str | list[str] | None = None


@dataclass(frozen=True)
class RunConfig:
    """What the daemon runs: the instances and the sync groups (name -> group, in file order)."""

    instances: tuple[InstanceSpec, ...]
    sync_groups: dict[str, SyncGroupSpec] = field(default_factory=dict)


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:  # the CLI and this module disagree: a programming error, not an operator's
        raise TypeError(f"{cls.__name__}: unknown keys {sorted(unknown)}")
    return data


def instance_from_plain(data: dict[str, Any]) -> InstanceSpec:
    d = dict(_known(InstanceSpec, data))
    d["ip_addresses"] = tuple(ip_interface(a) for a in d["ip_addresses"])
    d["unicast_peers"] = tuple(IPv4Address(a) for a in d.get("unicast_peers", ()))
    d["track_script"] = tuple(TrackScriptSpec(**_known(TrackScriptSpec, t)) for t in d.get("track_script", ()))
    d["track_file"] = tuple(TrackFileSpec(**_known(TrackFileSpec, t)) for t in d.get("track_file", ()))
    d["track_interface"] = tuple(TrackInterfaceSpec(**_known(TrackInterfaceSpec, t))
                                 for t in d.get("track_interface", ()))
    return InstanceSpec(**d)


def from_plain(data: dict[str, Any]) -> RunConfig:
    """``{"instances": [instance, ...], "sync_groups": {name: group}}`` as ``config.plain`` writes it."""
    groups = {name: SyncGroupSpec(**{**_known(SyncGroupSpec, g), "members": tuple(g["members"])})
              for name, g in data.get("sync_groups", {}).items()}
    return RunConfig(tuple(instance_from_plain(i) for i in data["instances"]), groups)

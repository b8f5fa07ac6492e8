"""The events a VrrpRouter (``VrrpFailover.machine``) takes and the actions it returns.

Frozen values with no logic; every event carries the monotonic ``now``. ``SetTimer`` is always the
last action of a step: the one deadline the router wants to be woken at.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from VrrpFailover.packet import Advert

# ---- events -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class Startup:
    now: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Shutdown:
    now: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Deadline:
    """The driver's timer for this router went off (possibly early: then nothing happens)."""

    now: float


@dataclass(frozen=True, slots=True, kw_only=True)
class AdvertIn:
    now: float
    source: IPv4Address
    advert: Advert


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackResult:
    """One reading of one tracker (``tracker``: its key, ``InstanceConfig.tracker_keys``), as the driver saw it:

    - ``script:NAME``: every run of the check; ``ok`` False for a non-zero exit, a timeout or a command that
      cannot run (the router applies rise and fall);
    - ``interface:NAME``: ``ok`` is up (administratively up with carrier); False when down or gone;
    - ``file:PATH``: ``ok`` False when the file is missing, unreadable or holds no integer; else ``value``.

    ``detail`` says what was seen (``exit 1``, ``no carrier``, ``no such file``)."""

    now: float
    tracker: str
    ok: bool
    value: int | None = None
    detail: str = ""


# -- from the router's sync group (``VrrpFailover.sync_group``: keepalived's vrrp_sync_group) --

@dataclass(frozen=True, slots=True, kw_only=True)
class GroupFault:
    """A member of the router's sync group is in Fault: go to Fault too (a Master resigns) and stay there
    until ``GroupRecovered``, whatever the router's own trackers say. ``why`` names the member and its fault."""

    now: float
    group: str
    why: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupRecovered:
    """No member of the sync group is in Fault any more: leave the group's Fault (to Backup) unless a tracker
    of the router's own still makes one."""

    now: float
    group: str
    why: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupBackup:
    """A member of the sync group left Master for Backup (a higher priority): a Master goes Backup too."""

    now: float
    group: str
    why: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupMaster:
    """Every member of the sync group wants Master (each one's Master_Down_Timer ran out): become Master now."""

    now: float
    group: str
    why: str


GroupEvent = GroupFault | GroupRecovered | GroupBackup | GroupMaster
Event = Startup | Shutdown | Deadline | AdvertIn | TrackResult | GroupEvent


# ---- actions ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SendAdvert:
    priority: int
    stepping_down: bool = False  # the last advert of a Master going Backup: not from a virtual MAC (use_vmac)


@dataclass(frozen=True, slots=True)
class AddAddresses:
    addresses: tuple[IPv4Address, ...]


@dataclass(frozen=True, slots=True)
class RemoveAddresses:
    addresses: tuple[IPv4Address, ...]


@dataclass(frozen=True, slots=True)
class SendGarp:
    """One round of gratuitous ARP for these addresses."""

    addresses: tuple[IPv4Address, ...]


@dataclass(frozen=True, slots=True)
class SetTimer:
    at: float | None


Action = SendAdvert | AddAddresses | RemoveAddresses | SendGarp | SetTimer

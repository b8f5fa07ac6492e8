"""The RFC 5798 (VRRPv3) / RFC 3768 (VRRPv2) state machine of one virtual router, sans I/O.

``VrrpRouter.handle(event)`` takes one frozen event (``Startup``, ``AdvertIn``, ``Deadline``,
``Shutdown``, ``PriorityChange``, ``FaultChange``) carrying a monotonic ``now`` and returns the
actions for the driver to carry out, in order (``SendAdvert``, ``AddAddresses``,
``RemoveAddresses``, ``SendGarp``, ``Changed`` (a failover_core Transition to log and notify),
and always last ``SetTimer(at)``, the one deadline this router wants to be woken at, or None).

One timer does both jobs of the RFC: in Backup it is the Master_Down_Timer, in Master the
Adver_Timer. A ``Deadline`` event that arrives before the deadline is a no-op (the driver may
wake early after the deadline moved later), so the driver never needs to cancel a timer.

Every state change goes through failover_core.transitions.StateMachine with a stable code.
Fault is keepalived's extra state (a failing track script); the RFC's three states are the rest.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass
from ipaddress import IPv4Address

from failover_core.transitions import StateMachine, Transition
from VrrpFailover.config import PRIORITY_OWNER, InstanceConfig
from VrrpFailover.packet import Advert


class VrrpState(enum.Enum):
    INITIALIZE = "Initialize"
    BACKUP = "Backup"
    MASTER = "Master"
    FAULT = "Fault"


S = VrrpState
ALLOWED_MOVES: dict[VrrpState, frozenset[VrrpState]] = {
    S.INITIALIZE: frozenset({S.BACKUP, S.MASTER, S.FAULT}),
    S.BACKUP: frozenset({S.MASTER, S.INITIALIZE, S.FAULT}),
    S.MASTER: frozenset({S.BACKUP, S.INITIALIZE, S.FAULT}),
    S.FAULT: frozenset({S.BACKUP, S.MASTER, S.INITIALIZE}),
}

# stable transition reason codes
CODE_STARTUP_OWNER = "startup_address_owner"
CODE_STARTUP_BACKUP = "startup_backup"
CODE_MASTER_DOWN = "master_down_interval_expired"
CODE_MASTER_RESIGNED = "master_sent_priority_zero"
CODE_PREEMPT = "preempt_lower_priority_master"
CODE_HIGHER_PRIORITY = "higher_priority_advert"
CODE_EQUAL_HIGHER_ADDRESS = "equal_priority_higher_address"
CODE_SHUTDOWN = "shutdown"
CODE_FAULT = "track_script_fault"
CODE_FAULT_CLEARED = "track_script_recovered"

# advert drop reasons decided here (codec-level ones are in VrrpFailover.packet)
DROP_WRONG_VERSION = "wrong_version"
DROP_WRONG_VRID = "wrong_vrid"
DROP_ADDRESS_LIST = "address_list_mismatch"
DROP_INTERVAL_MISMATCH = "interval_mismatch"
DROP_NOT_A_PEER = "not_a_unicast_peer"
DROP_OWN = "own_advert"


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
class PriorityChange:
    """The track script moved the effective priority (base priority + weight, clamped to 1-254)."""

    now: float
    priority: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultChange:
    now: float
    faulty: bool
    detail: str = ""


Event = Startup | Shutdown | Deadline | AdvertIn | PriorityChange | FaultChange


# ---- actions ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SendAdvert:
    priority: int


@dataclass(frozen=True, slots=True)
class AddAddresses:
    addresses: tuple[IPv4Address, ...]


@dataclass(frozen=True, slots=True)
class RemoveAddresses:
    addresses: tuple[IPv4Address, ...]


@dataclass(frozen=True, slots=True)
class SendGarp:
    addresses: tuple[IPv4Address, ...]


@dataclass(frozen=True, slots=True)
class Changed:
    transition: Transition


@dataclass(frozen=True, slots=True)
class SetTimer:
    at: float | None


Action = SendAdvert | AddAddresses | RemoveAddresses | SendGarp | Changed | SetTimer


def skew_time(priority: int, master_adver_interval: float, version: int) -> float:
    """RFC 5798 6.1: ((256 - Priority) * Master_Adver_Interval) / 256; RFC 3768: (256 - Priority) / 256."""
    return (256 - priority) * (master_adver_interval if version == 3 else 1.0) / 256


def master_down_interval(priority: int, master_adver_interval: float, version: int) -> float:
    """3 * Master_Adver_Interval + Skew_Time."""
    return 3 * master_adver_interval + skew_time(priority, master_adver_interval, version)


class VrrpRouter:
    """One virtual router on one interface. ``primary_ip`` is this host's address on the interface
    (the advert source, used to break equal-priority ties)."""

    def __init__(self, config: InstanceConfig, primary_ip: IPv4Address) -> None:
        self.config = config
        self.primary_ip = primary_ip
        self.machine: StateMachine[VrrpState] = StateMachine(config.name, S.INITIALIZE, ALLOWED_MOVES)
        self.priority = config.priority  # effective priority (track script weight applied)
        self.master_adver_interval = config.advert_interval
        self.deadline: float | None = None
        self.started_at: float | None = None
        self.faulty = False
        self.drops: Counter[str] = Counter()
        self.master_address: IPv4Address | None = None  # who we believe is Master (Backup only)
        self._addresses = frozenset(config.addresses)
        self._down_code = CODE_MASTER_DOWN

    # -- derived timings -------------------------------------------------------------------
    @property
    def state(self) -> VrrpState:
        return self.machine.state

    @property
    def skew_time(self) -> float:
        return skew_time(self.priority, self.master_adver_interval, self.config.version)

    @property
    def master_down_interval(self) -> float:
        return master_down_interval(self.priority, self.master_adver_interval, self.config.version)

    @property
    def owner(self) -> bool:
        return self.config.priority == PRIORITY_OWNER

    # -- the one entry point ---------------------------------------------------------------
    def handle(self, event: Event) -> list[Action]:
        out: list[Action] = []
        match event:
            case Startup(now=now):
                self.started_at = now
                self._enter_running(now, out, CODE_STARTUP_BACKUP)
            case Shutdown(now=now):
                self._shutdown(now, out)
            case Deadline(now=now):
                self._deadline(now, out)
            case AdvertIn():
                self._advert(event, out)
            case PriorityChange(now=now, priority=prio):
                self._priority(now, prio, out)
            case FaultChange(now=now, faulty=faulty, detail=detail):
                self._fault(now, faulty, detail, out)
        out.append(SetTimer(self.deadline))
        return out

    # -- helpers ---------------------------------------------------------------------------
    def _change(self, to: VrrpState, code: str, reason: str, now: float, out: list[Action]) -> None:
        t = self.machine.change(to, code=code, reason=reason, now=now)
        if t is not None:
            out.append(Changed(t))

    def _become_master(self, now: float, code: str, reason: str, out: list[Action]) -> None:
        out.append(SendAdvert(self.priority))
        out.append(AddAddresses(self.config.addresses))
        out.append(SendGarp(self.config.addresses))
        self.deadline = now + self.config.advert_interval
        self.master_address = None
        self._change(S.MASTER, code, reason, now, out)

    def _become_backup(self, now: float, code: str, reason: str, out: list[Action]) -> None:
        was_master = self.state is S.MASTER
        self.deadline = now + self.master_down_interval
        self._down_code = CODE_MASTER_DOWN
        if was_master and not self.owner:
            out.append(RemoveAddresses(self.config.addresses))
        self._change(S.BACKUP, code, reason, now, out)

    def _enter_running(self, now: float, out: list[Action], code: str) -> None:
        """RFC 5798 6.4.1 (Initialize): the owner goes Master at once, everyone else Backup."""
        if self.faulty:
            self._change(S.FAULT, CODE_FAULT, "track script failing at start", now, out)
            return
        if self.owner:
            owner_code = CODE_STARTUP_OWNER if code == CODE_STARTUP_BACKUP else code
            self._become_master(now, owner_code, "priority 255: address owner becomes Master at once", out)
            return
        self.master_adver_interval = self.config.advert_interval
        reason = (f"started; Master_Down_Interval {self.master_down_interval:.3f}s"
                  if code == CODE_STARTUP_BACKUP else "track script passes again; waiting as Backup")
        self._become_backup(now, code, reason, out)

    def _shutdown(self, now: float, out: list[Action]) -> None:
        if self.state is S.MASTER:
            out.append(SendAdvert(0))
            if not self.owner:
                out.append(RemoveAddresses(self.config.addresses))
        self.deadline = None
        self._change(S.INITIALIZE, CODE_SHUTDOWN, "shutting down" + (
            " (sent priority 0)" if self.state is S.MASTER else ""), now, out)

    def _deadline(self, now: float, out: list[Action]) -> None:
        if self.deadline is None or now < self.deadline:
            return
        if self.state is S.BACKUP:
            if self._down_code == CODE_MASTER_RESIGNED:
                reason = f"Master sent priority 0; took over after Skew_Time {self.skew_time:.3f}s"
            elif self._down_code == CODE_PREEMPT:
                reason = "a lower-priority Master is advertising and preempt_mode is on"
            else:
                reason = f"no advert for Master_Down_Interval {self.master_down_interval:.3f}s"
            self._become_master(now, self._down_code, reason, out)
        elif self.state is S.MASTER:
            out.append(SendAdvert(self.priority))
            nxt = self.deadline + self.config.advert_interval
            self.deadline = nxt if nxt > now else now + self.config.advert_interval

    def _accept(self, ev: AdvertIn) -> bool:
        """RFC 5798 7.1 receiver checks that need the instance's config. Counts what it drops."""
        adv, cfg = ev.advert, self.config
        reason = None
        if adv.version != cfg.version:
            reason = DROP_WRONG_VERSION
        elif adv.vrid != cfg.vrid:
            reason = DROP_WRONG_VRID
        elif ev.source == self.primary_ip:
            reason = DROP_OWN
        elif cfg.unicast_peers and ev.source not in cfg.unicast_peers:
            reason = DROP_NOT_A_PEER
        elif len(adv.addresses) != len(self._addresses) or frozenset(adv.addresses) != self._addresses:
            reason = DROP_ADDRESS_LIST
        elif cfg.version == 2 and adv.interval != cfg.advert_interval:
            reason = DROP_INTERVAL_MISMATCH
        if reason is not None:
            self.drops[reason] += 1
            return False
        return True

    def _advert(self, ev: AdvertIn, out: list[Action]) -> None:
        if not self._accept(ev):
            return
        now, adv = ev.now, ev.advert
        if self.state is S.BACKUP:
            if adv.priority == 0:
                self.deadline = now + self.skew_time
                self._down_code = CODE_MASTER_RESIGNED
                return
            in_preempt_delay = self.started_at is not None and now < self.started_at + self.config.preempt_delay
            if not self.config.preempt_mode or adv.priority >= self.priority or in_preempt_delay:
                if self.config.version == 3:
                    self.master_adver_interval = adv.interval
                self.deadline = now + self.master_down_interval
                self._down_code = CODE_MASTER_DOWN
                self.master_address = ev.source
            else:
                # a lower-priority Master while we preempt: let the Master_Down_Timer run out (RFC)
                if self._down_code == CODE_MASTER_DOWN:
                    self._down_code = CODE_PREEMPT
        elif self.state is S.MASTER:
            if adv.priority == 0:
                out.append(SendAdvert(self.priority))
                self.deadline = now + self.config.advert_interval
                return
            if adv.priority > self.priority:
                code = CODE_HIGHER_PRIORITY
                why = f"advert from {ev.source} with priority {adv.priority} > {self.priority}"
            elif adv.priority == self.priority and ev.source > self.primary_ip:
                code, why = CODE_EQUAL_HIGHER_ADDRESS, (f"advert from {ev.source} with equal priority "
                                                        f"{adv.priority} and a higher address than {self.primary_ip}")
            else:
                return
            if self.config.version == 3:
                self.master_adver_interval = adv.interval
            self.master_address = ev.source
            self._become_backup(now, code, why, out)

    def _priority(self, now: float, priority: int, out: list[Action]) -> None:
        if self.owner or priority == self.priority:
            return
        self.priority = max(1, min(254, priority))
        if self.state is S.MASTER:
            out.append(SendAdvert(self.priority))
            self.deadline = now + self.config.advert_interval

    def _fault(self, now: float, faulty: bool, detail: str, out: list[Action]) -> None:
        if faulty == self.faulty:
            return
        self.faulty = faulty
        if self.state is S.INITIALIZE:
            return  # not started (or shut down): Startup will look at self.faulty
        if faulty:
            if self.state is S.MASTER:
                out.append(SendAdvert(0))
                if not self.owner:
                    out.append(RemoveAddresses(self.config.addresses))
            self.deadline = None
            self._change(S.FAULT, CODE_FAULT, f"track script failed: {detail}" if detail else "track script failed",
                         now, out)
        elif self.state is S.FAULT:
            self._enter_running(now, out, CODE_FAULT_CLEARED)

"""The RFC 5798 (VRRPv3) / RFC 3768 (VRRPv2) state machine of one virtual router, sans I/O.

``VrrpRouter.handle(event)`` takes one frozen event (``VrrpFailover.events``: ``Startup``, ``AdvertIn``, ``Deadline``,
``TrackResult``, ``Shutdown``) carrying a monotonic ``now`` and returns a failover_core ``Step``:

- ``actions``: what the driver must do, in order (``SendAdvert``, ``AddAddresses``,
  ``RemoveAddresses``, ``SendGarp``) and always last ``SetTimer(at)``, the one time this router
  wants to be woken at (a ``Deadline`` event), or None;
- ``transitions``: the state change, if any (made through failover_core.transitions.StateMachine);
- ``reason``: why, with a code from ``VrrpFailover.codes``; None for routine inputs that decide
  nothing new (an advert from the Master that restarts the timer, the Master's periodic advert);
- ``notes``: a dropped advert (``AdvertDropCode``), also counted in ``drops``.

One timer does both jobs of the RFC: in Backup it is the Master_Down_Timer, in Master the
Adver_Timer (``deadline``). The gratuitous ARP rounds after becoming Master (``garp_repeat``
rounds, ``garp_delay`` apart) are the router's second deadline (``garp_at``). A Master that hears
a lower priority (another Master, after a partition or a freeze: hosts may have followed its
gratuitous ARP) answers with gratuitous ARP of its own (keepalived's ``garp_lower_prio_repeat``):
a round at once, more rounds ``garp_lower_prio_delay`` apart, the third deadline (``lp_garp_at``).
Those rounds are never closer than ``LOWER_PRIO_GARP_SPACING``: a lower-priority advert inside it
is counted (``lower_priority_rate_limited``) and folded into one round at its end, so a flood of
forged adverts gets at most one round per spacing and changes nothing else. The other side of it:
a Master that steps down for a higher priority first sends one advert of its own
(``higher_prio_send_advert``), so the Master that stays always hears a lower priority after a heal,
whichever advert crossed first. ``SetTimer`` asks
for the earliest deadline. A ``Deadline`` event before all of them is a no-op (the driver may wake
early after a deadline moved later), so the driver never needs to cancel a timer.

The effective priority is the router's too: ``TrackResult`` readings of its trackers (scripts with
rise/fall, files, interfaces; ``Tracking``) move it (base priority + weights, clamped to 1-254;
keepalived's rules) or move the router to or from Fault (keepalived's extra state; the RFC's three
states are the rest). The driver only reports what it read.

keepalived's ``garp_master_refresh`` is the fourth deadline (``refresh_at``): once the becoming-Master rounds are
over, a Master sends ``garp_master_refresh_repeat`` rounds every ``garp_master_refresh`` s (0: never).

A member of a sync group (``sync_group``; ``VrrpFailover.sync_group`` decides for the group) takes the group's
orders (``GroupFault``, ``GroupRecovered``, ``GroupBackup``, ``GroupMaster``) and never becomes Master on its own
timer: it sets ``wants_master`` and waits as Backup (keepalived's wantstate).
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass
from ipaddress import IPv4Address

from failover_core.errors import LocalUsageError
from failover_core.step import Step, StepBuilder
from failover_core.transitions import StateMachine
from VrrpFailover.codes import AdvertDropCode as Drop
from VrrpFailover.codes import DecisionCode as Decision
from VrrpFailover.codes import TransitionCode as Code
from VrrpFailover.events import (
    Action,
    AddAddresses,
    AdvertIn,
    Deadline,
    Event,
    GroupBackup,
    GroupFault,
    GroupMaster,
    GroupRecovered,
    RemoveAddresses,
    SendAdvert,
    SendGarp,
    SetTimer,
    Shutdown,
    Startup,
    TrackResult,
)
from VrrpFailover.packet import Advert
from VrrpFailover.settings import (
    PRIORITY_OWNER,
    InstanceRules,
    TrackFileRules,
    TrackInterfaceRules,
    TrackScriptRules,
)


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


# ---- timings ------------------------------------------------------------------------------

LOWER_PRIO_GARP_SPACING = 0.2  # s: the closest two lower-priority answer rounds may be (at most 5 a second)


def skew_time(priority: int, master_adver_interval: float, version: int) -> float:
    """RFC 5798 6.1: ((256 - Priority) * Master_Adver_Interval) / 256; RFC 3768: (256 - Priority) / 256."""
    return (256 - priority) * (master_adver_interval if version == 3 else 1.0) / 256


def master_down_interval(priority: int, master_adver_interval: float, version: int) -> float:
    """3 * Master_Adver_Interval + Skew_Time."""
    return 3 * master_adver_interval + skew_time(priority, master_adver_interval, version)


# ---- trackers (keepalived's track_script, track_file, track_interface) -----------------------

FAULT_CODES = {"script": Code.TRACK_SCRIPT_FAULT, "file": Code.TRACK_FILE_FAULT,
               "interface": Code.TRACK_INTERFACE_FAULT}
RECOVERED_CODES = {"script": Code.TRACK_SCRIPT_RECOVERED, "file": Code.TRACK_FILE_RECOVERED,
                   "interface": Code.TRACK_INTERFACE_RECOVERED}
FAULT_BELOW = -253  # keepalived: a track_file whose value * weight is below this is a fault


@dataclass
class TrackerState:
    """What the router believes of one tracker. ``ok`` None: no reading yet (a script without init_fail
    before its first result: neither its weight nor a fault applies)."""

    ok: bool | None
    value: int = 0  # track_file: the number read
    streak: int = 0  # track_script: results in a row that disagree with ``ok`` (rise / fall)
    detail: str = ""


class Tracking:
    """The instance's trackers and what they make of the priority and of Fault, with keepalived's rules:

    - script (``rise`` / ``fall``): it changes state after ``rise`` passes or ``fall`` failures in a row; its
      first result decides at once unless ``init_fail`` (then it starts failed and needs ``rise`` passes).
      Without weight a failing script is a fault; a positive weight is added while it passes, a negative one
      while it fails.
    - interface: down (admin down, no carrier, gone) is a fault without weight; with one, as a script.
    - file: value * weight is added; below -253 it is a fault; weight 0: any value but 0 is a fault; a
      missing or unreadable file, or one without an integer, is a fault.

    The effective priority is base + the sum, clamped to 1-254 (0 would resign, 255 is the owner's)."""

    def __init__(self, config: InstanceRules) -> None:
        self.specs: dict[str, TrackScriptRules | TrackFileRules | TrackInterfaceRules] = dict(config.scripts)
        self.specs.update({f"file:{f.path}": f for f in config.track_file})
        self.specs.update({f"interface:{i.name}": i for i in config.track_interface})
        self.states = {key: TrackerState(ok=False if isinstance(spec, TrackScriptRules) and spec.init_fail else None)
                       for key, spec in self.specs.items()}
        self.name = config.name

    def update(self, ev: TrackResult) -> bool:
        """Take one reading; True when the tracker's state (pass/fail, value) changed."""
        spec = self.specs.get(ev.tracker)
        if spec is None:
            raise LocalUsageError(f"{self.name}: a TrackResult for {ev.tracker!r}, which is not one of its trackers "
                                  f"({', '.join(self.specs) or 'it has none'})")
        st = self.states[ev.tracker]
        before = (st.ok, st.value)
        st.detail = ev.detail
        if isinstance(spec, TrackScriptRules) and st.ok is not None:
            if ev.ok == st.ok:
                st.streak = 0
            else:
                st.streak += 1
                if st.streak >= (spec.rise if ev.ok else spec.fall):
                    st.ok, st.streak = ev.ok, 0
        else:
            st.ok = ev.ok
        if isinstance(spec, TrackFileRules):
            st.value = ev.value if ev.ok and ev.value is not None else 0
        return (st.ok, st.value) != before

    def makes_fault(self, key: str) -> bool:
        spec, st = self.specs[key], self.states[key]
        if isinstance(spec, TrackFileRules):
            if st.ok is None:
                return False
            return not st.ok or (st.value != 0 if spec.weight == 0 else st.value * spec.weight < FAULT_BELOW)
        weight = spec.weight
        return weight is None and st.ok is False

    def fault(self) -> str | None:
        """The first tracker (in config order) that makes a fault now, or None."""
        return next((key for key in self.specs if self.makes_fault(key)), None)

    def weight_of(self, key: str) -> int:
        spec, st = self.specs[key], self.states[key]
        if isinstance(spec, TrackFileRules):
            return st.value * spec.weight if st.ok else 0
        w = spec.weight
        if w is None or st.ok is None:
            return 0
        return w if (w > 0 and st.ok) or (w < 0 and not st.ok) else 0

    def priority(self, base: int) -> int:
        return max(1, min(PRIORITY_OWNER - 1, base + sum(self.weight_of(k) for k in self.specs)))

    def describe(self, key: str) -> str:
        spec, st = self.specs[key], self.states[key]
        if isinstance(spec, TrackFileRules):
            return f"holds {st.value} (x {spec.weight})" if st.ok else "cannot be read"
        if isinstance(spec, TrackInterfaceRules):
            return "is up" if st.ok else "is down"
        return "passes" if st.ok else "fails"


# ---- the router ---------------------------------------------------------------------------

class VrrpRouter:
    """One virtual router on one interface. ``primary_ip`` is this host's address on the interface
    (the advert source, used to break equal-priority ties). ``sync_group``: the name of its sync group
    (``VrrpFailover.sync_group``), or None: a member never becomes Master on its own timer (it sets
    ``wants_master`` and waits for ``GroupMaster``) and stays in Fault while the group holds it there."""

    def __init__(self, config: InstanceRules, primary_ip: IPv4Address, *, sync_group: str | None = None) -> None:
        self.config = config
        self.primary_ip = primary_ip
        self.sync_group = sync_group
        self.wants_master = False  # a group member whose Master_Down_Timer ran out (keepalived's wantstate)
        self.group_fault: str | None = None  # why the sync group holds this router in Fault (None: it does not)
        self.machine: StateMachine[VrrpState] = StateMachine(config.name, S.INITIALIZE, ALLOWED_MOVES)
        self.priority = config.priority  # effective priority (track script weight applied)
        self.master_adver_interval = config.advert_interval
        self.deadline: float | None = None  # Master_Down_Timer (Backup) or Adver_Timer (Master)
        self.garp_at: float | None = None  # next gratuitous ARP round (Master only)
        self.garp_rounds_left = 0
        self.lp_garp_at: float | None = None  # next round of the answer to a lower priority (Master only)
        self.lp_garp_rounds_left = 0
        self.lp_garp_last: float | None = None  # when the last such round went out
        self.refresh_at: float | None = None  # next periodic gratuitous ARP (garp_master_refresh; Master only)
        self.started_at: float | None = None
        self.tracking = Tracking(config)
        self.faulty = False
        self.drops: Counter[str] = Counter()
        self.master_address: IPv4Address | None = None  # who we believe is Master (Backup only)
        self._addresses = frozenset(config.addresses)
        self._takeover_code = Code.MASTER_DOWN_INTERVAL_EXPIRED  # the code of the next Backup -> Master
        # the last advert (source, advert object) that passed the config checks and was routine in Backup: the
        # key of ``routine_advert`` (the checks depend on nothing else: config and primary_ip never change)
        self._routine_source: IPv4Address | None = None
        self._v3 = config.version == 3
        self._routine_advert: Advert | None = None

    # -- derived values --------------------------------------------------------------------
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

    @property
    def wake_at(self) -> float | None:
        """The earliest of the RFC timer and the next GARP rounds: what ``SetTimer`` asks for."""
        at = self.deadline
        for t in (self.garp_at, self.lp_garp_at, self.refresh_at):
            if t is not None and (at is None or t < at):
                at = t
        return at

    # -- the one entry point ---------------------------------------------------------------
    def handle(self, event: Event) -> Step[Action]:
        step: StepBuilder[Action] = StepBuilder()
        match event:  # the most frequent first: adverts, then timers
            case AdvertIn():
                self._advert(event, step)
            case Deadline(now=now):
                self._deadline(now, step)
            case Startup(now=now):
                self.started_at = now
                self._enter_running(now, step, Code.STARTUP_BACKUP)
            case TrackResult():
                self._track(event, step)
            case Shutdown(now=now):
                self._shutdown(now, step)
            case GroupFault() | GroupRecovered() | GroupBackup() | GroupMaster():
                self._group(event, step)
        step.act(SetTimer(self.wake_at))
        return step.build()

    # -- the hot path: two routine cases without a Step -------------------------------------
    # Each does exactly what ``handle`` does for that case (same fields changed, same single action) or nothing at
    # all (returns None: the caller must use ``handle``). tests/vrrp/test_vrrp_machine.py compares both on twin
    # routers. The driver uses them for the events that make up an idle router's life.
    def routine_adver_timer(self, now: float) -> float | None:
        """``handle(Deadline(now))`` when it is a Master's routine Adver_Timer: the RFC timer is due and no
        gratuitous ARP round is (the Step would be ``SendAdvert(self.priority)``, ``SetTimer(wake_at)``, no
        reason). Moves the timer on as ``handle`` does and returns the new ``wake_at``; the caller sends the
        advert. None, with nothing changed, in every other case."""
        d = self.deadline
        if d is None or now < d or self.machine.state is not S.MASTER:
            return None
        g, lp, r = self.garp_at, self.lp_garp_at, self.refresh_at
        if (g is not None and now >= g) or (lp is not None and now >= lp) or (r is not None and now >= r):
            return None
        interval = self.config.advert_interval
        nxt = d + interval
        d = self.deadline = nxt if nxt > now else now + interval
        # wake_at, inline (this path runs on every advert a Master sends: fewer calls, less cold code)
        for t in (g, lp, r):
            if t is not None and t < d:
                d = t
        return d

    def routine_advert(self, source: IPv4Address, advert: Advert, now: float) -> float | None:
        """``handle(AdvertIn(now=now, source=source, advert=advert))`` when it is a Backup's routine case and
        ``advert`` is the very object (from the same source) of the last advert ``handle`` found routine: it
        passed the config checks then (which depend on nothing else), and with a priority at least ours (so not
        0, and no preemption) it only restarts the Master_Down_Timer (the Step would be ``SetTimer(wake_at)``
        alone, no reason, no note). Does that and returns the new ``wake_at`` (= the deadline: a Backup has no
        gratuitous ARP rounds). None, with nothing changed, in every other case."""
        if (advert is not self._routine_advert or self.machine.state is not S.BACKUP
                or advert.priority < self.priority
                or (source is not self._routine_source and source != self._routine_source)):
            return None
        # _restart_down_timer inline, with master_down_interval's arithmetic in the same order (same floats)
        self.wants_master = False
        if self._v3:
            mai = self.master_adver_interval = advert.interval
            d = self.deadline = now + (3 * mai + (256 - self.priority) * mai / 256)
        else:
            mai = self.master_adver_interval
            d = self.deadline = now + (3 * mai + (256 - self.priority) * 1.0 / 256)
        self._takeover_code = Code.MASTER_DOWN_INTERVAL_EXPIRED
        self.master_address = source
        for t in (self.garp_at, self.lp_garp_at, self.refresh_at):  # (None in Backup; wake_at's rule all the same)
            if t is not None and t < d:
                d = t
        return d

    def _restart_down_timer(self, source: IPv4Address, adv: Advert, now: float) -> None:
        """The Master (or one at least as good) speaks: restart the Master_Down_Timer (routine, no reason)."""
        self.wants_master = False  # (a sync group member held as Backup: the Master is back, keepalived too)
        if self.config.version == 3:
            self.master_adver_interval = adv.interval
        self.deadline = now + self.master_down_interval
        self._takeover_code = Code.MASTER_DOWN_INTERVAL_EXPIRED
        self.master_address = source

    # -- adverts: RFC 5798 7.1 receiver checks, then 6.4.2 (Backup) / 6.4.3 (Master) --------
    def _dropped(self, ev: AdvertIn) -> Drop | None:
        """The receiver checks that need the instance's config: why ``ev`` must be dropped, or None."""
        adv, cfg = ev.advert, self.config
        if adv.version != cfg.version:
            return Drop.WRONG_VERSION
        if adv.vrid != cfg.vrid:
            return Drop.WRONG_VRID
        if ev.source == self.primary_ip:
            return Drop.OWN_ADVERT
        if cfg.unicast_peers and ev.source not in cfg.unicast_peers:
            return Drop.NOT_A_UNICAST_PEER
        if len(adv.addresses) != len(self._addresses) or frozenset(adv.addresses) != self._addresses:
            return Drop.ADDRESS_LIST_MISMATCH
        if cfg.version == 2 and adv.interval != cfg.advert_interval:
            return Drop.INTERVAL_MISMATCH
        return None

    def _advert(self, ev: AdvertIn, step: StepBuilder[Action]) -> None:
        drop = self._dropped(ev)
        if drop is not None:
            self.drops[drop] += 1
            step.note(drop, f"dropped advert from {ev.source} (vrid {ev.advert.vrid}, "
                            f"priority {ev.advert.priority}): {drop.meaning}")
        elif self.state is S.BACKUP:
            self._advert_in_backup(ev, step)
        elif self.state is S.MASTER:
            self._advert_in_master(ev, step)
        # Initialize and Fault ignore adverts

    def _advert_in_backup(self, ev: AdvertIn, step: StepBuilder[Action]) -> None:
        now, adv = ev.now, ev.advert
        if adv.priority == 0:
            self.deadline = now + self.skew_time
            self._takeover_code = Code.MASTER_SENT_PRIORITY_ZERO
            step.because(Decision.MASTER_RESIGNING, f"{ev.source} sent priority 0: taking over after "
                                                    f"Skew_Time {self.skew_time:.3f}s unless a Master speaks")
            return
        in_preempt_delay = self.started_at is not None and now < self.started_at + self.config.preempt_delay
        if self.config.preempt_mode and adv.priority < self.priority and not in_preempt_delay:
            # a lower-priority Master while we preempt: let the Master_Down_Timer run out (RFC)
            if self._takeover_code is Code.MASTER_DOWN_INTERVAL_EXPIRED:
                self._takeover_code = Code.PREEMPT_LOWER_PRIORITY_MASTER
                step.because(Decision.PREEMPT_PENDING, f"{ev.source} advertises priority {adv.priority} < "
                                                       f"{self.priority}: preempting when the timer runs out")
            return
        self._restart_down_timer(ev.source, adv, now)
        self._routine_source, self._routine_advert = ev.source, adv

    def _advert_in_master(self, ev: AdvertIn, step: StepBuilder[Action]) -> None:
        now, adv = ev.now, ev.advert
        if adv.priority == 0:
            step.act(SendAdvert(self.priority))
            self.deadline = now + self.config.advert_interval
            step.because(Decision.ANSWERED_PRIORITY_ZERO, f"{ev.source} sent priority 0: advertised at once")
            return
        if adv.priority > self.priority:
            code = Code.HIGHER_PRIORITY_ADVERT
            why = f"advert from {ev.source} with priority {adv.priority} > {self.priority}"
        elif adv.priority == self.priority and ev.source > self.primary_ip:
            code = Code.EQUAL_PRIORITY_HIGHER_ADDRESS
            why = (f"advert from {ev.source} with equal priority {adv.priority} and a higher address "
                   f"than {self.primary_ip}")
        else:
            # a lower priority (or a lower address): our adverts will win; hosts that followed its ARP come back
            self._answer_lower_priority(ev, step)
            return
        if self.config.higher_prio_send_advert:
            # keepalived's higher_prio_send_advert: our last advert tells the other Master that we were one
            # too (after a partition); it answers with gratuitous ARP (its garp_lower_prio_repeat). Flagged: with
            # use_vmac it must not leave from the virtual MAC the new Master now owns (a switch would follow it)
            step.act(SendAdvert(self.priority, stepping_down=True))
        if self.config.version == 3:
            self.master_adver_interval = adv.interval
        self.master_address = ev.source
        self._become_backup(now, code, why, step)

    def _answer_lower_priority(self, ev: AdvertIn, step: StepBuilder[Action]) -> None:
        """keepalived's garp_lower_prio_repeat: the other Master sent gratuitous ARP while it was Master;
        ours must come last. A round at once unless one went out less than the spacing ago: then the
        advert is counted and the answer starts at the end of the spacing (one round, however many came)."""
        rounds = self.config.lower_prio_rounds
        if rounds == 0:
            return
        now, last = ev.now, self.lp_garp_last
        self.lp_garp_rounds_left = rounds
        if last is None or now >= last + LOWER_PRIO_GARP_SPACING:
            self._lower_prio_round(now, step)
            if last is not None and now - last < 1.0:
                return  # the same episode (a one-way cut: the other keeps advertising): one log line was enough
            step.because(Decision.LOWER_PRIORITY_ANSWERED,
                         f"advert from {ev.source} with priority {ev.advert.priority} "
                         f"{'<' if ev.advert.priority < self.priority else '= (lower address)'} {self.priority}: "
                         f"gratuitous ARP, {rounds} round(s) {self.config.lower_prio_delay:g}s apart")
            return
        self.lp_garp_at = last + LOWER_PRIO_GARP_SPACING
        drop = Drop.LOWER_PRIORITY_RATE_LIMITED
        self.drops[drop] += 1
        step.note(drop, f"advert from {ev.source} (priority {ev.advert.priority}) {now - last:.3f}s after the last "
                        f"gratuitous ARP answer: {drop.meaning}")

    def _lower_prio_round(self, now: float, step: StepBuilder[Action]) -> None:
        step.act(SendGarp(self.config.addresses))
        self.lp_garp_last = now
        self.lp_garp_rounds_left -= 1
        self.lp_garp_at = (now + max(self.config.lower_prio_delay, LOWER_PRIO_GARP_SPACING)
                           if self.lp_garp_rounds_left > 0 else None)

    # -- the timers ------------------------------------------------------------------------
    def _deadline(self, now: float, step: StepBuilder[Action]) -> None:
        garp_due = self.garp_at is not None and now >= self.garp_at  # (before a takeover sets a new one)
        lp_due = self.lp_garp_at is not None and now >= self.lp_garp_at
        refresh_due = self.refresh_at is not None and now >= self.refresh_at
        if self.deadline is not None and now >= self.deadline:
            if self.state is S.BACKUP:
                self._take_over(now, step)
            elif self.state is S.MASTER:
                # Adver_Timer (routine, no reason): the next one on a drift-free schedule, no catch-up burst
                step.act(SendAdvert(self.priority))
                nxt = self.deadline + self.config.advert_interval
                self.deadline = nxt if nxt > now else now + self.config.advert_interval
        if lp_due and self.state is S.MASTER:
            # the next round of the answer to a lower priority (routine, no reason); it serves a due
            # becoming-Master round too: one round per wake-up is enough
            self._lower_prio_round(now, step)
        if garp_due and self.state is S.MASTER:
            # the next gratuitous ARP round after becoming Master (routine, no reason)
            if not lp_due:
                step.act(SendGarp(self.config.addresses))
            self.garp_rounds_left -= 1
            self.garp_at = now + self.config.garp_delay if self.garp_rounds_left > 0 else None
            if self.garp_at is None:
                self._start_refresh(now)
        elif refresh_due and self.state is S.MASTER:
            # keepalived's garp_master_refresh (routine, no reason): garp_master_refresh_repeat rounds, one of
            # them already out if a lower-priority answer round went out in this wake-up; drift-free schedule
            rounds = self.config.garp_master_refresh_repeat - (1 if lp_due else 0)
            step.act(*(SendGarp(self.config.addresses) for _ in range(rounds)))
            assert self.refresh_at is not None
            nxt = self.refresh_at + self.config.garp_master_refresh
            self.refresh_at = nxt if nxt > now else now + self.config.garp_master_refresh

    def _start_refresh(self, now: float) -> None:
        """The becoming-Master rounds are over: the periodic refresh starts ``garp_master_refresh`` later."""
        self.refresh_at = now + self.config.garp_master_refresh if self.config.garp_master_refresh > 0 else None

    def _take_over(self, now: float, step: StepBuilder[Action]) -> None:
        """Backup's Master_Down_Timer ran out: become Master, saying why the timer ran out. A sync group member
        only says it wants Master and waits as Backup, the timer re-armed (keepalived's wantstate): the group
        makes every member Master at once (``GroupMaster``) when they all want it."""
        if self.sync_group is not None:
            self.deadline = now + self.master_down_interval
            if not self.wants_master:
                self.wants_master = True
                step.because(Decision.SYNC_GROUP_WAIT, f"{self._takeover_text()}: wants Master; sync group "
                                                       f"{self.sync_group} moves when every member does")
            return
        self._become_master(now, self._takeover_code, self._takeover_text(), step)

    def _takeover_text(self) -> str:
        code = self._takeover_code
        if code is Code.MASTER_SENT_PRIORITY_ZERO:
            why = f"Master sent priority 0; took over after Skew_Time {self.skew_time:.3f}s"
        elif code is Code.PREEMPT_LOWER_PRIORITY_MASTER:
            why = "a lower-priority Master is advertising and preempt_mode is on"
        else:
            why = f"no advert for Master_Down_Interval {self.master_down_interval:.3f}s"
        return why

    # -- trackers: priority and fault ------------------------------------------------------
    def _track(self, ev: TrackResult, step: StepBuilder[Action]) -> None:
        if not self.tracking.update(ev):
            return
        fault = self.tracking.fault()
        if fault is not None or self.faulty:
            self._fault(ev.now, fault, ev, step)
        self._set_priority(ev.now, self.tracked_priority(), ev, step)

    def fault_text(self) -> str | None:
        """The router's own fault (the tracker that makes it and what was seen), or None."""
        fault = self.tracking.fault()
        return None if fault is None else self._fault_text(fault)

    def tracked_priority(self) -> int:
        """keepalived's rules (``Tracking.priority``); the owner keeps 255."""
        return PRIORITY_OWNER if self.owner else self.tracking.priority(self.config.priority)

    def _set_priority(self, now: float, priority: int, ev: TrackResult, step: StepBuilder[Action]) -> None:
        if priority == self.priority:
            return
        step.because(Decision.PRIORITY_CHANGED, f"{ev.tracker} {self.tracking.describe(ev.tracker)}"
                                                f"{f' ({ev.detail})' if ev.detail else ''}: "
                                                f"priority {self.priority} -> {priority}")
        self.priority = priority
        if self.state is S.MASTER:
            step.act(SendAdvert(self.priority))
            self.deadline = now + self.config.advert_interval

    def _fault(self, now: float, fault: str | None, ev: TrackResult, step: StepBuilder[Action]) -> None:
        """``fault``: the tracker that makes a fault now (None: none does)."""
        faulty = fault is not None
        if faulty == self.faulty:
            return
        self.faulty = faulty
        if self.state is S.INITIALIZE:
            return  # not started (or shut down): Startup will look at self.faulty
        if fault is not None:
            self._go_fault(now, FAULT_CODES[fault.partition(":")[0]], self._fault_text(fault), step)
        elif self.state is S.FAULT and self.group_fault is not None:
            step.because(Decision.SYNC_GROUP_HOLDS_FAULT, f"{ev.tracker} {self.tracking.describe(ev.tracker)}: no "
                                                          f"fault of its own any more; sync group {self.sync_group} "
                                                          "says when it leaves Fault")
        elif self.state is S.FAULT:
            self._enter_running(now, step, RECOVERED_CODES[ev.tracker.partition(":")[0]])

    def _go_fault(self, now: float, code: Code, why: str, step: StepBuilder[Action]) -> None:
        if self.state is S.FAULT:  # (held there by its sync group: now a fault of its own too)
            step.because(code, f"{why} (already in Fault)")
            return
        if self.state is S.MASTER:
            step.act(SendAdvert(0))
            if not self.owner:
                step.act(RemoveAddresses(self.config.addresses))
        self.deadline = None
        self._change(S.FAULT, code, why, now, step)

    def _fault_text(self, fault: str) -> str:
        detail = self.tracking.states[fault].detail
        return f"{fault} {self.tracking.describe(fault)}{f' ({detail})' if detail else ''}"

    # -- start and stop --------------------------------------------------------------------
    def _enter_running(self, now: float, step: StepBuilder[Action], code: Code, why: str = "") -> None:
        """RFC 5798 6.4.1 (Initialize): the owner goes Master at once, everyone else Backup; ``why`` for a
        sync group's recovery."""
        fault = self.tracking.fault()
        self.faulty = fault is not None
        if fault is not None:
            self._change(S.FAULT, FAULT_CODES[fault.partition(":")[0]], f"at start: {self._fault_text(fault)}",
                         now, step)
            return
        if self.group_fault is not None:
            self._change(S.FAULT, Code.SYNC_GROUP_FAULT, f"at start: {self.group_fault}", now, step)
            return
        if self.owner:
            owner_code = Code.STARTUP_ADDRESS_OWNER if code is Code.STARTUP_BACKUP else code
            self._become_master(now, owner_code, "priority 255: address owner becomes Master at once", step)
            return
        self.master_adver_interval = self.config.advert_interval
        if code is Code.STARTUP_BACKUP:
            why = f"started; Master_Down_Interval {self.master_down_interval:.3f}s"
        elif code is Code.SYNC_GROUP_RECOVERED:
            why = f"{why}; waiting as Backup"
        else:
            why = "no tracker makes a fault any more; waiting as Backup"
        self._become_backup(now, code, why, step)

    # -- the sync group's orders (VrrpFailover.sync_group decides when) ------------------------
    def _group(self, ev: GroupFault | GroupRecovered | GroupBackup | GroupMaster, step: StepBuilder[Action]) -> None:
        """keepalived's vrrp_sync_fault / try_up_instance / vrrp_sync_backup / vrrp_sync_master, one member's part."""
        if self.sync_group is None or ev.group != self.sync_group:
            raise LocalUsageError(f"{self.config.name}: a {type(ev).__name__} from sync group {ev.group!r}, but the "
                                  f"router is in {self.sync_group or 'no sync group'}")
        now = ev.now
        match ev:
            case GroupFault():
                self.group_fault = ev.why
                if self.state in (S.BACKUP, S.MASTER):  # (Initialize: Startup looks at group_fault)
                    self._go_fault(now, Code.SYNC_GROUP_FAULT, ev.why, step)
            case GroupRecovered():
                self.group_fault = None
                if self.state is S.FAULT and not self.faulty:
                    self._enter_running(now, step, Code.SYNC_GROUP_RECOVERED, ev.why)
            case GroupBackup():
                if self.state is S.MASTER:
                    self._become_backup(now, Code.SYNC_GROUP_BACKUP, ev.why, step)
            case GroupMaster():
                if self.state is S.BACKUP:
                    self._become_master(now, self._takeover_code, f"{self._takeover_text()} ({ev.why})", step)

    def _shutdown(self, now: float, step: StepBuilder[Action]) -> None:
        was_master = self.state is S.MASTER
        if was_master:
            step.act(SendAdvert(0))
            if not self.owner:
                step.act(RemoveAddresses(self.config.addresses))
        self.deadline = None
        self._change(S.INITIALIZE, Code.SHUTDOWN, "shutting down" + (" (sent priority 0)" if was_master else ""),
                     now, step)

    # -- the moves -------------------------------------------------------------------------
    def _become_master(self, now: float, code: Code, why: str, step: StepBuilder[Action]) -> None:
        # RFC 5798 6.4.1: advert, then gratuitous ARP; the address owner's addresses are already its own
        step.act(SendAdvert(self.priority))
        if not self.owner:
            step.act(AddAddresses(self.config.addresses))
        step.act(SendGarp(self.config.addresses))
        self.deadline = now + self.config.advert_interval
        self.master_address = None
        self._change(S.MASTER, code, why, now, step)
        self.garp_rounds_left = self.config.garp_repeat - 1  # the first round went out above
        self.garp_at = now + self.config.garp_delay if self.garp_rounds_left > 0 else None
        if self.garp_at is None:
            self._start_refresh(now)

    def _become_backup(self, now: float, code: Code, why: str, step: StepBuilder[Action]) -> None:
        was_master = self.state is S.MASTER
        self.deadline = now + self.master_down_interval
        self._takeover_code = Code.MASTER_DOWN_INTERVAL_EXPIRED
        if was_master and not self.owner:
            step.act(RemoveAddresses(self.config.addresses))
        self._change(S.BACKUP, code, why, now, step)

    def _change(self, to: VrrpState, code: Code, why: str, now: float, step: StepBuilder[Action]) -> None:
        """The one place the state changes; leaving Master ends its gratuitous ARP rounds."""
        step.changed(self.machine.change(to, code=code, reason=why, now=now))
        step.because(code, why)
        self.wants_master = False
        if to is not S.MASTER:
            self.garp_at, self.garp_rounds_left = None, 0
            self.lp_garp_at, self.lp_garp_rounds_left = None, 0
            self.refresh_at = None

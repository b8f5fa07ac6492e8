"""Sync groups (keepalived's ``vrrp_sync_group``): virtual routers that move together, sans I/O.

``SyncGroup(config, routers)`` owns the member routers (``machine.VrrpRouter``, each made with
``sync_group=NAME``). ``handle(member, event)`` feeds the event to that member, then applies the group's
rules until none applies, feeding the other members the group's orders (``events.GroupFault``,
``GroupRecovered``, ``GroupBackup``, ``GroupMaster``), and returns a ``GroupStep``: every member step made,
in order (the driver carries each out as that instance's), and the group's own ``Step`` (its transition,
for its log line and its notify hook, and its reason; no actions).

The rules, keepalived 2.2's (vrrp_sync.c, vrrp_track.c ``down_instance`` / ``try_up_instance``):

1. A member in Fault of its own (a tracker) puts the group in Fault: every member goes to Fault (a Master
   sends priority 0 and removes its addresses) and stays there, whatever its own trackers say.
2. When no member's own trackers make a fault any more, every member leaves Fault for Backup together.
3. A Master member that becomes Backup (a higher priority) takes the others with it: each Master member
   goes Backup (no priority-0 advert, as keepalived).
4. A member never becomes Master on its own timer: it says it wants Master (``wants_master``) and waits as
   Backup with its timer re-armed; when every member wants Master (or is Master), all become Master now.
   So the group is Master only when every member's peer is gone or weaker: keepalived prefers Backup to
   thrashing (a member whose own peer still advertises keeps the whole group Backup).

The group's state is the members' common one: Initialize until every member started, then Backup, Master
(every member Master), Fault (rule 1); back to Initialize when every member stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from failover_core.errors import LocalUsageError
from failover_core.step import Step, StepBuilder
from failover_core.transitions import StateMachine
from VrrpFailover.codes import SyncGroupCode as Code
from VrrpFailover.events import Action, Event, GroupBackup, GroupFault, GroupMaster, GroupRecovered
from VrrpFailover.machine import ALLOWED_MOVES, VrrpRouter, VrrpState
from VrrpFailover.settings import SyncGroupRules

S = VrrpState
MAX_ROUNDS = 8  # rule rounds per event: each rule fires at most once per event, so 4 are enough


@dataclass(frozen=True, slots=True)
class GroupStep:
    """What one event fed to a member produced: each member's step in order, and the group's own."""

    members: tuple[tuple[str, Step[Action]], ...]
    group: Step[Action]


class SyncGroup:
    def __init__(self, name: str, config: SyncGroupRules, routers: Mapping[str, VrrpRouter]) -> None:
        missing = [m for m in config.members if m not in routers]
        wrong = [m for m in config.members if m in routers and routers[m].sync_group != name]
        if missing or wrong:
            raise LocalUsageError(f"sync group {name}: members without a router ({', '.join(missing) or '-'}) or "
                                  f"whose router was not made with sync_group={name!r} ({', '.join(wrong) or '-'})")
        self.name = name
        self.config = config
        self.routers = {m: routers[m] for m in config.members}  # in config order: orders go out in this order
        self.machine: StateMachine[VrrpState] = StateMachine(name, S.INITIALIZE, ALLOWED_MOVES)

    @property
    def state(self) -> VrrpState:
        return self.machine.state

    def handle(self, member: str, event: Event) -> GroupStep:
        router = self.routers.get(member)
        if router is None:
            raise LocalUsageError(f"sync group {self.name}: {member!r} is not a member "
                                  f"({', '.join(self.routers)})")
        steps: list[tuple[str, Step[Action]]] = [(member, router.handle(event))]
        group: StepBuilder[Action] = StepBuilder()
        for _ in range(MAX_ROUNDS):
            if not self._apply_rules(event.now, steps, group):
                break
        else:
            raise LocalUsageError(f"sync group {self.name}: the rules did not settle in {MAX_ROUNDS} rounds")
        return GroupStep(tuple(steps), group.build())

    # -- the rules, in order; each returns True when it did something ----------------------------
    def _apply_rules(self, now: float, steps: list[tuple[str, Step[Action]]], group: StepBuilder[Action]) -> bool:
        states = {m: r.state for m, r in self.routers.items()}
        own = [(m, r.fault_text()) for m, r in self.routers.items() if r.faulty and states[m] is S.FAULT]
        if S.INITIALIZE in states.values():
            return self._starting_or_stopping(now, states, own, steps, group)
        if own and self.state is not S.FAULT:  # rule 1 (also the group's first state when a member starts in Fault)
            member, text = own[0]
            why = f"sync group {self.name}: member {member} is in Fault ({text})"
            self._change(S.FAULT, Code.GROUP_MEMBER_FAULT, why, now, group)
            self._order(GroupFault(now=now, group=self.name, why=why), steps)
            return True
        if self.state is S.INITIALIZE:  # every member started
            if all(st is S.MASTER for st in states.values()):
                self._change(S.MASTER, Code.GROUP_STARTED, f"sync group {self.name}: started; every member is the "
                                                            "address owner", now, group)
            else:
                self._change(S.BACKUP, Code.GROUP_STARTED, f"sync group {self.name}: started", now, group)
            return True
        if not own and self.state is S.FAULT:  # rule 2
            why = f"sync group {self.name}: no member is in Fault any more"
            self._change(S.BACKUP, Code.GROUP_RECOVERED, why, now, group)
            self._order(GroupRecovered(now=now, group=self.name, why=why), steps)
            return True
        if self.state is S.MASTER and S.BACKUP in states.values():  # rule 3
            member = next(m for m, st in states.items() if st is S.BACKUP)
            why = f"sync group {self.name}: member {member} left Master for Backup"
            self._change(S.BACKUP, Code.GROUP_BACKUP, why, now, group)
            self._order(GroupBackup(now=now, group=self.name, why=why), steps, only=S.MASTER)
            return True
        if self.state is S.BACKUP and all(st is S.MASTER or self.routers[m].wants_master
                                          for m, st in states.items()):  # rule 4
            why = f"sync group {self.name}: every member wants Master"
            self._change(S.MASTER, Code.GROUP_MASTER, why, now, group)
            self._order(GroupMaster(now=now, group=self.name, why=why), steps, only=S.BACKUP)
            return True
        return False

    def _starting_or_stopping(self, now: float, states: dict[str, VrrpState], own: list[tuple[str, str | None]],
                              steps: list[tuple[str, Step[Action]]], group: StepBuilder[Action]) -> bool:
        """A member not started yet, or stopped. Starting: a member in Fault holds the others already (those not
        started enter Fault at their Startup; the group's state follows when all have started). Stopping (the
        driver stops every member): no orders; the group stops with the last one."""
        if self.state is S.INITIALIZE:
            if own and any(r.group_fault is None for r in self.routers.values()):
                member, text = own[0]
                why = f"sync group {self.name}: member {member} is in Fault ({text})"
                self._order(GroupFault(now=now, group=self.name, why=why), steps)
                return True
            return False
        if all(st is S.INITIALIZE for st in states.values()):
            self._change(S.INITIALIZE, Code.GROUP_STOPPED, f"sync group {self.name}: every member stopped", now,
                         group)
            return True
        return False

    # -- helpers -------------------------------------------------------------------------------
    def _order(self, event: GroupFault | GroupRecovered | GroupBackup | GroupMaster,
               steps: list[tuple[str, Step[Action]]], *, only: VrrpState | None = None) -> None:
        """Feed the group's order to its members in config order (``only``: those in that state). Every step is
        kept: its SetTimer matters even when nothing else happened."""
        for m, r in self.routers.items():
            if only is None or r.state is only:
                steps.append((m, r.handle(event)))

    def _change(self, to: VrrpState, code: Code, why: str, now: float, group: StepBuilder[Action]) -> None:
        group.changed(self.machine.change(to, code=code, reason=why, now=now))
        group.because(code, why)

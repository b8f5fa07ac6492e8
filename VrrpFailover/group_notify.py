"""A sync group's notify hooks (the shell side: they run processes), in keepalived's order.

keepalived runs a sync group's per-state script (``notify_master``, ``notify_backup``, ``notify_fault``,
``notify_stop``) as written, then its ``notify`` script (``GROUP NAME STATE 0`` with ``notify_args:
"keepalived"``, ``notify.keepalived_group_args``; else ours, ``name from to reason``). One NotifyDispatcher per
group runs them in transition order, once each.
"""

from __future__ import annotations

from failover_core.hooks import HookResult, HookRunner
from failover_core.shell.notify import SubprocessHookRunner
from failover_core.transitions import Transition
from VrrpFailover.notify import keepalived_group_args
from VrrpFailover.settings import SyncGroupRules


class GroupHookRunner:
    """A sync group's hooks in keepalived's order: the entered state's own script (``notify_master``,
    ``notify_backup``, ``notify_fault``, ``notify_stop``: run as written, no arguments added), then ``notify``.
    One HookResult for both (ok when both are)."""

    def __init__(self, per_state: dict[str, HookRunner], generic: HookRunner | None) -> None:
        self.per_state = per_state  # by transition to_state: MASTER, BACKUP, FAULT, INITIALIZE (stop)
        self.generic = generic

    def run(self, transition: Transition) -> HookResult:
        runners = [r for r in (self.per_state.get(transition.to_state), self.generic) if r is not None]
        results = [r.run(transition) for r in runners]
        if not results:
            return HookResult(seq=transition.seq, ok=True, returncode=0, detail="no hook for this state", duration=0.0)
        return HookResult(seq=transition.seq, ok=all(r.ok for r in results), returncode=results[-1].returncode,
                          detail="; ".join(r.detail for r in results), duration=sum(r.duration for r in results))


def group_hook_runner(config: SyncGroupRules) -> GroupHookRunner | None:
    """The group's hooks from its config, or None when it has none."""
    per_state: dict[str, HookRunner] = {
        state: SubprocessHookRunner(command, args_for=lambda _t: [])
        for state, command in (("MASTER", config.notify_master), ("BACKUP", config.notify_backup),
                               ("FAULT", config.notify_fault), ("INITIALIZE", config.notify_stop))
        if command is not None}
    generic = None
    if config.notify is not None:
        generic = SubprocessHookRunner(config.notify,
                                       args_for=keepalived_group_args if config.notify_args == "keepalived" else None)
    return GroupHookRunner(per_state, generic) if per_state or generic is not None else None

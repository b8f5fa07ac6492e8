"""The notify hook's arguments in keepalived's order (config ``notify_args: "keepalived"``), so its scripts run
unchanged; ours (``name from to reason``, the default) are failover_core's.

keepalived 2.2.7 runs ``notify SCRIPT`` as ``SCRIPT INSTANCE NAME STATE PRIORITY``: ``INSTANCE`` (``GROUP``
for a sync group), the instance name, the state entered in capitals (``MASTER``, ``BACKUP``, ``FAULT``, and
``STOP`` when the router stops) and the effective priority. Our stop is the move to Initialize. A sync group's
``notify`` gets ``GROUP NAME STATE 0``; its per-state scripts run first (``group_notify.GroupHookRunner``).
"""

from __future__ import annotations

from failover_core.transitions import Transition

KEEPALIVED_STATE = {"MASTER": "MASTER", "BACKUP": "BACKUP", "FAULT": "FAULT", "INITIALIZE": "STOP"}


def keepalived_args(t: Transition, priority: int) -> list[str]:
    """keepalived's: ``INSTANCE name STATE priority``; ``priority`` is the effective one at the transition."""
    return ["INSTANCE", t.subject, KEEPALIVED_STATE.get(t.to_state, t.to_state), str(priority)]


def keepalived_group_args(t: Transition) -> list[str]:
    """keepalived's for a sync group: ``GROUP name STATE 0`` (a group has no priority)."""
    return ["GROUP", t.subject, KEEPALIVED_STATE.get(t.to_state, t.to_state), "0"]


"""The health alerts of service transitions: the key, and the context sentence by transition code.

The original agent published "Starting agent <id>", "Primary is inactive starting agent <id>" and
"Primary is active stopping agent <id>"; the standard-mode cells get sentences of the same shape.
"""

from __future__ import annotations

from failover_agent.codes import TransitionCode
from failover_core.tables import Action

_CONTEXT_BY_CODE = {
    TransitionCode.PRIMARY_SECONDARY_DOWN_WITNESS_DOWN: "Secondary and witness are inactive stopping agent {ids}",
    TransitionCode.SECONDARY_PRIMARY_UP_WITNESS_UP: "Primary is active stopping agent {ids}",
    TransitionCode.SECONDARY_PRIMARY_UP_WITNESS_DOWN: "Primary is active stopping agent {ids}",
    TransitionCode.SIMPLE_SECONDARY_PRIMARY_UP: "Primary is active stopping agent {ids}",
    TransitionCode.SECONDARY_PRIMARY_DOWN_WITNESS_DOWN: "Primary and witness are inactive stopping agent {ids}",
    TransitionCode.SECONDARY_VERIFIED_PRIMARY_ALIVE: "Witness still hears the primary stopping agent {ids}",
    TransitionCode.SECONDARY_VERIFIED_PRIMARY_DOWN: "Primary is inactive starting agent {ids}",
    TransitionCode.SIMPLE_SECONDARY_PRIMARY_DOWN: "Primary is inactive starting agent {ids}",
    TransitionCode.LEAVE_HANDOVER: "Failover agent stopping, handing over stopping agent {ids}",
}


def alert_context(code: str, action: Action, ids: str) -> str:
    if code == TransitionCode.OBSERVED:  # changed by someone else (an operator, a crash), not by us
        return f"Agent {ids} found {'running' if action is Action.START else 'stopped'} (not by the failover agent)"
    template = _CONTEXT_BY_CODE.get(code)
    if template is None:
        template = "Starting agent {ids}" if action is Action.START else "Stopping agent {ids}"
    return template.format(ids=ids)


def alert_key(agent_id: str) -> str:
    return f"failover {agent_id}"

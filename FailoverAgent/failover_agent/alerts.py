"""The health-alert context strings of each transition, by decision code (the documented wording).

The original agent published "Starting agent <id>", "Primary is inactive starting agent <id>" and
"Primary is active stopping agent <id>"; the standard-mode cells get sentences of the same shape.
"""

from __future__ import annotations

from failover_core.tables import Action

_CONTEXT_BY_CODE = {
    "primary.secondary_down.witness_down": "Secondary and witness are inactive stopping agent {ids}",
    "secondary.primary_up.witness_up": "Primary is active stopping agent {ids}",
    "secondary.primary_up.witness_down": "Primary is active stopping agent {ids}",
    "simple_secondary.primary_up": "Primary is active stopping agent {ids}",
    "secondary.primary_down.witness_down": "Primary and witness are inactive stopping agent {ids}",
    "secondary.verified.primary_alive": "Witness still hears the primary stopping agent {ids}",
    "secondary.verified.primary_down": "Primary is inactive starting agent {ids}",
    "simple_secondary.primary_down": "Primary is inactive starting agent {ids}",
}


def alert_context(code: str, action: Action, ids: str) -> str:
    if code == "observed":  # changed by someone else (an operator, a crash), not by us
        return f"Agent {ids} found {'running' if action is Action.START else 'stopped'} (not by the failover agent)"
    template = _CONTEXT_BY_CODE.get(code)
    if template is None:
        template = "Starting agent {ids}" if action is Action.START else "Stopping agent {ids}"
    return template.format(ids=ids)


def alert_key(agent_id: str) -> str:
    return f"failover {agent_id}"

"""GET /status: the pair decider's facts and the agent's counters, as the JSON the API publishes.

Presentation only: the decider (``DockerFailover.decider.PairNode``) exposes its facts, this module
names and formats them. The keys are the API (docs/docker.md, the integration tests read them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from DockerFailover.decider import PairNode
from DockerFailover.events import Role
from failover_core.transitions import Transition

DOCKER_STATE = {None: "unknown", True: "ok", False: "unreachable"}


def _transition(t: Transition) -> dict[str, Any]:
    return {"from": t.from_state.lower(), "to": t.to_state.lower(), "code": t.code, "reason": t.reason,
            "seq": t.seq}


def pair_status(node: PairNode, now: float) -> dict[str, Any]:
    """The decider's part: role, term, eligibility, Docker, the peer, each container, the last transition."""
    hb = node.peer.heartbeat
    last = node.machine.last
    return {
        "server": node.settings.name,
        "role": node.role.value,
        "term": node.term,
        "preferred": node.settings.preferred,
        "eligible": node.eligible,
        "docker": DOCKER_STATE[node.docker_ok],
        "peer": {
            "name": node.settings.peer,
            "state": node.liveness.state(now).value,
            "role": hb.role.value if hb else None,
            "term": hb.term if hb else None,
            "eligible": hb.eligible if hb else None,
            "silent_for": node.liveness.silent_for(now),
        },
        "containers": {
            n: {"state": (w.last.health_state.value if w.last else "unknown"),
                "detail": w.last.describe() if w.last else "not observed yet",
                "failed": node.role is Role.ACTIVE and w.failed(now)}
            for n, w in node.watches.items()
        },
        "mode": "standard" if node.settings.standard else "simple",
        "standard": None if node.lease is None or node.witness is None else {
            "lease_remaining": round(node.lease.remaining(now), 3),
            "lease": round(node.lease.length, 3),  # heartbeat_timeout - fencing margin
            "down_after": round(node.settings.peer_down_after, 3),  # heartbeat_timeout
            "witness": node.witness.state(now).value,
            "witness_says_peer": None if node.witness_ack is None
            else node.witness_ack.view_of(node.settings.peer).as_fields(),
            "claiming": node.claim_seq is not None,
            # the fence keeper: "spawned" (our child), "connected" (a listening keeper accepted us), "unreachable"
            "keeper": "connected" if node.settings.keeper_connects and node.keeper_up
            else "unreachable" if node.settings.keeper_connects else "spawned",
        },
        "last_transition": None if last is None else {
            "from": last.from_state.lower(), "to": last.to_state.lower(), "code": last.code,
            "reason": last.reason, "ago": round(now - last.at, 3), "seq": last.seq},
    }


def agent_status(node: PairNode, now: float, *, docker_detail: str, rejected: Mapping[str, int],
                 alerts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The whole GET /status body: the pair's facts plus the agent's Docker detail, counters and alerts."""
    st = pair_status(node, now)
    st["docker_detail"] = docker_detail
    st["rejected"] = dict(rejected)
    st["alerts"] = list(alerts)
    st["transitions"] = [_transition(t) for t in node.machine.history]
    return st

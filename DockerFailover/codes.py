"""DockerFailover's reason codes: why a role changed (TransitionCode) and what was reported (AlertCode).

The values are stable: they appear in logs, in ``GET /status`` (``last_transition.code``,
``transitions[].code``, ``alerts[].code``), in the notify hook's ``FAILOVER_CODE`` and in tests.
docs/docker.md's code tables are generated from these enums (``python scripts/render_docs.py``).
"""

from __future__ import annotations

from failover_core.step import ReasonCode


class TransitionCode(ReasonCode):
    """Why a node changed its role (the code of the transition and of the step's reason)."""

    PEER_ACTIVE = "peer_active", "starting -> passive: the peer is active (a restarted node comes back passive)"
    STARTUP_PEER_SILENT = "startup_peer_silent", "starting -> active: no heartbeat within `startup_grace_period`"
    COLD_START_CANDIDATE = "cold_start_candidate", (
        "starting/passive -> active: both idle; the node whose containers already run, else the first server listed")
    PEER_HEARTBEAT_LOST = "peer_heartbeat_lost", "passive -> active: no heartbeat for `heartbeat_timeout`"
    HIGHER_TERM = "higher_term", "active/handing_over -> passive: an active peer has a higher term"
    SPLIT_BRAIN_TIEBREAK = "split_brain_tiebreak", (
        "active -> passive: both active in the same term; the first server listed keeps it")
    CONTAINER_FAILED = "container_failed", (
        "active -> handing_over: a container is down past its grace; stop the containers, ask the peer")
    FAILBACK = "failback", "active -> handing_over: failback policy, the preferred peer has been up for the hold-down"
    HANDED_OVER = "handed_over", "handing_over -> passive: the peer confirmed the hand-over (a signed answer)"
    HANDOVER_FAILED = "handover_failed", (
        "handing_over -> active: the hand-over was refused or not confirmed; start our containers again")
    STOP_FAILED = "stop_failed", "handing_over -> active: stopping our containers failed; keep them"
    HANDOVER_ACCEPTED = "handover_accepted", "passive/starting -> active: the peer handed over to us"
    SHUTDOWN = "shutdown", "active -> handing_over: the agent is shutting down and the peer can take over"
    SELF_FENCED = "self_fenced", (
        "active/handing_over -> passive (standard mode): no acknowledged contact with the peer or the witness "
        "for the lease (`heartbeat_timeout` - fencing margin) since a heartbeat was sent: kill the containers "
        "before anyone may take over")
    WITNESS_CONFIRMED = "witness_confirmed", (
        "passive/starting -> active (standard mode): the peer is silent for `heartbeat_timeout` and the witness, asked "
        "after our claim, says it cannot be running (down there, or it runs nothing)")


class AlertCode(ReasonCode):
    """What a node reports without changing its role (`GET /status` `alerts`, a WARNING log line)."""

    DOCKER_UNREACHABLE = "docker_unreachable", (
        "our Docker daemon does not answer; the containers may still run, so no failover on that alone")
    DOCKER_BACK = "docker_back", "our Docker daemon answers again"
    PEER_LOST = "peer_lost", "the peer went silent (active: we keep the containers; idle: we cannot take over)"
    PEER_LEAVING = "peer_leaving", (
        "the peer's agent is shutting down (its last heartbeat said so): it cannot take over until it is back")
    PEER_BACK = "peer_back", "heartbeats from the peer again after it was reported lost"
    CONTAINER_FAILED_NO_PEER = "container_failed_no_peer", (
        "a container is down past its grace and the peer cannot take over: restart it here")
    STRAY_CONTAINERS = "stray_containers", "managed containers run here while the peer is active: stop them"
    START_FAILED = "start_failed", "starting the containers failed"
    STOP_FAILED_PASSIVE = "stop_failed_passive", "stopping the containers failed (outside a hand-over)"
    STALLED = "stalled", "the agent was frozen or starved; no takeover on silence until the backlog is read"
    TERM_NOT_PERSISTED = "term_not_persisted", "the new term could not be written to `state_dir`"
    WITNESS_UNREACHABLE = "witness_unreachable", (
        "standard mode: the witness does not answer; alone this changes nothing (the peer's acks keep our lease)")
    WITNESS_BACK = "witness_back", "standard mode: the witness answers again"
    WITNESS_TIMING = "witness_timing", (
        "standard mode: the witness calls a node down sooner than our `heartbeat_timeout`: its word is not used "
        "(set its group's timeout to our heartbeat_timeout)")
    TAKEOVER_HELD = "takeover_held", (
        "standard mode: the peer is silent but the table says not to start (the witness cannot confirm it is gone)")
    KEEPER_UNREACHABLE = "keeper_unreachable", (
        "standard mode with `fence_keeper` a socket: no fence keeper accepts us (not yet started, killed, "
        "restarting, or serving another agent). Until one does we are not eligible: no cold start, no takeover, "
        "no hand-over to us; an active keeps its containers and still kills them itself when its lease ends")
    KEEPER_BACK = "keeper_back", "standard mode: the fence keeper accepted us again; it holds our lease anew"


class NoteCode(ReasonCode):
    """Standard mode's steps that change no role (logged as ``note:`` lines with the table's code)."""

    CLAIMING = "claiming", (
        "the table says start: we tell the witness we are about to run the containers, and start only if its "
        "answer to that claim still says the peer cannot be running them")
    CLAIM_WITHDRAWN = "claim_withdrawn", (
        "the witness's answer to our claim no longer allows a start (or none came within `heartbeat_timeout`)")

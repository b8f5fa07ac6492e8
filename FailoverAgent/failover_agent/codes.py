"""The failover agent's reason codes: every code it logs, records, publishes or counts, one enum each.

- ``DecisionCode``   what a cycle decided (``get_status()["decision"]["code"]``): every cell of the
                     documented tables (``failover_core.tables``), the guards of ``failover_core.decide``
                     and the agent's own outcomes of a cycle (platform unreadable, verification raced or
                     unanswered). A test checks every table cell and guard code is a member.
- ``TransitionCode`` what a service transition carries (``last_transition``, the notify hook's CODE):
                     the table cell that started or stopped the service, or ``observed``.
- ``AlertCode``      the health alerts the agent publishes (the alert key and context are in ``alerts``).
- ``DropCode``       why a heartbeat, witness ack or verdict was dropped (``get_status()["rejected"]``).

The values are stable: tests, docs and operators' scripts read them.
"""

from __future__ import annotations

from failover_core.step import ReasonCode


class DecisionCode(ReasonCode):
    """What one cycle decided (the table cell, a guard, or why it could not decide)."""

    # the primary's table (standard mode)
    PRIMARY_SECONDARY_UP_WITNESS_UP = "primary.secondary_up.witness_up", "start: secondary and witness are reachable"
    PRIMARY_SECONDARY_UP_WITNESS_DOWN = ("primary.secondary_up.witness_down",
                                         "start: secondary is reachable (witness is not)")
    PRIMARY_SECONDARY_DOWN_WITNESS_UP = ("primary.secondary_down.witness_up",
                                         "start: witness is reachable (secondary is not)")
    PRIMARY_SECONDARY_DOWN_WITNESS_DOWN = ("primary.secondary_down.witness_down",
                                           "stop: neither peer nor witness reachable, the primary fences itself")
    # the secondary's table (standard mode) and the witness's verdict
    SECONDARY_PRIMARY_UP_WITNESS_UP = "secondary.primary_up.witness_up", "stop: the primary is active"
    SECONDARY_PRIMARY_UP_WITNESS_DOWN = ("secondary.primary_up.witness_down",
                                         "stop: the primary is active (witness unreachable)")
    SECONDARY_PRIMARY_DOWN_WITNESS_UP = ("secondary.primary_down.witness_up",
                                         "verify: the primary is silent, the witness is asked")
    SECONDARY_PRIMARY_DOWN_WITNESS_DOWN = ("secondary.primary_down.witness_down",
                                           "stop: primary and witness unreachable, this node may be the isolated one")
    SECONDARY_VERIFIED_PRIMARY_DOWN = ("secondary.verified.primary_down",
                                       "start: the witness confirms the primary is down")
    SECONDARY_VERIFIED_PRIMARY_ALIVE = ("secondary.verified.primary_alive",
                                        "stop: the witness still hears the primary (only our link is down)")
    # simple mode
    SIMPLE_PRIMARY_ALWAYS = "simple_primary.always", "start: the simple primary always runs the service"
    SIMPLE_SECONDARY_PRIMARY_UP = "simple_secondary.primary_up", "stop: the primary is active"
    SIMPLE_SECONDARY_PRIMARY_DOWN = "simple_secondary.primary_down", "start: the primary is silent"
    # the guards of failover_core.decide (hold: keep what runs now)
    PRIMARY_STARTUP = "primary.startup", "hold: not heard from the secondary or witness yet since start-up"
    SECONDARY_STARTUP = "secondary.startup", "hold: not heard from the primary or witness yet since start-up"
    SIMPLE_PRIMARY_STARTUP = "simple_primary.startup", "hold: not heard from the secondary yet since start-up"
    SIMPLE_SECONDARY_STARTUP = "simple_secondary.startup", "hold: not heard from the primary yet since start-up"
    PRIMARY_REJOIN = ("primary.rejoin", "hold: back from isolation, the witness is heard but not the secondary, and "
                                        "the witness says (or cannot rule out) that the secondary runs the service")
    PRIMARY_HANDOVER = "primary.handover", "hold: the secondary still runs the service, waiting for it to release"
    SIMPLE_PRIMARY_HANDOVER = ("simple_primary.handover",
                               "hold: the secondary still runs the service, waiting for it to release")
    SECONDARY_FAILBACK_HOLD = "secondary.failback_hold", "hold: the primary is back for less than failback_delay"
    SIMPLE_SECONDARY_FAILBACK_HOLD = ("simple_secondary.failback_hold",
                                      "hold: the primary is back for less than failback_delay")
    # the agent's own outcomes of a cycle
    SECONDARY_VERIFY_RACED = ("secondary.verify_raced",
                              "hold: the primary was heard while the witness was asked; the cycle runs again at once")
    SECONDARY_VERIFY_FAILED = "secondary.verify_failed", "hold: the witness did not answer the verification"
    SECONDARY_CLAIM_FAILED = ("secondary.claim_failed",
                              "hold: the witness did not acknowledge our claim to the service; not starting")
    LOCAL_PLATFORM_UNAVAILABLE = ("local.platform_unavailable",
                                  "hold: the managed agents' state cannot be read from platform.control")
    LOCAL_MANAGED_MISSING = "local.managed_missing", "a managed agent to start is not installed on this platform"
    # a peer whose agent stopped leaving the service running (its last heartbeat: leaving, active)
    PRIMARY_PEER_LEFT_RUNNING = ("primary.peer_left_running", "hold: the secondary's agent stopped and left the "
                                 "service running there: not starting beside it until that agent is back")
    SECONDARY_PEER_LEFT_RUNNING = ("secondary.peer_left_running", "hold: the primary's agent stopped and left the "
                                   "service running there: not starting beside it until that agent is back")
    # leaving: the agent stops cleanly (its onstop)
    PEER_LEAVING = "peer.leaving", "the peer's agent is stopping: its last heartbeat said leaving (and whether the " \
                                   "service still runs there)"
    LEAVE_HANDOVER = ("leave.handover", "stop: the agent is stopping and the peer can take over: stop the service "
                                        "here (within stop_bound), then tell the witness and the peer (leaving)")
    LEAVE_PASSIVE = ("leave.passive", "hold: the agent is stopping and the service does not run here: tell the "
                                      "witness and the peer (leaving); the active peer changes nothing")
    LEAVE_KEEP_RUNNING = ("leave.keep_running", "hold: the agent is stopping but no peer can take over (peer or "
                                                "witness not reachable, or the peer is leaving too): the service "
                                                "keeps running here, unguarded until the agent is back")
    LEAVE_STOP_FAILED = ("leave.stop_failed", "the hand-over's stop left the service running here (not stopped "
                                              "within stop_bound): the peer is told it still runs")
    LEAVE_PLATFORM_UNAVAILABLE = ("leave.platform_unavailable", "hold: the agent is stopping and cannot read the "
                                                                "managed agents' state: it stops nothing and tells "
                                                                "the peer the service may run here")


class TransitionCode(ReasonCode):
    """What a service transition (UNKNOWN/RUNNING/STOPPED) carries: the cell that moved it, or observed."""

    PRIMARY_SECONDARY_UP_WITNESS_UP = DecisionCode.PRIMARY_SECONDARY_UP_WITNESS_UP.value, "started by that cell"
    PRIMARY_SECONDARY_UP_WITNESS_DOWN = DecisionCode.PRIMARY_SECONDARY_UP_WITNESS_DOWN.value, "started by that cell"
    PRIMARY_SECONDARY_DOWN_WITNESS_UP = DecisionCode.PRIMARY_SECONDARY_DOWN_WITNESS_UP.value, "started by that cell"
    PRIMARY_SECONDARY_DOWN_WITNESS_DOWN = (DecisionCode.PRIMARY_SECONDARY_DOWN_WITNESS_DOWN.value,
                                           "stopped: the isolated primary fenced itself")
    SECONDARY_PRIMARY_UP_WITNESS_UP = DecisionCode.SECONDARY_PRIMARY_UP_WITNESS_UP.value, "stopped: failback"
    SECONDARY_PRIMARY_UP_WITNESS_DOWN = DecisionCode.SECONDARY_PRIMARY_UP_WITNESS_DOWN.value, "stopped: failback"
    SECONDARY_PRIMARY_DOWN_WITNESS_DOWN = (DecisionCode.SECONDARY_PRIMARY_DOWN_WITNESS_DOWN.value,
                                           "stopped: the isolated secondary")
    SECONDARY_VERIFIED_PRIMARY_DOWN = DecisionCode.SECONDARY_VERIFIED_PRIMARY_DOWN.value, "started: verified takeover"
    SECONDARY_VERIFIED_PRIMARY_ALIVE = (DecisionCode.SECONDARY_VERIFIED_PRIMARY_ALIVE.value,
                                        "stopped: the witness still hears the primary")
    SIMPLE_PRIMARY_ALWAYS = DecisionCode.SIMPLE_PRIMARY_ALWAYS.value, "started by the simple primary"
    SIMPLE_SECONDARY_PRIMARY_UP = DecisionCode.SIMPLE_SECONDARY_PRIMARY_UP.value, "stopped: failback"
    SIMPLE_SECONDARY_PRIMARY_DOWN = DecisionCode.SIMPLE_SECONDARY_PRIMARY_DOWN.value, "started: takeover"
    LEAVE_HANDOVER = DecisionCode.LEAVE_HANDOVER.value, "stopped: the agent is stopping, handed over to the peer"
    OBSERVED = "observed", "found so by a read of platform.control, not changed by the agent (operator, crash)"


class AlertCode(ReasonCode):
    """The health alerts the agent publishes on its own platform (``alerts/...``)."""

    SERVICE_TRANSITION = ("service_transition",
                          "the service started or stopped here (key 'failover <agent_id>', context from alerts)")
    CONFIG_ERROR = "config_error", "the agent's config is invalid, it manages nothing (key 'failover config')"
    HEARTBEAT_AUTH_OFF = ("heartbeat_auth_off", "no heartbeat_secret: heartbeats and witness messages are not "
                          "authenticated; the agent runs (key 'failover security', sent at start)")


class DropCode(ReasonCode):
    """Why a heartbeat, a witness ack or a witness verdict was dropped (it changed nothing)."""

    BAD_MAC = "bad_mac", "the HMAC does not match the shared heartbeat_secret (or one side has none)"
    REPLAYED = "replayed", "a (boot, seq) or nonce already seen"
    STALE = "stale", "the sender's timestamp is too far from ours"
    WRONG_SENDER = "wrong_sender", "a heartbeat on the peer's topic from someone else"
    MALFORMED = "malformed", "not the message shape, or it answers another question"


__all__ = ["AlertCode", "DecisionCode", "DropCode", "TransitionCode"]

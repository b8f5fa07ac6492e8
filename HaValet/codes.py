"""HaValet's reason codes: why the supervisor changed a process's state, and why it did something else.

Every code the valet logs, hands to notify (``FAILOVER_CODE``) or keeps in the status file comes
from here, through ``HaValet.supervisor``. docs/valet.md's code tables are generated from these enums.
"""

from __future__ import annotations

from failover_core.step import ReasonCode


class TransitionCode(ReasonCode):
    """Codes of state transitions (the log's transition lines, notify's FAILOVER_CODE, the status file)."""

    FOUND_UP = "found_up", "first round: exactly one instance up, active there (a running stand-by is kept)"
    STARTING = "starting", "no instance up: starting on the best host not tried yet"
    STARTED = "started", "the started instance tested up within start_grace"
    MANY_UP = "many_up", "several instances up: keep the best runtime priority, stop the others"
    CONFLICT_RESOLVED = "conflict_resolved", "after a conflict exactly one instance is up"
    ALL_HOSTS_FAILED = "all_hosts_failed", "every host failed to start: back off (doubling, capped)"
    CAME_UP = "came_up", "an instance came up by itself while backing off"
    GAVE_UP = "gave_up", "max_failures failures within failure_window: stop restarting, keep testing"
    RECOVERED = "recovered", "after giving up, an instance came up by itself: failure history cleared"
    UP = "up", "exactly one instance up (any other way into ACTIVE)"


class NoteCode(ReasonCode):
    """Codes of decisions that change no state (logged, and handed to the driver's on_note)."""

    START_RETURNED = "start_returned", "a start command returned 0: testing it until it is up or start_grace ends"
    START_FAILED = "start_failed", "a start failed (non-zero, timed out, or never tested up): its host is stopped"
    TRYING_NEXT_HOST = "trying_next_host", "a start failed and another host is left: starting there at once"
    STOPPED = "stopped", "a stop command returned 0"
    STOP_FAILED = "stop_failed", "a stop command failed: the next round that finds the instance up retries it"
    ACTIVE_MOVED = "active_moved", "the one instance up is now on another host (still ACTIVE)"
    STALE_RESULT = "stale_result", "a command result for a round or start that is over: ignored"
    RETEST = "retest", "a test timed out while the valet was stalled (its clock jumped): run again before deciding"


class PairCode(ReasonCode):
    """Per-host mode (``HaValet.arbiter``): transitions of one process on this host. Decisions taken by
    failover_core's tables carry the table's code (``primary.secondary_down.witness_up``, ...) instead."""

    STARTING = "pair.starting", "the tables say this host runs the process: starting it here"
    STARTED = "pair.started", "the started instance tested up within start_grace"
    FOUND_UP = "pair.found_up", "the local instance tests up and this host may run it"
    STOPPING = "pair.stopping", "this host must not run the process (the tables, a failed start, or fencing)"
    STOPPED = "pair.stopped", "the local instance is stopped"
    WENT_DOWN = "pair.went_down", "the local active instance tested down"
    START_FAILED = "pair.start_failed", "a start failed here: not eligible until the retry delay ends"
    RETRY = "pair.retry", "the retry delay after a failed start ended: eligible again"
    FENCED = "pair.fenced", ("no acknowledged contact with the peer or the witness within the lease "
                             "(heartbeat_timeout - fencing margin): stopping")
    PEER_CANNOT_RUN = "pair.peer_cannot_run", "the preferred peer is heard and cannot run it (failed start)"
    PEER_LEFT = "pair.peer_left", "the peer valet said goodbye and runs nothing: taking over at once"
    HANDING_OVER = "pair.handing_over", "this valet is stopping cleanly: stopping the process for the peer"
    LEAVING = "pair.leaving", "this valet is stopping cleanly"


class PairNoteCode(ReasonCode):
    """Per-host mode: decisions that change no state."""

    HOLD = "pair.hold", "keep what runs now (a guard of failover_core.decide, or waiting to hear the peer)"
    NO_CONTACT = "pair.no_contact", "the tables say start, but no acknowledged contact yet: not starting"
    RANKING_MISMATCH = "pair.ranking_mismatch", "the peer ranks the hosts differently: changing nothing"
    KEEP_ON_LEAVE = "pair.keep_on_leave", "stopping cleanly with no peer able to take over: the process keeps running"
    STALE_RESULT = "pair.stale_result", ("a command result for an attempt that is over, or a test launched before "
                                         "a start or stop: ignored")
    RETEST = "pair.retest", "a test timed out while the valet was stalled (its clock jumped): run again before deciding"
    FENCE_HOLD = "pair.fence_hold", ("back from a fence: not starting until the peer has answered a heartbeat sent "
                                     "after it (at most two heartbeat intervals after the lease is back)")

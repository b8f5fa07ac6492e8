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

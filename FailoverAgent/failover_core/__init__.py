"""failover_core: the sans-I/O heart of the toolkit.

It reads no clock, opens no socket and runs no process. Drivers feed it facts and a monotonic
``now``; it answers with decisions and their reasons. Where to look:

- ``liveness``    PeerLiveness: is a peer up at ``now`` (deadline = last heartbeat + timeout)
- ``tables``      the documented behaviour tables of the VOLTTRON failover agent, as data
- ``decide``      decide(role, facts, now) -> Decision(action, code, reason): guards, then the table
- ``transitions`` Transition records and StateMachine, the one choke point for state changes
- ``step``        the shape of one decision cycle shared by the four systems: Step (actions,
                  transitions, reason, notes), Reason, ReasonCode (the base of every code enum), Deadlines
- ``hooks``       the notify-hook interface and the in-order, exactly-once delivery queue
- ``heartbeat_auth`` HMAC signing and replay rejection for heartbeats
- ``request_auth`` signed HTTP requests and nonce-bound signed answers (DockerFailover, the witness)
- ``fencing``     FencingTiming (down_after = timeout + margin) and ContactLease (the active's right to run)
- ``witness_book`` what a witness heard: UP/DOWN/UNKNOWN per node of a group, last claims
- ``witness_protocol`` the standalone witness's messages and checks, both sides (NodeSide, WitnessDesk)
- ``config``      validate a mapping into a typed (pydantic) model with an error naming file/key/value
- ``clock``       the Clock protocol drivers implement and FakeClock for tests
- ``shell``       the only I/O in this package, used by the drivers: ``carry_out`` (log a Step,
                  notify its transitions, dispatch its actions), the real clock, config files, the
                  CLI ``--check`` convention and the subprocess notify-hook runner
"""

from typing import TYPE_CHECKING, Any

from failover_core.clock import Clock, FakeClock
from failover_core.decide import Decision, Facts, Policy, decide
from failover_core.errors import FailoverCoreError, LocalUsageError, RemoteInputError
from failover_core.hooks import HookQueue, HookResult, HookRunner
from failover_core.liveness import Liveness, PeerLiveness
from failover_core.shell.clock import MonotonicClock
from failover_core.step import Deadlines, Reason, ReasonCode, Step, StepBuilder
from failover_core.tables import Action, Role, Verdict
from failover_core.transitions import IllegalTransition, StateMachine, Transition

if TYPE_CHECKING:
    from failover_core.config import ConfigError, StrictModel, parse_config_text, validate_config
    from failover_core.heartbeat_auth import HeartbeatSigner, ReplayWindow
    from failover_core.shell.config_file import load_config_file

# Imported on first use (PEP 562): ``failover_core.config`` pulls in pydantic and ``heartbeat_auth`` hashlib (its
# libcrypto: 3.5 MiB resident), which a run-time process may not need (VrrpFailover's daemon validates in its CLI,
# then runs without either: docs/vrrp.md "Measured"); importing any other submodule must not load them.
_LAZY = {"ConfigError": "failover_core.config", "StrictModel": "failover_core.config",
         "parse_config_text": "failover_core.config", "validate_config": "failover_core.config",
         "load_config_file": "failover_core.shell.config_file",
         "HeartbeatSigner": "failover_core.heartbeat_auth", "ReplayWindow": "failover_core.heartbeat_auth"}

__all__ = [
    "Action",
    "Clock",
    "ConfigError",
    "Deadlines",
    "Decision",
    "Facts",
    "FailoverCoreError",
    "FakeClock",
    "HeartbeatSigner",
    "HookQueue",
    "HookResult",
    "HookRunner",
    "IllegalTransition",
    "Liveness",
    "LocalUsageError",
    "MonotonicClock",
    "PeerLiveness",
    "Policy",
    "Reason",
    "ReasonCode",
    "RemoteInputError",
    "ReplayWindow",
    "Role",
    "StateMachine",
    "Step",
    "StepBuilder",
    "StrictModel",
    "Transition",
    "Verdict",
    "decide",
    "load_config_file",
    "parse_config_text",
    "validate_config",
]


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'failover_core' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value

"""What goes into DockerFailover's pair decider and what comes out: roles, events, actions. Data only.

Every event is a frozen, slotted, keyword-only dataclass carrying the monotonic ``now`` at which
the driver saw it; ``PairNode.handle(event)`` returns a ``failover_core.step.Step`` of the actions
below (the role changes travel in ``Step.transitions``, their reason in ``Step.reason``).
``PeerHeartbeat`` is not an event but a value: what the peer said about itself (the wire parses it,
``HeartbeatReceived`` brings it in, the decider keeps the last one as its view of the peer).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from DockerFailover.codes import AlertCode
from DockerFailover.containers import ContainerObservation
from failover_core.witness_protocol import WitnessAck


class Role(enum.Enum):
    STARTING = "starting"
    PASSIVE = "passive"
    ACTIVE = "active"
    HANDING_OVER = "handing_over"


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerHeartbeat:
    """What the configured peer said about itself in an authenticated heartbeat."""

    sender: str
    term: int
    role: Role
    eligible: bool  # its Docker daemon answers and no managed container is missing there
    containers_up: bool  # all managed containers are up there
    leaving: bool = False  # its agent is shutting down: it will not take over (absent in older agents' heartbeats)


# ---------------------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True, kw_only=True)
class Tick:
    """Time passed: the driver's loop woke up (a deadline, or after carrying out a step)."""

    now: float


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatReceived:
    """An authenticated, in-order heartbeat from the configured peer: its POST (``posted``: the step carries our
    ``HeartbeatAnswer``), or its answer to ours (then ``acked_seq`` is our heartbeat it answered, in standard
    mode: the news and the lease renewal in one event)."""

    now: float
    heartbeat: PeerHeartbeat
    acked_seq: int | None = None
    posted: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainersObserved:
    """``docker inspect`` of the managed containers answered."""

    now: float
    observations: tuple[ContainerObservation, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class DockerUnreachable:
    """``docker inspect`` failed: our Docker daemon does not answer."""

    now: float
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainersStarted:
    """A ``StartContainers`` finished."""

    now: float
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainersStopped:
    """A ``StopContainers`` finished."""

    now: float
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class HandOverAnswered:
    """The peer answered our ``RequestHandOver`` (or did not: ``ambiguous`` after a timeout)."""

    now: float
    accepted: bool
    term: int | None = None
    detail: str = ""
    ambiguous: bool = False  # no answer (timeout): the peer may or may not have taken over


@dataclass(frozen=True, slots=True, kw_only=True)
class HandOverRequested:
    """The active peer asks us to take over (POST /become_primary); it has stopped its containers."""

    now: float
    sender: str
    term: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ShutdownRequested:
    """The agent is asked to exit (SIGTERM/SIGINT)."""

    now: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Resumed:
    """The driver was frozen or starved for ``stalled_for`` s (SIGSTOP, swap, a stuck thread)."""

    now: float
    stalled_for: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TermNotPersisted:
    """A ``PersistTerm`` could not be written (the state dir was writable at start)."""

    now: float
    term: int
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerAcknowledged:
    """The peer answered our heartbeat ``seq`` with a signed 200: it has it (renews our ContactLease). Fed alone
    only when the answer's news was older than news we already have (else ``HeartbeatReceived(acked_seq=)``)."""

    now: float
    seq: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerAlive:
    """An authenticated heartbeat POST from the peer that is not news (we already hold news it sent later, e.g.
    its answer to ours): it is alive, what it said is superseded. Answered like any POST (``HeartbeatAnswer``)."""

    now: float


@dataclass(frozen=True, slots=True, kw_only=True)
class WitnessAnswered:
    """Standard mode: the witness acknowledged our heartbeat ``ack.seq`` (a checked, signed ``WitnessAck``)."""

    now: float
    ack: WitnessAck


@dataclass(frozen=True, slots=True, kw_only=True)
class WitnessUnreachable:
    """Standard mode: our heartbeat ``seq`` to the witness got no good answer."""

    now: float
    seq: int
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class KeeperConnected:
    """Standard mode with a listening fence keeper (``fence_keeper`` = a socket path): it accepted our ``guard``
    (what it holds now is nothing: the decider tells it again)."""

    now: float
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class KeeperLost:
    """Standard mode with a listening fence keeper: we could not connect to it, it refused us, or its end of the
    connection closed (the keeper's container was killed or restarted)."""

    now: float
    detail: str


Event = (Tick | HeartbeatReceived | PeerAcknowledged | PeerAlive | WitnessAnswered | WitnessUnreachable
         | ContainersObserved | DockerUnreachable | ContainersStarted | ContainersStopped
         | HandOverAnswered | HandOverRequested | ShutdownRequested | Resumed | TermNotPersisted
         | KeeperConnected | KeeperLost)

# ---------------------------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True, kw_only=True)
class PersistTerm:
    """Write the new term to disk (before the actions after it)."""

    term: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StartContainers:
    """Start the managed containers; they run under ``term`` (written to ``term_file`` first, if configured)."""

    names: tuple[str, ...]
    reason: str
    term: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class StopContainers:
    """Stop the managed containers: gracefully within ``timeout``, or ``kill`` at once (fencing)."""

    names: tuple[str, ...]
    timeout: float
    reason: str
    kill: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestHandOver:
    """POST /become_primary to the peer; its answer comes back as ``HandOverAnswered``."""

    term: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SendHeartbeat:
    """To the peer (``fields``, which carry ``seq``) and, in standard mode, to the witness (``seq``, the term in
    ``fields``, and ``claims_active``: we run, or are about to run, the containers)."""

    fields: dict[str, Any]
    seq: int = 0
    claims_active: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldFence:
    """Standard mode: tell the fence keeper until when (monotonic) the containers may run here; ``None``:
    nothing to guard (it kills nothing)."""

    until: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """Report something without a role change (``GET /status`` alerts, a WARNING line)."""

    code: AlertCode
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HandOverAnswer:
    """What we answer to the peer's POST /become_primary (``HandOverRequested``)."""

    accepted: bool
    term: int
    detail: str
    asked_by: str
    asked_term: int

    def wire_fields(self) -> dict[str, Any]:
        """The answer's body on the wire."""
        return {"accepted": self.accepted, "term": self.term, "detail": self.detail}


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatAnswer:
    """What we answer to the peer's POST /heartbeat (``HeartbeatReceived(posted=True)``, ``PeerAlive``): our news
    under the next seq of our heartbeats, or ``{}`` (no news, it renews nothing) before our Docker answered once."""

    fields: dict[str, Any]


Action = (PersistTerm | StartContainers | StopContainers | RequestHandOver | SendHeartbeat | Alert | HandOverAnswer
          | HeartbeatAnswer | HoldFence)

"""What the failover agent's decider is fed (events) and what it asks the driver to do (actions).

All frozen, keyword-only and without I/O: the driver (``agent``) turns VIP pubsub, RPC and
``platform.control`` answers into events, and carries the actions of each ``Step`` out through
``failover_core.shell.carry_out``. A handler may answer with the next event (the result of its I/O):
``ManagedRead`` after ``StartService``/``StopService``/``StopManaged``, ``WitnessAnswered`` after ``AskWitness``.
"""

from __future__ import annotations

from dataclasses import dataclass

from failover_agent.codes import AlertCode
from failover_agent.wire import WitnessAck, WitnessAnswer
from failover_core.errors import LocalUsageError
from failover_core.witness_book import WitnessView

LINKS = ("peer", "witness")


@dataclass(frozen=True, slots=True)
class AgentState:
    """One managed agent as ``platform.control`` reported it."""

    identity: str
    uuid: str | None  # None: not installed here
    running: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ManagedView:
    """The managed agents at one read: their states, and how the alerts name them."""

    states: tuple[AgentState, ...]
    names: str

    @property
    def active(self) -> bool:
        return any(s.running for s in self.states)

    @property
    def startable(self) -> tuple[str, ...]:
        return tuple(s.identity for s in self.states if s.uuid and not s.running)

    @property
    def stoppable(self) -> tuple[str, ...]:
        return tuple(s.identity for s in self.states if s.uuid and s.running)

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(s.identity for s in self.states if s.uuid is None)


# -- events ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatSent:
    """Our heartbeat ``seq`` goes out on ``link`` ("peer" or "witness") now: the start of the lease an
    acknowledgement of it would give (``failover_core.fencing.ContactLease``)."""

    now: float
    link: str
    seq: int

    def __post_init__(self) -> None:
        if self.link not in LINKS:
            raise LocalUsageError(f"HeartbeatSent.link must be one of {LINKS}, got {self.link!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatReceived:
    """An authenticated heartbeat of the peer arrived; ``active``: the peer says it runs the service;
    ``term``: the peer's term; ``echo``: the seq of OUR newest heartbeat it received (None: none of this boot);
    ``leaving``: the peer's agent is stopping (its last heartbeat until it is back)."""

    now: float
    active: bool
    term: int = 0
    echo: int | None = None
    leaving: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class WitnessAcked:
    """The witness acknowledged our heartbeat ``seq`` with a valid signed ack, carrying the highest term it
    heard in our group and its view of our peer (None: it has not heard of it)."""

    now: float
    seq: int | None = None
    term: int = 0
    peer: WitnessView | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InputRejected:
    """A heartbeat (``source`` "peer"), a witness ack or verdict (``source`` "witness") was dropped."""

    source: str
    reason: str  # a DropCode value (RemoteInputError.reason)
    detail: str = ""

    def __post_init__(self) -> None:
        if self.source not in ("peer", "witness"):
            raise LocalUsageError(f"InputRejected.source must be 'peer' or 'witness', got {self.source!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class CycleStarted:
    """The loop woke and read the managed agents: decide now."""

    now: float
    managed: ManagedView


@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformUnavailable:
    """The loop woke but ``platform.control`` could not be read."""

    now: float
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WitnessAnswered:
    """The answer to ``AskWitness``: a checked verdict, or None (unreachable, or the answer was dropped)."""

    now: float
    answer: WitnessAnswer | None
    dropped: InputRejected | None = None  # the answer that came back but was dropped, and why


@dataclass(frozen=True, slots=True, kw_only=True)
class WitnessClaimed:
    """The answer to ``ClaimAtWitness``: the witness's checked ack of our claim (None: not acknowledged)."""

    now: float
    ack: WitnessAck | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ManagedRead:
    """After ``StartService``/``StopService``: what was started or stopped, and the state read back."""

    now: float
    acted: tuple[str, ...]
    managed: ManagedView


@dataclass(frozen=True, slots=True, kw_only=True)
class Leave:
    """The agent is stopping cleanly (its ``onstop``; the loop and the senders are ended): what runs here,
    read now (None: ``platform.control`` could not be read)."""

    now: float
    managed: ManagedView | None


Event = HeartbeatSent | HeartbeatReceived | WitnessAcked | InputRejected | CycleStarted | PlatformUnavailable \
    | WitnessAnswered | WitnessClaimed | ManagedRead | Leave


# -- actions -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StartService:
    """Start every installed managed agent that is not running; answer with ``ManagedRead``."""


@dataclass(frozen=True, slots=True)
class ClaimAtWitness:
    """Before a verified takeover: send the witness, now, a heartbeat that says we run the service (and our new
    term), and wait for its ack; answer with ``WitnessClaimed``. The witness then tells the primary, should
    it come back, that we run the service before we start it (its rejoin guard)."""


@dataclass(frozen=True, slots=True)
class StopService:
    """Stop every managed agent that runs; answer with ``ManagedRead``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StopManaged:
    """On leaving: stop every managed agent that runs, bounded by ``within`` seconds (``stop_bound``), then read
    them again; answer with ``ManagedRead``."""

    within: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SendLeaving:
    """On leaving: send our last heartbeat, flagged ``leaving``, saying ``active`` (the service still runs
    here), to the witness (first: it must know before the peer asks it) and then to the peer."""

    active: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class AskWitness:
    """Ask the witness whether it still hears ``subject``; answer with ``WitnessAnswered``."""

    subject: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RaiseAlert:
    """Publish a health alert (``vip.health.send_alert``) and set the agent's health status."""

    code: AlertCode
    key: str
    context: str
    healthy: bool  # the status set beside the alert: GOOD after a transition, BAD for a config error


@dataclass(frozen=True, slots=True)
class SendHeartbeatNow:
    """Tell the peer at once what we run now (do not wait for the next heartbeat period)."""


@dataclass(frozen=True, slots=True)
class RunCycleNow:
    """Wake the loop: a fact changed, decide again at once."""


AgentAction = ClaimAtWitness | StartService | StopService | AskWitness | RaiseAlert | SendHeartbeatNow | RunCycleNow \
    | StopManaged | SendLeaving

"""The events the deciders take and the actions they return: ``HaValet.supervisor.ProcessSupervisor``
(single-valet mode) and ``HaValet.arbiter.PairArbiter`` (per-host mode: the local command results plus
what the peer valet and the witness said).

Frozen values with no logic. Events carry the monotonic ``now``; a command's result comes back with
the ``tag`` of the action that started it, so a late result of a finished round is recognised.
"""

from __future__ import annotations

from dataclasses import dataclass

# ---------------------------------------------------------------------- events (the driver feeds these)

@dataclass(frozen=True, slots=True, kw_only=True)
class Tick:
    """The driver's timer: due work (a round, a verification poll, the end of start_grace) runs now."""

    now: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TestDone:
    """A test command finished on ``host`` (rc None: it could not run or timed out)."""

    __test__ = False  # not a pytest test class

    host: str
    rc: int | None
    tag: str  # the tag of the RunTest it answers
    now: float
    stalled: bool = False  # rc None because its timeout came due while the valet itself did not run (re-run it)


@dataclass(frozen=True, slots=True, kw_only=True)
class StartDone:
    """A start command finished on ``host``; ``detail`` says how when it failed."""

    host: str
    rc: int | None
    tag: str  # the tag of the RunStart it answers
    now: float
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class StopDone:
    """A stop command finished on ``host``; ``detail`` says how when it failed."""

    host: str
    rc: int | None
    now: float
    detail: str = ""


Event = Tick | TestDone | StartDone | StopDone


# ---------------------------------------------------------------------- per-host mode (HaValet.arbiter)

@dataclass(frozen=True, slots=True, kw_only=True)
class PeerHeard:
    """An authenticated message from the peer valet about this process: its heartbeat, or its signed answer to
    ours (then ``acked_seq`` is the seq of our heartbeat it answers: acknowledged contact)."""

    peer: str
    now: float
    term: int
    running: bool  # its instance tested up (or it is starting it)
    eligible: bool  # it may run the process now (no failed start; with a witness: its lease is valid)
    priority: int  # runtime priority of its instance (0: down)
    ranking: tuple[str, ...]  # its hosts of the process, best first (must match ours)
    leaving: bool = False  # its valet is stopping cleanly (goodbye)
    acked_seq: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WitnessAnswered:
    """The witness acknowledged our heartbeat ``seq`` and said what it knows of the peer."""

    seq: int
    now: float
    peer_state: str  # "up" | "down" | "unknown" (failover_core.liveness.Liveness values)
    peer_may_be_active: bool | None  # WitnessView.may_be_active of the peer
    highest_term: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Leave:
    """The valet is stopping cleanly: hand the process over (or keep it) and say goodbye."""

    now: float


PairEvent = Tick | TestDone | StartDone | StopDone | PeerHeard | WitnessAnswered | Leave


# ---------------------------------------------------------------------- actions (the driver runs these)

@dataclass(frozen=True, slots=True, kw_only=True)
class RunTest:
    host: str
    tag: str  # "round:N" or "verify:N": hand it back with the result


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStart:
    host: str
    tag: str
    term: int = 0  # per-host mode: the term this start claims (HAVALET_TERM in the command's environment)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStop:
    host: str


Action = RunTest | RunStart | RunStop


@dataclass(frozen=True, slots=True, kw_only=True)
class SendHeartbeat:
    """Tell the peer valet (and the witness, when there is one) our state; ``seq`` grows with each."""

    seq: int
    term: int
    running: bool
    eligible: bool
    priority: int
    leaving: bool = False


PairAction = RunTest | RunStart | RunStop | SendHeartbeat

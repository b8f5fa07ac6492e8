"""The pair logic of one DockerFailover agent: events + ``now`` in, actions out. No I/O, no clock.

Roles: STARTING (just booted, learning the peer) -> PASSIVE / ACTIVE; ACTIVE -> HANDING_OVER
(stopping its containers, then asking the peer to take over) -> PASSIVE or back to ACTIVE.
Every role change goes through one StateMachine and comes out as a ``Transitioned`` action with a
stable reason code (``Code``). Terms (epochs) only grow; a term change is a ``PersistTerm`` action
that the driver writes to disk before carrying out the actions after it.

Rules (each in one place below):
- a node boots STARTING; it goes PASSIVE as soon as it hears an ACTIVE peer, ACTIVE after
  ``startup_grace_period`` if the peer stayed silent, or at once if both are idle and it is the
  cold-start candidate (containers already up here, else the first server listed);
- a PASSIVE node takes over when the peer's heartbeats stop for ``heartbeat_timeout`` (a deadline),
  but only while its own Docker daemon answers;
- an ACTIVE node that hears an ACTIVE peer with a higher term steps down; with an equal term the
  non-preferred one steps down; the one that stays sends a heartbeat at once (one heartbeat resolves it);
- a failed container on the ACTIVE node: stop the managed containers, ask the peer to take over;
  if it cannot be confirmed, start them again and wait before trying again;
- Docker unreachable is reported (alert, ``eligible: false``), never a reason to fail over.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from DockerFailover.containers import ContainerObservation, ContainerWatch, Health
from failover_core.liveness import Liveness, PeerLiveness
from failover_core.transitions import StateMachine, Transition


class Role(enum.Enum):
    STARTING = "starting"
    PASSIVE = "passive"
    ACTIVE = "active"
    HANDING_OVER = "handing_over"


ALLOWED_MOVES: dict[Role, frozenset[Role]] = {
    Role.STARTING: frozenset({Role.PASSIVE, Role.ACTIVE}),
    Role.PASSIVE: frozenset({Role.ACTIVE}),
    Role.ACTIVE: frozenset({Role.PASSIVE, Role.HANDING_OVER}),
    Role.HANDING_OVER: frozenset({Role.PASSIVE, Role.ACTIVE}),
}


class Code(enum.StrEnum):
    """Stable reason codes: transitions and alerts."""

    PEER_ACTIVE = "peer_active"
    STARTUP_PEER_SILENT = "startup_peer_silent"
    COLD_START_CANDIDATE = "cold_start_candidate"
    PEER_HEARTBEAT_LOST = "peer_heartbeat_lost"
    HIGHER_TERM = "higher_term"
    SPLIT_BRAIN_TIEBREAK = "split_brain_tiebreak"
    CONTAINER_FAILED = "container_failed"
    FAILBACK = "failback"
    HANDED_OVER = "handed_over"
    HANDOVER_FAILED = "handover_failed"
    STOP_FAILED = "stop_failed"
    HANDOVER_ACCEPTED = "handover_accepted"
    SHUTDOWN = "shutdown"
    # alerts (no role change)
    DOCKER_UNREACHABLE = "docker_unreachable"
    DOCKER_BACK = "docker_back"
    PEER_LOST = "peer_lost"
    PEER_BACK = "peer_back"
    CONTAINER_FAILED_NO_PEER = "container_failed_no_peer"
    STRAY_CONTAINERS = "stray_containers"
    START_FAILED = "start_failed"
    STOP_FAILED_PASSIVE = "stop_failed_passive"
    STALLED = "stalled"


# ---------------------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerHeartbeat:
    """An authenticated heartbeat from the configured peer."""

    sender: str
    term: int
    role: Role
    eligible: bool  # its Docker daemon answers and no managed container is missing there
    containers_up: bool  # all managed containers are up there

    @classmethod
    def from_fields(cls, d: dict[str, Any]) -> PeerHeartbeat:
        """Build from a decoded body; raises ValueError/KeyError/TypeError on anything malformed."""
        term = d["term"]
        if isinstance(term, bool) or not isinstance(term, int) or term < 0:
            raise ValueError(f"term {term!r} is not a non-negative integer")
        for k in ("eligible", "containers_up"):
            if not isinstance(d[k], bool):
                raise ValueError(f"{k} must be a boolean")
        if not isinstance(d["sender"], str):
            raise ValueError("sender must be a string")
        return cls(sender=d["sender"], term=term, role=Role(d["role"]), eligible=d["eligible"],
                   containers_up=d["containers_up"])


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainersObserved:
    observations: tuple[ContainerObservation, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class DockerUnreachable:
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainersStarted:
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainersStopped:
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class HandOverAnswered:
    accepted: bool
    term: int | None = None
    detail: str = ""
    ambiguous: bool = False  # no answer (timeout): the peer may or may not have taken over


Event = PeerHeartbeat | ContainersObserved | DockerUnreachable | ContainersStarted | ContainersStopped | \
    HandOverAnswered

# ---------------------------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True, kw_only=True)
class PersistTerm:
    term: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Transitioned:
    transition: Transition


@dataclass(frozen=True, slots=True, kw_only=True)
class StartContainers:
    names: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StopContainers:
    names: tuple[str, ...]
    timeout: float
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestHandOver:
    term: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SendHeartbeat:
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    code: Code
    message: str


Action = PersistTerm | Transitioned | StartContainers | StopContainers | RequestHandOver | SendHeartbeat | Alert


@dataclass(frozen=True, slots=True, kw_only=True)
class HandOverAnswer:
    """What we answer to POST /become_primary."""

    accepted: bool
    term: int
    detail: str


# ---------------------------------------------------------------------------------------------- settings


@dataclass(frozen=True, slots=True, kw_only=True)
class PairSettings:
    name: str
    peer: str
    preferred: bool
    containers: tuple[str, ...]
    heartbeat_interval: float
    heartbeat_timeout: float
    startup_grace_period: float
    restart_grace_period: float
    stop_timeout: float
    failback: bool = False
    failback_hold_down: float = 60.0

    @property
    def retry_hold(self) -> float:
        """After a hand-over that failed (or a local restart), wait this long before trying again."""
        return max(self.heartbeat_timeout, self.restart_grace_period, self.startup_grace_period)


def _replace_peer(hb: PeerHeartbeat | None, sender: str, role: Role, term: int) -> PeerHeartbeat:
    """What a hand-over tells us about the peer's role (before its next heartbeat says so)."""
    return PeerHeartbeat(sender=sender, term=term, role=role, eligible=hb.eligible if hb else True,
                         containers_up=role is Role.ACTIVE and (hb.containers_up if hb else False))


@dataclass(slots=True)
class _PeerView:
    heartbeat: PeerHeartbeat | None = None
    lost_alerted: bool = False


@dataclass(slots=True)
class PairNode:
    """One agent's view of the pair. Drivers call ``handle``/``tick``/``become_primary``."""

    settings: PairSettings
    term: int
    booted_at: float
    machine: StateMachine[Role] = field(init=False)
    liveness: PeerLiveness = field(init=False)
    peer: _PeerView = field(default_factory=_PeerView)
    watches: dict[str, ContainerWatch] = field(init=False)
    docker_ok: bool | None = None  # None until the first reconcile
    ops_pending: int = 0  # start/stop operations handed to the driver and not reported back
    next_heartbeat_at: float = 0.0
    retry_after: float = 0.0
    failed_alerted: bool = False
    hold_takeover_until: float = 0.0  # after our own stall: read what the peer sent meanwhile first
    handover_wait_until: float = 0.0  # a hand-over request went unanswered: wait for the peer's word until then
    handover_detail: str = ""

    def __post_init__(self) -> None:
        s = self.settings
        self.machine = StateMachine(s.name, Role.STARTING, ALLOWED_MOVES)
        self.liveness = PeerLiveness(s.peer, s.heartbeat_timeout, self.booted_at)
        self.watches = {n: ContainerWatch(n) for n in s.containers}
        self.next_heartbeat_at = self.booted_at

    # ------------------------------------------------------------------ facts

    @property
    def role(self) -> Role:
        return self.machine.state

    @property
    def eligible(self) -> bool:
        """Could we run the containers? Our Docker daemon answers and none of them is missing here."""
        return self.docker_ok is True and all(w.last is None or w.last.exists for w in self.watches.values())

    @property
    def containers_up(self) -> bool:
        return all(w.up for w in self.watches.values())

    def _peer_idle(self, now: float) -> bool:
        hb = self.peer.heartbeat
        return self.liveness.is_up(now) and hb is not None and hb.role in (Role.PASSIVE, Role.STARTING)

    def _cold_start_candidate(self) -> bool:
        """Both idle: who takes it? Symmetric on both sides, so exactly one answers True."""
        hb = self.peer.heartbeat
        if not self.eligible or hb is None:
            return False
        if not hb.eligible:
            return True
        if self.containers_up != hb.containers_up:
            return self.containers_up
        return self.settings.preferred

    def heartbeat_fields(self) -> dict[str, Any]:
        return {"sender": self.settings.name, "term": self.term, "role": self.role.value,
                "eligible": self.eligible, "containers_up": self.containers_up}

    # ------------------------------------------------------------------ helpers

    def _change(self, to: Role, code: Code, reason: str, now: float, out: list[Action]) -> None:
        t = self.machine.change(to, code=code.value, reason=reason, now=now)
        if to is not Role.HANDING_OVER:
            self.handover_wait_until = 0.0
        if t is not None:
            out.append(Transitioned(transition=t))
            self.next_heartbeat_at = now  # tell the peer at once

    def _set_term(self, term: int, out: list[Action]) -> None:
        if term > self.term:
            self.term = term
            out.append(PersistTerm(term=term))

    def _start_all(self, now: float, reason: str, out: list[Action]) -> None:
        for w in self.watches.values():
            w.started_by_us(now, self.settings.startup_grace_period)
        self.failed_alerted = False
        self.ops_pending += 1
        out.append(StartContainers(names=self.settings.containers, reason=reason))

    def _stop_all(self, reason: str, out: list[Action]) -> None:
        for w in self.watches.values():
            w.forget()
        self.ops_pending += 1
        out.append(StopContainers(names=self.settings.containers, timeout=self.settings.stop_timeout, reason=reason))

    def _become_active(self, code: Code, reason: str, now: float, out: list[Action], *, new_term: int) -> None:
        self._set_term(new_term, out)
        self._change(Role.ACTIVE, code, reason, now, out)
        self._start_all(now, reason, out)

    def _step_down(self, code: Code, reason: str, now: float, out: list[Action]) -> None:
        was = self.role
        self._change(Role.PASSIVE, code, reason, now, out)
        if was is Role.ACTIVE or was is Role.HANDING_OVER:
            self._stop_all(reason, out)

    # ------------------------------------------------------------------ events

    def handle(self, event: Event, now: float) -> list[Action]:
        out: list[Action] = []
        if isinstance(event, PeerHeartbeat):
            self._on_heartbeat(event, now, out)
        elif isinstance(event, ContainersObserved):
            if self.docker_ok is False:
                out.append(Alert(code=Code.DOCKER_BACK, message="Docker daemon answers again"))
            self.docker_ok = True
            if self.ops_pending:
                # inspected before our start/stop finished: stale; the driver inspects again afterwards
                return self._finish(out, now)
            for obs in event.observations:
                w = self.watches.get(obs.name)
                if w is not None:
                    w.observe(obs, now, self.settings.restart_grace_period)
        elif isinstance(event, DockerUnreachable):
            if self.docker_ok is not False:
                out.append(Alert(code=Code.DOCKER_UNREACHABLE,
                                 message=f"Docker daemon unreachable ({event.detail}); containers may still run: "
                                         "not failing over on that alone"))
            self.docker_ok = False
        elif isinstance(event, ContainersStarted):
            self.ops_pending = max(0, self.ops_pending - 1)
            if not event.ok:
                out.append(Alert(code=Code.START_FAILED, message=f"starting containers failed: {event.detail}"))
        elif isinstance(event, ContainersStopped):
            self.ops_pending = max(0, self.ops_pending - 1)
            if event.ok:
                for w in self.watches.values():
                    w.last = None  # stopped; what we saw before is stale until the next inspect
            self._on_stopped(event, now, out)
        elif isinstance(event, HandOverAnswered):
            self._on_answer(event, now, out)
        return self._finish(out, now)

    def _finish(self, out: list[Action], now: float) -> list[Action]:
        out.extend(self.tick(now))
        return out

    def _on_heartbeat(self, hb: PeerHeartbeat, now: float, out: list[Action]) -> None:
        self.liveness.heard(now)
        self.peer.heartbeat = hb
        if self.peer.lost_alerted:
            out.append(Alert(code=Code.PEER_BACK, message=f"heartbeats from {hb.sender} again ({hb.role.value}, "
                                                           f"term {hb.term})"))
            self.peer.lost_alerted = False
        me_active = self.role in (Role.ACTIVE, Role.HANDING_OVER)
        if hb.role is Role.ACTIVE:
            if hb.term > self.term:
                self._set_term(hb.term, out)
                if me_active:
                    self._step_down(Code.HIGHER_TERM, f"peer {hb.sender} is active with higher term {hb.term}",
                                    now, out)
            elif hb.term == self.term and self.role is Role.ACTIVE:
                if not self.settings.preferred:
                    self._step_down(Code.SPLIT_BRAIN_TIEBREAK,
                                    f"peer {hb.sender} is also active in term {hb.term}; the preferred server keeps it",
                                    now, out)
                else:
                    self.next_heartbeat_at = now  # let it learn at once that we keep it
            elif hb.term < self.term and self.role is Role.ACTIVE:
                self.next_heartbeat_at = now  # our higher term makes it step down
            if self.role is Role.STARTING:
                self._change(Role.PASSIVE, Code.PEER_ACTIVE, f"peer {hb.sender} is active in term {hb.term}", now, out)
        elif hb.term > self.term:
            # an idle peer that knows a later term: learn it; an active node moves past it so it stays in charge
            self._set_term(hb.term + 1 if me_active else hb.term, out)
            if me_active:
                self.next_heartbeat_at = now

    def _on_stopped(self, ev: ContainersStopped, now: float, out: list[Action]) -> None:
        if self.role is Role.HANDING_OVER:
            if ev.ok:
                last = self.machine.last
                out.append(RequestHandOver(term=self.term, reason=last.reason if last else ""))
            else:
                reason = f"could not stop the containers before handing over ({ev.detail}); keeping them"
                self._change(Role.ACTIVE, Code.STOP_FAILED, reason, now, out)
                self.retry_after = now + self.settings.retry_hold
                self._start_all(now, reason, out)
        elif not ev.ok:
            out.append(Alert(code=Code.STOP_FAILED_PASSIVE, message=f"stopping containers failed: {ev.detail}"))

    def _on_answer(self, ev: HandOverAnswered, now: float, out: list[Action]) -> None:
        if ev.term is not None:
            self._set_term(ev.term, out)
        if self.role is not Role.HANDING_OVER:
            return
        if ev.accepted:
            # a signed answer from the peer: it is alive and now active in the new term
            self.liveness.heard(now)
            self.peer.heartbeat = _replace_peer(self.peer.heartbeat, self.settings.peer, Role.ACTIVE, self.term)
            self._change(Role.PASSIVE, Code.HANDED_OVER, f"{self.settings.peer} took over in term {self.term}",
                         now, out)
        elif ev.ambiguous and self.handover_wait_until == 0.0:
            # it may have taken over: its next heartbeat says so (higher term -> we step down). Only if none
            # says so within heartbeat_timeout do we start our containers again.
            self.handover_wait_until = now + self.settings.heartbeat_timeout
            self.handover_detail = ev.detail
        else:
            self._handover_failed(ev.detail, now, out)

    def _handover_failed(self, detail: str, now: float, out: list[Action]) -> None:
        reason = f"hand-over to {self.settings.peer} not confirmed ({detail}); restarting our containers"
        self.handover_wait_until = 0.0
        self._change(Role.ACTIVE, Code.HANDOVER_FAILED, reason, now, out)
        self.retry_after = now + self.settings.retry_hold
        self._start_all(now, reason, out)

    def become_primary(self, sender: str, term: int, reason: str, now: float) -> tuple[HandOverAnswer, list[Action]]:
        """The active peer asks us to take over (it has stopped its containers)."""
        out: list[Action] = []
        if self.role not in (Role.PASSIVE, Role.STARTING):
            return HandOverAnswer(accepted=False, term=self.term, detail=f"not idle (we are {self.role.value})"), out
        if not self.eligible:
            missing = [n for n, w in self.watches.items() if w.last is not None and not w.last.exists]
            why = f"missing here: {', '.join(missing)}" if missing else "our Docker daemon does not answer"
            return HandOverAnswer(accepted=False, term=self.term, detail=why), out
        if now < self.hold_takeover_until:
            # we were frozen: this request may have waited in our socket long after its sender gave up
            return HandOverAnswer(accepted=False, term=self.term, detail="just resumed from a stall"), out
        if term < self.term:
            return HandOverAnswer(accepted=False, term=self.term,
                                  detail=f"stale request: term {term} < our term {self.term}"), out
        self.liveness.heard(now)
        self.peer.heartbeat = _replace_peer(self.peer.heartbeat, sender, Role.PASSIVE, term)
        self._become_active(Code.HANDOVER_ACCEPTED, f"{sender} handed over: {reason}"[:300], now, out,
                            new_term=max(term, self.term) + 1)
        out.extend(self.tick(now))
        return HandOverAnswer(accepted=True, term=self.term, detail="accepted"), out

    def shutdown(self, now: float) -> list[Action]:
        """The agent is asked to exit. An active node hands over if the peer can take it; otherwise it
        leaves its containers running (stopping them would leave nothing running)."""
        out: list[Action] = []
        if self.role is Role.ACTIVE and self._peer_ready(now) and not self.ops_pending:
            self._change(Role.HANDING_OVER, Code.SHUTDOWN, f"agent shutting down; handing over to {self.settings.peer}",
                         now, out)
            self._stop_all("shutdown hand-over", out)
        return out

    def resumed(self, now: float, stalled_for: float) -> list[Action]:
        """The driver was frozen or starved for ``stalled_for`` s (SIGSTOP, swap, a stuck thread): the
        peer's heartbeats may be waiting unread. Do not take over on silence until they had a chance
        to be read (two heartbeat intervals)."""
        self.hold_takeover_until = now + 2 * self.settings.heartbeat_interval
        return [Alert(code=Code.STALLED, message=f"agent was stalled for {stalled_for:.1f}s; no takeover on "
                                                 f"silence before {2 * self.settings.heartbeat_interval:g}s")]

    def _peer_ready(self, now: float) -> bool:
        hb = self.peer.heartbeat
        return self.liveness.is_up(now) and hb is not None and hb.eligible and \
            hb.role in (Role.PASSIVE, Role.STARTING)

    # ------------------------------------------------------------------ time

    def tick(self, now: float) -> list[Action]:
        out: list[Action] = []
        role = self.role
        peer_state = self.liveness.state(now)
        if role is Role.STARTING:
            if self.eligible and self._peer_idle(now) and self._cold_start_candidate():
                self._become_active(Code.COLD_START_CANDIDATE, f"{self.settings.peer} is idle too and we are the "
                                    "cold-start candidate", now, out, new_term=self.term + 1)
            elif self.eligible and peer_state is Liveness.DOWN and now >= self.hold_takeover_until and \
                    now >= self.booted_at + self.settings.startup_grace_period:
                self._become_active(Code.STARTUP_PEER_SILENT,
                                    f"no heartbeat from {self.settings.peer} within the start-up grace", now, out,
                                    new_term=self.term + 1)
        elif role is Role.PASSIVE:
            if self.eligible and peer_state is Liveness.DOWN and now >= self.hold_takeover_until:
                silent = self.liveness.silent_for(now)
                took = f"{silent:.2f}s" if silent is not None else "ever"
                self._become_active(Code.PEER_HEARTBEAT_LOST, f"no heartbeat from {self.settings.peer} for {took}",
                                    now, out, new_term=self.term + 1)
            elif self.eligible and self._peer_idle(now) and self._cold_start_candidate():
                self._become_active(Code.COLD_START_CANDIDATE, f"{self.settings.peer} is idle too and we are the "
                                    "cold-start candidate", now, out, new_term=self.term + 1)
            elif self._stray_running(now):
                names = [n for n, w in self.watches.items() if w.running]
                out.append(Alert(code=Code.STRAY_CONTAINERS,
                                 message=f"{', '.join(names)} running here while {self.settings.peer} is active: "
                                         "stopping them"))
                self._stop_all(f"{self.settings.peer} is active", out)
        elif role is Role.ACTIVE:
            self._tick_active(now, peer_state, out)
        elif role is Role.HANDING_OVER and self.handover_wait_until and now >= self.handover_wait_until:
            self._handover_failed(f"{self.handover_detail}; no sign of {self.settings.peer} taking over within "
                                  f"{self.settings.heartbeat_timeout:g}s", now, out)
        if self.role in (Role.STARTING, Role.PASSIVE) and peer_state is Liveness.DOWN and not self.eligible \
                and self.docker_ok is False and not self.peer.lost_alerted:
            self.peer.lost_alerted = True
            out.append(Alert(code=Code.PEER_LOST, message=f"{self.settings.peer} is silent and our Docker daemon does "
                                                          "not answer: cannot take over"))
        # no heartbeat before our Docker daemon answered or failed once: "eligible" must mean something
        if now >= self.next_heartbeat_at and self.docker_ok is not None:
            self.next_heartbeat_at = now + self.settings.heartbeat_interval
            out.append(SendHeartbeat(fields=self.heartbeat_fields()))
        return out

    def _stray_running(self, now: float) -> bool:
        hb = self.peer.heartbeat
        return (self.ops_pending == 0 and self.docker_ok is True and hb is not None and hb.role is Role.ACTIVE
                and self.liveness.is_up(now) and any(w.running for w in self.watches.values()))

    def _tick_active(self, now: float, peer_state: Liveness, out: list[Action]) -> None:
        s = self.settings
        if peer_state is Liveness.DOWN and not self.peer.lost_alerted:
            self.peer.lost_alerted = True
            out.append(Alert(code=Code.PEER_LOST, message=f"{s.peer} is silent: we keep the containers"))
        if self.docker_ok is not True or self.ops_pending:
            return  # nothing known for sure about the containers right now
        failed = [n for n, w in self.watches.items() if w.failed(now)]
        peer_ready = self._peer_ready(now)
        if failed:
            if now < self.retry_after:
                return
            what = ", ".join(f"{n} ({self._describe(n)})" for n in failed)
            if peer_ready:
                self._change(Role.HANDING_OVER, Code.CONTAINER_FAILED, f"{what} down past its grace; handing over to "
                             f"{s.peer}", now, out)
                self._stop_all("hand-over", out)
            else:
                if not self.failed_alerted:
                    out.append(Alert(code=Code.CONTAINER_FAILED_NO_PEER,
                                     message=f"{what} down past its grace and {s.peer} cannot take over: restarting "
                                             "here"))
                self._start_all(now, "restart after failure, no peer to hand over to", out)
                self.failed_alerted = True
                self.retry_after = now + s.retry_hold
            return
        if s.failback and not s.preferred and peer_ready and self.containers_up and \
                self.liveness.up_for(now) >= s.failback_hold_down:
            self._change(Role.HANDING_OVER, Code.FAILBACK, f"failback: preferred {s.peer} has been up for "
                         f"{self.liveness.up_for(now):.1f}s (hold-down {s.failback_hold_down:g}s)", now, out)
            self._stop_all("failback", out)

    def _describe(self, name: str) -> str:
        w = self.watches[name]
        return "never observed" if w.last is None else w.last.describe()

    def next_deadline(self, now: float) -> float:
        """The next instant at which ``tick`` may act on its own (the driver sleeps until then)."""
        s = self.settings
        cands = [self.next_heartbeat_at]
        d = self.liveness.next_deadline(now)
        if d is not None:
            cands.append(d)
        if self.role is Role.STARTING:
            cands.append(self.booted_at + s.startup_grace_period)
        cands.append(self.hold_takeover_until)
        cands.append(self.handover_wait_until)
        if self.role is Role.ACTIVE:
            cands.extend(x for x in (w.deadline() for w in self.watches.values()) if x is not None)
            if self.retry_after > now:
                cands.append(self.retry_after)
            if s.failback and self.liveness.up_since is not None and self.liveness.is_up(now):
                cands.append(self.liveness.up_since + s.failback_hold_down)
        future = [c for c in cands if c > now]
        return min(future) if future else now + s.heartbeat_interval

    # ------------------------------------------------------------------ status

    def status(self, now: float) -> dict[str, Any]:
        hb = self.peer.heartbeat
        last = self.machine.last
        return {
            "server": self.settings.name,
            "role": self.role.value,
            "term": self.term,
            "preferred": self.settings.preferred,
            "eligible": self.eligible,
            "docker": {None: "unknown", True: "ok", False: "unreachable"}[self.docker_ok],
            "peer": {
                "name": self.settings.peer,
                "state": self.liveness.state(now).value,
                "role": hb.role.value if hb else None,
                "term": hb.term if hb else None,
                "eligible": hb.eligible if hb else None,
                "silent_for": self.liveness.silent_for(now),
            },
            "containers": {
                n: {"state": (w.last.health_state.value if w.last else "unknown"),
                    "detail": w.last.describe() if w.last else "not observed yet",
                    "failed": self.role is Role.ACTIVE and w.failed(now)}
                for n, w in self.watches.items()
            },
            "last_transition": None if last is None else {
                "from": last.from_state.lower(), "to": last.to_state.lower(), "code": last.code,
                "reason": last.reason, "ago": round(now - last.at, 3), "seq": last.seq},
        }


__all__ = ["ALLOWED_MOVES", "Action", "Alert", "Code", "ContainersObserved", "ContainersStarted", "ContainersStopped",
           "DockerUnreachable", "Event", "HandOverAnswer", "HandOverAnswered", "Health", "PairNode", "PairSettings",
           "PeerHeartbeat", "PersistTerm", "RequestHandOver", "Role", "SendHeartbeat", "StartContainers",
           "StopContainers", "Transitioned"]

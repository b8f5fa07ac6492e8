"""ProcessSupervisor: the sans-I/O brain that keeps one logical process active on exactly one host.

It runs no command and reads no clock. The driver feeds it ``now`` and command results and carries
out the actions it returns (h11 style: events in, actions out)::

    step = sup.tick(now)                                   # due work: a test round, a poll, a start
    step = sup.on_test(host, rc, tag=a.tag, now=now)       # a test command finished
    step = sup.on_start(host, rc, tag=a.tag, now=now)      # a start command finished
    step = sup.on_stop(host, rc, now=now)                  # a stop command finished
    sup.next_deadline()                                    # when to call tick() again

Each ``Step`` holds actions (RunTest/RunStart/RunStop), the Transitions made (via
failover_core.transitions.StateMachine: log, notify) and notes (code, one-line reason) to log.

Rules (one place): a *round* tests every host at once; when all results are in, failover_core
``elect`` decides. One up: ACTIVE there. Several up: CONFLICT, keep the lowest runtime priority
(ties: configured order) and stop the rest. None up: start on the best host; if its start fails
(non-zero, timeout, or no test shows it up within ``start_grace``) stop it there (best effort: a late
riser must not become a second active) and try the next host at once; when
every host failed, BACKOFF (initial, doubling, capped) then a fresh round. Each failure (a start that
failed, or an active instance found down) is remembered; ``max_failures`` within ``failure_window``
-> FATAL (gave up, alert), and rounds continue so the process is picked up when it comes back.
Exit status of a test: 1..125 = up with that runtime priority; 0 = down; None (could not run,
timed out), 126/127 (cannot run / not found), 128+n (signal) and 255 (ssh failure) = down.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from failover_core.election import Candidate, elect
from failover_core.transitions import StateMachine, Transition
from HaValet.config import Timing

MAX_RUNTIME_PRIORITY = 125


class ProcState(enum.Enum):
    UNKNOWN = "unknown"  # no round finished yet
    ACTIVE = "active"  # exactly one instance up
    CONFLICT = "conflict"  # several up: stopping the lower-priority ones
    STARTING = "starting"  # none up: starting (or waiting for the start to test up) on one host
    BACKOFF = "backoff"  # every host failed to start: waiting before the next pass
    FATAL = "fatal"  # gave up restarting; still testing, recovers when an instance comes up


ALLOWED_MOVES: dict[ProcState, set[ProcState]] = {
    ProcState.UNKNOWN: {ProcState.ACTIVE, ProcState.CONFLICT, ProcState.STARTING, ProcState.FATAL},
    ProcState.ACTIVE: {ProcState.CONFLICT, ProcState.STARTING, ProcState.FATAL},
    ProcState.CONFLICT: {ProcState.ACTIVE, ProcState.STARTING, ProcState.FATAL},
    ProcState.STARTING: {ProcState.ACTIVE, ProcState.BACKOFF, ProcState.FATAL},
    ProcState.BACKOFF: {ProcState.ACTIVE, ProcState.CONFLICT, ProcState.STARTING, ProcState.FATAL},
    ProcState.FATAL: {ProcState.ACTIVE, ProcState.CONFLICT},
}


def runtime_priority(rc: int | None) -> int:
    """Exit status of a test command -> runtime priority (0 = down)."""
    if rc is None or rc <= 0 or rc > MAX_RUNTIME_PRIORITY:
        return 0
    return rc


def describe_rc(rc: int | None) -> str:
    if rc is None:
        return "did not run to completion"
    if rc == 0:
        return "exit 0: down"
    if rc in (126, 127):
        return f"exit {rc}: cannot run (counted as down)"
    if rc == 255:
        return "exit 255: connection failure (counted as down)"
    if rc > MAX_RUNTIME_PRIORITY:
        return f"exit {rc}: killed by signal {rc - 128} (counted as down)" if rc > 128 else f"exit {rc}: down"
    if rc < 0:
        return f"killed by signal {-rc} (counted as down)"
    return f"up, priority {rc}"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunTest:
    host: str
    tag: str  # "round:N" or "verify:N": hand it back with the result


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStart:
    host: str
    tag: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStop:
    host: str


Action = RunTest | RunStart | RunStop


@dataclass(slots=True)
class Step:
    actions: list[Action] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (code, reason) lines without a state change

    def extend(self, other: Step) -> Step:
        self.actions += other.actions
        self.transitions += other.transitions
        self.notes += other.notes
        return self


@dataclass(slots=True)
class _Attempt:
    host: str
    tag: str
    verifying: bool = False
    grace_deadline: float = 0.0
    next_poll_at: float = 0.0
    poll_tag: str | None = None  # tag of the verification test in flight


class ProcessSupervisor:
    def __init__(self, name: str, hosts: tuple[str, ...] | list[str], timing: Timing, *, now: float,
                 first_round_at: float | None = None) -> None:
        if not hosts:
            raise ValueError("a process needs at least one host")
        self.name = name
        self.hosts = tuple(hosts)
        self.timing = timing
        self.machine: StateMachine[ProcState] = StateMachine(name, ProcState.UNKNOWN, ALLOWED_MOVES)
        self.active_host: str | None = None
        self.last_rc: dict[str, int | None] = dict.fromkeys(self.hosts)
        self._counter = 0
        self._next_round_at = now if first_round_at is None else first_round_at
        self._round_tag: str | None = None
        self._round_results: dict[str, int | None] = {}
        self._attempt: _Attempt | None = None
        self._tried: list[str] = []
        self._failures: deque[float] = deque()
        self._backoff_level = 0
        self._backoff_until: float | None = None
        self._stopping: set[str] = set()
        self.rounds_done = 0

    # ------------------------------------------------------------------ queries
    @property
    def state(self) -> ProcState:
        return self.machine.state

    def failures_in_window(self, now: float) -> int:
        self._expire(now)
        return len(self._failures)

    def next_deadline(self) -> float | None:
        """When tick() has something to do next (None: waiting for a command result only)."""
        if self._attempt is not None:
            a = self._attempt
            if not a.verifying or a.poll_tag is not None:
                return None
            return min(a.next_poll_at, a.grace_deadline)
        if self._round_tag is not None:
            return None
        return self._round_due()

    def _round_due(self) -> float:
        if self.state is ProcState.BACKOFF and self._backoff_until is not None:
            return min(self._next_round_at, self._backoff_until)
        return self._next_round_at

    def snapshot(self, now: float) -> dict[str, object]:
        last = self.machine.last
        return {
            "process": self.name,
            "state": self.state.value,
            "active_host": self.active_host,
            "starting_on": self._attempt.host if self._attempt else None,
            "hosts": {h: (None if rc is None else rc) for h, rc in self.last_rc.items()},
            "failures_in_window": self.failures_in_window(now),
            "backoff_until": self._backoff_until,
            "last_transition": str(last) if last else None,
            "last_transition_code": last.code if last else None,
            "last_transition_at": last.at if last else None,
        }

    # ------------------------------------------------------------------ events
    def tick(self, now: float) -> Step:
        step = Step()
        a = self._attempt
        if a is not None:
            if a.verifying and a.poll_tag is None:
                if now >= a.grace_deadline:
                    step.extend(self._attempt_failed(
                        now, f"{a.host} did not test up within start_grace {self.timing.start_grace:g}s"))
                elif now >= a.next_poll_at:
                    a.poll_tag = self._tag("verify")
                    step.actions.append(RunTest(host=a.host, tag=a.poll_tag))
            return step
        due = self._round_due()
        if self._round_tag is None and now >= due:
            self._round_tag = self._tag("round")
            self._round_results = {}
            # deadlines, not sleeps: a late wake-up does not push every later round back
            late = now - due
            self._next_round_at = (due if late < self.timing.interval else now) + self.timing.interval
            step.actions += [RunTest(host=h, tag=self._round_tag) for h in self.hosts]
        return step

    def on_test(self, host: str, rc: int | None, *, tag: str, now: float) -> Step:
        if host in self.last_rc:
            self.last_rc[host] = rc
        a = self._attempt
        if a is not None and tag == a.poll_tag and host == a.host:
            a.poll_tag = None
            if runtime_priority(rc) > 0:
                return self._started(now, rc)
            a.next_poll_at = now + self.timing.start_poll
            if now >= a.grace_deadline:
                grace = self.timing.start_grace
                return self._attempt_failed(
                    now, f"{a.host} did not test up within start_grace {grace:g}s ({describe_rc(rc)})")
            return Step()
        if tag != self._round_tag or host not in self.hosts or host in self._round_results:
            return Step(notes=[("STALE_RESULT", f"ignored test result of {host} for {tag}")])
        self._round_results[host] = rc
        if len(self._round_results) < len(self.hosts):
            return Step()
        results = self._round_results
        self._round_tag = None
        self.rounds_done += 1
        return self._round_complete(now, results)

    def on_start(self, host: str, rc: int | None, *, tag: str, now: float, detail: str = "") -> Step:
        a = self._attempt
        if a is None or tag != a.tag or host != a.host:
            return Step(notes=[("STALE_RESULT", f"ignored start result of {host} for {tag}")])
        if rc != 0:
            why = detail or ("did not run to completion" if rc is None else f"exit {rc}")
            return self._attempt_failed(now, f"start on {host} failed ({why})")
        a.verifying = True
        a.grace_deadline = now + self.timing.start_grace
        a.poll_tag = self._tag("verify")
        return Step(actions=[RunTest(host=host, tag=a.poll_tag)],
                    notes=[("START_RETURNED", f"start on {host} returned 0; testing it")])

    def on_stop(self, host: str, rc: int | None, *, now: float, detail: str = "") -> Step:
        self._stopping.discard(host)
        if rc == 0:
            return Step(notes=[("STOPPED", f"stop on {host} returned 0")])
        why = detail or ("did not run to completion" if rc is None else f"exit {rc}")
        return Step(notes=[("STOP_FAILED", f"stop on {host} failed ({why}); the next round will retry")])

    # ------------------------------------------------------------------ internals
    def _tag(self, kind: str) -> str:
        self._counter += 1
        return f"{kind}:{self._counter}"

    def _expire(self, now: float) -> None:
        while self._failures and self._failures[0] <= now - self.timing.failure_window:
            self._failures.popleft()

    def _fail(self, now: float) -> bool:
        """Remember one failure; True when the restart limit is reached."""
        self._failures.append(now)
        self._expire(now)
        return len(self._failures) >= self.timing.max_failures

    def _change(self, step: Step, to: ProcState, code: str, reason: str, now: float) -> None:
        t = self.machine.change(to, code=code, reason=reason, now=now)
        if t is not None:
            step.transitions.append(t)
        else:
            step.notes.append((code, reason))

    def _give_up(self, step: Step, now: float, why: str) -> None:
        self._attempt = None
        self._tried = []
        self._backoff_until = None
        self.active_host = None
        n = len(self._failures)
        self._change(step, ProcState.FATAL, "GAVE_UP",
                     f"gave up: {why}; {n} failures within {self.timing.failure_window:g}s "
                     f"(limit {self.timing.max_failures}); still testing every {self.timing.interval:g}s", now)

    def _round_complete(self, now: float, results: dict[str, int | None]) -> Step:
        step = Step()
        election = elect([Candidate(name=h, runtime_priority=runtime_priority(results[h])) for h in self.hosts])
        state = self.state
        if election.keep is not None:
            previous = self.active_host
            self.active_host = election.keep
            if state is ProcState.FATAL or state is ProcState.BACKOFF:
                self._failures.clear()
                self._backoff_level = 0
                self._backoff_until = None
            if election.stop:
                to_stop = [h for h in election.stop if h not in self._stopping]
                self._stopping.update(to_stop)
                step.actions += [RunStop(host=h) for h in to_stop]
                self._change(step, ProcState.CONFLICT, "MANY_UP", election.reason, now)
                return step
            if state is ProcState.ACTIVE and previous == election.keep:
                return step  # steady state: nothing to say
            code = {ProcState.UNKNOWN: "FOUND_UP", ProcState.CONFLICT: "CONFLICT_RESOLVED",
                    ProcState.FATAL: "RECOVERED", ProcState.BACKOFF: "CAME_UP"}.get(state, "UP")
            if state is ProcState.ACTIVE and previous != election.keep:
                step.notes.append(("ACTIVE_MOVED", f"active instance moved {previous} -> {election.keep}"))
            self._change(step, ProcState.ACTIVE, code, f"active on {election.keep}: {election.reason}", now)
            return step
        # none up
        downs = ", ".join(f"{h}: {describe_rc(results[h])}" for h in self.hosts)
        self.active_host = None
        if state is ProcState.FATAL:
            return step
        if state is ProcState.BACKOFF and self._backoff_until is not None and now < self._backoff_until:
            return step
        if state in (ProcState.ACTIVE, ProcState.CONFLICT) and self._fail(now):
            self._give_up(step, now, f"process went down again ({downs})")
            return step
        if self.failures_in_window(now) >= self.timing.max_failures:
            self._give_up(step, now, f"restart limit reached ({downs})")
            return step
        self._tried = []
        return step.extend(self._start_next(now, f"no instance up ({downs})"))

    def _start_next(self, now: float, why: str) -> Step:
        step = Step()
        remaining = [h for h in self.hosts if h not in self._tried]
        if not remaining:
            delay = min(self.timing.backoff_initial * (2 ** self._backoff_level), self.timing.backoff_max)
            self._backoff_level += 1
            self._backoff_until = now + delay
            self._next_round_at = self._backoff_until
            self._attempt = None
            self._tried = []
            self._change(step, ProcState.BACKOFF, "ALL_HOSTS_FAILED",
                         f"every host failed to start ({why}); next attempt in {delay:g}s", now)
            return step
        host = remaining[0]
        self._attempt = _Attempt(host=host, tag=self._tag("start"))
        self._backoff_until = None
        step.actions.append(RunStart(host=host, tag=self._attempt.tag))
        if self.state is ProcState.STARTING:
            step.notes.append(("TRYING_NEXT_HOST", f"{why}; starting on {host}"))
        else:
            self._change(step, ProcState.STARTING, "STARTING", f"{why}; starting on {host}", now)
        return step

    def _attempt_failed(self, now: float, why: str) -> Step:
        assert self._attempt is not None
        host = self._attempt.host
        step = Step(notes=[("START_FAILED", why)])
        self._tried.append(host)
        self._attempt = None
        # a start that failed or timed out may still bring its instance up later: stop it (best effort)
        # before another host is tried, so a late riser cannot make a second active instance
        if host not in self._stopping:
            self._stopping.add(host)
            step.actions.append(RunStop(host=host))
        if self._fail(now):
            self._give_up(step, now, why)
            return step
        return step.extend(self._start_next(now, why))

    def _started(self, now: float, rc: int | None) -> Step:
        assert self._attempt is not None
        host = self._attempt.host
        self._attempt = None
        self._tried = []
        self._backoff_level = 0
        self._backoff_until = None
        self.active_host = host
        self._next_round_at = now + self.timing.interval
        step = Step()
        self._change(step, ProcState.ACTIVE, "STARTED", f"started on {host} ({describe_rc(rc)})", now)
        return step

"""ProcessSupervisor: the sans-I/O decider that keeps one logical process active on exactly one host.

It runs no command and reads no clock. The driver feeds it one frozen event at a time and carries
out the ``failover_core.step.Step`` it returns (h11 style: events in, actions out)::

    step = sup.handle(Tick(now=now))                                  # the timer: a round, a poll, a give-up
    step = sup.handle(TestDone(host=h, rc=rc, tag=a.tag, now=now))    # a test command finished
    step = sup.handle(StartDone(host=h, rc=rc, tag=a.tag, now=now))   # a start command finished
    step = sup.handle(StopDone(host=h, rc=rc, now=now))               # a stop command finished
    sup.next_deadline()                                               # when to feed the next Tick

A Step holds the actions (RunTest/RunStart/RunStop, in order), the transitions made (through
failover_core.transitions.StateMachine) and the reason (a ``HaValet.codes`` code and one sentence);
an earlier decision of the same step (a start that failed before the next host is tried) is a note.

Rules (one place): a *round* tests every host at once; when all results are in, failover_core
``elect`` decides. One up: ACTIVE there. Several up: CONFLICT, keep the lowest runtime priority
(ties: configured order) and stop the rest. None up: start on the best host; if its start fails
(non-zero, timeout, or no test shows it up within ``start_grace``) stop it there (best effort: a late
riser must not become a second active) and try the next host at once; when every host failed,
BACKOFF (initial, doubling, capped) then a fresh round. Each failure (a start that failed, or an
active instance found down) is remembered; ``max_failures`` within ``failure_window`` -> FATAL (gave
up, alert), and rounds continue so the process is picked up when it comes back.
Exit status of a test: 1..125 = up with that runtime priority; 0 = down; None (could not run,
timed out), 126/127 (cannot run / not found), 128+n (signal) and 255 (ssh failure) = down.

Reading order (events and actions are in ``HaValet.events``): states; then the supervisor:
queries, ``handle``, what each command result means, the round's decision (ordered guards: some
instance up, none up), starts and their failures, and the timer last.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from failover_core.election import Candidate, Election, elect
from failover_core.errors import LocalUsageError
from failover_core.step import ReasonCode, Step, StepBuilder
from failover_core.transitions import StateMachine
from HaValet.codes import NoteCode, TransitionCode
from HaValet.config import Timing
from HaValet.events import Action, Event, RunStart, RunStop, RunTest, StartDone, StopDone, TestDone, Tick

MAX_RUNTIME_PRIORITY = 125


# ---------------------------------------------------------------------- states and exit statuses

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

# the code of a move into ACTIVE, by the state it leaves
ACTIVE_FROM: dict[ProcState, TransitionCode] = {
    ProcState.UNKNOWN: TransitionCode.FOUND_UP, ProcState.CONFLICT: TransitionCode.CONFLICT_RESOLVED,
    ProcState.FATAL: TransitionCode.RECOVERED, ProcState.BACKOFF: TransitionCode.CAME_UP,
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


def _failed_how(rc: int | None, detail: str) -> str:
    return detail or ("did not run to completion" if rc is None else f"exit {rc}")


# ---------------------------------------------------------------------- the supervisor's own state

@dataclass(slots=True)
class _Attempt:
    """A start on one host: the start command in flight, then (verifying) tests until up or grace ends."""

    host: str
    tag: str
    verifying: bool = False
    grace_deadline: float = 0.0
    next_poll_at: float = 0.0
    poll_tag: str | None = None  # tag of the verification test in flight


class FailureWindow:
    """Failures (a failed start, an active instance found down) within the last ``window`` seconds."""

    __slots__ = ("_at", "limit", "window")

    def __init__(self, window: float, limit: int) -> None:
        self.window = window
        self.limit = limit
        self._at: deque[float] = deque()

    def count(self, now: float) -> int:
        while self._at and self._at[0] <= now - self.window:
            self._at.popleft()
        return len(self._at)

    def record(self, now: float) -> bool:
        """Remember one failure; True when the restart limit is reached."""
        self._at.append(now)
        return self.count(now) >= self.limit

    def clear(self) -> None:
        self._at.clear()


def _decide(b: StepBuilder[Action], code: ReasonCode, text: str) -> None:
    """Record a decision: it becomes the step's reason; an earlier one of the same step becomes a note."""
    if b.reason is not None:
        b.notes.append(b.reason)
    b.because(code, text)


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
        self._failures = FailureWindow(timing.failure_window, timing.max_failures)
        self._backoff_level = 0
        self._backoff_until: float | None = None
        self._stopping: set[str] = set()
        self.rounds_done = 0

    # ------------------------------------------------------------------ queries
    @property
    def state(self) -> ProcState:
        return self.machine.state

    def failures_in_window(self, now: float) -> int:
        return self._failures.count(now)

    def next_deadline(self) -> float | None:
        """When the next Tick has something to do (None: waiting for a command result only)."""
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

    # ------------------------------------------------------------------ one event in, one Step out
    def handle(self, event: Event) -> Step[Action]:
        b: StepBuilder[Action] = StepBuilder()
        match event:
            case TestDone():
                self._on_test_done(b, event)
            case StartDone():
                self._on_start_done(b, event)
            case StopDone():
                self._on_stop_done(b, event)
            case Tick():
                self._on_tick(b, event.now)
            case _:
                raise LocalUsageError(f"{self.name}: not a supervisor event: {event!r}")
        return b.build()

    # ------------------------------------------------------------------ command results
    def _on_test_done(self, b: StepBuilder[Action], e: TestDone) -> None:
        if e.host in self.last_rc:
            self.last_rc[e.host] = e.rc
        a = self._attempt
        if a is not None and e.tag == a.poll_tag and e.host == a.host:
            if e.stalled and e.rc is None:  # timed out while the valet was stalled: poll again at once
                a.poll_tag = self._tag("verify")  # now, not at the next tick: start_grace may have run out meanwhile
                b.act(RunTest(host=a.host, tag=a.poll_tag))
                _decide(b, NoteCode.RETEST, f"verification test {e.tag} on {e.host} timed out while the valet was "
                        "stalled: testing again")
                return
            self._decide_verification(b, a, e)
            return
        if e.tag != self._round_tag or e.host not in self.hosts or e.host in self._round_results:
            _decide(b, NoteCode.STALE_RESULT, f"ignored test result of {e.host} for {e.tag}")
            return
        if e.stalled and e.rc is None:  # its timeout came due while the valet was stalled: not a verdict
            b.act(RunTest(host=e.host, tag=e.tag))  # the round waits for this host's second answer
            _decide(b, NoteCode.RETEST, f"test {e.tag} on {e.host} timed out while the valet was stalled "
                    "(its clock jumped): testing again before deciding")
            return
        self._round_results[e.host] = e.rc
        if len(self._round_results) < len(self.hosts):
            return  # the round waits for every host
        results = self._round_results
        self._round_tag = None
        self.rounds_done += 1
        self._decide_round(b, results, e.now)

    def _on_start_done(self, b: StepBuilder[Action], e: StartDone) -> None:
        a = self._attempt
        if a is None or e.tag != a.tag or e.host != a.host:
            _decide(b, NoteCode.STALE_RESULT, f"ignored start result of {e.host} for {e.tag}")
        elif e.rc != 0:
            self._start_failed(b, e.now, f"start on {e.host} failed ({_failed_how(e.rc, e.detail)})")
        else:
            a.verifying = True
            a.grace_deadline = e.now + self.timing.start_grace
            a.poll_tag = self._tag("verify")
            b.act(RunTest(host=e.host, tag=a.poll_tag))
            _decide(b, NoteCode.START_RETURNED, f"start on {e.host} returned 0; testing it")

    def _on_stop_done(self, b: StepBuilder[Action], e: StopDone) -> None:
        self._stopping.discard(e.host)
        if e.rc == 0:
            _decide(b, NoteCode.STOPPED, f"stop on {e.host} returned 0")
        else:
            _decide(b, NoteCode.STOP_FAILED,
                    f"stop on {e.host} failed ({_failed_how(e.rc, e.detail)}); the next round will retry")

    # ------------------------------------------------------------------ a round's decision
    def _decide_round(self, b: StepBuilder[Action], results: dict[str, int | None], now: float) -> None:
        election = elect([Candidate(name=h, runtime_priority=runtime_priority(results[h])) for h in self.hosts])
        if election.keep is not None:
            self._decide_some_up(b, election, now)
        else:
            self._decide_none_up(b, results, now)

    def _decide_some_up(self, b: StepBuilder[Action], election: Election, now: float) -> None:
        state = self.state
        previous, self.active_host = self.active_host, election.keep
        if state in (ProcState.FATAL, ProcState.BACKOFF):  # it came back: the failure history is over
            self._failures.clear()
            self._backoff_level = 0
            self._backoff_until = None
        # 1. several up: keep the best, stop each other one once (a stop in flight is not sent again)
        if election.stop:
            to_stop = [h for h in election.stop if h not in self._stopping]
            self._stopping.update(to_stop)
            b.act(*(RunStop(host=h) for h in to_stop))
            self._change(b, ProcState.CONFLICT, TransitionCode.MANY_UP, election.reason, now)
            return
        # 2. steady state: nothing to say
        if state is ProcState.ACTIVE and previous == election.keep:
            return
        # 3. still one up, on another host
        if state is ProcState.ACTIVE:
            _decide(b, NoteCode.ACTIVE_MOVED, f"active instance moved {previous} -> {election.keep}")
        # 4. ACTIVE there
        code = ACTIVE_FROM.get(state, TransitionCode.UP)
        self._change(b, ProcState.ACTIVE, code, f"active on {election.keep}: {election.reason}", now)

    def _decide_none_up(self, b: StepBuilder[Action], results: dict[str, int | None], now: float) -> None:
        state = self.state
        downs = ", ".join(f"{h}: {describe_rc(results[h])}" for h in self.hosts)
        self.active_host = None
        # 1. gave up: keep testing, start nothing
        if state is ProcState.FATAL:
            return
        # 2. backing off: wait
        if state is ProcState.BACKOFF and self._backoff_until is not None and now < self._backoff_until:
            return
        # 3. the active instance went down: one failure, maybe the last allowed
        if state in (ProcState.ACTIVE, ProcState.CONFLICT) and self._failures.record(now):
            self._give_up(b, now, f"process went down again ({downs})")
            return
        # 4. too many failures already
        if self._failures.count(now) >= self.timing.max_failures:
            self._give_up(b, now, f"restart limit reached ({downs})")
            return
        # 5. start on the best host, then the next ones
        self._tried = []
        self._start_next(b, now, f"no instance up ({downs})")

    # ------------------------------------------------------------------ starts
    def _start_next(self, b: StepBuilder[Action], now: float, why: str) -> None:
        remaining = [h for h in self.hosts if h not in self._tried]
        if not remaining:
            delay = min(self.timing.backoff_initial * (2 ** self._backoff_level), self.timing.backoff_max)
            self._backoff_level += 1
            self._backoff_until = now + delay
            self._next_round_at = self._backoff_until
            self._attempt = None
            self._tried = []
            self._change(b, ProcState.BACKOFF, TransitionCode.ALL_HOSTS_FAILED,
                         f"every host failed to start ({why}); next attempt in {delay:g}s", now)
            return
        host = remaining[0]
        self._attempt = _Attempt(host=host, tag=self._tag("start"))
        self._backoff_until = None
        b.act(RunStart(host=host, tag=self._attempt.tag))
        if self.state is ProcState.STARTING:
            _decide(b, NoteCode.TRYING_NEXT_HOST, f"{why}; starting on {host}")
        else:
            self._change(b, ProcState.STARTING, TransitionCode.STARTING, f"{why}; starting on {host}", now)

    def _decide_verification(self, b: StepBuilder[Action], a: _Attempt, e: TestDone) -> None:
        a.poll_tag = None
        if runtime_priority(e.rc) > 0:
            self._started(b, e.now, e.rc)
            return
        a.next_poll_at = e.now + self.timing.start_poll
        if e.now >= a.grace_deadline:
            self._start_failed(b, e.now, f"{a.host} did not test up within start_grace "
                                         f"{self.timing.start_grace:g}s ({describe_rc(e.rc)})")
        # otherwise still within start_grace: the timer polls again

    def _start_failed(self, b: StepBuilder[Action], now: float, why: str) -> None:
        assert self._attempt is not None
        host = self._attempt.host
        _decide(b, NoteCode.START_FAILED, why)
        self._tried.append(host)
        self._attempt = None
        # a start that failed or timed out may still bring its instance up later: stop it (best effort)
        # before another host is tried, so a late riser cannot make a second active instance
        if host not in self._stopping:
            self._stopping.add(host)
            b.act(RunStop(host=host))
        if self._failures.record(now):
            self._give_up(b, now, why)
            return
        self._start_next(b, now, why)

    def _started(self, b: StepBuilder[Action], now: float, rc: int | None) -> None:
        assert self._attempt is not None
        host = self._attempt.host
        self._attempt = None
        self._tried = []
        self._backoff_level = 0
        self._backoff_until = None
        self.active_host = host
        self._next_round_at = now + self.timing.interval
        self._change(b, ProcState.ACTIVE, TransitionCode.STARTED, f"started on {host} ({describe_rc(rc)})", now)

    def _give_up(self, b: StepBuilder[Action], now: float, why: str) -> None:
        self._attempt = None
        self._tried = []
        self._backoff_until = None
        self.active_host = None
        n = self._failures.count(now)
        self._change(b, ProcState.FATAL, TransitionCode.GAVE_UP,
                     f"gave up: {why}; {n} failures within {self.timing.failure_window:g}s "
                     f"(limit {self.timing.max_failures}); still testing every {self.timing.interval:g}s", now)

    # ------------------------------------------------------------------ the one choke point and tags
    def _change(self, b: StepBuilder[Action], to: ProcState, code: TransitionCode, text: str, now: float) -> None:
        """Move to ``to`` (a Transition in the step) or, when already there, record the decision alone."""
        b.changed(self.machine.change(to, code=code, reason=text, now=now))
        _decide(b, code, text)

    def _tag(self, kind: str) -> str:
        self._counter += 1
        return f"{kind}:{self._counter}"

    # ------------------------------------------------------------------ the timer (last)
    def _on_tick(self, b: StepBuilder[Action], now: float) -> None:
        a = self._attempt
        if a is not None:
            if a.verifying and a.poll_tag is None:
                if now >= a.grace_deadline:
                    self._start_failed(b, now, f"{a.host} did not test up within start_grace "
                                               f"{self.timing.start_grace:g}s")
                elif now >= a.next_poll_at:
                    a.poll_tag = self._tag("verify")
                    b.act(RunTest(host=a.host, tag=a.poll_tag))
            return
        due = self._round_due()
        if self._round_tag is None and now >= due:
            self._round_tag = self._tag("round")
            self._round_results = {}
            # deadlines, not sleeps: a late wake-up does not push every later round back
            late = now - due
            self._next_round_at = (due if late < self.timing.interval else now) + self.timing.interval
            b.act(*(RunTest(host=h, tag=self._round_tag) for h in self.hosts))

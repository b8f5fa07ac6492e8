"""Container health as the pair logic sees it: observations in, "has it failed?" out. No I/O.

The Docker driver turns ``docker inspect`` into a ContainerObservation. A container is DOWN when it
is missing, not running, or unhealthy per its HEALTHCHECK; STARTING while running with its first
health check still pending; UP otherwise. STARTING is neutral: a healthy container going through it
is not down (Docker marks it unhealthy if it never passes), but a container that was down, or that we
started, is back only when UP, so a crash loop whose every restart runs for a moment still fails.

ContainerWatch gives a down container a grace before it counts as FAILED: ``restart_grace_period``
when Docker's own restart policy will bring it back (or is doing so), none otherwise (an unhealthy
container, or one with restart policy "no", fails at once). A container we started has
``startup_grace_period`` to pass its first health check.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Health(enum.Enum):
    UP = "up"
    STARTING = "starting"  # running, HEALTHCHECK has not passed yet
    DOWN = "down"


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerObservation:
    """One ``docker inspect`` of a managed container, reduced to what matters here."""

    name: str
    exists: bool
    running: bool = False
    restarting: bool = False  # Docker is between restarts (State.Restarting)
    health: str | None = None  # None (no HEALTHCHECK), "starting", "healthy", "unhealthy"
    restart_policy: str = "no"  # "no", "always", "unless-stopped", "on-failure"
    max_retries: int = 0  # on-failure:N (0 = unlimited)
    restart_count: int = 0
    exit_code: int | None = None
    status: str = ""  # Docker's State.Status for display

    @property
    def health_state(self) -> Health:
        if not self.exists or not self.running or self.restarting or self.health == "unhealthy":
            return Health.DOWN
        if self.health == "starting":
            return Health.STARTING
        return Health.UP

    @property
    def docker_will_restart(self) -> bool:
        """Will Docker's restart policy bring this (down) container back by itself?"""
        if not self.exists:
            return False
        if self.restarting:
            return True  # Docker reports Running=true, Restarting=true while it waits to restart
        if self.running:
            return False  # running but unhealthy: Docker never restarts that by itself
        if self.restart_policy in ("always", "unless-stopped"):
            return True
        if self.restart_policy == "on-failure":
            failed = self.exit_code is not None and self.exit_code != 0
            return failed and (self.max_retries == 0 or self.restart_count < self.max_retries)
        return False

    def describe(self) -> str:
        if not self.exists:
            return "missing"
        extra = f", {self.health}" if self.health else ""
        code = f", exit {self.exit_code}" if not self.running and self.exit_code is not None else ""
        return f"{self.status or ('running' if self.running else 'stopped')}{extra}{code}"


@dataclass(slots=True)
class ContainerWatch:
    """Tracks one managed container on the active node: when did it go down, and is that a failure."""

    name: str
    last: ContainerObservation | None = None
    down_since: float | None = None
    grace: float = 0.0  # the grace that applies to the current down spell
    start_deadline: float | None = None  # set when we started it: it must be UP by then

    def observe(self, obs: ContainerObservation, now: float, restart_grace: float) -> None:
        self.last = obs
        state = obs.health_state
        if state is Health.UP or (state is Health.STARTING and self.down_since is None
                                  and self.start_deadline is None):
            # running and not unhealthy ("starting" is not down: Docker turns it unhealthy if it never passes)
            self.down_since = None
            self.start_deadline = None
            return
        if state is Health.STARTING:
            return  # neutral: a down spell (or our start) ends only when its health check passes
        self.start_deadline = None  # it died (or turned unhealthy) while starting: the rules below decide
        if self.down_since is None:
            self.down_since = now
            self.grace = 0.0
        if obs.docker_will_restart:
            # Docker will restart it (or is doing so): the restart grace, counted from when it went down
            self.grace = max(self.grace, restart_grace)

    def started_by_us(self, now: float, startup_grace: float) -> None:
        self.down_since = None
        self.start_deadline = now + startup_grace

    def forget(self) -> None:
        """We are not responsible for it any more (passive): drop every deadline."""
        self.down_since = None
        self.start_deadline = None

    def failed(self, now: float) -> bool:
        if self.start_deadline is not None:
            return now >= self.start_deadline
        return self.down_since is not None and now >= self.down_since + self.grace

    def deadline(self) -> float | None:
        if self.start_deadline is not None:
            return self.start_deadline
        return None if self.down_since is None else self.down_since + self.grace

    @property
    def up(self) -> bool:
        """Not down (running, and healthy or its first health check pending)."""
        return self.last is not None and self.last.health_state is not Health.DOWN

    @property
    def running(self) -> bool:
        return self.last is not None and self.last.exists and self.last.running

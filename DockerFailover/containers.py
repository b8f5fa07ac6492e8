"""Container health as the pair logic sees it: observations in, "has it failed?" out. No I/O.

The Docker driver turns ``docker inspect`` into a ContainerObservation. A container is UP when it
runs and its HEALTHCHECK (if any) is not unhealthy and not still starting; DOWN when it is missing,
not running, or unhealthy. ContainerWatch gives a down container a grace before it counts as
FAILED: ``restart_grace_period`` when Docker's own restart policy will bring it back (or is doing
so), the start-up grace after we started it ourselves, and none otherwise (an unhealthy container
or one with restart policy "no" fails at once).
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
        if not self.exists or (self.health == "unhealthy" and self.running):
            return False  # Docker never restarts a running-but-unhealthy container
        if self.restarting:
            return True
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
        if state is Health.UP:
            self.down_since = None
            self.start_deadline = None
            return
        if self.start_deadline is not None:
            return  # we started it; the start deadline decides
        if self.down_since is None:
            self.down_since = now
            self.grace = 0.0
        if state is Health.STARTING or obs.docker_will_restart:
            # Docker restarted it (or will): give it the restart grace, counted from when it went down
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
        return self.last is not None and self.last.health_state is Health.UP

    @property
    def running(self) -> bool:
        return self.last is not None and self.last.exists and self.last.running

"""The Docker side of one agent: inspect, start and stop the managed containers; follow the event stream.

All calls are blocking (Docker SDK) and meant to run on ONE worker thread, so their results reach the
pair logic in the order they happened. A daemon that does not answer raises DockerUnavailable (the SDK
raises requests' ConnectionError, not a docker.errors class, when dockerd is gone).
``EventFollower`` is a thread reading ``events(decode=True)`` for the managed containers and calling
back with the container name; it reconnects when the daemon comes back.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable

import docker
import docker.errors
import requests.exceptions

from DockerFailover.containers import ContainerObservation

_log = logging.getLogger(__name__)
# the events that can change whether a managed container is up
WATCHED_ACTIONS = ("start", "die", "stop", "kill", "oom", "restart", "destroy", "create", "pause", "unpause",
                   "health_status")


class DockerUnavailable(Exception):
    """The Docker daemon did not answer (not: a container is down)."""


def make_client(docker_url: str | None, timeout: float) -> docker.DockerClient:
    if docker_url:
        return docker.DockerClient(base_url=docker_url, timeout=timeout)
    return docker.from_env(timeout=timeout)


def observation_from_inspect(name: str, info: dict) -> ContainerObservation:
    state = info.get("State") or {}
    policy = (info.get("HostConfig") or {}).get("RestartPolicy") or {}
    health = (state.get("Health") or {}).get("Status") or None
    return ContainerObservation(
        name=name, exists=True, running=bool(state.get("Running")), restarting=bool(state.get("Restarting")),
        health=health, restart_policy=policy.get("Name") or "no", max_retries=int(policy.get("MaximumRetryCount") or 0),
        restart_count=int(info.get("RestartCount") or 0), exit_code=state.get("ExitCode"),
        status=state.get("Status") or "")


class DockerHost:
    """Blocking operations on the managed containers of this host."""

    def __init__(self, docker_url: str | None, timeout: float = 5.0) -> None:
        self.docker_url = docker_url
        self.timeout = timeout
        self._client: docker.DockerClient | None = None

    def _api(self) -> docker.APIClient:
        if self._client is None:
            try:
                self._client = make_client(self.docker_url, self.timeout)
            except docker.errors.DockerException as e:
                raise DockerUnavailable(str(e)) from None
        return self._client.api

    def _call(self, fn: Callable[[docker.APIClient], object]) -> object:
        try:
            return fn(self._api())
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as e:
            raise DockerUnavailable(f"{type(e).__name__}: {e}") from None
        except docker.errors.APIError as e:
            if e.status_code is not None and e.status_code >= 500 and not isinstance(e, docker.errors.NotFound):
                raise DockerUnavailable(f"daemon error {e.status_code}: {e.explanation}") from None
            raise

    def inspect(self, names: Iterable[str]) -> tuple[ContainerObservation, ...]:
        out = []
        for name in names:
            try:
                info = self._call(lambda api, n=name: api.inspect_container(n))
            except docker.errors.NotFound:
                out.append(ContainerObservation(name=name, exists=False, status="missing"))
                continue
            except docker.errors.APIError as e:
                raise DockerUnavailable(f"inspect {name}: {e}") from None
            out.append(observation_from_inspect(name, info))  # type: ignore[arg-type]
        return tuple(out)

    def start(self, names: Iterable[str]) -> tuple[bool, str]:
        """Start each container (already running is fine). Returns (all ok, detail)."""
        problems = []
        for name in names:
            try:
                self._call(lambda api, n=name: api.start(n))
            except docker.errors.NotFound:
                problems.append(f"{name}: no such container on this host")
            except docker.errors.APIError as e:
                problems.append(f"{name}: {e.explanation or e}")
        return (not problems, "; ".join(problems) or "started")

    def stop(self, names: Iterable[str], timeout: float) -> tuple[bool, str]:
        """Stop each container gracefully (SIGTERM, then SIGKILL after ``timeout``). Missing is fine."""
        problems = []
        for name in names:
            try:
                self._call(lambda api, n=name: api.stop(n, timeout=max(0, round(timeout))))
            except docker.errors.NotFound:
                continue
            except docker.errors.APIError as e:
                problems.append(f"{name}: {e.explanation or e}")
        return (not problems, "; ".join(problems) or "stopped")

    def kill(self, names: Iterable[str]) -> tuple[bool, str]:
        """SIGKILL each container at once (fencing: no graceful stop). Missing or not running is fine."""
        problems = []
        for name in names:
            try:
                self._call(lambda api, n=name: api.kill(n))
            except docker.errors.NotFound:
                continue
            except docker.errors.APIError as e:
                if e.status_code == 409:  # not running
                    continue
                problems.append(f"{name}: {e.explanation or e}")
        return (not problems, "; ".join(problems) or "killed")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class EventFollower(threading.Thread):
    """Calls ``on_event(name, action)`` for each event of a managed container; ``on_gap()`` after a
    (re)connection, when events may have been missed. Stops when ``stop()`` is called."""

    def __init__(self, docker_url: str | None, names: Iterable[str], on_event: Callable[[str, str], None],
                 on_gap: Callable[[], None], retry: float = 0.5) -> None:
        super().__init__(name="docker-events", daemon=True)
        self.docker_url = docker_url
        self.names = set(names)
        self.on_event = on_event
        self.on_gap = on_gap
        self.retry = retry
        self._stopping = threading.Event()
        self._stream = None
        self._lock = threading.Lock()

    def run(self) -> None:
        while not self._stopping.is_set():
            client = None
            try:
                client = make_client(self.docker_url, timeout=self.retry * 4)
                client.ping()
                stream = client.api.events(decode=True, filters={"type": "container"})
                # the events HTTP response has no read timeout: it waits for the next event
                with self._lock:
                    self._stream = stream
                if self._stopping.is_set():
                    break
                self.on_gap()
                for ev in stream:
                    name = ((ev.get("Actor") or {}).get("Attributes") or {}).get("name")
                    action = str(ev.get("Action") or ev.get("status") or "")
                    if name in self.names and action.split(":")[0] in WATCHED_ACTIONS:
                        self.on_event(name, action)
            except Exception as e:  # any failure of the stream: reconnect
                if not self._stopping.is_set():
                    _log.debug("docker event stream: %s: %s", type(e).__name__, e)
            finally:
                with self._lock:
                    self._stream = None
                if client is not None:
                    client.close()
            self._stopping.wait(self.retry)

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            if self._stream is not None:
                with contextlib.suppress(Exception):  # closing a dead stream
                    self._stream.close()

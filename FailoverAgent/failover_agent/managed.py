"""The managed agents on the local platform, found and driven through ``platform.control``.

Agents are named by VIP identity (``agent_vip_identity``) or by tag (``volttron_ctl_tag``) and resolved
to their uuid on every refresh, so an agent removed and reinstalled (new uuid) is found again.
``agent_status(uuid)`` is ``[pid, rc]``: running means a pid and no return code yet.
Every RPC is bounded by ``timeout``; a platform that does not answer makes the state unknown (None).

A stop the platform records as a crash (an agent stopped during its start-up dies of the SIGINT: rc -2)
would be undone: VOLTTRON's control service restarts crashed agents (its monitor, every 10 s), so the
passive platform ran the managed agent again beside the active's (found by a chaos run: 0.26 s and 0.9 s
of two copies, 10 s apart). ``stop_all`` clears the platform's crash records then (``clear_status``, as
``vctl clear --all``: other stopped agents' exit codes go too, and with them a restart the monitor would
have made of them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent

from failover_agent.events import AgentState, ManagedView

CONTROL = "platform.control"
_log = logging.getLogger(__name__)


class PlatformUnavailable(Exception):
    """The local platform did not answer in time."""


class ManagedAgents:
    """The managed agents of the local platform: read with ``refresh``, driven with ``start_all``/``stop_all``."""

    def __init__(self, rpc_call: Callable[..., Any], identities: tuple[str, ...], tag: str | None,
                 timeout: float) -> None:
        self._call = rpc_call  # e.g. agent.vip.rpc.call
        self.identities = identities
        self.tag = tag
        self.timeout = timeout
        self.states: tuple[AgentState, ...] = ()

    def _rpc(self, method: str, *args: Any) -> Any:
        try:
            return self._call(CONTROL, method, *args).get(timeout=self.timeout)
        except gevent.Timeout:  # a BaseException: turn it into an ordinary error for the caller
            raise PlatformUnavailable(f"platform.control did not answer {method} within {self.timeout:g}s") from None

    def refresh(self) -> tuple[AgentState, ...]:
        """Re-resolve and read the status of every managed agent (raises on a platform RPC failure)."""
        found: list[tuple[str, str | None]] = []
        if self.tag is not None:
            for row in self._rpc("list_agents"):
                if row.get("tag") == self.tag and row.get("identity") not in self.identities:
                    found.append((row.get("identity"), row.get("uuid")))
        found = [(i, self._rpc("identity_exists", i) or None) for i in self.identities] + found
        states = []
        for identity, uuid in found:
            running = False
            if uuid:
                status = self._rpc("agent_status", uuid) or [None, None]
                running = bool(status[0]) and status[1] is None
            states.append(AgentState(identity, uuid, running))
        self.states = tuple(states)
        return self.states

    def view(self) -> ManagedView:
        """The states of the last refresh, frozen for the decider."""
        return ManagedView(states=self.states, names=self.names)

    @property
    def active(self) -> bool:
        return any(s.running for s in self.states)

    @property
    def names(self) -> str:
        shown = [s.identity for s in self.states] or list(self.identities) or [f"tag {self.tag}"]
        return ", ".join(shown)

    def start_all(self) -> list[str]:
        """Start every installed managed agent that is not running; returns the identities started."""
        started = []
        for s in self.states:
            if s.uuid and not s.running:
                self._rpc("start_agent", s.uuid)
                started.append(s.identity)
        return started

    def stop_all(self) -> list[str]:
        """Stop every running managed agent; returns the identities stopped. One whose exit the platform
        records as a crash gets its record cleared, so the platform does not restart it (module docstring)."""
        stopped: list[str] = []
        crashed: list[str] = []
        for s in self.states:
            if s.uuid and s.running:
                self._rpc("stop_agent", s.uuid)
                stopped.append(s.identity)
                rc = (self._rpc("agent_status", s.uuid) or [None, None])[1]
                if rc not in (None, 0):
                    crashed.append(f"{s.identity} (rc {rc})")
        if crashed:
            self._rpc("clear_status", True)
            _log.warning("stopped %s: the platform recorded a crash (stopped during its start-up?); cleared the "
                         "platform's crash records so its monitor does not start it again here", ", ".join(crashed))
        return stopped

    @property
    def missing(self) -> list[str]:
        return [s.identity for s in self.states if s.uuid is None]

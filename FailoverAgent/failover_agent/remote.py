"""RemoteLink: a connection to ANOTHER platform that survives that platform's death and return.

A second in-process VOLTTRON Agent connected to ``tcp://host:port?serverkey=KEY``. In volttron-core
2.0.0rc38 a send to a dead platform blocks forever, so every call runs under a hard
``gevent.Timeout`` (a BaseException, caught explicitly), and any failure tears the connection down
(``disconnect(linger=0)`` wakes blocked greenlets) and kills its greenlet; the next call rebuilds it.
No call ever blocks longer than ``timeout`` (connecting included), so the agent never stalls.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import gevent
import gevent.event

_log = logging.getLogger(__name__)


class RemoteUnavailable(Exception):
    """The other platform (or the agent called there) did not answer within the bound."""


def with_serverkey(address: str, serverkey: str | None) -> str:
    if not serverkey or "serverkey=" in address:
        return address
    return f"{address}{'&' if '?' in address else '?'}serverkey={serverkey}"


class RemoteLink:
    """``publish`` and ``call`` on a remote platform, each bounded by ``timeout`` seconds."""

    def __init__(self, name: str, address: str, credentials: Any, *, timeout: float) -> None:
        self.name = name
        self.address = address
        self.credentials = credentials
        self.timeout = timeout
        self._agent: Any = None
        self._greenlet: gevent.Greenlet | None = None
        self.failures = 0
        self.connects = 0
        self.last_error = ""

    @property
    def connected(self) -> bool:
        return self._agent is not None

    def _connect(self) -> Any:
        from volttron.client.vip.agent import Agent
        from volttron.types.agent_context import AgentOptions

        agent = Agent(credentials=self.credentials, address=self.address,
                      options=AgentOptions(enable_store=False, heartbeat_autostart=False))
        ready = gevent.event.Event()
        greenlet = gevent.spawn(agent.core.run, ready)
        if not ready.wait(self.timeout):
            self._teardown(agent, greenlet)
            raise RemoteUnavailable(f"{self.name}: no connection to {self.address.split('?')[0]} "
                                    f"within {self.timeout:g}s")
        self._agent, self._greenlet = agent, greenlet
        self.connects += 1
        _log.info("remote link %s connected to %s", self.name, self.address.split("?")[0])
        return agent

    @staticmethod
    def _teardown(agent: Any, greenlet: gevent.Greenlet | None) -> None:
        with contextlib.suppress(Exception):
            agent.core.connection.disconnect(linger=0)
        if greenlet is not None:
            greenlet.kill(block=False)

    def close(self) -> None:
        if self._agent is not None:
            self._teardown(self._agent, self._greenlet)
        self._agent = self._greenlet = None

    def _run(self, what: str, fn: Any) -> Any:
        try:
            with gevent.Timeout(self.timeout, RemoteUnavailable(f"{self.name}: {what} timed out "
                                                                  f"after {self.timeout:g}s")):
                agent = self._agent or self._connect()
                return fn(agent)
        except (Exception, gevent.Timeout) as e:
            self.failures += 1
            self.last_error = f"{type(e).__name__}: {e}"
            self.close()
            raise RemoteUnavailable(self.last_error) from None

    def publish(self, topic: str, message: Any) -> None:
        self._run(f"publish {topic}", lambda a: a.vip.pubsub.publish("pubsub", topic, message=message).get())

    def call(self, peer: str, method: str, *args: Any) -> Any:
        return self._run(f"rpc {peer}.{method}", lambda a: a.vip.rpc.call(peer, method, *args).get())

    def subscribe(self, prefix: str, callback: Any) -> None:
        """Subscribe on the remote bus (for observers; lost when the link is rebuilt)."""
        self._run(f"subscribe {prefix}", lambda a: a.vip.pubsub.subscribe("pubsub", prefix, callback).get())

"""The agent's HTTP API (aiohttp): POST /heartbeat, POST /become_primary, GET /status, GET /health.

The handlers only translate HTTP: a POST's method, path, body and headers go to the wire's
``PeerInbox`` (authentication, sender, fields, heartbeat order); its errors become 401
(``NotAuthenticated``) or 400 (any other RemoteInputError), counted by reason, and change nothing.
What passes goes to the agent through ``PairEndpoint``; the decisions are the pair decider's.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from DockerFailover.events import HandOverAnswer, PeerHeartbeat
from DockerFailover.wire import MAX_BODY, HandOverRequest, NotAuthenticated, PeerInbox
from failover_core.errors import RemoteInputError

_log = logging.getLogger(__name__)


class PairEndpoint(Protocol):
    """What the HTTP layer needs of the agent (``DockerFailover.shell.agent.Agent``)."""

    def wall_now(self) -> float: ...

    def count_rejected(self, reason: str, detail: str) -> None: ...

    async def on_heartbeat(self, heartbeat: PeerHeartbeat, news: bool) -> dict[str, Any]:
        """Learn the peer's heartbeat (only that it is alive when not ``news``); the answer's fields (our own
        news: ``PeerInbox.answer_news``)."""
        ...

    async def on_hand_over_request(self, request: HandOverRequest) -> HandOverAnswer: ...

    def status(self) -> dict[str, Any]: ...

    def health(self) -> tuple[bool, str, str]:
        """(ok, detail, role)."""
        ...


Opened = tuple[str, Any]  # the request's nonce and what the inbox made of it


def build_app(endpoint: PairEndpoint, inbox: PeerInbox) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)

    async def post(request: web.Request, open_: Callable[..., Opened],
                   handle: Callable[[Any], Awaitable[dict[str, Any]]]) -> web.Response:
        body = await request.read()
        try:
            nonce, message = open_(request.method, request.path, body, request.headers, wall_now=endpoint.wall_now())
            answer = await handle(message)
        except RemoteInputError as e:
            endpoint.count_rejected(e.reason, f"{request.path} from {request.remote}: {e}")
            return web.json_response({"error": e.reason}, status=401 if isinstance(e, NotAuthenticated) else 400)
        data, headers = inbox.signed_answer(nonce, answer)
        return web.Response(body=data, content_type="application/json", headers=headers)

    async def heartbeat(request: web.Request) -> web.Response:
        async def handle(heard: tuple[PeerHeartbeat, bool]) -> dict[str, Any]:
            return await endpoint.on_heartbeat(*heard)
        return await post(request, inbox.heartbeat, handle)

    async def become_primary(request: web.Request) -> web.Response:
        async def handle(asked: HandOverRequest) -> dict[str, Any]:
            return (await endpoint.on_hand_over_request(asked)).wire_fields()
        return await post(request, inbox.hand_over_request, handle)

    async def status(request: web.Request) -> web.Response:
        return web.json_response(endpoint.status())

    async def health(request: web.Request) -> web.Response:
        ok, detail, role = endpoint.health()
        return web.json_response({"ok": ok, "detail": detail, "role": role}, status=200 if ok else 503)

    app.router.add_post("/heartbeat", heartbeat)
    app.router.add_post("/become_primary", become_primary)
    app.router.add_get("/status", status)
    app.router.add_get("/health", health)
    return app

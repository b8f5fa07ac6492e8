"""The agent's HTTP API (aiohttp): POST /heartbeat, POST /become_primary, GET /status, GET /health.

POSTs must carry a valid signature, a fresh timestamp and an unused nonce (DockerFailover.wire);
anything else is answered 401 and counted by reason, and changes nothing. Bodies that authenticate
but do not parse get 400. The handlers only translate: the decisions are the agent's pair logic.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from DockerFailover.pair import PeerHeartbeat
from DockerFailover.wire import MAX_BODY, SIG_HEADER, TS_HEADER, decode_body, encode_body
from failover_core.errors import RemoteInputError

if TYPE_CHECKING:
    from DockerFailover.shell.agent import Agent

_log = logging.getLogger(__name__)


def build_app(agent: Agent) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)

    async def authenticated(request: web.Request,
                            handle: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]) -> web.Response:
        body = await request.read()
        try:
            nonce = agent.auth.verify_request(request.method, request.path, body, request.headers,
                                              wall_now=agent.wall_now())
        except RemoteInputError as e:
            agent.count_rejected(e.reason, f"{request.path} from {request.remote}: {e}")
            return web.json_response({"error": e.reason}, status=401)
        try:
            fields = decode_body(body)
            if fields.get("sender") != agent.cfg.peer:
                raise RemoteInputError("wrong_sender", f"sender {str(fields.get('sender'))[:40]!r} is not our peer")
            answer = await handle(fields)
        except RemoteInputError as e:
            agent.count_rejected(e.reason, f"{request.path} from {request.remote}: {e}")
            return web.json_response({"error": e.reason}, status=400)
        data = encode_body(answer)
        return web.Response(body=data, content_type="application/json",
                            headers={SIG_HEADER: agent.auth.sign_response(nonce, data)})

    async def heartbeat(request: web.Request) -> web.Response:
        async def handle(fields: dict[str, Any]) -> dict[str, Any]:
            try:
                hb = PeerHeartbeat.from_fields(fields)
            except (KeyError, ValueError, TypeError) as e:
                raise RemoteInputError("malformed", f"heartbeat: {type(e).__name__}: {e}") from None
            # order: a heartbeat delayed in the network (e.g. TCP retransmitting it after a cut link heals)
            # must not overwrite a newer one; each carries the sender's boot id and a growing sequence
            agent.heartbeat_order.check_seq(sender=hb.sender, boot=str(fields.get("boot"))[:64], seq=fields.get("seq"),
                                            timestamp=float(request.headers[TS_HEADER]), wall_now=agent.wall_now())
            agent.on_heartbeat(hb)
            return {"ok": True}
        return await authenticated(request, handle)

    async def become_primary(request: web.Request) -> web.Response:
        async def handle(fields: dict[str, Any]) -> dict[str, Any]:
            term, reason = fields.get("term"), fields.get("reason", "")
            if isinstance(term, bool) or not isinstance(term, int) or term < 0 or not isinstance(reason, str):
                raise RemoteInputError("malformed", "become_primary needs an integer term and a string reason")
            answer = agent.on_become_primary(fields["sender"], term, reason)
            return {"accepted": answer.accepted, "term": answer.term, "detail": answer.detail}
        return await authenticated(request, handle)

    async def status(request: web.Request) -> web.Response:
        return web.json_response(agent.status())

    async def health(request: web.Request) -> web.Response:
        ok, detail = agent.health()
        return web.json_response({"ok": ok, "detail": detail, "role": agent.node.role.value},
                                 status=200 if ok else 503)

    app.router.add_post("/heartbeat", heartbeat)
    app.router.add_post("/become_primary", become_primary)
    app.router.add_get("/status", status)
    app.router.add_get("/health", health)
    return app

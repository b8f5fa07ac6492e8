"""The witness's HTTP server (aiohttp): POST /v1/heartbeat, POST /v1/query, GET /status, GET /health.

The handlers only translate HTTP: a POST's method, path, body and headers go to the protocol's
``WitnessDesk`` (``failover_core.witness_protocol``) with the monotonic clock's ``now`` and the wall clock
(compared with the sender's timestamp only); its signed answer goes back as the body plus the
``X-Failover-Signature`` header. A rejection becomes 401 (``NotAuthenticated``: unknown group, bad or
missing signature, stale, nonce replayed) or 400 (malformed, heartbeat out of order, too many nodes), is
counted by the desk (GET /status shows the counters) and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from failover_core.clock import Clock
from failover_core.errors import RemoteInputError
from failover_core.request_auth import MAX_BODY, NotAuthenticated
from failover_core.shell.clock import MonotonicClock
from failover_core.witness_protocol import HEARTBEAT_PATH, QUERY_PATH, WitnessDesk
from FailoverWitness.config import WitnessConfig

_log = logging.getLogger(__name__)
LOGGED_AT = (1, 10, 100, 1000)  # a flood of bad requests is logged at these counts, then every 10000th

Handler = Callable[..., tuple[bytes, dict[str, str]]]


def build_app(desk: WitnessDesk, clock: Clock, wall_clock: Callable[[], float] = time.time) -> web.Application:
    app = web.Application()

    async def post(request: web.Request, handle: Handler) -> web.Response:
        body = await request.content.read(MAX_BODY + 1)  # a larger body is 'malformed' (counted), not a bare 413
        try:
            data, headers = handle(request.method, request.path, body, request.headers, wall_now=wall_clock(),
                                   now=clock.now())
        except RemoteInputError as e:
            n = desk.rejected[e.reason]
            if n in LOGGED_AT or n % 10000 == 0:
                _log.warning("%s from %s refused (%s, %d so far): %s", request.path, request.remote, e.reason, n,
                             e.detail)
            return web.json_response({"error": e.reason}, status=401 if isinstance(e, NotAuthenticated) else 400)
        return web.Response(body=data, content_type="application/json", headers=headers)

    async def heartbeat(request: web.Request) -> web.Response:
        return await post(request, desk.heartbeat)

    async def query(request: web.Request) -> web.Response:
        return await post(request, desk.query)

    async def status(request: web.Request) -> web.Response:
        return web.json_response(desk.status(clock.now()))

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "witness": desk.witness, "boot": desk.boot,
                                  "listening_for": round(clock.now() - desk.started_at, 3)})

    app.router.add_post(HEARTBEAT_PATH, heartbeat)
    app.router.add_post(QUERY_PATH, query)
    app.router.add_get("/status", status)
    app.router.add_get("/health", health)
    return app


def make_desk(cfg: WitnessConfig, clock: Clock, wall_clock: Callable[[], float] = time.time) -> WitnessDesk:
    return WitnessDesk(witness=cfg.name, boot=secrets.token_hex(8), groups=cfg.policies(), started_at=clock.now(),
                       started_wall=wall_clock(), max_skew=cfg.max_clock_skew,
                       max_nodes_per_group=cfg.max_nodes_per_group)


async def serve(cfg: WitnessConfig, stopping: asyncio.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or ``stopping`` is set). Exit status: 0, or 1 when it cannot listen."""
    clock = MonotonicClock()
    desk = make_desk(cfg, clock)
    stopping = stopping or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    runner = web.AppRunner(build_app(desk, clock), access_log=None, shutdown_timeout=1.0)  # answers are immediate
    await runner.setup()
    site = web.TCPSite(runner, cfg.listen, cfg.port, reuse_address=True)
    try:
        await site.start()
    except OSError as e:
        _log.error("cannot listen on %s:%d: %s", cfg.listen, cfg.port, e)
        await runner.cleanup()
        return 1
    port = _bound_port(site, cfg.port)
    groups = ", ".join(f"{n} (down after {g.timeout:g}s of silence)" for n, g in cfg.groups.items())
    _log.warning("witness %s (boot %s) listening on %s:%d for %s; answering UNKNOWN for nodes not heard yet "
                 "until it has listened for down_after", cfg.name, desk.boot, cfg.listen, port, groups)
    await stopping.wait()
    await runner.cleanup()
    _log.warning("witness %s stopped: %s", cfg.name, _summary(desk.status(clock.now())))
    return 0


def _bound_port(site: web.TCPSite, configured: int) -> int:
    server: Any = site._server  # the asyncio Server: the only way to learn the port when 0 was configured
    sockets = getattr(server, "sockets", None) or []
    return sockets[0].getsockname()[1] if sockets else configured


def _summary(status: dict[str, Any]) -> str:
    per_group = "; ".join(f"{n}: {g['heartbeats']} heartbeats, {g['queries']} queries"
                          for n, g in status["groups"].items())
    return f"{per_group}; refused {status['rejected'] or 'none'}"

"""A node's client of the witness (asyncio, aiohttp): ``WitnessClient(url, group, node, secret)``.

``await client.heartbeat(term, active, seq)`` sends a signed heartbeat and returns the checked
``WitnessAck`` (which acknowledges ``seq`` and carries the witness's view of us and of our partners);
``await client.query(subject)`` returns the checked ``QueryAnswer``. Every request is bounded by
``timeout`` seconds (keep it below the heartbeat timeout). Any failure (no connection, timeout, a refusal,
an answer that is not signed over our nonce or does not parse) is one exception, ``WitnessError``, with a
stable ``reason``: the caller turns it into an event ("witness unreachable"), never into an answer.

With ``failover_core.fencing.ContactLease``: call ``lease.sent(seq, now)`` *before* ``heartbeat`` and
``lease.acknowledged(ack.seq)`` after it returns: the lease runs from the send time.
The protocol itself (message fields, signatures, checks) is ``failover_core.witness_protocol.NodeSide``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from types import TracebackType

import aiohttp

from failover_core.config import http_base_url
from failover_core.errors import LocalUsageError, RemoteInputError
from failover_core.request_auth import MAX_BODY, SIG_HEADER
from failover_core.witness_protocol import NodeSide, QueryAnswer, SignedRequest, WitnessAck


class WitnessError(Exception):
    """The witness did not give a good answer. ``reason``: ``unreachable``, ``timeout``, ``refused``
    (HTTP 4xx/5xx; ``status`` holds the code), or a RemoteInputError reason for a bad answer
    (``bad_mac``, ``unauthenticated``, ``malformed``)."""

    def __init__(self, reason: str, detail: str = "", status: int | None = None) -> None:
        self.reason, self.detail, self.status = reason, detail, status
        super().__init__(f"{reason}: {detail}" if detail else reason)


def _base_url(url: str) -> str:
    try:
        return http_base_url(url)
    except ValueError as e:
        raise LocalUsageError(f"witness URL {url!r} {e}") from None


class WitnessClient:
    """One node of one group talking to one witness. Use ``async with`` or call ``close()``."""

    def __init__(self, url: str, group: str, node: str, secret: str, *, timeout: float = 1.0,
                 boot: str | None = None, max_skew: float = 30.0,
                 wall_clock: Callable[[], float] = time.time) -> None:
        if not timeout > 0:
            raise LocalUsageError(f"timeout must be > 0, got {timeout!r}")
        self.url = _base_url(url)
        self.side = NodeSide(group=group, node=node, secret=secret, boot=boot or secrets.token_hex(8),
                             max_skew=max_skew)
        self.timeout = timeout
        self._wall_clock = wall_clock
        self._session: aiohttp.ClientSession | None = None

    @property
    def boot(self) -> str:
        return self.side.boot

    async def heartbeat(self, term: int, active: bool, seq: int) -> WitnessAck:
        claim, request = self.side.heartbeat_request(term=term, active=active, seq=seq, wall_now=self._wall_clock(),
                                                     nonce=secrets.token_hex(16))
        body, signature = await self._post(request)
        try:
            return self.side.heartbeat_answer(request, claim, body, signature)
        except RemoteInputError as e:
            raise WitnessError(e.reason, f"answer to heartbeat seq {seq}: {e.detail}") from None

    async def query(self, subject: str) -> QueryAnswer:
        request = self.side.query_request(subject, wall_now=self._wall_clock(), nonce=secrets.token_hex(16))
        body, signature = await self._post(request)
        try:
            return self.side.query_answer(request, subject, body, signature)
        except RemoteInputError as e:
            raise WitnessError(e.reason, f"answer to the query about {subject}: {e.detail}") from None

    async def _post(self, request: SignedRequest) -> tuple[bytes, str | None]:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        try:
            async with self._session.post(self.url + request.path, data=request.body,
                                          headers={**request.headers, "Content-Type": "application/json"}) as r:
                body = await r.content.read(MAX_BODY + 1)
                if r.status != 200:
                    raise WitnessError("refused", f"HTTP {r.status}: {body[:200]!r}", status=r.status)
                return body, r.headers.get(SIG_HEADER)
        except TimeoutError:
            raise WitnessError("timeout", f"no answer from {self.url} within {self.timeout:g}s") from None
        except (aiohttp.ClientError, OSError) as e:
            raise WitnessError("unreachable", f"{self.url}: {type(e).__name__}: {e}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> WitnessClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

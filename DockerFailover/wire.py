"""The agents' HTTP wire format and its authentication. No I/O: times and nonces are passed in.

Every POST carries three headers: ``X-Failover-Timestamp`` (sender's wall clock, seconds),
``X-Failover-Nonce`` (random, 8-128 chars) and ``X-Failover-Signature`` = HMAC-SHA256 (shared
secret) over ``METHOD \\n PATH \\n TIMESTAMP \\n NONCE \\n`` + body. The receiver checks the
signature, then the timestamp (within ``max_skew``) and the nonce (never seen) with
failover_core's ReplayWindow; any failure is a RemoteInputError (-> 401, counted, nothing changes).
Answers to POSTs are signed too, over ``response \\n REQUEST-NONCE \\n`` + body, so a hand-over
cannot be "confirmed" by anyone but the peer. Heartbeat bodies also carry ``boot`` and ``seq``; the
agent drops one older than the newest it accepted (ReplayWindow.check_seq), so a heartbeat delivered
late cannot overwrite newer news.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from failover_core.errors import RemoteInputError
from failover_core.heartbeat_auth import HeartbeatSigner, ReplayWindow

TS_HEADER = "X-Failover-Timestamp"
NONCE_HEADER = "X-Failover-Nonce"
SIG_HEADER = "X-Failover-Signature"
MAX_BODY = 16 * 1024


def encode_body(fields: Mapping[str, Any]) -> bytes:
    return json.dumps(dict(fields), sort_keys=True, separators=(",", ":")).encode()


def decode_body(body: bytes) -> dict[str, Any]:
    """A JSON object or RemoteInputError('malformed')."""
    if len(body) > MAX_BODY:
        raise RemoteInputError("malformed", f"body of {len(body)} bytes is too large")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as e:
        raise RemoteInputError("malformed", f"body is not JSON: {e}") from None
    if not isinstance(data, dict):
        raise RemoteInputError("malformed", "body is not a JSON object")
    return data


class RequestAuthenticator:
    """Signs our requests and answers; verifies the peer's (HMAC + freshness + single use)."""

    def __init__(self, secret: str, max_skew: float) -> None:
        self._signer = HeartbeatSigner(secret)
        self._replay = ReplayWindow(max_skew=max_skew)

    @staticmethod
    def _request_bytes(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
        return f"{method.upper()}\n{path}\n{timestamp}\n{nonce}\n".encode() + body

    def sign_request(self, method: str, path: str, body: bytes, *, wall_now: float, nonce: str) -> dict[str, str]:
        ts = f"{wall_now:.6f}"
        sig = self._signer.sign_bytes(self._request_bytes(method, path, ts, nonce, body))
        return {TS_HEADER: ts, NONCE_HEADER: nonce, SIG_HEADER: sig}

    def verify_request(self, method: str, path: str, body: bytes, headers: Mapping[str, str], *,
                       wall_now: float) -> str:
        """Returns the request's nonce (to sign the answer with); raises RemoteInputError."""
        ts, nonce, sig = headers.get(TS_HEADER), headers.get(NONCE_HEADER), headers.get(SIG_HEADER)
        if ts is None or nonce is None or sig is None:
            raise RemoteInputError("unauthenticated", "missing signature headers")
        if len(ts) > 32 or len(nonce) > 128:
            raise RemoteInputError("malformed", "oversized authentication header")
        self._signer.verify_bytes(self._request_bytes(method, path, ts, nonce, body), sig)
        try:
            timestamp = float(ts)
        except ValueError:
            raise RemoteInputError("malformed", f"timestamp {ts[:32]!r} is not a number") from None
        self._replay.check_nonce(nonce=nonce, timestamp=timestamp, wall_now=wall_now)
        return nonce

    def sign_response(self, request_nonce: str, body: bytes) -> str:
        return self._signer.sign_bytes(f"response\n{request_nonce}\n".encode() + body)

    def verify_response(self, request_nonce: str, body: bytes, signature: str | None) -> None:
        if signature is None:
            raise RemoteInputError("unauthenticated", "answer is not signed")
        self._signer.verify_bytes(f"response\n{request_nonce}\n".encode() + body, signature)

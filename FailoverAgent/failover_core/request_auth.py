"""Signed HTTP requests and answers, no I/O: times and nonces are passed in. Shared by DockerFailover's
agents and the standalone witness (``FailoverWitness``) and its clients.

Every signed POST carries three headers: ``X-Failover-Timestamp`` (sender's wall clock, seconds),
``X-Failover-Nonce`` (random, 8-128 chars) and ``X-Failover-Signature`` = HMAC-SHA256 (shared
secret) over ``METHOD \\n PATH \\n TIMESTAMP \\n NONCE \\n`` + body. The receiver checks the
signature, then the timestamp (within ``max_skew``) and the nonce (never seen) with
``failover_core.heartbeat_auth.ReplayWindow``; any failure is a RemoteInputError (the HTTP layer
answers 401, counts it, and nothing changes). Answers are signed too, over
``response \\n REQUEST-NONCE \\n`` + body: an answer is good for the one request that asked, so a
recorded answer cannot be played back to a later question.

Bodies are JSON objects of at most ``MAX_BODY`` bytes; ``decode_body`` turns anything else (too
large, not UTF-8, not JSON, nested too deep, not an object) into RemoteInputError('malformed').
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


class NotAuthenticated(RemoteInputError):
    """The request failed authentication (signature, freshness or single use): answer 401."""


def encode_body(fields: Mapping[str, Any]) -> bytes:
    """The canonical body: JSON, sorted keys, no spaces."""
    return json.dumps(dict(fields), sort_keys=True, separators=(",", ":")).encode()


def decode_body(body: bytes) -> dict[str, Any]:
    """A JSON object or RemoteInputError('malformed')."""
    if len(body) > MAX_BODY:
        raise RemoteInputError("malformed", f"body of {len(body)} bytes is too large")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as e:
        raise RemoteInputError("malformed", f"body is not JSON: {e}") from None
    except RecursionError:
        raise RemoteInputError("malformed", "body is nested too deeply") from None
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

    def signed_answer(self, request_nonce: str, fields: Mapping[str, Any]) -> tuple[bytes, dict[str, str]]:
        """An answer's body and the header that signs it over the request's nonce."""
        data = encode_body(fields)
        return data, {SIG_HEADER: self.sign_response(request_nonce, data)}

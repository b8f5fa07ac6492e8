"""Heartbeat authentication: HMAC-SHA256 signatures and replay rejection, no I/O.

A heartbeat is trusted only if (1) its MAC verifies under the shared secret, (2) its timestamp is
within ``max_skew`` seconds of our wall clock (passed in by the driver), and (3) it is new: for
sequence-numbered senders, (boot, seq) must exceed the last accepted seq of that boot; for
nonce-based requests, the nonce must not have been seen while its timestamp is fresh.
Every rejection raises RemoteInputError with a stable ``reason`` (bad_mac, stale, replayed, ...)
that drivers count; a rejected heartbeat changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections import OrderedDict
from collections.abc import Mapping

from failover_core.errors import LocalUsageError, RemoteInputError

Scalar = str | int | float | bool | None


def canonical_bytes(fields: Mapping[str, Scalar]) -> bytes:
    """The exact bytes that are signed: JSON, sorted keys, no spaces. Both sides build the same."""
    for k, v in fields.items():
        if not isinstance(k, str) or not (v is None or isinstance(v, str | int | float | bool)):
            raise LocalUsageError(f"heartbeat field {k!r} must be a scalar, got {type(v).__name__}")
    return json.dumps(dict(fields), sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


class HeartbeatSigner:
    """Signs and verifies with one shared secret. With no secret, ``sign`` returns "" and
    ``verify`` accepts only an empty MAC (authentication off, as the operator configured)."""

    def __init__(self, secret: str | bytes | None) -> None:
        if isinstance(secret, str):
            secret = secret.encode()
        self._secret = secret or None

    @property
    def enabled(self) -> bool:
        return self._secret is not None

    def sign(self, fields: Mapping[str, Scalar]) -> str:
        if self._secret is None:
            return ""
        return hmac.new(self._secret, canonical_bytes(fields), hashlib.sha256).hexdigest()

    def sign_bytes(self, data: bytes) -> str:
        if self._secret is None:
            return ""
        return hmac.new(self._secret, data, hashlib.sha256).hexdigest()

    def verify(self, fields: Mapping[str, Scalar], mac: object) -> None:
        try:
            data = canonical_bytes(fields)
        except (LocalUsageError, ValueError) as e:
            raise RemoteInputError("malformed", str(e)) from None
        self.verify_bytes(data, mac)

    def verify_bytes(self, data: bytes, mac: object) -> None:
        if not isinstance(mac, str):
            raise RemoteInputError("malformed", "mac is not a string")
        if self._secret is None:
            if mac:
                raise RemoteInputError("bad_mac", "a MAC was sent but no secret is configured here")
            return
        expected = hmac.new(self._secret, data, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), mac.encode("utf-8", "surrogatepass")):
            raise RemoteInputError("bad_mac", "signature does not match the shared secret")


class ReplayWindow:
    """Rejects stale and replayed heartbeats. Times are wall-clock seconds passed in by the driver
    (the sender's timestamp can only be compared with a wall clock)."""

    def __init__(self, max_skew: float = 30.0, boots_per_sender: int = 8, max_nonces: int = 100_000) -> None:
        if max_skew <= 0:
            raise LocalUsageError("max_skew must be > 0")
        self.max_skew = max_skew
        self._boots: dict[str, OrderedDict[str, int]] = {}
        self._boots_per_sender = boots_per_sender
        self._nonces: OrderedDict[str, float] = OrderedDict()
        self._max_nonces = max_nonces

    def _fresh(self, timestamp: object, wall_now: float) -> float:
        if isinstance(timestamp, bool) or not isinstance(timestamp, int | float) or not math.isfinite(timestamp):
            raise RemoteInputError("malformed", f"timestamp {timestamp!r} is not a number")
        if abs(wall_now - timestamp) > self.max_skew:
            raise RemoteInputError("stale", f"timestamp is {wall_now - timestamp:+.1f}s off (max {self.max_skew:g}s)")
        return float(timestamp)

    def check_seq(self, *, sender: str, boot: str, seq: object, timestamp: object, wall_now: float) -> None:
        """Accept (sender, boot, seq) once: seq must grow within a boot; a new boot must be fresh."""
        self._fresh(timestamp, wall_now)
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise RemoteInputError("malformed", f"seq {seq!r} is not a non-negative integer")
        boots = self._boots.setdefault(sender, OrderedDict())
        last = boots.get(boot)
        if last is not None and seq <= last:
            raise RemoteInputError("replayed", f"{sender} boot {boot[:8]} seq {seq} <= last accepted {last}")
        boots[boot] = seq
        boots.move_to_end(boot)
        while len(boots) > self._boots_per_sender:
            boots.popitem(last=False)

    def check_nonce(self, *, nonce: object, timestamp: object, wall_now: float) -> None:
        """Accept a nonce once while its timestamp is fresh (older ones are refused as stale)."""
        ts = self._fresh(timestamp, wall_now)
        if not isinstance(nonce, str) or not (8 <= len(nonce) <= 128):
            raise RemoteInputError("malformed", "nonce must be a string of 8-128 characters")
        while self._nonces:
            _, seen_ts = next(iter(self._nonces.items()))
            if seen_ts < wall_now - self.max_skew or len(self._nonces) >= self._max_nonces:
                self._nonces.popitem(last=False)
            else:
                break
        if nonce in self._nonces:
            raise RemoteInputError("replayed", f"nonce {nonce[:12]} was already used")
        self._nonces[nonce] = ts

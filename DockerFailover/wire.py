"""The agents' HTTP wire format and its authentication. No I/O: times and nonces are passed in.

The signing itself is ``failover_core.request_auth`` (shared with the standalone witness): every POST carries
three headers: ``X-Failover-Timestamp`` (sender's wall clock, seconds),
``X-Failover-Nonce`` (random, 8-128 chars) and ``X-Failover-Signature`` = HMAC-SHA256 (shared
secret) over ``METHOD \\n PATH \\n TIMESTAMP \\n NONCE \\n`` + body. The receiver checks the
signature, then the timestamp (within ``max_skew``) and the nonce (never seen) with
failover_core's ReplayWindow; any failure is a RemoteInputError (-> 401, counted, nothing changes).
Answers to POSTs are signed too, over ``response \\n REQUEST-NONCE \\n`` + body, so a hand-over
cannot be "confirmed" by anyone but the peer (a replayed request is refused by its nonce). Heartbeat bodies
also carry ``boot`` and ``seq``; the receiver does not learn one older than the newest it accepted
(ReplayWindow.check_seq), so a heartbeat delivered late cannot overwrite newer news. The answer to a
heartbeat carries the answerer's news the same way (``PeerInbox.answer_news``: its own heartbeat fields, boot
and next seq, in one order with its POSTs): the answer renews the asker's lease, so the asker never holds a
renewed lease with older news of the peer.

``PeerInbox`` runs every check on a POST from the peer, in order, and returns what it says (a
``PeerHeartbeat`` and whether it is news, or a ``HandOverRequest``): a failed authentication raises
``NotAuthenticated`` (the HTTP layer answers 401), anything else wrong (body, sender, fields) a plain
RemoteInputError (400). Either way the request changes nothing. A heartbeat older than news already taken
(a POST or an answer with a later seq) is answered but not learnt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from DockerFailover.events import PeerHeartbeat, Role
from failover_core.errors import RemoteInputError
from failover_core.heartbeat_auth import ReplayWindow
from failover_core.request_auth import (
    MAX_BODY,
    NONCE_HEADER,
    SIG_HEADER,
    TS_HEADER,
    NotAuthenticated,
    RequestAuthenticator,
    decode_body,
    encode_body,
)

__all__ = [  # the signed-request pieces live in failover_core.request_auth; re-exported for the agent
    "MAX_BODY", "NONCE_HEADER", "SIG_HEADER", "TS_HEADER", "HandOverRequest", "NotAuthenticated", "PeerInbox",
    "RequestAuthenticator", "decode_body", "encode_body", "parse_hand_over_request", "parse_heartbeat",
]


def parse_heartbeat(fields: Mapping[str, Any]) -> PeerHeartbeat:
    """A heartbeat body's fields, checked; RemoteInputError('malformed') on anything wrong."""
    try:
        term = fields["term"]
        if isinstance(term, bool) or not isinstance(term, int) or term < 0:
            raise ValueError(f"term {term!r} is not a non-negative integer")
        for k in ("eligible", "containers_up"):
            if not isinstance(fields[k], bool):
                raise ValueError(f"{k} must be a boolean")
        if not isinstance(fields["sender"], str):
            raise ValueError("sender must be a string")
        leaving = fields.get("leaving", False)
        if not isinstance(leaving, bool):
            raise ValueError("leaving must be a boolean")
        return PeerHeartbeat(sender=fields["sender"], term=term, role=Role(fields["role"]),
                             eligible=fields["eligible"], containers_up=fields["containers_up"], leaving=leaving)
    except (KeyError, ValueError, TypeError) as e:
        raise RemoteInputError("malformed", f"heartbeat: {type(e).__name__}: {e}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class HandOverRequest:
    """The body of POST /become_primary: the active peer asks us to take over."""

    sender: str
    term: int
    reason: str


def parse_hand_over_request(fields: Mapping[str, Any]) -> HandOverRequest:
    term, reason = fields.get("term"), fields.get("reason", "")
    if isinstance(term, bool) or not isinstance(term, int) or term < 0 or not isinstance(reason, str):
        raise RemoteInputError("malformed", "become_primary needs an integer term and a string reason")
    return HandOverRequest(sender=str(fields["sender"]), term=term, reason=reason)


class PeerInbox:
    """Every POST from the peer passes here, in this order: authentication (signature, timestamp,
    nonce: NotAuthenticated), the body (a JSON object), the sender (our configured peer), the fields,
    and for heartbeats their order (boot id and growing sequence: a late one is 'replayed')."""

    def __init__(self, auth: RequestAuthenticator, peer: str, max_skew: float) -> None:
        self.auth = auth
        self.peer = peer
        self.news_order = ReplayWindow(max_skew=max_skew)  # (boot, seq) of the peer's heartbeats and answers

    def _open(self, method: str, path: str, body: bytes, headers: Mapping[str, str], wall_now: float
              ) -> tuple[str, dict[str, Any]]:
        try:
            nonce = self.auth.verify_request(method, path, body, headers, wall_now=wall_now)
        except RemoteInputError as e:
            raise NotAuthenticated(e.reason, e.detail) from None
        fields = decode_body(body)
        if fields.get("sender") != self.peer:
            raise RemoteInputError("wrong_sender", f"sender {str(fields.get('sender'))[:40]!r} is not our peer")
        return nonce, fields

    def heartbeat(self, method: str, path: str, body: bytes, headers: Mapping[str, str], *,
                  wall_now: float) -> tuple[str, tuple[PeerHeartbeat, bool]]:
        """The request's nonce, and the heartbeat with whether it is news (newer than every heartbeat and answer
        of the peer accepted so far: ``_is_news``); raises RemoteInputError. One that is not news is still
        authentic and answered: the peer was alive when it sent it, what it says is superseded."""
        nonce, fields = self._open(method, path, body, headers, wall_now)
        hb = parse_heartbeat(fields)
        return nonce, (hb, self._is_news(hb, fields, timestamp=float(headers[TS_HEADER]), wall_now=wall_now))

    def answer_news(self, fields: Mapping[str, Any] | None, *, wall_now: float) -> PeerHeartbeat | None:
        """The news in the peer's signed answer to our heartbeat (``Agent.on_heartbeat`` answers with its own
        heartbeat fields, ``boot`` and the next ``seq``): None when it is not news (``_is_news``);
        RemoteInputError when it carries none we can read. The answer is bound to our fresh request nonce, so
        our own clock stands in for its timestamp."""
        if isinstance(fields, Mapping) and "sender" not in fields and fields.get("ok") is True:
            raise RemoteInputError("no_news", "heartbeat answer without news (the peer's Docker not seen yet)")
        if not isinstance(fields, Mapping) or fields.get("sender") != self.peer:
            raise RemoteInputError("malformed", "heartbeat answer: no news from our peer in it")
        hb = parse_heartbeat(fields)
        return hb if self._is_news(hb, fields, timestamp=wall_now, wall_now=wall_now) else None

    def _is_news(self, hb: PeerHeartbeat, fields: Mapping[str, Any], *, timestamp: float, wall_now: float) -> bool:
        """Order: a heartbeat delayed in the network (TCP retransmitting it after a cut link heals), or one the
        peer sent just before it answered ours, must not overwrite newer news. Heartbeats and answers carry the
        sender's boot id and one growing sequence; False for one older than the newest accepted."""
        try:
            self.news_order.check_seq(sender=hb.sender, boot=str(fields.get("boot"))[:64], seq=fields.get("seq"),
                                      timestamp=timestamp, wall_now=wall_now)
        except RemoteInputError as e:
            if e.reason == "replayed":
                return False
            raise
        return True

    def hand_over_request(self, method: str, path: str, body: bytes, headers: Mapping[str, str], *,
                          wall_now: float) -> tuple[str, HandOverRequest]:
        """The request's nonce and what the peer asks; raises RemoteInputError."""
        nonce, fields = self._open(method, path, body, headers, wall_now)
        return nonce, parse_hand_over_request(fields)

    def signed_answer(self, request_nonce: str, fields: Mapping[str, Any]) -> tuple[bytes, dict[str, str]]:
        """The answer's body and the header that signs it over the request's nonce."""
        return self.auth.signed_answer(request_nonce, fields)

"""The per-host valets' heartbeat, both sides, no I/O: times, nonces and bytes are passed in.

``POST /v1/valet/heartbeat`` (signed as ``failover_core.request_auth`` describes: HMAC-SHA256 with the valets'
shared ``secret`` over method, path, timestamp, nonce and body; fresh timestamp; single-use nonce)::

    {"sender": "hostA", "process": "Web", "boot": "4f1c...", "seq": 812, "term": 3, "running": true,
     "eligible": true, "priority": 1, "ranking": ["hostA", "hostB"], "leaving": false}

``running``: its instance tests up (or it is starting/stopping it); ``eligible``: it may run the process
(no failed start; with a witness, its lease is valid); ``priority``: the runtime priority its test gave;
``ranking``: its hosts of the process, best first (both valets must agree); ``leaving``: its valet stops
(a goodbye). ``boot`` is random per valet start and ``seq`` grows with each heartbeat of a process: an
older one (a late TCP retransmission after a cut heals) is dropped. The answer, signed over the request's
nonce, is the receiver's own state of the process in the same fields plus ``acked_seq`` = the seq it
answers: acknowledged contact for the sender's ContactLease. Anything wrong raises RemoteInputError
(``NotAuthenticated`` -> 401 for the signature, freshness and nonce checks; 400 otherwise) and changes
nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from failover_core.errors import RemoteInputError
from failover_core.heartbeat_auth import ReplayWindow
from failover_core.request_auth import TS_HEADER, NotAuthenticated, RequestAuthenticator, decode_body, encode_body

HEARTBEAT_PATH = "/v1/valet/heartbeat"
MAX_NAME = 128


@dataclass(frozen=True, slots=True, kw_only=True)
class ValetHeartbeat:
    """One valet's state of one process, as sent (request) or answered (answer, with ``acked_seq``)."""

    sender: str
    process: str
    boot: str
    seq: int
    term: int
    running: bool
    eligible: bool
    priority: int
    ranking: tuple[str, ...]
    leaving: bool = False
    acked_seq: int | None = None

    def fields(self) -> dict[str, Any]:
        f: dict[str, Any] = {"sender": self.sender, "process": self.process, "boot": self.boot, "seq": self.seq,
                             "term": self.term, "running": self.running, "eligible": self.eligible,
                             "priority": self.priority, "ranking": list(self.ranking), "leaving": self.leaving}
        if self.acked_seq is not None:
            f["acked_seq"] = self.acked_seq
        return f

    @classmethod
    def from_fields(cls, f: Mapping[str, Any]) -> ValetHeartbeat:
        """Checked; RemoteInputError('malformed') on anything wrong."""
        try:
            for k in ("sender", "process", "boot"):
                if not isinstance(f[k], str) or not 0 < len(f[k]) <= MAX_NAME or not f[k].isprintable():
                    raise ValueError(f"{k} is not a short printable string")
            for k in ("seq", "term", "priority"):
                v = f[k]
                if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**63:
                    raise ValueError(f"{k} {str(v)[:20]!r} is not an integer >= 0")
            for k in ("running", "eligible", "leaving"):
                if not isinstance(f[k], bool):
                    raise ValueError(f"{k} is not a boolean")
            ranking = f["ranking"]
            if (not isinstance(ranking, list) or not 0 < len(ranking) <= 16
                    or not all(isinstance(h, str) and 0 < len(h) <= MAX_NAME for h in ranking)):
                raise ValueError("ranking is not a list of host names")
            acked = f.get("acked_seq")
            if acked is not None and (isinstance(acked, bool) or not isinstance(acked, int) or acked < 0):
                raise ValueError("acked_seq is not an integer >= 0")
            return cls(sender=f["sender"], process=f["process"], boot=f["boot"], seq=f["seq"], term=f["term"],
                       running=f["running"], eligible=f["eligible"], priority=f["priority"],
                       ranking=tuple(ranking), leaving=f["leaving"], acked_seq=acked)
        except (KeyError, TypeError, ValueError) as e:
            raise RemoteInputError("malformed", f"valet heartbeat: {type(e).__name__}: {e}") from None


class ValetInbox:
    """The receiving side: every heartbeat POST passes here, in order: authentication (NotAuthenticated), body,
    sender (a configured peer), process (one we arbitrate with that peer), fields, order (boot, seq)."""

    def __init__(self, auth: RequestAuthenticator, processes_by_peer: Mapping[str, frozenset[str]],
                 max_skew: float) -> None:
        self.auth = auth
        self.processes_by_peer = processes_by_peer
        self.order = ReplayWindow(max_skew=max_skew)

    def heartbeat(self, method: str, path: str, body: bytes, headers: Mapping[str, str], *,
                  wall_now: float) -> tuple[str, ValetHeartbeat]:
        try:
            nonce = self.auth.verify_request(method, path, body, headers, wall_now=wall_now)
        except RemoteInputError as e:
            raise NotAuthenticated(e.reason, e.detail) from None
        hb = ValetHeartbeat.from_fields(decode_body(body))
        if hb.acked_seq is not None:
            raise RemoteInputError("malformed", "a heartbeat request carries no acked_seq")
        known = self.processes_by_peer.get(hb.sender)
        if known is None:
            raise RemoteInputError("wrong_sender", f"sender {hb.sender[:40]!r} is not a configured peer")
        if hb.process not in known:
            raise RemoteInputError("unknown_process", f"we do not arbitrate {hb.process[:40]!r} with {hb.sender}")
        self.order.check_seq(sender=f"{hb.sender}/{hb.process}", boot=hb.boot, seq=hb.seq,
                             timestamp=float(headers[TS_HEADER]), wall_now=wall_now)
        return nonce, hb

    def answer(self, request_nonce: str, hb: ValetHeartbeat) -> tuple[bytes, dict[str, str]]:
        return self.auth.signed_answer(request_nonce, hb.fields())


class ValetSender:
    """The sending side: a signed request, and the check of the peer's signed answer."""

    def __init__(self, auth: RequestAuthenticator) -> None:
        self.auth = auth

    def request(self, hb: ValetHeartbeat, *, wall_now: float, nonce: str) -> tuple[bytes, dict[str, str]]:
        body = encode_body(hb.fields())
        return body, self.auth.sign_request("POST", HEARTBEAT_PATH, body, wall_now=wall_now, nonce=nonce)

    def answer(self, sent: ValetHeartbeat, nonce: str, body: bytes, signature: str | None,
               peer: str) -> ValetHeartbeat:
        """The peer's answer, checked: signed over our nonce, from ``peer``, about our process, acking our seq."""
        self.auth.verify_response(nonce, body, signature)
        hb = ValetHeartbeat.from_fields(decode_body(body))
        if hb.sender != peer or hb.process != sent.process or hb.acked_seq != sent.seq:
            raise RemoteInputError("malformed", f"answer from {hb.sender[:40]!r} about {hb.process[:40]!r} acks "
                                                f"{hb.acked_seq}, expected {peer} / {sent.process} / {sent.seq}")
        return hb

"""The standalone witness's protocol, both sides, no I/O: times, nonces and bytes are passed in.

Transport: HTTP POSTs signed as ``failover_core.request_auth`` describes (HMAC-SHA256 with the group's
shared secret over method, path, timestamp, nonce and body; fresh timestamp; single-use nonce), answered
with a body signed over the request's nonce (an answer is good for the one request that asked).

``POST /v1/heartbeat`` a node's claim (``HeartbeatClaim``)::

    {"group": "web-pair", "node": "server1", "term": 7, "active": true, "boot": "4f1c...", "seq": 812}

  ``group``: the pair (or cluster) the node belongs to; it picks the secret the request must be signed with.
  ``term``: the highest term the node knows; ``active``: whether it runs the service now; ``boot``: random
  per process start; ``seq``: grows with every heartbeat of that boot (a late one is dropped as replayed).
  The answer (``WitnessAck``) acknowledges that ``seq`` and says what the witness knows::

    {"witness": "witness-1", "witness_boot": "9a0e...", "group": "web-pair", "node": "server1", "seq": 812,
     "you": VIEW, "peers": [VIEW, ...], "unheard": {"state": "unknown", "down_in": 2.4},
     "highest_term": 7, "timeout": 3.0, "down_after": 3.0}

  VIEW is ``WitnessView.as_fields()``: ``{"node", "state": "up"|"down"|"unknown", "term", "active",
  "silent_for", "down_in"}``; ``peers`` are the other nodes of the group the witness has heard
  (``WitnessBook.peers_of``); ``unheard`` is what it says of a node of the group it never heard (UNKNOWN
  while the witness has listened for less than ``down_after``, DOWN after: ``WitnessAck.view_of``).
  ``timeout`` and ``down_after`` are the group's timing at the witness: a node checks they match its own.

``POST /v1/query`` an explicit question, "is ``subject`` alive, which term did it last claim?"::

    {"group": "web-pair", "node": "server2", "subject": "server1"}

  answered (``QueryAnswer``) with ``{"witness", "witness_boot", "group", "subject", "view": VIEW,
  "highest_term", "down_after"}``; the answer is bound to the query's nonce, so it cannot be replayed
  to a later question. A query changes nothing at the witness.

The witness's side is ``WitnessDesk`` (one ``WitnessBook`` per group, since each group has its own
``down_after``); the node's side is ``NodeSide``. Every check raises RemoteInputError with a stable
reason; ``NotAuthenticated`` (HTTP 401) for ``unknown_group``, ``unauthenticated``, ``bad_mac``,
``stale``, ``replayed`` (a nonce used before); a plain RemoteInputError (HTTP 400) for ``malformed``, ``replayed``
(heartbeat order: an older ``seq`` of the same boot) and ``too_many_nodes``. The desk counts every
rejection by reason (and by group once the group is known); a rejected request changes nothing.
Requests signed before the witness started (by the sender's clock) are ``stale``: a heartbeat recorded
before a restart cannot be played back to the fresh witness to make a node look up, or idle.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from failover_core.errors import LocalUsageError, RemoteInputError
from failover_core.heartbeat_auth import ReplayWindow
from failover_core.liveness import Liveness
from failover_core.request_auth import (
    SIG_HEADER,
    TS_HEADER,
    NotAuthenticated,
    RequestAuthenticator,
    decode_body,
    encode_body,
)
from failover_core.witness_book import MAX_NAME, Claim, WitnessBook, WitnessView

HEARTBEAT_PATH = "/v1/heartbeat"
QUERY_PATH = "/v1/query"
MAX_PEERS = 32  # an answer listing more partners than this is malformed
MAX_BOOT = 64
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")


def _name(fields: Mapping[str, Any], key: str) -> str:
    v = fields.get(key)
    if not isinstance(v, str) or not NAME.match(v):
        raise RemoteInputError("malformed", f"{key} {str(v)[:40]!r} is not a name ([A-Za-z0-9][A-Za-z0-9_.:@-]*)")
    return v


def _int(fields: Mapping[str, Any], key: str, *, optional: bool = False) -> int | None:
    v = fields.get(key)
    if v is None and optional:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 0 or v >= 2**63:
        raise RemoteInputError("malformed", f"{key} {str(v)[:40]!r} is not an integer >= 0")
    return v


def _number(fields: Mapping[str, Any], key: str, *, optional: bool = False) -> float | None:
    v = fields.get(key)
    if v is None and optional:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
        raise RemoteInputError("malformed", f"{key} {str(v)[:40]!r} is not a finite number >= 0")
    return float(v)


def _bool(fields: Mapping[str, Any], key: str, *, optional: bool = False) -> bool | None:
    v = fields.get(key)
    if v is None and optional:
        return None
    if not isinstance(v, bool):
        raise RemoteInputError("malformed", f"{key} {str(v)[:40]!r} is not a boolean")
    return v


def _mapping(v: object, what: str) -> Mapping[str, Any]:
    if not isinstance(v, Mapping):
        raise RemoteInputError("malformed", f"{what} is not an object")
    return v


# ------------------------------------------------------------------------------------------------ messages

@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatClaim:
    """A node's heartbeat to the witness."""

    group: str
    node: str
    term: int
    active: bool
    boot: str
    seq: int

    def __post_init__(self) -> None:
        try:
            _claim_kwargs(self.fields())
        except RemoteInputError as e:
            raise LocalUsageError(f"HeartbeatClaim: {e.detail}") from None

    def fields(self) -> dict[str, Any]:
        return {"group": self.group, "node": self.node, "term": self.term, "active": self.active,
                "boot": self.boot, "seq": self.seq}

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> HeartbeatClaim:
        """The claim in a request body, checked; RemoteInputError('malformed')."""
        return cls(**_claim_kwargs(fields))

    def claim(self) -> Claim:
        return Claim(group=self.group, node=self.node, term=self.term, active=self.active)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryRequest:
    """A node asks: is ``subject`` (of ``group``) alive, and which term did it last claim?"""

    group: str
    node: str  # who asks
    subject: str

    def __post_init__(self) -> None:
        try:
            _query_kwargs(self.fields())
        except RemoteInputError as e:
            raise LocalUsageError(f"QueryRequest: {e.detail}") from None

    def fields(self) -> dict[str, Any]:
        return {"group": self.group, "node": self.node, "subject": self.subject}

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> QueryRequest:
        """The query in a request body, checked; RemoteInputError('malformed')."""
        return cls(**_query_kwargs(fields))


def _claim_kwargs(fields: Mapping[str, Any]) -> dict[str, Any]:
    boot = fields.get("boot")
    if not isinstance(boot, str) or not (1 <= len(boot) <= MAX_BOOT) or not boot.isprintable():
        raise RemoteInputError("malformed", f"boot {str(boot)[:40]!r} is not a short printable string")
    return {"group": _name(fields, "group"), "node": _name(fields, "node"), "term": _int(fields, "term"),
            "active": _bool(fields, "active"), "boot": boot, "seq": _int(fields, "seq")}


def _query_kwargs(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {"group": _name(fields, "group"), "node": _name(fields, "node"), "subject": _name(fields, "subject")}


def view_from_fields(v: object) -> WitnessView:
    """A WitnessView from an answer, checked; RemoteInputError('malformed')."""
    f = _mapping(v, "view")
    node = f.get("node")
    if not isinstance(node, str) or not node or len(node) > MAX_NAME or not node.isprintable():
        raise RemoteInputError("malformed", f"view node {str(node)[:40]!r} is not a name")
    try:
        state = Liveness(f.get("state"))
    except ValueError:
        raise RemoteInputError("malformed", f"view state {str(f.get('state'))[:20]!r} is not up/down/unknown") from None
    return WitnessView(node=node, state=state, term=_int(f, "term", optional=True),
                       active=_bool(f, "active", optional=True), silent_for=_number(f, "silent_for", optional=True),
                       down_in=float(_number(f, "down_in") or 0.0))


@dataclass(frozen=True, slots=True, kw_only=True)
class WitnessAck:
    """The witness's answer to a heartbeat: it acknowledges ``seq`` and says what it knows of the group."""

    witness: str
    witness_boot: str
    group: str
    node: str
    seq: int
    you: WitnessView  # the witness's view of the node that sent the heartbeat
    peers: tuple[WitnessView, ...]  # every other node of the group it has heard
    unheard: Liveness  # what it says of a node of the group it never heard: UNKNOWN (grace) or DOWN
    unheard_down_in: float
    highest_term: int  # the highest term any node of the group claimed at this witness
    timeout: float
    down_after: float

    def view_of(self, node: str) -> WitnessView:
        """The witness's view of ``node``: its entry in ``peers``, else what it says of a node never heard."""
        if node == self.node:
            return self.you
        for v in self.peers:
            if v.node == node:
                return v
        return WitnessView(node=node, state=self.unheard, term=None, active=None, silent_for=None,
                           down_in=self.unheard_down_in)

    def peer_may_be_active(self, node: str) -> bool | None:
        """For ``failover_core.decide.Facts.witness_peer_active``: False when ``node`` cannot be running the
        service (DOWN at the witness, or it said it runs nothing), True when it says it does, None: no word."""
        return self.view_of(node).may_be_active

    def fields(self) -> dict[str, Any]:
        return {"witness": self.witness, "witness_boot": self.witness_boot, "group": self.group, "node": self.node,
                "seq": self.seq, "you": self.you.as_fields(), "peers": [p.as_fields() for p in self.peers],
                "unheard": {"state": self.unheard.value, "down_in": round(self.unheard_down_in, 3)},
                "highest_term": self.highest_term, "timeout": self.timeout, "down_after": round(self.down_after, 6)}

    @classmethod
    def from_fields(cls, f: Mapping[str, Any]) -> WitnessAck:
        peers = f.get("peers")
        if not isinstance(peers, list) or len(peers) > MAX_PEERS:
            raise RemoteInputError("malformed", f"peers is not a list of at most {MAX_PEERS} views")
        views = tuple(view_from_fields(p) for p in peers)
        if len({v.node for v in views}) != len(views):
            raise RemoteInputError("malformed", "peers lists a node twice")
        unheard = _mapping(f.get("unheard"), "unheard")
        try:
            unheard_state = Liveness(unheard.get("state"))
        except ValueError:
            raise RemoteInputError("malformed", "unheard.state is not up/down/unknown") from None
        if unheard_state is Liveness.UP:
            raise RemoteInputError("malformed", "a node never heard cannot be up")
        boot = f.get("witness_boot")
        if not isinstance(boot, str) or not (1 <= len(boot) <= MAX_BOOT):
            raise RemoteInputError("malformed", "witness_boot is not a short string")
        timeout, down_after = _number(f, "timeout"), _number(f, "down_after")
        assert timeout is not None and down_after is not None
        if not 0 < timeout <= down_after:
            raise RemoteInputError("malformed", f"timeout {timeout:g} / down_after {down_after:g} make no sense")
        return cls(witness=_name(f, "witness"), witness_boot=boot, group=_name(f, "group"), node=_name(f, "node"),
                   seq=int(_int(f, "seq") or 0), you=view_from_fields(f.get("you")), peers=views,
                   unheard=unheard_state, unheard_down_in=float(_number(unheard, "down_in") or 0.0),
                   highest_term=int(_int(f, "highest_term") or 0), timeout=timeout, down_after=down_after)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryAnswer:
    """The witness's answer to a query: its view of ``subject`` and the group's highest term."""

    witness: str
    witness_boot: str
    group: str
    subject: str
    view: WitnessView
    highest_term: int
    down_after: float

    def fields(self) -> dict[str, Any]:
        return {"witness": self.witness, "witness_boot": self.witness_boot, "group": self.group,
                "subject": self.subject, "view": self.view.as_fields(), "highest_term": self.highest_term,
                "down_after": round(self.down_after, 6)}

    @classmethod
    def from_fields(cls, f: Mapping[str, Any]) -> QueryAnswer:
        boot = f.get("witness_boot")
        if not isinstance(boot, str) or not (1 <= len(boot) <= MAX_BOOT):
            raise RemoteInputError("malformed", "witness_boot is not a short string")
        view = view_from_fields(f.get("view"))
        subject = _name(f, "subject")
        if view.node != subject:
            raise RemoteInputError("malformed", f"the view is of {view.node!r}, not of {subject!r}")
        return cls(witness=_name(f, "witness"), witness_boot=boot, group=_name(f, "group"), subject=subject,
                   view=view, highest_term=int(_int(f, "highest_term") or 0),
                   down_after=float(_number(f, "down_after") or 0.0))


# ------------------------------------------------------------------------------------------------ the node's side

@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A request ready to send: POST ``path`` with ``body`` and ``headers``; ``nonce`` checks the answer."""

    path: str
    body: bytes
    headers: dict[str, str]
    nonce: str


class NodeSide:
    """A node's half of the protocol: builds signed requests, checks the witness's signed answers.

    ``boot`` is random per process start (the shell makes it); ``seq`` is the caller's (it also feeds the
    node's ``ContactLease``: only an ack that echoes the seq extends the lease, from that send time)."""

    def __init__(self, *, group: str, node: str, secret: str, boot: str, max_skew: float = 30.0) -> None:
        if not secret:
            raise LocalUsageError("NodeSide needs the group's shared secret")
        HeartbeatClaim(group=group, node=node, term=0, active=False, boot=boot, seq=0)  # checks the names
        self.group, self.node, self.boot = group, node, boot
        self.auth = RequestAuthenticator(secret, max_skew)

    def heartbeat_request(self, *, term: int, active: bool, seq: int, wall_now: float, nonce: str
                          ) -> tuple[HeartbeatClaim, SignedRequest]:
        claim = HeartbeatClaim(group=self.group, node=self.node, term=term, active=active, boot=self.boot, seq=seq)
        return claim, self._signed(HEARTBEAT_PATH, claim.fields(), wall_now, nonce)

    def query_request(self, subject: str, *, wall_now: float, nonce: str) -> SignedRequest:
        q = QueryRequest(group=self.group, node=self.node, subject=subject)
        return self._signed(QUERY_PATH, q.fields(), wall_now, nonce)

    def _signed(self, path: str, fields: dict[str, Any], wall_now: float, nonce: str) -> SignedRequest:
        body = encode_body(fields)
        return SignedRequest(path, body, self.auth.sign_request("POST", path, body, wall_now=wall_now, nonce=nonce),
                             nonce)

    def _open(self, request: SignedRequest, body: bytes, signature: str | None) -> dict[str, Any]:
        self.auth.verify_response(request.nonce, body, signature)  # bad_mac / unauthenticated
        return decode_body(body)

    def heartbeat_answer(self, request: SignedRequest, claim: HeartbeatClaim, body: bytes, signature: str | None
                         ) -> WitnessAck:
        """The witness's ack, checked: signed over our nonce, for our group, node and seq."""
        ack = WitnessAck.from_fields(self._open(request, body, signature))
        if (ack.group, ack.node, ack.seq) != (claim.group, claim.node, claim.seq):
            raise RemoteInputError("malformed", f"ack is for {ack.group}/{ack.node} seq {ack.seq}, "
                                                f"not {claim.group}/{claim.node} seq {claim.seq}")
        if ack.you.node != claim.node or any(p.node == claim.node for p in ack.peers):
            raise RemoteInputError("malformed", "ack's views do not match the node that asked")
        return ack

    def query_answer(self, request: SignedRequest, subject: str, body: bytes, signature: str | None) -> QueryAnswer:
        answer = QueryAnswer.from_fields(self._open(request, body, signature))
        if (answer.group, answer.subject) != (self.group, subject):
            raise RemoteInputError("malformed", f"answer is about {answer.group}/{answer.subject}, "
                                                f"not {self.group}/{subject}")
        return answer


# ------------------------------------------------------------------------------------------------ the witness's side

@dataclass(frozen=True, slots=True, kw_only=True)
class GroupPolicy:
    """One group (pair or cluster) a witness serves: its secret and its nodes' ``timeout``, after which the
    witness calls a silent node DOWN (``down_after`` = T; the nodes' leases end earlier: ``fencing``)."""

    name: str
    secret: str
    timeout: float

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise LocalUsageError(f"GroupPolicy.name {self.name!r} is not a name")
        if not self.secret:
            raise LocalUsageError(f"group {self.name}: the secret must not be empty")
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise LocalUsageError(f"group {self.name}: timeout must be a positive number, got {self.timeout!r}")

    @property
    def down_after(self) -> float:
        return self.timeout


@dataclass(slots=True)
class _Group:
    policy: GroupPolicy
    auth: RequestAuthenticator
    order: ReplayWindow  # (boot, seq) per node
    book: WitnessBook
    heartbeats: int = 0
    queries: int = 0


class WitnessDesk:
    """The witness's half: every request passes here, in this order: the body (a bounded JSON object), its
    group (one we serve), the signature with that group's secret, its freshness and nonce, the fields, and
    for heartbeats their order; then the book is updated (heartbeats only) and a signed answer returned.

    ``now`` is monotonic (the book's clock); ``wall_now`` is only compared with the sender's timestamp.
    ``started_wall`` is the wall clock at start: requests timestamped before it are refused as ``stale``.
    """

    def __init__(self, *, witness: str, boot: str, groups: list[GroupPolicy], started_at: float,
                 started_wall: float, max_skew: float = 30.0, max_nodes_per_group: int = 16) -> None:
        if not NAME.match(witness) or not (1 <= len(boot) <= MAX_BOOT):
            raise LocalUsageError(f"witness name {witness!r} / boot {boot!r} not allowed")
        self.witness, self.boot = witness, boot
        self.started_at, self.started_wall = started_at, started_wall
        self.groups: dict[str, _Group] = {
            g.name: _Group(policy=g, auth=RequestAuthenticator(g.secret, max_skew),
                           order=ReplayWindow(max_skew=max_skew),
                           book=WitnessBook(down_after=g.down_after, started_at=started_at,
                                            max_nodes=max_nodes_per_group))
            for g in groups}
        if len(self.groups) != len(groups):
            raise LocalUsageError("group names must be unique")
        self.rejected: Counter[str] = Counter()  # every rejected request, by reason
        self.rejected_by_group: dict[str, Counter[str]] = {g: Counter() for g in self.groups}

    # -- requests

    def heartbeat(self, method: str, path: str, body: bytes, headers: Mapping[str, str], *,
                  wall_now: float, now: float) -> tuple[bytes, dict[str, str]]:
        """The signed ack of an accepted heartbeat, recorded in the group's book; raises RemoteInputError
        (``NotAuthenticated`` for HTTP 401), counted, and then nothing has changed."""
        group_name = None
        try:
            fields = decode_body(body)
            group = self._group(fields)
            group_name = group.policy.name
            nonce = self._authenticate(group, method, path, body, headers, wall_now)
            claim = HeartbeatClaim.from_fields(fields)
            group.order.check_seq(sender=claim.node, boot=claim.boot, seq=claim.seq,
                                  timestamp=float(headers[TS_HEADER]), wall_now=wall_now)
            if not group.book.heard(claim.claim(), now):
                raise RemoteInputError("too_many_nodes", f"group {group_name} already has "
                                                         f"{group.book.max_nodes} nodes")
        except RemoteInputError as e:
            raise self._rejected(e, group_name) from None
        group.heartbeats += 1
        return group.auth.signed_answer(nonce, self.ack(group_name, claim, now).fields())

    def query(self, method: str, path: str, body: bytes, headers: Mapping[str, str], *,
              wall_now: float, now: float) -> tuple[bytes, dict[str, str]]:
        """The signed answer to a query (the book is not touched); raises RemoteInputError, counted."""
        group_name = None
        try:
            fields = decode_body(body)
            group = self._group(fields)
            group_name = group.policy.name
            nonce = self._authenticate(group, method, path, body, headers, wall_now)
            q = QueryRequest.from_fields(fields)
        except RemoteInputError as e:
            raise self._rejected(e, group_name) from None
        group.queries += 1
        answer = QueryAnswer(witness=self.witness, witness_boot=self.boot, group=group_name, subject=q.subject,
                             view=group.book.view(group_name, q.subject, now),
                             highest_term=group.book.highest_term(group_name),
                             down_after=group.policy.down_after)
        return group.auth.signed_answer(nonce, answer.fields())

    def ack(self, group_name: str, claim: HeartbeatClaim, now: float) -> WitnessAck:
        group = self.groups[group_name]
        book, policy = group.book, group.policy
        grace_left = self.started_at + book.down_after - now
        return WitnessAck(witness=self.witness, witness_boot=self.boot, group=group_name, node=claim.node,
                          seq=claim.seq, you=book.view(group_name, claim.node, now),
                          peers=tuple(book.peers_of(group_name, claim.node, now)[:MAX_PEERS]),
                          unheard=Liveness.UNKNOWN if grace_left > 0 else Liveness.DOWN,
                          unheard_down_in=max(0.0, grace_left), highest_term=book.highest_term(group_name),
                          timeout=policy.timeout, down_after=policy.down_after)

    def _group(self, fields: Mapping[str, Any]) -> _Group:
        """The group a request names (it picks the secret); the signature is checked next."""
        name = fields.get("group")
        group = self.groups.get(name) if isinstance(name, str) else None
        if group is None:
            raise NotAuthenticated("unknown_group", f"group {str(name)[:40]!r} is not served here")
        return group

    def _authenticate(self, group: _Group, method: str, path: str, body: bytes, headers: Mapping[str, str],
                      wall_now: float) -> str:
        try:
            nonce = group.auth.verify_request(method, path, body, headers, wall_now=wall_now)
        except RemoteInputError as e:
            raise NotAuthenticated(e.reason, e.detail) from None
        if float(headers[TS_HEADER]) < self.started_wall:
            raise NotAuthenticated("stale", "signed before this witness started")
        return nonce

    def _rejected(self, e: RemoteInputError, group: str | None) -> RemoteInputError:
        self.rejected[e.reason] += 1
        if group is not None:
            self.rejected_by_group[group][e.reason] += 1
        return e

    # -- what it knows

    def status(self, now: float) -> dict[str, Any]:
        """Everything the witness knows, for GET /status."""
        groups: dict[str, Any] = {}
        for name, g in self.groups.items():
            heard = g.book.groups().get(name, [])
            groups[name] = {
                "timeout": g.policy.timeout, "down_after": round(g.policy.down_after, 3),
                "highest_term": g.book.highest_term(name),
                "nodes": {n: g.book.view(name, n, now).as_fields() for n in heard},
                "heartbeats": g.heartbeats, "queries": g.queries,
                "rejected": dict(sorted(self.rejected_by_group[name].items())),
                "refused_full": g.book.refused_full,
            }
        return {"witness": self.witness, "boot": self.boot, "listening_for": round(now - self.started_at, 3),
                "groups": groups, "rejected": dict(sorted(self.rejected.items()))}


__all__ = [
    "HEARTBEAT_PATH", "MAX_PEERS", "QUERY_PATH", "SIG_HEADER", "GroupPolicy", "HeartbeatClaim", "NodeSide",
    "NotAuthenticated", "QueryAnswer", "QueryRequest", "SignedRequest", "WitnessAck", "WitnessDesk",
    "view_from_fields",
]

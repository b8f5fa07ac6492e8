"""failover_core.witness_protocol, both sides wired through bytes, on a fake clock (no network, no I/O)."""

from __future__ import annotations

import itertools
import json

import pytest

from failover_core.clock import FakeClock
from failover_core.errors import LocalUsageError, RemoteInputError
from failover_core.liveness import Liveness
from failover_core.request_auth import SIG_HEADER, TS_HEADER, NotAuthenticated, RequestAuthenticator, encode_body
from failover_core.witness_protocol import (
    HEARTBEAT_PATH,
    QUERY_PATH,
    GroupPolicy,
    HeartbeatClaim,
    NodeSide,
    QueryRequest,
    SignedRequest,
    WitnessAck,
    WitnessDesk,
)

S1, S2 = "secret-of-pair-one-0123", "secret-of-pair-two-4567"
TIMING = GroupPolicy(name="pair1", secret="x", timeout=3.0)  # down_after = timeout
WALL0 = 1_700_000_000.0  # wall clock at the witness's start (only compared with the senders' timestamps)


class World:
    """One witness desk and its nodes, on one fake monotonic clock (the wall clock follows it)."""

    def __init__(self, started_at: float = 100.0) -> None:
        self.clock = FakeClock(started_at)
        self.nonces = (f"nonce-{i:010d}" for i in itertools.count())
        self.desk = WitnessDesk(witness="w1", boot="boot-w1", started_at=started_at, started_wall=self.wall(),
                                groups=[GroupPolicy(name="pair1", secret=S1, timeout=TIMING.timeout),
                                        GroupPolicy(name="pair2", secret=S2, timeout=TIMING.timeout)])
        self.nodes: dict[tuple[str, str], NodeSide] = {}
        self.seqs: dict[tuple[str, str], itertools.count[int]] = {}

    def wall(self) -> float:
        return WALL0 + self.clock.now() - 100.0

    def node(self, group: str, name: str, secret: str | None = None) -> NodeSide:
        key = (group, name)
        if key not in self.nodes:
            self.nodes[key] = NodeSide(group=group, node=name, secret=secret or (S1 if group == "pair1" else S2),
                                       boot=f"boot-{name}")
            self.seqs[key] = itertools.count(1)
        return self.nodes[key]

    def request(self, group: str, name: str, term: int, active: bool) -> tuple[HeartbeatClaim, SignedRequest]:
        side = self.node(group, name)
        return side.heartbeat_request(term=term, active=active, seq=next(self.seqs[(group, name)]),
                                      wall_now=self.wall(), nonce=next(self.nonces))

    def deliver(self, request: SignedRequest, path: str | None = None) -> tuple[bytes, dict[str, str]]:
        handle = self.desk.heartbeat if request.path == HEARTBEAT_PATH else self.desk.query
        return handle("POST", path or request.path, request.body, request.headers, wall_now=self.wall(),
                      now=self.clock.now())

    def heartbeat(self, group: str, name: str, term: int, active: bool) -> WitnessAck:
        claim, req = self.request(group, name, term, active)
        body, headers = self.deliver(req)
        return self.node(group, name).heartbeat_answer(req, claim, body, headers[SIG_HEADER])

    def query(self, group: str, asker: str, subject: str):  # type: ignore[no-untyped-def]
        side = self.node(group, asker)
        req = side.query_request(subject, wall_now=self.wall(), nonce=next(self.nonces))
        body, headers = self.deliver(req)
        return side.query_answer(req, subject, body, headers[SIG_HEADER])

    def nodes_seen(self) -> dict[str, object]:
        return {g: {n: (v["term"], v["active"]) for n, v in s["nodes"].items()}
                for g, s in self.desk.status(self.clock.now())["groups"].items()}


def test_heartbeat_is_acknowledged_with_the_partners_views_and_the_highest_term() -> None:
    w = World()
    ack_a = w.heartbeat("pair1", "a", term=4, active=True)
    assert (ack_a.witness, ack_a.group, ack_a.node, ack_a.seq) == ("w1", "pair1", "a", 1)
    assert ack_a.you.state is Liveness.UP and (ack_a.you.term, ack_a.you.active) == (4, True)
    assert ack_a.peers == () and ack_a.highest_term == 4
    assert (ack_a.timeout, ack_a.down_after) == (3.0, pytest.approx(TIMING.down_after))
    w.clock.advance(1.0)
    ack_b = w.heartbeat("pair1", "b", term=3, active=False)
    (peer,) = ack_b.peers
    assert (peer.node, peer.state, peer.term, peer.active) == ("a", Liveness.UP, 4, True)
    assert peer.silent_for == pytest.approx(1.0) and ack_b.highest_term == 4
    assert ack_b.peer_may_be_active("a") is True
    w.clock.advance(1.0)
    ack_a2 = w.heartbeat("pair1", "a", term=4, active=True)
    assert ack_a2.seq == 2 and ack_a2.view_of("b").active is False and ack_a2.peer_may_be_active("b") is False
    assert w.desk.status(w.clock.now())["groups"]["pair1"]["heartbeats"] == 3


def test_a_silent_node_goes_down_after_down_after_of_silence_not_before() -> None:
    w = World()
    w.heartbeat("pair1", "a", term=1, active=True)
    w.clock.advance(TIMING.down_after - 0.01)
    assert w.query("pair1", "b", "a").view.state is Liveness.UP
    assert w.heartbeat("pair1", "b", 1, False).view_of("a").state is Liveness.UP
    w.clock.advance(0.02)
    answer = w.query("pair1", "b", "a")
    assert answer.view.state is Liveness.DOWN and answer.view.term == 1 and answer.view.may_be_active is False
    assert answer.highest_term == 1


def test_a_fresh_witness_says_unknown_until_it_has_listened_for_down_after() -> None:
    w = World()  # e.g. just restarted: "a" ran the service before, this witness never heard it
    ack = w.heartbeat("pair1", "b", term=2, active=False)
    assert ack.view_of("a").state is Liveness.UNKNOWN and ack.peer_may_be_active("a") is None
    assert ack.unheard_down_in == pytest.approx(TIMING.down_after, abs=0.001)
    w.clock.advance(TIMING.down_after - 0.01)
    assert w.query("pair1", "b", "a").view.state is Liveness.UNKNOWN
    w.clock.advance(0.02)
    assert w.query("pair1", "b", "a").view.state is Liveness.DOWN
    ack = w.heartbeat("pair1", "b", term=2, active=False)
    assert ack.unheard is Liveness.DOWN and ack.peer_may_be_active("a") is False


def test_a_query_changes_nothing() -> None:
    w = World()
    w.heartbeat("pair1", "a", 1, True)
    before = w.nodes_seen()
    w.query("pair1", "b", "a")
    w.query("pair1", "b", "nobody")
    assert w.nodes_seen() == before and "b" not in before["pair1"]  # type: ignore[operator]
    assert w.desk.status(w.clock.now())["groups"]["pair1"]["queries"] == 2


def refused(w: World, req: SignedRequest, reason: str, *, auth: bool, path: str | None = None) -> None:
    before, counted = w.nodes_seen(), w.desk.rejected[reason]
    with pytest.raises(RemoteInputError) as e:
        w.deliver(req, path)
    assert e.value.reason == reason, e.value
    assert isinstance(e.value, NotAuthenticated) is auth  # 401 vs 400
    assert w.desk.rejected[reason] == counted + 1
    assert w.nodes_seen() == before


def test_forged_replayed_stale_and_malformed_requests_change_nothing_and_are_counted() -> None:
    w = World()
    w.heartbeat("pair1", "a", 1, True)
    # forged: signed with another secret (a node of pair2 knows only pair2's secret)
    forger = NodeSide(group="pair1", node="a", secret=S2, boot="boot-x")
    _, req = forger.heartbeat_request(term=9, active=False, seq=50, wall_now=w.wall(), nonce="forged-nonce-1")
    refused(w, req, "bad_mac", auth=True)
    # replayed: the same signed request twice
    _, req = w.request("pair1", "a", 2, True)
    w.deliver(req)
    refused(w, req, "replayed", auth=True)
    # the body swapped under a good signature
    _, req = w.request("pair1", "a", 3, True)
    tampered = SignedRequest(req.path, req.body.replace(b'"term":3', b'"term":99'), req.headers, req.nonce)
    refused(w, tampered, "bad_mac", auth=True)
    # a heartbeat's signature does not authorize a query (the path is signed)
    _, req = w.request("pair1", "a", 3, True)
    refused(w, req, "bad_mac", auth=True, path=QUERY_PATH)
    # stale: timestamp far from the witness's clock
    side = w.node("pair1", "a")
    _, req = side.heartbeat_request(term=3, active=True, seq=90, wall_now=w.wall() - 31, nonce="stale-nonce-1")
    refused(w, req, "stale", auth=True)
    # late: an older seq of the same boot (a heartbeat delayed in the network), properly signed
    _, req = side.heartbeat_request(term=3, active=False, seq=1, wall_now=w.wall(), nonce="late-nonce-001")
    refused(w, req, "replayed", auth=False)
    # unsigned
    refused(w, SignedRequest(HEARTBEAT_PATH, req.body, {TS_HEADER: "1"}, "x" * 8), "unauthenticated", auth=True)
    # malformed: not JSON, not an object, and well signed but wrong fields
    refused(w, SignedRequest(HEARTBEAT_PATH, b"\xff not json", req.headers, "n"), "malformed", auth=False)
    refused(w, SignedRequest(HEARTBEAT_PATH, b"[1, 2]", req.headers, "n"), "malformed", auth=False)
    refused(w, SignedRequest(HEARTBEAT_PATH, b"[" * 10000, req.headers, "n"), "malformed", auth=False)
    auth = RequestAuthenticator(S1, 30)
    for i, fields in enumerate([
        {"group": "pair1", "node": "a", "term": "3", "active": True, "boot": "b", "seq": 100},
        {"group": "pair1", "node": "a", "term": 3, "active": 1, "boot": "b", "seq": 101},
        {"group": "pair1", "node": "a b", "term": 3, "active": True, "boot": "b", "seq": 102},
        {"group": "pair1", "node": "a", "term": 3, "active": True, "boot": "", "seq": 103},
        {"group": "pair1", "node": "a", "term": -1, "active": True, "boot": "b", "seq": 104},
        {"group": "pair1", "node": "a", "term": 3, "active": True, "boot": "b"},
    ]):
        body = encode_body(fields)
        headers = auth.sign_request("POST", HEARTBEAT_PATH, body, wall_now=w.wall(), nonce=f"field-nonce-{i}")
        refused(w, SignedRequest(HEARTBEAT_PATH, body, headers, f"field-nonce-{i}"), "malformed", auth=False)
    status = w.desk.status(w.clock.now())
    assert status["rejected"]["bad_mac"] == 3 and status["rejected"]["malformed"] == 9
    assert status["groups"]["pair1"]["rejected"]["replayed"] == 2  # the nonce and the late seq


def test_a_request_signed_before_the_witness_started_is_stale() -> None:
    """A heartbeat recorded before a restart cannot be played back to the fresh witness."""
    w = World()
    _, req = w.node("pair1", "a").heartbeat_request(term=1, active=False, seq=1, wall_now=w.wall() - 1.0,
                                                    nonce="before-start-1")
    refused(w, req, "stale", auth=True)


def test_unknown_group_is_refused() -> None:
    w = World()
    stranger = NodeSide(group="pair3", node="a", secret=S1, boot="boot-a")
    _, req = stranger.heartbeat_request(term=1, active=True, seq=1, wall_now=w.wall(), nonce="stranger-nonce")
    refused(w, req, "unknown_group", auth=True)
    body = encode_body({"node": "a"})
    refused(w, SignedRequest(HEARTBEAT_PATH, body, {}, "n"), "unknown_group", auth=True)
    assert "pair3" not in w.desk.status(w.clock.now())["groups"]


def test_two_groups_are_kept_apart() -> None:
    w = World()
    w.heartbeat("pair1", "a", 5, True)
    w.heartbeat("pair2", "a", 1, False)  # the same node name in another group is another node
    ack = w.heartbeat("pair2", "b", 2, True)
    assert [p.node for p in ack.peers] == ["a"] and ack.peers[0].term == 1 and ack.highest_term == 2
    assert w.heartbeat("pair1", "b", 0, False).highest_term == 5
    # pair1's secret does not speak for pair2
    side = NodeSide(group="pair2", node="c", secret=S1, boot="boot-c")
    _, req = side.heartbeat_request(term=7, active=True, seq=1, wall_now=w.wall(), nonce="cross-nonce-1")
    refused(w, req, "bad_mac", auth=True)
    assert w.nodes_seen() == {"pair1": {"a": (5, True), "b": (0, False)}, "pair2": {"a": (1, False), "b": (2, True)}}
    assert w.desk.rejected_by_group["pair2"]["bad_mac"] == 1 and not w.desk.rejected_by_group["pair1"]


def test_a_full_group_refuses_new_nodes_rather_than_acking_what_it_does_not_record() -> None:
    w = World()
    w.desk.groups["pair1"].book.max_nodes = 2
    w.heartbeat("pair1", "a", 1, True)
    w.heartbeat("pair1", "b", 1, False)
    _, req = w.request("pair1", "c", 1, True)
    refused(w, req, "too_many_nodes", auth=False)


# ------------------------------------------------------------------------------------------------ the node's checks

def answer_for(w: World, group: str = "pair1", name: str = "a") -> tuple[HeartbeatClaim, SignedRequest, bytes, str]:
    claim, req = w.request(group, name, 1, True)
    body, headers = w.deliver(req)
    return claim, req, body, headers[SIG_HEADER]


def test_the_node_accepts_only_an_answer_signed_over_its_own_nonce() -> None:
    w = World()
    side = w.node("pair1", "a")
    claim, req, body, sig = answer_for(w)
    assert side.heartbeat_answer(req, claim, body, sig).seq == claim.seq
    claim2, req2 = w.request("pair1", "a", 1, True)  # a later question, answered with the old answer
    with pytest.raises(RemoteInputError, match="bad_mac"):
        side.heartbeat_answer(req2, claim2, body, sig)
    with pytest.raises(RemoteInputError, match="unauthenticated"):
        side.heartbeat_answer(req, claim, body, None)
    with pytest.raises(RemoteInputError, match="bad_mac"):
        side.heartbeat_answer(req, claim, body.replace(b'"up"', b'"down"'), sig)
    # an answer signed by the other group's witness secret
    other = RequestAuthenticator(S2, 30)
    with pytest.raises(RemoteInputError, match="bad_mac"):
        side.heartbeat_answer(req, claim, body, other.sign_response(req.nonce, body))


def test_the_node_checks_that_the_ack_is_for_its_group_node_and_seq() -> None:
    w = World()
    side, auth = w.node("pair1", "a"), RequestAuthenticator(S1, 30)
    claim, req, body, _ = answer_for(w)
    good = WitnessAck.from_fields(json.loads(body)).fields()
    for change in ({"seq": claim.seq + 1}, {"node": "b"}, {"group": "pair2"}, {"peers": [good["you"]]},
                   {"you": {**good["you"], "node": "b"}}, {"unheard": {"state": "up", "down_in": 0}},
                   {"peers": "x"}, {"timeout": 0}, {"highest_term": -1}, {"you": {**good["you"], "state": "maybe"}}):
        data = encode_body({**good, **change})
        with pytest.raises(RemoteInputError, match="malformed"):
            side.heartbeat_answer(req, claim, data, auth.sign_response(req.nonce, data))


def test_query_answers_are_checked_too() -> None:
    w = World()
    side, auth = w.node("pair1", "b"), RequestAuthenticator(S1, 30)
    req = side.query_request("a", wall_now=w.wall(), nonce="query-nonce-01")
    body, headers = w.deliver(req)
    answer = side.query_answer(req, "a", body, headers[SIG_HEADER])
    assert answer.subject == "a" and answer.view.state is Liveness.UNKNOWN and answer.witness == "w1"
    with pytest.raises(RemoteInputError, match="malformed"):  # an answer about someone else
        side.query_answer(req, "c", body, headers[SIG_HEADER])
    data = body.replace(b'"subject":"a"', b'"subject":"c"')
    with pytest.raises(RemoteInputError, match="malformed"):  # the view does not match the subject
        side.query_answer(req, "c", data, auth.sign_response(req.nonce, data))


def test_messages_refuse_bad_values_at_construction() -> None:
    for kwargs in ({"term": -1}, {"node": ""}, {"group": "a/b"}, {"boot": ""}, {"active": "yes"}, {"seq": True}):
        with pytest.raises(LocalUsageError):
            HeartbeatClaim(**{"group": "g", "node": "n", "term": 0, "active": False, "boot": "b", "seq": 0,
                              **kwargs})
    with pytest.raises(LocalUsageError):
        QueryRequest(group="g", node="n", subject="")
    with pytest.raises(LocalUsageError):
        NodeSide(group="g", node="n", secret="", boot="b")
    with pytest.raises(LocalUsageError):
        WitnessDesk(witness="w", boot="b", started_at=0, started_wall=0,
                    groups=[GroupPolicy(name="g", secret="s", timeout=TIMING.timeout)] * 2)

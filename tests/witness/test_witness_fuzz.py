"""Arbitrary input never crashes either side of the witness protocol: the only error is RemoteInputError,
and a rejected request leaves the witness's book as it was."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failover_core.errors import RemoteInputError
from failover_core.request_auth import NONCE_HEADER, SIG_HEADER, TS_HEADER, RequestAuthenticator, encode_body
from failover_core.witness_protocol import (
    HEARTBEAT_PATH,
    QUERY_PATH,
    GroupPolicy,
    NodeSide,
    WitnessAck,
    WitnessDesk,
)

SECRET = "fuzzing-secret-0123456789"
WALL = 1_700_000_000.0
FIELD_NAMES = ["group", "node", "term", "active", "boot", "seq", "subject", "witness", "witness_boot", "you",
               "peers", "unheard", "highest_term", "timeout", "down_after", "state", "down_in", "silent_for", "view"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                    st.floats(allow_nan=False), st.text(max_size=40),
                    st.sampled_from(["pair1", "a", "b", "up", "down", "unknown", "boot-1"]))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=8)),
                                                 inner, max_size=6)), max_leaves=20)
objects = st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=10)
header_values = st.one_of(st.text(max_size=60), st.sampled_from([f"{WALL:.6f}", "nan", "inf", "-1e308", "x" * 200]))
headers = st.dictionaries(st.sampled_from([TS_HEADER, NONCE_HEADER, SIG_HEADER, "Other"]), header_values, max_size=4)


def desk() -> WitnessDesk:
    return WitnessDesk(witness="w1", boot="boot-w1", started_at=0.0, started_wall=WALL - 100,
                       groups=[GroupPolicy(name="pair1", secret=SECRET, timeout=3)])


def book(d: WitnessDesk) -> dict[str, Any]:
    return {g: s["nodes"] for g, s in d.status(1.0)["groups"].items()}


def deliver(d: WitnessDesk, path: str, body: bytes, hdrs: dict[str, str]) -> None:
    handle = d.heartbeat if path == HEARTBEAT_PATH else d.query
    before, rejected = book(d), sum(d.rejected.values())
    try:
        data, answer_headers = handle("POST", path, body, hdrs, wall_now=WALL, now=1.0)
    except RemoteInputError:
        assert book(d) == before and sum(d.rejected.values()) == rejected + 1
        return
    assert json.loads(data) and answer_headers[SIG_HEADER]


@settings(max_examples=400, deadline=None)
@given(body=st.binary(max_size=300), hdrs=headers, path=st.sampled_from([HEARTBEAT_PATH, QUERY_PATH]))
def test_arbitrary_bytes_and_headers_never_crash_the_desk(body: bytes, hdrs: dict[str, str], path: str) -> None:
    deliver(desk(), path, body, hdrs)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=objects, path=st.sampled_from([HEARTBEAT_PATH, QUERY_PATH]), in_group=st.booleans())
def test_arbitrary_well_signed_objects_never_crash_the_desk(fields: dict[str, Any], path: str,
                                                             in_group: bool) -> None:
    """Signed with the right secret, so the field checks themselves are what is exercised."""
    if in_group:
        fields = {**fields, "group": "pair1"}
    try:
        body = encode_body(fields)
    except ValueError:
        return  # not representable as JSON (e.g. an infinite float): no sender could send it
    hdrs = RequestAuthenticator(SECRET, 30).sign_request("POST", path, body, wall_now=WALL, nonce="fuzz-nonce-1")
    d = desk()
    deliver(d, path, body, hdrs)
    for nodes in book(d).values():
        for view in nodes.values():  # whatever was accepted is a well-formed claim
            assert isinstance(view["term"], int) and isinstance(view["active"], bool)


def good_ack() -> tuple[NodeSide, Any, Any, dict[str, Any]]:
    d, side = desk(), NodeSide(group="pair1", node="a", secret=SECRET, boot="boot-a")
    claim, req = side.heartbeat_request(term=1, active=True, seq=1, wall_now=WALL, nonce="ack-nonce-001")
    data, _ = d.heartbeat("POST", req.path, req.body, req.headers, wall_now=WALL, now=1.0)
    return side, claim, req, json.loads(data)


@settings(max_examples=400, deadline=None)
@given(changes=objects, drop=st.sets(st.sampled_from(FIELD_NAMES), max_size=3))
def test_arbitrary_well_signed_answers_never_crash_the_node(changes: dict[str, Any], drop: set[str]) -> None:
    side, claim, req, good = good_ack()
    fields = {k: v for k, v in {**good, **changes}.items() if k not in drop}
    try:
        body = encode_body(fields)
    except ValueError:
        return
    sig = RequestAuthenticator(SECRET, 30).sign_response(req.nonce, body)
    try:
        ack = side.heartbeat_answer(req, claim, body, sig)
    except RemoteInputError:
        return
    assert isinstance(ack, WitnessAck) and ack.seq == claim.seq and ack.you.node == "a"
    with contextlib.suppress(RemoteInputError):
        side.query_answer(side.query_request("b", wall_now=WALL, nonce="q-nonce-0001"), "b", body, sig)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=300), sig=st.one_of(st.none(), st.text(max_size=70)))
def test_arbitrary_answer_bytes_never_crash_the_node(body: bytes, sig: str | None) -> None:
    side, claim, req, _ = good_ack()
    for signature in (sig, RequestAuthenticator(SECRET, 30).sign_response(req.nonce, body)):
        with contextlib.suppress(RemoteInputError):
            side.heartbeat_answer(req, claim, body, signature)

"""The real witness process (``python -m FailoverWitness``) on 127.0.0.1, spoken to over HTTP: acks, a restart,
forged/replayed/stale/malformed requests, unknown and separate groups, and the client's failures."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from failover_core.liveness import Liveness
from failover_core.request_auth import encode_body
from failover_core.witness_protocol import HEARTBEAT_PATH, QUERY_PATH, NodeSide, SignedRequest
from FailoverWitness.client import WitnessClient, WitnessError
from labs.witness import WitnessProcess

pytestmark = pytest.mark.integration

S1, S2 = "secret-of-pair-one-0123", "secret-of-pair-two-4567"
T = 1.6
DOWN_AFTER = T  # the witness calls a node down after its timeout (the node's lease ends earlier)
GROUPS = {"pair1": {"secret": S1, "timeout": T}, "pair2": {"secret": S2, "timeout": T}}


@pytest.fixture
def witness(tmp_path: Path) -> Iterator[WitnessProcess]:
    w = WitnessProcess(tmp_path / "witness", GROUPS)
    with w:
        try:
            yield w
        except BaseException:
            print(w.log_text())
            raise


def client(w: WitnessProcess, node: str, group: str = "pair1", secret: str | None = None,
           timeout: float = 1.0) -> WitnessClient:
    return WitnessClient(w.url, group, node, secret or (S1 if group == "pair1" else S2), timeout=timeout)


def nodes(status: dict[str, Any]) -> dict[str, dict[str, tuple[int, bool]]]:
    return {g: {n: (v["term"], v["active"]) for n, v in s["nodes"].items()} for g, s in status["groups"].items()}


def test_signed_heartbeats_are_acknowledged_with_the_partners_views_and_terms(witness: WitnessProcess) -> None:
    async def scenario() -> None:
        async with client(witness, "a") as a, client(witness, "b") as b:
            ack = await a.heartbeat(term=3, active=True, seq=1)
            assert (ack.node, ack.seq, ack.you.state, ack.peers) == ("a", 1, Liveness.UP, ())
            assert (ack.witness, ack.timeout, ack.down_after) == ("witness-lab", T, pytest.approx(DOWN_AFTER))
            ack = await b.heartbeat(term=3, active=False, seq=1)
            (peer,) = ack.peers
            assert (peer.node, peer.state, peer.term, peer.active) == ("a", Liveness.UP, 3, True)
            assert ack.peer_may_be_active("a") is True and ack.highest_term == 3
            ack = await a.heartbeat(term=4, active=True, seq=2)
            assert ack.seq == 2 and ack.peer_may_be_active("b") is False and ack.highest_term == 4
            answer = await b.query("a")
            assert (answer.view.state, answer.view.term, answer.view.active) == (Liveness.UP, 4, True)
            assert answer.highest_term == 4 and answer.witness_boot == ack.witness_boot

    asyncio.run(scenario())
    status = witness.status()
    assert nodes(status) == {"pair1": {"a": (4, True), "b": (3, False)}, "pair2": {}}
    assert status["groups"]["pair1"]["heartbeats"] == 3 and status["groups"]["pair1"]["queries"] == 1
    assert status["groups"]["pair1"]["down_after"] == round(DOWN_AFTER, 3) and status["rejected"] == {}
    assert witness.get("/health")["ok"] is True
    assert witness.stop(signal.SIGTERM) == 0
    assert "stopped: pair1: 3 heartbeats, 1 queries" in witness.log_text()


def test_a_restarted_witness_answers_unknown_until_down_after_then_down_for_a_silent_node(
        witness: WitnessProcess) -> None:
    async def before() -> str:
        async with client(witness, "a") as a, client(witness, "b") as b:
            await a.heartbeat(term=5, active=True, seq=1)
            ack = await b.heartbeat(term=5, active=False, seq=1)
            assert ack.view_of("a").state is Liveness.UP
            return ack.witness_boot

    old_boot = asyncio.run(before())
    witness.stop(signal.SIGKILL)
    spawned = time.monotonic()  # the restarted witness starts listening after this
    witness.start()  # "a" died meanwhile: only "b" speaks to the new witness

    async def after() -> list[tuple[float, Liveness, float]]:
        seen: list[tuple[float, Liveness, float]] = []  # (time, state of a, the witness's down_in for it)
        async with client(witness, "b") as b:
            seq = 1
            while time.monotonic() < spawned + DOWN_AFTER + 5:
                seq += 1
                ack = await b.heartbeat(term=5, active=False, seq=seq)  # b keeps its own boot: seq keeps growing
                assert ack.witness_boot != old_boot and ack.you.state is Liveness.UP
                answer = await b.query("a")
                assert ack.view_of("a").term is None and answer.view.term is None  # it claims nothing about a
                seen.append((time.monotonic(), answer.view.state, answer.view.down_in))
                if answer.view.state is Liveness.DOWN:
                    return seen
                await asyncio.sleep(0.1)  # b's heartbeat period
        return seen

    seen = asyncio.run(after())
    states = [s for _, s, _ in seen]
    assert states[0] is Liveness.UNKNOWN and states[-1] is Liveness.DOWN, (seen, witness.log_text())
    first_down = states.index(Liveness.DOWN)
    assert set(states[:first_down]) == {Liveness.UNKNOWN}  # never UP, never DOWN early
    assert seen[first_down][0] - spawned >= DOWN_AFTER  # DOWN no earlier than down_after after its start
    # and promptly after: the last UNKNOWN said how long was left
    t_last_unknown, _, left = seen[first_down - 1]
    assert seen[first_down][0] <= t_last_unknown + left + 0.5
    assert witness.get("/health")["listening_for"] >= DOWN_AFTER


def signed(side: NodeSide, path: str, fields: dict[str, Any], *, wall_now: float | None = None,
           nonce: str = "n" * 16) -> SignedRequest:
    body = encode_body(fields)
    return SignedRequest(path, body, side.auth.sign_request("POST", path, body, wall_now=wall_now or time.time(),
                                                            nonce=nonce), nonce)


async def post(w: WitnessProcess, req: SignedRequest) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.post(w.url + req.path, data=req.body, headers=req.headers) as r:
        return r.status, await r.json(content_type=None)


def test_forged_replayed_stale_and_malformed_requests_are_refused_counted_and_change_nothing(
        witness: WitnessProcess) -> None:
    a = NodeSide(group="pair1", node="a", secret=S1, boot="boot-a")
    forger = NodeSide(group="pair1", node="a", secret=S2, boot="boot-f")  # knows another group's secret
    hb = {"group": "pair1", "node": "a", "term": 2, "active": True, "boot": "boot-a"}

    async def scenario() -> None:
        good = signed(a, HEARTBEAT_PATH, {**hb, "seq": 10}, nonce="good-nonce-0001")
        assert (await post(witness, good))[0] == 200
        before = nodes(witness.status())
        cases = [
            (signed(forger, HEARTBEAT_PATH, {**hb, "term": 9, "active": False, "seq": 11}), 401, "bad_mac"),
            (good, 401, "replayed"),  # the same request again
            (signed(a, HEARTBEAT_PATH, {**hb, "seq": 12}, wall_now=time.time() - 60, nonce="old-nonce-0001"),
             401, "stale"),
            (signed(a, HEARTBEAT_PATH, {**hb, "active": False, "seq": 9}, nonce="late-nonce-001"),
             400, "replayed"),  # older than the newest accepted seq: delivered late
            (SignedRequest(HEARTBEAT_PATH, encode_body({**hb, "seq": 13}), {}, ""), 401, "unauthenticated"),
            (SignedRequest(HEARTBEAT_PATH, b"{not json", good.headers, ""), 400, "malformed"),
            (SignedRequest(HEARTBEAT_PATH, b"[" * 5000, good.headers, ""), 400, "malformed"),
            (SignedRequest(HEARTBEAT_PATH, b" " * 100_000, good.headers, ""), 400, "malformed"),  # too large
            (signed(a, HEARTBEAT_PATH, {**hb, "term": "two", "seq": 14}, nonce="bad-term-0001"), 400, "malformed"),
            (signed(a, QUERY_PATH, {"group": "pair1", "node": "a"}, nonce="no-subject-01"), 400, "malformed"),
            (SignedRequest(QUERY_PATH, good.body, good.headers, ""), 401, "bad_mac"),  # signed for another path
        ]
        for req, status, reason in cases:
            assert await post(witness, req) == (status, {"error": reason}), (reason, req.body[:80])
        assert nodes(witness.status()) == before  # nothing changed
        async with client(witness, "a") as c:  # the real node still gets through (with its own boot)
            assert (await c.heartbeat(term=2, active=True, seq=1)).you.term == 2

    asyncio.run(scenario())
    status = witness.status()
    assert status["rejected"] == {"bad_mac": 2, "replayed": 2, "stale": 1, "unauthenticated": 1, "malformed": 5}
    # the three bodies that are not JSON name no group: counted only in the total
    assert status["groups"]["pair1"]["rejected"] == {**status["rejected"], "malformed": 2}
    assert status["groups"]["pair1"]["heartbeats"] == 2 and status["groups"]["pair2"]["rejected"] == {}
    assert "refused (bad_mac, 1 so far)" in witness.log_text()


def test_an_unknown_group_is_refused_and_two_groups_are_kept_apart(witness: WitnessProcess) -> None:
    async def scenario() -> None:
        async with client(witness, "x", group="pair9", secret=S1) as stranger:
            with pytest.raises(WitnessError) as e:
                await stranger.heartbeat(term=1, active=True, seq=1)
            assert e.value.reason == "refused" and e.value.status == 401 and "unknown_group" in e.value.detail
        async with client(witness, "a", "pair1") as a1, client(witness, "b", "pair1") as b1, \
                client(witness, "a", "pair2") as a2, client(witness, "b", "pair2") as b2, \
                client(witness, "c", "pair2", secret=S1) as cross:
            await a1.heartbeat(term=7, active=True, seq=1)
            await a2.heartbeat(term=1, active=False, seq=1)  # the same name in another group: another node
            ack = await b2.heartbeat(term=2, active=True, seq=1)
            assert [(p.node, p.term, p.active) for p in ack.peers] == [("a", 1, False)] and ack.highest_term == 2
            ack = await b1.heartbeat(term=7, active=False, seq=1)
            assert [(p.node, p.term, p.active) for p in ack.peers] == [("a", 7, True)] and ack.highest_term == 7
            assert (await b2.query("a")).view.term == 1 and (await b1.query("a")).view.term == 7
            with pytest.raises(WitnessError) as e:  # pair1's secret does not speak for pair2
                await cross.heartbeat(term=9, active=True, seq=1)
            assert e.value.status == 401 and "bad_mac" in e.value.detail

    asyncio.run(scenario())
    status = witness.status()
    assert nodes(status) == {"pair1": {"a": (7, True), "b": (7, False)}, "pair2": {"a": (1, False), "b": (2, True)}}
    assert status["rejected"] == {"unknown_group": 1, "bad_mac": 1}
    assert status["groups"]["pair2"]["rejected"] == {"bad_mac": 1} and status["groups"]["pair1"]["rejected"] == {}


def test_the_client_turns_a_frozen_or_dead_witness_into_a_bounded_error(witness: WitnessProcess) -> None:
    async def scenario() -> None:
        async with client(witness, "a", timeout=0.5) as a:
            await a.heartbeat(term=1, active=True, seq=1)
            witness.stop(signal.SIGSTOP)
            t0 = time.monotonic()
            with pytest.raises(WitnessError) as e:
                await a.heartbeat(term=1, active=True, seq=2)
            assert e.value.reason == "timeout" and 0.45 <= time.monotonic() - t0 < 1.5
            witness.resume()
            assert (await a.heartbeat(term=1, active=True, seq=3)).seq == 3
            witness.stop(signal.SIGKILL)
            t0 = time.monotonic()
            with pytest.raises(WitnessError) as e:
                await a.heartbeat(term=1, active=True, seq=4)
            assert e.value.reason == "unreachable" and time.monotonic() - t0 < 1.0

    asyncio.run(scenario())


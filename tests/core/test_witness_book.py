"""WitnessBook: the answers a witness may give, from what it heard itself."""

from __future__ import annotations

import pytest

from failover_core.errors import LocalUsageError
from failover_core.liveness import Liveness
from failover_core.witness_book import Claim, WitnessBook


def claim(node: str, term: int = 1, active: bool = False, group: str = "pair1") -> Claim:
    return Claim(group=group, node=node, term=term, active=active)


def test_a_restarted_witness_answers_unknown_until_it_has_listened_for_down_after():
    book = WitnessBook(down_after=3.5, started_at=100.0)
    v = book.view("pair1", "primary", 101.0)
    assert v.state is Liveness.UNKNOWN and v.may_be_active is None and v.down_in == pytest.approx(2.5)
    assert book.view("pair1", "primary", 103.5).state is Liveness.DOWN  # never heard for a whole down_after


def test_up_until_down_after_of_silence_with_the_last_claim():
    book = WitnessBook(down_after=3.5, started_at=0.0)
    book.heard(claim("secondary", term=7, active=True), 10.0)
    v = book.view("pair1", "secondary", 13.0)
    assert (v.state, v.term, v.active, v.may_be_active) == (Liveness.UP, 7, True, True)
    assert v.silent_for == pytest.approx(3.0) and v.down_in == pytest.approx(0.5)
    down = book.view("pair1", "secondary", 13.5)
    assert down.state is Liveness.DOWN and down.may_be_active is False  # fenced by then
    assert down.as_fields()["state"] == "down"


def test_peers_of_a_node_are_the_others_of_its_group_only():
    book = WitnessBook(down_after=3.0, started_at=0.0)
    book.heard(claim("primary"), 1.0)
    book.heard(claim("secondary", term=4, active=True), 1.0)
    book.heard(claim("other", group="pair2", active=True), 1.0)
    assert [v.node for v in book.peers_of("pair1", "primary", 2.0)] == ["secondary"]
    assert book.highest_term("pair1") == 4 and book.highest_term("nope") == 0
    assert book.groups() == {"pair1": ["primary", "secondary"], "pair2": ["other"]}


def test_a_late_delivered_heartbeat_never_moves_the_deadline_back():
    book = WitnessBook(down_after=3.0, started_at=0.0)
    book.heard(claim("a", term=2), 10.0)
    book.heard(claim("a", term=1), 9.0)
    v = book.view("pair1", "a", 12.0)
    assert v.term == 2 and v.silent_for == pytest.approx(2.0)


def test_a_flood_of_names_is_bounded_and_counted():
    book = WitnessBook(down_after=3.0, started_at=0.0, max_nodes=2)
    assert book.heard(claim("a"), 1.0) and book.heard(claim("b"), 1.0)
    assert not book.heard(claim("c"), 1.0)
    assert book.refused_full == 1
    assert book.heard(claim("a", term=2), 2.0)  # known nodes still update


@pytest.mark.parametrize("bad", [{"node": ""}, {"node": "x\x1b[31m"}, {"node": "n" * 200}, {"term": -1},
                                 {"term": True}, {"active": "yes"}])
def test_bad_claims_are_local_errors(bad):
    with pytest.raises(LocalUsageError):
        Claim(**{"group": "g", "node": "n", "term": 1, "active": False, **bad})

"""Every cell of every documented table, one parametrized row per cell (the spec, as a test)."""

import pytest

from failover_core import Action, Facts, Liveness, Role, Verdict, decide
from failover_core.tables import TABLES, VERIFY_TABLE

UP, DOWN = Liveness.UP, Liveness.DOWN

# (role, peer, witness, expected action, expected code): written from the VOLTTRON documentation
CELLS = [
    (Role.PRIMARY, UP, UP, Action.START, "primary.secondary_up.witness_up"),
    (Role.PRIMARY, UP, DOWN, Action.START, "primary.secondary_up.witness_down"),
    (Role.PRIMARY, DOWN, UP, Action.START, "primary.secondary_down.witness_up"),
    (Role.PRIMARY, DOWN, DOWN, Action.STOP, "primary.secondary_down.witness_down"),
    (Role.SECONDARY, UP, UP, Action.STOP, "secondary.primary_up.witness_up"),
    (Role.SECONDARY, UP, DOWN, Action.STOP, "secondary.primary_up.witness_down"),
    (Role.SECONDARY, DOWN, UP, Action.VERIFY, "secondary.primary_down.witness_up"),
    (Role.SECONDARY, DOWN, DOWN, Action.STOP, "secondary.primary_down.witness_down"),
    (Role.SIMPLE_PRIMARY, UP, UP, Action.START, "simple_primary.always"),
    (Role.SIMPLE_PRIMARY, DOWN, DOWN, Action.START, "simple_primary.always"),
    (Role.SIMPLE_PRIMARY, UP, DOWN, Action.START, "simple_primary.always"),
    (Role.SIMPLE_PRIMARY, DOWN, UP, Action.START, "simple_primary.always"),
    (Role.SIMPLE_SECONDARY, UP, UP, Action.STOP, "simple_secondary.primary_up"),
    (Role.SIMPLE_SECONDARY, UP, DOWN, Action.STOP, "simple_secondary.primary_up"),
    (Role.SIMPLE_SECONDARY, DOWN, UP, Action.START, "simple_secondary.primary_down"),
    (Role.SIMPLE_SECONDARY, DOWN, DOWN, Action.START, "simple_secondary.primary_down"),
]


@pytest.mark.parametrize(("role", "peer", "witness", "action", "code"), CELLS,
                         ids=[f"{c[0].value}-peer_{c[1].value}-witness_{c[2].value}" for c in CELLS])
def test_every_documented_cell(role, peer, witness, action, code):
    # the witness's word on the peer is the one that lets every cell through (the rejoin guard has its own tests)
    d = decide(role, Facts(peer=peer, witness=witness, witness_peer_active=False))
    assert (d.action, d.code) == (action, code)
    assert d.reason  # a sentence for the log and the alert


@pytest.mark.parametrize(("verdict", "action", "code"), [
    (Verdict.PRIMARY_DOWN, Action.START, "secondary.verified.primary_down"),
    (Verdict.PRIMARY_ALIVE, Action.STOP, "secondary.verified.primary_alive"),
])
def test_secondary_verify_cell_resolved_by_witness_verdict(verdict, action, code):
    d = decide(Role.SECONDARY, Facts(peer=DOWN, witness=UP, verdict=verdict))
    assert (d.action, d.code) == (action, code)


def test_verdict_is_ignored_where_the_table_does_not_ask_for_one():
    # a stale "primary is down" verdict must never start a secondary that hears the primary
    d = decide(Role.SECONDARY, Facts(peer=UP, witness=UP, verdict=Verdict.PRIMARY_DOWN))
    assert d.action is Action.STOP
    # nor a secondary that hears neither (it may be the isolated one)
    d = decide(Role.SECONDARY, Facts(peer=DOWN, witness=DOWN, verdict=Verdict.PRIMARY_DOWN))
    assert d.action is Action.STOP


def test_tables_cover_every_combination_and_codes_are_unique():
    codes = [c.code for t in TABLES.values() for c in t.values()] + [c.code for c in VERIFY_TABLE.values()]
    assert len(codes) == len(set(codes))
    assert len(TABLES[Role.PRIMARY]) == 4 and len(TABLES[Role.SECONDARY]) == 4
    assert len(TABLES[Role.SIMPLE_SECONDARY]) == 2 and len(TABLES[Role.SIMPLE_PRIMARY]) == 1


def test_docs_show_the_tables_as_the_code_has_them():
    from pathlib import Path

    from failover_core.tables import render_markdown

    doc = (Path(__file__).parents[2] / "docs" / "core.md").read_text()
    embedded = doc.split("<!-- tables:begin -->\n", 1)[1].split("\n<!-- tables:end -->", 1)[0]
    assert embedded == render_markdown(), "docs/core.md is stale: regenerate with python scripts/render_docs.py"

"""A short seeded chaos run of the VOLTTRON FailoverAgent driver in standard mode: the promise holds, samples
every <= 50 ms, every fault recorded, nothing left behind.

Three real platforms (primary, secondary, witness) in network namespaces, built once (about 30 s), then
SEED's schedule over every fault kind the driver supports; about 2.5 minutes in all. Needs root and the
platform venv (make setup).
"""

import itertools
import os
import shutil

import pytest

from labs.chaos.agent import AgentDriver, leftovers
from labs.chaos.history import read_history
from labs.chaos.runner import run
from labs.chaos.schedule import FaultKind, make_schedule

pytestmark = pytest.mark.integration

# the fewest kinds missing (cut_one_way) among seeds from 20261200 whose 90 s schedule draws loss, crash, freeze,
# cut_both, clean_stop and witness_down (20261152 before the loss kind existed)
SEED = 20262085
DURATION = 90.0


@pytest.fixture(autouse=True)
def _testbed():
    if os.geteuid() != 0:
        pytest.fail("the chaos run needs root (network namespaces, iptables); deselect with -m 'not integration'")
    for tool in ("ip", "iptables", "setpriv"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run scripts/bootstrap.sh (make setup)")


def test_seeded_agent_run_keeps_the_standard_mode_promise(tmp_path):
    driver = AgentDriver()
    # clean_stop is in: a stopped failover agent on the active hands over (found by seed 20261128 before the fix:
    # 80 ms of two runners; docs/chaos.md, "Finding")
    kinds = sorted(driver.supported - {FaultKind.OVERLAP})
    schedule = make_schedule(SEED, DURATION, kinds, driver.nodes, supported=driver.supported, settle=driver.settle)
    assert len(schedule) >= 5
    outcome = run(driver, schedule, tmp_path, seed=SEED, duration=DURATION)
    print(outcome.table)
    print("probe costs:", driver.costs, "build s:", round(driver.build_s, 1))
    assert outcome.result.ok, outcome.table
    record = read_history(tmp_path / "history.jsonl")
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(record.samples)]
    assert record.samples[0]["t"] < 0.05 and record.samples[-1]["t"] > DURATION - 0.1
    recorder = [n for n in record.notes if n.get("text") == "recorder"]
    print("recorder:", recorder)
    assert max(gaps) <= 0.05, f"a sampling gap of {max(gaps) * 1000:.0f} ms; {recorder}"
    assert sorted(w.fault.id for w in record.faults) == [f.id for f in schedule]
    assert all(w.end is not None for w in record.faults)
    assert (tmp_path / "timeline.png").read_bytes()[:4] == b"\x89PNG"
    assert leftovers(driver) == {"namespaces": [], "processes": [], "links": [], "iptables": [], "files": []}


def test_agent_usage_errors_exit_2(capsys):
    from labs.chaos.__main__ import main

    assert main(["agent", "--seed", "1", "--duration", "10", "--faults", "daemon_kill"]) == 2
    assert "agent does not support fault kind(s) daemon_kill" in capsys.readouterr().err

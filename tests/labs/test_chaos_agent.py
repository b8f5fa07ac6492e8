"""A short seeded chaos run of the VOLTTRON FailoverAgent driver in standard mode: the promise holds, samples
every <= 50 ms, every fault recorded, nothing left behind.

Three real platforms (primary, secondary, witness) in network namespaces, built once (about 20 s), then
SEED's schedule over every fault kind the driver supports but the grey ones, then the grey seed's delays and
duplications on the same bed (one bed: a build is a third of a run's time, and the suite has a 30-minute
budget); about 2.5 minutes in all. Needs root and the platform venv (make setup).
"""

import dataclasses

import pytest

from labs.chaos.agent import AgentDriver, leftovers
from labs.chaos.schedule import GREY_KINDS, FaultKind, make_schedule

pytestmark = pytest.mark.integration

# the first from 20261200 drawing in 80 s what 20262085 drew in 90 s: loss, crash, freeze, cut_both, clean_stop,
# node_restart and witness_down, all but cut_one_way (20262085 had the fewest missing at 90 s; 80 s for the suite's time
# budget; 20261152 before the loss kind existed)
SEED = 20265503
DURATION = 80.0


@pytest.fixture(autouse=True)
def _testbed(require_bed):
    require_bed(("ip", "iptables", "setpriv"), "network namespaces, iptables")


def test_seeded_agent_run_keeps_the_standard_mode_promise_and_grey_faults_change_nothing(
        tmp_path, seeded_run, grey_seed, grey_duration, grey_kept):
    driver = AgentDriver()
    # clean_stop is in: a stopped failover agent on the active hands over (found by seed 20261128 before the fix:
    # 80 ms of two runners; docs/chaos.md, "Finding")
    kinds = sorted(driver.supported - {FaultKind.OVERLAP} - GREY_KINDS)  # as drawn before delay, dup existed
    schedule = make_schedule(SEED, DURATION, kinds, driver.nodes, supported=driver.supported, settle=driver.settle)
    assert len(schedule) >= 5
    # then what a platform sends held up to half of (lease - heartbeat), or sent twice: the active keeps the
    # service, the other never starts it (the steady rule; grey_kept over that part)
    grey = make_schedule(grey_seed, grey_duration, [FaultKind.DELAY, FaultKind.DUP], driver.nodes,
                         supported=driver.supported, settle=driver.settle)
    assert {f.kind for f in grey} == {FaultKind.DELAY, FaultKind.DUP}
    schedule += [dataclasses.replace(f, id=len(schedule) + f.id, start=DURATION + f.start) for f in grey]
    _, record = seeded_run(driver, schedule, SEED, DURATION + grey_duration)
    grey_kept(record, since=DURATION)
    print("probe costs:", driver.costs, "build s:", round(driver.build_s, 1))
    kept = {p.name for p in (tmp_path / "logs").iterdir()}  # the platforms' logs outlive the bed
    assert {"primary-volttron.log", "secondary-volttron.log", "witness-volttron.log"} <= kept
    assert leftovers(driver) == {"namespaces": [], "processes": [], "links": [], "iptables": [], "files": []}


def test_agent_usage_errors_exit_2(capsys):
    from labs.chaos.__main__ import main

    assert main(["agent", "--seed", "1", "--duration", "10", "--faults", "daemon_kill"]) == 2
    assert "agent does not support fault kind(s) daemon_kill" in capsys.readouterr().err

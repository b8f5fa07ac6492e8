"""Per-host mode for real: a ``python -m HaValet`` inside each of two namespace hosts, each testing, starting and
stopping the sample service on its own host only, arbitrating over signed HTTP heartbeats; with a real
``python -m FailoverWitness`` in a third namespace for the standard mode. Faults: the active host cannot run the
process, a valet SIGKILLed, an iptables cut between the valets (with and without a witness), the active host
isolated from both, a clean stop. Each test measures the seconds of two running three ways: the services' own
journals (when each listened), the valets' logs (start launched .. stop returned) and a 20 ms sampler.
"""

from __future__ import annotations

import os
import shutil
import signal
import time

import pytest

from labs.valet import CLIENT_ADDRESS

from .pair_lab import A, B, ValetPair

pytestmark = pytest.mark.integration

HB, T = 0.25, 1.0  # heartbeat_interval, heartbeat_timeout of every test here
STOP_BOUND = 2.5  # stop_timeout 2 + 0.5: S of the fencing argument


@pytest.fixture
def pair_factory(tmp_path):
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("iptables") is None:
        pytest.fail("the per-host valet tests need root, iproute2 and iptables")
    made: list[ValetPair] = []

    def make(*, witness: bool, **cfg) -> ValetPair:
        pair = ValetPair(tmp_path / f"pair{len(made)}", witness=witness, heartbeat_interval=HB,
                         heartbeat_timeout=T, **cfg)
        made.append(pair)
        return pair.__enter__()

    try:
        yield make
    finally:
        for pair in made:
            pair.close()


def figures(pair: ValetPair, name: str, **more: float) -> None:
    journal, logs, sampled = pair.overlaps()
    extra = " ".join(f"{k}={v:.3f}s" for k, v in more.items())
    print(f"\nFIGURES {name}: two_running_journals={journal:.3f}s two_running_logs={logs:.3f}s "
          f"two_running_sampler={sampled:.3f}s {extra}")


def no_overlap(pair: ValetPair) -> None:
    journal, logs, sampled = pair.overlaps()
    assert (journal, logs, sampled) == (0.0, 0.0, 0.0), pair.diagnostics()


@pytest.mark.parametrize("witness", [False, True], ids=["simple", "witness"])
def test_failover_when_the_active_host_cannot_run_its_process(pair_factory, witness):
    pair = pair_factory(witness=witness)
    pair.wait_settled(A)
    (pair.state / f"{A}.broken").touch()  # A can no longer start it
    killed = pair.kill_service(A)
    took_over = pair.wait_running({B}, 15)
    pair.wait_log(A, "[pair.start_failed]", 5)
    pair.wait_log(B, "[pair.peer_cannot_run]", 5)
    figures(pair, f"cannot-run[{'witness' if witness else 'simple'}]", takeover=took_over - killed)
    no_overlap(pair)
    # interval (test finds it down) + start on A fails (~0.2 s) + a heartbeat + start on B: well within 5 s
    assert took_over - killed < 5, pair.diagnostics()
    # A is repaired: after its retry delay it is eligible again and the primary takes the process back
    (pair.state / f"{A}.broken").unlink()
    pair.wait_running({A}, 15)
    no_overlap(pair)


def test_clean_stop_of_the_active_valet_hands_over_at_once(pair_factory):
    pair = pair_factory(witness=True)
    pair.wait_settled(A)
    stopping = time.time()
    assert pair.stop_valet(A) == 0, pair.diagnostics()
    took_over = pair.wait_running({B}, 5)
    figures(pair, "clean-stop-active", takeover=took_over - stopping)
    assert took_over - stopping < 2.0, pair.diagnostics()  # no waiting for down_after (3.9 s here)
    assert "[pair.handing_over]" in pair.log(A) and "[pair.peer_left]" in pair.log(B)
    no_overlap(pair)


def test_clean_stop_of_the_passive_valet_changes_nothing(pair_factory):
    pair = pair_factory(witness=False)
    pair.wait_settled(A)
    assert pair.stop_valet(B) == 0, pair.diagnostics()
    time.sleep(3 * T)  # watch: A must keep its process (nothing to measure but the absence of a restart)
    assert pair.sampler.running() == {A}
    assert "[pair.stopping]" not in pair.log(A) and pair.log(A).count("starting on 10.99.0.1 (term") == 1
    no_overlap(pair)


def test_cut_between_the_valets_without_a_witness_gives_two_actives_until_it_heals(pair_factory):
    pair = pair_factory(witness=False)
    pair.wait_settled(A)
    cut = time.time()
    pair.lab.cut(A, B)
    both = pair.wait_running({A, B}, 10)
    time.sleep(1.0)
    pair.lab.cut(A, B, on=False)
    healed = time.time()
    back = pair.wait_running({A}, 5)
    journal, logs, sampled = pair.overlaps()
    figures(pair, "cut-simple", second_start_after_cut=both - cut, one_again_after_heal=back - healed)
    # the secondary starts when the primary has been silent for heartbeat_timeout (+ test and start time) ...
    assert T <= both - cut < T + 3, pair.diagnostics()
    # ... and stops within about a heartbeat after the heal (+ its stop command)
    assert back - healed < 2 * HB + 1.5, pair.diagnostics()
    assert journal > 0.9 and logs >= journal - 0.01 and sampled > 0.8  # the three measures agree


def test_cut_between_the_valets_with_a_witness_changes_nothing(pair_factory):
    pair = pair_factory(witness=True)
    pair.wait_settled(A)
    pair.lab.cut(A, B)
    time.sleep(3 * (T + STOP_BOUND))  # several down_after periods: B must not start (the witness hears A)
    assert pair.sampler.running() == {A}, pair.diagnostics()
    pair.lab.cut(A, B, on=False)
    time.sleep(3 * HB)
    assert pair.sampler.running() == {A}
    figures(pair, "cut-pair-witness")
    no_overlap(pair)
    assert "[secondary.verified.primary_alive]" in pair.log(B) or "waiting for the witness" in pair.log(B)


def test_active_host_isolated_fences_itself_before_the_other_starts(pair_factory):
    pair = pair_factory(witness=True)
    pair.wait_settled(A)
    cut = time.time()
    pair.lab.cut(A, B)
    pair.lab.cut(A, CLIENT_ADDRESS)  # A reaches neither its peer nor the witness
    took_over = pair.wait_running({B}, 15)
    pair.wait_log(A, "[pair.fenced]", 5)
    a_stopped = max(e for _, e in pair.service_intervals(A) if e is not None)
    b_started = min(s for s, _ in pair.service_intervals(B))
    figures(pair, "isolated-active-witness", fenced_after_cut=a_stopped - cut, takeover=took_over - cut,
            gap=b_started - a_stopped)
    no_overlap(pair)
    assert b_started > a_stopped
    # A stops within T + S of its last acknowledged send; B starts no earlier than down_after after its last receipt
    assert a_stopped - cut < T + STOP_BOUND + 0.5, pair.diagnostics()
    assert took_over - cut < T + (T + STOP_BOUND + 0.5) + 3, pair.diagnostics()
    # heal: A hears B (running) and stays passive; exactly one runs
    pair.lab.cut(A, B, on=False)
    pair.lab.cut(A, CLIENT_ADDRESS, on=False)
    time.sleep(4 * HB)
    # the primary takes it back after the heal (failback, failback_delay 0): still never two
    pair.wait_running({A}, 10)
    no_overlap(pair)


def test_witness_down_alone_changes_nothing(pair_factory):
    pair = pair_factory(witness=True)
    pair.wait_settled(A)
    pair.witness.stop(signal.SIGKILL)
    time.sleep(2 * (T + STOP_BOUND + 1))  # two down_after periods: the pair still hears each other
    assert pair.sampler.running() == {A}, pair.diagnostics()
    assert "[pair.fenced]" not in pair.log(A) and "[pair.stopping]" not in pair.log(A)
    figures(pair, "witness-killed")
    no_overlap(pair)


def test_active_whose_outgoing_traffic_is_cut_fences_although_it_hears_the_others(pair_factory):
    """Only A's sends are dropped: it still receives B's heartbeats (B is UP for it), but nothing it sends is
    acknowledged, so its lease runs out: only acknowledged contact renews the right to run."""
    pair = pair_factory(witness=True)
    pair.wait_settled(A)
    cut = time.time()
    pair.lab.cut_outgoing(A, B)
    pair.lab.cut_outgoing(A, CLIENT_ADDRESS)
    took_over = pair.wait_running({B}, 15)
    pair.wait_log(A, "[pair.fenced]", 5)
    a_stopped = max(e for _, e in pair.service_intervals(A) if e is not None)
    figures(pair, "outgoing-cut-active-witness", fenced_after_cut=a_stopped - cut, takeover=took_over - cut)
    no_overlap(pair)
    assert a_stopped - cut < T + STOP_BOUND + 0.5, pair.diagnostics()
    pair.lab.cut_outgoing(A, B, on=False)
    pair.lab.cut_outgoing(A, CLIENT_ADDRESS, on=False)
    pair.wait_running({A}, 15)  # healed: failback to the primary, never two
    no_overlap(pair)


@pytest.mark.parametrize("witness", [False, True], ids=["simple", "witness"])
def test_sigkill_of_the_active_valet_its_keeper_stops_the_process(pair_factory, witness):
    pair = pair_factory(witness=witness)
    pair.wait_settled(A)
    killed = pair.kill_valet(A)
    took_over = pair.wait_running({B}, 15)
    a_stopped = max(e for _, e in pair.service_intervals(A) if e is not None)
    figures(pair, f"sigkill-active-keeper[{'witness' if witness else 'simple'}]", keeper_stop=a_stopped - killed,
            takeover=took_over - killed)
    no_overlap(pair)
    assert a_stopped - killed < 1.0, pair.diagnostics()  # the keeper's stop command, at once
    # B waits for its peer's silence: heartbeat_timeout (simple) or down_after + the witness's word (standard)
    assert took_over - killed < (T if not witness else T + T + STOP_BOUND + 0.5) + 2.5, pair.diagnostics()


def test_sigstop_of_the_active_valet_past_its_lease_its_keeper_fences(pair_factory):
    pair = pair_factory(witness=True)
    pair.wait_settled(A)
    frozen = pair.freeze_valet(A)
    took_over = pair.wait_running({B}, 15)
    a_stopped = max(e for _, e in pair.service_intervals(A) if e is not None)
    figures(pair, "sigstop-active-keeper-witness", keeper_stop=a_stopped - frozen, takeover=took_over - frozen)
    no_overlap(pair)
    assert a_stopped - frozen < T + STOP_BOUND, pair.diagnostics()  # at the lease's end (+ the stop command)
    pair.freeze_valet(A, frozen=False)  # it wakes up, finds its process gone, and the pair settles on one
    pair.wait_running({A}, 15)
    no_overlap(pair)


def test_sigkill_of_the_active_valet_without_keeper_leaves_its_process_running(pair_factory):
    """The documented bound without a keeper (``keeper = no``): the process outlives its valet. With a witness, B
    takes over after down_after and both run until A's valet is back (it then sees B running and one stops)."""
    pair = pair_factory(witness=True, extra="keeper = no\n")
    pair.wait_settled(A)
    killed = pair.kill_valet(A)
    both = pair.wait_running({A, B}, 15)
    pair.start_valet(A)
    restarted = time.time()
    one = pair.wait_running({A}, 15)
    journal, _, sampled = pair.overlaps()
    figures(pair, "sigkill-active-witness", second_start_after_kill=both - killed, one_after_restart=one - restarted)
    assert both - killed > T  # B waited for the witness's DOWN (down_after since its last receipt)
    assert journal > 0 and sampled > 0  # the bound without a keeper: until the valet is back

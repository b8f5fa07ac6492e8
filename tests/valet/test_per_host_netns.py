"""Per-host mode for real: a ``python -m HaValet`` inside each of two namespace hosts, each testing, starting and
stopping the sample service on its own host only, arbitrating over signed HTTP heartbeats; with a real
``python -m FailoverWitness`` in a third namespace for the standard mode. Faults: the active host cannot run the
process, a valet SIGKILLed, an iptables cut between the valets (with and without a witness), the active host
isolated from both, a clean stop. Each test measures the seconds of two running three ways: the services' own
journals (when each listened), the valets' logs (start launched .. stop returned) and a 20 ms sampler.

Timing: simple mode runs with T = 1 s. With a witness the active's lease is T minus the fencing margin
(failover_core.fencing: stop_bound S = stop_timeout 2 + 0.5, scheduling delay 0.25 s, slack, drift), so T must
be about 3.5 s for a lease of two heartbeats (0.643 s, HB 0.25 s); the passive and the witness wait T since their
last receipt, and a takeover is due within T + start + 0.5 s of the silence (the issue's bound).
"""

from __future__ import annotations

import os
import shutil
import signal
import time

import pytest

from failover_core.fencing import FencingTiming
from labs.valet import CLIENT_ADDRESS
from labs.valet_pair import log_time

from .helpers import wait_until
from .pair_lab import A, B, ValetPair

pytestmark = pytest.mark.integration

HB = 0.25  # heartbeat_interval of every test here
T = 1.0  # heartbeat_timeout without a witness (simple mode: no lease)
STOP_BOUND = 2.5  # stop_timeout 2 + 0.5: S of the fencing argument
T_W = 3.5  # heartbeat_timeout with a witness: the smallest round T that leaves a lease of two heartbeats
FENCING = FencingTiming(timeout=T_W, stop_bound=STOP_BOUND)  # what the valets compute from the same config
assert FENCING.lease_problem(HB) is None and FENCING.lease == pytest.approx(0.643, abs=0.001)
TAKEOVER_SLACK = 0.5  # the issue's bound: takeover within heartbeat_timeout + start + 0.5 s of the silence


@pytest.fixture
def pair_factory(tmp_path):
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("iptables") is None:
        pytest.fail("the per-host valet tests need root, iproute2 and iptables")
    made: list[ValetPair] = []

    def make(*, witness: bool, **cfg) -> ValetPair:
        pair = ValetPair(tmp_path / f"pair{len(made)}", witness=witness, heartbeat_interval=HB,
                         heartbeat_timeout=T_W if witness else T, **cfg)
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


def never_fenced(pair: ValetPair, node: str = A) -> None:
    """A healthy active keeps its process: its lease (T - margin, 0.643 s here) was renewed every time."""
    assert "[pair.fenced]" not in pair.log(node) and "[pair.stopping]" not in pair.log(node), pair.diagnostics()


def logged_at(pair: ValetPair, node: str, text: str) -> float:
    """The log time of the first line of ``node``'s valet with ``text``."""
    return next(t for line in pair.log(node).splitlines() if text in line and (t := log_time(line)) is not None)


def takeover(pair: ValetPair, since: float) -> tuple[float, float]:
    """(B listening - since, B's start command: launched (its log) .. listening (its journal)). The sampler sees B's
    pid before the service journals that it listens: wait for that line."""
    listening = wait_until(lambda: pair.service_intervals(B), 5, "B's service journals 'up'", pair.diagnostics)[-1][0]
    launched = pair.valet_intervals(B)[-1][0]
    return listening - since, listening - launched


def within_the_issues_bound(pair: ValetPair, took: float, start: float, timeout: float) -> None:
    """Takeover within heartbeat_timeout + start + 0.5 s of the silence: B launches its start by T + 0.5 s (its
    last receipt was at or before the fault; T later it calls the peer down, the witness's word follows within a
    heartbeat)."""
    assert took <= timeout + start + TAKEOVER_SLACK, (took, start, pair.diagnostics())


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
    never_fenced(pair)
    assert pair.stop_valet(A) == 0, pair.diagnostics()
    took_over = pair.wait_running({B}, 5)
    figures(pair, "clean-stop-active", takeover=took_over - stopping)
    assert took_over - stopping < 2.0, pair.diagnostics()  # no waiting for T (3.5 s here)
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
    time.sleep(3 * T_W)  # several timeouts: B must not start (the witness hears A) ...
    assert pair.sampler.running() == {A}, pair.diagnostics()
    never_fenced(pair)  # ... and A's lease, 0.643 s, is renewed by the witness's acks alone
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
    pair.wait_running({B}, 15)
    pair.wait_log(A, "[pair.fenced]", 5)
    a_stopped = max(e for _, e in pair.service_intervals(A) if e is not None)
    b_started = min(s for s, _ in pair.service_intervals(B))
    a_returned = pair.valet_intervals(A)[-1][1]  # A's log: its stop command returned
    b_launched = pair.valet_intervals(B)[-1][0]  # B's log: its start command launched
    took, start = takeover(pair, cut)
    figures(pair, "isolated-active-witness", fence_logged=logged_at(pair, A, "[pair.fenced]") - cut,
            fenced_after_cut=a_stopped - cut, takeover=took, start=start, gap=b_started - a_stopped,
            log_gap=b_launched - a_returned)
    no_overlap(pair)
    assert b_started > a_stopped and a_returned is not None and b_launched > a_returned  # journals and logs
    # A stops within lease + D + S of its last acknowledged send (at or before the cut) ...
    assert a_stopped - cut < FENCING.fenced_by(), pair.diagnostics()
    # ... and B starts T after its last receipt (at or before the cut) and the witness's DOWN
    within_the_issues_bound(pair, took, start, T_W)
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
    time.sleep(2 * (T_W + 1))  # two timeouts and more: the pair still hears each other
    assert pair.sampler.running() == {A}, pair.diagnostics()
    never_fenced(pair)  # A's lease is renewed by B's acks alone
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
    pair.wait_running({B}, 15)
    pair.wait_log(A, "[pair.fenced]", 5)
    a_stopped = max(e for _, e in pair.service_intervals(A) if e is not None)
    took, start = takeover(pair, cut)
    figures(pair, "outgoing-cut-active-witness", fence_logged=logged_at(pair, A, "[pair.fenced]") - cut,
            fenced_after_cut=a_stopped - cut, takeover=took, start=start)
    no_overlap(pair)
    assert a_stopped - cut < FENCING.fenced_by(), pair.diagnostics()
    within_the_issues_bound(pair, took, start, T_W)
    pair.lab.cut_outgoing(A, B, on=False)
    pair.lab.cut_outgoing(A, CLIENT_ADDRESS, on=False)
    pair.wait_running({A}, 15)  # healed: failback to the primary, never two
    no_overlap(pair)


@pytest.mark.parametrize("witness", [False, True], ids=["simple", "witness"])
def test_sigkill_of_the_active_valet_its_keeper_stops_the_process(pair_factory, witness):
    pair = pair_factory(witness=witness)
    pair.wait_settled(A)
    killed = pair.kill_valet(A)
    pair.wait_running({B}, 15)
    a_stopped = max(e for _, e in pair.service_intervals(A) if e is not None)
    took, start = takeover(pair, killed)
    figures(pair, f"sigkill-active-keeper[{'witness' if witness else 'simple'}]", keeper_stop=a_stopped - killed,
            takeover=took, start=start)
    no_overlap(pair)
    assert a_stopped - killed < 1.0, pair.diagnostics()  # the keeper's stop command, at once
    # B waits for its peer's silence: heartbeat_timeout (and, with a witness, the witness's word)
    within_the_issues_bound(pair, took, start, T_W if witness else T)


def test_sigstop_of_the_active_valet_past_its_lease_its_keeper_fences(pair_factory):
    pair = pair_factory(witness=True)
    pair.wait_settled(A)
    frozen = pair.freeze_valet(A)
    pair.wait_running({B}, 15)
    a_stopped = max(e for _, e in pair.service_intervals(A) if e is not None)
    took, start = takeover(pair, frozen)
    figures(pair, "sigstop-active-keeper-witness", keeper_stop=a_stopped - frozen, takeover=took, start=start)
    no_overlap(pair)
    assert a_stopped - frozen < FENCING.fenced_by(), pair.diagnostics()  # at the lease's end (+ the stop command)
    within_the_issues_bound(pair, took, start, T_W)
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
    assert both - killed > T_W - HB  # B waited for the witness's DOWN (T since its last receipt, <= HB before)
    assert journal > 0 and sampled > 0  # the bound without a keeper: until the valet is back

"""The recorder's stamps against the runner's: a sample stamped before a fault's moment never sees the fault."""

import random
import time

from labs.chaos.history import History, Recorder, read_history


def test_chaos_seed_20261128_a_sample_stamped_before_a_faults_moment_never_sees_the_fault(tmp_path):
    """Seed 20261128 (VRRP) once broke nobody_active with "no fault in force": a sample stamped 0.1 ms
    before a clean stop's start had probed after the driver marked the router down. A probe takes ~4 ms
    here (a quarter of the period), so without the ordering about every fourth toggle lands in one."""
    state = {"up": True}

    def probe() -> dict[str, object]:
        seen = state["up"]
        time.sleep(0.004)
        return {"active": ["a"] if seen else []}

    history = History(tmp_path / "h.jsonl")
    recorder = Recorder(history, probe, period=0.016)
    toggles: list[tuple[float, bool]] = []
    rng = random.Random(7)
    recorder.start()
    try:
        for _ in range(60):
            time.sleep(rng.uniform(0.0, 0.03))
            t = recorder.moment()
            state["up"] = not state["up"]  # the fault (or heal) applied right after its moment
            toggles.append((t, state["up"]))
    finally:
        recorder.stop()
        history.close()
    samples = read_history(tmp_path / "h.jsonl").samples
    assert len(samples) > 50
    for s in samples:
        before = [up for t, up in toggles if t <= s["t"]]
        expected_then = before[-1] if before else True
        after = [up for t, up in toggles if t > s["t"]]
        # stamped before the next toggle's moment: the probe saw the state then (or, at a toggle, the old one)
        if after:
            assert (s["active"] == ["a"]) == expected_then, (s, expected_then)

"""labs.chaos.checker and report on synthetic histories: each rule kept and broken, the figures, the PNG."""

import json

import pytest

from labs.chaos.checker import NO_FAULT, Promise, check, check_file, main, runs, text_report
from labs.chaos.history import History, parse_history, read_history
from labs.chaos.report import timeline_png
from labs.chaos.schedule import Fault, FaultKind

DT = 0.02
K = FaultKind

PROMISE = Promise(system="vrrp", double_allowed={K.CUT_BOTH, K.CUT_ONE_WAY}, heal_bound=0.25,
                  takeover_bound={K.CRASH: 0.5, K.CLEAN_STOP: 0.2}, handover_grace=0.05)


def synth(timeline, faults=(), end=None, **extra):
    """timeline: [(t_from, active list)], each until the next; samples every DT up to ``end``.
    faults: [(Fault, target, start, end)]."""
    end = end if end is not None else timeline[-1][0] + 3.0
    lines = [{"type": "meta", "system": "vrrp", "nodes": ["a", "b"],
              "schedule": [f.to_dict() for f, *_ in faults]}]
    n = round(end / DT)
    for i in range(n + 1):
        t = round(i * DT, 4)
        active = [a for frm, a in timeline if frm <= t + 1e-9][-1]
        lines.append({"type": "sample", "t": t, "active": list(active), **extra})
    for f, target, s, e in faults:
        lines.append({"type": "fault_start", "t": s, "fault": f.to_dict(), "target": target, "peer": f.peer})
        if e is not None:
            lines.append({"type": "fault_end", "t": e, "id": f.id})
    return parse_history(lines)


def fault(fid, kind, start, duration, target="@active", peer=None):
    return Fault(id=fid, start=start, kind=kind, target=target, duration=duration, peer=peer)


def rules(result):
    return [v.rule for v in result.violations]


def test_runs_are_maximal_and_end_at_the_next_sample():
    s = [{"t": 0.0, "active": ["a"]}, {"t": 0.1, "active": []}, {"t": 0.2, "active": []},
         {"t": 0.3, "active": ["b"]}]
    assert [(r.start, r.end) for r in runs(s, lambda x: not x["active"])] == [(0.1, 0.3)]


def test_quiet_history_keeps_the_promise():
    r = check(synth([(0, ["a"])], end=10), PROMISE)
    assert r.ok and r.samples == 501 and r.max_gap == pytest.approx(DT)
    assert r.stats[NO_FAULT].double_s == 0 and r.stats[NO_FAULT].flaps == 0


def test_crash_of_the_active_with_a_takeover_in_bound():
    f = fault(0, K.CRASH, 2.0, 2.0)
    r = check(synth([(0, ["a"]), (2.0, []), (2.4, ["b"])], [(f, "a", 2.0, 4.0)], end=8), PROMISE)
    assert r.ok, text_report(r)
    st = r.stats["crash"]
    assert st.faults == 1 and st.hit_active == 1
    assert st.takeovers == [pytest.approx(0.4)]
    assert st.nobody_s == pytest.approx(0.4)
    assert st.flaps == 1
    assert st.heals == [0.0]


def test_takeover_too_slow_is_broken_with_its_window_and_fault():
    f = fault(0, K.CRASH, 2.0, 2.0)
    r = check(synth([(0, ["a"]), (2.0, []), (2.7, ["b"])], [(f, "a", 2.0, 4.0)], end=8), PROMISE)
    assert set(rules(r)) == {"takeover", "nobody_active"}
    v = next(v for v in r.violations if v.rule == "takeover")
    assert (v.start, v.end) == (2.0, 2.7) and v.faults == ("#0 crash a",)
    assert "0.700 s > bound 0.5" in v.text
    assert r.stats["crash"].violations == 2


def test_no_takeover_at_all_is_broken():
    f = fault(0, K.CRASH, 2.0, 2.0)
    r = check(synth([(0, ["a"]), (2.0, []), (4.1, ["a"])], [(f, "a", 2.0, 4.0)], end=8), PROMISE)
    assert "takeover" in rules(r) and "nobody_active" in rules(r)


def test_a_short_fault_where_the_target_comes_back_is_resumed_not_broken():
    f = fault(0, K.CRASH, 2.0, 0.3)
    r = check(synth([(0, ["a"]), (2.0, []), (2.3, ["a"])], [(f, "a", 2.0, 2.3)], end=6), PROMISE)
    assert r.ok, text_report(r)
    assert r.stats["crash"].resumed == 1 and r.stats["crash"].takeovers == []


def test_fault_on_a_passive_node_needs_no_takeover_and_no_gap():
    f = fault(0, K.CRASH, 2.0, 1.0, target="@other")
    ok = check(synth([(0, ["a"])], [(f, "b", 2.0, 3.0)], end=6), PROMISE)
    assert ok.ok and ok.stats["crash"].hit_active == 0
    bad = check(synth([(0, ["a"]), (2.0, []), (2.5, ["a"])], [(f, "b", 2.0, 3.0)], end=6), PROMISE)
    assert rules(bad) == ["nobody_active"]


def test_double_active_during_a_partition_is_allowed_until_the_heal_bound():
    f = fault(0, K.CUT_BOTH, 2.0, 3.0, peer="@other")
    r = check(synth([(0, ["a"]), (2.4, ["a", "b"]), (5.1, ["a"])], [(f, "a", 2.0, 5.0)], end=9), PROMISE)
    assert r.ok, text_report(r)
    assert r.stats["cut_both"].double_s == pytest.approx(2.7)
    assert r.stats["cut_both"].heals == [pytest.approx(0.1)]


def test_double_active_outlasting_the_heal_is_broken():
    f = fault(0, K.CUT_BOTH, 2.0, 3.0, peer="@other")
    r = check(synth([(0, ["a"]), (2.4, ["a", "b"]), (5.6, ["a"])], [(f, "a", 2.0, 5.0)], end=9), PROMISE)
    assert "double_active" in rules(r) and "heal" in rules(r)
    v = next(v for v in r.violations if v.rule == "double_active")
    assert "0.600 s past the heal" in v.text and v.faults == ("#0 cut_both a->@other",)


def test_double_active_in_a_kind_that_does_not_allow_it_is_broken():
    f = fault(0, K.CRASH, 2.0, 2.0)
    r = check(synth([(0, ["a"]), (2.0, ["a", "b"]), (2.5, ["b"])], [(f, "a", 2.0, 4.0)], end=8), PROMISE)
    assert "double_active" in rules(r)
    assert r.stats["crash"].double_s == pytest.approx(0.5)


def test_double_active_with_no_fault_at_all_is_broken_but_a_handover_blip_is_not():
    r = check(synth([(0, ["a"]), (3.0, ["a", "b"]), (3.3, ["a"])], end=6), PROMISE)
    assert rules(r) == ["double_active"] and r.violations[0].faults == ()
    blip = check(synth([(0, ["a"]), (3.0, ["a", "b"]), (3.02, ["a"])], end=6), PROMISE)
    assert blip.ok and blip.handovers == 1


def test_unprovoked_change_of_the_active():
    r = check(synth([(0, ["a"]), (3.0, ["b"])], end=6), PROMISE)
    assert rules(r) == ["unprovoked_change"]
    assert r.stats[NO_FAULT].violations == 1


def test_heal_too_slow():
    f = fault(0, K.CUT_ONE_WAY, 2.0, 1.0, peer="@other")
    r = check(synth([(0, ["a"]), (2.4, ["a", "b"]), (3.0, []), (3.5, ["a"])], [(f, "a", 2.0, 3.0)], end=7),
              PROMISE)
    assert "heal" in rules(r)
    assert "nobody_active" in rules(r)  # a cut has no takeover bound: nobody active is not excused


def test_nobody_active_in_a_lossy_link_is_waived_until_its_heal_bound_but_double_active_is_not():
    """A lossy link (grey failure) may leave nobody able to keep the service: reported, not broken, while it
    is in force and until its heal + heal bound; two actives are still judged by double_allowed."""
    p = PROMISE.model_copy(update={"liveness_waived": {K.LOSS}, "heal_allowance": {K.LOSS: 1.0}})
    f = fault(0, K.LOSS, 2.0, 3.0)
    ok = check(synth([(0, ["a"]), (3.0, []), (5.8, ["b"])], [(f, "a", 2.0, 5.0)], end=9), p)
    assert ok.ok, text_report(ok)
    late = check(synth([(0, ["a"]), (3.0, []), (6.6, ["b"])], [(f, "a", 2.0, 5.0)], end=9), p)
    assert "nobody_active" in rules(late) and "heal" in rules(late)
    not_waived = check(synth([(0, ["a"]), (3.0, []), (5.8, ["b"])], [(f, "a", 2.0, 5.0)], end=9), PROMISE)
    assert "nobody_active" in rules(not_waived)
    double = check(synth([(0, ["a"]), (3.0, ["a", "b"]), (5.1, ["a"])], [(f, "a", 2.0, 5.0)], end=9), p)
    assert "double_active" in rules(double)


def test_heal_is_judged_at_the_last_fault_of_an_overlap_and_nobody_is_not_promised():
    f1 = Fault(id=0, start=2.0, kind=K.CRASH, target="@active", duration=2.0, group=0)
    f2 = Fault(id=1, start=2.5, kind=K.CRASH, target="@other", duration=2.5, group=0)
    tl = [(0, ["a"]), (2.0, []), (2.4, ["b"]), (2.5, []), (5.1, ["b"])]
    r = check(synth(tl, [(f1, "a", 2.0, 4.0), (f2, "b", 2.5, 5.0)], end=9), PROMISE)
    assert r.ok, text_report(r)


def test_after_an_overlap_pair_that_left_nobody_recovery_may_take_a_takeover_but_not_forever():
    """Docker standard, seed 1, overlap: the witness down and the passive crashed at once; the active fenced
    itself (right: nobody acknowledged it) and was back 0.86 s after the last heal, over heal_bound (0.35 s).
    After a pair the heal is judged by the last heal + heal_bound + the longest takeover bound (0.5 s here)."""
    f1 = Fault(id=0, start=2.0, kind=K.WITNESS_DOWN, target="witness", duration=1.3, group=0)
    f2 = Fault(id=1, start=2.3, kind=K.CRASH, target="@other", duration=1.3, group=0)
    faults = [(f1, "witness", 2.0, 3.3), (f2, "b", 2.3, 3.6)]
    ok = check(synth([(0, ["a"]), (2.9, []), (4.2, ["a"])], faults, end=8), PROMISE)
    assert ok.ok, text_report(ok)  # back 0.6 s after the last heal: within 0.25 + 0.5
    late = check(synth([(0, ["a"]), (2.9, []), (4.5, ["a"])], faults, end=8), PROMISE)
    assert "heal" in rules(late)  # 0.9 s: beyond it
    single = check(synth([(0, ["a"]), (2.9, []), (4.2, ["a"])], [(fault(1, K.CRASH, 2.3, 1.3, "@other"), "b", 2.3,
                                                                       3.6)], end=8), PROMISE)
    assert "heal" in rules(single)  # the same recovery after a single fault is too slow


def test_missing_fault_record_is_broken():
    f = fault(0, K.CRASH, 2.0, 1.0)
    rec = synth([(0, ["a"])], [(f, "a", 2.0, 3.0)], end=6)
    rec.faults.clear()
    r = check(rec, PROMISE)
    assert rules(r) == ["fault_not_recorded"]


def test_client_and_stale_seconds_are_counted():
    f = fault(0, K.CRASH, 2.0, 2.0)
    r = check(synth([(0, ["a"]), (2.0, []), (2.4, ["b"])], [(f, "a", 2.0, 4.0)], end=8, client_ok=False,
                    stale=["a"]), PROMISE)
    assert r.stats["crash"].client_fail_s > 2 and r.stats["crash"].stale_s > 2


def test_file_round_trip_cli_exit_status_and_report(tmp_path, capsys):
    path = tmp_path / "history.jsonl"
    with History(path) as h:
        h.meta(system="vrrp", nodes=["a", "b"], promise=json.loads(PROMISE.model_dump_json()))
        for i in range(100):
            h.write({"type": "sample", "t": i * DT, "active": ["a"] if i < 50 else ["b"]})
    assert read_history(path).samples[0] == {"type": "sample", "t": 0.0, "active": ["a"]}
    assert not check_file(path).ok
    assert main([str(path)]) == 1
    assert "unprovoked_change" in capsys.readouterr().out
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(json.dumps({"type": "sample", "t": i * DT, "active": ["a"]}) for i in range(10)))
    promise = tmp_path / "p.json"
    promise.write_text(PROMISE.model_dump_json())
    assert main([str(good), "--promise", str(promise)]) == 0


def test_text_report_and_timeline_png(tmp_path):
    f = fault(0, K.CUT_BOTH, 2.0, 3.0, peer="@other")
    g = fault(1, K.CRASH, 7.0, 1.0)
    rec = synth([(0, ["a"]), (2.4, ["a", "b"]), (5.1, ["a"]), (7.0, []), (7.4, ["b"])],
                [(f, "a", 2.0, 5.0), (g, "a", 7.0, 8.0)], end=10, client_ok=True)
    r = check(rec, PROMISE)
    text = text_report(r)
    assert "cut_both" in text and "crash" in text and "promise kept" in text
    png = timeline_png(rec, r, tmp_path / "timeline.png")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_promise_rejects_unknown_keys_and_bad_bounds():
    with pytest.raises(ValueError):
        Promise(system="x", heal_bound=0)
    with pytest.raises(ValueError):
        Promise.model_validate({"system": "x", "heal_bound": 1, "typo": 1})
    assert Promise(system="x", heal_bound=0.2, takeover_bound={K.CRASH: 0.5}).recovery_s == 0.5


def test_a_heal_that_moves_the_service_is_allowed_by_heal_moves_only():
    """Docker: a restarted daemon kills the container it left running; the peer takes over after the heal."""
    f = fault(0, K.DAEMON_KILL, 2.0, 2.0)
    history = synth([(0, ["a"]), (4.3, []), (5.3, ["b"])], [(f, "a", 2.0, 4.0)], end=10)
    plain = Promise(system="docker", heal_bound=0.25, takeover_bound={K.CRASH: 2.0}, recovery=4.0)
    assert rules(check(history, plain)) == ["nobody_active"]
    moves = plain.model_copy(update={"heal_moves": {K.DAEMON_KILL: 1.5}})
    r = check(history, moves)
    assert r.ok, text_report(r)
    assert r.stats["daemon_kill"].nobody_s == pytest.approx(1.0)
    late = synth([(0, ["a"]), (4.3, []), (5.8, ["b"])], [(f, "a", 2.0, 4.0)], end=10)
    assert rules(check(late, moves)) == ["nobody_active"]  # ended 1.8 s after the heal > 1.5 s
    early = synth([(0, ["a"]), (3.0, []), (3.5, ["b"])], [(f, "a", 2.0, 4.0)], end=10)
    assert rules(check(early, moves)) == ["nobody_active"]  # during the fault the service must not move


# ---- client_heal: the client reaches the service again soon after a heal (VRRP: seed 20261128) ----------

CLIENT_PROMISE = PROMISE.model_copy(update={"client_bound": 0.45})


def with_client(record, failing):
    """Set each sample's client_ok: False inside any of the ``failing`` [(from, to)] stretches."""
    for s in record.samples:
        s["client_ok"] = not any(a <= s["t"] < b for a, b in failing)
    return record


def cut_history(failing):
    f = fault(0, K.CUT_BOTH, 2.0, 2.0, peer="@other")
    rec = synth([(0, ["a"]), (2.4, ["a", "b"]), (4.06, ["a"])], [(f, "a", 2.0, 4.0)], end=12)
    return with_client(rec, failing)


def test_client_failing_for_seconds_after_a_heal_is_broken_seed_20261128_shape():
    """The finding: b was Master during the cut (the client followed its gratuitous ARP); after the heal
    b stepped down in time (the heal rule is kept) but the client's pings failed 4.5 s more."""
    r = check(cut_history([(4.06, 8.5)]), CLIENT_PROMISE)
    assert rules(r) == ["client_heal"]
    v = r.violations[0]
    assert (v.start, v.end) == (4.06, 8.5) and v.faults == ("#0 cut_both a->@other",)
    assert "0.060-4.500 s after the heal (bound: ok by 0.450 s)" in v.text
    assert r.stats["cut_both"].heals == [pytest.approx(0.06)]
    assert "client ok again after heals (bound 450 ms)" in text_report(r)
    assert check(cut_history([(4.06, 8.5)]), PROMISE).ok  # without a client_bound the rule is off


def test_client_back_within_the_bound_keeps_the_promise_and_is_measured():
    r = check(cut_history([(4.0, 4.2)]), CLIENT_PROMISE)
    assert r.ok, text_report(r)
    assert r.stats["cut_both"].client_back == [pytest.approx(0.2)]
    assert "cut_both 200/200" in text_report(r)


def test_a_later_client_failure_longer_than_the_grace_is_broken_a_blip_is_not():
    assert check(cut_history([(6.0, 6.04)]), CLIENT_PROMISE).ok  # a handover blip (2 samples)
    r = check(cut_history([(6.0, 6.3)]), CLIENT_PROMISE)
    assert rules(r) == ["client_heal"] and r.violations[0].start == 6.0


def test_client_heal_is_not_judged_while_another_fault_is_in_force():
    f = fault(0, K.CUT_BOTH, 2.0, 2.0, peer="@other")
    g = fault(1, K.CUT_ONE_WAY, 4.1, 2.0, peer="@other")
    rec = synth([(0, ["a"]), (2.4, ["a", "b"]), (4.06, ["a"])], [(f, "a", 2.0, 4.0), (g, "a", 4.1, 6.1)], end=12)
    r = check(with_client(rec, [(4.0, 7.0)]), CLIENT_PROMISE)  # #0 not judged, #1 is: 0.9 s after its heal
    assert [(v.rule, v.faults) for v in r.violations] == [("client_heal", ("#1 cut_one_way a->@other",))]


GREY = PROMISE.model_copy(update={"steady": {K.DELAY, K.DUP}, "recovery": 2.0})


def test_a_grey_fault_that_changes_nothing_keeps_the_promise():
    f = fault(0, K.DELAY, 2.0, 3.0)
    r = check(synth([(0, ["a"])], [(f, "a", 2.0, 5.0)], end=9), GREY)
    assert r.ok, text_report(r)


def test_a_takeover_under_a_grey_fault_is_broken_even_without_a_gap_or_a_double():
    """A clean switch from a to b (no sampled gap, no double) under a delay: only the steady rule sees it."""
    f = fault(0, K.DELAY, 2.0, 3.0)
    r = check(synth([(0, ["a"]), (3.0, ["b"])], [(f, "a", 2.0, 5.0)], end=9), GREY)
    assert rules(r) == ["steady"], text_report(r)
    assert r.violations[0].start == pytest.approx(3.0) and r.violations[0].faults == ("#0 delay a",)
    assert rules(check(synth([(0, ["a"]), (3.0, ["b"])], [(f, "a", 2.0, 5.0)], end=9), PROMISE)) == []


def test_a_change_after_a_grey_heal_within_recovery_is_the_faults_doing():
    f = fault(0, K.DUP, 2.0, 3.0)
    r = check(synth([(0, ["a"]), (6.0, [])], [(f, "a", 2.0, 5.0)], end=9), GREY)
    assert "steady" in rules(r) and "nobody_active" in rules(r), text_report(r)
    later = check(synth([(0, ["a"]), (8.0, ["b"])], [(f, "a", 2.0, 5.0)], end=10), GREY)
    assert rules(later) == ["unprovoked_change"], text_report(later)  # past recovery: no fault's doing


def test_a_grey_fault_in_the_aftermath_of_a_crash_is_not_judged_steady():
    crash, delay = fault(0, K.CRASH, 1.0, 1.0), fault(1, K.DELAY, 2.5, 2.0)
    r = check(synth([(0, ["a"]), (1.0, []), (1.3, ["b"]), (3.0, ["a"])],
                    [(crash, "a", 1.0, 2.0), (delay, "b", 2.5, 4.5)], end=9), GREY)
    assert "steady" not in rules(r), text_report(r)  # the crash's failback, within its recovery


def test_fault_end_fields_reach_the_window():
    lines = [{"type": "meta"}, {"type": "sample", "t": 0.0, "active": ["a"]},
             {"type": "fault_start", "t": 1.0, "fault": fault(0, K.DELAY, 1.0, 1.0).to_dict(), "target": "a",
              "peer": None, "delay_ms": 20.0},
             {"type": "fault_end", "t": 2.0, "id": 0, "delayer": {"packets": 3, "max_hold_ms": 21.0}}]
    w = parse_history(lines).faults[0]
    assert w.end == 2.0 and w.extra["delay_ms"] == 20.0 and w.extra["delayer"]["packets"] == 3

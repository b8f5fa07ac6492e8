"""StateMachine (the transition choke point), HookQueue ordering, and the real subprocess runner."""

import enum
import sys
import time

import pytest

from failover_core import HookQueue, HookResult, IllegalTransition, LocalUsageError, StateMachine, Transition
from failover_core.shell.notify import NotifyDispatcher, SubprocessHookRunner


class S(enum.Enum):
    INIT = 1
    BACKUP = 2
    MASTER = 3


MOVES = {S.INIT: {S.BACKUP, S.MASTER}, S.BACKUP: {S.MASTER, S.INIT}, S.MASTER: {S.BACKUP, S.INIT}}


def test_change_records_from_to_reason_time_and_sequence():
    sm = StateMachine("VR_1", S.INIT, MOVES)
    t1 = sm.change(S.BACKUP, code="startup", reason="priority < 255", now=1.0)
    t2 = sm.change(S.MASTER, code="master_down", reason="no advert for 3.6s", now=4.6)
    assert (t1.from_state, t1.to_state, t1.seq, t1.at) == ("INIT", "BACKUP", 1, 1.0)
    assert (t2.from_state, t2.to_state, t2.seq, t2.code) == ("BACKUP", "MASTER", 2, "master_down")
    assert sm.state is S.MASTER and sm.last is t2 and list(sm.history) == [t1, t2]
    assert "no advert" in str(t2)


def test_same_state_is_no_event():
    sm = StateMachine("x", S.INIT, MOVES)
    assert sm.change(S.INIT, code="c", reason="r", now=0) is None
    assert not sm.history


def test_illegal_move_raises_with_the_table_in_the_message():
    sm = StateMachine("x", S.BACKUP, {**MOVES, S.BACKUP: {S.MASTER}})
    with pytest.raises(IllegalTransition, match=r"BACKUP -> INIT is not allowed.*MASTER"):
        sm.change(S.INIT, code="c", reason="r", now=0)
    assert sm.state is S.BACKUP


def test_time_going_backwards_is_a_local_error():
    sm = StateMachine("x", S.INIT, MOVES)
    sm.change(S.BACKUP, code="c", reason="r", now=5.0)
    with pytest.raises(LocalUsageError):
        sm.change(S.MASTER, code="c", reason="r", now=4.0)


def _t(seq, subject="svc"):
    return Transition(subject=subject, from_state="A", to_state="B", code="c", reason="r", at=0.0, seq=seq)


def test_hook_queue_hands_out_in_order_once_and_one_at_a_time():
    q = HookQueue()
    q.push(_t(1))
    q.push(_t(2))
    first = q.take()
    assert first.seq == 1 and q.take() is None  # second waits until the first is done
    q.done(HookResult(seq=1, ok=True, returncode=0, detail="exit 0", duration=0.1))
    assert q.take().seq == 2
    q.done(HookResult(seq=2, ok=False, returncode=1, detail="exit 1", duration=0.1))
    assert q.take() is None and len(q) == 0
    assert [r.seq for r in q.results] == [1, 2]


def test_hook_queue_refuses_reordering_and_wrong_results():
    q = HookQueue()
    q.push(_t(2))
    with pytest.raises(LocalUsageError):
        q.push(_t(2))
    q.take()
    with pytest.raises(LocalUsageError):
        q.done(HookResult(seq=9, ok=True, returncode=0, detail="", duration=0))


def test_subprocess_runner_passes_transition_and_reports_exit(tmp_path):
    out = tmp_path / "out.txt"
    script = tmp_path / "hook.sh"
    script.write_text(f'#!/bin/sh\necho "$1|$2|$3|$4|$FAILOVER_CODE|$FAILOVER_SEQ" >> {out}\nexit 3\n')
    script.chmod(0o755)
    r = SubprocessHookRunner([str(script)], timeout=5).run(_t(7))
    assert (r.ok, r.returncode, r.detail) == (False, 3, "exit 3")
    assert out.read_text() == "svc|A|B|r|c|7\n"


def test_subprocess_runner_args_for_replaces_the_arguments_env_stays(tmp_path):
    out = tmp_path / "out.txt"
    script = tmp_path / "hook.sh"
    script.write_text(f'#!/bin/sh\necho "$#|$*|$FAILOVER_TO" >> {out}\n')
    script.chmod(0o755)
    r = SubprocessHookRunner([str(script)], timeout=5, args_for=lambda t: ["X", t.subject, "Y z"]).run(_t(7))
    assert r.ok and out.read_text() == "3|X svc Y z|B\n"


def test_subprocess_runner_missing_binary_is_a_failed_hook_not_an_exception():
    r = SubprocessHookRunner(["/nonexistent/notify-me"], timeout=1).run(_t(1))
    assert not r.ok and r.returncode is None and "cannot run" in r.detail


def test_subprocess_runner_kills_a_hanging_hook_and_its_children(tmp_path):
    pidfile = tmp_path / "child.pid"
    # the hook starts a grandchild that would outlive a plain kill of the shell
    cmd = ["/bin/sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait", "hook"]
    t0 = time.monotonic()
    r = SubprocessHookRunner(cmd, timeout=0.5).run(_t(1))
    assert not r.ok and "timed out" in r.detail
    assert time.monotonic() - t0 < 5
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{child}/stat") as f:
                if f.read().split()[2] == "Z":
                    break
        except FileNotFoundError:
            break
        time.sleep(0.02)
    else:
        pytest.fail(f"grandchild {child} survived the hook timeout")


def test_dispatcher_runs_hooks_in_transition_order(tmp_path):
    out = tmp_path / "order.txt"
    code = f"import sys,time; time.sleep(0.05 if sys.argv[3]=='1' else 0); open({str(out)!r},'a').write(sys.argv[3])"
    d = NotifyDispatcher(SubprocessHookRunner([sys.executable, "-c", code, "x"], timeout=10))
    for seq in range(1, 6):
        d.submit(Transition(subject="svc", from_state=str(seq), to_state="B", code="c", reason="r", at=0.0, seq=seq))
    assert d.drain(20)
    d.close()
    assert out.read_text() == "12345"
    assert [r.seq for r in d.queue.results] == [1, 2, 3, 4, 5]

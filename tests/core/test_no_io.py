"""The core reads no clock and does no I/O of its own (everything outside failover_core/shell)."""

import ast
import datetime
import time
from pathlib import Path

import pytest

import failover_core
from failover_core import (
    Facts,
    FakeClock,
    HeartbeatSigner,
    HookQueue,
    HookResult,
    Liveness,
    PeerLiveness,
    ReplayWindow,
    Role,
    StateMachine,
    decide,
)
from failover_core.tables import Action
from labs.core_demo import run as demo_run

CORE_DIR = Path(failover_core.__file__).parent
FORBIDDEN = {"time", "datetime", "socket", "subprocess", "os", "threading", "asyncio", "select",
             "selectors", "signal", "shutil", "pathlib", "io", "urllib", "http", "requests", "gevent"}
PURE_SUBMODULES = {"urllib.parse"}  # string parsing only: allowed although its package is forbidden
PURE_MODULES = sorted(p for p in CORE_DIR.glob("*.py") if p.name != "__init__.py")


def test_there_are_pure_modules_to_check():
    names = {p.stem for p in PURE_MODULES}
    assert {"liveness", "tables", "decide", "transitions", "hooks", "heartbeat_auth", "config", "clock"} <= names


@pytest.mark.parametrize("path", PURE_MODULES, ids=lambda p: p.name)
def test_pure_module_imports_nothing_that_does_io(path):
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in PURE_SUBMODULES:
                continue
            imported.add(node.module.split(".")[0])
            if node.module.startswith("failover_core.shell"):
                imported.add("failover_core.shell")
    bad = imported & (FORBIDDEN | {"failover_core.shell"})
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.fixture
def clocks_that_explode(monkeypatch):
    def boom(*_a, **_k):
        raise AssertionError("failover_core read a clock or slept")

    for name in ("time", "monotonic", "monotonic_ns", "perf_counter", "time_ns", "sleep"):
        monkeypatch.setattr(time, name, boom)

    class ExplodingDatetime(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            boom()

        @classmethod
        def utcnow(cls):
            boom()

    monkeypatch.setattr(datetime, "datetime", ExplodingDatetime)


def test_core_scenario_runs_with_every_clock_booby_trapped(clocks_that_explode):
    clock = FakeClock(0.0)
    p = PeerLiveness("primary", 3.0, clock.now())
    p.heard(clock.advance(1))
    assert p.is_up(clock.now()) and p.next_deadline(clock.now()) == 4.0
    d = decide(Role.SECONDARY, Facts(peer=p.state(clock.advance(5)), witness=Liveness.UP))
    assert d.action is Action.VERIFY
    sm = StateMachine("svc", Action.STOP, {Action.STOP: {Action.START}, Action.START: {Action.STOP}})
    t = sm.change(Action.START, code="c", reason="r", now=clock.now())
    q = HookQueue()
    q.push(t)
    q.done(HookResult(seq=q.take().seq, ok=True, returncode=0, detail="exit 0", duration=0.0))
    s = HeartbeatSigner("k")
    s.verify({"a": 1}, s.sign({"a": 1}))
    ReplayWindow(30).check_seq(sender="a", boot="b", seq=1, timestamp=100.0, wall_now=101.0)
    assert len(demo_run(until=25.0)) >= 4  # the whole simulated timeline, on the fake clock


def test_booby_trap_really_fires(clocks_that_explode):
    # guards the guard: if patching stopped working, the test above would prove nothing
    with pytest.raises(AssertionError, match="read a clock"):
        time.monotonic()

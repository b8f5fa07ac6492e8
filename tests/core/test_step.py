"""The shared decision-cycle vocabulary (Reason, Step, Deadlines, ReasonCode) and carry_out."""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass

import pytest

from failover_core.errors import LocalUsageError
from failover_core.shell.carry_out import DecisionLog, carry_out, carry_out_async
from failover_core.step import Deadlines, Reason, ReasonCode, Step, StepBuilder, codes_table
from failover_core.transitions import StateMachine


class Light(enum.Enum):
    OFF = "off"
    ON = "on"


class Code(ReasonCode):
    SWITCHED_ON = "switched_on", "someone pressed the switch"
    DARK = "room.dark", "the room is dark"


@dataclass(frozen=True)
class Lamp:
    watts: int


@dataclass(frozen=True)
class BrightLamp(Lamp):
    pass


@dataclass(frozen=True)
class Beep:
    pass


class Recorder:
    def __init__(self) -> None:
        self.got: list[object] = []

    def submit(self, t: object) -> None:
        self.got.append(t)


def _machine() -> StateMachine[Light]:
    return StateMachine("lamp", Light.OFF, {Light.OFF: {Light.ON}, Light.ON: {Light.OFF}})


def test_reason_code_carries_meaning_and_checks_style() -> None:
    assert Code.DARK == "room.dark" and Code.DARK.meaning == "the room is dark"
    assert "| `switched_on` | someone pressed the switch |" in codes_table(Code)
    with pytest.raises(LocalUsageError, match="code style"):
        ReasonCode("Bad", [("X", ("Not-A-Code", "x"))])
    with pytest.raises(LocalUsageError):
        Reason("has space", "x")


def test_builder_and_then_keep_order_and_the_later_reason() -> None:
    sm = _machine()
    b: StepBuilder[object] = StepBuilder()
    b.act(Lamp(1))
    b.changed(sm.change(Light.ON, code=Code.SWITCHED_ON, reason="pressed", now=1.0))
    b.changed(None)
    b.because(Code.SWITCHED_ON, "pressed")
    first = b.build()
    second = Step(actions=(Beep(),), notes=(Reason(Code.DARK, "dark"),))
    both = first.then(second)
    assert both.actions == (Lamp(1), Beep())
    assert [t.to_state for t in both.transitions] == ["ON"]
    assert both.reason == Reason("switched_on", "pressed")  # second had none
    assert both.notes == (Reason("room.dark", "dark"),)
    assert both.of_type(Beep) == [Beep()]
    assert Step().empty and not both.empty
    with pytest.raises(LocalUsageError):
        Step(actions=[Lamp(1)])  # type: ignore[arg-type]


def test_deadlines_named_earliest_due() -> None:
    d: Deadlines[str] = Deadlines()
    assert d.earliest() is None and d.due(100.0) == []
    d.set("advert", 5.0)
    d.set("down", 3.0)
    d.set("advert", 4.0)  # moved
    assert d.earliest() == 3.0
    assert d.due(3.5) == ["down"] and "down" in d
    assert d.due(4.0) == ["down", "advert"]
    assert d.pop_due(3.0) == ["down"] and "down" not in d
    d.clear("advert")
    d.clear("never-set")
    assert len(d) == 0
    for bad in (float("inf"), float("nan"), True, "3"):
        with pytest.raises(LocalUsageError):
            d.set("x", bad)  # type: ignore[arg-type]


def test_carry_out_logs_notifies_then_dispatches_by_type(caplog: pytest.LogCaptureFixture) -> None:
    sm = _machine()
    t = sm.change(Light.ON, code=Code.SWITCHED_ON, reason="pressed", now=1.0)
    assert t is not None
    step = Step(actions=(BrightLamp(60), Beep(), Lamp(5)), transitions=(t,), reason=Reason(Code.SWITCHED_ON, "on"))
    order: list[str] = []
    sink = Recorder()
    handlers = {Lamp: lambda a: order.append(f"lamp {a.watts}") or a.watts, Beep: lambda a: order.append("beep")}
    log = DecisionLog(logging.getLogger("test.step"), prefix="lamp")
    with caplog.at_level(logging.DEBUG, logger="test.step"):
        results = carry_out(step, handlers, log=log, notify=sink)
        carry_out(Step(reason=Reason(Code.SWITCHED_ON, "on")), handlers, log=log)  # a repeat: DEBUG
    assert order == ["lamp 60", "beep", "lamp 5"]  # BrightLamp found its base class's handler
    assert results == [60, None, 5]
    assert sink.got == [t]
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert lines[0] == (logging.INFO, "lamp: transition: lamp: OFF -> ON (pressed) [switched_on]")
    assert lines[1] == (logging.INFO, "lamp: decision: on [switched_on]")
    assert lines[2] == (logging.DEBUG, "lamp: decision: on [switched_on]")


def test_missing_handler_is_a_bug_and_nothing_runs() -> None:
    ran: list[object] = []
    sink = Recorder()
    step = Step(actions=(Lamp(1), Beep()), reason=Reason("x", "y"))
    with pytest.raises(LocalUsageError, match="no handler for action Beep"):
        carry_out(step, {Lamp: ran.append}, notify=sink)
    assert ran == [] and sink.got == []


def test_carry_out_async_awaits_in_order() -> None:
    order: list[str] = []

    async def lamp(a: Lamp) -> int:
        await asyncio.sleep(0.01 if a.watts == 1 else 0)
        order.append(f"lamp {a.watts}")
        return a.watts

    step = Step(actions=(Lamp(1), Beep(), Lamp(2)))
    results = asyncio.run(carry_out_async(step, {Lamp: lamp, Beep: lambda a: order.append("beep")}))
    assert order == ["lamp 1", "beep", "lamp 2"] and results == [1, None, 2]


def test_rate_limited_notes_log_at_info_on_powers_of_ten(caplog: pytest.LogCaptureFixture) -> None:
    log = DecisionLog(logging.getLogger("test.notes"), rate_limited={"dropped"})
    with caplog.at_level(logging.DEBUG, logger="test.notes"):
        for _ in range(100):
            log.step(Step(notes=(Reason("dropped", "bad packet"),)))
        log.step(Step(notes=(Reason("start_failed", "exit 1"),)))
        log.step(Step(notes=(Reason("start_failed", "exit 1"),)))
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert info == ["note: bad packet [dropped] (1 so far)", "note: bad packet [dropped] (10 so far)",
                    "note: bad packet [dropped] (100 so far)",
                    "note: exit 1 [start_failed]", "note: exit 1 [start_failed]"]
    assert log.note_counts["dropped"] == 100

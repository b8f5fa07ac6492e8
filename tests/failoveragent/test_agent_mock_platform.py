"""FailoverAgent and WitnessAgent on volttron-testing's mock platform (no VOLTTRON process; milliseconds).

The real agent classes run on volttron-testing's mock core (``MockCoreBuilder``, registered as ``mock``) and are
connected to its ``TestServer``: the server finds their ``@Core.receiver`` lifecycle methods (we start the agents
with ``trigger_start_event``) and routes their ``vip.pubsub`` through its in-memory pubsub, so heartbeats in (the
peer's, published on the server) and alerts out (``vip.health.send_alert``) travel over mock pubsub. What
volttron-testing does not mock, the test supplies: ``platform.control`` (``FakeControl``: the agent's
``vip.rpc.call`` intercepted; it records every start_agent/stop_agent/agent_status/clear_status), the links to the
peer and witness platforms (``MockLink``: a publish lands on the peer platform's own in-memory bus, a call runs the
witness agent's RPC export), and the clock (``FakeClock``, so a 6-second timeout passes in no time).

The agent's greenlets are not left running: one round of the decision loop or of a heartbeat sender is the agent's
own greenlet function run until it waits (``Node.cycle``/``Node.beat``). The core builder is a process-wide
singleton: the ``mock_core`` fixture resets it (``reset_core_builder``) before and after, and leaves a fresh ZMQ
builder cached, so the real-platform tests run in the same pytest process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import gevent.event
import pytest

from failover_agent.agent import FailoverAgent
from failover_agent.remote import RemoteUnavailable
from failover_agent.wire import Heartbeat, check_heartbeat, make_heartbeat
from failover_agent.witness import WitnessAgent
from failover_core.clock import FakeClock
from failover_core.heartbeat_auth import HeartbeatSigner, ReplayWindow

SECRET = "mock-platform-secret"
SERVICE = "platform.svc"
WITNESS = "volttron.central"
SIMPLE = {"heartbeat_period": 1.0, "timeout": 3.0}
STANDARD = {"heartbeat_period": 1.0, "timeout": 6.0, "stop_bound": 1.0}


@pytest.fixture
def mock_core() -> Iterator[None]:
    """Agents built in the test get volttron-testing's mock core; afterwards the process builds ZMQ cores again."""
    import volttron.messagebus.zmq.zmq_core  # noqa: F401  (registers ZmqCoreBuilder before the mock one)
    import volttrontesting.mock_core_builder  # noqa: F401  (registers MockCoreBuilder as "mock")
    from volttron.client.decorators import get_core_builder, reset_core_builder

    reset_core_builder()
    assert type(get_core_builder(name="mock")).__name__ == "MockCoreBuilder"
    try:
        yield
    finally:
        reset_core_builder()
        # with two builders registered, an unnamed lookup is ambiguous: cache the one real agents use
        assert type(get_core_builder(name="ZmqCoreBuilder")).__name__ == "ZmqCoreBuilder"


@pytest.fixture
def server(mock_core: None) -> Iterator[Any]:
    from volttrontesting.server_mock import PubSubWrapper, TestServer

    # 0.5.1rc4: PubSubWrapper keeps the bus of the FIRST TestServer of the process (a class attribute set once), so
    # the agents of a later test would publish onto a dead server's bus: forget it, the new server's bus is taken
    PubSubWrapper.__wrapper__ = None
    yield TestServer()


# -- what volttron-testing does not mock ------------------------------------------------------------------
class FakeControl:
    """``platform.control`` of the agent's platform with the managed agent ``SERVICE`` installed (uuid u-1)."""

    def __init__(self, *, running: bool = False, rc_after_stop: int = 0) -> None:
        self.uuid = "u-1"
        self.status: list[int | None] = [4242, None] if running else [None, 0]
        self.rc_after_stop = rc_after_stop
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __call__(self, peer: str, method: str, *args: Any) -> gevent.event.AsyncResult:
        assert peer == "platform.control", peer
        self.calls.append((method, args))
        result = gevent.event.AsyncResult()
        result.set(getattr(self, method)(*args))
        return result

    def identity_exists(self, identity: str) -> str | None:
        return self.uuid if identity == SERVICE else None

    def agent_status(self, uuid: str) -> list[int | None]:
        assert uuid == self.uuid
        return list(self.status)

    def start_agent(self, uuid: str) -> None:
        assert uuid == self.uuid
        self.status = [4243, None]

    def stop_agent(self, uuid: str) -> None:
        assert uuid == self.uuid
        self.status = [None, self.rc_after_stop]

    def clear_status(self, clear_all: bool) -> None:
        assert clear_all is True

    @property
    def running(self) -> bool:
        return self.status[0] is not None and self.status[1] is None

    def acts(self) -> list[str]:
        return [m for m, _ in self.calls if m in ("start_agent", "stop_agent", "clear_status")]


class MockLink:
    """The agent's link to another platform: publish onto that platform's in-memory bus, call an agent there."""

    def __init__(self, name: str, bus: Any = None, agents: dict[str, Any] | None = None) -> None:
        self.name = name
        self.bus = bus
        self.agents = agents or {}
        self.down = False
        self.connected = True
        self.failures = 0
        self.last_error = ""

    def _check(self) -> None:
        if self.down:
            self.failures += 1
            self.last_error = f"{self.name}: cut"
            raise RemoteUnavailable(self.last_error)

    def publish(self, topic: str, message: Any, *, wait: bool = True) -> None:
        self._check()
        self.bus.publish(topic, headers={}, message=message)

    def call(self, identity: str, method: str, *args: Any) -> Any:
        self._check()
        return rpc(self.agents[identity], method, *args)

    def close(self) -> None:
        pass


def rpc(agent: Any, method: str, *args: Any) -> Any:
    """Call what ``agent`` exports over VIP RPC (its RPC subsystem's export table, as the platform dispatches)."""
    return agent.vip.rpc._exports[method](*args)


def run_once(fn: Callable[[], None]) -> None:
    """Run one of the agent's greenlet functions until it waits (its timers are in real seconds: never reached)."""
    g = gevent.spawn(fn)
    gevent.sleep(0)
    assert not g.dead, g.exception
    g.kill(block=False)


class FakePeer:
    """The other failover agent: signed heartbeats to our agent's bus and to the witness."""

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        self.signer = HeartbeatSigner(SECRET)
        self.seq = 0
        self.term = 0

    def heartbeat(self, *, active: bool, echo: tuple[str, int] = ("", 0), leaving: bool = False) -> dict[str, Any]:
        self.seq += 1
        return make_heartbeat(self.signer, Heartbeat(self.agent_id, "peer-boot", self.seq, time.time(), active,
                                                     term=self.term, echo_boot=echo[0], echo_seq=echo[1],
                                                     leaving=leaving))


class Node:
    """One FailoverAgent on the mock platform, with its peer's bus, a fake peer and (standard mode) the witness."""

    def __init__(self, server: Any, config: dict[str, Any], *, running: bool = False, rc_after_stop: int = 0,
                 witness: WitnessAgent | None = None, clock: FakeClock | None = None) -> None:
        from volttron.types.auth import VolttronCredentials
        from volttrontesting.memory_pubsub import MemoryPubSub

        self.server = server
        self.clock = clock or FakeClock(time.monotonic())
        self.control = FakeControl(running=running, rc_after_stop=rc_after_stop)
        self.agent = FailoverAgent({**config, "heartbeat_secret": SECRET, "agent_vip_identity": SERVICE},
                                   credentials=VolttronCredentials(identity="failover", publickey="pk", secretkey="sk"),
                                   name="mock")
        assert type(self.agent.core).__name__ == "MockCore"
        # the mock core keeps the agent's credentials in its context; the ZMQ core has them as _credentials
        self.agent.core._credentials = self.agent.core._context.credentials
        self.agent.clock = self.clock
        self.agent.vip.rpc.call = self.control  # before onstart: ManagedAgents keeps this callable
        server.connect_agent(self.agent, logging.getLogger("tests.mock_platform.server_log"))
        self.alerts: list[Any] = []
        server.subscribe("alerts/", lambda topic, headers, message, bus: self.alerts.append((topic, headers, message)))
        server.trigger_start_event(self.agent)
        gevent.killall(self.agent._greenlets, block=False)  # we run their rounds ourselves (run_once)
        cfg = self.agent.config
        assert cfg is not None
        self.peer_bus = MemoryPubSub()  # the peer platform's bus: our heartbeats land there
        self.sent: list[dict[str, Any]] = []
        self.peer_bus.subscribe(f"heartbeat/{cfg.agent_id}", lambda t, h, m, b: self.sent.append(m))
        self.agent.peer_link = MockLink("peer", bus=self.peer_bus)
        self.witness = witness
        if self.agent.witness_link is not None:
            assert witness is not None
            self.agent.witness_link = MockLink("witness", agents={WITNESS: witness})
        self.peer = FakePeer(cfg.peer_id)

    # rounds of the agent's own greenlets
    def cycle(self) -> None:
        run_once(self.agent._loop)

    def beat(self) -> None:
        run_once(self.agent._peer_sender)
        if self.agent.witness_link is not None:
            run_once(self.agent._witness_sender)

    # the peer
    def hear(self, *, active: bool, echo: bool = True, leaving: bool = False) -> None:
        """The peer's heartbeat arrives on our platform's (mock) bus, echoing our newest heartbeat if ``echo``."""
        last = self.last_sent() if echo and self.sent else None
        msg = self.peer.heartbeat(active=active, echo=(last.boot, last.seq) if last else ("", 0), leaving=leaving)
        self.server.publish(f"heartbeat/{self.peer.agent_id}", headers={}, message=msg)

    def peer_to_witness(self, *, active: bool) -> None:
        assert self.witness is not None
        ack = rpc(self.witness, "heartbeat", self.peer.heartbeat(active=active), [self.agent.config.agent_id])
        assert ack is not None

    def last_sent(self) -> Heartbeat:
        signer = HeartbeatSigner(SECRET)
        return check_heartbeat(signer, ReplayWindow(max_skew=60), self.sent[-1],
                               expected_sender=self.agent.config.agent_id, wall_now=time.time())

    def run(self, seconds: float, *, peer: str | None = "passive", to_us: bool = True,
            peer_to_witness: bool = False) -> None:
        """``seconds`` of fake time, a round each heartbeat period: we beat; the peer (None: silent) sends its
        heartbeat to us (``to_us``) and to the witness (``peer_to_witness``); then one cycle."""
        for _ in range(round(seconds)):
            self.clock.advance(1.0)
            self.beat()
            if peer is not None:
                if to_us:
                    self.hear(active=peer == "active")
                if peer_to_witness:
                    self.peer_to_witness(active=peer == "active")
            self.cycle()

    # what the agent decided and said
    @property
    def code(self) -> str:
        decision = self.agent.decider.decision
        return "" if decision is None else str(decision.code)

    def status(self) -> dict[str, Any]:
        return rpc(self.agent, "get_status")

    def transition_alerts(self) -> list[tuple[str, str]]:
        import json

        return [(h["alert_key"], json.loads(m)["context"]) for _, h, m in self.alerts
                if h["alert_key"].startswith("failover ")]


def make_witness(server: Any, clock: FakeClock) -> WitnessAgent:
    from volttron.types.auth import VolttronCredentials

    w = WitnessAgent({"agent_id": "witness", "timeout": STANDARD["timeout"], "heartbeat_secret": SECRET},
                     credentials=VolttronCredentials(identity=WITNESS, publickey="wpk", secretkey="wsk"), name="mock")
    w.clock = clock  # its book started on the real monotonic clock; the fake one starts just after
    server.connect_agent(w, logging.getLogger("tests.mock_platform.server_log"))
    server.trigger_start_event(w)
    return w


# -- simple mode, both config generations --------------------------------------------------------------------
SIMPLE_PRIMARY = [{"agent_id": "simple_primary", "remote_vip": "ipc://@/peer", **SIMPLE},
                  {"agent_id": "primary", "simple_behavior": True, "remote_vip": "ipc://@/peer", **SIMPLE}]
SIMPLE_SECONDARY = [{"agent_id": "simple_secondary", "remote_vip": "ipc://@/peer", **SIMPLE},
                    {"agent_id": "secondary", "simple_behavior": True, "remote_vip": "ipc://@/peer", **SIMPLE}]
GENERATION = ["agent_id", "simple_behavior"]


@pytest.mark.parametrize("config", SIMPLE_PRIMARY, ids=GENERATION)
def test_simple_primary_always_starts_and_says_active(server: Any, config: dict[str, Any]) -> None:
    n = Node(server, config)
    n.cycle()  # start-up: waits to learn what the secondary runs (or for the timeout)
    assert n.control.acts() == [] and n.code == "simple_primary.startup"
    n.hear(active=False)
    n.cycle()
    assert n.control.acts() == ["start_agent"] and n.control.running
    assert n.code == "simple_primary.always"
    assert n.transition_alerts() == [(f"failover {config['agent_id']}", f"Starting agent {SERVICE}")]
    assert n.status()["role"] == "simple_primary" and n.status()["service"] == "running"
    n.beat()  # the heartbeat goes to the secondary's bus, signed, saying the service runs here
    hb = n.last_sent()
    assert hb.sender == config["agent_id"] and hb.active is True
    n.hear(active=False)
    n.beat()
    assert n.last_sent().echo_seq == n.peer.seq  # our next heartbeat echoes the peer's newest
    n.run(5, peer=None)  # the secondary silent: a simple primary keeps running regardless
    assert n.control.acts() == ["start_agent"] and n.code == "simple_primary.always"


@pytest.mark.parametrize("config", SIMPLE_SECONDARY, ids=GENERATION)
def test_simple_secondary_stops_while_the_primary_is_heard(server: Any, config: dict[str, Any]) -> None:
    n = Node(server, config, running=True, rc_after_stop=-2)  # an operator started it; its stop looks like a crash
    n.hear(active=True)
    n.cycle()
    assert n.code == "simple_secondary.primary_up"
    assert n.control.acts() == ["stop_agent", "clear_status"] and not n.control.running
    assert n.transition_alerts() == [(f"failover {config['agent_id']}", f"Primary is active stopping agent {SERVICE}")]
    n.run(10, peer="active")
    assert n.control.acts() == ["stop_agent", "clear_status"]
    assert n.status()["peer"]["state"] == "up" and n.status()["peer"]["active"] is True


@pytest.mark.parametrize("config", SIMPLE_SECONDARY, ids=GENERATION)
def test_simple_secondary_takes_over_after_timeout_of_silence(server: Any, config: dict[str, Any]) -> None:
    n = Node(server, config)
    n.run(2, peer="active")
    assert n.code == "simple_secondary.primary_up" and n.control.acts() == []
    n.run(2, peer=None)  # silent 2 s < timeout 3 s: still up
    assert n.control.acts() == [] and n.code == "simple_secondary.primary_up"
    n.run(2, peer=None)
    assert n.code == "simple_secondary.primary_down"
    assert n.control.acts() == ["start_agent"] and n.control.running
    assert n.transition_alerts() == [(f"failover {config['agent_id']}",
                                      f"Primary is inactive starting agent {SERVICE}")]
    n.beat()
    assert n.last_sent().active is True  # the secondary now tells the primary's platform it runs the service


def test_forged_heartbeats_are_dropped_and_do_not_keep_the_primary_alive(server: Any) -> None:
    n = Node(server, SIMPLE_SECONDARY[0])
    forged = FakePeer("simple_primary")
    forged.signer = HeartbeatSigner("not-the-secret")
    for _ in range(5):
        n.clock.advance(1.0)
        server.publish("heartbeat/simple_primary", headers={}, message=forged.heartbeat(active=True))
        n.cycle()
    assert n.status()["rejected"] == {"bad_mac": 5}
    assert n.status()["peer"]["heartbeats"] == 0
    assert n.code == "simple_secondary.primary_down" and n.control.acts() == ["start_agent"]


# -- standard mode: the primary's table ------------------------------------------------------------------------
PRIMARY = {"agent_id": "primary", "simple_behavior": False, "remote_vip": "ipc://@/peer",
           "witness_vip": "ipc://@/witness", "witness_identity": WITNESS, **STANDARD}
SECONDARY = {**PRIMARY, "agent_id": "secondary"}


def standard(server: Any, config: dict[str, Any], **kwargs: Any) -> Node:
    clock = FakeClock(time.monotonic())
    return Node(server, config, witness=make_witness(server, clock), clock=clock, **kwargs)


@pytest.mark.parametrize(("peer_cut", "witness_cut", "code"), [
    (False, False, "primary.secondary_up.witness_up"),
    (False, True, "primary.secondary_up.witness_down"),
    (True, False, "primary.secondary_down.witness_up"),
])
def test_primary_starts_when_it_reaches_the_secondary_or_the_witness(server: Any, peer_cut: bool,
                                                                      witness_cut: bool, code: str) -> None:
    n = standard(server, PRIMARY)
    n.agent.witness_link.down = witness_cut
    # past the start-up grace (the lease); a cut peer link: the secondary still tells the witness it runs nothing
    n.run(8, to_us=not peer_cut, peer_to_witness=peer_cut)
    assert n.code == code
    assert n.control.acts() == ["start_agent"] and n.control.running
    assert n.transition_alerts() == [("failover primary", f"Starting agent {SERVICE}")]
    s = n.status()
    assert s["witness"]["state"] == ("down" if witness_cut else "up")
    assert s["peer"]["state"] == ("down" if peer_cut else "up")
    assert s["term"] == 1
    heard = rpc(n.witness, "get_status")["heard"]
    assert ("primary" in heard) is not witness_cut


def test_primary_fences_itself_when_it_reaches_neither(server: Any) -> None:
    n = standard(server, PRIMARY)
    n.run(3)
    assert n.control.running and n.code == "primary.secondary_up.witness_up"
    n.agent.witness_link.down = True
    n.agent.peer_link.down = True
    n.run(3, peer=None)  # within the lease: keeps running
    assert n.control.acts() == ["start_agent"]
    n.run(3, peer=None)
    assert n.code == "primary.secondary_down.witness_down"
    assert n.control.acts() == ["start_agent", "stop_agent"] and not n.control.running
    assert n.transition_alerts()[-1] == ("failover primary", f"Secondary and witness are inactive stopping agent "
                                                             f"{SERVICE}")


# -- standard mode: the secondary's table ----------------------------------------------------------------------
@pytest.mark.parametrize(("witness_cut", "code"), [(False, "secondary.primary_up.witness_up"),
                                                   (True, "secondary.primary_up.witness_down")])
def test_secondary_stops_while_the_primary_is_heard(server: Any, witness_cut: bool, code: str) -> None:
    n = standard(server, SECONDARY, running=True)
    n.agent.witness_link.down = witness_cut
    n.run(8, peer="active", peer_to_witness=True)
    assert n.code == code
    assert n.control.acts() == ["stop_agent"] and not n.control.running
    assert n.transition_alerts() == [("failover secondary", f"Primary is active stopping agent {SERVICE}")]


def test_secondary_takes_over_when_the_witness_confirms_the_primary_is_down(server: Any) -> None:
    n = standard(server, SECONDARY)
    n.run(3, peer="active", peer_to_witness=True)
    assert n.code == "secondary.primary_up.witness_up" and n.control.acts() == []
    n.run(5, peer=None)  # silent 5 s < timeout 6 s
    assert n.control.acts() == []
    n.run(2, peer=None)
    assert n.code == "secondary.verified.primary_down"
    assert n.control.acts() == ["start_agent"] and n.control.running
    assert n.transition_alerts() == [("failover secondary", f"Primary is inactive starting agent {SERVICE}")]
    witness = rpc(n.witness, "get_status")
    assert witness["verifications"] >= 1
    assert witness["heard"]["secondary"]["active"] is True and witness["heard"]["secondary"]["term"] == 1
    assert witness["heard"]["primary"]["state"] == "down"


def test_secondary_does_not_start_when_the_witness_still_hears_the_primary(server: Any) -> None:
    n = standard(server, SECONDARY)
    n.run(3, peer="active", peer_to_witness=True)
    for _ in range(8):  # the link between the peers is cut; the primary still reaches the witness
        n.clock.advance(1.0)
        n.beat()
        n.peer_to_witness(active=True)
        n.cycle()
    assert n.code == "secondary.verified.primary_alive"
    assert n.control.acts() == [] and not n.control.running
    assert rpc(n.witness, "get_status")["verifications"] >= 1


def test_secondary_does_not_start_when_it_reaches_neither(server: Any) -> None:
    n = standard(server, SECONDARY)
    n.run(3, peer="active", peer_to_witness=True)
    n.agent.witness_link.down = True
    n.run(8, peer=None)
    assert n.code == "secondary.primary_down.witness_down"
    assert n.control.acts() == [] and not n.control.running
    assert rpc(n.witness, "get_status")["verifications"] == 0


def test_witness_refuses_a_forged_heartbeat(server: Any) -> None:
    w = make_witness(server, FakeClock(time.monotonic()))
    forged = FakePeer("primary")
    forged.signer = HeartbeatSigner("not-the-secret")
    assert rpc(w, "heartbeat", forged.heartbeat(active=True), ["secondary"]) is None
    assert rpc(w, "get_status")["rejected"] == {"bad_mac": 1} and rpc(w, "get_status")["heard"] == {}

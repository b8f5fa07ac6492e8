"""FailoverAgent: keeps the managed agent(s) running on exactly one of two VOLTTRON platforms.

One decision loop per agent (Patroni style): each cycle reads the facts (peer and witness liveness
from authenticated heartbeats, what the peer says it runs, what runs here), asks
``failover_core.decide`` what to do, does it through ``platform.control``, and logs the reason code.
The loop wakes every ``heartbeat_period``, at the next liveness deadline, and at once when a
heartbeat changes a fact, so takeover is bounded by ``timeout`` and not by a polling interval.

Beside the loop, one sender greenlet per remote link publishes our heartbeat onto the peer
platform's bus (``heartbeat/<agent_id>``) and, in standard mode, sends it to the witness by RPC; a
signed ack from the witness is what makes the witness "up" here. Remote calls are bounded
(``remote.RemoteLink``), so a dead peer never blocks the agent or the platform.

``main`` is the console script the platform runs (``failover-agent``); a config with
``"agent_id": "witness"`` starts the witness (``failover_agent.witness``) instead.
"""

from __future__ import annotations

import collections
import enum
import logging
import os
import secrets
import time
import uuid
from dataclasses import replace
from typing import Any

import gevent
import gevent.event
from volttron.client.messaging.health import STATUS_BAD, STATUS_GOOD, Status
from volttron.client.vip.agent import RPC, Agent, Core
from volttron.utils import load_config, vip_main

from failover_agent.alerts import alert_context, alert_key
from failover_agent.config import ConfigError, FailoverConfig, WitnessConfig, parse_agent_config
from failover_agent.managed import ManagedAgents
from failover_agent.remote import RemoteLink, RemoteUnavailable, with_serverkey
from failover_agent.wire import Heartbeat, WitnessAnswer, check_ack, check_heartbeat, check_verdict, make_heartbeat
from failover_core.decide import Decision, Facts, Policy, decide
from failover_core.errors import RemoteInputError
from failover_core.heartbeat_auth import HeartbeatSigner, ReplayWindow
from failover_core.liveness import Liveness, PeerLiveness
from failover_core.shell.clock import MonotonicClock
from failover_core.shell.notify import NotifyDispatcher, SubprocessHookRunner
from failover_core.tables import Action
from failover_core.transitions import StateMachine, Transition

_log = logging.getLogger(__name__)
__version__ = "0.1.0"


class ServiceState(enum.Enum):
    UNKNOWN = "unknown"  # not observed yet (agent just started)
    RUNNING = "running"
    STOPPED = "stopped"


SERVICE_MOVES = {
    ServiceState.UNKNOWN: {ServiceState.RUNNING, ServiceState.STOPPED},
    ServiceState.RUNNING: {ServiceState.STOPPED},
    ServiceState.STOPPED: {ServiceState.RUNNING},
}


def load_agent_config(config_path: Any) -> FailoverConfig | WitnessConfig:
    """The platform passes the path of the installed config (vctl stores it as YAML), or nothing."""
    if isinstance(config_path, dict):
        return parse_agent_config(config_path, source="<agent config>")
    if not config_path:
        return parse_agent_config({}, source="<no agent config installed>")
    try:
        data = load_config(config_path)  # volttron's loader: YAML, so JSON too
    except Exception as e:
        raise ConfigError(str(config_path), [("", str(config_path), f"cannot read or parse the file: {e}")]) from None
    return parse_agent_config(data, source=str(config_path))


class FailoverAgent(Agent):
    """The failover agent of one platform (primary or secondary, simple or standard mode)."""

    def __init__(self, config_path: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clock = MonotonicClock()
        self.config: FailoverConfig | None = None
        self.config_error: str | None = None
        try:
            loaded = load_agent_config(config_path)
            if not isinstance(loaded, FailoverConfig):
                raise ConfigError(str(config_path), [("agent_id", "witness", "this is the failover agent")])
            self.config = loaded
        except ConfigError as e:
            self.config_error = str(e)
        self.rejected: collections.Counter[str] = collections.Counter()
        self.decision: Decision | None = None
        self.peer_active: bool | None = None
        self.witness_answer: WitnessAnswer | None = None
        self._verify_at: float | None = None
        self._wake = gevent.event.Event()
        self._send_now = gevent.event.Event()
        self._reported_missing: list[str] = []
        self._observed = gevent.event.Event()  # set after the first read of the managed agents' state
        self._greenlets: list[gevent.Greenlet] = []
        self._seq = 0
        self._boot = uuid.uuid4().hex
        self.service: StateMachine[ServiceState] | None = None
        self.notifier: NotifyDispatcher | None = None

    # -- start-up ---------------------------------------------------------------------------------
    @Core.receiver("onstart")
    def onstart(self, sender: Any, **kwargs: Any) -> None:
        if self.config is None:
            _log.error("failover agent NOT running: configuration error:\n%s", self.config_error)
            self.vip.health.send_alert("failover config", Status.build(
                STATUS_BAD, context=f"Configuration error: {self.config_error}"))
            self.vip.health.set_status(STATUS_BAD, f"Configuration error: {self.config_error}")
            return
        cfg = self.config
        now = self.clock.now()
        self.signer = HeartbeatSigner(cfg.heartbeat_secret)
        self.replay = ReplayWindow(max_skew=max(30.0, 2 * cfg.timeout))
        self.policy = Policy(failback_delay=cfg.failback_delay, wait_for_peer_state=True)
        self.peer = PeerLiveness(cfg.peer_id, cfg.timeout, watch_started=now)
        self.witness = PeerLiveness("witness", cfg.timeout, watch_started=now)
        self.managed = ManagedAgents(self.vip.rpc.call, cfg.managed_identities, cfg.volttron_ctl_tag,
                                     timeout=max(5.0, cfg.remote_timeout))
        self.service = StateMachine(self.managed.names, ServiceState.UNKNOWN, SERVICE_MOVES)
        if cfg.notify is not None:
            self.notifier = NotifyDispatcher(SubprocessHookRunner(cfg.notify, cfg.notify_timeout))
        creds = self._remote_credentials(cfg)
        self.peer_link = RemoteLink("peer", with_serverkey(cfg.remote_vip, cfg.remote_serverkey), creds,
                                    timeout=cfg.remote_timeout)
        self.witness_link = None
        if cfg.role.uses_witness and cfg.witness_vip:
            self.witness_link = RemoteLink("witness", with_serverkey(cfg.witness_vip, cfg.witness_serverkey), creds,
                                           timeout=cfg.remote_timeout)
        self.vip.pubsub.subscribe("pubsub", f"heartbeat/{cfg.peer_id}", self._on_heartbeat)
        _log.info("failover agent %s starting: role %s, peer %s at %s, witness %s, managing %s, heartbeat %gs, "
                  "timeout %gs, failback_delay %gs, heartbeat HMAC %s", cfg.agent_id, cfg.role.value, cfg.peer_id,
                  cfg.remote_vip, cfg.witness_vip if self.witness_link else "none", self.managed.names,
                  cfg.heartbeat_period, cfg.timeout, cfg.failback_delay, "on" if self.signer.enabled else "OFF")
        self._greenlets = [gevent.spawn(self._loop), gevent.spawn(self._peer_sender), gevent.spawn(self._stall_watch)]
        if self.witness_link is not None:
            self._greenlets.append(gevent.spawn(self._witness_sender))

    def _remote_credentials(self, cfg: FailoverConfig) -> Any:
        """Our own key pair under the identity we use on the other platforms (``<identity>.<agent_id>``)."""
        from volttron.types.auth import VolttronCredentials

        own = self.core._credentials
        identity = cfg.remote_identity or f"{self.core.identity}.{cfg.agent_id}"
        return VolttronCredentials(identity=identity, publickey=own.publickey, secretkey=own.secretkey)

    @Core.receiver("onstop")
    def onstop(self, sender: Any, **kwargs: Any) -> None:
        for g in self._greenlets:
            g.kill(block=False)
        for link in (getattr(self, "peer_link", None), getattr(self, "witness_link", None)):
            if link is not None:
                link.close()
        if self.notifier is not None:
            self.notifier.close(timeout=self.config.notify_timeout if self.config else 5.0)  # run what is pending

    # -- heartbeats in ----------------------------------------------------------------------------
    def _on_heartbeat(self, peer: str, sender: str, bus: str, topic: str, headers: Any, message: Any) -> None:
        assert self.config is not None
        try:
            hb = check_heartbeat(self.signer, self.replay, message, expected_sender=self.config.peer_id,
                                 wall_now=time.time())
        except RemoteInputError as e:
            self.rejected[e.reason] += 1
            if self.rejected[e.reason] in (1, 10, 100) or self.rejected[e.reason] % 1000 == 0:
                _log.warning("heartbeat on %s from %s rejected (%s, %d so far): %s", topic, sender, e.reason,
                             self.rejected[e.reason], e.detail)
            return
        now = self.clock.now()
        was_up = self.peer.is_up(now)
        self.peer.heard(now)
        changed = not was_up or hb.active != self.peer_active
        self.peer_active = hb.active
        if changed:
            self._wake.set()

    # -- heartbeats out ---------------------------------------------------------------------------
    def _next_heartbeat(self) -> Heartbeat:
        assert self.config is not None
        self._seq += 1
        return Heartbeat(self.config.agent_id, self._boot, self._seq, time.time(), self.managed.active)

    def _peer_sender(self) -> None:
        assert self.config is not None
        topic = f"heartbeat/{self.config.agent_id}"
        self._observed.wait()  # never claim "not active" before we have looked
        while True:
            due = self.clock.now() + self.config.heartbeat_period
            try:
                self.peer_link.publish(topic, make_heartbeat(self.signer, self._next_heartbeat()))
            except RemoteUnavailable as e:
                _log.debug("heartbeat to the peer platform not sent: %s", e)
            self._send_now.wait(max(0.0, due - self.clock.now()))
            self._send_now.clear()

    def _witness_sender(self) -> None:
        assert self.config is not None and self.witness_link is not None
        self._observed.wait()
        while True:
            due = self.clock.now() + self.config.heartbeat_period
            hb = self._next_heartbeat()
            try:
                ack = self.witness_link.call(self.config.witness_identity, "heartbeat",
                                             make_heartbeat(self.signer, hb))
                check_ack(self.signer, ack, sender=hb.sender, seq=hb.seq)
                now = self.clock.now()
                was_up = self.witness.is_up(now)
                self.witness.heard(now)
                if not was_up:
                    self._wake.set()
            except RemoteUnavailable as e:
                _log.debug("heartbeat to the witness not acknowledged: %s", e)
            except RemoteInputError as e:
                self.rejected[f"witness_{e.reason}"] += 1
                _log.warning("witness ack rejected (%s): %s", e.reason, e.detail)
            gevent.sleep(max(0.0, due - self.clock.now()))

    # -- the loop ---------------------------------------------------------------------------------
    def _loop(self) -> None:
        assert self.config is not None
        while True:
            self._wake.clear()
            try:
                self._cycle()
            except gevent.GreenletExit:
                raise
            except BaseException:  # gevent.Timeout is a BaseException: the loop must survive anything
                _log.exception("failover cycle failed; keeping the current state")
            now = self.clock.now()
            wait = self.config.heartbeat_period
            for d in (self.peer.next_deadline(now), self.witness.next_deadline(now), self._verify_at):
                if d is not None:
                    wait = min(wait, max(0.0, d - now) + 0.01)
            self._wake.wait(wait)

    def _stall_watch(self) -> None:
        """Diagnostics: warn when this process's event loop was blocked (nothing else could run)."""
        while True:
            before = self.clock.now()
            gevent.sleep(0.5)
            late = self.clock.now() - before - 0.5
            if late > 1.0:
                _log.warning("event loop was blocked for %.1fs", late)

    def _gather(self, now: float) -> Facts:
        assert self.config is not None
        peer_state = self.peer.state(now)
        return Facts(peer=peer_state,
                     witness=self.witness.state(now) if self.config.role.uses_witness else Liveness.UNKNOWN,
                     peer_active=self.peer_active if peer_state is Liveness.UP else None,
                     self_active=self.managed.active, peer_up_for=self.peer.up_for(now))

    def _cycle(self) -> None:
        assert self.config is not None and self.service is not None
        try:
            self.managed.refresh()
        except Exception as e:
            self._note(Decision(Action.HOLD, "local.platform_unavailable",
                                f"cannot read the managed agents' state from platform.control: {e}"))
            return
        self._observed.set()
        now = self.clock.now()
        facts = self._gather(now)
        decision = decide(self.config.role, facts, self.policy)
        self._verify_at = None
        if decision.action is Action.VERIFY:
            answer = self._ask_witness(now)
            if self.peer.state(self.clock.now()) is not facts.peer:  # the primary spoke while we asked
                self._note(Decision(Action.HOLD, "secondary.verify_raced",
                                    "the primary was heard during the verification; deciding again"))
                self._wake.set()
                return
            if answer is not None:
                decision = decide(self.config.role, replace(facts, verdict=answer.verdict), self.policy)
            if decision.action is Action.VERIFY:
                decision = Decision(Action.HOLD, "secondary.verify_failed",
                                    "the witness did not answer the verification; keeping the current state")
        self._act(decision, now)

    def _ask_witness(self, now: float) -> WitnessAnswer | None:
        assert self.config is not None
        if self.witness_link is None:
            return None
        nonce = secrets.token_hex(16)
        try:
            msg = self.witness_link.call(self.config.witness_identity, "verify", self.config.peer_id, nonce)
            answer = check_verdict(self.signer, msg, subject=self.config.peer_id, nonce=nonce)
        except RemoteUnavailable as e:
            _log.warning("witness verification failed: %s", e)
            return None
        except RemoteInputError as e:
            self.rejected[f"witness_{e.reason}"] += 1
            _log.warning("witness verdict rejected (%s): %s", e.reason, e.detail)
            return None
        self.witness_answer = answer
        if answer.state is not Liveness.DOWN:  # ask again when the witness's own deadline passes
            self._verify_at = self.clock.now() + min(answer.remaining, self.config.heartbeat_period)
        return answer

    def _act(self, decision: Decision, now: float) -> None:
        assert self.service is not None and self.config is not None
        acted: list[str] = []
        try:
            if decision.action is Action.START:
                acted = self.managed.start_all()
            elif decision.action is Action.STOP:
                acted = self.managed.stop_all()
            if acted:
                self.managed.refresh()
        except Exception as e:
            _log.error("%s of %s failed: %s (decision %s)", decision.action.value, self.managed.names, e, decision)
        self._note(decision)
        missing = self.managed.missing if decision.action is Action.START else []
        if missing and missing != self._reported_missing:
            _log.warning("cannot start %s: not installed on this platform", ", ".join(missing))
        self._reported_missing = missing
        observed = ServiceState.RUNNING if self.managed.active else ServiceState.STOPPED
        code, reason = decision.code, decision.reason
        if not acted:
            code, reason = "observed", f"managed agent(s) found {observed.value}"
        t = self.service.change(observed, code=code, reason=reason, now=self.clock.now())
        if t is not None:
            self._announce(t, decision, acted)

    def _note(self, decision: Decision) -> None:
        """One log line per cycle: INFO when the decision changes, DEBUG while it stays the same."""
        level = logging.INFO if self.decision is None or decision.code != self.decision.code else logging.DEBUG
        _log.log(level, "cycle: %s", decision)
        self.decision = decision

    def _announce(self, t: Transition, decision: Decision, acted: list[str]) -> None:
        assert self.config is not None
        _log.info("transition: %s", t)
        self._send_now.set()  # tell the peer at once what we run now
        if t.from_state == ServiceState.UNKNOWN.name and not acted:
            return  # first observation after start-up: nothing changed, nothing to alert
        action = Action.START if t.to_state == ServiceState.RUNNING.name else Action.STOP
        context = alert_context(t.code, action, ", ".join(acted) or self.managed.names)
        self.vip.health.send_alert(alert_key(self.config.agent_id), Status.build(STATUS_BAD, context=context))
        self.vip.health.set_status(STATUS_GOOD, context)
        if self.notifier is not None:
            self.notifier.submit(t)  # runs off the loop, in transition order, once

    # -- status -----------------------------------------------------------------------------------
    @RPC.export
    def get_status(self) -> dict[str, Any]:
        if self.config is None:
            return {"config_error": self.config_error}
        cfg, now = self.config, self.clock.now()
        last = self.service.last if self.service is not None else None
        peer_silent = self.peer.silent_for(now)
        status: dict[str, Any] = {
            "agent_id": cfg.agent_id, "role": cfg.role.value, "config_error": None,
            "peer": {"id": cfg.peer_id, "state": self.peer.state(now).value, "active": self.peer_active,
                     "silent_for": None if peer_silent is None else round(peer_silent, 3),
                     "heartbeats": self.peer.heartbeats},
            "witness": None,
            "managed": [{"identity": s.identity, "uuid": s.uuid, "running": s.running} for s in self.managed.states],
            "active": self.managed.active,
            "service": self.service.state.value if self.service is not None else None,
            "decision": None if self.decision is None else {
                "action": self.decision.action.value, "code": self.decision.code, "reason": self.decision.reason},
            "last_transition": None if last is None else {
                "from": last.from_state, "to": last.to_state, "code": last.code, "reason": last.reason,
                "seq": last.seq, "ago": round(now - last.at, 3)},
            "transitions": [str(t) for t in (self.service.history if self.service else [])],
            "rejected": dict(self.rejected),
            "links": {"peer": {"connected": self.peer_link.connected, "failures": self.peer_link.failures,
                               "last_error": self.peer_link.last_error}},
        }
        if self.witness_link is not None:
            status["witness"] = {"identity": cfg.witness_identity, "state": self.witness.state(now).value,
                                 "last_verdict": None if self.witness_answer is None
                                 else self.witness_answer.verdict.value}
            status["links"]["witness"] = {"connected": self.witness_link.connected,
                                          "failures": self.witness_link.failures,
                                          "last_error": self.witness_link.last_error}
        return status


def main() -> None:
    """Console script ``failover-agent``: the failover agent, or the witness for ``agent_id: witness``."""
    try:
        config = load_agent_config(os.environ.get("AGENT_CONFIG"))
    except ConfigError:
        config = None  # FailoverAgent reports the error on the bus
    if isinstance(config, WitnessConfig):
        from failover_agent.witness import WitnessAgent

        vip_main(WitnessAgent, version=__version__)
    else:
        vip_main(FailoverAgent, version=__version__)


if __name__ == "__main__":
    main()

"""FailoverAgent: keeps the managed agent(s) running on exactly one of two VOLTTRON platforms.

The driver of ``decider.AgentDecider``, and nothing but I/O: it turns VIP pubsub, RPC to the peer
and witness platforms, ``platform.control`` and the monotonic clock into the decider's events, and
carries each Step out in one place (``_run``, through ``failover_core.shell.carry_out``): the
decision logged with its code, transitions to the notify dispatcher in order, each action to its
handler (start/stop, ask the witness, publish an alert, send a heartbeat now, wake the loop). A
handler whose I/O has a result answers with the next event, which ``_run`` feeds back.

One decision loop (Patroni style) wakes every ``heartbeat_period``, at the decider's next deadline,
and at once when a heartbeat changes a fact, so takeover is bounded by ``timeout`` and not by a
polling interval. Beside it, one sender greenlet per remote link publishes our heartbeat onto the
peer platform's bus (``heartbeat/<agent_id>``) and, in standard mode, sends it to the witness by RPC.
Each heartbeat is announced to the decider before it goes out (``HeartbeatSent``: the start of the lease
its acknowledgement would give); the peer's heartbeats echo the seq of ours they last received, and the
witness's signed ack names the seq it answers: those acknowledgements, not mere receipt, keep an active
node running (``failover_core.fencing``). Remote calls are bounded (``remote.RemoteLink``), so a dead
peer never blocks the agent or the platform.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from typing import Any

import gevent
import gevent.event
from volttron.client.messaging.health import STATUS_BAD, STATUS_GOOD, Status
from volttron.client.vip.agent import RPC, Agent, Core

from failover_agent.config import ConfigError, FailoverConfig
from failover_agent.config_file import load_agent_config
from failover_agent.decider import AgentDecider, auth_warning_step, config_error_step
from failover_agent.events import (
    AskWitness,
    ClaimAtWitness,
    CycleStarted,
    Event,
    HeartbeatReceived,
    HeartbeatSent,
    InputRejected,
    Leave,
    ManagedRead,
    PlatformUnavailable,
    RaiseAlert,
    RunCycleNow,
    SendHeartbeatNow,
    SendLeaving,
    StartService,
    StopManaged,
    StopService,
    WitnessAcked,
    WitnessAnswered,
    WitnessClaimed,
)
from failover_agent.host_check import rto_warning
from failover_agent.managed import ManagedAgents
from failover_agent.remote import RemoteLink, RemoteUnavailable, with_serverkey
from failover_agent.wire import Heartbeat, check_ack, check_heartbeat, check_verdict, make_heartbeat
from failover_core.errors import RemoteInputError
from failover_core.heartbeat_auth import HeartbeatSigner, ReplayWindow
from failover_core.shell.carry_out import DecisionLog, carry_out
from failover_core.shell.clock import MonotonicClock
from failover_core.shell.notify import NotifyDispatcher, SubprocessHookRunner
from failover_core.step import Step

_log = logging.getLogger(__name__)


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
        self.decider: AgentDecider | None = None
        self._decisions = DecisionLog(_log, "cycle")
        self._wake = gevent.event.Event()
        self._send_now = gevent.event.Event()
        self._observed = gevent.event.Event()  # set after the first read of the managed agents' state
        self._greenlets: list[gevent.Greenlet] = []
        self._seq = 0
        self._boot = uuid.uuid4().hex
        self._peer_last: tuple[str, int] = ("", 0)  # (boot, seq) of the newest peer heartbeat: our echo
        self.notifier: NotifyDispatcher | None = None
        self._handlers = {ClaimAtWitness: self._claim_at_witness, StartService: self._start_service,
                          StopService: self._stop_service, AskWitness: self._ask_witness, RaiseAlert: self._raise_alert,
                          SendHeartbeatNow: lambda _a: self._send_now.set(), RunCycleNow: lambda _a: self._wake.set(),
                          StopManaged: self._stop_managed, SendLeaving: self._send_leaving}

    # -- start-up ---------------------------------------------------------------------------------
    @Core.receiver("onstart")
    def onstart(self, sender: Any, **kwargs: Any) -> None:
        if self.config is None:
            _log.error("failover agent NOT running: configuration error:\n%s", self.config_error)
            self._run(config_error_step(str(self.config_error)))
            return
        cfg = self.config
        self.signer = HeartbeatSigner(cfg.heartbeat_secret)
        self.replay = ReplayWindow(max_skew=max(30.0, 2 * cfg.timeout))
        self.managed = ManagedAgents(self.vip.rpc.call, cfg.managed_identities, cfg.volttron_ctl_tag,
                                     timeout=max(5.0, cfg.remote_timeout))
        self.decider = AgentDecider(cfg, subject=self.managed.names, now=self.clock.now())
        if cfg.notify is not None:
            self.notifier = NotifyDispatcher(SubprocessHookRunner(cfg.notify, cfg.notify_timeout,
                                                                  env_for=self._hook_env))
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
        _log.info("timing: %s", cfg.timing_summary())
        if cfg.role.uses_witness:
            _log.info("fencing: %s", cfg.timing.explain())
        for warning in cfg.warnings:
            _log.warning("config warning: %s", warning)
        transport = rto_warning(cfg.heartbeat_period)
        if transport:
            _log.warning("host setting: %s", transport)
        if cfg.auth_warning:
            _log.warning("SECURITY: %s", cfg.auth_warning)
            self._run(auth_warning_step(cfg.auth_warning))
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
        """A clean stop (``vctl stop``, a platform shutdown): end the loop and the senders, then leave (the
        decider's ``Leave``: hand over, or tell the peer we go) before the links close. VOLTTRON waits 60 s
        for the process after its SIGINT (then SIGTERM); leaving is bounded well below that."""
        gevent.killall(self._greenlets, block=True, timeout=2.0)  # no ordinary heartbeat after the leaving one
        if self.decider is not None:
            started = self.clock.now()
            try:
                self._leave()
            except BaseException:  # leaving is best effort: the links and the notifier are closed all the same
                _log.exception("leaving failed")
            _log.info("left in %.3fs", self.clock.now() - started)
        for link in (getattr(self, "peer_link", None), getattr(self, "witness_link", None)):
            if link is not None:
                link.close()
        if self.notifier is not None:
            self.notifier.close(timeout=self.config.notify_timeout if self.config else 5.0)  # run what is pending

    def _leave(self) -> None:
        try:
            self.managed.refresh()
            view = self.managed.view()
        except Exception as e:
            _log.warning("leaving: cannot read the managed agents' state: %s", e)
            view = None
        self._feed(Leave(now=self.clock.now(), managed=view))

    # -- the one place a Step is carried out -------------------------------------------------------
    def _feed(self, event: Event) -> None:
        assert self.decider is not None
        self._run(self.decider.handle(event))

    def _run(self, step: Step[Any]) -> None:
        """Carry ``step`` out; a handler's answer (the next event) is fed to the decider, and so on."""
        while True:
            answers = [a for a in carry_out(step, self._handlers, log=self._decisions, notify=self.notifier)
                       if a is not None]
            if not answers:
                return
            assert self.decider is not None and len(answers) == 1, answers
            step = self.decider.handle(answers[0])

    # -- heartbeats in ----------------------------------------------------------------------------
    def _on_heartbeat(self, peer: str, sender: str, bus: str, topic: str, headers: Any, message: Any) -> None:
        assert self.config is not None
        try:
            hb = check_heartbeat(self.signer, self.replay, message, expected_sender=self.config.peer_id,
                                 wall_now=time.time())
        except RemoteInputError as e:
            self._feed(InputRejected(source="peer", reason=e.reason, detail=f"heartbeat on {topic} from {sender}: "
                                                                            f"{e.detail}"))
            return
        self._peer_last = (hb.boot, hb.seq)
        self._feed(HeartbeatReceived(now=self.clock.now(), active=hb.active, term=hb.term,
                                     echo=hb.echo_of(self._boot), leaving=hb.leaving))

    # -- heartbeats out ---------------------------------------------------------------------------
    def _heartbeat(self, *, leaving: bool = False, active: bool | None = None) -> Heartbeat:
        """Our next heartbeat: "active" while the service runs here or we have claimed it (a start under way)."""
        assert self.config is not None and self.decider is not None
        self._seq += 1
        boot, seq = self._peer_last
        if active is None:
            active = self.managed.active or self.decider.claims_active
        return Heartbeat(self.config.agent_id, self._boot, self._seq, time.time(), active, term=self.decider.term,
                         echo_boot=boot, echo_seq=seq, group=self.config.group, leaving=leaving)

    def _next_heartbeat(self, link: str) -> Heartbeat:
        """Our next heartbeat on ``link``; the decider learns its send time first (the lease an ack would give)."""
        hb = self._heartbeat()
        self._feed(HeartbeatSent(now=self.clock.now(), link=link, seq=hb.seq))
        return hb

    def _peer_sender(self) -> None:
        assert self.config is not None
        topic = f"heartbeat/{self.config.agent_id}"
        self._observed.wait()  # never claim "not active" before we have looked
        while True:
            due = self.clock.now() + self.config.heartbeat_period
            try:  # sent, not answered: a slow link delays the heartbeat, not the next one (remote.py)
                self.peer_link.publish(topic, make_heartbeat(self.signer, self._next_heartbeat("peer")), wait=False)
            except RemoteUnavailable as e:
                _log.debug("heartbeat to the peer platform not sent: %s", e)
            self._send_now.wait(max(0.0, due - self.clock.now()))
            self._send_now.clear()

    def _witness_sender(self) -> None:
        assert self.config is not None and self.witness_link is not None
        self._observed.wait()
        while True:
            due = self.clock.now() + self.config.heartbeat_period
            hb = self._next_heartbeat("witness")
            try:
                msg = self.witness_link.call(self.config.witness_identity, "heartbeat",
                                             make_heartbeat(self.signer, hb), [self.config.peer_id])
                ack = check_ack(self.signer, msg, sender=hb.sender, seq=hb.seq)
                self._feed(WitnessAcked(now=self.clock.now(), seq=ack.seq, term=ack.term,
                                        peer=ack.peer(self.config.peer_id)))
            except RemoteUnavailable as e:
                _log.debug("heartbeat to the witness not acknowledged: %s", e)
            except RemoteInputError as e:
                self._feed(InputRejected(source="witness", reason=e.reason, detail=f"witness ack: {e.detail}"))
            gevent.sleep(max(0.0, due - self.clock.now()))

    # -- the loop ---------------------------------------------------------------------------------
    def _loop(self) -> None:
        assert self.config is not None and self.decider is not None
        while True:
            self._wake.clear()
            try:
                self._feed(self._read_managed())
            except gevent.GreenletExit:
                raise
            except BaseException:  # gevent.Timeout is a BaseException: the loop must survive anything
                _log.exception("failover cycle failed; keeping the current state")
            now = self.clock.now()
            wait = self.config.heartbeat_period
            deadline = self.decider.next_deadline(now)
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - now) + 0.01)
            self._wake.wait(wait)

    def _read_managed(self) -> CycleStarted | PlatformUnavailable:
        try:
            self.managed.refresh()
        except Exception as e:
            return PlatformUnavailable(now=self.clock.now(), error=str(e))
        self._observed.set()
        return CycleStarted(now=self.clock.now(), managed=self.managed.view())

    def _stall_watch(self) -> None:
        """Diagnostics: warn when this process's event loop was blocked (nothing else could run)."""
        while True:
            before = self.clock.now()
            gevent.sleep(0.5)
            late = self.clock.now() - before - 0.5
            if late > 1.0:
                _log.warning("event loop was blocked for %.1fs", late)

    # -- action handlers (I/O only) ------------------------------------------------------------------
    def _start_service(self, _action: StartService) -> ManagedRead:
        return self._start_or_stop("start", self.managed.start_all)

    def _stop_service(self, _action: StopService) -> ManagedRead:
        return self._start_or_stop("stop", self.managed.stop_all)

    def _start_or_stop(self, what: str, run: Any) -> ManagedRead:
        acted: list[str] = []
        try:
            acted = run()
            if acted:
                self.managed.refresh()
        except Exception as e:
            _log.error("%s of %s failed: %s", what, self.managed.names, e)
        return ManagedRead(now=self.clock.now(), acted=tuple(acted), managed=self.managed.view())

    def _stop_managed(self, action: StopManaged) -> ManagedRead:
        """Leaving: stop what runs, within ``action.within`` seconds, and read the state back."""
        acted = self.managed.view().stoppable  # the ones we stop (a timeout may cut the stop short)
        try:
            with gevent.Timeout(action.within):
                self.managed.stop_all()
        except gevent.Timeout:
            _log.error("leaving: stopping %s took longer than stop_bound %gs", self.managed.names, action.within)
        except Exception as e:
            _log.error("leaving: stop of %s failed: %s", self.managed.names, e)
        try:
            self.managed.refresh()
        except Exception as e:  # the last read stands: it says the service runs, the peer is told so
            _log.error("leaving: cannot read %s back after the stop: %s", self.managed.names, e)
        return ManagedRead(now=self.clock.now(), acted=acted, managed=self.managed.view())

    def _send_leaving(self, action: SendLeaving) -> None:
        """Our last heartbeat, flagged leaving: to the witness first (acknowledged), then to the peer."""
        assert self.config is not None
        hb = self._heartbeat(leaving=True, active=action.active)
        msg = make_heartbeat(self.signer, hb)
        told = []
        if self.witness_link is not None:
            try:
                check_ack(self.signer, self.witness_link.call(self.config.witness_identity, "heartbeat", msg,
                                                              [self.config.peer_id]), sender=hb.sender, seq=hb.seq)
                told.append("witness")
            except (RemoteUnavailable, RemoteInputError) as e:
                _log.warning("leaving: the witness did not acknowledge: %s", e)
        try:
            self.peer_link.publish(f"heartbeat/{self.config.agent_id}", msg)
            told.append(self.config.peer_id)
        except RemoteUnavailable as e:
            _log.warning("leaving: heartbeat to the peer platform not sent: %s", e)
        _log.info("leaving (%s): told %s", "the service still runs here" if action.active else "nothing runs here",
                  ", ".join(told) or "nobody")

    def _claim_at_witness(self, _action: ClaimAtWitness) -> WitnessClaimed:
        assert self.config is not None
        if self.witness_link is None:
            return WitnessClaimed(now=self.clock.now(), ack=None)
        hb = self._heartbeat()  # says active (claims_active); not a lease renewal (the sender keeps those)
        try:
            msg = self.witness_link.call(self.config.witness_identity, "heartbeat", make_heartbeat(self.signer, hb),
                                         [self.config.peer_id])
            return WitnessClaimed(now=self.clock.now(), ack=check_ack(self.signer, msg, sender=hb.sender, seq=hb.seq))
        except (RemoteUnavailable, RemoteInputError) as e:
            _log.warning("claim at the witness not acknowledged: %s", e)
            return WitnessClaimed(now=self.clock.now(), ack=None)

    def _ask_witness(self, action: AskWitness) -> WitnessAnswered:
        assert self.config is not None
        if self.witness_link is None:
            return WitnessAnswered(now=self.clock.now(), answer=None)
        nonce = secrets.token_hex(16)
        try:
            msg = self.witness_link.call(self.config.witness_identity, "verify", action.subject, nonce,
                                         self.config.group)
            answer = check_verdict(self.signer, msg, subject=action.subject, nonce=nonce)
        except RemoteUnavailable as e:
            _log.warning("witness verification failed: %s", e)
            return WitnessAnswered(now=self.clock.now(), answer=None)
        except RemoteInputError as e:
            return WitnessAnswered(now=self.clock.now(), answer=None,
                                   dropped=InputRejected(source="witness", reason=e.reason,
                                                         detail=f"witness verdict: {e.detail}"))
        return WitnessAnswered(now=self.clock.now(), answer=answer)

    def _hook_env(self, transition: Any) -> dict[str, str]:
        """FAILOVER_TERM for the notify hook: the term of that transition (the fencing token of a start)."""
        term = self.decider.terms_by_seq.get(transition.seq) if self.decider is not None else None
        return {"FAILOVER_TERM": str(term if term is not None else self.decider.term if self.decider else 0)}

    def _raise_alert(self, action: RaiseAlert) -> None:
        self.vip.health.send_alert(action.key, Status.build(STATUS_BAD, context=action.context))
        self.vip.health.set_status(STATUS_GOOD if action.healthy else STATUS_BAD, action.context)

    # -- status -----------------------------------------------------------------------------------
    @RPC.export
    def get_status(self) -> dict[str, Any]:
        if self.config is None or self.decider is None:
            return {"config_error": self.config_error}
        cfg, d, now = self.config, self.decider, self.clock.now()
        last = d.service.last
        peer_silent = d.peer.silent_for(now)
        peer_lease = d.leases["peer"]
        status: dict[str, Any] = {
            "agent_id": cfg.agent_id, "role": cfg.role.value, "config_error": None,
            "heartbeat_auth": "on" if self.signer.enabled else "off", "security_warning": cfg.auth_warning,
            "term": d.term, "highest_term_seen": d.highest_term_seen,
            "peer": {"id": cfg.peer_id, "state": d.peer_state(now, self.managed.active).value, "active": d.peer_active,
                     "silent_for": None if peer_silent is None else round(peer_silent, 3),
                     "heartbeats": d.peer.heartbeats, "term": d.peer_term,
                     "heard": d.peer.state(now).value, "lease_left": round(peer_lease.remaining(now), 3),
                     "leaving": d.peer_leaving},
            "witness": None,
            "managed": [{"identity": s.identity, "uuid": s.uuid, "running": s.running} for s in self.managed.states],
            "active": self.managed.active,
            "service": d.service.state.value,
            "decision": None if d.decision is None else {
                "action": d.decision.action.value, "code": str(d.decision.code), "reason": d.decision.reason},
            "last_transition": None if last is None else {
                "from": last.from_state, "to": last.to_state, "code": str(last.code), "reason": last.reason,
                "seq": last.seq, "ago": round(now - last.at, 3)},
            "transitions": [str(t) for t in d.service.history],
            "rejected": dict(d.rejected),
            "links": {"peer": {"connected": self.peer_link.connected, "failures": self.peer_link.failures,
                               "last_error": self.peer_link.last_error}},
        }
        if self.witness_link is not None:
            status["witness"] = {"identity": cfg.witness_identity, "state": d.link_state("witness", now).value,
                                 "lease_left": round(d.leases["witness"].remaining(now), 3),
                                 "peer_view": None if d.witness_peer is None else d.witness_peer.as_fields(),
                                 "term": d.witness_term,
                                 "last_verdict": None if d.witness_answer is None else d.witness_answer.verdict.value}
            timing = cfg.timing
            status["fencing"] = {"timeout": cfg.timeout, "stop_bound": cfg.stop_bound,
                                 "lease": round(timing.lease, 3), "margin": round(timing.margin, 3),
                                 "down_after": round(timing.down_after, 3), "warnings": list(cfg.warnings)}
            status["links"]["witness"] = {"connected": self.witness_link.connected,
                                          "failures": self.witness_link.failures,
                                          "last_error": self.witness_link.last_error}
        return status

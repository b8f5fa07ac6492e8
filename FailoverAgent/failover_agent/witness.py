"""WitnessAgent: the third party that verifies "the primary is down" in standard mode.

Installed on a third platform from the same wheel, with ``{"agent_id": "witness", "timeout": ...,
"heartbeat_secret": ...}`` and by default under Volttron Central's conventional identity
(``vctl install ... --vip-identity volttron.central``). Both failover agents send it their
heartbeats by RPC (``heartbeat``); it acknowledges each authenticated one with a signed ack (that ack
is how a failover agent knows the witness is reachable). ``verify(subject, nonce)`` answers from
what the witness has heard itself: DOWN only when the subject has been silent for ``timeout``;
a subject never heard since the witness started is UNKNOWN during the first ``timeout`` (treated
as alive by the asker, so a freshly restarted witness never confirms a death it did not see).
"""

from __future__ import annotations

import collections
import logging
import time
from typing import Any

from volttron.client.vip.agent import RPC, Agent, Core

from failover_agent.config import ConfigError, WitnessConfig
from failover_agent.config_file import load_agent_config
from failover_agent.wire import check_heartbeat, make_ack, make_verdict
from failover_core.errors import RemoteInputError
from failover_core.heartbeat_auth import HeartbeatSigner, ReplayWindow
from failover_core.liveness import Liveness, PeerLiveness
from failover_core.shell.clock import MonotonicClock

_log = logging.getLogger(__name__)
MAX_SUBJECTS = 64


class WitnessAgent(Agent):
    def __init__(self, config_path: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clock = MonotonicClock()
        self.config_error: str | None = None
        try:
            cfg = load_agent_config(config_path)
            if not isinstance(cfg, WitnessConfig):
                raise ConfigError(str(config_path), [("agent_id", cfg.agent_id, "the witness needs 'witness'")])
        except ConfigError as e:
            self.config_error = str(e)
            cfg = WitnessConfig(agent_id="witness")
            _log.error("witness configuration error (refusing every request):\n%s", e)
        self.config = cfg
        self.signer = HeartbeatSigner(cfg.heartbeat_secret)
        self.replay = ReplayWindow(max_skew=max(30.0, 2 * cfg.timeout))
        self.started = self.clock.now()
        self.heard: dict[str, PeerLiveness] = {}
        self.active: dict[str, bool] = {}
        self.rejected: collections.Counter[str] = collections.Counter()
        self.verifications = 0

    @Core.receiver("onstart")
    def onstart(self, sender: Any, **kwargs: Any) -> None:
        _log.info("witness %s ready: timeout %gs, heartbeat HMAC %s", self.core.identity, self.config.timeout,
                  "on" if self.signer.enabled else "OFF")

    def _liveness(self, subject: str) -> PeerLiveness:
        live = self.heard.get(subject)
        if live is None:
            live = PeerLiveness(subject, self.config.timeout, watch_started=self.started)
            if len(self.heard) < MAX_SUBJECTS:
                self.heard[subject] = live
        return live

    @RPC.export
    def heartbeat(self, message: Any) -> dict[str, Any] | None:
        if self.config_error:
            return None
        try:
            hb = check_heartbeat(self.signer, self.replay, message, expected_sender=None, wall_now=time.time())
        except RemoteInputError as e:
            self.rejected[e.reason] += 1
            if self.rejected[e.reason] in (1, 10, 100):
                _log.warning("heartbeat rejected (%s): %s", e.reason, e.detail)
            return None
        self._liveness(hb.sender).heard(self.clock.now())
        self.active[hb.sender] = hb.active
        return make_ack(self.signer, witness=self.core.identity, sender=hb.sender, seq=hb.seq)

    @RPC.export
    def verify(self, subject: Any, nonce: Any) -> dict[str, Any] | None:
        if self.config_error or not isinstance(subject, str) or not isinstance(nonce, str) or len(nonce) > 128:
            return None
        now = self.clock.now()
        live = self._liveness(subject)
        state = live.state(now)
        self.verifications += 1
        _log.info("verify %s: %s (silent for %s)", subject, state.value,
                  "never heard" if live.last_heard is None else f"{now - live.last_heard:.1f}s")
        remaining = 0.0 if state is Liveness.DOWN else live.deadline() - now
        return make_verdict(self.signer, witness=self.core.identity, subject=subject, nonce=nonce, state=state,
                            remaining=remaining)

    @RPC.export
    def get_status(self) -> dict[str, Any]:
        now = self.clock.now()
        return {"role": "witness", "config_error": self.config_error, "verifications": self.verifications,
                "rejected": dict(self.rejected),
                "heard": {k: {"state": v.state(now).value, "active": self.active.get(k),
                              "silent_for": v.silent_for(now)} for k, v in self.heard.items()}}

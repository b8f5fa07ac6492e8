"""WitnessAgent: the third party that verifies "the primary is down" in standard mode.

Installed on a third platform from the same wheel, with ``{"agent_id": "witness", "timeout": ...,
"heartbeat_secret": ...}`` and by default under Volttron Central's conventional identity
(``vctl install ... --vip-identity volttron.central``). Both failover agents send it their heartbeats by
RPC (``heartbeat``); it acknowledges each authenticated one with a signed ack that names the heartbeat's
seq (the ack renews the sender's lease of the witness link) and carries what the witness knows of the
sender's partners (state, term, whether it runs the service) and the highest term of the group.

What it knows lives in ``failover_core.witness_book.WitnessBook`` with ``down_after`` = timeout (the
active's lease ends earlier by the fencing margin, ``failover_core.fencing.FencingTiming``):
``verify(subject, nonce)`` answers DOWN only when the subject has been silent for ``down_after`` (the
isolated active has stopped by then); a subject
never heard since the witness started is UNKNOWN during its first ``down_after`` (treated as alive by the
asker, so a freshly restarted witness never confirms a death it did not see).
"""

from __future__ import annotations

import collections
import logging
import time
from typing import Any

from volttron.client.vip.agent import RPC, Agent, Core

from failover_agent.config import DEFAULT_GROUP, ConfigError, WitnessConfig
from failover_agent.config_file import load_agent_config
from failover_agent.wire import MAX_PEERS, check_heartbeat, make_ack, make_verdict
from failover_core.errors import LocalUsageError, RemoteInputError
from failover_core.heartbeat_auth import HeartbeatSigner, ReplayWindow
from failover_core.liveness import Liveness
from failover_core.shell.clock import MonotonicClock
from failover_core.witness_book import Claim, WitnessBook

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
        self.book = WitnessBook(down_after=cfg.timeout, started_at=self.started, max_nodes=MAX_SUBJECTS)
        self.rejected: collections.Counter[str] = collections.Counter()
        self.verifications = 0

    @Core.receiver("onstart")
    def onstart(self, sender: Any, **kwargs: Any) -> None:
        _log.info("witness %s ready: calls a node down after %gs of silence (its timeout; a node's lease ends "
                  "earlier by its fencing margin), heartbeat HMAC %s", self.core.identity, self.book.down_after,
                  "on" if self.signer.enabled else "OFF")
        if self.config.auth_warning:
            _log.warning("SECURITY: %s", self.config.auth_warning)

    @RPC.export
    def heartbeat(self, message: Any, partners: Any = None) -> dict[str, Any] | None:
        """Record an authenticated heartbeat; answer a signed ack with what we know of the sender's group
        (every member heard, plus the ``partners`` the sender names, heard or not)."""
        if self.config_error:
            return None
        try:
            hb = check_heartbeat(self.signer, self.replay, message, expected_sender=None, wall_now=time.time())
            claim = Claim(group=hb.group, node=hb.sender, term=hb.term, active=hb.active, leaving=hb.leaving)
        except RemoteInputError as e:
            return self._reject(e.reason, e.detail)
        except LocalUsageError as e:  # a name the book refuses (empty, too long, unprintable)
            return self._reject("malformed", str(e))
        now = self.clock.now()
        self.book.heard(claim, now)
        if hb.leaving:
            _log.info("%s is leaving (its agent stops) %s", hb.sender,
                      "and left the service running: it stays up here" if hb.active
                      else "and runs nothing: down at once")
        peers = self.book.peers_of(hb.group, hb.sender, now)
        named = {v.node for v in peers}
        if isinstance(partners, list):
            for p in partners[:MAX_PEERS]:
                if isinstance(p, str) and 0 < len(p) <= 128 and p.isprintable() and p != hb.sender and p not in named:
                    peers.append(self.book.view(hb.group, p, now))
                    named.add(p)
        return make_ack(self.signer, witness=self.core.identity, sender=hb.sender, seq=hb.seq,
                        term=self.book.highest_term(hb.group), peers=peers)

    def _reject(self, reason: str, detail: str) -> None:
        self.rejected[reason] += 1
        if self.rejected[reason] in (1, 10, 100):
            _log.warning("heartbeat rejected (%s): %s", reason, detail)
        return None

    @RPC.export
    def verify(self, subject: Any, nonce: Any, group: Any = DEFAULT_GROUP) -> dict[str, Any] | None:
        if self.config_error or not isinstance(subject, str) or not isinstance(nonce, str) or len(nonce) > 128 \
                or not isinstance(group, str) or len(subject) > 128 or len(group) > 128:
            return None
        now = self.clock.now()
        view = self.book.view(group, subject, now)
        self.verifications += 1
        _log.info("verify %s: %s (%s)", subject, view.state.value,
                  "never heard" if view.silent_for is None else f"silent for {view.silent_for:.3f}s, term {view.term}")
        return make_verdict(self.signer, witness=self.core.identity, subject=subject, nonce=nonce, state=view.state,
                            remaining=0.0 if view.state is Liveness.DOWN else view.down_in, term=view.term)

    @RPC.export
    def get_status(self) -> dict[str, Any]:
        now = self.clock.now()
        heard: dict[str, Any] = {}
        for group, nodes in self.book.groups().items():
            for node in nodes:
                v = self.book.view(group, node, now)
                heard[node if group == DEFAULT_GROUP else f"{group}/{node}"] = {
                    "state": v.state.value, "active": v.active, "term": v.term, "silent_for": v.silent_for}
        return {"role": "witness", "config_error": self.config_error, "verifications": self.verifications,
                "down_after": round(self.book.down_after, 3), "rejected": dict(self.rejected), "heard": heard}

"""What goes over the bus between failover agents and the witness, built and checked here (no I/O).

- Heartbeat (published on the peer platform as ``heartbeat/<agent_id>``, and sent to the witness by
  RPC): ``{sender, boot, seq, time, active, mac}``; the MAC (HMAC-SHA256, shared ``heartbeat_secret``)
  covers every other field, so a client that merely claims an identity cannot forge liveness, and
  ``(boot, seq)`` plus the time window stop replays.
- Witness ack: ``{witness, sender, seq, mac}``; proves the witness itself (not an impostor) heard us.
- Verdict: the answer to "do you still hear <subject>?" for one fresh nonce:
  ``{witness, subject, nonce, state: up|down|unknown, remaining, mac}``.

Every check raises ``RemoteInputError(reason)``; the caller counts it and changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from failover_core.errors import RemoteInputError
from failover_core.heartbeat_auth import HeartbeatSigner, ReplayWindow
from failover_core.liveness import Liveness
from failover_core.tables import Verdict

HEARTBEAT_FIELDS = ("sender", "boot", "seq", "time", "active")


@dataclass(frozen=True, slots=True)
class Heartbeat:
    sender: str
    boot: str
    seq: int
    time: float
    active: bool


def _mapping(msg: object, what: str) -> Mapping[str, Any]:
    if not isinstance(msg, Mapping):
        raise RemoteInputError("malformed", f"{what} is not an object")
    return msg


def make_heartbeat(signer: HeartbeatSigner, hb: Heartbeat) -> dict[str, Any]:
    fields = {"sender": hb.sender, "boot": hb.boot, "seq": hb.seq, "time": hb.time, "active": hb.active}
    return {**fields, "mac": signer.sign(fields)}


def check_heartbeat(signer: HeartbeatSigner, replay: ReplayWindow, msg: object, *, expected_sender: str | None,
                    wall_now: float) -> Heartbeat:
    """Authenticate one heartbeat; ``expected_sender`` None accepts any sender (the witness)."""
    m = _mapping(msg, "heartbeat")
    missing = [f for f in (*HEARTBEAT_FIELDS, "mac") if f not in m]
    if missing:
        raise RemoteInputError("malformed", f"heartbeat lacks {', '.join(missing)}")
    fields = {f: m[f] for f in HEARTBEAT_FIELDS}
    if not isinstance(fields["sender"], str) or not isinstance(fields["boot"], str) \
            or not isinstance(fields["active"], bool):
        raise RemoteInputError("malformed", "heartbeat sender/boot/active have the wrong types")
    if expected_sender is not None and fields["sender"] != expected_sender:
        raise RemoteInputError("wrong_sender", f"heartbeat from {fields['sender']!r}, expected {expected_sender!r}")
    signer.verify(fields, m["mac"])
    replay.check_seq(sender=fields["sender"], boot=fields["boot"], seq=fields["seq"], timestamp=fields["time"],
                     wall_now=wall_now)
    return Heartbeat(fields["sender"], fields["boot"], fields["seq"], float(fields["time"]), fields["active"])


def make_ack(signer: HeartbeatSigner, *, witness: str, sender: str, seq: int) -> dict[str, Any]:
    fields = {"kind": "ack", "witness": witness, "sender": sender, "seq": seq}
    return {**fields, "mac": signer.sign(fields)}


def check_ack(signer: HeartbeatSigner, msg: object, *, sender: str, seq: int) -> None:
    m = _mapping(msg, "witness ack")
    fields = {"kind": "ack", "witness": m.get("witness"), "sender": sender, "seq": seq}
    if m.get("sender") != sender or m.get("seq") != seq or not isinstance(fields["witness"], str):
        raise RemoteInputError("malformed", "witness ack does not answer our heartbeat")
    signer.verify(fields, m.get("mac"))


def make_verdict(signer: HeartbeatSigner, *, witness: str, subject: str, nonce: str, state: Liveness,
                 remaining: float) -> dict[str, Any]:
    fields = {"kind": "verdict", "witness": witness, "subject": subject, "nonce": nonce,
              "state": state.value, "remaining": round(max(0.0, remaining), 3)}
    return {**fields, "mac": signer.sign(fields)}


@dataclass(frozen=True, slots=True)
class WitnessAnswer:
    verdict: Verdict
    state: Liveness  # what the witness itself hears of the subject
    remaining: float  # seconds until the witness would call the subject down (0 when down)


def check_verdict(signer: HeartbeatSigner, msg: object, *, subject: str, nonce: str) -> WitnessAnswer:
    """Only a witness that says DOWN yields PRIMARY_DOWN; UP and UNKNOWN (just started) count as alive."""
    m = _mapping(msg, "witness verdict")
    remaining = m.get("remaining")
    fields = {"kind": "verdict", "witness": m.get("witness"), "subject": subject, "nonce": nonce,
              "state": m.get("state"), "remaining": remaining}
    if m.get("subject") != subject or m.get("nonce") != nonce:
        raise RemoteInputError("malformed", "verdict answers another question (subject/nonce)")
    if isinstance(remaining, bool) or not isinstance(remaining, int | float) or not math.isfinite(remaining):
        raise RemoteInputError("malformed", "verdict remaining is not a number")
    try:
        state = Liveness(m.get("state"))
    except ValueError:
        raise RemoteInputError("malformed", f"verdict state {m.get('state')!r}") from None
    signer.verify(fields, m.get("mac"))
    verdict = Verdict.PRIMARY_DOWN if state is Liveness.DOWN else Verdict.PRIMARY_ALIVE
    return WitnessAnswer(verdict, state, max(0.0, float(remaining)))

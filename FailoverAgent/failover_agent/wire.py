"""What goes over the bus between failover agents and the witness, built and checked here (no I/O).

- Heartbeat (published on the peer platform as ``heartbeat/<agent_id>``, and sent to the witness by
  RPC): ``{sender, group, boot, seq, time, active, term, echo_boot, echo_seq, mac}``; the MAC
  (HMAC-SHA256, shared ``heartbeat_secret``) covers every other field, so a client that merely claims an
  identity cannot forge liveness, and ``(boot, seq)`` plus the time window stop replays. ``term`` is the
  sender's term (the fencing token of its last start); ``echo_boot``/``echo_seq`` name the newest
  heartbeat the sender received from its peer (``""``/0: none yet): that echo is what renews the peer's
  ``ContactLease`` (``failover_core.fencing``). The last heartbeat of an agent that stops cleanly (its
  ``onstop``) also carries ``leaving: true`` and ``leaving_mac``, the MAC over every field above plus
  ``leaving``; ``mac`` still covers the others only, so an older peer or witness, which reads the fields
  it knows, checks ``mac`` and ignores the two extra keys, takes it for an ordinary heartbeat.
- Witness ack: ``{witness, sender, seq, term, peers, mac}``; proves the witness itself (not an impostor)
  heard heartbeat ``seq`` (which renews the sender's lease of the witness link). ``term`` is the highest
  term the witness heard in the sender's group; ``peers`` (a JSON list, signed with the rest) is what the
  witness knows of the sender's partners (``WitnessBook.peers_of``: state, term, whether it runs the
  service), so a node back from isolation learns who runs the service before it starts.
- Verdict: the answer to "do you still hear <subject>?" for one fresh nonce:
  ``{witness, subject, nonce, state: up|down|unknown, remaining, term, mac}``.

Every check raises ``RemoteInputError(reason)``; the caller counts it and changes nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from failover_core.errors import RemoteInputError
from failover_core.heartbeat_auth import HeartbeatSigner, ReplayWindow
from failover_core.liveness import Liveness
from failover_core.tables import Verdict
from failover_core.witness_book import WitnessView

HEARTBEAT_FIELDS = ("sender", "group", "boot", "seq", "time", "active", "term", "echo_boot", "echo_seq")
MAX_PEERS = 16  # views of partners in one ack (a pair has one)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    sender: str
    boot: str
    seq: int
    time: float
    active: bool
    term: int = 0
    echo_boot: str = ""  # the peer's boot of the newest heartbeat we received from it ("" none yet)
    echo_seq: int = 0  # its seq (0: none yet)
    group: str = "default"
    leaving: bool = False  # the sender's agent is stopping (its last heartbeat); absent in older agents'

    def echo_of(self, boot: str) -> int | None:
        """The seq of OUR heartbeat (boot ``boot``) this heartbeat acknowledges, or None."""
        return self.echo_seq if self.echo_boot == boot and self.echo_seq > 0 else None


@dataclass(frozen=True, slots=True)
class WitnessAck:
    """A checked ack: the witness heard heartbeat ``seq``; the highest term it knows of the group, and
    what it knows of our partners."""

    seq: int
    term: int
    peers: tuple[WitnessView, ...]

    def peer(self, node: str) -> WitnessView | None:
        return next((v for v in self.peers if v.node == node), None)


def _mapping(msg: object, what: str) -> Mapping[str, Any]:
    if not isinstance(msg, Mapping):
        raise RemoteInputError("malformed", f"{what} is not an object")
    return msg


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def make_heartbeat(signer: HeartbeatSigner, hb: Heartbeat) -> dict[str, Any]:
    fields = {"sender": hb.sender, "group": hb.group, "boot": hb.boot, "seq": hb.seq, "time": hb.time,
              "active": hb.active, "term": hb.term, "echo_boot": hb.echo_boot, "echo_seq": hb.echo_seq}
    msg = {**fields, "mac": signer.sign(fields)}
    if hb.leaving:  # signed apart, so that an older receiver's check of ``mac`` still passes (module docstring)
        msg.update(leaving=True, leaving_mac=signer.sign({**fields, "leaving": True}))
    return msg


def check_heartbeat(signer: HeartbeatSigner, replay: ReplayWindow, msg: object, *, expected_sender: str | None,
                    wall_now: float) -> Heartbeat:
    """Authenticate one heartbeat; ``expected_sender`` None accepts any sender (the witness)."""
    m = _mapping(msg, "heartbeat")
    missing = [f for f in (*HEARTBEAT_FIELDS, "mac") if f not in m]
    if missing:
        raise RemoteInputError("malformed", f"heartbeat lacks {', '.join(missing)}")
    fields = {f: m[f] for f in HEARTBEAT_FIELDS}
    if not isinstance(fields["sender"], str) or not isinstance(fields["boot"], str) \
            or not isinstance(fields["active"], bool) or not isinstance(fields["group"], str) \
            or not isinstance(fields["echo_boot"], str):
        raise RemoteInputError("malformed", "heartbeat sender/group/boot/active/echo_boot have the wrong types")
    if not _is_int(fields["term"]) or fields["term"] < 0 or not _is_int(fields["echo_seq"]) or fields["echo_seq"] < 0:
        raise RemoteInputError("malformed", "heartbeat term/echo_seq are not integers >= 0")
    if expected_sender is not None and fields["sender"] != expected_sender:
        raise RemoteInputError("wrong_sender", f"heartbeat from {fields['sender']!r}, expected {expected_sender!r}")
    signer.verify(fields, m["mac"])
    leaving = m.get("leaving", False)
    if not isinstance(leaving, bool):
        raise RemoteInputError("malformed", "heartbeat leaving is not a boolean")
    if leaving:
        signer.verify({**fields, "leaving": True}, m.get("leaving_mac"))
    replay.check_seq(sender=fields["sender"], boot=fields["boot"], seq=fields["seq"], timestamp=fields["time"],
                     wall_now=wall_now)
    return Heartbeat(fields["sender"], fields["boot"], fields["seq"], float(fields["time"]), fields["active"],
                     fields["term"], fields["echo_boot"], fields["echo_seq"], fields["group"], leaving)


def make_ack(signer: HeartbeatSigner, *, witness: str, sender: str, seq: int, term: int = 0,
             peers: Sequence[WitnessView] = ()) -> dict[str, Any]:
    fields = {"kind": "ack", "witness": witness, "sender": sender, "seq": seq, "term": term,
              "peers": json.dumps([v.as_fields() for v in peers[:MAX_PEERS]], sort_keys=True, separators=(",", ":"))}
    return {**fields, "mac": signer.sign(fields)}


def _peer_view(d: object) -> WitnessView:
    if not isinstance(d, Mapping):
        raise RemoteInputError("malformed", "witness ack peer is not an object")
    try:
        state = Liveness(d.get("state"))
    except ValueError:
        raise RemoteInputError("malformed", f"witness ack peer state {d.get('state')!r}") from None
    node, term, active, silent, down_in = (d.get(k) for k in ("node", "term", "active", "silent_for", "down_in"))
    if not isinstance(node, str) or not (term is None or (_is_int(term) and term >= 0)) \
            or not (active is None or isinstance(active, bool)) \
            or not (silent is None or (isinstance(silent, int | float) and not isinstance(silent, bool))) \
            or not (isinstance(down_in, int | float) and not isinstance(down_in, bool)):
        raise RemoteInputError("malformed", "witness ack peer fields have the wrong types")
    return WitnessView(node=node, state=state, term=term, active=active,
                       silent_for=None if silent is None else float(silent), down_in=float(down_in))


def check_ack(signer: HeartbeatSigner, msg: object, *, sender: str, seq: int) -> WitnessAck:
    m = _mapping(msg, "witness ack")
    fields = {"kind": "ack", "witness": m.get("witness"), "sender": sender, "seq": seq, "term": m.get("term"),
              "peers": m.get("peers")}
    if m.get("sender") != sender or m.get("seq") != seq or not isinstance(fields["witness"], str):
        raise RemoteInputError("malformed", "witness ack does not answer our heartbeat")
    if not _is_int(fields["term"]) or fields["term"] < 0 or not isinstance(fields["peers"], str) \
            or len(fields["peers"]) > 64 * 1024:
        raise RemoteInputError("malformed", "witness ack term/peers have the wrong types")
    signer.verify(fields, m.get("mac"))
    try:
        peers = json.loads(fields["peers"])
    except ValueError:
        raise RemoteInputError("malformed", "witness ack peers is not JSON") from None
    if not isinstance(peers, list) or len(peers) > MAX_PEERS:
        raise RemoteInputError("malformed", "witness ack peers is not a short list")
    return WitnessAck(seq=seq, term=fields["term"], peers=tuple(_peer_view(p) for p in peers))


def make_verdict(signer: HeartbeatSigner, *, witness: str, subject: str, nonce: str, state: Liveness,
                 remaining: float, term: int | None = None) -> dict[str, Any]:
    fields = {"kind": "verdict", "witness": witness, "subject": subject, "nonce": nonce,
              "state": state.value, "remaining": round(max(0.0, remaining), 3), "term": term}
    return {**fields, "mac": signer.sign(fields)}


@dataclass(frozen=True, slots=True)
class WitnessAnswer:
    verdict: Verdict
    state: Liveness  # what the witness itself hears of the subject
    remaining: float  # seconds until the witness would call the subject down (0 when down)
    term: int | None = None  # the subject's last claimed term there (None: never heard)


def check_verdict(signer: HeartbeatSigner, msg: object, *, subject: str, nonce: str) -> WitnessAnswer:
    """Only a witness that says DOWN yields PRIMARY_DOWN; UP and UNKNOWN (just started) count as alive."""
    m = _mapping(msg, "witness verdict")
    remaining = m.get("remaining")
    term = m.get("term")
    fields = {"kind": "verdict", "witness": m.get("witness"), "subject": subject, "nonce": nonce,
              "state": m.get("state"), "remaining": remaining, "term": term}
    if m.get("subject") != subject or m.get("nonce") != nonce:
        raise RemoteInputError("malformed", "verdict answers another question (subject/nonce)")
    if not (term is None or (_is_int(term) and term >= 0)):
        raise RemoteInputError("malformed", "verdict term is not an integer >= 0")
    if isinstance(remaining, bool) or not isinstance(remaining, int | float) or not math.isfinite(remaining):
        raise RemoteInputError("malformed", "verdict remaining is not a number")
    try:
        state = Liveness(m.get("state"))
    except ValueError:
        raise RemoteInputError("malformed", f"verdict state {m.get('state')!r}") from None
    signer.verify(fields, m.get("mac"))
    verdict = Verdict.PRIMARY_DOWN if state is Liveness.DOWN else Verdict.PRIMARY_ALIVE
    return WitnessAnswer(verdict, state, max(0.0, float(remaining)), term)

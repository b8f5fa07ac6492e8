"""A decision trace of standard mode on a fake clock: the core alone, no platforms.

Run: ``python -m labs.core_demo``. Primary, secondary and witness exchange heartbeats every
second (timeout 3 s); the primary dies at t=10 and returns at t=20. Every decision change of either
node is printed with its reason code, so the table rows can be seen at work.
"""

from __future__ import annotations

from failover_core.clock import FakeClock
from failover_core.decide import Facts, Policy, decide
from failover_core.liveness import PeerLiveness
from failover_core.tables import Action, Role, Verdict

PERIOD, TIMEOUT = 1.0, 3.0


def run(primary_down: tuple[float, float] = (10.0, 20.0), until: float = 30.0) -> list[str]:
    clock = FakeClock(0.0)
    t0 = clock.now()
    sec_hears_pri = PeerLiveness("primary", TIMEOUT, t0)
    sec_hears_wit = PeerLiveness("witness", TIMEOUT, t0)
    pri_hears_sec = PeerLiveness("secondary", TIMEOUT, t0)
    pri_hears_wit = PeerLiveness("witness", TIMEOUT, t0)
    wit_hears_pri = PeerLiveness("primary", TIMEOUT, t0)
    running = {"primary": False, "secondary": False}
    last: dict[str, str] = {}
    lines: list[str] = []
    policy = Policy(failback_delay=2.0)

    def primary_alive(t: float) -> bool:
        return not (primary_down[0] <= t < primary_down[1])

    steps = int(until / 0.5)
    for i in range(steps + 1):
        now = clock.set(i * 0.5)
        if i % 2 == 0:  # heartbeats once a second
            if primary_alive(now):
                sec_hears_pri.heard(now)
                wit_hears_pri.heard(now)
                pri_hears_sec.heard(now)
                pri_hears_wit.heard(now)
            sec_hears_wit.heard(now)
        if not primary_alive(now):
            running["primary"] = False  # the platform died with its agent
        nodes = [("secondary", Role.SECONDARY, sec_hears_pri, sec_hears_wit, "primary")]
        if primary_alive(now):
            nodes.insert(0, ("primary", Role.PRIMARY, pri_hears_sec, pri_hears_wit, "secondary"))
        for name, role, peer, wit, other in nodes:
            facts = Facts(peer=peer.state(now), witness=wit.state(now), self_active=running[name],
                          peer_active=running[other], peer_up_for=peer.up_for(now))
            d = decide(role, facts, policy)
            if d.action is Action.VERIFY:  # the witness answers from what it hears itself
                verdict = Verdict.PRIMARY_ALIVE if wit_hears_pri.is_up(now) else Verdict.PRIMARY_DOWN
                facts = Facts(peer=facts.peer, witness=facts.witness, verdict=verdict,
                              self_active=facts.self_active, peer_active=facts.peer_active,
                              peer_up_for=facts.peer_up_for)
                d = decide(role, facts, policy)
            if d.action is Action.START:
                running[name] = True
            elif d.action is Action.STOP:
                running[name] = False
            if last.get(name) != d.code:
                last[name] = d.code
                runs = "+".join(n for n, r in running.items() if r) or "nobody"
                lines.append(f"t={now:5.1f}s  {name:<9} {d.action.value:<6} {d.reason}  "
                             f"[{d.code}]  service on: {runs}")
    return lines


def main() -> None:
    print(f"failover_core decision trace (standard mode, heartbeat {PERIOD:g}s, timeout {TIMEOUT:g}s);"
          " primary platform down from t=10s to t=20s")
    for line in run():
        print(line)


if __name__ == "__main__":
    main()

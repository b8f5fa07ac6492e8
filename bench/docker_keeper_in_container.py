"""Measurement: standard mode (the lab's witness) with the agents IN CONTAINERS of the image, and the active
agent's container ``docker kill``ed (or ``docker pause``d past the timeout). Does host A's managed container stop
before B takes over?

Two layouts (``--layout``):

- ``keeper`` (the fix, compose.yaml's): each host runs the fence keeper as a container of its own
  (``python -m DockerFailover.fence --listen /run/docker-failover/keeper.sock``) and the agent connects to it
  (``fence_keeper`` = that socket). The keeper sees end-of-file when the agent's container dies and kills A's
  container; a paused agent's lease runs out at the keeper.
- ``spawn`` (before the fix, for comparison): the keeper is the agent's child inside the agent's container, and
  dies with it (the agent's command line now refuses this layout; the bench starts the agent past it).

Per trial it records the service timeline (``labs.docker.ServiceTimeline``: the daemons' start/die events) from
the fault: when A's container died, when B's started, the double service in the observation window. Results go to
docs/docker.md (Deployment, "Standard mode in a container").

Run (root, no bench lock): ``python -m bench.docker_keeper_in_container [--layout keeper|spawn|both]
[--fault kill|pause] [--trials N] [--window S]``.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import statistics
import tempfile
import time
from pathlib import Path

import docker

from labs.docker import STANDARD_HB_TIMEOUT, ServiceTimeline, TwoHostLab, wait_until
from labs.docker_image import (
    AGENT_CONTAINER,
    BASE_TAG,
    IMAGE_TAG,
    KEEPER_CONTAINER,
    KEEPER_SOCKET,
    build_image,
    copy_image,
    remove_container,
    run_agent,
    run_agent_with_spawned_keeper,
    run_keeper,
)


def trial(lab: TwoHostLab, work: Path, layout: str, fault: str, window: float) -> dict[str, float | None]:
    for h in lab.hosts.values():
        lab.heal_link(h.key)
    lab.heal_all()
    lab.start_witness()
    lab.create_web()
    keeper = layout == "keeper"
    config = lab.write_config(work / "config.py", witness=True, in_container=True,
                              fence_keeper=KEEPER_SOCKET if keeper else "spawn")
    try:
        for key in ("a", "b"):
            if keeper:
                run_keeper(lab, key)
        for key in ("a", "b"):
            if keeper:
                run_agent(lab, key, config, keeper=True)
            else:
                run_agent_with_spawned_keeper(lab, key, config)
        wait_until(lambda: (lab.role("a"), lab.role("b")) == ("active", "passive") and lab.web_answers("a"), 30,
                   what="A active and serving, B passive")
        client = lab.hosts["a"].client
        assert client is not None
        agent = client.containers.get(AGENT_CONTAINER)
        tl = ServiceTimeline(lab).start()
        t0 = time.time()
        if fault == "kill":
            agent.kill()
        else:
            agent.pause()
        time.sleep(window)  # observation window: the measurement itself, not a wait for a condition
        if fault == "pause":
            agent.unpause()
        tl.stop()
        b_start = tl.first("b", "start", t0)
        a_die = tl.first("a", "die", t0)
        return {"b_start": None if b_start is None else b_start - t0,
                "a_die": None if a_die is None else a_die - t0,
                "overlap": tl.overlap(), "a_running_at_end": float(lab.container_running("a")),
                "b_serves_at_end": float(lab.web_answers("b"))}
    finally:
        for key in ("a", "b"):
            for name in (AGENT_CONTAINER, KEEPER_CONTAINER):
                with contextlib.suppress(docker.errors.DockerException):
                    remove_container(lab, key, name)
        lab.stop_witness(signal.SIGKILL)


def span(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{min(values):.3f}-{max(values):.3f} s (median {statistics.median(values):.3f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layout", choices=["keeper", "spawn", "both"], default="keeper")
    ap.add_argument("--fault", choices=["kill", "pause"], default="kill")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--window", type=float, default=3 * STANDARD_HB_TIMEOUT + 2)
    args = ap.parse_args()
    layouts = ["keeper", "spawn"] if args.layout == "both" else [args.layout]
    with TwoHostLab() as lab, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        a, b = lab.hosts["a"].client, lab.hosts["b"].client
        try:
            build_image(a, work / "image")
            copy_image(a, b)
            for layout in layouts:
                rows = []
                for i in range(args.trials):
                    r = trial(lab, work, layout, args.fault, args.window)
                    rows.append(r)
                    fmt = {k: ("-" if v is None else f"{v:.3f}") for k, v in r.items()}
                    print(f"{layout} {args.fault} trial {i + 1}: A container die {fmt['a_die']} s after the fault; "
                          f"B container start {fmt['b_start']} s; double service {fmt['overlap']} s of the "
                          f"{args.window:.1f} s window; A still running at the end: {bool(r['a_running_at_end'])}; "
                          f"B serves: {bool(r['b_serves_at_end'])}", flush=True)
                dies = [r["a_die"] for r in rows if r["a_die"] is not None]
                starts = [r["b_start"] for r in rows if r["b_start"] is not None]
                gaps = [r["b_start"] - r["a_die"] for r in rows if r["a_die"] is not None and r["b_start"] is not None]
                overlaps = [r["overlap"] or 0.0 for r in rows]
                print(f"{layout} {args.fault}, {args.trials} trials: A's container killed in {len(dies)}/{len(rows)} "
                      f"({span(dies)}); B started {span(starts)}; gap A die -> B start {span(gaps)}; "
                      f"double service {span(overlaps)}, > 0 in {sum(o > 0 for o in overlaps)}/{len(rows)}",
                      flush=True)
        finally:
            for client in (a, b):
                assert client is not None
                for tag in (IMAGE_TAG, BASE_TAG):
                    with contextlib.suppress(docker.errors.ImageNotFound):
                        client.images.remove(tag, force=True)


if __name__ == "__main__":
    main()

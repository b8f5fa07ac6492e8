"""Measurement: standard mode (the lab's witness) with the agents IN CONTAINERS of the image, and the active
agent's container ``docker kill``ed. Does anything stop host A's managed container while B takes over?

The fence keeper is a child of the agent; in a container it dies with the agent (PID 1), so nothing on A
enforces the lease. This script records, per trial, the service timeline (``labs.docker.ServiceTimeline``: the
daemons' start/die events) from the kill: when B's container started, whether A's container died, and the
double service (overlap) in the observation window. Results go to docs/docker.md ("Deploying").

Run (root, no bench lock): ``python -m bench.docker_keeper_in_container [--trials N] [--window S]``.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import docker

from labs.docker import STANDARD_HB_TIMEOUT, ServiceTimeline, TwoHostLab, wait_until
from labs.docker_image import BASE_TAG, IMAGE_TAG, build_image, copy_image

AGENT = "failover-agent"
SERVER = {"a": "server1", "b": "server2"}


def run_agent(lab: TwoHostLab, key: str, config: Path) -> None:
    h = lab.hosts[key]
    assert h.client is not None
    with contextlib.suppress(docker.errors.NotFound):
        h.client.containers.get(AGENT).remove(force=True, v=True)
    h.client.containers.run(IMAGE_TAG, name=AGENT, detach=True, network_mode="host",
                            environment={"DOCKER_FAILOVER_SERVER": SERVER[key]},
                            volumes={str(config): {"bind": "/app/config.py", "mode": "ro"},
                                     str(h.dir / "docker.sock"): {"bind": "/var/run/docker.sock", "mode": "rw"}})


def trial(lab: TwoHostLab, work: Path, window: float) -> dict[str, float | None]:
    for h in lab.hosts.values():
        lab.heal_link(h.key)
    lab.heal_all()
    lab.start_witness()
    lab.create_web()
    config = lab.write_config(work / "config.py", witness=True, in_container=True)
    try:
        run_agent(lab, "a", config)
        run_agent(lab, "b", config)
        wait_until(lambda: (lab.role("a"), lab.role("b")) == ("active", "passive") and lab.web_answers("a"), 30,
                   what="A active and serving, B passive")
        tl = ServiceTimeline(lab).start()
        t0 = time.time()
        lab.hosts["a"].client.containers.get(AGENT).kill()  # type: ignore[union-attr]
        time.sleep(window)  # observation window: the measurement itself, not a wait for a condition
        tl.stop()
        b_start = tl.first("b", "start", t0)
        a_die = tl.first("a", "die", t0)
        return {"b_start": None if b_start is None else b_start - t0,
                "a_die": None if a_die is None else a_die - t0,
                "overlap": tl.overlap(), "a_running_at_end": float(lab.container_running("a")),
                "b_serves_at_end": float(lab.web_answers("b"))}
    finally:
        for h in lab.hosts.values():
            assert h.client is not None
            with contextlib.suppress(docker.errors.DockerException):
                h.client.containers.get(AGENT).remove(force=True, v=True)
        lab.stop_witness()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--window", type=float, default=3 * STANDARD_HB_TIMEOUT + 2)
    args = ap.parse_args()
    with TwoHostLab() as lab, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        a, b = lab.hosts["a"].client, lab.hosts["b"].client
        try:
            build_image(a, work / "image")
            copy_image(a, b)
            for i in range(args.trials):
                r = trial(lab, work, args.window)
                fmt = {k: ("-" if v is None else f"{v:.2f}") for k, v in r.items()}
                print(f"trial {i + 1}: B container start {fmt['b_start']} s after the kill; A container die "
                      f"{fmt['a_die']} s; double service {fmt['overlap']} s of the {args.window:.1f} s window; "
                      f"A still running at the end: {bool(r['a_running_at_end'])}; "
                      f"B serves: {bool(r['b_serves_at_end'])}", flush=True)
        finally:
            for client in (a, b):
                assert client is not None
                for tag in (IMAGE_TAG, BASE_TAG):
                    with contextlib.suppress(docker.errors.ImageNotFound):
                        client.images.remove(tag, force=True)


if __name__ == "__main__":
    main()

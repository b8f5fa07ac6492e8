"""`make demo SYSTEM=valet`: two "hosts" (network namespaces), a web service on the primary; it dies
and its host breaks, the stand-by takes over; the primary host returns and the valet keeps exactly one.

Runs as root (namespaces); sets up and tears down everything itself; prints a timeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from failover_core.transitions import Transition
from HaValet.config import parse_config
from HaValet.supervisor import ProcState
from HaValet.valet import Valet, render_status
from labs import importable_env
from labs.valet import NetnsLab

PY = sys.executable
T0 = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - T0:7.3f}s] {text}", flush=True)


def cfg_text(lab: NetnsLab, state: Path) -> str:
    return f"""\
[valet]
interval = 1.0
command_timeout = 3
start_grace = 3
backoff_initial = 0.5
[placeholders]
NSP = {lab.prefix}
SVC = {PY} -m labs.valet_service
DIR = {state}

# The documented ha_valet.cfg shape: one section, its own host plus a stand-by list.
[Web]
host = 10.99.0.1
stand_by_list = 10.99.0.2
user = root
port = 8080
protocol = http
priority = 1
start_command = "ip netns exec @NSP@%s @SVC@ start --dir @DIR@ --name %s --bind %s --port %s" % (host, host, host, port)
stop_command = "ip netns exec @NSP@%s @SVC@ stop --dir @DIR@ --name %s" % (host, host)
test_command = "ip netns exec @NSP@client @SVC@ probe --url http://%s:%s/ --timeout 1" % (host, port)
"""


def client_get(lab: NetnsLab, address: str) -> str:
    rc = subprocess.run(["ip", "netns", "exec", lab.client, PY, "-m", "labs.valet_service", "probe",
                         "--url", f"http://{address}:8080/"], timeout=10).returncode
    return f"answers (priority {rc})" if rc else "no answer"


async def wait_for(valet: Valet, state: ProcState, host: str | None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    sup = valet.processes["Web"].sup if "Web" in valet.processes else None
    while time.monotonic() < deadline:
        sup = valet.processes["Web"].sup if "Web" in valet.processes else None
        if sup is not None and sup.state is state and (host is None or sup.active_host == host):
            return
        await asyncio.sleep(0.02)
    raise RuntimeError(f"demo: Web did not reach {state.name} on {host} within {timeout}s")


async def scenario(lab: NetnsLab, state: Path) -> None:
    config = parse_config(cfg_text(lab, state), "demo ha_valet.cfg")

    def on_transition(t: Transition) -> None:
        say(f"TRANSITION {t}")

    def on_note(process: str, code: str, reason: str) -> None:
        if code in ("start_failed", "trying_next_host", "stopped", "stop_failed"):
            say(f"           {process}: {reason} [{code}]")

    valet = Valet(config, on_transition=on_transition, on_note=on_note)
    stop = asyncio.Event()
    runner = asyncio.create_task(valet.run(stop))
    try:
        say("valet started: interval 1 s; Web prefers 10.99.0.1, stand-by 10.99.0.2")
        await wait_for(valet, ProcState.ACTIVE, "10.99.0.1")
        say(f"client -> 10.99.0.1: {client_get(lab, '10.99.0.1')}; client -> 10.99.0.2: "
            f"{client_get(lab, '10.99.0.2')}")

        pid = int((state / "10.99.0.1.pid").read_text())
        lab.break_host("10.99.0.1")
        os.kill(pid, signal.SIGKILL)
        failed_at = time.monotonic()
        say(f"FAULT: host 10.99.0.1 lost its address and its service (pid {pid}) was killed")
        await wait_for(valet, ProcState.ACTIVE, "10.99.0.2")
        say(f"stand-by took over {time.monotonic() - failed_at:.2f}s after the fault; client -> 10.99.0.2: "
            f"{client_get(lab, '10.99.0.2')}")

        lab.repair_host("10.99.0.1")
        say("REPAIR: host 10.99.0.1 is back; its init starts the service there again")
        await asyncio.to_thread(subprocess.run, [
            "ip", "netns", "exec", lab.ns("10.99.0.1"), PY, "-m", "labs.valet_service", "start",
            "--state-dir", str(state), "--name", "10.99.0.1", "--bind", "10.99.0.1", "--port", "8080"], check=True)
        await wait_for(valet, ProcState.ACTIVE, "10.99.0.1")
        for _ in range(100):
            if client_get(lab, "10.99.0.2") == "no answer":
                break
            await asyncio.sleep(0.05)
        say(f"exactly one active again: client -> 10.99.0.1: {client_get(lab, '10.99.0.1')}; "
            f"client -> 10.99.0.2: {client_get(lab, '10.99.0.2')}")
        print()
        print(render_status(valet.status()))
        print()
    finally:
        stop.set()
        await runner


def main() -> int:
    if os.geteuid() != 0:
        print("the valet demo creates network namespaces: run it as root (make demo SYSTEM=valet)", file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # the valet's commands and ours run ``python -m labs.valet_service``: labs/ is not installed
    os.environ["PYTHONPATH"] = importable_env()["PYTHONPATH"]
    with tempfile.TemporaryDirectory(prefix="havalet-demo-") as tmp, NetnsLab(2) as lab:
        state = Path(tmp)
        say(f"lab: namespaces {lab.ns('10.99.0.1')}, {lab.ns('10.99.0.2')} (hosts) and {lab.client} (client)")
        try:
            asyncio.run(scenario(lab, state))
        finally:
            for pid_file in state.glob("*.pid"):  # end the demo's services (by pid) before the namespaces go
                with contextlib.suppress(ValueError, OSError):
                    os.kill(int(pid_file.read_text()), signal.SIGKILL)
        say("lab torn down")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Stand-by hosts for real: "hosts" are network namespaces; start/stop run inside them, tests probe
over the network from a third (client) namespace. Traffic stays inside the namespaces we create.
"""

from __future__ import annotations

import subprocess
import textwrap

import pytest

from .helpers import PY, wait_until

pytestmark = pytest.mark.integration


def netns_cfg(hosts, state) -> str:
    return textwrap.dedent(f"""\
        [valet]
        interval = 0.5
        command_timeout = 3
        start_grace = 3
        backoff_initial = 0.2
        [placeholders]
        NSP = {hosts.prefix}
        PY = {PY}
        STATE = {state}

        [Web]
        host = 10.99.0.1
        stand_by_list = 10.99.0.2
        user = root
        port = 8080
        protocol = http
        start_command = "ip netns exec @NSP@%s @PY@ -m labs.valet_service start --state-dir @STATE@ --name %s --bind %s --port %s" % (host, host, host, port)
        stop_command = "ip netns exec @NSP@%s @PY@ -m labs.valet_service stop --state-dir @STATE@ --name %s" % (host, host)
        test_command = "ip netns exec @NSP@client @PY@ -m labs.valet_service probe --url http://%s:%s/ --timeout 1" % (host, port)
        """)  # noqa: E501 (one cfg line per command, as operators write them)


def client_probe(hosts, address: str) -> int:
    return subprocess.run(["ip", "netns", "exec", hosts.client, PY, "-m", "labs.valet_service", "probe",
                           "--url", f"http://{address}:8080/", "--timeout", "1"], timeout=20).returncode


def test_preferred_host_fails_to_start_standby_takes_over_then_primary_returns(netns_hosts, state_dir, run_valet):
    hosts = netns_hosts
    valet = run_valet(netns_cfg(hosts, state_dir))
    valet.wait_state("Web", "active", timeout=30, host="10.99.0.1")
    assert client_probe(hosts, "10.99.0.1") == 1 and client_probe(hosts, "10.99.0.2") == 0

    # host A loses its address (a broken host) and its service dies: restarting on A must fail
    hosts.break_host("10.99.0.1")
    pid_a = int((state_dir / "10.99.0.1.pid").read_text())
    subprocess.run(["kill", "-KILL", str(pid_a)], check=True)
    valet.wait_state("Web", "active", timeout=30, host="10.99.0.2")
    assert client_probe(hosts, "10.99.0.2") == 1
    log = valet.log()
    assert "start on 10.99.0.1 failed (exit 1); starting on 10.99.0.2 [trying_next_host]" in log
    assert "cannot listen on 10.99.0.1:8080" in log  # the real reason, from the start command's output
    assert "Web: STARTING -> ACTIVE (started on 10.99.0.2 (up, priority 1)) [started]" in log

    # A is repaired and its own init starts the service again: two up, exactly one may stay (A: preferred)
    hosts.repair_host("10.99.0.1")
    subprocess.run(["ip", "netns", "exec", hosts.ns("10.99.0.1"), PY, "-m", "labs.valet_service", "start",
                    "--state-dir", str(state_dir), "--name", "10.99.0.1", "--bind", "10.99.0.1", "--port", "8080"],
                   check=True, timeout=20)
    valet.wait_state("Web", "active", timeout=30, host="10.99.0.1")
    wait_until(lambda: client_probe(hosts, "10.99.0.2") == 0, 10, "B stopped", valet.diagnostics)
    assert client_probe(hosts, "10.99.0.1") == 1
    log = valet.log()
    assert "keeping 10.99.0.1, stopping 10.99.0.2) [many_up]" in log
    assert "[conflict_resolved]" in log
    assert valet.stop() == 0  # SIGTERM: a clean exit
    assert "Exception ignored" not in valet.log() and "Traceback" not in valet.log()

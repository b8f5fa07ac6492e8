"""Simple mode's scenarios again, on platforms run by volttron-testing's own PlatformWrapper (0.5.1rc4).

The ``cluster`` fixture here is ``labs.volttron_cluster.Cluster(backend="vtesting")``: each platform is a
``labs.vtesting_platform.WrapperPlatform``, i.e. the wrapper's ``startup_platform``/``restart_platform``,
``install_agent`` (``vctl install DIR --agent-config``), ``stop_platform`` and ``shutdown_platform``, with the
adaptations docs/failoveragent.md lists (without them it hangs in its first ping: traced there). The scenarios are
test_agent_simple_mode.py's own functions, imported, so both fixtures run the same assertions: the primary alone
runs the managed agent; the primary's platform killed, the secondary starts it (and forged or replayed heartbeats
do not keep the dead primary alive) and gives it back; the primary's platform stopped cleanly, the same; the
notify hook ran once per transition. Loopback only (the wrapper has no network namespaces): the cut-and-heal
scenario stays with our runner.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from labs.volttron_cluster import FAILOVER, SERVICE, Cluster

from . import test_agent_simple_mode as simple
from .conftest import make_cluster

# test_agent_simple_mode.py's scenarios, in its order, collected here on this module's cluster
test_starts_on_primary_only = simple.test_starts_on_primary_only
test_forged_and_replayed_heartbeats_do_not_keep_a_silent_primary_alive = (
    simple.test_forged_and_replayed_heartbeats_do_not_keep_a_silent_primary_alive)
test_secondary_takes_over_when_primary_platform_shuts_down_and_gives_back = (
    simple.test_secondary_takes_over_when_primary_platform_shuts_down_and_gives_back)
test_notify_hook_ran_once_per_transition_in_order = simple.test_notify_hook_ran_once_per_transition_in_order

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    environ = os.environ  # the wrapper's with_os_environ leaves os.environ a plain dict copy: put the real one back
    try:
        yield from make_cluster("simple", heartbeat_period=1.0, timeout=simple.TIMEOUT, backend="vtesting")
    finally:
        os.environ = environ  # noqa: B003 (rebinding back is the point: the wrapper rebound it to a dict)


def test_the_wrappers_adaptations_hold(cluster: Cluster) -> None:
    """What the adaptations promise, per platform: platform.json holds the platform's own key again (the wrapper
    wrote uuid strings there), the wrapper's serverkey is that key, its dynamic agent reaches platform.control,
    its own list_agents/agent_pid see our agents, and the platform logs at INFO into the wrapper's log file."""
    for name in ("primary", "secondary"):
        p = cluster.platforms[name]
        w = p.wrapper
        stored = json.loads((p.vhome / "credentials_store" / "platform.json").read_text())
        assert stored["publickey"] == w.platform_publickey == w.serverkey == p.serverkey()
        assert len(stored["publickey"]) == 43  # a CURVE key, not a uuid
        assert w.is_running()
        assert "platform.control" in w.dynamic_agent.vip.peerlist().get(timeout=5)
        agents = {a["identity"]: a["uuid"] for a in w.list_agents()}
        assert agents[FAILOVER] == cluster.failover[name].uuid and agents[SERVICE] == cluster.service[name].uuid
        assert isinstance(w.agent_pid(agents[FAILOVER]), int)
        assert any("transition:" in line for line in cluster.log_lines(name)), f"no INFO lines in {p.log}"

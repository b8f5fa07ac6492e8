"""The console script the platform runs (``failover-agent``): the failover agent, or the witness.

One wheel carries both; the installed config's ``"agent_id": "witness"`` selects the witness. A config
that does not load starts the failover agent, which reports the error on the bus and manages nothing.
"""

from __future__ import annotations

import os
import sys

from volttron.utils import vip_main

from failover_agent import __version__
from failover_agent.agent import FailoverAgent
from failover_agent.check import main as check_main
from failover_agent.config import ConfigError, WitnessConfig
from failover_agent.config_file import load_agent_config
from failover_agent.witness import WitnessAgent


def main() -> None:
    """Console script ``failover-agent``: the failover agent, or the witness for ``agent_id: witness``;
    ``failover-agent --check CONFIG`` validates a config and exits (``failover_agent.check``)."""
    if sys.argv[1:2] and sys.argv[1] in ("-t", "--check", "-h", "--help"):
        raise SystemExit(check_main(sys.argv[1:]))
    try:
        config = load_agent_config(os.environ.get("AGENT_CONFIG"))
    except ConfigError:
        config = None  # FailoverAgent reports the error on the bus
    vip_main(WitnessAgent if isinstance(config, WitnessConfig) else FailoverAgent, version=__version__)


if __name__ == "__main__":
    main()

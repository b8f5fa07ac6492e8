"""``python -m failover_agent --check CONFIG``: validate an agent config (exit 0 valid, 2 invalid); see ``check``."""

from failover_agent.check import main

if __name__ == "__main__":
    raise SystemExit(main())

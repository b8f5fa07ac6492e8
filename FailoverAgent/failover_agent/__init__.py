"""failover_agent: the VOLTTRON failover agent (and its witness), built on failover_core."""

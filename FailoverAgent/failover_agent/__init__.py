"""failover_agent: the VOLTTRON failover agent (and its witness), built on failover_core.

``main`` is the console script; ``agent`` the failover agent's driver (I/O only) and ``decider`` its
decisions (``events`` in, a ``failover_core`` Step out, codes in ``codes``); ``witness`` the witness.
"""

__version__ = "0.1.0"

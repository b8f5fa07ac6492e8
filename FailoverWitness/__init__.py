"""FailoverWitness: the standalone witness, a small third vote on a third machine.

Nodes of one or more groups (a DockerFailover pair, a set of valets) send it signed heartbeats and ask
it, signed and nonce-bound, "is X alive, and which term did it last claim?". It answers only from what
it heard itself (``failover_core.witness_book.WitnessBook``): a restarted witness answers UNKNOWN until
it has listened for the group's ``down_after``. The protocol (messages, checks, both sides) is
``failover_core.witness_protocol``; here is only its I/O:
  ``config``  witness.toml / .json -> WitnessConfig (listen, port, groups with secret and timing)
  ``server``  aiohttp: POST /v1/heartbeat, POST /v1/query, GET /status, GET /health
  ``client``  WitnessClient: a node's asyncio client (heartbeat, query) for the failover agents
  ``cli``     ``failover-witness -c witness.toml [-t]`` (``python -m FailoverWitness``)
"""

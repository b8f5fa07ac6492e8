"""DockerFailover: active/passive Docker container failover between two hosts (HTTP heartbeats).

Pure logic (no I/O, fed events carrying a monotonic ``now``):
  ``events``      roles, the decider's events and actions (frozen dataclasses)
  ``decider``     PairNode: events update facts, one decision function per role returns a Step
  ``codes``       reason codes: TransitionCode (role changes), AlertCode (reports)
  ``containers``  container health from ``docker inspect``, restart-policy aware grace
  ``wire``        request/answer signing and verification (HMAC, timestamp, nonce, sender, order)
  ``config``      config.py via ``ast`` (never executed), TOML, JSON -> NodeConfig
The I/O side, ``shell``: ``agent`` (the asyncio loop, carries out each Step), ``http_api`` (aiohttp,
talks to the agent through the PairEndpoint protocol), ``status`` (GET /status JSON),
``docker_host`` (Docker SDK, event stream), ``term_store``. ``cli`` is the console entry; ``fence`` the
fence keeper process of standard mode (``python -m DockerFailover.fence``, standard library only). The test
bed (two dockerd in network namespaces) and the demo live in labs/ (``labs.docker``,
``labs.docker_demo``), not here.
"""

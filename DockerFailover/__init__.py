"""DockerFailover: active/passive Docker container failover between two hosts (HTTP heartbeats).

Pure logic (no I/O, fed events and a monotonic ``now``):
  ``pair``        roles, terms, heartbeat liveness, hand-over, split-brain and failback rules
  ``containers``  container health from ``docker inspect``, restart-policy aware grace
  ``wire``        request/answer signing and verification (HMAC, timestamp, nonce)
  ``config``      config.py via ``ast`` (never executed), TOML, JSON -> NodeConfig
The I/O side, ``shell``: ``agent`` (the asyncio loop), ``http_api`` (aiohttp), ``docker_host``
(Docker SDK, event stream), ``term_store``. ``cli`` is the console entry. The test bed (two dockerd
in network namespaces) and the demo live in labs/ (``labs.docker``, ``labs.docker_demo``), not here.
"""

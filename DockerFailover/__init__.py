"""DockerFailover: active/passive Docker container failover between two hosts (HTTP heartbeats).

Pure logic (no I/O, fed events and a monotonic ``now``):
  ``pair``        roles, terms, heartbeat liveness, hand-over, split-brain and failback rules
  ``containers``  container health from ``docker inspect``, restart-policy aware grace
  ``wire``        request/answer signing and verification (HMAC, timestamp, nonce)
  ``config``      config.py via ``ast`` (never executed), TOML, JSON -> NodeConfig
The I/O side, ``shell``: ``agent`` (the asyncio loop), ``http_api`` (aiohttp), ``docker_host``
(Docker SDK, event stream), ``term_store``. ``cli`` is the console entry; ``demo`` and
``two_host_lab`` (two dockerd in network namespaces) serve the demo, tests and benchmark.
"""

"""The I/O side of DockerFailover: Docker SDK, HTTP (aiohttp), term file, clock, the agent loop."""

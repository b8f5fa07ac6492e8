"""DockerFailover: active/passive Docker container failover between two hosts (HTTP heartbeats)."""

"""DockerFailover example config (mount it at /app/config.py, or pass --config).

Parsed with `ast`, never executed: only `name = literal` assignments are allowed.
Every top-level setting may be overridden per server inside `servers`.
"""

# timing, seconds
heartbeat_interval = 1.0          # how often each agent sends a heartbeat to the other
check_heartbeat_interval = 0.5    # periodic reconcile of container state (events are immediate)
heartbeat_timeout = 3.0           # silence after which the passive takes over (must exceed the interval)
startup_grace_period = 10.0       # at start: how long to wait for a silent peer; a started container's
                                  # time to pass its first health check
restart_grace_period = 10.0       # a container under Docker's restart policy gets this long to come back
stop_timeout = 10                 # graceful stop (SIGTERM) before Docker kills the container
request_timeout = 1.0             # timeout of every HTTP request to the peer

# the containers that must run on the active host (create them on both hosts, do not start them)
containers = ["web"]

# shared HMAC secret (same on both hosts; at least 16 characters)
secret = "change-me-to-a-long-random-string"

failback = False                  # True: when server1 is back and stays up for the hold-down, hand back to it
failback_hold_down = 60.0
notify = None                     # e.g. "/usr/local/bin/failover-notify" (args: server from to reason)

# standard mode (a third vote): without `witness` a cut link between the two hosts gives TWO actives.
# With a witness the active gives up its right to run a fencing margin (kill_bound + 0.35 s) before
# heartbeat_timeout; that lease must exceed two heartbeat intervals: with kill_bound 1.0 and heartbeats every
# 1 s, set heartbeat_timeout = 3.5 (`--check` warns below 3.36 s and refuses below 2.36 s).
# witness = {"url": "http://192.0.2.13:8790", "secret": "the witness group's secret",
#            "group": "docker-failover", "kill_bound": 1.0}
# term_file = "/run/docker-failover/term"   # the term, written before each start (bind-mount it read-only)

# the first server listed is preferred on a cold start of both
servers = {
    "server1": {"endpoint": "http://192.0.2.12:8700", "port": 8700},   # endpoint = the OTHER agent
    "server2": {"endpoint": "http://192.0.2.11:8700", "port": 8700},
}

"""`python -m DockerFailover`: same as the `docker-failover` console script."""

from DockerFailover.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

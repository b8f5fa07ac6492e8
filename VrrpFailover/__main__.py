"""`python -m VrrpFailover`: same as the `vrrp-failover` console script."""

from VrrpFailover.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

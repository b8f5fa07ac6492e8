"""`python -m FailoverWitness`: same as the `failover-witness` console script."""

from FailoverWitness.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

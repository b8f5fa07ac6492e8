"""`python -m HaValet`: same as the `ha-valet` console script."""

from HaValet.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

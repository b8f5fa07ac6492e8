"""bench: benchmarks that print figures, one module per system; `make bench BENCH=vrrp` runs
``python -m bench.vrrp`` from the repo root (so they import the test beds in labs/)."""

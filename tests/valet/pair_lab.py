"""The per-host valet pair of the tests: now ``labs.valet_pair_lab`` (shared with the chaos driver, labs.chaos.valet).
Re-exported here so the tests keep importing it from beside them."""

from labs.valet_pair_lab import PROCESS, A, B, Sampler, ServiceProbe, ValetPair

__all__ = ["PROCESS", "A", "B", "Sampler", "ServiceProbe", "ValetPair"]

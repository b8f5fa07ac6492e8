"""Error classes of failover_core, split like h11's: local misuse vs. remote misbehaviour.

- LocalUsageError: the driver called the core wrongly (a bug in our code): fix the caller.
- RemoteInputError: a peer sent something we must drop (forged, replayed, malformed): count it,
  log it, change nothing.
ConfigError (in ``config``) is the third kind: the operator's file is wrong.
"""


class FailoverCoreError(Exception):
    """Base class of every error failover_core raises on purpose."""


class LocalUsageError(FailoverCoreError):
    """The caller broke the core's contract (e.g. time went backwards, an illegal transition)."""


class RemoteInputError(FailoverCoreError):
    """Input from the network was rejected. ``reason`` is a stable short code for counters."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)

"""What the host's TCP does to a healed link: the retransmission ceiling (``net.ipv4.tcp_rto_max_ms``).

Heartbeats travel over ZeroMQ TCP connections that stay ESTABLISHED through a cut by a dropping firewall;
the kernel retransmits with exponential back-off (0.2, 0.4 ... s, up to ``tcp_rto_max_ms``, 120 s by
default), so after a cut of T seconds the first heartbeat crosses the healed link up to about T seconds
late. In simple mode both platforms run the managed agent that long after the heal (chaos, agent simple,
seed 1: 2.1-3.8 s; with the ceiling at 1 s: 0.7-1.2 s). A reconnect cannot help: the platform's ROUTER
keeps the old connection's identity until its own retransmissions give up. Linux >= 6.11 lets the host cap
the back-off; the value is read by each socket when it is made, so it must be set before the platforms
start. This module only reads it and says what it means; it never changes the host.
"""

from __future__ import annotations

from pathlib import Path

RTO_MAX = Path("/proc/sys/net/ipv4/tcp_rto_max_ms")
ADVISED_MS = 1000  # the smallest value the kernel accepts


def rto_warning(heartbeat_period: float, path: Path = RTO_MAX) -> str | None:
    """A sentence for the log when a healed cut may keep heartbeats back longer than two heartbeat periods."""
    try:
        value = int(path.read_text().strip())
    except FileNotFoundError:
        return ("this kernel has no net.ipv4.tcp_rto_max_ms (Linux < 6.11): after a cut link heals, TCP's "
                "retransmission back-off may hold heartbeats back for up to about the cut's length (in simple "
                "mode both platforms run the service that long)")
    except (OSError, ValueError) as e:
        return f"cannot read {path} ({type(e).__name__}): the delay of heartbeats after a healed cut is unknown"
    if value <= max(ADVISED_MS, 2000 * heartbeat_period):
        return None
    return (f"net.ipv4.tcp_rto_max_ms is {value} ms: after a cut link heals, heartbeats may arrive up to "
            f"{value / 1000:g} s late (TCP back-off; in simple mode both platforms run the service meanwhile); "
            f"set it to {ADVISED_MS} in /etc/sysctl.d before the platforms start (docs/failoveragent.md, "
            "'Host settings')")

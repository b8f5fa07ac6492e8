"""labs.delayer: a slow link without sch_netem. Holds each packet of an NFQUEUE D ms (+- jitter), then lets it go.

``python -m labs.delayer --queue N --delay-ms D [--jitter-ms J] [--seed S] [--stats FILE]``, run inside a
namespace where an iptables rule sends packets to queue ``N`` (``-j NFQUEUE --queue-num N --queue-bypass``;
``labs.netns.NetnsSegment.delay`` starts both). Each packet is taken from the queue when it arrives, given a due
time (arrival + D + a uniform draw in [-J, J], never before its arrival) and put on a heap; at its due time it gets
its verdict, NF_ACCEPT, and goes on unchanged. Without jitter the order is kept (equal delays, ties by arrival);
with it packets may pass each other, as on netem. Only the packets' metadata are copied to this process
(``COPY_META``): nothing is read or changed.

It prints ``ready`` on stdout once the queue is bound. SIGTERM or SIGINT: every packet still held is let go at
once, the statistics are written as JSON to ``--stats`` (packets, max/mean hold in ms, max lateness past the due
time, packets released early at the end, the kernel's drop counters of the queue), and it exits 0. A queue that
overflows (``--max-len`` packets held) drops in the kernel (counted in ``queue_dropped``); if this process dies,
``--queue-bypass`` on the rule lets packets pass undelayed (those held at that moment are lost).

Why the ``NetfilterQueue`` package (libnetfilter_queue) and not a hand-written nfnetlink binding: the verdict may
be given after the callback returns (the packet is kept by id), which is all a delayer needs; measured here, a
ping every 2 ms through a 50 ms delay took 50.2-51.3 ms (mean 50.9: the poll timer's millisecond steps), 10 pings
every 50 ms without the delay 0.04-0.07 ms. A binding of our own would only repeat libnetfilter_queue.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

from labs import importable_env


class NetnsSegment(Protocol):
    """What a Delay needs of ``labs.netns.NetnsSegment`` (a Protocol: netns imports this module, not back)."""

    def ns(self, key: str) -> str: ...
    def popen(self, key: str, argv: list[str], **kw: Any) -> subprocess.Popen[str]: ...
    def queue_rule(self, key: str, queue: int, on: bool = True) -> None: ...

QUEUE_STATS = "/proc/self/net/netfilter/nfnetlink_queue"  # per network namespace: the reader's


def queue_counters(queue: int) -> dict[str, int]:
    """The kernel's counters of queue ``queue`` in this process's namespace (empty if it is not bound)."""
    try:
        lines = Path(QUEUE_STATS).read_text().splitlines()
    except OSError:
        return {}
    for line in lines:
        f = line.split()
        if f and int(f[0]) == queue and len(f) >= 8:
            return {"queue_total": int(f[2]), "queue_dropped": int(f[5]), "user_dropped": int(f[6]),
                    "id_sequence": int(f[7])}
    return {}


class Holder:
    """The heap of held packets and the figures; ``release(now)`` lets every due packet go."""

    def __init__(self, delay_ms: float, jitter_ms: float, rng: random.Random) -> None:
        self.delay, self.jitter, self.rng = delay_ms / 1000, jitter_ms / 1000, rng
        self.heap: list[tuple[float, int, float, Any]] = []
        self.seq = 0
        self.packets = 0
        self.max_hold = self.total_hold = self.max_late = 0.0
        self.early = 0

    def hold(self, packet: Any, now: float) -> None:
        extra = self.rng.uniform(-self.jitter, self.jitter) if self.jitter else 0.0
        heapq.heappush(self.heap, (now + max(0.0, self.delay + extra), self.seq, now, packet))
        self.seq += 1

    def next_due(self) -> float | None:
        return self.heap[0][0] if self.heap else None

    def release(self, now: float, *, all_: bool = False) -> None:
        while self.heap and (all_ or self.heap[0][0] <= now):
            due, _, arrived, packet = heapq.heappop(self.heap)
            packet.accept()
            held = now - arrived
            self.packets += 1
            self.total_hold += held
            self.max_hold = max(self.max_hold, held)
            if now >= due:
                self.max_late = max(self.max_late, now - due)
            else:
                self.early += 1

    def stats(self) -> dict[str, Any]:
        return {"packets": self.packets, "max_hold_ms": round(self.max_hold * 1000, 2),
                "mean_hold_ms": round(self.total_hold / self.packets * 1000, 2) if self.packets else None,
                "max_late_ms": round(self.max_late * 1000, 2), "released_early": self.early}


class DelayError(RuntimeError):
    """The delayer did not start (or its rule could not be set); the message has its stderr."""


class Delay:
    """One delay in force: the delayer process in ``key``'s namespace (ended by PID) and its NFQUEUE rule.
    ``start()`` waits for the queue to be bound before the rule goes in (so the fault is in force when it
    returns); ``stop()`` removes the rule first (nothing new is queued), then SIGTERMs the delayer, which lets
    the packets it still holds go at once (early, and packets sent after the rule went may pass them: netem's
    removal drops them instead), and returns its figures. ``stop()`` never raises; a second call returns {}."""

    def __init__(self, net: NetnsSegment, key: str, queue: int, delay_ms: float, jitter_ms: float = 0.0, *,
                 seed: int = 0, stats: Path | None = None, ready_timeout: float = 10.0) -> None:
        self.net, self.key, self.queue = net, key, queue
        self.delay_ms, self.jitter_ms, self.seed = delay_ms, jitter_ms, seed
        self._own_stats = stats is None
        self.stats_path = stats or Path(tempfile.mkstemp(prefix=f"delayer-{queue}-", suffix=".json")[1])
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.rule = False

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def start(self) -> Delay:
        self.stats_path.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "labs.delayer", "--queue", str(self.queue), "--delay-ms", f"{self.delay_ms:g}",
                "--jitter-ms", f"{self.jitter_ms:g}", "--seed", str(self.seed), "--stats", str(self.stats_path),
                "--rt"]
        self.proc = self.net.popen(self.key, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env=importable_env())
        try:
            assert self.proc.stdout is not None
            ready, _, _ = select.select([self.proc.stdout], [], [], self.ready_timeout)
            line = self.proc.stdout.readline() if ready else ""
            if line.strip() != "ready":
                self.proc.kill()
                _, err = self.proc.communicate(timeout=5)
                raise DelayError(f"labs.delayer in {self.net.ns(self.key)} (queue {self.queue}) did not start: "
                                 f"{(line + err).strip() or 'no answer in ' + str(self.ready_timeout) + ' s'}")
            self.net.queue_rule(self.key, self.queue)
            self.rule = True
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> dict[str, Any]:
        if self.proc is None:
            return {}
        proc, self.proc = self.proc, None
        out: dict[str, Any] = {"delayer_pid": proc.pid}
        if self.rule:
            try:
                self.net.queue_rule(self.key, self.queue, on=False)
            except Exception as e:  # the namespace may be gone already
                out["rule_removal"] = str(e)
            self.rule = False
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=5)
        out["delayer_rc"] = proc.returncode
        try:
            out.update(json.loads(self.stats_path.read_text()))
        except (OSError, ValueError) as e:
            out["stats"] = f"none: {e}"
        if self._own_stats:
            self.stats_path.unlink(missing_ok=True)
        return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m labs.delayer", description=__doc__.splitlines()[0])
    ap.add_argument("--queue", type=int, required=True, help="the NFQUEUE number (0-65535)")
    ap.add_argument("--delay-ms", type=float, required=True)
    ap.add_argument("--jitter-ms", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0, help="seeds the jitter draws")
    ap.add_argument("--stats", type=Path, help="write the figures here as JSON at the end")
    ap.add_argument("--max-len", type=int, default=8192, help="packets the kernel holds for us before it drops")
    ap.add_argument("--rt", action="store_true", help="real-time priority (root): the hold is not stretched "
                    "by a loaded machine's scheduler")
    args = ap.parse_args(argv)
    if not 0 <= args.queue <= 65535 or args.delay_ms < 0 or args.jitter_ms < 0:
        print("delayer: --queue must be 0-65535, --delay-ms and --jitter-ms >= 0", file=sys.stderr)
        return 2
    from netfilterqueue import COPY_META, NetfilterQueue

    if args.rt:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        except OSError as e:
            print(f"delayer: no real-time priority: {e}", file=sys.stderr)
    holder = Holder(args.delay_ms, args.jitter_ms, random.Random(args.seed))
    stop_r, stop_w = os.pipe()
    os.set_blocking(stop_w, False)
    signal.set_wakeup_fd(stop_w)
    stopping = False

    def on_signal(_sig: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    nfq = NetfilterQueue()
    nfq.bind(args.queue, lambda p: holder.hold(p, time.monotonic()), max_len=args.max_len, mode=COPY_META)
    fd = nfq.get_fd()
    os.set_blocking(fd, False)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    poller.register(stop_r, select.POLLIN)
    print("ready", flush=True)
    try:
        while not stopping:
            due = holder.next_due()
            timeout = None if due is None else max(0, int((due - time.monotonic()) * 1000 + 0.999))
            for got, _ in poller.poll(timeout):
                if got == fd:
                    nfq.run(block=False)
            holder.release(time.monotonic())
    finally:
        holder.release(time.monotonic(), all_=True)
        stats = {**holder.stats(), **queue_counters(args.queue), "queue": args.queue, "delay_ms": args.delay_ms,
                 "jitter_ms": args.jitter_ms}
        nfq.unbind()
        if args.stats is not None:
            tmp = args.stats.with_suffix(".tmp")
            tmp.write_text(json.dumps(stats))
            tmp.replace(args.stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())

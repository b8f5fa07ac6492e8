"""`make demo SYSTEM=vrrp`: ours as Master, keepalived as Backup, a client pinging the VIP.

Three namespaces (made and removed here): a runs VrrpFailover (priority 150), b runs keepalived
(priority 100; another VrrpFailover with --peer ours), c pings the virtual address every 10 ms.
The demo crashes the Master (SIGKILL + cable cut) and prints the gap in ping replies, brings ours back (it preempts),
then stops it with SIGTERM (priority-0 advert) and prints that gap too. Needs root.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from labs.vrrp import VIP, Lab, RouterProcess, keepalived_config, ours_config, wait_for
from VrrpFailover.machine import master_down_interval, skew_time

REPLY = re.compile(r"^\[(\d+\.\d+)\] .*icmp_seq=(\d+)")


class Pinger:
    """`ping -D -i 0.01` from the client namespace; reply times come from its output."""

    def __init__(self, lab: Lab, host: str, interval: float) -> None:
        self.interval = interval
        self.out = lab.dir / "ping.out"
        with open(self.out, "wb") as f:
            self.proc = subprocess.Popen(["ip", "netns", "exec", lab.ns(host), "ping", "-n", "-D", "-i",
                                          f"{interval:g}", "-W", "1", str(VIP)], stdout=f,
                                         stderr=subprocess.STDOUT)

    def replies(self) -> list[tuple[float, int]]:
        return [(float(m.group(1)), int(m.group(2))) for line in self.out.read_text().splitlines()
                if (m := REPLY.match(line))]

    def gap_after(self, t_wall: float) -> tuple[float, int]:
        """Longest silence between two replies around ``t_wall`` and how many requests went unanswered."""
        r = self.replies()
        before = [x for x in r if x[0] <= t_wall]
        after = [x for x in r if x[0] > t_wall]
        if not before or not after:
            return float("nan"), -1
        return after[0][0] - before[-1][0], after[0][1] - before[-1][1] - 1

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def say(msg: str) -> None:
    print(msg, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m labs.vrrp_demo", description=__doc__.splitlines()[0])
    p.add_argument("--peer", choices=["keepalived", "ours"], default="keepalived")
    p.add_argument("--advert-interval", type=float, default=0.1)
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("the demo needs root (network namespaces, raw sockets)", file=sys.stderr)
        return 1
    if args.peer == "keepalived" and shutil.which("keepalived") is None:
        say("keepalived not found: using two of ours")
        args.peer = "ours"
    adv = args.advert_interval
    mdi, skew = master_down_interval(100, adv, 3), skew_time(100, adv, 3)
    with Lab(("a", "b", "c")) as lab:
        say(f"namespaces {lab.ns('a')} (ours, priority 150), {lab.ns('b')} ({args.peer}, priority 100), "
            f"{lab.ns('c')} (client); VIP {VIP}, advert interval {adv:g}s")
        ours = lab.start_ours("a", ours_config(priority=150, advert_interval=adv))
        ours.wait_state("Master", 10)
        peer: RouterProcess = (lab.start_keepalived("b", keepalived_config(priority=100, advert_int=adv))
                               if args.peer == "keepalived" else
                               lab.start_ours("b", ours_config(priority=100, advert_interval=adv)))
        peer.wait_state("Backup", 10)
        say(f"ours is Master on a, {args.peer} is Backup on b; VIP held by {lab.holders()}")
        ping = Pinger(lab, "c", 0.01)
        try:
            wait_for(lambda: len(ping.replies()) > 20, 5, what="ping replies")
            say(f"client pings {VIP} every 10 ms ... host a crashes: SIGKILL ours and cut a's cable")
            t_wall = time.time()
            ours.kill(signal.SIGKILL)
            lab.set_link("a", False)  # else a's kernel keeps answering for the VIP the dead process left
            peer.wait_state("Master", mdi + 5)
            time.sleep(0.5)
            gap, lost = ping.gap_after(t_wall)
            say(f"  {args.peer} took over: reply gap {gap * 1000:.0f} ms, {lost} pings lost "
                f"(RFC: takeover Master_Down_Interval {mdi * 1000:.0f} ms after the last advert; the crash "
                f"came 0-{adv * 1000:.0f} ms after that advert)")
            say("host a comes back: restart ours; it removes the VIP the crash left behind, then preempts")
            lab.set_link("a", True)
            ours = lab.start_ours("a", ours_config(priority=150, advert_interval=adv))
            ours.wait_state("Master", 10)
            peer.wait_state("Backup", 5)
            wait_for(lambda: lab.holders() == ["a"], 5, what="VIP on a only")
            time.sleep(0.5)
            say(f"  ours is Master again; VIP held by {lab.holders()} ... SIGTERM ours (priority-0 advert)")
            t_wall = time.time()
            ours.kill(signal.SIGTERM)
            peer.wait_state("Master", 5)
            time.sleep(0.5)
            gap, lost = ping.gap_after(t_wall)
            say(f"  {args.peer} took over: reply gap {gap * 1000:.0f} ms, {lost} pings lost "
                f"(RFC Skew_Time {skew * 1000:.0f} ms)")
        finally:
            ping.stop()
        say(f"ours exited with {ours.wait(5)}; tearing down the namespaces")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The asyncio driver: owns the sockets, netlink, the clock, signals and the trackers' I/O.

The routers decide (``machine.VrrpRouter``: roles, priorities and Fault from tracker readings, when to
send adverts and gratuitous ARP); the driver turns I/O into their events and carries out each
returned Step through ``failover_core.shell.carry_out`` (logs the reason and transitions, hands
transitions to the instance's notify dispatcher, runs each action with this driver's handler).

One event loop for every virtual router of the process. Each router asks for one wake-up time
(``SetTimer``, always the step's last action); the driver keeps one ``call_at`` handle per
router and re-arms it when the wanted time moves earlier, and after a read of queued adverts when it
moved later too (otherwise a handle that fires early is a no-op for the router, which then asks again). So an
idle Backup wakes about once per Master_Down_Interval and otherwise sleeps in epoll: no fixed tick, no busy
loop. The timers and the VRRP sockets are on the "hot loop": the CLI's ``lean_loop.LeanLoop`` (an epoll loop
that steps asyncio only when asyncio has work: netlink, trackers, signals), or asyncio's own loop when none is given.
Both clocks are time.monotonic().

Adverts come from one raw socket per interface and address family (``netio.VrrpSocket``; for IPv6
instances ``netio6.Vrrp6Socket``, with unsolicited neighbour advertisements in place of gratuitous
ARP: the interface runtime of IPv6 is keyed ``IFNAME/ipv6``), are decoded by the codec
and dispatched by VRID with their kernel arrival time; whatever the codec or a router rejects is
counted per reason. While every router of an interface is Backup the driver does not wake for each
advert: the kernel queues them (with receive timestamps) and the driver reads the queue when a
router's deadline comes (the timer then usually just moves on; when the queue is nothing but the last routine
advert again, one loop reads it, ``_drain_repeats``) or when a priority-0 advert arrives
(a filtered second socket, ``netio.PriorityZeroSocket``, wakes it). Decisions are the same as
reading each advert at once, since each is fed with its own arrival time; an idle Backup wakes
about once per Master_Down_Interval - advert interval instead of once per advert. While any router
of the interface is Master (or Fault/Initialize) each advert is read at once. With the CLI's LeanLoop and the C
extension built, an idle IPv4 router does not wake Python between decisions at all: a lone Backup's repeats and a
routine Master's sends are done in C (``_idlewait``: ``_wait_natively``, ``_send_natively``) until anything else
happens, and the router is then told once (docs/vrrp.md "The idle waits in C"). SIGTERM and
SIGINT go through the loop's signal support and shut every router down at once (priority-0
advert, addresses removed) before the loop stops.

A sync group's members are fed through their group (``sync_group.SyncGroup``), which returns every member's
step (its orders to the others included) and its own; the driver carries each out as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import TYPE_CHECKING, Any, Protocol

from failover_core.errors import RemoteInputError
from failover_core.shell.carry_out import DecisionLog, carry_out
from failover_core.shell.notify import NotifyDispatcher, SubprocessHookRunner
from failover_core.step import Step
from failover_core.transitions import Transition
from VrrpFailover.codes import AdvertDropCode, PacketDropCode
from VrrpFailover.events import (
    Action,
    AddAddresses,
    AdvertIn,
    Deadline,
    Event,
    RemoveAddresses,
    SendAdvert,
    SendGarp,
    SetTimer,
    Shutdown,
    Startup,
    TrackResult,
)
from VrrpFailover.firewall import NftFirewall
from VrrpFailover.group_notify import group_hook_runner
from VrrpFailover.machine import VrrpRouter, VrrpState
from VrrpFailover.netio import (
    AddressManager,
    AdvertSender,
    GarpSender,
    InterfaceFacts,
    PriorityZeroSocket,
    VrrpSocket,
    address_family,
)
from VrrpFailover.netio6 import NaSender, PriorityZero6Socket, Vrrp6Socket, open_ipv6
from VrrpFailover.notify import keepalived_args
from VrrpFailover.packet import Advert, Received, encode
from VrrpFailover.rtnetlink import RtNetlink
from VrrpFailover.settings import InstanceRules, SyncGroupRules
from VrrpFailover.sync_group import SyncGroup
from VrrpFailover.track import InterfaceWatcher, TrackFileRunner, TrackScriptRunner
from VrrpFailover.vmac import VmacLink, VmacManager

try:  # an idle IPv4 Backup's wait in C (VrrpFailover/_idlewait.c, built by setup.py when it can be)
    from VrrpFailover import _idlewait as native_idle
except ImportError:  # not built: the Python wait (measured reason for both: docs/vrrp.md "The Backup's wake-up")
    native_idle = None

if TYPE_CHECKING:  # (imported at run time only with use_vmac: VrrpDaemon.run)
    from pyroute2 import AsyncIPRoute

log = logging.getLogger("vrrp")


class TimerHandleLike(Protocol):
    def cancel(self) -> None: ...


class HotLoop(Protocol):
    """What the driver asks of the loop that runs its timers and VRRP sockets (asyncio's or a LeanLoop)."""

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> TimerHandleLike: ...
    def add_reader(self, fd: int, callback: Callable[..., Any], *args: Any) -> None: ...
    def remove_reader(self, fd: int) -> bool: ...

DECODED_CACHE = 256  # decoded adverts remembered per interface (all forgotten when full: a flood of distinct ones)


def arrival_time(kernel_time: float | None, *, offset: float, now: float, floor: float, stepped: bool) -> float:
    """Monotonic arrival time of a queued advert from its kernel receive time (CLOCK_REALTIME).

    ``offset`` = wall - monotonic now; the result is kept within [floor (the previous read), now];
    with no kernel time, or when the wall clock was stepped since the previous read, it is ``now``
    (a late time can only delay a takeover, an early one could cause a false one)."""
    if kernel_time is None or stepped:
        return now
    return min(now, max(floor, kernel_time - offset))


@dataclass
class InterfaceRuntime:
    facts: InterfaceFacts
    sock: VrrpSocket | Vrrp6Socket
    garp: GarpSender | NaSender
    wake: PriorityZeroSocket | PriorityZero6Socket
    routers: dict[int, Instance] = field(default_factory=dict)  # by VRID
    drops: Counter[str] = field(default_factory=Counter)
    received: int = 0
    reading: bool = False  # is the VrrpSocket registered with the loop (read each advert at once)?
    last_drain: float = 0.0  # monotonic time of the previous drain
    clock_offset: float | None = None  # time.time() - time.monotonic() at the previous drain
    wakeups: int = 0
    decoded: dict[Any, Received] = field(default_factory=dict)  # by the socket's cache_key: decode is pure
    native_waits: int = 0  # idle waits done in C (_wait_natively)
    repeats: int = 0  # adverts not fed: the same advert again, between two that were fed (see _drain_queue)
    held: list[tuple[Any, float | None]] = field(default_factory=list)  # read by _drain_repeats, for _drain_queue


@dataclass
class Instance:
    config: InstanceRules
    router: VrrpRouter
    iface: InterfaceRuntime
    decisions: DecisionLog
    handlers: dict[type, Callable[[Any], None]] = field(default_factory=dict)  # by action type
    timer: TimerHandleLike | None = None
    timer_at: float | None = None
    notify: NotifyDispatcher | None = None
    trackers: list[TrackScriptRunner | TrackFileRunner] = field(default_factory=list)
    sent: int = 0
    send_errors: int = 0
    priority_at: dict[int, int] = field(default_factory=dict)  # by transition seq, until its notify ran
    group: GroupRuntime | None = None  # its sync group (the group decides with it)
    vmac: VmacLink | None = None  # use_vmac: its addresses go on this macvlan (VrrpFailover.vmac)
    vmac_garp: GarpSender | None = None  # vmac_xmit_base: gratuitous ARP from the macvlan, adverts from the iface
    base_sender: AdvertSender | None = None  # use_vmac (not xmit_base): the stepping-down advert leaves from below
    repeat_of: Received | None = None  # the last event fed: this advert, routine (see _drain_queue), else None
    repeat_key: Any = None  # the socket's cache_key of repeat_of's datagram (None: not cacheable)
    _adverts: dict[tuple[int, IPv4Address | IPv6Address], bytes] = field(default_factory=dict)
    _wire: dict[int, tuple[tuple[bytes, Any], ...]] = field(default_factory=dict)  # by priority: (bytes, sockaddr)

    @property
    def address_index(self) -> int:
        """The interface its virtual addresses go on: its macvlan with use_vmac, else the VRRP interface."""
        return self.vmac.index if self.vmac is not None else self.iface.facts.index

    @property
    def garp(self) -> GarpSender | NaSender:
        return self.vmac_garp if self.vmac_garp is not None else self.iface.garp

    def advert_bytes(self, priority: int, dst: IPv4Address | IPv6Address) -> bytes:
        key = (priority, dst)
        data = self._adverts.get(key)
        if data is None:
            adv = Advert(version=self.config.version, vrid=self.config.vrid, priority=priority,
                         interval=self.config.advert_interval, addresses=self.config.addresses)
            data = self._adverts[key] = encode(adv, self.iface.facts.primary_ip, dst)
        return data


def runtime_key(config: InstanceRules) -> str:
    """The interface runtime an instance uses: one per interface and address family; with use_vmac (and not
    vmac_xmit_base) its macvlan, where the adverts of the virtual MAC come and go (VrrpFailover.vmac)."""
    if config.vmac_name is not None and not config.vmac_xmit_base:
        return config.vmac_name
    return config.interface_name if config.family == 4 else f"{config.interface_name}/ipv6"


@dataclass
class GroupRuntime:
    """A sync group: its decider (which owns the members' routers), its log and its notify hooks."""

    sync: SyncGroup
    members: dict[str, Instance]
    decisions: DecisionLog
    notify: NotifyDispatcher | None = None


class VrrpDaemon:
    _wall = staticmethod(time.time)  # the clock of the kernel's receive times (CLOCK_REALTIME)

    def __init__(self, configs: tuple[InstanceRules, ...], *, status_file: str | None = None,
                 sync_groups: dict[str, SyncGroupRules] | None = None, hot_loop: HotLoop | None = None,
                 native_wait: bool = True) -> None:
        self.configs = configs
        self.sync_groups = sync_groups or {}
        self.groups: dict[str, GroupRuntime] = {}
        self.status_file = status_file
        self.instances: list[Instance] = []
        self.interfaces: dict[str, InterfaceRuntime] = {}
        self.addresses: AddressManager | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # the routers' timers and the VRRP sockets: a LeanLoop (``lean_loop``; the CLI's) or else the asyncio loop
        self._hot: HotLoop | None = hot_loop
        # the C idle wait needs a hot loop that can say how long it may block (LeanLoop.quiet_until)
        self._native = native_idle if native_wait and hasattr(hot_loop, "quiet_until") else None
        self._stopped: asyncio.Event | None = None
        self._stopping = False
        self._netlink_q: asyncio.Queue[tuple[Instance, str, IPv4Interface | IPv6Interface]] = asyncio.Queue()
        self._netlink_task: asyncio.Task[None] | None = None
        self._arm_later: dict[int, tuple[Instance, float | None]] | None = None  # during a drain: armed at the end
        self.interface_watcher: InterfaceWatcher | None = None
        self.vmacs: VmacManager | None = None
        self.firewall = NftFirewall(configs)

    # -- set-up / tear-down ------------------------------------------------------------------
    async def _open(self, nl: RtNetlink, ipr: AsyncIPRoute | None) -> None:
        self.addresses = AddressManager(nl)
        self.firewall.start()  # before any socket joins 224.0.0.18 through a macvlan (its IGMP rule)
        if ipr is not None:
            self.vmacs = VmacManager(ipr)
        vmacs: dict[str, VmacLink] = {}  # by instance name
        for c in self.configs:
            if c.vmac_name is not None:
                assert self.vmacs is not None
                idx = nl.link_lookup(ifname=c.interface_name)
                if not idx:
                    raise OSError(f"no interface {c.interface_name}")
                vmacs[c.name] = await self.vmacs.create(c.vmac_name, c.vmac_address, c.interface_name, idx[0])
        vmac_of_key = {runtime_key(c): vmacs[c.name] for c in self.configs if runtime_key(c) == c.vmac_name}
        vips_by_if: dict[str, set[Any]] = {}
        for c in self.configs:  # an address owner's addresses are the interface's own: they may be the primary
            vips_by_if.setdefault(runtime_key(c), set()).update(() if c.is_address_owner else c.addresses)
        for key, vips in vips_by_if.items():
            name, _, ipv6 = key.partition("/")
            if ipv6:
                facts, sock6, na, wake6 = await open_ipv6(nl, name, vips)
                self.interfaces[key] = InterfaceRuntime(facts=facts, sock=sock6, garp=na, wake=wake6)
                continue
            vmac = vmac_of_key.get(key)
            if vmac is None:
                facts = await InterfaceFacts.read(nl, name, vips)
            else:  # adverts from the base interface's address, through the macvlan (its index, its MAC)
                facts = replace(await InterfaceFacts.read(nl, vmac.base, vips), name=vmac.name, index=vmac.index,
                                mac=vmac.mac)
            sock = VrrpSocket(facts)
            try:
                garp = GarpSender(facts)
            except OSError:
                sock.close()
                raise
            try:
                wake = PriorityZeroSocket(facts)
            except OSError:
                sock.close()
                garp.close()
                raise
            self.interfaces[key] = InterfaceRuntime(facts=facts, sock=sock, garp=garp, wake=wake)
        group_of = {m: g for g, gc in self.sync_groups.items() for m in gc.members}
        for c in self.configs:
            rt = self.interfaces[runtime_key(c)]
            inst = Instance(config=c, router=VrrpRouter(c, rt.facts.primary_ip, sync_group=group_of.get(c.name)),
                            iface=rt, decisions=DecisionLog(log, c.name, rate_limited=AdvertDropCode))
            inst.vmac = vmacs.get(c.name)
            if inst.vmac is not None and c.vmac_xmit_base:
                v = inst.vmac
                inst.vmac_garp = GarpSender(replace(rt.facts, name=v.name, index=v.index, mac=v.mac))
            elif inst.vmac is not None:
                v = inst.vmac
                inst.base_sender = AdvertSender(replace(rt.facts, name=v.base, index=v.base_index))
            inst.handlers = self._handlers(inst)
            if c.notify:
                args_for = None
                if c.notify_args == "keepalived":
                    args_for = functools.partial(self._keepalived_notify_args, inst)
                inst.notify = NotifyDispatcher(SubprocessHookRunner(c.notify, args_for=args_for),
                                               name=f"notify-{c.name}")
            rt.routers[c.vrid] = inst
            self.instances.append(inst)
        self._open_groups()
        await self._remove_leftovers()

    def _open_groups(self) -> None:
        by_name = {i.config.name: i for i in self.instances}
        for name, gc in self.sync_groups.items():
            members = {m: by_name[m] for m in gc.members}
            hooks = group_hook_runner(gc)
            g = GroupRuntime(sync=SyncGroup(name, gc, {m: i.router for m, i in members.items()}), members=members,
                             decisions=DecisionLog(log, f"group {name}"),
                             notify=NotifyDispatcher(hooks, name=f"notify-group-{name}") if hooks else None)
            for inst in members.values():
                inst.group = g
            self.groups[name] = g

    async def _remove_leftovers(self) -> None:
        """A crash must not leave our addresses behind: remove the ones present before going Backup."""
        assert self.addresses is not None
        for inst in self.instances:
            if inst.router.owner:
                continue
            where = {inst.address_index: inst.vmac.name if inst.vmac else inst.iface.facts.name}
            if inst.vmac is not None:  # (a run without use_vmac left them on the interface below)
                where[inst.vmac.base_index] = inst.vmac.base
            for index, ifname in where.items():
                present = await self.addresses.present(index, address_family(inst.config.family))
                for iface in inst.config.ip_addresses:
                    if iface.ip in present and await self.addresses.remove(index, iface):
                        log.warning("%s: removed left-over address %s from %s before start", inst.config.name,
                                    iface, ifname)

    def _close(self) -> None:
        for inst in self.instances:
            if inst.timer is not None:
                inst.timer.cancel()
            if inst.notify is not None:
                inst.notify.close(timeout=5.0)
        for g in self.groups.values():
            if g.notify is not None:
                g.notify.close(timeout=5.0)
        for rt in self.interfaces.values():
            if self._hot is not None:
                with contextlib.suppress(Exception):
                    self._hot.remove_reader(rt.sock.fileno())
                with contextlib.suppress(Exception):
                    self._hot.remove_reader(rt.wake.fileno())
            rt.sock.close()
            rt.garp.close()
            rt.wake.close()
        for inst in self.instances:
            if inst.vmac_garp is not None:
                inst.vmac_garp.close()
            if inst.base_sender is not None:
                inst.base_sender.close()

    async def run(self) -> int:
        """Netlink through our ``rtnetlink`` (addresses, interface facts); pyroute2 only for the ``use_vmac``
        macvlans, imported only when a config has one (its resident memory: VrrpFailover.rtnetlink)."""
        with RtNetlink() as nl:
            if all(c.vmac_name is None for c in self.configs):
                return await self._run(nl, None)
            from pyroute2 import AsyncIPRoute

            async with AsyncIPRoute() as ipr:
                return await self._run(nl, ipr)

    async def _run(self, nl: RtNetlink, ipr: AsyncIPRoute | None) -> int:
        loop = self._loop = asyncio.get_running_loop()
        if self._hot is None:
            self._hot = loop
        self._stopped = asyncio.Event()
        try:
            await self._open(nl, ipr)
            self._netlink_task = loop.create_task(self._netlink_worker(), name="netlink")
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop, sig.name)
            loop.add_signal_handler(signal.SIGUSR1, self._dump_status, "SIGUSR1")
            for rt in self.interfaces.values():
                rt.last_drain = loop.time()
                self._hot.add_reader(rt.wake.fileno(), self._on_priority_zero, rt)
                self._set_reading(rt, True)
            for inst in self.instances:
                log.info("%s: vrid %d v%d on %s (source %s), priority %d, advert_interval %gs, addresses %s",
                         inst.config.name, inst.config.vrid, inst.config.version, inst.iface.facts.name,
                         inst.iface.facts.primary_ip, inst.config.priority, inst.config.advert_interval,
                         ", ".join(map(str, inst.config.ip_addresses)))
            self._start_trackers(loop)  # files and interfaces are read once before Startup: it sees them
            for inst in self.instances:
                self._feed(inst, Startup(now=loop.time()))
                for runner in inst.trackers:
                    runner.start()
            self._write_status()
            await self._stopped.wait()
        finally:
            if not self._stopping:
                self.stop("exception")
            for inst in self.instances:
                for runner in inst.trackers:
                    await runner.stop()
            if self.interface_watcher is not None:
                self.interface_watcher.close()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
                loop.remove_signal_handler(sig)
            if self._netlink_task is not None:
                try:
                    await asyncio.wait_for(self._netlink_q.join(), 5.0)
                except TimeoutError:
                    log.error("address changes still pending after 5s at exit")
                self._netlink_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._netlink_task
            self._close()
            await self._remove_vmacs_and_rules()
        return 0

    async def _remove_vmacs_and_rules(self) -> None:
        """At exit, after the addresses went: the macvlans (their sockets are closed) and the nftables tables."""
        if self.vmacs is not None:
            try:
                await self.vmacs.remove_all()
            except Exception as e:
                log.error("cannot remove the virtual MAC interfaces: %s", e)
        try:
            self.firewall.stop()
        except Exception as e:
            log.error("cannot remove the packet filter rules: %s", e)

    def stop(self, why: str = "stop") -> None:
        """Shut every router down now: priority-0 adverts and address removal happen in this call."""
        if self._stopping:
            return
        self._stopping = True
        log.info("stopping (%s)", why)
        now = self._loop.time() if self._loop else 0.0
        for inst in self.instances:
            self._feed(inst, Shutdown(now=now))
        self._write_status()
        if self._stopped is not None:
            self._stopped.set()

    @staticmethod
    def _keepalived_notify_args(inst: Instance, t: Transition) -> list[str]:
        """(Runs in the notify worker thread: a dict pop is atomic.)"""
        return keepalived_args(t, inst.priority_at.pop(t.seq, inst.router.priority))

    # -- events in ---------------------------------------------------------------------------
    def _set_reading(self, rt: InterfaceRuntime, on: bool) -> None:
        if on == rt.reading or self._hot is None:
            return
        if on:
            self._hot.add_reader(rt.sock.fileno(), self._on_readable, rt)
        else:
            self._hot.remove_reader(rt.sock.fileno())
        rt.reading = on

    def _update_reading(self, rt: InterfaceRuntime) -> None:
        """Read each advert at once unless every router of the interface is Backup."""
        self._set_reading(rt, self._stopping or any(i.router.state is not VrrpState.BACKUP
                                                    for i in rt.routers.values()))

    def _on_readable(self, rt: InterfaceRuntime) -> None:
        rt.wakeups += 1
        self._drain(rt, limit=512)  # bounded: let timers run under a flood; the fd stays registered

    def _on_priority_zero(self, rt: InterfaceRuntime) -> None:
        rt.wakeups += 1
        rt.wake.discard_all()
        self._drain(rt)

    def _drain(self, rt: InterfaceRuntime, limit: int | None = None) -> None:
        """Read queued adverts and feed each to its router with its kernel arrival time.

        Arrival times come from the kernel (CLOCK_REALTIME) mapped to the monotonic clock; they are
        kept within [previous drain, now] and, if the wall clock was stepped since the previous drain
        (offset moved by more than 1 ms), replaced by ``now``: a late time can only delay a takeover,
        an early one could cause a false one."""
        now, offset, stepped = self._clock(rt)
        rt.clock_offset = offset
        floor = rt.last_drain
        rt.last_drain = now
        self._arm_later = {}
        try:
            self._drain_queue(rt, now, offset, stepped, floor, limit)
        finally:
            touched, self._arm_later = self._arm_later, None
            for inst, at in touched.values():
                # moved later too (the timer would fire for nothing: with several routers on the interface, one
                # drain at the first deadline serves them all, and each next wake-up is the earliest new deadline)
                if at is not None and inst.timer is not None and inst.timer_at is not None and at > inst.timer_at:
                    inst.timer.cancel()
                    inst.timer = None
                self._arm(inst, at)

    def _clock(self, rt: InterfaceRuntime) -> tuple[float, float, bool]:
        """(now, offset, stepped) for a read of ``rt``'s queue: the monotonic now, wall - monotonic, and whether the
        wall clock was stepped (offset moved by more than 1 ms) since the interface's previous read."""
        assert self._loop is not None
        now = self._loop.time()
        offset = self._wall() - now
        return now, offset, rt.clock_offset is not None and abs(offset - rt.clock_offset) > 0.001

    @staticmethod
    def _arrival(inst: Instance, kernel_time: float | None, *, now: float, offset: float, stepped: bool,
                 floor: float) -> float:
        """The time an advert is fed to ``inst``'s router with: ``arrival_time``, and never before the router's
        last event (a router's clock does not run backwards)."""
        at = arrival_time(kernel_time, offset=offset, now=now, floor=floor, stepped=stepped)
        last = inst.router.machine.last
        return last.at if last is not None and at < last.at else at

    def _drain_repeats(self, rt: InterfaceRuntime, inst: Instance) -> bool:
        """An idle Backup's wake-up in fewer steps than ``_drain`` (measured: docs/vrrp.md "The Backup's wake-up"):
        when ``inst`` is the interface's only router and its last advert was routine (``repeat_of``), the queued
        datagrams that are that advert again (the same socket ``cache_key``, so the same decoded advert) are read in
        one loop (``read_repeats``) and, as ``_drain_queue`` would, only the last one is fed, to the router's
        ``routine_advert`` with its arrival time; the others are counted as repeats. Returns True when that was the
        whole queue (the timer is re-armed at the router's new deadline). Otherwise returns False with what it read
        and did not feed in ``rt.held``, which ``_drain_queue`` reads first: a datagram that differs, or the last
        repeat itself when the router no longer finds it routine (its priority rose, say)."""
        rx, key = inst.repeat_of, inst.repeat_key
        if rx is None or key is None or len(rt.routers) != 1 or rt.held:
            return False
        n, last, rest = rt.sock.read_repeats(key)
        if last is None:
            rt.held = rest
            return False
        now, offset, stepped = self._clock(rt)
        at = self._arrival(inst, last[1], now=now, offset=offset, stepped=stepped, floor=rt.last_drain)
        wake = inst.router.routine_advert(rx.source, rx.advert, at)
        rt.repeats += n - 1
        if wake is None:
            rt.received += n - 1
            rt.held = [last, *rest]
            return False
        rt.received += n
        if rest:
            rt.held = rest
            return False
        rt.clock_offset, rt.last_drain = offset, now
        self._arm(inst, wake)
        return True

    def _wait_natively(self, rt: InterfaceRuntime, inst: Instance) -> None:
        """After ``_drain_repeats`` read nothing but repeats: wait in C (``_idlewait.idle_wait``, the GIL released)
        until the router's deadline, read the repeats queued by then and move the deadline as the router would,
        and so on, until anything else happens: the deadline passes in silence, a datagram that is not a repeat is
        queued (left there), the hot loop has work (a priority-0 advert, a signal, asyncio, another timer), or a
        signal. Then the last repeat goes to the router (``_feed_advert``: one decision, as ``_drain_repeats``
        feeds it), its timer is armed at the router's deadline (at once for a datagram to read), and the hot loop
        goes on. The C deadline is never after the router's (its arrival times are never later). IPv4 only.
        Called only when ``_drain_repeats`` returned True: the lone router's routine advert is known, nothing is
        held, and its timer is armed at the router's deadline."""
        hot, native = self._hot, self._native
        rx, key, deadline = inst.repeat_of, inst.repeat_key, inst.timer_at
        if native is None or not isinstance(rt.sock, VrrpSocket):
            return
        assert self._loop is not None and hot is not None
        assert rx is not None and key is not None and deadline is not None and inst.timer is not None
        inst.timer.cancel()  # (the hot loop's own work is what ends the wait; this timer is its deadline)
        inst.timer = inst.timer_at = None
        limit = hot.quiet_until()  # type: ignore[attr-defined]
        if limit is None or limit <= self._loop.time():
            self._arm(inst, deadline)
            return
        status, n, last_ts = native.idle_wait(hot.fileno(), rt.sock.fileno(), key, deadline,  # type: ignore[attr-defined]
                                              inst.router.master_down_interval, limit)
        rt.native_waits += 1
        now, offset, stepped = self._clock(rt)
        if n:
            at = self._arrival(inst, last_ts if last_ts >= 0 else None, now=now, offset=offset, stepped=stepped,
                               floor=rt.last_drain)
            rt.clock_offset, rt.last_drain = offset, now
            rt.repeats += n - 1
            rt.received += n
            self._feed_advert(inst, rx, at, key)  # arms the timer at the router's new deadline
        else:
            self._arm(inst, deadline)
        if status == native.OTHER:
            self._arm(inst, now)  # read it now (the timer's wake-up reads the queue)

    def _routine_sender(self, inst: Instance) -> tuple[int, bytes, bytes] | None:
        """(fd, advert, destination) when ``inst``'s next duty is its routine Adver_Timer and the C loop can send it
        (IPv4, one destination, its own socket, not in a sync group), else None."""
        r = inst.router
        if (r.state is not VrrpState.MASTER or inst.group is not None or inst.timer is None or r.deadline is None
                or inst.timer_at != r.deadline or not isinstance(inst.iface.sock, VrrpSocket)):
            return None
        wire = inst._wire.get(r.priority)
        if wire is None or len(wire) != 1:
            return None
        data, sockaddr = wire[0]
        return inst.iface.sock.fileno(), data, socket.inet_aton(sockaddr[0])

    def _send_natively(self) -> None:
        """After a routine advert: send every routine Master's next adverts from C (``_idlewait.master_wait``, the
        GIL released) until the hot loop has work (an advert in, asyncio, a signal, another timer, a router's
        gratuitous ARP deadline) or a send fails; then each router hears of its rounds once
        (``routine_adver_timer`` at its last send: its next deadline follows from that) and its timer is armed.
        Every router with another duty next (a Backup, a gratuitous ARP round first) keeps its timer: its time
        is the limit."""
        hot, native = self._hot, self._native
        assert hot is not None and native is not None and self._loop is not None
        if self._stopping:
            return
        chosen: list[tuple[Instance, tuple[int, bytes, bytes]]] = []
        for inst in self.instances:
            sender = self._routine_sender(inst)
            if sender is not None:
                chosen.append((inst, sender))
        if not chosen:
            return
        garps = [t for inst, _ in chosen for t in (inst.router.garp_at, inst.router.lp_garp_at,
                                                    inst.router.refresh_at) if t is not None]
        deadlines = []
        for inst, _ in chosen:
            assert inst.timer is not None
            deadlines.append(inst.timer_at)
            inst.timer.cancel()
            inst.timer = inst.timer_at = None
        limit = hot.quiet_until()  # type: ignore[attr-defined]
        if limit is not None and garps:
            limit = min(limit, *garps)
        if limit is None or limit <= self._loop.time():
            for (inst, _), at in zip(chosen, deadlines, strict=True):
                self._arm(inst, at)
            return
        senders = [(fd, data, dest, at, inst.router.config.advert_interval)
                   for (inst, (fd, data, dest)), at in zip(chosen, deadlines, strict=True)]
        status, rounds, last, failed, err = native.master_wait(hot.fileno(), limit, senders)  # type: ignore[attr-defined]
        for rt in {id(inst.iface): inst.iface for inst, _ in chosen}.values():
            rt.native_waits += 1
        for k, ((inst, _), at) in enumerate(zip(chosen, deadlines, strict=True)):
            if rounds[k]:
                inst.sent += rounds[k] - (1 if status == native.SENDERR and k == failed else 0)
                nxt = inst.router.routine_adver_timer(last[k])
                at = inst.router.wake_at if nxt is None else nxt
            self._arm(inst, at)
        if status == native.SENDERR:
            inst = chosen[failed][0]
            inst.send_errors += 1
            log.error("%s: %s failed: %s", inst.config.name, SendAdvert.__name__, os.strerror(err))

    def _drain_queue(self, rt: InterfaceRuntime, now: float, offset: float, stepped: bool, floor: float,
                     limit: int | None) -> None:
        """Read the queue (up to ``limit``), then feed each advert in arrival order, with two savings that change
        no decision: a datagram decoded before is not decoded again (``decode`` is a pure function of the bytes
        its socket's ``cache_key`` keeps), and an advert that is the very advert its router was last fed (same
        bytes from the same source), when that feed was routine (a Backup hearing a Master at least as good as
        itself restarts its Master_Down_Timer: nothing else changes, nothing is logged), is not fed again unless
        it is the router's last in this read: the one fed after it restarts the same timer later, and nothing in
        between reads the timer."""
        batch: list[tuple[Instance, Received, float | None, Any]] = []
        last_of: dict[int, int] = {}  # VRID -> index of its last advert in the batch
        n = 0
        held = rt.held
        while limit is None or n < limit:
            got = held.pop(0) if held else rt.sock.recv()
            if got is None:
                break
            n += 1
            data, kernel_time = got
            rt.received += 1
            key = rt.sock.cache_key(data)
            rx = rt.decoded.get(key) if key is not None else None
            if rx is None:
                try:
                    rx = rt.sock.decode(data)
                except RemoteInputError as e:
                    rt.drops[e.reason] += 1
                    log.debug("%s: dropped advert: %s", rt.facts.name, e)
                    continue
                if key is not None:
                    if len(rt.decoded) >= DECODED_CACHE:
                        rt.decoded.clear()
                    rt.decoded[key] = rx
            vrid = rx.advert.vrid
            inst = rt.routers.get(vrid)
            if inst is None:
                rt.drops[PacketDropCode.UNKNOWN_VRID] += 1
                continue
            if self._stopping:
                continue
            last_of[vrid] = len(batch)
            batch.append((inst, rx, kernel_time, key))
        for i, (inst, rx, kernel_time, key) in enumerate(batch):
            if rx is inst.repeat_of and last_of[rx.advert.vrid] != i and rx.advert.priority >= inst.router.priority:
                rt.repeats += 1
                continue
            at = self._arrival(inst, kernel_time, now=now, offset=offset, stepped=stepped, floor=floor)
            self._feed_advert(inst, rx, at, key)

    def _feed_advert(self, inst: Instance, rx: Received, at: float, key: Any) -> None:
        if inst.group is None:
            wake = inst.router.routine_advert(rx.source, rx.advert, at)
            if wake is not None:  # the router's own routine case: what handle's Step would be, SetTimer(wake)
                inst.repeat_of, inst.repeat_key = rx, key
                self._set_timer(inst, wake)
                return
        event = AdvertIn(now=at, source=rx.source, advert=rx.advert)
        if inst.group is not None:
            self._feed(inst, event)
            return
        step = inst.router.handle(event)
        self._carry(inst, step)
        routine = (step.reason is None and not step.notes and not step.transitions and len(step.actions) == 1
                   and inst.router.state is VrrpState.BACKUP and rx.advert.priority >= inst.router.priority)
        inst.repeat_of, inst.repeat_key = (rx, key) if routine else (None, None)

    def _on_timer(self, inst: Instance) -> None:
        assert self._loop is not None
        inst.timer = None
        inst.timer_at = None
        if self._stopping:
            return
        rt = inst.iface
        rt.wakeups += 1
        router = inst.router
        if not rt.reading:  # (when reading, the loop ran the reader before this timer)
            if self._drain_repeats(rt, inst):
                if self._native is not None:
                    self._wait_natively(rt, inst)
                return
            self._drain(rt)  # adverts queued while we slept come first, with their arrival times
            now = self._loop.time()
            at = router.wake_at
            if at is not None and at > now and inst.group is None:
                # the adverts just read moved the router's timer on: nothing is due, and a Deadline would only
                # ask for this same time again (the router's wake_at is the earliest of everything it checks)
                self._arm(inst, at)
                return
        else:
            now = self._loop.time()
        if inst.group is None:
            at = router.routine_adver_timer(now)
            if at is not None:
                # the Master's routine Adver_Timer, decided by the router without a Step: that Step would be
                # SendAdvert(priority), SetTimer(at), no reason (nothing to log or notify)
                inst.repeat_of = None
                self._send_wire(inst, router.priority, False)
                self._arm(inst, at)
                if self._native is not None:
                    self._send_natively()
                return
            at = router.wake_at
            if at is not None and at > now:  # early (a deadline moved later): the same answer as above
                self._arm(inst, at)
                return
        self._feed(inst, Deadline(now=now))

    def _start_trackers(self, loop: asyncio.AbstractEventLoop) -> None:
        """Script and file runners per instance (scripts run once started; files are read now), and one
        interface watcher for every tracked interface (its first reading is fed now)."""
        for inst in self.instances:
            name = inst.config.name
            for key, script in inst.config.scripts:
                inst.trackers.append(TrackScriptRunner(
                    key, name, script, functools.partial(self._on_track_script, inst, key)))
            for spec in inst.config.track_file:
                key = f"file:{spec.path}"
                runner = TrackFileRunner(key, name, spec, functools.partial(self._on_track_file, inst, key))
                runner.last = runner.read()
                log.info("%s: %s %s", name, key, runner.last[2])
                self._on_track_file(inst, key, *runner.last)
                inst.trackers.append(runner)
        names = {t.name for inst in self.instances for t in inst.config.track_interface}
        if names:
            self.interface_watcher = InterfaceWatcher(names, self._on_interface)
            self.interface_watcher.start(loop)

    def _track_result(self, inst: Instance, key: str, ok: bool, value: int | None, detail: str) -> None:
        assert self._loop is not None
        if not self._stopping:
            self._feed(inst, TrackResult(now=self._loop.time(), tracker=key, ok=ok, value=value, detail=detail))

    def _on_track_script(self, inst: Instance, key: str, ok: bool, detail: str) -> None:
        self._track_result(inst, key, ok, None, detail)

    def _on_track_file(self, inst: Instance, key: str, ok: bool, value: int | None, detail: str) -> None:
        self._track_result(inst, key, ok, value, detail)

    def _on_interface(self, name: str, up: bool, detail: str) -> None:
        log.info("tracked interface %s: %s", name, detail)
        for inst in self.instances:
            if any(t.name == name for t in inst.config.track_interface):
                self._track_result(inst, f"interface:{name}", up, None, detail)

    # -- steps out -------------------------------------------------------------------------
    def _feed(self, inst: Instance, event: Event) -> None:
        """The router decides (with its sync group, if any); carry_out logs, notifies and runs the actions with
        ``inst.handlers``: a group's step is each member's step carried out as that member's, then the group's
        own (its log line and notify hooks)."""
        inst.repeat_of = None
        g = inst.group
        if g is None:
            self._carry(inst, inst.router.handle(event))
            return
        gstep = g.sync.handle(inst.config.name, event)
        for name, step in gstep.members:
            self._carry(g.members[name], step)
        carry_out(gstep.group, {}, log=g.decisions, notify=g.notify)
        if gstep.group.transitions:
            self._write_status()

    def _carry(self, inst: Instance, step: Step[Action]) -> None:
        for t in step.transitions:  # the effective priority at the transition, for keepalived's notify order
            inst.priority_at[t.seq] = inst.router.priority
        carry_out(step, inst.handlers, log=inst.decisions, notify=inst.notify)
        if step.transitions:
            self._update_reading(inst.iface)
            self._write_status()

    def _handlers(self, inst: Instance) -> dict[type, Callable[[Any], None]]:
        """This instance's handler per action type. A failing socket or netlink call is logged and
        counted and the step goes on: the role decision stands."""

        def guarded(do: Callable[[Any], None]) -> Callable[[Any], None]:
            def handler(action: Any) -> None:
                try:
                    do(action)
                except OSError as e:
                    inst.send_errors += 1
                    log.error("%s: %s failed: %s", inst.config.name, type(action).__name__, e)
            return handler

        return {
            SendAdvert: lambda a: self._send_wire(inst, a.priority, a.stepping_down),  # (guarded there)
            AddAddresses: guarded(lambda a: self._queue_addresses(inst, "add")),
            RemoveAddresses: guarded(lambda a: self._queue_addresses(inst, "remove")),
            SendGarp: guarded(lambda a: inst.garp.send(a.addresses)),
            SetTimer: lambda a: self._set_timer(inst, a.at),
        }

    def _send_bytes(self, inst: Instance, priority: int, stepping_down: bool) -> None:
        sock = inst.iface.sock
        wire = inst._wire.get(priority)
        if wire is None:  # the bytes and the socket address of each destination, made once per priority
            wire = inst._wire[priority] = tuple(
                (inst.advert_bytes(priority, dst), sock.sockaddr(dst))  # type: ignore[arg-type]
                for dst in inst.config.unicast_peers or (sock.group,))
        sender = inst.base_sender if stepping_down and inst.base_sender is not None else sock
        for data, sockaddr in wire:
            sender.send_to(data, sockaddr)
        inst.sent += 1

    def _send_wire(self, inst: Instance, priority: int, stepping_down: bool) -> None:
        """SendAdvert's handler, also called without the action object by the routine Master path: a failing
        socket is logged and counted (as ``guarded`` does for the other actions)."""
        try:
            self._send_bytes(inst, priority, stepping_down)
        except OSError as e:
            inst.send_errors += 1
            log.error("%s: %s failed: %s", inst.config.name, SendAdvert.__name__, e)

    def _queue_addresses(self, inst: Instance, op: str) -> None:
        for iface in inst.config.ip_addresses:  # with their prefix lengths (the actions carry the bare IPs)
            self._netlink_q.put_nowait((inst, op, iface))

    def _set_timer(self, inst: Instance, at: float | None) -> None:
        if self._arm_later is not None:
            self._arm_later[id(inst)] = (inst, at)  # one timer for the last advert of the batch
        else:
            self._arm(inst, at)

    async def _netlink_worker(self) -> None:
        """Address changes in the order the routers asked for them, one at a time."""
        assert self.addresses is not None
        while True:
            inst, op, iface = await self._netlink_q.get()
            try:
                if op == "add":
                    await self.addresses.add(inst.address_index, iface)
                else:
                    await self.addresses.remove(inst.address_index, iface)
            except Exception as e:
                inst.send_errors += 1
                log.error("%s: cannot %s address %s on %s: %s", inst.config.name, op, iface,
                          inst.iface.facts.name, e)
            finally:
                self._netlink_q.task_done()

    def _arm(self, inst: Instance, at: float | None) -> None:
        if at is None:
            if inst.timer is not None:
                inst.timer.cancel()
            inst.timer = inst.timer_at = None
            return
        if inst.timer is not None and inst.timer_at is not None and inst.timer_at <= at:
            return  # fires early, the router re-asks
        if inst.timer is not None:
            inst.timer.cancel()
        assert self._hot is not None
        inst.timer = self._hot.call_at(at, self._on_timer, inst)
        inst.timer_at = at

    # -- status ------------------------------------------------------------------------------
    def status(self) -> dict[str, object]:
        return {
            "pid": os.getpid(),
            "instances": {
                i.config.name: {
                    "state": i.router.state.value, "vrid": i.config.vrid, "priority": i.router.priority,
                    "master_down_interval": round(i.router.master_down_interval, 6),
                    "master": str(i.router.master_address) if i.router.master_address else None,
                    "adverts_sent": i.sent, "errors": i.send_errors, "drops": dict(i.router.drops),
                    "trackers": {k: {"ok": st.ok, "value": st.value, "detail": st.detail}
                                 for k, st in i.router.tracking.states.items()},
                } for i in self.instances},
            **({"sync_groups": {n: {"state": g.sync.state.value, "members": list(g.members)}
                                for n, g in self.groups.items()}} if self.groups else {}),
            "interfaces": {n: {"received": rt.received, "drops": dict(rt.drops), "reading": rt.reading,
                               "wakeups": rt.wakeups, "repeats": rt.repeats, "native_waits": rt.native_waits}
                           for n, rt in self.interfaces.items()},
            "native_wait": self._native is not None,
        }

    def _write_status(self) -> None:
        if not self.status_file:
            return
        tmp = f"{self.status_file}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(self.status(), f)
            os.replace(tmp, self.status_file)
        except OSError as e:
            log.warning("cannot write status file %s: %s", self.status_file, e)

    def _dump_status(self, _why: str) -> None:
        log.info("status: %s", json.dumps(self.status()))
        self._write_status()

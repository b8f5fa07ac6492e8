"""NetnsSegment: one Ethernet segment of network-namespace "hosts", the builder behind every lab here.

A switch (a Linux bridge that floods multicast to every port, as VRRP needs) and one namespace per
host, ``<prefix>-<key>``, each with ``lo`` up and ``eth0`` (a veth whose other end is a port of the
switch) carrying the host's IPv4 address. The prefix is random unless given, so parallel runs never
collide. Where the switch lives:

- ``switch="sw"`` (the default): in a namespace of its own, ``<prefix>-sw``; nothing is made in the
  root namespace, so no traffic can leave the lab. With ``switch_address`` the bridge holds an
  address too, and that namespace doubles as a client on the segment (the valet lab's ``client``).
- ``switch=None``: in the root namespace, where ``switch_address`` lets this process reach every host
  directly; an iptables FORWARD rule lets bridged traffic pass when br_netfilter is loaded (dockerd
  loads it). Root-namespace names (bridge, ports) carry the prefix: keep it short (<= 11 characters
  without dashes). ``unused_subnet()`` picks a /24 the root namespace does not use yet.

With ``hosts6`` (``{key: IPv6 address}``, a /64 each) a host's ``eth0`` also carries that address and a fixed
link-local address with the same interface identifier (``fd00:99::11`` -> ``fe80::11``), both ``nodad``
(usable at once), with IPv6 enabled and no automatic link-local address (testbed NOTES: nothing waits for
duplicate-address detection). Without it nothing about IPv6 is touched (the default, as before).

Set-up records each step as it succeeds; ``teardown()`` undoes them in reverse order, one by one (a
failing undo does not stop the others), so it works after a half-done set-up, and a second call does
nothing. Faults: ``set_port`` (cable pulled: carrier lost), ``isolate`` (bridge ports that do not
talk to each other, carrier up), ``block`` (iptables in one host drops another's traffic; this
process still reaches both), ``lose`` (a share of what a host sends dropped), ``delay`` (what it sends held
D ms: NFQUEUE and a ``labs.delayer`` process), ``duplicate`` (a share of it sent twice: TEE), ``set_address``
(a broken host loses its address); none needs sch_netem. Commands run in a
namespace with ``exec``/``popen``/``argv``; ``in_ns`` makes a socket-like object inside one.
Needs root and iproute2 (and iptables for ``switch=None`` and ``block``). Set-up is ``ip`` commands,
not netlink: the labs need iproute2 anyway (``ip netns exec``), each step reads like the operator's
own recipe, and it is quick (measured for two hosts: 0.06 s set-up, 0.005 s teardown).
"""

from __future__ import annotations

import ipaddress
import random
import secrets
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyroute2 import netns as pyroute2_netns

if TYPE_CHECKING:
    from labs.delayer import Delay


class NetnsError(RuntimeError):
    """A set-up or fault command failed; the message names the command and carries its stderr."""


def run(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: {r.stderr.strip() or f'exit {r.returncode}'}")
    return r


def unused_subnet(pattern: str = "10.231.{}.0/24") -> ipaddress.IPv4Network:
    """A /24 from ``pattern`` (one ``{}`` for the third octet) that no root-namespace route or address uses."""
    used = run("ip", "-4", "route", "show", "table", "all").stdout + run("ip", "-4", "addr").stdout
    choices = list(range(1, 255))
    random.shuffle(choices)
    for y in choices:
        net = ipaddress.IPv4Network(pattern.format(y))
        if f"{str(net.network_address).rsplit('.', 1)[0]}." not in used:
            return net
    raise NetnsError(f"no free subnet of the form {pattern} for the lab")


class NetnsSegment:
    """Hosts ``{key: address}`` on one switch; see the module docstring."""

    def __init__(self, hosts: Mapping[str, str], *, prefix: str | None = None, tag: str = "ns",
                 switch: str | None = "sw", switch_address: str | None = None, prefixlen: int = 24,
                 hosts6: Mapping[str, str] | None = None) -> None:
        self.hosts = dict(hosts)
        self.hosts6 = dict(hosts6 or {})
        self.prefix = prefix or f"{tag}{secrets.token_hex(3)}"
        self.switch = switch
        self.switch_address = switch_address
        self.prefixlen = prefixlen
        root_tag = self.prefix.replace("-", "")
        self.bridge = "br0" if switch is not None else f"{root_tag}br"
        self._port_prefix = "p" if switch is not None else f"{root_tag}p"
        self._undo: list[tuple[str, ...]] = []

    # -- names ------------------------------------------------------------------------------------
    def ns(self, key: str) -> str:
        """The namespace of host (or switch) ``key``."""
        return f"{self.prefix}-{key}"

    @property
    def switch_ns(self) -> str | None:
        return None if self.switch is None else self.ns(self.switch)

    def address(self, key: str) -> str:
        return self.hosts[key]

    def link_local(self, key: str) -> str:
        """The host's fixed IPv6 link-local address (``hosts6`` only): fe80:: + its address's interface identifier."""
        iid = ipaddress.IPv6Address(self.hosts6[key]).packed[8:]
        return str(ipaddress.IPv6Address(bytes.fromhex("fe80" + "00" * 6) + iid))

    def port(self, key: str) -> str:
        """The switch port the host's ``eth0`` is plugged into."""
        return f"{self._port_prefix}{list(self.hosts).index(key)}"

    def _on_switch(self, *argv: str) -> tuple[str, ...]:
        """``argv`` run where the bridge is (its namespace, or the root namespace)."""
        sw = self.switch_ns
        return argv if sw is None else ("ip", "netns", "exec", sw, *argv)

    def _ip_switch(self, *args: str) -> tuple[str, ...]:
        sw = self.switch_ns
        return ("ip", *args) if sw is None else ("ip", "-n", sw, *args)

    # -- set-up and teardown ----------------------------------------------------------------------
    def _step(self, argv: tuple[str, ...], undo: tuple[str, ...] | None = None) -> None:
        run(*argv)
        if undo is not None:
            self._undo.append(undo)

    def up(self) -> NetnsSegment:
        """Build the segment; on any failure undo what was made and re-raise."""
        try:
            self._switch()
            for key in self.hosts:
                self._host(key)
        except BaseException:
            self.teardown()
            raise
        return self

    def _switch(self) -> None:
        sw = self.switch_ns
        if sw is not None:
            self._step(("ip", "netns", "add", sw), ("ip", "netns", "del", sw))
            self._step(("ip", "-n", sw, "link", "set", "lo", "up"))
            self._step(("ip", "-n", sw, "link", "add", self.bridge, "type", "bridge"))
        else:
            self._step(("ip", "link", "add", self.bridge, "type", "bridge"), ("ip", "link", "del", self.bridge))
        self._step(self._ip_switch("link", "set", self.bridge, "type", "bridge", "mcast_snooping", "0"))
        if self.switch_address is not None:
            self._step(self._ip_switch("addr", "add", f"{self.switch_address}/{self.prefixlen}", "dev", self.bridge))
        self._step(self._ip_switch("link", "set", self.bridge, "up"))
        if sw is None:
            rule = ("FORWARD", "-i", self.bridge, "-o", self.bridge, "-j", "ACCEPT", "-m", "comment",
                    "--comment", self.prefix)
            self._step(("iptables", "-I", *rule), ("iptables", "-D", *rule))

    def _host(self, key: str) -> None:
        ns, port = self.ns(key), self.port(key)
        self._step(("ip", "netns", "add", ns), ("ip", "netns", "del", ns))
        self._step(("ip", "-n", ns, "link", "set", "lo", "up"))
        peer_ns = () if self.switch_ns is None else ("netns", self.switch_ns)
        # deleting the port (root namespace) takes eth0 with it at once; a namespace's deletion is lazy
        self._step(("ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port, *peer_ns),
                   ("ip", "link", "del", port) if self.switch_ns is None else None)
        self._step(self._ip_switch("link", "set", port, "master", self.bridge, "up"))
        self._step(("ip", "-n", ns, "addr", "add", f"{self.address(key)}/{self.prefixlen}", "dev", "eth0"))
        if key in self.hosts6:
            for sysctl in ("net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.eth0.disable_ipv6=0"):
                self._step(("ip", "netns", "exec", ns, "sysctl", "-q", "-w", sysctl))
            self._step(("ip", "-n", ns, "link", "set", "eth0", "addrgenmode", "none"))  # no automatic link-local
            for addr in (f"{self.link_local(key)}/64", f"{self.hosts6[key]}/64"):
                self._step(("ip", "-n", ns, "-6", "addr", "add", addr, "dev", "eth0", "nodad"))
        self._step(("ip", "-n", ns, "link", "set", "eth0", "up"))

    def teardown(self) -> list[str]:
        """Undo every recorded step, newest first; returns the problems (never raises)."""
        problems = []
        while self._undo:
            argv = self._undo.pop()
            try:
                r = run(*argv, check=False)
            except (OSError, subprocess.SubprocessError) as e:
                problems.append(f"{' '.join(argv)}: {e}")
                continue
            if r.returncode != 0:
                problems.append(f"{' '.join(argv)}: {r.stderr.strip() or f'exit {r.returncode}'}")
        return problems

    def __enter__(self) -> NetnsSegment:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    # -- inside a namespace -----------------------------------------------------------------------
    def argv(self, key: str, argv: list[str], *, net_only: bool = False) -> list[str]:
        """The command line that runs ``argv`` in ``key``'s namespace: ``ip netns exec``, or with
        ``net_only`` ``nsenter --net`` (the network only: dockerd needs the cgroup mounts that
        ``ip netns exec`` replaces)."""
        if net_only:
            return ["nsenter", f"--net=/run/netns/{self.ns(key)}", *argv]
        return ["ip", "netns", "exec", self.ns(key), *argv]

    def exec(self, key: str, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[Any]:
        return subprocess.run(self.argv(key, argv), **kw)

    def popen(self, key: str, argv: list[str], *, net_only: bool = False, **kw: Any) -> subprocess.Popen[Any]:
        return subprocess.Popen(self.argv(key, argv, net_only=net_only), **kw)

    def in_ns(self, key: str, make: Callable[[], Any]) -> Any:
        """Call ``make`` inside ``key``'s namespace: a socket (or netlink handle) made there stays there."""
        pyroute2_netns.pushns(self.ns(key))
        try:
            return make()
        finally:
            pyroute2_netns.popns()

    # -- faults -----------------------------------------------------------------------------------
    def set_port(self, key: str, up: bool) -> None:
        """Pull (or plug back) the host's cable: its switch port goes down, eth0 loses carrier."""
        run(*self._ip_switch("link", "set", self.port(key), "up" if up else "down"))

    def isolate(self, *keys: str, on: bool = True) -> None:
        """Stop (or restore) traffic between these hosts' switch ports; each still reaches the others.
        Carrier stays up, so the hosts see a silent peer, not a dead link."""
        for key in keys:
            run(*self._on_switch("bridge", "link", "set", "dev", self.port(key), "isolated", "on" if on else "off"))

    def block(self, key: str, other: str, on: bool = True, *, inbound: bool = True, outbound: bool = True,
              dport: int | None = None) -> None:
        """iptables in ``key``'s namespace drops what comes from (``inbound``) and goes to (``outbound``)
        ``other``'s address (``on``), or removes one such set of rules (``on=False``; no error if there is none).
        One direction only (``outbound=False``: ``other`` -> ``key`` lost, ``key`` -> ``other`` still delivered).
        ``other`` is a host key or, for an address outside the hosts (the switch's own), that address.
        ``dport``: only TCP to that port (requests one way; their answers and the other way's requests pass)."""
        target = self.hosts.get(other, other)
        chains = [c for c, wanted in ((("INPUT", "-s"), inbound), (("OUTPUT", "-d"), outbound)) if wanted]
        port = ["-p", "tcp", "--dport", str(dport)] if dport is not None else []
        for chain, flag in chains:
            run("ip", "netns", "exec", self.ns(key), "iptables", "-I" if on else "-D", chain, flag,
                target, *port, "-j", "DROP", check=on)

    def lose(self, key: str, percent: float, on: bool = True, *, device: str = "eth0") -> None:
        """iptables in ``key``'s namespace drops ``percent`` % of what it sends on ``device`` (``eth0``; ``+`` for
        every interface, e.g. VRRP's ``use_vmac`` macvlan beside eth0), at random (the ``statistic`` match; a
        lossy link without sch_netem), or removes that rule (``on=False``)."""
        if not 0 < percent <= 100:
            raise ValueError(f"percent must be in (0, 100], got {percent}")
        run("ip", "netns", "exec", self.ns(key), "iptables", "-I" if on else "-D", "OUTPUT", "-o", device,
            "-m", "statistic", "--mode", "random", "--probability", f"{percent / 100:.4f}", "-j", "DROP", check=on)

    def delay(self, key: str, queue: int, delay_ms: float, jitter_ms: float = 0.0, *, seed: int = 0,
              stats: Path | None = None) -> Delay:
        """What ``key`` sends on ``eth0`` is held ``delay_ms`` (+- ``jitter_ms``) before it goes on: a
        ``labs.delayer`` process in its namespace bound to NFQUEUE ``queue`` (one number per fault, so two
        delays never share a queue), then ``iptables -I OUTPUT -o eth0 -j NFQUEUE --queue-num N --queue-bypass``
        (a dead delayer lets packets pass: the delay never becomes a cut). ``Delay.stop()`` undoes both."""
        from labs.delayer import Delay

        return Delay(self, key, queue, delay_ms, jitter_ms, seed=seed, stats=stats).start()

    def queue_rule(self, key: str, queue: int, on: bool = True) -> None:
        """Insert (or remove) ``key``'s rule sending what it sends on ``eth0`` to NFQUEUE ``queue``."""
        run("ip", "netns", "exec", self.ns(key), "iptables", "-I" if on else "-D", "OUTPUT", "-o", "eth0", "-j",
            "NFQUEUE", "--queue-num", str(queue), "--queue-bypass", check=on)

    def duplicate(self, key: str, percent: float, on: bool = True) -> list[str]:
        """``percent`` % of what ``key`` sends to each other host (and to the switch's address, if it has one)
        arrives twice: per destination X an ``iptables -t mangle OUTPUT -o eth0 -d X -m statistic ... -j TEE
        --gateway X`` rule in ``key``'s namespace (the copy is routed to X itself), and per X one for multicast
        (``-d 224.0.0.0/4 ... --gateway X``: the copy goes to X's MAC with the group address, which X accepts
        when it has joined the group, as VRRP routers have; TEE with the group as gateway delivered nothing,
        measured). Each rule draws on its own, so a multicast packet is copied to each X independently.
        ``on=False`` removes them (no error if missing). Returns the destinations."""
        if not 0 < percent <= 100:
            raise ValueError(f"percent must be in (0, 100], got {percent}")
        others = [a for k, a in self.hosts.items() if k != key]
        if self.switch_address is not None and self.switch_address not in others:
            others.append(self.switch_address)
        stat = ("-m", "statistic", "--mode", "random", "--probability", f"{percent / 100:.4f}")
        for dst in others:
            for match in (dst, "224.0.0.0/4"):
                run("ip", "netns", "exec", self.ns(key), "iptables", "-t", "mangle", "-I" if on else "-D", "OUTPUT",
                    "-o", "eth0", "-d", match, *stat, "-j", "TEE", "--gateway", dst, check=on)
        return others

    def set_address(self, key: str, present: bool) -> None:
        """The host loses (or gets back) its address: nothing there can bind to it or be reached on it."""
        run("ip", "-n", self.ns(key), "addr", "add" if present else "del", f"{self.address(key)}/{self.prefixlen}",
            "dev", "eth0")

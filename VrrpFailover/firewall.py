"""Packet filter rules of VrrpFailover, through the ``nft`` command (nftables): what keepalived 2.2.7 puts in its
own nftables table (vrrp_nftables.c; Debian builds it with nftables, not iptables).

RFC 5798 6.1 / 6.4.3: a Master that is not the address owner MUST NOT accept packets addressed to the virtual
addresses unless Accept_Mode is true. An instance that does not accept (``InstanceConfig.accepts`` false) gets
a table of its own, ``ip vrrp_failover_<VRID>_<interface>`` (``ip6`` for IPv6), present while the router runs:

- chain ``in`` (hook input, priority -1): packets to the virtual addresses are dropped (for IPv6 neighbour
  solicitations and advertisements pass first: the Master must still answer them);
- chain ``out`` (hook output, priority -1): packets from the virtual addresses are dropped (keepalived's too).

ARP is no IP packet: the Master still answers ARP for its addresses, and gratuitous ARP (a packet socket) goes out.
A Backup does not hold the addresses, so the rules change nothing there: keepalived adds the addresses to its
set on becoming Master and removes them on leaving, the effect is the same.

With ``use_vmac`` (``VrrpFailover.vmac``) the table also drops IGMP leaving through the macvlan: the report
for 224.0.0.18 would carry the virtual MAC from a Backup and teach the switch the wrong port (keepalived sends it
from the interface below instead; link-local groups are flooded by snooping switches anyway, RFC 4541 2.1.2).

At start every table of the configured instances is removed first (a crash left-over; ``add`` then ``delete`` in
one batch, so a missing table is no error), then the needed ones are made, in one ``nft -f -`` run; at exit they
are deleted. ``render`` is pure (the tests read it); ``NftFirewall`` runs ``nft``.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field

from VrrpFailover.settings import InstanceRules

log = logging.getLogger("vrrp")

TABLE_PREFIX = "vrrp_failover_"
CHAIN_PRIORITY = -1  # before the usual filter chains (priority 0), as keepalived's
NFT_TIMEOUT = 10.0


def table_family(config: InstanceRules) -> str:
    return "ip" if config.family == 4 else "ip6"


def table_name(config: InstanceRules) -> str:
    """``vrrp_failover_<VRID>_<interface>``: unique per interface, family (the table's) and VRID, like a VRID."""
    return f"{TABLE_PREFIX}{config.vrid}_{re.sub(r'[^A-Za-z0-9_]', '_', config.interface_name)}"


def needs_table(config: InstanceRules) -> bool:
    return not config.accepts or config.vmac_name is not None


def render(config: InstanceRules) -> str:
    """The nft script that defines the instance's table (``needs_table`` must be true)."""
    fam = table_family(config)
    ip = "ip" if fam == "ip" else "ip6"
    vips = ", ".join(str(a) for a in config.addresses)
    inbound: list[str] = []
    outbound: list[str] = []
    if not config.accepts:
        if fam == "ip6":
            nd = "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept"
            inbound.append(nd)
            outbound.append(nd)
        inbound.append(f"{ip} daddr {{ {vips} }} drop")
        outbound.append(f"{ip} saddr {{ {vips} }} drop")
    if config.vmac_name is not None:
        outbound.append(f'oifname "{config.vmac_name}" ip protocol igmp drop')
    lines = [f"table {fam} {table_name(config)} {{"]
    for chain, hook, rules in (("in", "input", inbound), ("out", "output", outbound)):
        if rules:
            lines += [f"  chain {chain} {{", f"    type filter hook {hook} priority {CHAIN_PRIORITY}; policy accept;",
                      *(f"    {r}" for r in rules), "  }"]
    lines.append("}")
    return "\n".join(lines) + "\n"


def remove_script(configs: Iterable[InstanceRules]) -> str:
    """Delete the instances' tables; a missing one is no error (``add table`` first makes an empty one)."""
    out = []
    for c in configs:
        ref = f"{table_family(c)} {table_name(c)}"
        out += [f"add table {ref}", f"delete table {ref}"]
    return "\n".join(out) + "\n" if out else ""


def parse_tables(listing: str) -> set[tuple[str, str]]:
    """``nft list tables`` -> {(family, name)}."""
    found = set()
    for line in listing.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "table":
            found.add((words[1], words[2]))
    return found


@dataclass
class NftFirewall:
    """The tables of ``configs`` (see the module docstring). ``start`` raises OSError when a table is needed and
    ``nft`` cannot make it (the router then exits 1: it would otherwise accept what it must not)."""

    configs: tuple[InstanceRules, ...]
    nft: str | None = field(default_factory=lambda: shutil.which("nft") or shutil.which("nft", path="/usr/sbin"))
    installed: list[InstanceRules] = field(default_factory=list)

    def _run(self, *args: str, script: str | None = None) -> subprocess.CompletedProcess[str]:
        assert self.nft is not None
        return subprocess.run([self.nft, *args], input=script, capture_output=True, text=True, timeout=NFT_TIMEOUT,
                              check=False)

    def start(self) -> None:
        wanted = [c for c in self.configs if needs_table(c)]
        if self.nft is None:
            if wanted:
                raise OSError(f"instance {wanted[0].name} needs packet filter rules (accept mode off, or use_vmac) "
                              f"and the nft command is missing (Debian package nftables)")
            return
        listed = self._run("list", "tables")
        present = parse_tables(listed.stdout) if listed.returncode == 0 else set()
        for c in self.configs:
            if (table_family(c), table_name(c)) in present:
                log.warning("%s: removed left-over nftables table %s %s before start", c.name, table_family(c),
                            table_name(c))
        script = remove_script(self.configs) + "".join(render(c) for c in wanted)
        r = self._run("-f", "-", script=script)
        if r.returncode != 0:
            raise OSError(f"nft could not set up the packet filter rules: {r.stderr.strip()[:500]}")
        self.installed = wanted
        for c in wanted:
            log.info("%s: nftables table %s %s%s", c.name, table_family(c), table_name(c),
                     "" if c.accepts else ": packets to and from the virtual addresses are dropped (accept mode off)")

    def stop(self) -> None:
        if not self.installed or self.nft is None:
            return
        r = self._run("-f", "-", script=remove_script(self.installed))
        if r.returncode != 0:
            log.error("nft could not remove the packet filter rules: %s", r.stderr.strip()[:500])
        self.installed = []

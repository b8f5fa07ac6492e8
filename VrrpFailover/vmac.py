"""The virtual MAC of an instance (``use_vmac``, keepalived's; RFC 5798 7.3): a macvlan, nothing that decides.

RFC 5798 7.3: the virtual router's MAC is 00-00-5E-00-01-{VRID}; a Master answers ARP for its addresses with it
and sends its adverts from it, so a host's ARP entry stays right when another router becomes Master. On Linux
that is a macvlan on the instance's interface (keepalived 2.2.7, vrrp_vmac.c), kept for the router's life:

- made at start (a macvlan of the same name on the same interface is a crash left-over: removed first),
  mode ``private``: a multicast frame whose source MAC is the macvlan's own goes to the macvlan only, not to
  the interface below (the kernel takes it for a reflection of its own frame). So the other router's adverts,
  sent from the same virtual MAC, arrive on the macvlan: the advert sockets are bound to it (unless
  ``vmac_xmit_base``, where both routers must send from their own interfaces, as in keepalived);
- the virtual addresses go on the macvlan when Master and leave it on leaving Master;
- removed at exit (its addresses go with it).

The sysctls keepalived sets (vrrp_if_config.c), and why:

- on the macvlan: ``arp_ignore=1``: answer ARP only for its own addresses (the virtual ones), not for the
  interface's address below with the virtual MAC; ``rp_filter=0``: take adverts on an interface with no
  address (the route back to their source goes through the interface below, strict reverse-path filtering would
  drop them); ``accept_local=1``; ``promote_secondaries=1``; IPv6 off (``disable_ipv6=1``): a Backup's macvlan
  must send nothing (no duplicate-address detection, router or MLD solicitations), or the switch would learn the
  virtual MAC at the Backup's port;
- on the interface below: ``arp_ignore=1`` (it must not answer ARP for the virtual addresses, which sit on the
  macvlan, with its own MAC: a host would then follow the interface's MAC, not the virtual one) and
  ``arp_filter=1``; and ours beyond keepalived's code, ``arp_announce=2``: the Master answering a host from a
  virtual address asks for the host's MAC through the interface below, and without it that ARP request names the
  virtual address as its sender, with the interface's MAC, so the host's entry for the virtual address moves to
  that MAC (measured here, with keepalived as well: its design notes leave ``arp_announce`` to the operator).
  The values before are put back at exit if nobody changed them meanwhile.

IGMP reports for 224.0.0.18 leave through the macvlan with the virtual MAC too; ``VrrpFailover.firewall`` drops
them (keepalived drops them, or sends them from the interface below, in its nftables table).
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from VrrpFailover.settings import InstanceRules

if TYPE_CHECKING:  # (pyroute2 is imported by the driver only when a config has use_vmac: its resident memory)
    from pyroute2 import AsyncIPRoute

log = logging.getLogger("vrrp")

SYSCTL_NET = "/proc/sys/net"
VMAC_SYSCTLS = (("ipv4", "arp_ignore", 1), ("ipv4", "accept_local", 1), ("ipv4", "rp_filter", 0),
                ("ipv4", "promote_secondaries", 1), ("ipv6", "disable_ipv6", 1))
BASE_SYSCTLS = (("ipv4", "arp_ignore", 1), ("ipv4", "arp_filter", 1), ("ipv4", "arp_announce", 2))


def sysctl_path(family: str, ifname: str, key: str) -> str:
    return f"{SYSCTL_NET}/{family}/conf/{ifname}/{key}"


def read_sysctl(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def write_sysctl(path: str, value: int) -> bool:
    try:
        with open(path, "w", encoding="ascii") as f:
            f.write(f"{value}\n")
    except OSError as e:
        if e.errno != errno.ENOENT:  # (no ipv6 directory when IPv6 is off in the kernel: nothing to switch off)
            log.warning("cannot set %s to %d: %s", path, value, e)
        return False
    return True


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


@dataclass(frozen=True, slots=True)
class VmacLink:
    name: str
    index: int
    mac: bytes
    base: str
    base_index: int


def link_kind(link: object) -> str | None:
    get = getattr(link, "get", None)
    return get(("IFLA_LINKINFO", "IFLA_INFO_KIND")) if get else None


@dataclass
class VmacManager:
    """Makes and removes the instances' macvlans through one (async) netlink socket; keeps the sysctl values of
    the interfaces below to put them back."""

    ipr: AsyncIPRoute
    links: dict[str, VmacLink] = field(default_factory=dict)
    _saved: dict[str, dict[str, int]] = field(default_factory=dict)  # base ifname -> path -> value before

    async def _remove_leftover(self, name: str, base_index: int) -> None:
        idx = await self.ipr.link_lookup(ifname=name)
        if not idx:
            return
        links = [link async for link in await self.ipr.get_links(idx[0])]
        if not links or link_kind(links[0]) != "macvlan" or links[0].get("IFLA_LINK") != base_index:
            # (check_interfaces refused this config before anything was touched; the host changed since)
            raise OSError(errno.EEXIST, f"interface {name} exists and is not a macvlan of the instance's interface")
        await self.ipr.link("del", index=idx[0])
        log.warning("removed left-over virtual MAC interface %s before start", name)

    async def create(self, name: str, mac: bytes, base: str, base_index: int) -> VmacLink:
        """The macvlan ``name`` on ``base`` with ``mac``, private mode, sysctls set, up."""
        await self._remove_leftover(name, base_index)
        await self.ipr.link("add", ifname=name, kind="macvlan", link=base_index, macvlan_mode="private",
                            address=mac_text(mac))
        index = (await self.ipr.link_lookup(ifname=name))[0]
        link = VmacLink(name=name, index=index, mac=mac, base=base, base_index=base_index)
        self.links[name] = link
        for family, key, value in VMAC_SYSCTLS:  # before it is up: no IPv6 frame ever leaves it
            write_sysctl(sysctl_path(family, name, key), value)
        saved = self._saved.setdefault(base, {})
        for family, key, value in BASE_SYSCTLS:
            path = sysctl_path(family, base, key)
            before = read_sysctl(path)
            if path not in saved and before is not None and before != value and write_sysctl(path, value):
                saved[path] = before
        strict = read_sysctl(sysctl_path("ipv4", "all", "rp_filter"))
        if strict == 1:
            log.warning("net.ipv4.conf.all.rp_filter is 1 (strict): adverts arriving on %s may be dropped (the "
                        "larger of all and the interface's value applies); set it to 0 or 2", name)
        await self.ipr.link("set", index=index, state="up")
        log.info("virtual MAC interface %s (%s) on %s", name, mac_text(mac), base)
        return link

    async def remove_all(self) -> None:
        """Remove every macvlan made here and put back the sysctls of the interfaces below (those nobody changed
        since)."""
        from pyroute2.netlink.exceptions import NetlinkError

        for link in list(self.links.values()):
            try:
                await self.ipr.link("del", index=link.index)
            except NetlinkError as e:
                if e.code != errno.ENODEV:
                    log.error("cannot remove virtual MAC interface %s: %s", link.name, e)
            del self.links[link.name]
        for base, saved in self._saved.items():
            for family, key, value in BASE_SYSCTLS:
                path = sysctl_path(family, base, key)
                if path in saved and read_sysctl(path) == value:
                    write_sysctl(path, saved[path])
        self._saved.clear()


def existing_conflict(name: str, base: str) -> str | None:
    """Why an interface already named ``name`` would block making the macvlan (sync, before anything is touched):
    None if there is none, or it is a macvlan of ``base`` (a crash left-over, replaced at start)."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=name)
        if not idx:
            return None
        link = ipr.get_links(idx[0])[0]
        base_idx = ipr.link_lookup(ifname=base)
    if link_kind(link) == "macvlan" and base_idx and link.get("IFLA_LINK") == base_idx[0]:
        return None
    kind = link_kind(link) or "a physical or unknown kind of"
    return (f"an interface named {name} already exists ({kind} interface, not a macvlan of {base}); it is not "
            f"ours to replace: choose another name")


def check_vmac_names(configs: Iterable[InstanceRules], source: str) -> None:
    """ConfigError (key ``[n].use_vmac``) for a macvlan name that an interface of another kind already has."""
    problems: list[tuple[str, object, str]] = []
    for n, c in enumerate(configs):
        if c.vmac_name is not None:
            why = existing_conflict(c.vmac_name, c.interface_name)
            if why:
                problems.append((f"[{n}].use_vmac", c.use_vmac, why))
    if problems:
        from failover_core.config import ConfigError  # (the CLI's check, before the daemon runs: pydantic is there)

        raise ConfigError(source, problems)

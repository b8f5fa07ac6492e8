"""NetnsLab: HaValet's throw-away "hosts" in network namespaces, for its demo and tests (root + iproute2).

Hosts ``10.99.0.1``, ``10.99.0.2`` ... each in a namespace named ``<prefix><address>``, and a client
namespace ``<prefix>client`` (10.99.0.100) holding the switch that links them: a labs.netns segment
whose switch namespace is the client. Nothing is created in the root namespace, so no traffic can
leave the lab; the random prefix keeps parallel runs apart. A cfg reaches a host with
``ip netns exec @NSP@%s ...`` % (host), the client with ``@NSP@client``.
"""

from __future__ import annotations

from labs.netns import NetnsSegment

CLIENT_ADDRESS = "10.99.0.100"


class NetnsLab:
    def __init__(self, n_hosts: int = 2, tag: str = "hv") -> None:
        self.addresses = [f"10.99.0.{i + 1}" for i in range(n_hosts)]
        self.net = NetnsSegment({a: a for a in self.addresses}, tag=tag, switch="client",
                                switch_address=CLIENT_ADDRESS)
        self.prefix = self.net.prefix + "-"  # the cfg's @NSP@: prefix + host address = the host's namespace
        self.client = self.net.ns("client")

    def ns(self, address: str) -> str:
        return self.net.ns(address)

    def __enter__(self) -> NetnsLab:
        self.setup()
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    def setup(self) -> None:
        self.net.up()

    def break_host(self, address: str) -> None:
        """The host loses its address: services there can no longer bind to it or be reached."""
        self.net.set_address(address, present=False)

    def cut(self, address: str, other_address: str, on: bool = True) -> None:
        """iptables in ``address``'s namespace drops traffic from and to ``other_address`` (a host or the client);
        ``on=False`` removes one such pair of rules."""
        self.net.block(address, other_address, on)

    def cut_outgoing(self, address: str, other_address: str, on: bool = True) -> None:
        """Only what ``address`` sends to ``other_address`` is dropped (one direction); it still receives."""
        self.net.block(address, other_address, on, inbound=False)

    def repair_host(self, address: str) -> None:
        self.net.set_address(address, present=True)

    def teardown(self) -> None:
        self.net.teardown()

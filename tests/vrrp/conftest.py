"""Fixtures of the VRRP tests: a throw-away namespace test bed per test (labs.vrrp.Lab).

Integration tests need root, iproute2 and keepalived (scripts/bootstrap.sh installs them). The
lab removes its namespaces and ends the processes it started (by PID) even when a test fails;
the logs of those processes are printed for a failed test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from labs.vrrp import Lab


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


def _require_testbed() -> None:
    if os.geteuid() != 0:
        pytest.fail("VRRP integration tests need root (network namespaces, raw sockets); "
                    "deselect them with -m 'not integration'")
    for tool in ("ip", "keepalived", "ping", "bridge", "nft"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            pytest.fail(f"{tool} is missing: run scripts/bootstrap.sh (make setup)")


@pytest.fixture
def lab(request) -> Iterator[Lab]:
    yield from _lab(request)


@pytest.fixture
def lab6(request) -> Iterator[Lab]:
    """The same bed with IPv6 addresses too (``Lab(ipv6=True)``)."""
    yield from _lab(request, ipv6=True)


def _lab(request, *, ipv6: bool = False) -> Iterator[Lab]:
    _require_testbed()
    with Lab(("a", "b", "c"), ipv6=ipv6) as the_lab:
        try:
            yield the_lab
        finally:
            rep = getattr(request.node, "rep_call", None)
            if rep is not None and rep.failed:
                for rp in the_lab.processes:
                    print(f"----- {rp.kind} on {rp.host} (pid {rp.pid}) log -----")
                    print(rp.log_text()[-4000:])

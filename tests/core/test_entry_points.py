"""The installed distribution: imports, `python -m X --help`; and the make demo trace (labs.core_demo)."""

import subprocess
import sys

import pytest

from labs import importable_env


def test_packages_import():
    import DockerFailover  # noqa: F401
    import failover_core  # noqa: F401
    import FailoverWitness  # noqa: F401
    import HaValet  # noqa: F401
    import VrrpFailover  # noqa: F401


@pytest.mark.parametrize("module", ["DockerFailover", "VrrpFailover", "HaValet", "FailoverWitness"])
def test_module_cli_parses_help_and_offers_check(module):
    r = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "--check" in r.stdout and "-t" in r.stdout


def test_core_demo_prints_a_decision_trace():
    r = subprocess.run([sys.executable, "-m", "labs.core_demo"], capture_output=True, text=True, timeout=60,
                       env=importable_env())  # labs/ is not installed
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "[secondary.verified.primary_down]" in out  # takeover confirmed by the witness
    assert "t= 12.0s  secondary start" in out  # last heartbeat t=9 + timeout 3
    assert "[primary.handover]" in out  # primary waits for the release on failback

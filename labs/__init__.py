"""labs: the test beds, demos and sample service of the toolkit; not installed, not shipped.

Network-namespace labs (``netns`` builds them for ``vrrp``, ``docker`` and ``valet``), real VOLTTRON
platforms (``volttron_platform``, ``volttron_cluster``), the valet's sample service, one
``*_demo`` per system and the one wait helper (``wait``). Used by the tests (pytest puts the repo
root on sys.path), ``make demo`` and ``make bench``, which run from the repo root. setup.py and the
agent wheel (FailoverAgent/pyproject.toml) leave this folder out, so a subprocess that runs a
``python -m labs...`` module needs the repo root on PYTHONPATH: ``importable_env()``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

REPO_ROOT = str(Path(__file__).resolve().parent.parent)


def importable_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's environment) with the repo root first on PYTHONPATH."""
    env = dict(os.environ if env is None else env)
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != REPO_ROOT]
    env["PYTHONPATH"] = os.pathsep.join([REPO_ROOT, *rest])
    return env

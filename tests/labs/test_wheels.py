"""What ships: the project wheel (setup.py) and the agent wheel (`pip wheel ./FailoverAgent`, installed with
`vctl install`) carry the systems and nothing of labs/ (test beds, demos, the sample service, the wait helper)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from labs import REPO_ROOT
from labs.volttron_platform import FAILOVER_AGENT_SRC, build_failover_agent_wheel

# a test bed, a demo or a sample service inside a shipped package
LAB_FILES = re.compile(r"(^|/)(labs|bench|tests)/|demo|sample_service|(^|/)(lab|two_host_lab|netns_lab|netns|"
                       r"platform_runner|cluster|wait|valet_service)\.py$")


def wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        return z.namelist()


def build_project_wheel(src: Path, out: Path) -> Path:
    """``pip wheel`` of a copy of the checkout (an in-tree build would write build/ into it)."""
    copy = out / "src"
    shutil.copytree(src, copy, ignore=shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__",
                                                              ".pytest_cache", ".ruff_cache", ".hypothesis"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "--disable-pip-version-check", "-w", str(out), str(copy)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    (wheel,) = out.glob("*.whl")
    return wheel


def test_project_wheel_holds_the_systems_and_no_test_beds(tmp_path):
    names = wheel_names(build_project_wheel(Path(REPO_ROOT), tmp_path))
    tops = {n.split("/")[0] for n in names}
    assert tops - {"failover_core", "failover_agent", "DockerFailover", "VrrpFailover", "HaValet",
                   "FailoverWitness"} == {
        "failover_toolkit-0.1.0.dist-info"}
    assert not [n for n in names if LAB_FILES.search(n)]
    for module in ("failover_core/decide.py", "failover_agent/agent.py", "DockerFailover/decider.py",
                   "VrrpFailover/machine.py", "HaValet/valet.py", "FailoverWitness/server.py"):
        assert module in names  # the check above looked at a real wheel


def test_agent_wheel_holds_only_the_agent_and_the_core(tmp_path):
    names = wheel_names(build_failover_agent_wheel(tmp_path))
    packages = [n for n in names if ".dist-info/" not in n]
    assert {n.split("/")[0] for n in packages} == {"failover_agent", "failover_core"}
    assert not [n for n in packages if LAB_FILES.search(n)]
    # exactly the package sources, nothing built or copied in from elsewhere
    sources = {p.relative_to(FAILOVER_AGENT_SRC).as_posix() for pkg in ("failover_agent", "failover_core")
               for p in (FAILOVER_AGENT_SRC / pkg).rglob("*.py")}
    assert {n for n in packages if n.endswith(".py")} == sources
    assert {"failover_agent/agent.py", "failover_agent/witness.py", "failover_core/decide.py"} <= set(packages)

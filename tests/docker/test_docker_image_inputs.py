"""The inputs of the offline image build (labs.docker_image), without a Docker daemon: the wheelhouse repacked from
the venv (the runtime closure, wheels pip installs with no index, RECORDs that match the installed bytes), the base
root file system (Python, its libraries and pip run in a chroot of it), and the build context (what the Dockerfile
COPYs, the wheels where its pip looks)."""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata as md
import io
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from labs.docker_image import (
    DOCKERFILE,
    REPO,
    WHEELS_IN_CONTEXT,
    _record_hash,
    base_rootfs,
    build_context,
    dockerfile_copy_sources,
    repack,
    requirement_closure,
    wheel_name,
)

CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"


def names(dists: list[md.Distribution]) -> set[str]:
    return {canonicalize_name(d.metadata["Name"]) for d in dists}


def test_closure_is_the_runtime_dependencies_without_extras() -> None:
    got = names(requirement_closure(["failover-toolkit"]))
    assert {"failover-toolkit", "pydantic", "pydantic-core", "aiohttp", "yarl", "multidict", "docker", "requests",
            "urllib3", "pyroute2"} <= got
    assert not got & {"pytest", "volttron", "poetry", "matplotlib", "ruff", "hypothesis"}  # extras stay out


@pytest.mark.parametrize("name", ["idna", "pydantic-core"])
def test_repacked_wheel_holds_exactly_the_installed_files(name: str, tmp_path: Path) -> None:
    dist = md.distribution(name)
    whl = repack(dist, tmp_path)
    assert whl.name == wheel_name(dist) and whl.name.startswith(f"{re.sub(r'[-.]', '_', name)}-{dist.version}-")
    with zipfile.ZipFile(whl) as z:
        members = set(z.namelist())
        record_name = next(m for m in members if m.endswith(".dist-info/RECORD"))
        rows = list(csv.reader(io.StringIO(z.read(record_name).decode())))
        assert {r[0] for r in rows} == members
        for path, digest, size in rows:
            if path == record_name:
                continue
            data = z.read(path)
            assert digest == _record_hash(data) and int(size) == len(data)
            installed = Path(str(dist.locate_file(path))).read_bytes()
            assert hashlib.sha256(data).digest() == hashlib.sha256(installed).digest(), path
    assert not any("__pycache__" in m or m.endswith(("/INSTALLER", "/REQUESTED", "/direct_url.json"))
                   for m in members)


def test_repacked_wheel_installs_with_no_index(tmp_path: Path) -> None:
    whl = repack(md.distribution("idna"), tmp_path / "wh")
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--quiet",
                        "--disable-pip-version-check", "--target", str(target), str(whl)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-S", "-c", "import idna, sys; print(idna.__file__, idna.__version__)"],
                       capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(target)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(str(target)) and r.stdout.split()[1] == md.version("idna")


def test_repack_refuses_a_distribution_without_a_wheel_tag(tmp_path: Path) -> None:
    class NoWheel(md.PathDistribution):
        def read_text(self, filename: str) -> str | None:
            return "Wheel-Version: 1.0\n" if filename == "WHEEL" else super().read_text(filename)

    dist = md.distribution("idna")
    with pytest.raises(RuntimeError, match="no Tag"):
        repack(NoWheel(dist._path), tmp_path)  # type: ignore[attr-defined]


def test_base_rootfs_runs_python_its_libraries_and_pip_in_a_chroot(tmp_path: Path) -> None:
    root = base_rootfs(tmp_path)
    assert root.size < 80 * 1024 * 1024  # measured 47 MB (docs/docker.md)
    code = ("import ssl, sqlite3, ctypes, asyncio, json, lzma, bz2, uuid, hashlib, zlib, sys; "
            "print(sys.version_info[:2], ssl.OPENSSL_VERSION.split()[0])")
    r = subprocess.run([CHROOT, str(root.dir), root.python, "-c", code], capture_output=True, text=True,
                       timeout=60, env={"PATH": "/usr/local/bin:/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"({sys.version_info.major}, {sys.version_info.minor}) OpenSSL"
    r = subprocess.run([CHROOT, str(root.dir), "/bin/sh", "-c", "python -m pip --version && pip --version"],
                       capture_output=True, text=True, timeout=60, env={"PATH": "/usr/local/bin:/usr/bin:/bin"})
    assert r.returncode == 0 and r.stdout.count(f"pip {md.version('pip')}") == 2, r.stdout + r.stderr
    assert not list(root.dir.rglob("EXTERNALLY-MANAGED"))  # pip may install into the image's interpreter
    assert not (root.dir / "usr/lib/python3.11/test").exists()


def test_build_context_holds_what_the_dockerfile_copies_and_the_wheels(tmp_path: Path) -> None:
    wheels = tmp_path / "wh"
    wheels.mkdir()
    (wheels / "demo-1.0-py3-none-any.whl").write_bytes(b"PK")
    ctx = build_context(tmp_path / "ctx", wheels)
    sources = dockerfile_copy_sources()
    assert "setup.py" in sources and "DockerFailover" in sources and "/opt/venv" not in sources  # --from skipped
    for src in sources:
        assert (ctx / src).exists(), src
    assert (ctx / DOCKERFILE.relative_to(REPO)).read_text() == DOCKERFILE.read_text()
    assert (ctx / WHEELS_IN_CONTEXT / "demo-1.0-py3-none-any.whl").exists()
    assert not list(ctx.rglob("__pycache__"))
    assert f"--find-links {WHEELS_IN_CONTEXT}" in DOCKERFILE.read_text()


def test_dockerfile_keeps_the_base_image_argument_for_a_user_with_a_registry() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", text, re.M)
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert froms == ["${BASE_IMAGE}", "${BASE_IMAGE}"]
    assert re.search(r"^ARG PIP_NO_INDEX$", text, re.M)  # unset unless given: pip uses the index then

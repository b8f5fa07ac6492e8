"""The DockerFailover image built on a machine with no container registry (for the tests and the bench).

Not used by the agent. ``DockerFailover/deploy/Dockerfile`` starts ``FROM ${BASE_IMAGE}`` (python:3.11-slim for a
user with a registry). Here no base image can be pulled, so:

- ``base_rootfs`` makes a minimal root file system from this machine's own Python 3.11, the Debian interpreter the
  toolkit's venv runs on (``/usr/bin/python3.11``): the interpreter, its standard library without the parts a
  service never imports (tests, tkinter, idle, the static libpython of config-3.11-*), the shared libraries that
  ldd finds for the interpreter, its extension modules and the extension modules of the wheels to be installed,
  pip (copied from the venv), busybox-static for ``/bin/sh``. ``import_base`` loads it with ``docker import``.
  Why this and not debootstrap: it needs nothing but what is on the machine after scripts/bootstrap.sh (no
  Debian mirror at test time, no package unpacking: ~2 s of tar against a debootstrap run that downloads and
  unpacks ~100 packages), and it is the very interpreter the rest of the suite is tested with.
- ``wheelhouse`` writes the toolkit's runtime dependencies (and the build backend, setuptools and wheel) as wheels,
  repacked from the venv's installed distributions: the same pins, byte for byte the files the suite runs, and no
  index. A wheel is a zip of the files its RECORD lists plus its dist-info; what an install adds (console scripts
  in bin/, ``__pycache__``, INSTALLER, REQUESTED, direct_url.json) is left out, and RECORD is written anew.
- ``build_context`` lays out the files the Dockerfile COPYs (read from the Dockerfile itself) and the wheels in
  ``DockerFailover/deploy/wheels``, so the build sends a few MB, not the whole checkout.
- ``build_image`` builds with ``--network=none`` and ``PIP_NO_INDEX=1``: pip takes every wheel from that folder.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import importlib.metadata as md
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "DockerFailover" / "deploy" / "Dockerfile"
WHEELS_IN_CONTEXT = "DockerFailover/deploy/wheels"
DISTRIBUTION = "failover-toolkit"
BUILD_BACKEND = ("setuptools", "wheel")  # setup.py without [build-system]: pip's default backend
BASE_TAG = "fdk/python-base:3.11"
IMAGE_TAG = "docker-failover:latest"

# standard-library parts a service never imports (measured: 54 MB -> ~20 MB with __pycache__ kept)
STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "lib2to3", "pydoc_data", "ensurepip", "distutils",
               "__phello__", "site-packages", "dist-packages", "EXTERNALLY-MANAGED", "sitecustomize.py",
               "turtle.py"}
STDLIB_SKIP_PREFIX = ("config-3",)  # config-3.11-x86_64-linux-gnu: the static libpython for building embeddings
# extension modules a service never imports, with the libraries only they pull in (Berkeley DB, Kerberos via NIS,
# ncurses, readline: ~5 MB) and the interpreter's own test modules
DYNLOAD_SKIP = {"_dbm", "_gdbm", "nis", "_curses", "_curses_panel", "readline", "_tkinter", "_ctypes_test",
                "_testcapi", "_testinternalcapi", "_testbuffer", "_testimportmultiple", "_testmultiphase",
                "_testclinic", "_xxtestfuzz", "xxlimited", "xxlimited_35", "xxsubtype", "_xxsubinterpreters"}


class ImageBuildError(RuntimeError):
    """A step of the image build failed; the message says which and carries the tool's output."""


# ---------------------------------------------------------------------------------------------- the wheelhouse

def requirement_closure(roots: Iterable[str]) -> list[md.Distribution]:
    """The installed distributions ``roots`` need to run, transitively (markers evaluated for this interpreter,
    no extras), the roots included; raises ImageBuildError if one is not installed."""
    env = default_environment()
    seen: dict[str, md.Distribution] = {}
    todo = [(name, frozenset[str]()) for name in roots]
    while todo:
        name, extras = todo.pop()
        key = canonicalize_name(name)
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            raise ImageBuildError(f"{name} is needed but not installed in {sys.prefix}") from None
        if key in seen and not extras:
            continue
        seen[key] = dist
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is not None and not any(
                    req.marker.evaluate({**env, "extra": e}) for e in (extras or {""})):
                continue
            todo.append((req.name, frozenset(req.extras)))
    return sorted(seen.values(), key=lambda d: canonicalize_name(d.metadata["Name"]))


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def wheel_name(dist: md.Distribution) -> str:
    """``name-version-pytags-abitags-plattags.whl`` from the dist-info's WHEEL tags (compressed tag sets)."""
    tags = [ln.split(":", 1)[1].strip() for ln in (dist.read_text("WHEEL") or "").splitlines()
            if ln.startswith("Tag:")]
    if not tags:
        raise ImageBuildError(f"{dist.metadata['Name']}: no Tag in its WHEEL file (not installed from a wheel?)")
    parts = [t.split("-") for t in tags]

    def joined(i: int) -> str:
        return ".".join(dict.fromkeys(p[i] for p in parts))

    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    return f"{name}-{dist.version}-{joined(0)}-{joined(1)}-{joined(2)}.whl"


def repack(dist: md.Distribution, dest: Path) -> Path:
    """Write ``dist`` (installed from a wheel) back as a wheel in ``dest``; returns its path."""
    files = dist.files
    if files is None:
        raise ImageBuildError(f"{dist.metadata['Name']}: no RECORD (not installed by pip from a wheel)")
    dist_info = None
    entries: list[tuple[str, Path]] = []
    for f in files:
        rel = str(f)
        if rel.startswith("../") or rel.startswith("/"):
            if "/bin/" in rel:
                continue  # console scripts: the installer writes them from entry_points.txt
            raise ImageBuildError(f"{dist.metadata['Name']}: a file outside site-packages ({rel}): cannot repack")
        if "__pycache__" in f.parts:
            continue
        top = f.parts[0]
        if top.endswith(".dist-info"):
            dist_info = top
            if f.name in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json"):
                continue
        entries.append((rel, Path(str(f.locate()))))
    if dist_info is None:
        raise ImageBuildError(f"{dist.metadata['Name']}: its RECORD lists no .dist-info")
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / wheel_name(dist)
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for rel, path in entries:
            data = path.read_bytes()
            info = zipfile.ZipInfo(rel, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (path.stat().st_mode & 0o777 | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
            writer.writerow([rel, _record_hash(data), len(data)])
        writer.writerow([f"{dist_info}/RECORD", "", ""])
        z.writestr(zipfile.ZipInfo(f"{dist_info}/RECORD", date_time=(2020, 1, 1, 0, 0, 0)), record.getvalue())
    return out


def wheelhouse(dest: Path) -> list[Path]:
    """The toolkit's runtime dependencies and the build backend as wheels in ``dest`` (the toolkit itself is
    built from source by the Dockerfile)."""
    dest.mkdir(parents=True, exist_ok=True)
    dists = [d for d in requirement_closure([DISTRIBUTION, *BUILD_BACKEND])
             if canonicalize_name(d.metadata["Name"]) != DISTRIBUTION]
    return [repack(d, dest) for d in dists]


# ---------------------------------------------------------------------------------------------- the base image

def _ldd(paths: Iterable[Path]) -> set[Path]:
    """The shared libraries (absolute paths as the loader finds them) that ``paths`` need, the loader included."""
    need: set[Path] = set()
    for p in paths:
        r = subprocess.run(["ldd", str(p)], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            if "not a dynamic executable" in r.stdout + r.stderr:
                continue
            raise ImageBuildError(f"ldd {p}: {r.stderr.strip() or r.stdout.strip()}")
        for line in r.stdout.splitlines():
            line = line.strip()
            if "not found" in line:
                raise ImageBuildError(f"ldd {p}: {line}")
            m = re.search(r"(/\S+) \(0x", line)
            if m:
                need.add(Path(m.group(1)))
    return need


def _shared_objects(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.so*") if p.is_file() and not p.is_symlink()]


@dataclass
class Rootfs:
    dir: Path
    python: str  # the interpreter's path inside

    @property
    def size(self) -> int:
        """Bytes of regular files (what the image's layer holds, uncompressed)."""
        return sum(p.stat().st_size for p in self.dir.rglob("*") if p.is_file() and not p.is_symlink())

    def tar(self, path: Path) -> Path:
        with tarfile.open(path, "w") as t:
            for p in sorted(self.dir.iterdir()):
                t.add(p, arcname=p.name)
        return path


def base_rootfs(dest: Path, python: str = "/usr/bin/python3.11") -> Rootfs:
    """A minimal root file system in ``dest/rootfs`` that runs ``python`` with pip (see the module's docstring)."""
    import pip

    exe = Path(python).resolve()
    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    stdlib = Path(f"/usr/lib/python{ver}")
    if not exe.is_file() or not stdlib.is_dir():
        raise ImageBuildError(f"{exe} or {stdlib} missing: base_rootfs needs Debian's python{ver} (bootstrap.sh)")
    busybox = shutil.which("busybox")
    if busybox is None:
        raise ImageBuildError("busybox-static is needed for /bin/sh (bootstrap.sh installs it)")
    root = dest / "rootfs"
    if root.exists():
        shutil.rmtree(root)
    for d in ("usr/bin", "usr/lib", "usr/lib64", "usr/sbin", "usr/local/bin", "etc", "tmp", "root", "var/tmp",
              "proc", "sys", "dev", "run"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for link in ("bin", "lib", "lib64", "sbin"):  # Debian 12 is merged-/usr
        (root / link).symlink_to(f"usr/{link}")
    os.chmod(root / "tmp", 0o1777)
    os.chmod(root / "var/tmp", 0o1777)

    def skip(_dir: str, names: list[str]) -> set[str]:
        return {n for n in names if n in STDLIB_SKIP or n.startswith(STDLIB_SKIP_PREFIX)
                or (n.endswith(".so") and n.split(".", 1)[0] in DYNLOAD_SKIP)}

    shutil.copy2(exe, root / "usr/bin" / exe.name)
    (root / "usr/bin/python3").symlink_to(exe.name)
    (root / "usr/local/bin/python").symlink_to(f"/usr/bin/{exe.name}")  # the HEALTHCHECK says python
    shutil.copytree(stdlib, root / stdlib.relative_to("/"), ignore=skip, symlinks=True)
    # pip, from the venv (Debian's python puts /usr/local/lib/pythonX.Y/dist-packages on sys.path)
    site = root / f"usr/local/lib/python{ver}/dist-packages"
    pip_dir = Path(pip.__file__).parent
    shutil.copytree(pip_dir, site / "pip", ignore=shutil.ignore_patterns("__pycache__"))
    pip_info = md.distribution("pip")._path  # type: ignore[attr-defined]
    shutil.copytree(pip_info, site / Path(pip_info).name)
    (root / "usr/local/bin/pip").write_text(f"#!/usr/bin/{exe.name}\nimport sys\nfrom pip._internal.cli.main "
                                            "import main\nsys.exit(main())\n")
    os.chmod(root / "usr/local/bin/pip", 0o755)
    # /bin/sh and the usual tools for RUN lines and docker exec
    shutil.copy2(busybox, root / "usr/bin/busybox")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for a in applets:
        if a != "busybox" and not (root / "usr/bin" / a).exists():
            (root / "usr/bin" / a).symlink_to("busybox")
    # shared libraries: the interpreter's, its extension modules', and the wheels' extension modules'
    wheel_sos = [p for d in requirement_closure([DISTRIBUTION]) for f in (d.files or [])
                 if ".so" in f.name for p in [Path(str(f.locate()))] if p.is_file()]
    for lib in _ldd([exe, *_shared_objects(root / stdlib.relative_to("/")), *wheel_sos]):
        rel = lib.relative_to("/")
        # /lib, /lib64 are links to usr/ here: write through the real directory
        target = root / ("usr" / rel if rel.parts[0] in ("lib", "lib64") else rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shutil.copy2(lib.resolve(), target)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (root / "etc/group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (root / "etc/os-release").write_text('NAME="fdk python base"\nID=fdk\n'
                                         f'PRETTY_NAME="Debian {ver} interpreter of the build machine"\n')
    return Rootfs(dir=root, python=f"/usr/bin/{exe.name}")


def import_base(client: Any, rootfs: Rootfs, tag: str = BASE_TAG) -> str:
    """``docker import`` of the root file system (docker SDK client); returns the image id."""
    repo, _, version = tag.partition(":")
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    tar = rootfs.tar(rootfs.dir.with_suffix(".tar"))
    try:
        client.api.import_image_from_file(str(tar), repository=repo, tag=version or "latest",
                                          changes=[f"ENV PATH={path}", 'CMD ["python3"]'])
    finally:
        tar.unlink()
    return str(client.images.get(tag).id)


# ---------------------------------------------------------------------------------------------- the build

def dockerfile_copy_sources(dockerfile: Path = DOCKERFILE) -> list[str]:
    """The build-context paths the Dockerfile's COPY lines name (``--from=`` copies excluded)."""
    text = dockerfile.read_text().replace("\\\n", " ")
    out: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].upper() != "COPY":
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        if any(w.startswith("--from") for w in words[1:]):
            continue
        out += args[:-1]
    return out


def build_context(dest: Path, wheels: Path) -> Path:
    """The Dockerfile's build context: what it COPYs from the checkout, the Dockerfile, and ``wheels``."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "*.whl")
    for src in dockerfile_copy_sources():
        s = REPO / src
        if s.is_dir():
            shutil.copytree(s, dest / src, ignore=ignore)
        else:
            (dest / src).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, dest / src)
    (dest / DOCKERFILE.relative_to(REPO)).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(DOCKERFILE, dest / DOCKERFILE.relative_to(REPO))
    (dest / WHEELS_IN_CONTEXT).mkdir(parents=True, exist_ok=True)
    for w in wheels.glob("*.whl"):
        shutil.copy2(w, dest / WHEELS_IN_CONTEXT / w.name)
    return dest


@dataclass
class Built:
    image_id: str
    size: int  # bytes, as docker reports the image
    base_size: int
    seconds: dict[str, float]  # rootfs, wheelhouse, import, build
    log: str


def build_image(client: Any, work: Path, tag: str = IMAGE_TAG, base_tag: str = BASE_TAG) -> Built:
    """Base root file system, wheelhouse, ``docker import``, then ``docker build --network=none`` of the
    Dockerfile with ``BASE_IMAGE`` = the imported base and ``PIP_NO_INDEX=1``."""
    seconds: dict[str, float] = {}
    t = time.monotonic()
    rootfs = base_rootfs(work / "base")
    seconds["rootfs"] = time.monotonic() - t
    t = time.monotonic()
    wheels = work / "wheels"
    wheelhouse(wheels)
    ctx = build_context(work / "context", wheels)
    seconds["wheelhouse"] = time.monotonic() - t
    t = time.monotonic()
    import_base(client, rootfs, base_tag)
    shutil.rmtree(rootfs.dir)
    seconds["import"] = time.monotonic() - t
    t = time.monotonic()
    log: list[str] = []
    try:
        stream = client.api.build(path=str(ctx), dockerfile=str(DOCKERFILE.relative_to(REPO)), tag=tag, rm=True,
                                  forcerm=True, network_mode="none", decode=True,
                                  buildargs={"BASE_IMAGE": base_tag, "PIP_NO_INDEX": "1"})
        for chunk in stream:
            if "stream" in chunk:
                log.append(chunk["stream"])
            if "error" in chunk:
                raise ImageBuildError(f"docker build: {chunk['error']}\n{''.join(log)[-4000:]}")
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
    seconds["build"] = time.monotonic() - t
    image = client.images.get(tag)
    base = client.images.get(base_tag)
    return Built(image_id=str(image.id), size=int(image.attrs["Size"]), base_size=int(base.attrs["Size"]),
                 seconds=seconds, log="".join(log))


def copy_image(src: Any, dst: Any, tag: str = IMAGE_TAG) -> None:
    """``docker save | docker load`` from one daemon to another (docker SDK clients)."""
    data = b"".join(src.images.get(tag).save(named=True))
    dst.images.load(data)


# ---------------------------------------------------------------------------------------------- running it on the lab

AGENT_CONTAINER = "failover-agent"
KEEPER_CONTAINER = "failover-keeper"
KEEPER_RUN_DIR = "/run/docker-failover"  # inside the agent's and the keeper's containers: the keeper's socket
KEEPER_SOCKET = f"{KEEPER_RUN_DIR}/keeper.sock"
LAB_SERVER = {"a": "server1", "b": "server2"}
_NS = 1_000_000_000


def _client(lab: Any, key: str) -> Any:
    client = lab.hosts[key].client
    assert client is not None
    return client


def keeper_host_dir(lab: Any, key: str) -> Path:
    """The host directory shared by host ``key``'s agent and keeper containers (a named volume in compose.yaml)."""
    d = Path(lab.hosts[key].dir) / "keeper-run"
    d.mkdir(mode=0o700, exist_ok=True)
    return d


def remove_container(lab: Any, key: str, name: str) -> None:
    import docker

    with contextlib.suppress(docker.errors.NotFound):
        _client(lab, key).containers.get(name).remove(force=True, v=True)


def run_keeper(lab: Any, key: str, tag: str = IMAGE_TAG) -> Any:
    """The fence keeper as a container of its own on host ``key``, as compose.yaml's ``keeper`` service runs it:
    ``python -m DockerFailover.fence --listen`` on the shared directory's socket, the host's Docker socket, no
    network, its health check a ``--ping``. Returns the container."""
    remove_container(lab, key, KEEPER_CONTAINER)
    h = lab.hosts[key]
    return _client(lab, key).containers.run(
        tag, ["--name", f"{LAB_SERVER[key]}-keeper", "--listen", KEEPER_SOCKET],
        entrypoint=["python", "-m", "DockerFailover.fence"], name=KEEPER_CONTAINER, detach=True,
        network_mode="none",
        healthcheck={"test": ["CMD", "python", "-m", "DockerFailover.fence", "--ping", KEEPER_SOCKET],
                     "interval": 5 * _NS, "timeout": 2 * _NS, "retries": 3},
        volumes={str(Path(h.dir) / "docker.sock"): {"bind": "/var/run/docker.sock", "mode": "rw"},
                 str(keeper_host_dir(lab, key)): {"bind": KEEPER_RUN_DIR, "mode": "rw"}})


def run_agent(lab: Any, key: str, config: Path, *, keeper: bool, tag: str = IMAGE_TAG) -> Any:
    """The agent as a container of the image on host ``key`` (host network, the Docker socket, the config);
    ``keeper``: with the keeper's shared directory mounted (the config's ``fence_keeper`` = ``KEEPER_SOCKET``)."""
    remove_container(lab, key, AGENT_CONTAINER)
    h = lab.hosts[key]
    volumes = {str(config): {"bind": "/app/config.py", "mode": "ro"},
               str(Path(h.dir) / "docker.sock"): {"bind": "/var/run/docker.sock", "mode": "rw"}}
    if keeper:
        volumes[str(keeper_host_dir(lab, key))] = {"bind": KEEPER_RUN_DIR, "mode": "rw"}
    return _client(lab, key).containers.run(tag, name=AGENT_CONTAINER, detach=True, network_mode="host",
                                            environment={"DOCKER_FAILOVER_SERVER": LAB_SERVER[key]}, volumes=volumes)


def container_logs(lab: Any, key: str, name: str) -> str:
    import docker

    try:
        return str(_client(lab, key).containers.get(name).logs().decode(errors="replace"))
    except docker.errors.DockerException as e:
        return f"({type(e).__name__}: {e})"


# the layout before the listening keeper, for comparison only (bench/docker_keeper_in_container.py --layout spawn):
# the agent's command line now refuses it (exit 2), so the agent is started past the command line, as it ran then
_OLD_LAYOUT = ("import asyncio, logging, sys\n"
               "from DockerFailover.config import load_node_config\n"
               "from DockerFailover.shell.agent import Agent\n"
               "cfg = load_node_config('/app/config.py', sys.argv[1])\n"
               "logging.basicConfig(level=logging.INFO, format=f'%(asctime)s {cfg.name} %(levelname)s %(name)s: "
               "%(message)s')\n"
               "sys.exit(asyncio.run(Agent(cfg).run()))\n")


def run_agent_with_spawned_keeper(lab: Any, key: str, config: Path, tag: str = IMAGE_TAG) -> Any:
    """The agent in a container with the keeper as its child (``fence_keeper = "spawn"``), as before the fix: the
    keeper dies with the agent's container. For measuring the old behaviour; never a deployment."""
    remove_container(lab, key, AGENT_CONTAINER)
    h = lab.hosts[key]
    return _client(lab, key).containers.run(
        tag, [LAB_SERVER[key]], entrypoint=["python", "-c", _OLD_LAYOUT], name=AGENT_CONTAINER, detach=True,
        network_mode="host",
        volumes={str(config): {"bind": "/app/config.py", "mode": "ro"},
                 str(Path(h.dir) / "docker.sock"): {"bind": "/var/run/docker.sock", "mode": "rw"}})

"""Real VOLTTRON platforms on loopback, for the tests, the bench and the demo (not used by the agent).

``Platform`` starts a real ``volttron`` process as the non-root platform user (env FT_VOLTTRON_USER,
default ``volttron``) from the platform venv (env FT_PLATFORM_VENV, default
/opt/failover-toolkit/platform-venv), in a VOLTTRON_HOME that user owns, and drives it with ``vctl``.
It knows the traps measured in shared/testbed/NOTES.md: volttron refuses root, the first start hangs
without a seeded ``$VOLTTRON_HOME/pyproject.toml``, a platform started with SIGINT ignored cannot be
stopped, and ``vctl install`` of a source dir needs poetry: we build wheels once and install those.

The platform runs in its own session, so ``crash()`` kills the platform AND its agents (they share its
process group) by PID with SIGKILL: a machine dying, not a clean shutdown.

With ``netns`` the platform (and so every agent it starts, and every ``vctl``) runs inside that network
namespace (``ip netns exec NS setpriv --reuid=USER ... -- env ... volttron``), listening on the
namespace's ``host`` address: iptables rules in the namespace then cut its links for real.
``private_venv`` makes a copy of the platform venv the test owns (``vctl install`` writes into the venv:
parallel test runs must not install their agent versions into each other's platforms).

Platforms of one user share that user's ``~/.volttron_instances``, which a starting platform reads and then
rewrites in place (``open("w")``, then write): two starting at once, one read the other's truncated file and died
("platform secondary exited rc=0", JSONDecodeError; make demo and a clean-clone CI run). ``start()`` holds
``instances_lock`` from the spawn until the platform has written its entry, and mends a file that does not parse
(what two clean stops at once can leave: they share one ``.tmp`` name). volttron-testing's wrapper gives each of its
platforms a HOME of its own, so ``labs.vtesting_platform`` needs none of this.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from labs.wait import WaitTimeout, poll_until

PLATFORM_USER = os.environ.get("FT_VOLTTRON_USER", "volttron")
PLATFORM_VENV = Path(os.environ.get("FT_PLATFORM_VENV", "/opt/failover-toolkit/platform-venv"))
FAILOVER_AGENT_SRC = Path(__file__).resolve().parent.parent / "FailoverAgent"  # pyproject.toml + packages
CONTROL = "platform.control"
NETNS_PORT = 22916  # a namespace has a port space of its own
FAILOVER_CAPABILITIES = ("platform.control.start_agent", "platform.control.stop_agent",
                         "platform.control.clear_status")


class PlatformError(RuntimeError):
    """A platform or vctl step failed; the message carries the command output."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _user_ids(user: str) -> tuple[int, int]:
    pw = pwd.getpwnam(user)
    return pw.pw_uid, pw.pw_gid


def make_shared_dir(prefix: str, user: str = PLATFORM_USER) -> Path:
    """A fresh 0755 directory under /tmp owned by the platform user (pytest's tmp_path is 0700 root)."""
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    uid, gid = _user_ids(user)
    os.chown(d, uid, gid)
    d.chmod(0o755)
    return d


def seed_volttron_home(vhome: Path, venv: Path = PLATFORM_VENV) -> None:
    """Create ``vhome`` with the ``pyproject.toml`` a first start needs (without it the platform runs ``poetry
    init``, which asks an index and hangs or dies here)."""
    vhome.mkdir(parents=True, exist_ok=True)
    pyproject = vhome / "pyproject.toml"
    if not pyproject.exists():
        pyproject.write_text(textwrap.dedent(f"""\
            [project]
            name = "volttron"
            version = "0.1.0"
            description = ""
            authors = [{{name = "volttron", email = "volttron@example.invalid"}}]
            requires-python = "~{_platform_python_version(venv)}"
            dependencies = []

            [build-system]
            requires = ["poetry-core>=2.0.0,<3.0.0"]
            build-backend = "poetry.core.masonry.api"
            """))


@contextlib.contextmanager
def instances_lock(home: Path, timeout: float = 120.0) -> Iterator[Path]:
    """Hold the lock on ``home/.volttron_instances`` (a file lock beside it: every process and thread of this
    machine that starts a ``Platform`` in that HOME takes it), yield the instances file. Taken by polling
    (LOCK_NB): a blocking flock would stop every greenlet of a gevent-patched process, the holder's too."""
    with open(home / ".volttron_instances.ft-lock", "a") as f:
        def take() -> bool:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        poll_until(take, timeout, what=f"the lock on {home}/.volttron_instances", interval=0.05)
        try:
            yield home / ".volttron_instances"
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _instances(path: Path) -> dict[str, object] | None:
    """The parsed instances file, {} when there is none, None when it does not parse."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def chown_tree(path: Path, user: str) -> None:
    uid, gid = _user_ids(user)
    for p in [path, *path.rglob("*")]:
        os.chown(p, uid, gid)


def _platform_python_version(venv: Path) -> str:
    out = subprocess.run([str(venv / "bin" / "python"), "-c",
                          "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _restore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class InstalledAgent:
    identity: str
    uuid: str


class Platform:
    """One real VOLTTRON platform. ``start()``, ``vctl(...)``, ``install(...)``, ``stop()``, ``crash()``."""

    def __init__(self, name: str, base: Path, *, user: str = PLATFORM_USER, venv: Path = PLATFORM_VENV,
                 port: int | None = None, netns: str | None = None, host: str = "127.0.0.1") -> None:
        self.name = name
        self.user = user
        self.venv = venv
        self.netns = netns
        self.root = base / name
        self.vhome = self.root / "home"
        self.port = port or (NETNS_PORT if netns else free_port())
        self.address = f"tcp://{host}:{self.port}"
        self.log = self.root / "volttron.log"
        self.proc: subprocess.Popen | None = None
        self.startup_s = 0.0
        self.user_home = Path(pwd.getpwnam(user).pw_dir)
        self.env = {"VOLTTRON_HOME": str(self.vhome), "VIRTUAL_ENV": str(venv), "HOME": str(self.user_home),
                    "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
                    "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        for k in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX"):
            if k in os.environ:
                self.env[k] = os.environ[k]

    # -- lifecycle -------------------------------------------------------------------------------
    def _command(self, argv: list[str]) -> tuple[list[str], str | None]:
        """``argv`` as the platform user (in the namespace, when there is one), and the ``user=`` for Popen."""
        if self.netns is None:
            return argv, self.user
        env = [f"{k}={v}" for k, v in self.env.items()]
        return ["ip", "netns", "exec", self.netns, "setpriv", f"--reuid={self.user}", f"--regid={self.user}",
                "--init-groups", "--", "env", "-i", *env, *argv], None

    def _seed(self) -> None:
        seed_volttron_home(self.vhome, self.venv)
        chown_tree(self.root, self.user)

    def start(self, timeout: float = 60.0) -> None:
        self._seed()
        (self.vhome / "VOLTTRON_PID").unlink(missing_ok=True)
        t0 = time.monotonic()
        with instances_lock(self.user_home, timeout) as instances:
            if _instances(instances) is None:
                instances.unlink()  # it lists running platforms only; each rewrites its entry when it starts
            self._spawn()
            proc = self.proc
            assert proc is not None
            key = self.vhome.resolve().as_posix()

            def entry_written() -> bool:  # the file rewritten (whole: we hold the lock) or the platform gone
                listed = _instances(instances)
                return key in (listed or {}) or (self.vhome / "VOLTTRON_PID").exists() or \
                    proc.poll() is not None

            self._await(entry_written, t0 + timeout, "to write its entry in ~/.volttron_instances")

        def started() -> bool:
            if (self.vhome / "VOLTTRON_PID").exists():
                return True
            if proc.poll() is not None:
                raise PlatformError(f"platform {self.name} exited rc={proc.returncode}: "
                                    f"{(self.root / 'stderr.log').read_text()[-2000:]}")
            return False

        self._await(started, t0 + timeout, "to start")
        self.startup_s = time.monotonic() - t0

    def _spawn(self) -> None:
        stderr = open(self.root / "stderr.log", "ab")  # noqa: SIM115 (owned by the child from here)
        argv, user = self._command([str(self.venv / "bin" / "volttron"), "--address", self.address,
                                    "--instance-name", self.name, "-v", "-l", str(self.log)])
        self.proc = subprocess.Popen(
            argv, env=self.env, cwd=self.root, user=user, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=stderr, start_new_session=True, preexec_fn=_restore_sigint)
        stderr.close()

    def _await(self, cond: Callable[[], bool], deadline: float, what: str) -> None:
        try:
            poll_until(cond, max(0.0, deadline - time.monotonic()), what=f"platform {self.name} {what}",
                       interval=0.1)
        except WaitTimeout:
            self.crash()
            raise PlatformError(f"platform {self.name} did not start in time: still waiting {what}") from None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        """Clean shutdown: SIGINT (the platform stops its agents), SIGKILL of the group if it hangs."""
        if not self.running:
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.crash()
        self._reap_group()

    def crash(self) -> None:
        """SIGKILL the platform and every agent process it started (its process group), by PID."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._reap_group()

    def _reap_group(self) -> None:
        """Agents left in the platform's group after it exited (orphans) get SIGKILL too."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    # -- vctl ------------------------------------------------------------------------------------
    def vctl(self, *args: str, check: bool = True, timeout: float = 120.0) -> str:
        argv, user = self._command([str(self.venv / "bin" / "vctl"), *args])
        r = subprocess.run(argv, env=self.env, cwd=self.root, user=user, capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise PlatformError(f"[{self.name}] vctl {' '.join(args)} rc={r.returncode}\n{r.stdout}\n{r.stderr}")
        return r.stdout

    def shell(self, command: str, *, cwd: Path | None = None, env: dict[str, str] | None = None,
              timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        """``bash -c COMMAND`` as an operator on this platform's host: the platform user, VOLTTRON's venv first on
        PATH (VIRTUAL_ENV, VOLTTRON_HOME set), in ``cwd``; ``env`` adds variables. Not checked: the caller judges."""
        argv, user = self._command(["bash", "-c", command])
        full_env = {**self.env, **(env or {})}
        if self.netns is not None:  # _command passed self.env through `env -i`: pass the extras the same way
            argv[argv.index("-i") + 1:argv.index("-i") + 1] = [f"{k}={v}" for k, v in (env or {}).items()]
        return subprocess.run(argv, env=full_env, cwd=cwd or self.root, user=user, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def serverkey(self) -> str:
        return json.loads((self.vhome / "credentials_store" / "platform.json").read_text())["publickey"]

    def agent_publickey(self, identity: str) -> str:
        return json.loads((self.vhome / "credentials_store" / f"{identity}.json").read_text())["publickey"]

    def install(self, package: Path, identity: str, config: dict | None = None, *, tag: str | None = None,
                start: bool = False) -> InstalledAgent:
        args = ["install", str(package), "--vip-identity", identity]  # a wheel, or a poetry project dir
        if config is not None:
            cfg = self.root / f"{identity}.config.json"
            cfg.write_text(json.dumps(config, indent=2))
            chown_tree(cfg, self.user)
            args += ["--agent-config", str(cfg)]
        if tag:
            args += ["--tag", tag]
        if start:
            args.append("--start")
        out = self.vctl(*args, timeout=300)
        m = re.search(r"Agent ([0-9a-f-]{36}) installed", out)
        if m is None:
            raise PlatformError(f"[{self.name}] install of {identity}: no uuid in the output:\n{out}")
        return InstalledAgent(identity, m.group(1))

    def authorize_failover(self, identity: str) -> None:
        """What the operator runs once: let the failover agent start/stop agents via platform.control."""
        self.vctl("authz", "add", "agent", identity, "--rpc-capabilities", *FAILOVER_CAPABILITIES)

    def close(self) -> None:
        """End of the cluster: a clean stop (what ``labs.vtesting_platform.WrapperPlatform.close`` does its way)."""
        self.stop()

    def remove(self, agent: InstalledAgent) -> None:
        """``vctl remove``. Mind: it also uninstalls the agent's package from the platform venv, which
        the test platforms share: reinstall it (or stop instead of remove) when others still need it."""
        self.vctl("remove", "--force", agent.uuid)


PROJECT_PACKAGES = ("failover_agent", "failover_core", "ft_service_agent")


def private_venv(dest: Path, user: str = PLATFORM_USER, src: Path = PLATFORM_VENV) -> Path:
    """A copy of the platform venv at ``dest`` that only this test run installs into: shebangs point at the
    copy, and the project's agent packages another run may have installed into the original are removed
    (so ``vctl install`` puts OUR wheels in, whatever version number they carry). ~2 s."""
    subprocess.run(["cp", "-a", str(src), str(dest)], check=True, capture_output=True)
    old, new = f"#!{src}/".encode(), f"#!{dest}/".encode()
    for script in (dest / "bin").iterdir():
        if script.is_file() and not script.is_symlink():
            head = script.read_bytes()
            if head.startswith(old):
                script.write_bytes(new + head[len(old):])
    for site in dest.glob("lib/python3*/site-packages"):
        for entry in site.iterdir():
            stem = entry.name.split("-")[0]
            if stem in PROJECT_PACKAGES:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    uid, gid = _user_ids(user)
    os.chown(dest, uid, gid)  # cp -a kept the owners of everything inside
    return dest


def copy_agent_source(dest: Path, user: str = PLATFORM_USER, src: Path = FAILOVER_AGENT_SRC) -> Path:
    """A copy of FailoverAgent/ the platform user owns: `vctl install DIR` runs `poetry build` in DIR."""
    target = dest / src.name
    shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "dist", "build"))
    chown_tree(target, user)
    return target


def build_wheel(src: Path, out_dir: Path) -> Path:
    """``pip wheel`` a poetry project (no deps, no build isolation: the index here is offline)."""
    work = Path(tempfile.mkdtemp(prefix="ft-agent-build-"))
    try:
        shutil.copytree(src, work / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "dist", "build"))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "--disable-pip-version-check", "-w", str(out_dir), str(work / "src")],
                       check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as e:
        raise PlatformError(f"building a wheel of {src} failed:\n{e.stdout}\n{e.stderr}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    wheels = sorted(out_dir.glob("*.whl"), key=lambda p: p.stat().st_mtime)
    if not wheels:
        raise PlatformError(f"no wheel built from {src}")
    wheels[-1].chmod(0o644)
    return wheels[-1]


SERVICE_AGENT_PYPROJECT = """\
[tool.poetry]
name = "ft-service-agent"
version = "0.1.0"
description = "a stand-in managed agent for the failover tests and demo"
authors = ["failover toolkit <failover-toolkit@example.invalid>"]
packages = [{ include = "ft_service_agent" }]

[tool.poetry.dependencies]
python = ">=3.10,<3.13"

[tool.poetry.scripts]
ft-service-agent = "ft_service_agent.agent:main"

[build-system]
requires = ["poetry-core>=1.0.0"]
build-backend = "poetry.core.masonry.api"
"""

SERVICE_AGENT_CODE = '''\
"""A stand-in managed service: publishes service/<identity> once a second while it runs.

A file ``ft-service-startup-delay`` in VOLTTRON_HOME (seconds) makes its start-up that slow (tests: a stop
that lands in the start-up)."""
import os
import time
from pathlib import Path

from volttron.client.vip.agent import Agent, Core
from volttron.utils import vip_main

_DELAY = Path(os.environ.get("VOLTTRON_HOME", "/nonexistent")) / "ft-service-startup-delay"
if _DELAY.is_file():
    time.sleep(float(_DELAY.read_text()))


class ServiceAgent(Agent):
    def __init__(self, config_path=None, **kwargs):
        super().__init__(**kwargs)
        self.beats = 0

    @Core.receiver("onstart")
    def onstart(self, sender, **kwargs):
        self.core.periodic(1.0, self.beat)

    def beat(self):
        self.beats += 1
        self.vip.pubsub.publish("pubsub", f"service/{self.core.identity}", message={"beats": self.beats})


def main():
    vip_main(ServiceAgent, version="0.1.0")
'''


def service_agent_source(dest: Path, user: str = PLATFORM_USER) -> Path:
    """The stand-in service agent as a poetry project in ``dest``, owned by ``user`` (vctl install DIR builds it)."""
    (dest / "ft_service_agent").mkdir(parents=True)
    (dest / "ft_service_agent" / "__init__.py").write_text("")
    (dest / "ft_service_agent" / "agent.py").write_text(SERVICE_AGENT_CODE)
    (dest / "pyproject.toml").write_text(SERVICE_AGENT_PYPROJECT)
    chown_tree(dest, user)
    return dest


def build_service_agent_wheel(out_dir: Path) -> Path:
    src = Path(tempfile.mkdtemp(prefix="ft-service-src-"))
    try:
        return build_wheel(service_agent_source(src / "ft-service-agent"), out_dir)
    finally:
        shutil.rmtree(src, ignore_errors=True)


def build_failover_agent_wheel(out_dir: Path) -> Path:
    return build_wheel(FAILOVER_AGENT_SRC, out_dir)

"""volttron-testing's real-platform wrapper (``PlatformWrapper``, 0.5.1rc4), adapted so it runs modular VOLTTRON here.

Traced live (docs/failoveragent.md, "volttron-testing's PlatformWrapper"): unadapted, ``startup_platform``
starts ``volttron`` as the calling user with no ``VIRTUAL_ENV`` and no seeded ``pyproject.toml``, sleeps 5 s,
writes VOLTTRON_PID itself, overwrites ``credentials_store/platform.json`` with ``uuid4`` strings, then builds
its ``dynamic_agent`` with that uuid as serverkey and uuid strings as the agent's own CURVE keys: the agent's
core dies at once (``ValueError: unknown key encoding`` in volttron's ``decode_key``) and the wrapper's
``agent.vip.ping("")`` then blocks for ever in ZeroMQ's send (its ``.get(timeout=30)`` is never reached).

``AdaptedPlatformWrapper`` keeps the wrapper's code paths (its ``startup_platform``, ``restart_platform``,
``install_agent``, ``agent_pid``, ``list_agents``, ``stop_platform``, ``shutdown_platform``) and changes only what
the trace showed (docs/failoveragent.md has the evidence for each):

1. the platform user: ``volttron``/``vctl`` refuse root, so ``PATH`` starts with shims that run the platform
   venv's commands as FT_VOLTTRON_USER (``setpriv``, vctl from a writable cwd); the wrapper's directory is theirs;
2. ``VIRTUAL_ENV`` (without it the platform's poetry makes a new virtualenv and asks pypi.org) and a seeded
   ``$VOLTTRON_HOME/pyproject.toml`` (without it the first start dies in ``setup_poetry_project``);
3. the keys: ``platform.json`` is pre-created with a CURVE key pair we know (the platform loads it), and
   ``build_agent`` puts it back after the wrapper's overwrite, uses it as the serverkey and gives each built
   agent a real key pair instead of uuid strings;
4. the log: the shim splits the wrapper's joined ``-l/path`` (volttron-core only parses ``-l PATH``; the log
   went to a stderr pipe nobody reads) and adds ``-v``;
5. no wait for ``control.connection`` to leave (a permanent peer in rc38: every wait ran its full 10 s);
6. ``WrapperPlatform`` grants the dynamic agent the control RPCs the wrapper's stop calls, stops with ``vctl
   shutdown --platform`` when ``stop_platform`` fails (rc38's shutdown RPC raises with agents running), retires
   the dynamic agent of a crashed platform (else it takes the name from the next one), installs from source
   directories (the wheel path cannot carry a config and misreads rc38's output).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import gevent
import gevent.event

from labs.volttron_platform import (
    FAILOVER_CAPABILITIES,
    PLATFORM_USER,
    PLATFORM_VENV,
    InstalledAgent,
    PlatformError,
    chown_tree,
    copy_agent_source,
    free_port,
    seed_volttron_home,
    service_agent_source,
)

# what the wrapper's own stop_platform/shutdown_platform call from its dynamic agent
WRAPPER_CAPABILITIES = ("platform.control.shutdown", "platform.control.remove_agent")

SHIM = """\
#!/bin/bash
# volttron-testing's PlatformWrapper runs this as {name}: the platform venv's {name}, as {user}.
# The wrapper passes its log file joined, "-l/path": volttron-core's __main__ only knows "-l PATH" (a joined one
# leaves the log on stderr, a pipe the wrapper never reads: it fills and the platform blocks); split it, and
# log at INFO (-v) like labs.volttron_platform
{cd}
args=()
for a in "$@"; do
  case "$a" in
    {joined_log}) args+=(-l "${{a#-l}}" -v) ;;
    *) args+=("$a") ;;
  esac
done
if [ "$(id -u)" = 0 ]; then
  exec setpriv --reuid={user} --regid={user} --init-groups -- {venv}/bin/{name} "${{args[@]}}"
fi
exec {venv}/bin/{name} "${{args[@]}}"
"""


def curve_keypair() -> tuple[str, str]:
    """A CURVE key pair in VOLTTRON's encoding (URL-safe base64, 43 characters)."""
    import zmq
    from volttron.messagebus.zmq.keystore import encode_key

    public, secret = zmq.curve_keypair()
    return encode_key(public), encode_key(secret)


_CLASS: list[type] = []
_RETIRED: list[Any] = []


def adapted_platform_wrapper(instance_name: str, *, user: str = PLATFORM_USER, venv: Path = PLATFORM_VENV) -> Any:
    """A new, not yet started ``AdaptedPlatformWrapper`` (volttrontesting is imported on first use)."""
    if not _CLASS:
        _CLASS.append(_make_class())
    return _CLASS[0](instance_name, user=user, venv=venv)


def _make_class() -> type:
    from volttrontesting.platformwrapper import PlatformWrapper

    class AdaptedPlatformWrapper(PlatformWrapper):  # type: ignore[misc]
        """volttron-testing's PlatformWrapper with the three adaptations of this module's docstring."""

        def __init__(self, instance_name: str, *, user: str = PLATFORM_USER, venv: Path = PLATFORM_VENV) -> None:
            super().__init__(messagebus="zmq", instance_name=instance_name)
            self.user = user
            self.venv = Path(venv)
            root = Path(self.volttron_home).parent
            shims = root / "bin"
            shims.mkdir()
            for name in ("volttron", "vctl", "volttron-ctl"):
                cd = 'cd "${VOLTTRON_HOME:-/tmp}" || exit 1' if name != "volttron" else ""
                shim = shims / name
                joined_log = "-l?*" if name == "volttron" else "--no-such-arg--"  # vctl's arguments pass as they are
                shim.write_text(SHIM.format(name=name, user=user, venv=self.venv, cd=cd, joined_log=joined_log))
                shim.chmod(0o755)
            self.env["PATH"] = f"{shims}:{self.venv / 'bin'}:{self.env['PATH']}"
            self.env["VIRTUAL_ENV"] = str(self.venv)
            for k in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX"):
                if k in os.environ:
                    self.env[k] = os.environ[k]
            vhome = Path(self.volttron_home)
            seed_volttron_home(vhome, self.venv)
            self.platform_publickey, self._platform_secretkey = curve_keypair()
            self._platform_json = json.dumps({"identity": "platform", "publickey": self.platform_publickey,
                                              "secretkey": self._platform_secretkey, "domain": "", "address": ""})
            creds = vhome / "credentials_store"
            creds.mkdir(mode=0o700)
            (creds / "platform.json").write_text(self._platform_json)
            (creds / "platform.json").chmod(0o600)
            chown_tree(root, user)

        def restore_platform_keys(self) -> None:
            """Undo startup_platform's overwrite of platform.json (vctl and agents read the serverkey there)."""
            path = Path(self.volttron_home) / "credentials_store" / "platform.json"
            if path.read_text() != self._platform_json:
                path.write_text(self._platform_json)
            self.serverkey = self.publickey = self.platform_publickey

        def build_agent(self, address: str | None = None, should_spawn: bool = True, identity: str | None = None,
                        publickey: str | None = None, secretkey: str | None = None,
                        serverkey: str | None = None, **kwargs: Any) -> Any:
            self.restore_platform_keys()
            if publickey is None:
                publickey, secretkey = curve_keypair()
            agent = super().build_agent(address=address, should_spawn=False, identity=identity, publickey=publickey,
                                        secretkey=secretkey, serverkey=serverkey or self.platform_publickey, **kwargs)
            if should_spawn:  # as the wrapper does, but the core's greenlet is kept: retire_agent can end it
                ready = gevent.event.Event()
                agent.ft_greenlet = gevent.spawn(agent.core.run, ready)
                ready.wait(timeout=2)
                assert agent.vip.ping("").get(timeout=30)
            return agent

        def retire_agent(self, agent: Any) -> None:
            """End an agent of build_agent whose platform died: otherwise its core reconnects to the next start
            under its identity, and the platform's ROUTER ignores the new dynamic agent of the same name (its ping
            timed out after a crash and restart)."""
            _RETIRED.append(agent)  # never collected: the core names its monitor socket after id(socket)
            with contextlib.suppress(Exception):
                agent.core.connection.disconnect(linger=0)
            greenlet = getattr(agent, "ft_greenlet", None)
            if greenlet is not None:
                greenlet.kill(block=False)

        def __wait_for_control_connection_to_exit__(self, timeout: int = 10) -> None:
            """The wrapper waits, before and after each vctl call, for the peer ``control.connection`` to leave
            (old VOLTTRON's vctl connection). In volttron-core rc38 that peer is the platform's own and never
            leaves: every wait ran its full 10 s. Nothing to wait for."""

        def vctl(self, *args: str) -> str:
            """``vctl ARGS`` in this platform's environment, through the wrapper's ``run_command``."""
            return self.run_command(["vctl", *args])

        def agent_processes(self) -> list[int]:
            """PIDs of live processes started for this VOLTTRON_HOME (the platform and its agents)."""
            wanted = f"VOLTTRON_HOME={self.volttron_home}".encode()
            pids = []
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                with contextlib.suppress(OSError):
                    if wanted in (entry / "environ").read_bytes().split(b"\0"):
                        pids.append(int(entry.name))
            return pids

        def kill_leftovers(self) -> list[int]:
            """SIGKILL, by PID, whatever of this platform survived shutdown_platform (the wrapper's SIGTERM
            orphans agents that the control shutdown did not stop)."""
            pids = [p for p in self.agent_processes() if p != os.getpid()]
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return pids

    return AdaptedPlatformWrapper


class WrapperPlatform:
    """One platform of a ``labs.volttron_cluster.Cluster`` run by the adapted volttron-testing wrapper: the same
    interface as ``labs.volttron_platform.Platform`` (start, stop, crash, vctl, install, ...), carried out by the
    wrapper's own methods where it has one (``startup_platform``/``restart_platform``, ``stop_platform``,
    ``install_agent`` from a source directory with its config, ``shutdown_platform``)."""

    netns = None

    def __init__(self, name: str, base: Path, *, user: str = PLATFORM_USER, venv: Path = PLATFORM_VENV,
                 port: int | None = None) -> None:
        self.name = name
        self.user = user
        self.venv = venv
        self.base = base  # the cluster's dir; the wrapper keeps its own (VOLTTRON_HOME's parent, self.root)
        self.wrapper = adapted_platform_wrapper(name, user=user, venv=venv)
        self.vhome = Path(self.wrapper.volttron_home)
        self.root = self.vhome.parent
        self.log = Path(self.wrapper.log_path)
        self.port = port or free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.startup_s = 0.0
        self._started_once = False
        self._sources: dict[str, Path] = {}

    @property
    def proc(self) -> Any:
        return self.wrapper.p_process

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        t0 = time.monotonic()
        with gevent.Timeout(timeout, PlatformError(f"wrapper platform {self.name} did not start in {timeout:g}s")):
            if self._started_once:
                self.wrapper.restart_platform()
            else:
                self.wrapper.startup_platform(address=self.address)
                self._started_once = True
            # the wrapper's own shutdown calls platform.control.shutdown and remove_agent from its dynamic agent:
            # the platform refuses both until they are granted (RemoteError AuthException otherwise)
            self.vctl("authz", "add", "agent", "dynamic_agent", "--rpc-capabilities",
                      *WRAPPER_CAPABILITIES, check=False)
        self.startup_s = time.monotonic() - t0

    def stop(self, timeout: float = 30.0) -> None:
        """Clean stop, the wrapper's way (``stop_platform``: platform.control.shutdown from its dynamic agent, then
        SIGTERM). With agents running, rc38's shutdown RPC fails (RemoteError "dictionary changed size during
        iteration") and stop_platform raises before its SIGTERM: then ``vctl shutdown --platform``."""
        if not self.running:
            return
        self.stop_errors: list[str] = []
        try:
            with gevent.Timeout(timeout):
                self.wrapper.stop_platform()
        except (Exception, gevent.Timeout) as e:
            self.stop_errors.append(f"stop_platform: {type(e).__name__}: {e}")
            self.vctl("shutdown", "--platform", check=False, timeout=timeout)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)
        self._forget()

    def crash(self) -> None:
        """SIGKILL of the platform and its agents (every process with this VOLTTRON_HOME), by PID."""
        self.wrapper.kill_leftovers()
        with contextlib.suppress(Exception):
            self.proc.wait(10)
        self._forget()

    def _forget(self) -> None:
        """After the platform died: stop the wrapper's dynamic agent (it would reconnect to the next start under
        the same identity as the new one) and drop the PID file the wrapper wrote (its is_running reads it)."""
        agent = self.wrapper.dynamic_agent
        self.wrapper.dynamic_agent = None
        if agent is not None:
            self.wrapper.retire_agent(agent)
        (self.vhome / "VOLTTRON_PID").unlink(missing_ok=True)
        self.wrapper.kill_leftovers()

    def close(self) -> None:
        """The wrapper's ``shutdown_platform`` (removes the agents and its directory), then whatever it left."""
        try:
            if self.running:
                with gevent.Timeout(60):
                    self.wrapper.shutdown_platform()
        except (Exception, gevent.Timeout) as e:
            print(f"labs.vtesting_platform: shutdown_platform of {self.name}: {type(e).__name__}: {e}")
        finally:
            self.wrapper.kill_leftovers()
            if not os.environ.get("FT_KEEP_PLATFORMS"):
                shutil.rmtree(self.root, ignore_errors=True)

    def vctl(self, *args: str, check: bool = True, timeout: float = 120.0) -> str:
        """``vctl ARGS`` with the wrapper's environment (its PATH's shim runs it as the platform user)."""
        r = subprocess.run(["vctl", *args], env=self.wrapper.env, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise PlatformError(f"[{self.name}] vctl {' '.join(args)} rc={r.returncode}\n{r.stdout}\n{r.stderr}")
        return r.stdout

    def serverkey(self) -> str:
        return json.loads((self.vhome / "credentials_store" / "platform.json").read_text())["publickey"]

    def agent_publickey(self, identity: str) -> str:
        return json.loads((self.vhome / "credentials_store" / f"{identity}.json").read_text())["publickey"]

    def install(self, package: Path, identity: str, config: dict | None = None, *, tag: str | None = None,
                start: bool = False) -> InstalledAgent:
        """The wrapper's ``install_agent`` from a source directory with the config (``vctl install DIR
        --agent-config``; a wheel here names which source). Its wheel path takes no config, and parses ``vctl
        --json install WHEEL``'s output as JSON, which rc38 prefixes with "Installing from wheel ...": it fails."""
        uuid = self.wrapper.install_agent(agent_dir=str(self._source_for(package)), config_file=config or {},
                                          vip_identity=identity, start=start)
        if tag:
            self.vctl("tag", uuid, tag)
        return InstalledAgent(identity, uuid)

    def _source_for(self, package: Path) -> Path:
        if package.is_dir():
            return package
        name = package.name.split("-")[0]
        if name not in self._sources:
            dest = self.root / f"src-{name}"
            dest.mkdir()
            chown_tree(dest, self.user)
            self._sources[name] = (copy_agent_source(dest, self.user) if name == "failover_agent"
                                   else service_agent_source(dest, self.user))
        return self._sources[name]

    def authorize_failover(self, identity: str) -> None:
        self.vctl("authz", "add", "agent", identity, "--rpc-capabilities", *FAILOVER_CAPABILITIES)

    def remove(self, agent: InstalledAgent) -> None:
        self.wrapper.remove_agent(agent.uuid)

"""DockerFailover configuration: the documented ``config.py`` format, plus TOML and JSON.

``config.py`` is read with ``ast`` and never executed: the module may hold only a docstring and
assignments of literals (numbers, strings, booleans, None, lists, dicts) to plain names. Anything
else (an import, a call, an expression) is a ConfigError naming the line. Example::

    heartbeat_interval = 0.5
    check_heartbeat_interval = 0.5
    heartbeat_timeout = 2.0
    startup_grace_period = 5
    restart_grace_period = 5
    secret = "a long shared secret"
    containers = ["web"]
    servers = {
        "server1": {"endpoint": "http://10.0.0.12:8700", "port": 8700},
        "server2": {"endpoint": "http://10.0.0.11:8700", "port": 8700},
    }

Every top-level setting may be overridden per server inside ``servers`` (``containers``,
``docker_url``, timings, ...). ``endpoint`` is the OTHER agent's URL; ``port`` is ours. The first
server listed is the preferred active on a cold start of both.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from failover_core.config import (
    Bool,
    Command,
    ConfigError,
    FilePath,
    Name,
    Number,
    Port,
    PositiveSeconds,
    Seconds,
    StrictModel,
    as_mapping,
    check_document,
    http_base_url,
    ip_address_text,
    parse_config_text,
    validate_config,
)
from failover_core.errors import LocalUsageError
from failover_core.fencing import FencingTiming
from failover_core.shell.config_file import read_config_text

DEFAULT_CONFIG_PATH = "/app/config.py"
MAX_PYTHON_CONFIG_CHARS = 256 * 1024  # ast.parse of a config.py costs ~1.5 µs a character; real ones are ~1 KB
_CONTAINER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_SERVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")

# keys that may appear at top level and be overridden per server
NODE_KEYS = (
    "heartbeat_interval", "check_heartbeat_interval", "heartbeat_timeout", "startup_grace_period",
    "restart_grace_period", "containers", "stop_timeout", "request_timeout", "max_clock_skew",
    "failback", "failback_hold_down", "notify", "notify_timeout", "docker_url", "state_dir", "listen",
    "term_file", "witness", "fence_keeper",
)
FENCE_KEEPER_SPAWN = "spawn"


class WitnessSettings(StrictModel):
    """``witness = {"url": ..., "secret": ...}``: standard mode (a third vote, self-fencing, the fence keeper)."""

    url: str = Field(description="the witness's URL, http://HOST:PORT (FailoverWitness)")
    secret: str = Field(min_length=16, description="the group's shared secret at the witness")
    group: str = Field(default="docker-failover", description="the pair's group name at the witness")
    kill_bound: PositiveSeconds = Field(default=1.0, le=3600, description=(
        "S: fencing kills the containers (docker kill, no graceful stop) within this many seconds"))
    scheduling_delay: Seconds = Field(default=0.25, le=60, description="D: how late a timer may fire")
    clock_drift: Number = Field(default=0.001, ge=0, lt=0.1, description="rho: relative clock rate error")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        try:
            return http_base_url(v)
        except ValueError as e:
            raise ValueError(f"the witness url {e}") from None

    @field_validator("group")
    @classmethod
    def _group(cls, v: str) -> str:
        if not _SERVER_NAME.match(v):
            raise ValueError("a short name: [A-Za-z0-9][A-Za-z0-9_.-]*")
        return v



class NodeConfig(StrictModel):
    """The effective settings of one agent (globals merged with its ``servers`` entry)."""

    name: Name
    peer: Name
    preferred: Bool = Field(description="first server listed: wins cold starts and ties")
    endpoint: str = Field(description="URL of the OTHER agent, http://host:port")
    port: Port = Field(description="our HTTP API port")
    listen: str = Field("0.0.0.0", description="IP address of our HTTP API (0.0.0.0: all)")
    secret: str = Field(min_length=16, description="shared HMAC secret (same on both servers)")
    containers: list[str]
    heartbeat_interval: PositiveSeconds = Field(default=1.0, le=3600)
    check_heartbeat_interval: PositiveSeconds = Field(default=0.5, le=3600)
    heartbeat_timeout: PositiveSeconds = Field(default=3.0)
    startup_grace_period: Seconds = 10.0
    restart_grace_period: Seconds = 10.0
    stop_timeout: Seconds = Field(default=10.0, le=3600, description="graceful stop before SIGKILL, seconds")
    request_timeout: PositiveSeconds = Field(default=1.0, le=300, description="timeout of every outgoing HTTP request")
    max_clock_skew: PositiveSeconds = Field(default=30.0, le=3600,
                                            description="requests older/newer than this are refused")
    failback: Bool = False
    failback_hold_down: Seconds = 60.0
    notify: Command | None = None
    notify_timeout: PositiveSeconds = Field(default=10.0, le=3600)
    docker_url: str | None = Field(default=None, description="None: DOCKER_HOST or the default socket")
    state_dir: FilePath = "/var/lib/docker-failover"
    witness: WitnessSettings | None = Field(default=None, description=(
        "standard mode; without it (simple mode) a cut link between the two hosts gives two actives"))
    term_file: FilePath | None = Field(default=None, description=(
        "written with the term (one line) before the containers start: bind-mount its directory read-only "
        "into them to use the term as a fencing token"))
    fence_keeper: str = Field(default=FENCE_KEEPER_SPAWN, min_length=1, max_length=107, description=(
        "standard mode: \"spawn\" (the agent starts the fence keeper as its child: right for an agent on the host, "
        "refused in a container, where the keeper would die with the agent) or the absolute path of the unix "
        "socket of a keeper that runs on its own (python -m DockerFailover.fence --listen PATH: its own "
        "container, or a host process); the agent connects to it and starts nothing until it is accepted"))

    @field_validator("fence_keeper")
    @classmethod
    def _fence_keeper(cls, v: str) -> str:
        if v == FENCE_KEEPER_SPAWN:
            return v
        if not v.startswith("/") or v.endswith("/") or any(ord(c) < 32 or c == "\x7f" for c in v):
            raise ValueError('fence_keeper must be "spawn" or the absolute path of the keeper\'s unix socket, e.g. '
                             "/run/docker-failover/keeper.sock")
        return v

    @property
    def keeper_socket(self) -> str | None:
        """The listening keeper's socket path (standard mode, ``fence_keeper`` a path); None: spawn or simple."""
        if self.witness is None or self.fence_keeper == FENCE_KEEPER_SPAWN:
            return None
        return self.fence_keeper

    @field_validator("containers")
    @classmethod
    def _containers(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one container name is required")
        for name in v:
            if not _CONTAINER_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)")
        if len(set(v)) != len(v):
            raise ValueError("container names must be unique")
        return v

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        try:
            return http_base_url(v)
        except ValueError as e:
            raise ValueError(f"endpoint {e}") from None

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        return ip_address_text(v)

    @field_validator("state_dir")
    @classmethod
    def _state_dir(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("state_dir must be an absolute directory path, e.g. /var/lib/docker-failover")
        return v

    @field_validator("docker_url")
    @classmethod
    def _docker_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        scheme, sep, rest = v.partition("://")
        if scheme == "unix" and sep and rest.startswith("/") and len(rest) > 1:
            return v
        if scheme in ("tcp", "http", "https", "ssh") and sep:
            try:
                parts = urlsplit(v)
                host, _ = parts.hostname, parts.port  # .port raises ValueError for a bad port
            except ValueError:
                host = None
            if host:
                return v
        raise ValueError("docker_url must be unix:///path/to/docker.sock, tcp://HOST:PORT, http(s)://HOST:PORT or "
                         "ssh://[USER@]HOST (or leave it out: DOCKER_HOST or the default socket)")

    @field_validator("term_file")
    @classmethod
    def _term_file(cls, v: str | None) -> str | None:
        if v is not None and (not v.startswith("/") or v.endswith("/")):
            raise ValueError("term_file must be an absolute file path, e.g. /run/docker-failover/term")
        return v

    @model_validator(mode="after")
    def _timings(self) -> NodeConfig:
        if self.heartbeat_interval >= self.heartbeat_timeout:
            raise ValueError(f"heartbeat_interval ({self.heartbeat_interval:g}) must be smaller than "
                             f"heartbeat_timeout ({self.heartbeat_timeout:g})")
        if self.request_timeout > self.heartbeat_timeout:
            raise ValueError(f"request_timeout ({self.request_timeout:g}) must not exceed "
                             f"heartbeat_timeout ({self.heartbeat_timeout:g})")
        if self.witness is not None:
            keys = (f"heartbeat_timeout ({self.heartbeat_timeout:g}), witness.kill_bound "
                    f"({self.witness.kill_bound:g}), heartbeat_interval ({self.heartbeat_interval:g})")
            try:
                timing = self.fencing
            except LocalUsageError as e:  # no lease at all: the active could not stop within the timeout
                raise ValueError(f"{keys}: {e}") from None
            assert timing is not None
            problem = timing.lease_problem(self.heartbeat_interval)
            if problem is not None and problem[0] == "error":
                raise ValueError(f"{keys}: {problem[1]}")
        return self

    @property
    def fencing(self) -> FencingTiming | None:
        """Standard mode's timing (T = heartbeat_timeout, S = witness.kill_bound); None in simple mode.

        The passive and the witness wait T (``down_after``); the active's ContactLease is ``lease`` = T minus
        the fencing margin."""
        w = self.witness
        if w is None:
            return None
        return FencingTiming(timeout=self.heartbeat_timeout, stop_bound=w.kill_bound,
                             scheduling_delay=w.scheduling_delay, clock_drift=w.clock_drift)

    @property
    def stall_threshold(self) -> float:
        """A gap in the agent's loop longer than this is a stall (SIGSTOP, starvation): the decider is told
        before it reads what queued meanwhile. The loop wakes at least every check_heartbeat_interval, so
        twice that is a stall; never more than heartbeat_timeout - heartbeat_interval, the shortest freeze
        after which the peer or the witness may call us gone (a 1.4 s freeze at T 1.5 s went unnoticed
        when the threshold was T: Docker chaos, standard, seed 3)."""
        return min(2 * self.check_heartbeat_interval, self.heartbeat_timeout - self.heartbeat_interval)

    @property
    def warnings(self) -> tuple[str, ...]:
        """What is allowed but unwise (``--check`` prints them, the agent logs them at start)."""
        timing = self.fencing
        if timing is None:
            if self.fence_keeper != FENCE_KEEPER_SPAWN:
                return (f"fence_keeper ({self.fence_keeper}) is used in standard mode only (configure `witness`); "
                        "in simple mode there is no lease to guard and the agent does not connect to it",)
            return ()
        problem = timing.lease_problem(self.heartbeat_interval)
        if problem is None:
            return ()
        return (f"heartbeat_timeout ({self.heartbeat_timeout:g}) with witness.kill_bound "
                f"({timing.stop_bound:g}) and heartbeat_interval ({self.heartbeat_interval:g}): {problem[1]}",)

    @property
    def mode(self) -> str:
        return "simple" if self.witness is None else "standard"

    def mode_summary(self) -> str:
        """One paragraph for ``--check`` and the start-up log: what this mode promises, plainly."""
        timing = self.fencing
        if timing is None:
            return ("mode: simple (no witness). A cut link between the two hosts gives TWO ACTIVES (both run the "
                    "containers) until it heals; a dead or frozen agent leaves its containers running beside the "
                    "peer's. Configure `witness` for standard mode.")
        return (f"mode: standard (witness {self.witness.url if self.witness else ''}). The passive takes over "
                f"{timing.down_after:g} s after the active went silent (heartbeat_timeout, plus the witness's answer "
                f"and the container start); the active gives up {timing.lease:.3f} s after its last acknowledged "
                f"heartbeat (fencing margin {timing.margin:.3f} s) and kills its containers. In detail: "
                f"{timing.explain()}. The witness group must use timeout = {timing.timeout:g}.")


# ---------------------------------------------------------------------------------------------- config.py via ast

def parse_python_config(text: str, *, source: str) -> dict[str, Any]:
    """Literal assignments of a ``config.py`` as a dict, without executing anything."""
    try:
        tree = ast.parse(text, filename=source)
    except SyntaxError as e:
        raise ConfigError(f"{source}:{e.lineno}", [("", (e.text or "").strip()[:80], f"not valid Python: {e.msg}")]
                          ) from None
    except (ValueError, RecursionError, MemoryError) as e:  # NUL bytes, nesting the parser cannot follow
        raise ConfigError(source, [("", "", f"not valid Python: {str(e)[:200] or type(e).__name__}")]) from None
    out: dict[str, Any] = {}
    for i, node in enumerate(tree.body):
        where = f"{source}:{node.lineno}"
        if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            continue  # module docstring
        if isinstance(node, ast.Assign):
            if len(node.targets) != 1 or not isinstance(node.targets[0], ast.Name):
                raise ConfigError(where, [("", ast.unparse(node)[:80],
                                           "only 'name = literal' assignments are allowed (one plain name)")])
            name, value_node = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, value_node = node.target.id, node.value
        else:
            raise ConfigError(where, [("", ast.unparse(node)[:80],
                                       "config.py may contain only 'name = literal' assignments "
                                       "(no imports, calls, loops or expressions; it is never executed)")])
        try:
            value = ast.literal_eval(value_node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise ConfigError(where, [(name, ast.unparse(value_node)[:80],
                                       "must be a literal (number, string, boolean, None, list or dict); "
                                       "names, calls and arithmetic are not evaluated")]) from None
        if name in out:
            raise ConfigError(where, [(name, value, "assigned twice")])
        out[name] = _plain(value)
    return out


def _plain(v: Any) -> Any:
    """Tuples become lists so the Python format means the same as the JSON one."""
    if isinstance(v, tuple | list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a ``.py`` (ast), ``.toml`` or ``.json`` config file."""
    p = Path(path)
    text = read_config_text(p)
    if p.suffix == ".py":
        if len(text) > MAX_PYTHON_CONFIG_CHARS:
            raise ConfigError(str(p), [("", text, f"a config.py of at most {MAX_PYTHON_CONFIG_CHARS // 1024} KiB")])
        data: Any = parse_python_config(text, source=str(p))
        check_document(data, source=str(p))
    else:
        fmt = p.suffix[1:] if p.suffix in (".json", ".toml") else None
        data = parse_config_text(text, source=str(p), fmt=fmt)
    return dict(as_mapping(data, source=str(p)))


# ---------------------------------------------------------------------------------------------- effective node config

_TOP_KEYS = {*NODE_KEYS, "secret", "servers"}
_SERVER_KEYS = {*NODE_KEYS, "endpoint", "port"}


def node_config(data: dict[str, Any], server: str, *, source: str) -> NodeConfig:
    """Validate the whole file and return the effective settings of ``server``."""
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ConfigError(source, [(k, data[k], f"unknown key (allowed: {', '.join(sorted(_TOP_KEYS))})")
                                   for k in unknown])
    servers = data.get("servers")
    if not isinstance(servers, dict) or len(servers) != 2:
        shown = servers if servers is not None else "(missing)"
        raise ConfigError(source, [("servers", shown, "a mapping of exactly two servers, e.g. "
                                    "{'server1': {'endpoint': ..., 'port': ...}, 'server2': {...}}")])
    names = list(servers)
    for n in names:
        if not isinstance(n, str) or not _SERVER_NAME.match(n):
            raise ConfigError(source, [("servers", n, "server names are short words: [A-Za-z0-9][A-Za-z0-9_.-]*")])
        if not isinstance(servers[n], dict):
            raise ConfigError(source, [(f"servers.{n}", servers[n], "must be a mapping with endpoint and port")])
        bad = sorted(set(servers[n]) - _SERVER_KEYS)
        if bad:
            raise ConfigError(source, [(f"servers.{n}.{k}", servers[n][k],
                                        f"unknown key (allowed: {', '.join(sorted(_SERVER_KEYS))})") for k in bad])
    endpoints = {}
    for n in names:
        try:
            endpoints[n] = http_base_url(servers[n]["endpoint"]).lower()
        except (KeyError, ValueError, TypeError, AttributeError):
            continue  # reported by the validation below
    if len(endpoints) == 2 and len(set(endpoints.values())) == 1:
        raise ConfigError(source, [(f"servers.{names[1]}.endpoint", servers[names[1]]["endpoint"],
                                    f"both servers' endpoints name the same agent ({servers[names[0]]['endpoint']}): "
                                    "each server's endpoint is the OTHER server's agent")])
    if server not in servers:
        raise ConfigError(source, [("--server", server, f"one of the configured servers: {', '.join(names)}")])
    merged: dict[str, Any] = {k: v for k, v in data.items() if k != "servers"}
    merged.update(servers[server])
    merged.update(name=server, peer=next(n for n in names if n != server), preferred=names[0] == server)
    try:
        return validate_config(NodeConfig, merged, source=source)
    except ConfigError as e:
        # name the key as the operator wrote it (per-server keys live under servers.NAME); a problem of the whole
        # node (the timings' checks) shows the timings, not every setting (the secrets would land in a log)
        problems = [(f"servers.{server}.{k}" if k in servers[server] else k, v if k else _timings_of(merged), a)
                    for k, v, a in e.problems]
        raise ConfigError(source, problems) from None


def _timings_of(merged: dict[str, Any]) -> dict[str, Any]:
    out = {k: merged[k] for k in ("heartbeat_interval", "heartbeat_timeout", "request_timeout") if k in merged}
    witness = merged.get("witness")
    if isinstance(witness, dict) and "kill_bound" in witness:
        out["witness.kill_bound"] = witness["kill_bound"]
    return out


def load_node_config(path: str | Path, server: str) -> NodeConfig:
    return node_config(read_config_file(path), server, source=str(path))

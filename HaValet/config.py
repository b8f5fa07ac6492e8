"""HaValet configuration: the documented ``ha_valet.cfg`` format, read verbatim, or a TOML form.

cfg form (the original tool's format)::

    :Ostro                      # or [Ostro]
        host = valet1
        stand_by_list = valet2  # also spelled standy_by_list or stand_by
        user = m04060
        priority = 1
        start_command = "ssh %s@%s 'cd @DIR@ ; ./daemon.py start'" % (user, host)
        ...

- ``#`` and ``;`` start comment lines; indentation is ignored; ``key = value`` splits at the first ``=``.
- Command keys (``start_command``/``start``, ``stop_command``/``stop``, ``test_command``/``test``) must be a
  quoted string, optionally ``% (key, ...)`` naming keys of the same section (HaValet.command_expr);
  other values are plain text (quotes around them are removed).
- Commands are rendered once per host: ``host`` is bound to the host the command is for, so one
  section serves its own host and every stand-by host (the original re-evaluated the expression
  with ``host`` rebound the same way).
- ``[valet]`` holds settings of the valet itself (intervals, timeouts, restart limits, notify,
  status_file) and, for the per-host mode, ``node``, ``listen``, ``secret``, ``peers``, heartbeat timing
  and the witness (``HostMode``; without ``node`` the valet runs in single-valet mode); ``[placeholders]``
  maps ``NAME = value`` to fill ``@NAME@`` in commands. Placeholders
  that are not filled stay as written (``--check`` lists them as warnings).
- Sections with the same name are one logical process when any of them has a stand-by list (the
  README's "Host A / Host B" example); otherwise they are independent processes named ``Name@host``.

TOML form (``.toml``): the same sections as tables and the same keys; command values are used as
written (no ``%`` language), and every command gets HAVALET_HOST, HAVALET_USER, HAVALET_PORT,
HAVALET_PROTOCOL and HAVALET_PROCESS in its environment to reach stand-by hosts.

Everything is validated once, here, into frozen pydantic models. A bad file raises failover_core's
ConfigError, one line per problem: ``file:line: key '[Section] key': value ... is not allowed: ...``
(TOML problems have no line; a problem with a whole line has no key).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from failover_core.config import (
    MAX_CONFIG_BYTES,
    MISSING,
    Bool,
    Command,
    ConfigError,
    FilePath,
    HostName,
    Integer,
    Name,
    PositiveSeconds,
    Seconds,
    StrictModel,
    bad_character,
    ip_address_text,
    parse_config_text,
    validation_context,
)
from failover_core.errors import LocalUsageError
from failover_core.fencing import FencingTiming
from failover_core.shell.config_file import read_config_text
from HaValet.command_expr import ExprError, parse_command_expr

COMMAND_KEYS = ("start_command", "stop_command", "test_command")
KEY_ALIASES = {
    "start": "start_command",
    "stop": "stop_command",
    "test": "test_command",
    "standy_by_list": "stand_by_list",
    "stand_by": "stand_by_list",
}
REQUIRED_KEYS = ("host", "user", *COMMAND_KEYS)
TIMING_KEYS = ("interval", "command_timeout", "start_timeout", "stop_timeout", "start_grace", "start_poll",
               "backoff_initial", "backoff_max", "max_failures", "failure_window")
PROCESS_KEYS = frozenset({"host", "user", "port", "protocol", "order", "priority", "stand_by_list",
                          *COMMAND_KEYS, *TIMING_KEYS})
RESERVED_SECTIONS = ("valet", "placeholders")
MAX_SECTIONS = 1000  # process sections in one file (each is validated per host: keep --check well under a second)
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")
_SECTION_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]*\Z")
_PLACEHOLDER_RE = re.compile(r"@([A-Za-z_][A-Za-z0-9_]*)@")


# whether the file being built has text values (cfg) or typed ones (TOML): set by parse_config for _check
_TEXT_VALUES: ContextVar[bool] = ContextVar("havalet_text_values", default=False)

# one problem of a file, for failover_core's ConfigError: (key, value, what is allowed, line or None)
Problem = tuple[str, object, str, int | None]
# where a key was set: ("[Section] key", line or None)
Place = tuple[str, int | None]


class Timing(StrictModel):
    """How often and how patiently one process is watched and restarted."""

    interval: PositiveSeconds = Field(5.0, le=3600, description="seconds between test rounds")
    command_timeout: PositiveSeconds = Field(10.0, le=3600, description="timeout of a test (and notify) command")
    start_timeout: PositiveSeconds = Field(30.0, le=3600)
    stop_timeout: PositiveSeconds = Field(30.0, le=3600)
    start_grace: Seconds = Field(10.0, le=3600,
                                 description="after a start returned 0, how long the test may stay down")
    start_poll: PositiveSeconds = Field(0.2, le=60, description="test period while waiting for a start to show")
    backoff_initial: Seconds = Field(1.0, le=3600, description="first delay after every host failed")
    backoff_max: Seconds = Field(30.0, le=86400, description="delays double up to this")
    max_failures: Integer = Field(5, ge=1, le=1000, description="give up after this many failures ...")
    failure_window: PositiveSeconds = Field(300.0, le=86400, description="... within this many seconds")


HOST_MODE_KEYS = ("node", "listen", "secret", "peers", "heartbeat_interval", "heartbeat_timeout", "stop_bound",
                  "failback_delay", "witness_url", "witness_secret", "witness_group_prefix", "max_clock_skew",
                  "keeper")
DEFAULT_LISTEN_PORT = 8791
_NODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}\Z")


def _split_address(value: str, what: str) -> tuple[str, int]:
    """``ADDR:PORT`` (``[v6]:PORT``) -> (address, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{what} must be ADDRESS:PORT (e.g. 10.0.0.1:{DEFAULT_LISTEN_PORT})")
    return host.strip("[]"), int(port)


class HostMode(StrictModel):
    """The per-host mode (``node`` set in ``[valet]``): one valet per host, each acting on its own host only.

    The valets of a process's two hosts exchange signed heartbeats (HTTP, HMAC with ``secret``) and decide
    with failover_core's tables who runs it: simple tables without a witness, standard ones with it.
    """

    node: str = Field(description="this valet's host, as the processes' host / stand_by_list name it")
    listen: str = Field(f"0.0.0.0:{DEFAULT_LISTEN_PORT}", description="ADDRESS:PORT the valet listens on")
    secret: str = Field(min_length=16, description="shared HMAC secret of the valets (same on every host)")
    peers: dict[str, str] = Field(min_length=1, description="the other valets: name -> http://ADDRESS:PORT")
    heartbeat_interval: PositiveSeconds = Field(1.0, le=60, description="seconds between heartbeats")
    heartbeat_timeout: PositiveSeconds = Field(3.0, le=600,
                                     description="T: silence (since the last heartbeat received) after which a peer "
                                                 "is down; with a witness the active's lease is T minus the "
                                                 "fencing margin (stop_bound + scheduling delay + drift)")
    stop_bound: Seconds | None = Field(None, le=3600,
                                     description="S: stopping the process takes at most this (default: the "
                                                 "largest stop_timeout + 0.5 s)")
    failback_delay: Seconds = Field(0.0, le=86400,
                                  description="a running secondary keeps the process until the primary is "
                                              "back for this long")
    witness_url: str | None = Field(None, description="http://ADDRESS:PORT of the failover-witness")
    witness_secret: str | None = Field(None, min_length=16, description="the witness groups' shared secret")
    witness_group_prefix: str = Field("", description="witness group = this + the process name")
    max_clock_skew: PositiveSeconds = Field(30.0, le=3600, description="signed messages older/newer are refused")
    keeper: Bool = Field(True, description="run HaValet.keeper beside the valet: it stops the processes when the "
                                           "valet dies (SIGKILL) or freezes past its lease")

    @model_validator(mode="before")
    @classmethod
    def _parse_text(cls, data: Any) -> Any:
        """cfg values are text: ``peers = B=http://10.0.0.2:8791, C=...``."""
        if isinstance(data, Mapping) and isinstance(data.get("peers"), str):
            peers: dict[str, str] = {}
            for item in _split_hosts(data["peers"]):
                name, sep, url = item.partition("=")
                if not sep or not name.strip() or not url.strip():
                    raise ValueError(f"peers: {item!r} is not NAME=http://ADDRESS:PORT")
                peers[name.strip()] = url.strip()
            data = {**data, "peers": peers}
        return data

    @field_validator("node")
    @classmethod
    def _node(cls, v: str) -> str:
        if not _NODE_RE.match(v):
            raise ValueError("a name of letters, digits and _ . : @ - (at most 128)")
        return v

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        ip_address_text(_split_address(v, "listen")[0])
        return v

    @field_validator("peers")
    @classmethod
    def _peers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, url in v.items():
            if not _NODE_RE.match(name):
                raise ValueError(f"peer name {name!r}: letters, digits and _ . : @ - only")
            _peer_url(url)
        return {name: _peer_url(url) for name, url in v.items()}

    @field_validator("witness_url")
    @classmethod
    def _witness_url(cls, v: str | None) -> str | None:
        return None if v is None else _peer_url(v)

    def problems(self) -> list[tuple[str, object, str]]:
        """Checks across keys: (key, value, what is allowed)."""
        out: list[tuple[str, object, str]] = []
        if self.node in self.peers:
            out.append(("peers", self.node, "peers lists this node itself"))
        if self.heartbeat_interval >= self.heartbeat_timeout:
            out.append(("heartbeat_interval", self.heartbeat_interval,
                        f"must be smaller than heartbeat_timeout ({self.heartbeat_timeout:g})"))
        if (self.witness_url is None) != (self.witness_secret is None):
            out.append(("witness_url" if self.witness_url is None else "witness_secret", MISSING,
                        "witness_url and witness_secret go together (both, or neither for simple mode)"))
        return out

    @property
    def listen_address(self) -> tuple[str, int]:
        return _split_address(self.listen, "listen")

    @property
    def standard(self) -> bool:
        """With a witness: failover_core's standard tables, fencing and the rejoin guard."""
        return self.witness_url is not None

    def witness_group(self, process: str) -> str:
        return f"{self.witness_group_prefix}{process}"

    @property
    def fencing(self) -> FencingTiming:
        """The timing argument's numbers (failover_core.fencing): T = heartbeat_timeout, S = stop_bound.

        Standard mode only: a config whose T leaves no lease is refused at load (``_check_host_mode``); in simple
        mode there is no lease and this may raise LocalUsageError.
        """
        return FencingTiming(timeout=self.heartbeat_timeout, stop_bound=self.stop_bound or 0.0)

    @property
    def lease(self) -> float:
        """The active's lease (standard mode): T minus the fencing margin, from its last acknowledged send."""
        return self.fencing.lease

    def timing_summary(self) -> str:
        """The timing in an operator's words (``--check``, the start log line)."""
        t = self.heartbeat_timeout
        if not self.standard:
            return (f"a peer silent for {t:g}s is taken as down (heartbeat_timeout); a cut link between the valets "
                    "gives two actives until it heals")
        f = self.fencing
        return (f"the passive takes over {t:g}s after the active went silent (heartbeat_timeout, then its start); "
                f"the active gives up {f.lease:.2f}s after its last acknowledged heartbeat (fencing margin "
                f"{f.margin:.2f}s: stop_bound {f.stop_bound:g}s + scheduling delay {f.scheduling_delay:g}s + slack "
                f"and clock drift) and has stopped within {f.fenced_by():.2f}s, before anyone may start it")

    @property
    def request_timeout(self) -> float:
        """How long one heartbeat's HTTP request (to the peer or the witness) may take: as long as its answer can
        still matter. Standard mode: the lease (an acknowledgement of a heartbeat sent longer ago extends nothing);
        simple mode: T - heartbeat_interval (later, the peer has called us down anyway); never below
        heartbeat_interval. (It was heartbeat_interval: a link slower than that, 0.3 s at the lab's 0.25 s
        heartbeat, lost every request and its answer both ways, a cut: chaos seed 2, docs/chaos.md.)"""
        limit = self.lease if self.standard else self.heartbeat_timeout - self.heartbeat_interval
        return max(self.heartbeat_interval, limit)

    @property
    def peer_down_after(self) -> float:
        """Silence (since the last receipt) after which a peer valet counts as down: T, with or without a witness
        (= ``fencing.down_after``: with a witness the margin comes off the active's lease instead)."""
        return self.heartbeat_timeout


def _peer_url(url: str) -> str:
    m = re.fullmatch(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})/?", url)
    if m is None or not 0 < int(m.group(2)) < 65536:
        raise ValueError(f"{url!r} is not http://ADDRESS:PORT")
    return url.rstrip("/")


class ValetSettings(StrictModel):
    """The ``[valet]`` section: defaults for every process plus notify and status output."""

    timing: Timing = Timing()
    notify: Command | None = None
    status_file: FilePath | None = None
    host_mode: HostMode | None = None


class InstanceSpec(StrictModel):
    """One host a logical process may run on, with its commands rendered for that host."""

    host: HostName
    user: Name
    port: str | None = Field(None, max_length=128)
    protocol: str | None = Field(None, max_length=128)
    priority: Integer = Field(1, ge=1, le=1000, description="configured priority: lower wins")
    start_command: str = Field(min_length=1)
    stop_command: str = Field(min_length=1)
    test_command: str = Field(min_length=1)
    standby_only: bool = Field(False, description="came from a stand_by_list, not from a section's own host")

    def environment(self, process: str) -> dict[str, str]:
        return {"HAVALET_PROCESS": process, "HAVALET_HOST": self.host, "HAVALET_USER": self.user,
                "HAVALET_PORT": self.port or "", "HAVALET_PROTOCOL": self.protocol or ""}


class ProcessSpec(StrictModel):
    """One logical process: its instances in preference order (best first)."""

    name: str
    order: int = 0
    instances: tuple[InstanceSpec, ...]
    timing: Timing

    @model_validator(mode="after")
    def _distinct_hosts(self) -> ProcessSpec:
        hosts = [i.host for i in self.instances]
        if not hosts:
            raise ValueError("a process needs at least one host")
        if len(set(hosts)) != len(hosts):
            raise ValueError(f"host listed twice: {hosts}")
        return self

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(i.host for i in self.instances)

    def instance(self, host: str) -> InstanceSpec:
        for i in self.instances:
            if i.host == host:
                return i
        raise KeyError(host)


class ValetConfig(StrictModel):
    source: str
    settings: ValetSettings
    processes: tuple[ProcessSpec, ...]
    warnings: tuple[str, ...] = ()

    def only(self, name: str) -> ValetConfig:
        """The config limited to one logical process (``-p NAME``)."""
        chosen = tuple(p for p in self.processes if p.name == name or p.name.split("@", 1)[0] == name)
        if not chosen:
            raise ConfigError(self.source, [("--process", name, "no such process (known: "
                                             + ", ".join(p.name for p in self.processes) + ")")])
        return self.model_copy(update={"processes": chosen})


# ---------------------------------------------------------------- reading the cfg text

@dataclass
class RawSection:
    name: str
    line: int
    entries: dict[str, tuple[str, int]] = field(default_factory=dict)  # key -> (raw value, line)


def parse_sections(text: str) -> tuple[list[RawSection], list[Problem]]:
    """Split cfg text into sections of ``key -> (raw value, line)``; syntax errors carry the line."""
    sections: list[RawSection] = []
    problems: list[Problem] = []
    current: RawSection | None = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        header = None
        if line.startswith(":"):
            header = line[1:].strip()
        elif line.startswith("[") and line.endswith("]"):
            header = line[1:-1].strip()
        if header is not None:
            if not _SECTION_RE.match(header):
                problems.append(("", header, "bad section name (letters, digits, _ . @ - only)", lineno))
                current = None
                continue
            current = RawSection(header, lineno)
            sections.append(current)
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _KEY_RE.match(key):
            problems.append(("", line, "expected 'key = value', ':Section' or '[Section]'", lineno))
            continue
        if current is None:
            problems.append(("", line, "'key = value' before any section header", lineno))
            continue
        canonical = KEY_ALIASES.get(key, key)
        if canonical in current.entries:
            problems.append((f"[{current.name}] {key}", value.strip(),
                             f"duplicate key (first set on line {current.entries[canonical][1]})", lineno))
            continue
        current.entries[canonical] = (value.strip(), lineno)
    return sections, problems


def _plain_value(raw: str) -> str:
    """Non-command values: text as written, quotes removed when the value is one quoted literal."""
    if raw[:1] in ("'", '"'):
        try:
            t = parse_command_expr(raw)
        except ExprError:
            return raw
        if not t.uses_percent:
            return t.fmt
    return raw


def _standby_hosts(s: _Section, source: str) -> list[str]:
    """The section's ``stand_by_list``, strictly: no empty item (``a,,b``, ``,,,``), no host twice, not only the
    section's own host (each would otherwise be dropped silently). The README spelling, every host of the process
    with the section's own among them, stays valid."""
    if "stand_by_list" not in s.values:
        return []
    raw = s.values["stand_by_list"]
    key, line = s.key_where.get("stand_by_list", s.where)
    items = raw if isinstance(raw, list) else str(raw).split(",") if isinstance(raw, str) else None
    if items is None or not all(isinstance(h, str) for h in items):
        raise ConfigError(source, [(key, raw, "host names separated by commas (a list of strings in TOML)", line)])
    hosts = [h.strip() for h in items]
    if not hosts or any(not h for h in hosts):
        raise ConfigError(source, [(key, raw, "host names separated by commas, none empty (leave the key out for "
                                              "no stand-by host)", line)])
    if len(set(hosts)) != len(hosts):
        raise ConfigError(source, [(key, raw, "a host is listed twice", line)])
    own = s.values.get("host")
    if isinstance(own, str) and [own.strip()] == hosts:
        # the README spelling lists every host of the process, its own included; only itself is no stand-by at all
        raise ConfigError(source, [(key, raw, f"names only the section's own host {own.strip()!r}: list the other "
                                              "hosts that may run the process (or leave the key out)", line)])
    return hosts


def _split_hosts(value: str | list[Any]) -> list[str]:
    items = value if isinstance(value, list) else str(value).split(",")
    return [str(h).strip() for h in items if str(h).strip()]


@dataclass
class _Section:
    """A section after value parsing: plain values plus, per command key, a renderer for a host."""

    name: str
    where: Place  # the section header
    values: dict[str, Any]
    key_where: dict[str, Place]
    templates: dict[str, Any]  # key -> CommandTemplate (cfg form) or str (TOML form)


def _cfg_sections(raw: list[RawSection]) -> tuple[list[_Section], dict[str, dict[str, Any]], list[Problem]]:
    sections: list[_Section] = []
    reserved: dict[str, dict[str, Any]] = {}
    problems: list[Problem] = []
    for rs in raw:
        if rs.name.lower() in RESERVED_SECTIONS:
            reserved.setdefault(rs.name.lower(), {}).update({k: _plain_value(v) for k, (v, _) in rs.entries.items()})
            reserved.setdefault(f"{rs.name.lower()}:where", {}).update(
                {k: (f"[{rs.name}] {k}", ln) for k, (_, ln) in rs.entries.items()})
            continue
        values: dict[str, Any] = {}
        templates: dict[str, Any] = {}
        names = frozenset(k for k in rs.entries if k not in COMMAND_KEYS) | {"host"}
        for key, (value, lineno) in rs.entries.items():
            where = f"[{rs.name}] {key}"
            if key not in PROCESS_KEYS:
                problems.append((where, value, "unknown key (allowed: " + ", ".join(sorted(PROCESS_KEYS))
                                 + "; aliases: " + ", ".join(sorted(KEY_ALIASES)) + ")", lineno))
            elif key in COMMAND_KEYS:
                templates[key] = None  # present (even if wrong): not also reported as missing
                if value[:1] not in ("'", '"', "("):
                    problems.append((where, value, "a command must be a quoted string, optionally "
                                                   "followed by % (key, ...)", lineno))
                    continue
                try:
                    templates[key] = parse_command_expr(value, names)
                except ExprError as e:
                    problems.append((where, value, str(e), lineno))
            else:
                values[key] = _plain_value(value)
        sections.append(_Section(rs.name, (f"[{rs.name}]", rs.line), values,
                                 {k: (f"[{rs.name}] {k}", ln) for k, (_, ln) in rs.entries.items()}, templates))
    return sections, reserved, problems


def _toml_sections(data: Mapping[str, Any]) -> tuple[list[_Section], dict[str, dict[str, Any]], list[Problem]]:
    sections: list[_Section] = []
    reserved: dict[str, dict[str, Any]] = {}
    problems: list[Problem] = []
    for name, table in data.items():
        where = f"[{name}]"
        if not isinstance(table, Mapping):
            problems.append((where, table, "every top-level entry must be a table ([Name])", None))
            continue
        if name.lower() in RESERVED_SECTIONS:
            reserved.setdefault(name.lower(), {}).update(table)
            continue
        values: dict[str, Any] = {}
        templates: dict[str, Any] = {}
        for key0, value in table.items():
            key = KEY_ALIASES.get(key0, key0)
            if key not in PROCESS_KEYS:
                problems.append((f"{where} {key0}", value, "unknown key (allowed: " + ", ".join(sorted(PROCESS_KEYS))
                                 + ")", None))
            elif key in COMMAND_KEYS:
                if not isinstance(value, str) or not value.strip():
                    problems.append((f"{where} {key0}", value, "a command must be a non-empty string", None))
                else:
                    templates[key] = value
            else:
                values[key] = value
        sections.append(_Section(str(name), (where, None), values, {k: (f"{where} {k}", None) for k in values},
                                 templates))
    return sections, reserved, problems


def _render(template: Any, values: Mapping[str, Any], host: str) -> str:
    if isinstance(template, str):
        return template
    bound = {k: str(v) if not isinstance(v, list) else ",".join(map(str, v)) for k, v in values.items()}
    bound["host"] = host
    return template.render(bound)


def _fill_placeholders(command: str, placeholders: Mapping[str, str], missing: set[str]) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(1) in placeholders:
            return str(placeholders[m.group(1)])
        missing.add(m.group(1))
        return m.group(0)
    return _PLACEHOLDER_RE.sub(sub, command)


def _check(model: type[StrictModel], data: Mapping[str, Any], where: Place,
           key_where: Mapping[str, Place] | None = None) -> tuple[Any, list[Problem]]:
    """(the validated model, []) or (None, its problems); ``key_where`` says where each key was set, when known."""
    try:
        return model.model_validate(data, context=validation_context(text_values=_TEXT_VALUES.get())), []
    except ValidationError as e:
        problems: list[Problem] = []
        for err in e.errors(include_url=False):
            loc = [str(p) for p in err.get("loc", ())]
            known = [key_where[p] for p in reversed(loc) if key_where and p in key_where]
            key, line = known[0] if known else (f"{where[0]} {'.'.join(loc)}".rstrip(), where[1])
            problems.append((key, MISSING if err.get("type") == "missing" else err.get("input"),
                             err.get("msg", "invalid").removeprefix("Value error, "), line))
        return None, problems


def _validate(model: type[StrictModel], data: Mapping[str, Any], source: str, where: Place,
              key_where: Mapping[str, Place] | None = None) -> Any:
    """The validated model, or ConfigError naming the file, line, key and value."""
    obj, problems = _check(model, data, where, key_where)
    if problems:
        raise ConfigError(source, problems)
    return obj


def build_config(sections: list[_Section], reserved: Mapping[str, Mapping[str, Any]], source: str,
                 problems: list[Problem]) -> ValetConfig:
    """Turn parsed sections into validated ProcessSpecs (instances in preference order)."""
    valet_section = dict(reserved.get("valet", {}))
    timing_data = {k: valet_section.pop(k) for k in list(valet_section) if k in TIMING_KEYS}
    host_data = {k: valet_section.pop(k) for k in list(valet_section) if k in HOST_MODE_KEYS}
    if host_data:
        valet_section["host_mode"] = host_data
    settings, settings_problems = _check(ValetSettings, {**valet_section, "timing": timing_data}, ("[valet]", None),
                                         reserved.get("valet:where", {}))
    problems.extend(settings_problems)
    placeholders = {str(k): str(v) for k, v in reserved.get("placeholders", {}).items()}
    missing_placeholders: set[str] = set()

    for s in sections:
        for key in REQUIRED_KEYS:
            if key not in s.values and key not in s.templates:
                problems.append((f"{s.where[0]} {key}", MISSING, f"missing required key '{key}'"
                                 + (" (also accepted: " + ", ".join(a for a, c in KEY_ALIASES.items() if c == key)
                                    + ")" if key in KEY_ALIASES.values() else ""), s.where[1]))
    if problems or settings is None:
        raise ConfigError(source, problems)

    groups: dict[str, list[_Section]] = {}
    for s in sections:
        groups.setdefault(s.name, []).append(s)

    processes: list[ProcessSpec] = []
    for name, group in groups.items():
        merged = len(group) == 1 or any(_split_hosts(s.values.get("stand_by_list", "")) for s in group)
        units = [group] if merged else [[s] for s in group]
        for unit in units:
            pname = name if merged else f"{name}@{unit[0].values['host']}"
            processes.append(_build_process(pname, unit, settings, placeholders, missing_placeholders, source))
    warnings = tuple(f"placeholder @{p}@ is not filled (add it to [placeholders]); left as written"
                     for p in sorted(missing_placeholders))
    processes.sort(key=lambda p: p.order)  # stable: file order within one order
    if settings.host_mode is not None:
        settings, lease_warnings = _check_host_mode(settings, processes, source, reserved.get("valet:where", {}))
        warnings += lease_warnings
    return ValetConfig(source=source, settings=settings, processes=tuple(processes), warnings=warnings)


def _build_process(pname: str, unit: list[_Section], settings: ValetSettings, placeholders: Mapping[str, str],
                   missing: set[str], source: str) -> ProcessSpec:
    ranked: list[tuple[tuple[int, int, int], dict[str, Any], _Section]] = []  # (sort key, instance data, section)
    seen: set[str] = set()
    first = unit[0]
    timing_over = {k: v for s in unit for k, v in s.values.items() if k in TIMING_KEYS}
    timing = _validate(Timing, {**settings.timing.model_dump(), **timing_over}, source, first.where,
                       {k: v for s in unit for k, v in s.key_where.items()})
    order = min(_validate(_Order, {"order": s.values.get("order", 0)}, source, s.where, s.key_where).order
                for s in unit)
    position = 0

    def add(s: _Section, host: str, standby_only: bool) -> None:
        nonlocal position
        position += 1
        try:
            cmds = {k: _fill_placeholders(_render(s.templates[k], s.values, host), placeholders, missing)
                    for k in COMMAND_KEYS}
        except ExprError as e:
            raise ConfigError(source, [(s.where[0], host, f"command for host {host}: {e}",
                                        s.where[1])]) from None
        data = {"host": host, "user": s.values["user"], "port": _opt_str(s.values.get("port")),
                "protocol": _opt_str(s.values.get("protocol")), "priority": s.values.get("priority", 1),
                **cmds, "standby_only": standby_only}
        ranked.append(((int(standby_only), 0, position), data, s))

    for s in unit:
        if not isinstance(s.values["host"], str):
            key, line = s.key_where.get("host", s.where)
            raise ConfigError(source, [(key, s.values["host"], "a host name (a string)", line)])
        host = s.values["host"].strip()
        if host in seen:
            key, line = s.key_where.get("host", s.where)
            raise ConfigError(source, [(key, host, "this host already has a section for this process", line)])
        seen.add(host)
        add(s, host, False)
    for s in unit:
        for h in _standby_hosts(s, source):
            if h not in seen:
                seen.add(h)
                add(s, h, True)
    instances = []
    for _, data, s in ranked:
        instances.append(_validate(InstanceSpec, data, source, s.where, s.key_where))
    # preference: own hosts before stand-by-only hosts, then configured priority (lower wins), then file order
    keyed = sorted(zip(ranked, instances, strict=True),
                   key=lambda ri: (ri[0][0][0], ri[1].priority, ri[0][0][2]))
    return _validate(ProcessSpec, {"name": pname, "order": order, "instances": [i for _, i in keyed],
                                   "timing": timing}, source, first.where)


def _check_host_mode(settings: ValetSettings, processes: list[ProcessSpec], source: str,
                     where: Mapping[str, Place]) -> tuple[ValetSettings, tuple[str, ...]]:
    """Per-host mode: every process is a pair that includes this node, its other host is a configured peer; with a
    witness, the timing leaves the active a lease (``_check_lease``). Returns the settings and the warnings."""
    hm = settings.host_mode
    assert hm is not None
    key, line = where.get("node", ("[valet] node", None))
    problems: list[Problem] = [(*where.get(k, (f"[valet] {k}", None))[:1], v, allowed,
                                where.get(k, ("", None))[1]) for k, v, allowed in hm.problems()]
    for p in processes:
        if hm.node not in p.hosts:
            problems.append((key, hm.node, f"this node is not a host of process {p.name} (its hosts: "
                             + ", ".join(p.hosts) + "); give this valet only the processes of its own host", line))
        elif len(p.hosts) != 2:
            problems.append((f"[{p.name}] stand_by_list", ", ".join(p.hosts),
                             "the per-host mode arbitrates pairs: a process needs exactly two hosts (its host and "
                             "one stand-by); run more hosts with the single-valet mode", None))
        else:
            other = next(h for h in p.hosts if h != hm.node)
            if other not in hm.peers:
                pk, pl = where.get("peers", ("[valet] peers", None))
                problems.append((pk, ", ".join(hm.peers), f"no peer valet for host {other} of process {p.name} "
                                 f"(add {other}=http://ADDRESS:PORT)", pl))
    if problems:
        raise ConfigError(source, problems)
    derived = hm.stop_bound is None
    if derived:
        bound = max((p.timing.stop_timeout for p in processes), default=0.0) + 0.5
        hm = hm.model_copy(update={"stop_bound": bound})
        settings = settings.model_copy(update={"host_mode": hm})
    return settings, _check_lease(hm, source, where, derived)


def _check_lease(hm: HostMode, source: str, where: Mapping[str, Place], derived: bool) -> tuple[str, ...]:
    """Standard mode: T must leave the active a lease longer than a heartbeat interval (else ConfigError), and
    should leave two (else a warning: one lost heartbeat would fence a healthy active)."""
    if not hm.standard:
        return ()
    key, line = where.get("heartbeat_timeout", ("[valet] heartbeat_timeout", None))
    s_from = "stop_bound (the largest stop_timeout + 0.5 s)" if derived else "stop_bound"
    try:
        timing = hm.fencing
    except LocalUsageError as e:
        # the same S, D, rho with a timeout that leaves a lease: only to ask it which timeout fits the interval
        fits = FencingTiming(timeout=3600.0 + (hm.stop_bound or 0.0), stop_bound=hm.stop_bound or 0.0).timeout_for(
            2 * hm.heartbeat_interval)
        raise ConfigError(source, [(key, hm.heartbeat_timeout, f"with a witness, {e} ({s_from} = "
                                    f"{hm.stop_bound:g}s); a lease of two heartbeat intervals "
                                    f"({hm.heartbeat_interval:g}s) needs {fits:.2f}s", line)]) from None
    problem = timing.lease_problem(hm.heartbeat_interval)
    if problem is None:
        return ()
    level, why = problem
    if level == "error":
        raise ConfigError(source, [(key, hm.heartbeat_timeout, f"with a witness, {why} ({s_from} = "
                                    f"{hm.stop_bound:g}s, heartbeat_interval = {hm.heartbeat_interval:g}s)", line)])
    return (f"{key} = {hm.heartbeat_timeout:g}: {why} (heartbeat_interval {hm.heartbeat_interval:g}s, stop_bound "
            f"{hm.stop_bound:g}s)",)


class _Order(StrictModel):
    order: Integer = Field(0, ge=-1_000_000, le=1_000_000)


def _opt_str(v: Any) -> str | None:
    return None if v is None else str(v)


# ---------------------------------------------------------------- entry points

def parse_config(text: str, source: str = "<config>", fmt: str | None = None) -> ValetConfig:
    """Parse cfg (default) or TOML (``fmt='toml'``) text into a ValetConfig, or raise ConfigError."""
    if fmt == "toml":
        sections, reserved, problems = _toml_sections(parse_config_text(text, source=source, fmt="toml"))
    else:
        if len(text) > MAX_CONFIG_BYTES:
            raise ConfigError(source, [("", text, f"a config of at most {MAX_CONFIG_BYTES // 1024} KiB")])
        for lineno, line in enumerate(text.splitlines(), start=1):
            why = bad_character(line, in_name=False)
            if why:
                raise ConfigError(source, [("", line, why, lineno)])
        raw, syntax_problems = parse_sections(text)
        if len(raw) > MAX_SECTIONS:
            raise ConfigError(source, [("", len(raw), f"a config of at most {MAX_SECTIONS} sections", raw[-1].line)])
        sections, reserved, problems = _cfg_sections(raw)
        problems = syntax_problems + problems
    if len(sections) > MAX_SECTIONS:
        raise ConfigError(source, [("", len(sections), f"a config of at most {MAX_SECTIONS} sections", None)])
    if not sections and not problems:
        problems.append(("", MISSING, "no process section found (expected ':Name' or '[Name]' sections)", None))
    token = _TEXT_VALUES.set(fmt != "toml")
    try:
        return build_config(sections, reserved, source, problems)
    finally:
        _TEXT_VALUES.reset(token)


def load_config(path: str | Path) -> ValetConfig:
    p = Path(path)
    text = read_config_text(p)
    return parse_config(text, str(p), "toml" if p.suffix == ".toml" else None)

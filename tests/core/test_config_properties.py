"""Property tests of the four config parsers (issue 12): documents from the grammar of valid configs, mutated
(types swapped, numbers pushed to extremes, keys duplicated, strings with control characters, nesting deepened
to 10,000 levels, huge values), give a valid config or a ConfigError, nothing else, within 1 s each."""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from DockerFailover.config import node_config, read_config_file
from failover_agent.config import parse_agent_config
from failover_agent.config_file import load_agent_config
from failover_core.config import ConfigError
from HaValet.config import parse_config as parse_valet
from VrrpFailover.config import load_config as load_vrrp

SETTINGS = settings(max_examples=200, deadline=3000, suppress_health_check=[HealthCheck.too_slow,
                                                                            HealthCheck.data_too_large])
RAW = "\x00RAW\x00"  # a placeholder value: replaced by a raw token in the text (1e999, NaN, deep brackets, ...)
TMP = Path(tempfile.mkdtemp(prefix="config-props-"))
atexit.register(shutil.rmtree, TMP, ignore_errors=True)

# ---------------------------------------------------------------------------------------------- valid grammar

names = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,10}", fullmatch=True)
hosts = st.from_regex(r"[a-z](?:[a-z0-9-]{0,7}[a-z0-9])?", fullmatch=True)
ipv4 = st.tuples(st.sampled_from([10, 100, 172, 192, 198, 203]), st.integers(0, 255), st.integers(0, 255),
                 st.integers(1, 254)).map(lambda t: ".".join(map(str, t)))  # no loopback or multicast
seconds = st.sampled_from([0.05, 0.1, 0.5, 1, 2, 2.5, 10, 30])
commands = st.one_of(st.sampled_from(["true", "exit 0", "/bin/check --fast"]),
                     st.lists(st.sampled_from(["/bin/echo", "a", "b c"]), min_size=1, max_size=3))

vrrp_docs = st.fixed_dictionaries(
    {"name": names, "vrid": st.integers(1, 255), "interface_name": st.sampled_from(["eth0", "ens3", "veth-a"]),
     "ip_addresses": st.lists(ipv4.map(lambda a: a + "/24"), min_size=1, max_size=3, unique=True)},
    optional={"priority": st.integers(1, 255), "advert_interval": st.integers(1, 4095).map(lambda c: c / 100),
              "preempt_mode": st.booleans(), "accept_mode": st.booleans(), "preempt_delay": seconds,
              "notify": commands, "garp_repeat": st.integers(1, 100), "garp_delay": seconds,
              "track_script": st.fixed_dictionaries({"command": commands},
                                                    optional={"interval": seconds, "weight": st.integers(1, 253)}),
              "unicast_peers": st.lists(ipv4, max_size=2, unique=True)})

docker_docs = st.fixed_dictionaries(
    {"heartbeat_interval": st.sampled_from([0.2, 0.5, 1]), "heartbeat_timeout": st.sampled_from([3, 5, 10]),
     "containers": st.lists(names, min_size=1, max_size=3, unique=True),
     "secret": st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=16, max_size=30),
     "servers": st.fixed_dictionaries({"server1": st.fixed_dictionaries({"endpoint": st.just("http://10.0.0.2:8700"),
                                                                         "port": st.integers(1, 65535)}),
                                       "server2": st.fixed_dictionaries({"endpoint": st.just("http://10.0.0.1:8700"),
                                                                         "port": st.integers(1, 65535)})})},
    optional={"stop_timeout": seconds, "request_timeout": st.sampled_from([0.5, 1]), "failback": st.booleans(),
              "failback_hold_down": seconds, "notify": commands, "docker_url": st.just("unix:///var/run/docker.sock"),
              "state_dir": st.just("/var/lib/df"), "listen": st.sampled_from(["0.0.0.0", "127.0.0.1", "::"]),
              "startup_grace_period": seconds})

agent_docs = st.fixed_dictionaries(
    {"agent_id": st.sampled_from(["primary", "secondary", "simple_primary", "simple_secondary"]),
     "remote_vip": st.sampled_from(["tcp://10.0.0.2:22916?serverkey=K", "ipc://@/x"]),
     "agent_vip_identity": st.one_of(st.just("platform.driver"), st.lists(names, min_size=1, max_size=3,
                                                                          unique=True))},
    optional={"heartbeat_period": st.sampled_from([1, 5, 10]), "timeout": st.sampled_from([30, 60, 120]),
              "heartbeat_secret": st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20),
              "failback_delay": seconds, "notify": commands, "stop_bound": st.sampled_from([0.5, 1, 2]),
              "group": names, "volttron_ctl_tag": names})

valet_sections = st.fixed_dictionaries(
    {"host": hosts, "user": names, "start_command": st.just('"start %s" % (host)'),
     "stop_command": st.just('"stop"'), "test_command": st.just('"test %s@%s" % (user, host)')},
    optional={"stand_by_list": st.lists(hosts, min_size=1, max_size=3, unique=True).map(",".join),
              "priority": st.integers(1, 9).map(str), "order": st.integers(-5, 5).map(str),
              "interval": seconds.map(str), "port": st.integers(1, 65535).map(str)})
valet_docs = st.fixed_dictionaries({"valet": st.fixed_dictionaries({}, optional={
    "interval": seconds.map(str), "max_failures": st.integers(1, 20).map(str), "notify": st.just("logger x")}),
    "Web": valet_sections}, optional={"Db": valet_sections})

# ---------------------------------------------------------------------------------------------- mutations

CONTROL = st.sampled_from(["\x00", "\x1b[31m", "\x07", "\x7f", "\x85", "\u202e", "\u2066", "\x1f", "\t", "\n"])
weird_values = st.one_of(
    st.booleans(), st.none(), st.integers(-(10**30), 10**30), st.sampled_from([0, -1, 2**63, 2**64, 10**19]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([float("nan"), float("inf"), 1e308, -0.0, 5e-324]),
    st.text(max_size=20), st.tuples(st.text(max_size=8), CONTROL, st.text(max_size=8)).map("".join),
    st.sampled_from(["", " ", "5", "0.5", "true", "no", "nan", "inf", "1e999", "%999999999s", ",,,", "not a url"]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.just(RAW))
raw_tokens = st.one_of(st.sampled_from(["1e999", "-1e999", "NaN", "Infinity", "-Infinity", "9" * 5000, "9" * 30]),
                       st.sampled_from([10, 1000, 10000]).map(lambda n: "[" * n + "1" + "]" * n),
                       st.sampled_from([10, 1000, 10000]).map(lambda n: '{"a": ' * n + "1" + "}" * n))
huge = st.sampled_from([10_000, 900_000, 1_100_000, 3_000_000]).map(lambda n: "x" * n)


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _set(doc: Any, path: tuple, value: Any) -> None:
    for p in path[:-1]:
        doc = doc[p]
    if value is _DELETE:
        del doc[path[-1]]
    else:
        doc[path[-1]] = value


_DELETE = object()


def mutate(data: st.DataObject, doc: dict, *, text_values: bool = False) -> tuple[dict, str | None, bool]:
    """(the mutated doc, a raw token for RAW or None, whether to duplicate a key in the text)."""
    doc = json.loads(json.dumps(doc))
    for _ in range(data.draw(st.integers(0, 3), label="mutations")):
        paths = _paths(doc)
        kind = data.draw(st.sampled_from(["swap", "delete", "unknown", "control", "huge", "raw"]), label="kind")
        path = data.draw(st.sampled_from(paths), label="path") if paths else ()
        if not path:
            continue
        if kind == "swap":
            value = data.draw(weird_values, label="value")
            _set(doc, path, str(value) if text_values and not isinstance(value, str) else value)
        elif kind == "delete":
            _set(doc, path, _DELETE)
        elif kind == "unknown":
            parent = doc
            for p in path[:-1]:
                parent = parent[p]
            value = data.draw(weird_values, label="value")
            if isinstance(parent, dict):
                parent[data.draw(names, label="key")] = value
            else:
                parent.append(value)
        elif kind == "control":
            _set(doc, path, data.draw(st.tuples(st.text(max_size=5), CONTROL, st.text(max_size=5)).map("".join)))
        elif kind == "huge":
            _set(doc, path, data.draw(huge, label="huge"))
        else:
            _set(doc, path, RAW)
    raw = data.draw(raw_tokens, label="raw") if RAW in json.dumps(doc) else None
    return doc, raw, data.draw(st.booleans(), label="duplicate")


def to_json(doc: Any, raw: str | None, duplicate: bool) -> str:
    text = json.dumps(doc, allow_nan=True)
    if duplicate and isinstance(doc, dict) and doc:
        k = next(iter(doc))
        text = text[:-1] + f", {json.dumps(k)}: {json.dumps(doc[k], allow_nan=True)}}}"
    return text.replace(json.dumps(RAW), raw or "1")


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(repr(v), repr(v))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v if x is not None) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items() if x is not None) + "}"
    return '""'


def to_toml(doc: dict, raw: str | None, duplicate: bool) -> str:
    lines = [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in doc.items() if v is not None]
    if duplicate and lines:
        lines.append(lines[0])
    return "\n".join(lines).replace(json.dumps(RAW), (raw or "1").replace("NaN", "nan").replace("Infinity", "inf")
                                    .replace('{"a": ', "[").replace("}", "]"))


def to_python(doc: dict, raw: str | None, duplicate: bool) -> str:
    lines = [f"{k} = {v!r}" for k, v in doc.items() if isinstance(k, str) and k.isidentifier()]
    if duplicate and lines:
        lines.append(lines[0])
    return "\n".join(lines).replace(repr(RAW), (raw or "1").replace("NaN", "float('nan')"))


def to_yaml(doc: dict, raw: str | None, duplicate: bool) -> str:
    text = yaml.safe_dump(doc, allow_unicode=False, width=10**9)
    if duplicate and doc:
        text += yaml.safe_dump({next(iter(doc)): next(iter(doc.values()))}, width=10**9)
    return text.replace(yaml.safe_dump(RAW).split("\n")[0], (raw or "1").replace("NaN", ".nan"))


def to_cfg(doc: dict, raw: str | None, duplicate: bool) -> str:
    lines = []
    for section, entries in doc.items():
        lines.append(f"[{section}]" if isinstance(entries, dict) else f"{section} = {entries}")
        for k, v in (entries.items() if isinstance(entries, dict) else ()):
            lines.append(f"{k} = {v if isinstance(v, str) else json.dumps(v)}")
        if duplicate and isinstance(entries, dict) and entries:
            k, v = next(iter(entries.items()))
            lines.append(f"{k} = {v}")
    return "\n".join(lines).replace(RAW, raw or "1")


def _file(text: str, suffix: str) -> Path:
    p = TMP / f"c{suffix}"
    p.write_text(text, encoding="utf-8", errors="surrogatepass")
    return p


def valid_or_config_error(parse: Callable[[], Any]) -> Any:
    t0 = time.monotonic()
    try:
        result = parse()
    except ConfigError as e:
        assert len(str(e)) < 10_000  # a bounded message
        result = e
    assert time.monotonic() - t0 < 1.0
    return result


# ---------------------------------------------------------------------------------------------- the properties

@SETTINGS
@given(doc=vrrp_docs, data=st.data(), as_list=st.booleans())
def test_vrrp(doc, data, as_list):
    doc, raw, dup = mutate(data, doc)
    text = to_json([doc] if as_list else doc, raw, dup)
    valid_or_config_error(lambda: load_vrrp(str(_file(text, ".json"))))


@SETTINGS
@given(doc=docker_docs, data=st.data(), fmt=st.sampled_from([".json", ".toml", ".py"]))
def test_docker(doc, data, fmt):
    doc, raw, dup = mutate(data, doc)
    text = {".json": to_json, ".toml": to_toml, ".py": to_python}[fmt](doc, raw, dup)
    path = _file(text, fmt)
    valid_or_config_error(lambda: node_config(read_config_file(path), "server1", source=str(path)))


@SETTINGS
@given(doc=agent_docs, data=st.data(), fmt=st.sampled_from(["json", "yaml", "dict"]))
def test_agent(doc, data, fmt):
    doc, raw, dup = mutate(data, doc)
    if fmt == "dict":
        valid_or_config_error(lambda: parse_agent_config(doc, source="<agent config>"))
        return
    text = to_json(doc, raw, dup) if fmt == "json" else to_yaml(doc, raw, dup)
    valid_or_config_error(lambda: load_agent_config(str(_file(text, ".config"))))


@SETTINGS
@given(doc=valet_docs, data=st.data(), fmt=st.sampled_from(["cfg", "toml"]))
def test_valet(doc, data, fmt):
    if fmt == "toml":
        for section in doc.values():
            for k in [k for k in section if k.endswith("_command")]:
                section[k] = "run " + k
    doc, raw, dup = mutate(data, doc, text_values=fmt == "cfg")
    if fmt == "cfg":
        text = to_cfg(doc, raw, dup)
        valid_or_config_error(lambda: parse_valet(text, "p.cfg"))
    else:
        text = "\n".join(f"[{json.dumps(s)}]\n{to_toml(v, raw, dup)}" if isinstance(v, dict)
                         else f"x = {_toml_value(v)}" for s, v in doc.items())
        valid_or_config_error(lambda: parse_valet(text, "p.toml", "toml"))


@pytest.mark.parametrize("system", ["vrrp", "docker", "agent", "valet"])
def test_the_unmutated_grammar_gives_valid_configs(system):
    """The generators above are the grammar of valid configs: a few draws without mutation are valid."""
    strategy = {"vrrp": vrrp_docs, "docker": docker_docs, "agent": agent_docs, "valet": valet_docs}[system]

    @settings(max_examples=30, deadline=None)
    @given(doc=strategy)
    def check(doc):
        if system == "vrrp":
            load_vrrp(str(_file(json.dumps(doc), ".json")))
        elif system == "docker":
            if doc["heartbeat_interval"] < doc["heartbeat_timeout"] and doc.get("request_timeout", 1) <= 3:
                node_config(doc, "server1", source="d")
        elif system == "agent":
            if doc.get("heartbeat_period", 10) < doc.get("timeout", 120):  # simple mode (the default): no witness
                parse_agent_config(doc, source="a")
        else:
            if "Db" not in doc:
                try:
                    parse_valet(to_cfg(doc, None, False), "v.cfg")
                except ConfigError as e:
                    assert "stand_by_list" in str(e), str(e)  # a drawn stand-by list may name the section's host

    check()

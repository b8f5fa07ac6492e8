"""Config validation, one way for the whole project: pydantic models, one error type.

``validate_config(Model, mapping, source=path)`` returns a frozen, typed object or raises
ConfigError whose message names the file, the key (dotted path), the bad value and what is
allowed, e.g.::

    config/primary.json: key 'heartbeat_period': value 'ten' is not allowed: Input should be a valid number

``parse_config_text(text, source=...)`` parses JSON or TOML, turning syntax errors into ConfigError
with the line (reading the file is ``failover_core.shell.config_file.load_config_file``).
Models subclass StrictModel: unknown keys are errors, not ignored.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError

from failover_core.errors import FailoverCoreError

M = TypeVar("M", bound=BaseModel)


class ConfigError(FailoverCoreError):
    """The operator's configuration is wrong. ``problems`` lists (key, value, allowed) triples.

    A problem may carry a fourth item, the line of the file it is on (formats with lines, such as
    HaValet's cfg): it is kept in ``lines`` (parallel to ``problems``, None where unknown) and the
    message then reads ``file:line: key 'k': value ... is not allowed: ...`` (``file:line: value ...``
    when the problem is the line itself rather than a key).
    """

    def __init__(self, source: str, problems: Sequence[tuple[str, object, str] | tuple[str, object, str, int | None]]
                 ) -> None:
        self.source = source
        self.problems: list[tuple[str, object, str]] = [(p[0], p[1], p[2]) for p in problems]
        self.lines: list[int | None] = [p[3] if len(p) > 3 else None for p in problems]  # type: ignore[misc]
        lines = []
        for (key, value, allowed), line in zip(self.problems, self.lines, strict=True):
            place = source if line is None else f"{source}:{line}"
            where = f"key {key!r}: " if key else ("top level: " if line is None else "")
            shown = "(missing)" if value is _MISSING else repr(value)
            lines.append(f"{place}: {where}value {shown} is not allowed: {allowed}")
        super().__init__("\n".join(lines))


_MISSING = type("Missing", (), {"__repr__": lambda self: "(missing)"})()
MISSING = _MISSING  # the value of a problem whose key is absent (shown as "(missing)")


class StrictModel(BaseModel):
    """Base for config models: unknown keys are errors, objects are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel]:
    """The (nested) model that ``loc`` points into, for "allowed keys" of an unknown key deep in the file
    (``groups.pair1.stop_bound`` lists a group's keys, not the top level's); the top model when unsure."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return model
            current = field.annotation
            continue
        # a container (dict[str, X], list[X], X | None): step into its value type
        args = [a for a in get_args(current) if a is not type(None)]
        if not args:
            return model
        current = args[-1]
    while not (isinstance(current, type) and issubclass(current, BaseModel)):
        args = [a for a in get_args(current) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not args:
            return model
        current = args[0]
    return current


def validate_config(model: type[M], data: object, *, source: str) -> M:
    """Validate ``data`` (a mapping from JSON/TOML/etc.) into ``model`` or raise ConfigError."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems: list[tuple[str, object, str]] = []
        for err in e.errors(include_url=False):
            loc = tuple(p for p in err.get("loc", ()) if not (isinstance(p, str) and p.startswith("function-")))
            value = _MISSING if err.get("type") == "missing" else err.get("input")
            msg = err.get("msg", "invalid")
            if err.get("type") == "extra_forbidden":
                allowed = sorted(_model_at(model, loc[:-1]).model_fields)
                msg = f"unknown key (allowed keys: {', '.join(allowed)})"
            problems.append((_key_path(loc), value, msg))
        raise ConfigError(source, problems) from None


def parse_config_text(text: str, *, source: str, fmt: str | None = None) -> Any:
    """Parse JSON or TOML text. ``fmt`` is 'json' or 'toml'; None sniffs (JSON if it starts with { or [)."""
    if fmt is None:
        fmt = "json" if text.lstrip().startswith(("{", "[")) else "toml"
    try:
        if fmt == "json":
            return json.loads(text)
        if fmt == "toml":
            return tomllib.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{source}:{e.lineno}", [("", text.splitlines()[e.lineno - 1][:80] if text else "",
                                                    f"not valid JSON: {e.msg} (column {e.colno})")]) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(source, [("", "", f"not valid TOML: {e}")]) from None
    raise ConfigError(source, [("", fmt, "format must be 'json' or 'toml'")])


def as_mapping(data: object, *, source: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ConfigError(source, [("", type(data).__name__, "the top level must be an object/table")])
    return data


def http_base_url(value: str) -> str:
    """``value`` as ``scheme://host:port`` (http or https, a host and a port, nothing after); ValueError otherwise.

    For pydantic validators of peer endpoints and witness URLs: the message says what is allowed."""
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
        raise ValueError("must look like http://HOST:PORT (scheme http or https, host and port)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must not have a path, query or fragment")
    return f"{parts.scheme}://{parts.netloc}"

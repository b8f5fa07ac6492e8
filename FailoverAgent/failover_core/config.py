"""Config validation, one way for the whole project: pydantic models, one error type, bounded input.

``validate_config(Model, mapping, source=path)`` returns a frozen, typed object or raises
ConfigError whose message names the file, the key (dotted path), the bad value (cut to a readable
length) and what is allowed, e.g.::

    config/primary.json: key 'heartbeat_period': value 'ten' is not allowed: Input should be a valid number

``parse_config_text(text, source=..., fmt=...)`` parses JSON, TOML or YAML, turning syntax errors into
ConfigError with the line (reading the file is ``failover_core.shell.config_file.read_config_text``).
Every parsed document is bounded before a model sees it (``check_document``): at most ``MAX_DEPTH``
levels, finite numbers, integers of at most 64 bits, no duplicate keys (JSON, YAML), no YAML
anchors or aliases, no control or bidi-override characters. Models subclass StrictModel (unknown keys
are errors) and use the annotated types below (``Number``, ``Integer``, ``Bool``, ``Seconds``,
``Port``, ``Name``, ``HostName``, ``Identity``, ``FilePath``, ``Command``): no bool taken as a number,
no string coerced to a number or a bool (except in formats whose values are text, such as HaValet's
cfg: ``validate_config(..., text_values=True)``).
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import reprlib
import shlex
import tomllib
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, TypeVar, Union, get_args
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo

from failover_core.errors import FailoverCoreError

M = TypeVar("M", bound=BaseModel)

MAX_CONFIG_BYTES = 1 << 20  # 1 MiB: far beyond any real config, small enough to parse and report fast
MAX_DEPTH = 32  # levels of nesting in a document (the deepest real config has 5)
MAX_INT = 2**63 - 1  # integers in a document: 64 bits (a range check of the model comes after)
MAX_SECONDS = 86400.0  # a duration in a config is at most one day unless its key says less
MAX_COMMAND_CHARS = 65536  # a command or one word of it (Linux takes at most 128 KiB per argument)
MAX_TOML_CHARS = 256 * 1024  # tomllib is pure Python too (~1.3 µs a character at worst); real TOML configs are ~1 KB
MAX_YAML_CHARS = 64 * 1024  # YAML is parsed in pure Python (~1 µs a character): an agent config is ~1 KB
MAX_YAML_NODES = 10_000
MAX_VALUES = 100_000  # values (scalars, lists, objects) in one document: real configs have a few hundred
MAX_PROBLEMS_SHOWN = 20  # an error message lists this many problems, then counts the rest
SHOWN_CHARS = 120  # a value in an error message is cut to this many characters (a typical command fits)
_CONTEXT_TEXT = "text_values"


class ConfigError(FailoverCoreError):
    """The operator's configuration is wrong. ``problems`` lists (key, value, allowed) triples.

    A problem may carry a fourth item, the line of the file it is on (formats with lines, such as
    HaValet's cfg): it is kept in ``lines`` (parallel to ``problems``, None where unknown) and the
    message then reads ``file:line: key 'k': value ... is not allowed: ...`` (``file:line: value ...``
    when the problem is the line itself rather than a key). Values, keys and the allowed text are cut
    to a readable length (``shown``): a 10 MB value gives a one-line message.
    """

    def __init__(self, source: str, problems: Sequence[tuple[str, object, str] | tuple[str, object, str, int | None]]
                 ) -> None:
        self.source = source
        self.problems: list[tuple[str, object, str]] = [(p[0], p[1], p[2]) for p in problems]
        self.lines: list[int | None] = [p[3] if len(p) > 3 else None for p in problems]  # type: ignore[misc]
        lines = []
        for (key, value, allowed), line in zip(self.problems[:MAX_PROBLEMS_SHOWN], self.lines, strict=False):
            place = _cut(source, 300) if line is None else f"{_cut(source, 300)}:{line}"
            where = f"key {shown(key, 160)}: " if key else ("top level: " if line is None else "")
            lines.append(f"{place}: {where}value {shown(value)} is not allowed: {_cut(str(allowed), 1000)}")
        if len(self.problems) > MAX_PROBLEMS_SHOWN:
            lines.append(f"{_cut(source, 300)}: ... and {len(self.problems) - MAX_PROBLEMS_SHOWN} more problems")
        super().__init__("\n".join(lines))


_MISSING = type("Missing", (), {"__repr__": lambda self: "(missing)"})()
MISSING = _MISSING  # the value of a problem whose key is absent (shown as "(missing)")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} chars)"


class _BoundedRepr(reprlib.Repr):
    """reprlib with every container and string bounded, and integers shown without converting them whole."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxdict, self.maxlist, self.maxtuple, self.maxset = 3, 4, 6, 6, 6
        self.maxstring, self.maxother = SHOWN_CHARS, SHOWN_CHARS

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() <= 200:
            return repr(x)
        return f"<an integer of about {int(x.bit_length() * 0.30103) + 1} digits>"

    def repr_str(self, x: str, level: int) -> str:
        return repr(x) if len(x) <= SHOWN_CHARS else f"{x[:SHOWN_CHARS] + '…'!r} ({len(x)} chars)"


_repr = _BoundedRepr()


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """``value`` for an error message: repr, cut to about ``limit`` characters (``'aaaa…' (10485760 chars)``),
    control characters escaped; never raises, never formats a huge value in full."""
    if value is _MISSING:
        return "(missing)"
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit] + '…'!r} ({len(value)} chars)"
    try:
        text = _repr.repr(value)
    except Exception:  # a value whose repr fails: its type says enough
        return f"<{type(value).__name__}>"
    return _cut(text, limit * 2)


# ---------------------------------------------------------------------------------------------- characters

_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_FORBIDDEN_ANYWHERE = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_BIDI}]")  # all but tab, LF, CR
_FORBIDDEN_IN_NAMES = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")


def bad_character(text: str, *, in_name: bool = True) -> str | None:
    """What is wrong with ``text``'s characters, or None: C0 controls (NUL, ESC, ...), DEL, C1 controls and the
    bidi controls (U+202A-U+202E, U+2066-U+2069, ...) are refused; ``in_name`` refuses tab and line breaks too."""
    m = (_FORBIDDEN_IN_NAMES if in_name else _FORBIDDEN_ANYWHERE).search(text)
    if m is None:
        return None
    return f"control character U+{ord(m.group()):04X} at position {m.start()} is not allowed"


# ---------------------------------------------------------------------------------------------- the document

def check_document(data: object, *, source: str) -> None:
    """Refuse what no config may hold, walking ``data`` without recursion: nesting deeper than MAX_DEPTH, more than
    MAX_VALUES values, non-finite floats, integers beyond 64 bits, control characters in keys and strings, keys that
    are neither strings nor integers."""
    stack: list[tuple[object, str, int]] = [(data, "", 0)]
    seen = 0
    while stack:
        value, path, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise ConfigError(source, [("", "…", f"a config of at most {MAX_VALUES} values (numbers, strings, lists, "
                                                  "objects)")])
        if depth > MAX_DEPTH:
            raise ConfigError(source, [(path, "…", f"nested more than {MAX_DEPTH} levels deep")])
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ConfigError(source, [(path, value, "a finite number (not NaN or infinity; 1e999 is infinity)")])
        elif isinstance(value, int):
            if abs(value) > MAX_INT:
                raise ConfigError(source, [(path, value, f"an integer of at most 64 bits (|n| <= {MAX_INT})")])
        elif isinstance(value, str):
            why = bad_character(value, in_name=False)
            if why:
                raise ConfigError(source, [(path, value, why)])
        elif isinstance(value, Mapping):
            for k, v in value.items():
                if isinstance(k, str):
                    why = bad_character(k)
                    if why:
                        raise ConfigError(source, [(path, k, f"key: {why}")])
                    stack.append((v, f"{path}.{k}" if path else k, depth + 1))
                elif isinstance(k, int) and not isinstance(k, bool) and abs(k) <= MAX_INT:
                    stack.append((v, f"{path}[{k}]", depth + 1))
                else:
                    raise ConfigError(source, [(path, k, "keys must be strings")])
        elif isinstance(value, list | tuple):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value))


_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def _json_depth_problem(text: str) -> int | None:
    """The offset where JSON ``text`` first nests deeper than MAX_DEPTH (brackets outside strings), or None.
    A cheap scan, so a 10,000-level document is refused before the recursive decoder sees it."""
    depth = 0
    for m in _JSON_TOKEN.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return m.start()
        elif c in "]}":
            depth -= 1
    return None


class _DocumentProblem(Exception):
    def __init__(self, key: str, value: object, allowed: str) -> None:
        super().__init__(allowed)
        self.problem = (key, value, allowed)


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DocumentProblem(k, v, "duplicate key: given twice in the same object (the first value would be "
                                         "silently dropped); give it once")
        out[k] = v
    return out


def _bounded_int(text: str) -> int:
    """Python refuses to convert more than 4300 digits (ValueError); refuse long ones here with a message, and let
    ``check_document`` name the key of any other integer beyond 64 bits."""
    if len(text) > 40:
        raise _DocumentProblem("", text, f"an integer of at most 64 bits (|n| <= {MAX_INT})")
    return int(text)


def _line_of(text: str, pos: int) -> tuple[int, str]:
    """(1-based line number, that line's text) of offset ``pos``; safe for any ``pos`` (past the end too)."""
    pos = max(0, min(pos, len(text)))
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return text.count("\n", 0, pos) + 1, text[start:end if end >= 0 else len(text)]


def _yaml_load(text: str) -> Any:
    """YAML (the VOLTTRON agent config) with duplicate keys, anchors/aliases and deep nesting refused."""
    import yaml  # the agent's platform has it; the other systems never read YAML

    class Loader(yaml.SafeLoader):
        depth = 0
        nodes = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                mark = event.start_mark
                raise _DocumentProblem(f"line {mark.line + 1}", getattr(event, "anchor", None) or "*",
                                       "YAML anchors and aliases (&name, *name) are not allowed in a config")
            self.depth += 1
            self.nodes += 1
            if self.nodes > MAX_YAML_NODES:
                raise _DocumentProblem(f"line {event.start_mark.line + 1}", "…",
                                       f"a YAML config of at most {MAX_YAML_NODES} values")
            if self.depth > MAX_DEPTH:
                raise _DocumentProblem(f"line {event.start_mark.line + 1}", "…",
                                       f"nested more than {MAX_DEPTH} levels deep")
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if isinstance(key, str | int | float | bool) and key in seen:
                    raise _DocumentProblem(str(key), f"line {key_node.start_mark.line + 1}",
                                           "duplicate key: given twice in the same mapping (the first value "
                                           "would be silently dropped); give it once")
                if isinstance(key, str | int | float | bool):
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

    try:
        return yaml.load(text, Loader=Loader)  # a SafeLoader subclass: plain data only
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        line = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise _DocumentProblem("", "", f"not valid YAML: {e.problem or e}{line}") from None
    except yaml.YAMLError as e:
        raise _DocumentProblem("", "", f"not valid YAML: {e}") from None


def parse_config_text(text: str, *, source: str, fmt: str | None = None) -> Any:
    """Parse JSON, TOML or YAML text (``fmt`` 'json', 'toml', 'yaml'; None sniffs: JSON if it starts with { or
    [, else TOML) into plain data bounded by ``check_document``, or raise ConfigError naming the line."""
    if fmt is None:
        fmt = "json" if text.lstrip().startswith(("{", "[")) else "toml"
    if fmt not in ("json", "toml", "yaml"):
        raise ConfigError(source, [("", fmt, "format must be 'json', 'toml' or 'yaml'")])
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(source, [("", text, f"a config of at most {MAX_CONFIG_BYTES // 1024} KiB")])
    try:
        if fmt == "json":
            deep = _json_depth_problem(text)
            if deep is not None:
                line, content = _line_of(text, deep)
                raise ConfigError(f"{source}:{line}", [("", content, f"nested more than {MAX_DEPTH} levels deep")])
            # NaN, Infinity and 1e999 parse (to non-finite floats) so that check_document names their key
            data = json.loads(text, object_pairs_hook=_json_object, parse_int=_bounded_int)
        elif fmt == "toml":
            if len(text) > MAX_TOML_CHARS:
                raise ConfigError(source, [("", text, f"a TOML config of at most {MAX_TOML_CHARS // 1024} KiB")])
            data = tomllib.loads(text)
        else:
            if len(text) > MAX_YAML_CHARS:
                raise ConfigError(source, [("", text, f"a YAML config of at most {MAX_YAML_CHARS // 1024} KiB (write a "
                                                      "larger one as JSON)")])
            data = _yaml_load(text)
    except json.JSONDecodeError as e:
        line, content = _line_of(e.doc, e.pos)
        raise ConfigError(f"{source}:{line}", [("", content, f"not valid JSON: {e.msg} (column {e.colno})")]
                          ) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(source, [("", "", f"not valid TOML: {_cut(str(e), 300)}")]) from None
    except _DocumentProblem as e:
        raise ConfigError(source, [e.problem]) from None
    except RecursionError:  # a last resort: the scans above should have refused it first
        raise ConfigError(source, [("", "…", f"nested more than {MAX_DEPTH} levels deep")]) from None
    except (ValueError, MemoryError) as e:  # e.g. an integer beyond Python's digit limit
        raise ConfigError(source, [("", "", f"not valid {fmt.upper()}: {_cut(str(e), 300)}")]) from None
    check_document(data, source=source)
    return data


# ---------------------------------------------------------------------------------------------- models and types

class StrictModel(BaseModel):
    """Base for config models: unknown keys are errors, objects are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def validation_context(*, text_values: bool) -> dict[str, Any]:
    """The pydantic ``context`` for ``model_validate`` when a format's values are all text (HaValet's cfg)."""
    return {_CONTEXT_TEXT: text_values}


def _text_values(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get(_CONTEXT_TEXT))


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean (true/false)"
    if isinstance(value, str):
        return "a string (write numbers and booleans without quotes)"
    if isinstance(value, int | float):
        return f"a number ({shown(value)})"
    names = {list: "a list", tuple: "a list", dict: "an object/table", type(None): "null"}
    return names.get(type(value), f"a {type(value).__name__}")


_NUMBER_TEXT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,3})?")
_INTEGER_TEXT = re.compile(r"[+-]?\d{1,19}")
_BOOL_TEXT = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def _number(value: Any, info: ValidationInfo) -> Any:
    """A finite int or float; never a bool, never a string (except a plain decimal in a text-valued format)."""
    if isinstance(value, str) and _text_values(info):
        text = value.strip()
        if not _NUMBER_TEXT.fullmatch(text):
            raise ValueError("Input should be a valid number (such as 5 or 0.5)")
        if not math.isfinite(float(text)):
            raise ValueError("must be a finite number (1e999 is infinity)")
        return text  # pydantic parses the plain decimal; its range errors then show the text as written
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a valid number, not {_kind(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number (not NaN or infinity; 1e999 is infinity)")
    if isinstance(value, int) and abs(value) > 2**53:
        raise ValueError("must be a number of a sane size (|n| <= 2**53)")
    return value


def _integer(value: Any, info: ValidationInfo) -> Any:
    """An int; never a bool, a float or a string (except plain digits in a text-valued format)."""
    if isinstance(value, str) and _text_values(info):
        if not _INTEGER_TEXT.fullmatch(value.strip()):
            raise ValueError("Input should be a valid integer (a whole number such as 5)")
        return value.strip()  # pydantic parses the digits; its range errors then show the text as written
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be a valid integer (a whole number), not {_kind(value)}")
    if abs(value) > MAX_INT:
        raise ValueError(f"must be an integer of at most 64 bits (|n| <= {MAX_INT})")
    return value


def _boolean(value: Any, info: ValidationInfo) -> Any:
    """true or false; never 0/1 or "no" (except true/false/yes/no/on/off/1/0 in a text-valued format)."""
    if isinstance(value, str) and _text_values(info):
        if value.strip().lower() not in _BOOL_TEXT:
            raise ValueError("must be true or false")
        return _BOOL_TEXT[value.strip().lower()]
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {_kind(value) if not isinstance(value, int) else repr(value)}")
    return value


def _string_input(value: Any) -> Any:
    """Only text: pydantic would build an address from an integer or a boolean (``true`` -> 0.0.0.1)."""
    if not isinstance(value, str):
        raise ValueError(f"must be written as a string, not {_kind(value)}")
    return value


def _name_chars(value: str) -> str:
    why = bad_character(value)
    if why:
        raise ValueError(why)
    return value


def _path_chars(value: str) -> str:
    _name_chars(value)
    if not value:
        raise ValueError("must be a non-empty path")
    return value


_HOST_RE = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
                      r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?")


def _host(value: str) -> str:
    _name_chars(value)
    try:
        ipaddress.ip_address(value.strip("[]"))
        return value
    except ValueError:
        pass
    if not _HOST_RE.fullmatch(value):
        raise ValueError("must be a host name (letters, digits, - and _, dot-separated) or an IP address")
    return value


def ip_address_text(value: str) -> str:
    """``value`` if it is an IP address (v4, or v6 with or without brackets); ValueError saying what is allowed.
    For addresses to listen on: ``--check`` cannot know whether binding will work, but a host name or garbage is
    refused here rather than at start."""
    try:
        ipaddress.ip_address(value[1:-1] if value.startswith("[") and value.endswith("]") else value)
    except ValueError:
        raise ValueError("must be an IP address to listen on, such as 0.0.0.0 (all) or 10.0.0.1 (host names are not "
                         "resolved); whether it can be bound is only known at start") from None
    return value


def _identity(value: str) -> str:
    _name_chars(value)
    if any(c.isspace() for c in value):
        raise ValueError("must not contain spaces")
    return value


def _command(value: str | list[str]) -> str | list[str]:
    parts = [value] if isinstance(value, str) else value
    if not parts or not all(p.strip() for p in parts):
        raise ValueError("must be a non-empty command (a string, or a list of non-empty strings); leave the key out "
                         "for none")
    for p in parts:
        if len(p) > MAX_COMMAND_CHARS:
            raise ValueError(f"a command (or one of its words) may have at most {MAX_COMMAND_CHARS} characters")
        why = bad_character(p, in_name=False)
        if why:
            raise ValueError(why)
    if isinstance(value, str):  # a string command is split like a shell would (shlex): it must split
        try:
            words = shlex.split(value)
        except ValueError as e:
            raise ValueError(f"cannot be split into words like a shell would: {e} (check the quotes)") from None
        if not words or not words[0]:
            raise ValueError("must be a non-empty command (its first word names the program)")
    return value


Number = Annotated[float, BeforeValidator(_number)]
"""A finite number (int or float): not a bool, not a string, not NaN/infinity."""
Integer = Annotated[int, BeforeValidator(_integer)]
"""A whole number: not a bool, a float or a string."""
Bool = Annotated[bool, BeforeValidator(_boolean)]
"""true or false: not 0/1, not "no"."""
Seconds = Annotated[float, BeforeValidator(_number), Field(ge=0, le=MAX_SECONDS)]
"""A duration: finite, 0 to one day (a field adds gt=0 or a tighter bound)."""
PositiveSeconds = Annotated[float, BeforeValidator(_number), Field(gt=0, le=MAX_SECONDS)]
"""A period or timeout: finite, more than 0, at most one day."""
Port = Annotated[int, BeforeValidator(_integer), Field(ge=1, le=65535)]
"""A TCP/UDP port, 1-65535."""
Name = Annotated[str, AfterValidator(_name_chars), Field(min_length=1, max_length=128)]
"""A short name (of an instance, a server, a group): 1-128 characters, no control or bidi characters."""
HostName = Annotated[str, AfterValidator(_host), Field(min_length=1, max_length=255)]
"""A host name or an IP address."""
Identity = Annotated[str, AfterValidator(_identity), Field(min_length=1, max_length=256)]
"""A VIP identity or a similar token: no spaces, no control characters."""
FilePath = Annotated[str, AfterValidator(_path_chars), Field(min_length=1, max_length=4096)]
"""A file or directory path: non-empty, no control characters."""
StringInput = BeforeValidator(_string_input)
"""Annotate a non-string type built from text with it (``Annotated[IPv4Address, StringInput]``): no int, no bool."""
Command = Annotated[str | list[str], AfterValidator(_command)]
"""A command: a non-empty string or a non-empty list of non-empty strings; tabs and line breaks allowed in it,
other control characters not. An empty one is an error everywhere (leave the key out for none)."""


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


def validate_config(model: type[M], data: object, *, source: str, text_values: bool = False) -> M:
    """Validate ``data`` (a mapping from JSON/TOML/etc.) into ``model`` or raise ConfigError. ``text_values``: the
    format's values are all text (HaValet's cfg), so ``Number``, ``Integer`` and ``Bool`` fields parse plain text."""
    check_document(data, source=source)
    try:
        return model.model_validate(data, context={_CONTEXT_TEXT: text_values})
    except ValidationError as e:
        problems: list[tuple[str, object, str]] = []
        for err in e.errors(include_url=False):
            loc = tuple(p for p in err.get("loc", ()) if not (isinstance(p, str) and p.startswith("function-")))
            value = _MISSING if err.get("type") == "missing" else err.get("input")
            msg = err.get("msg", "invalid").removeprefix("Value error, ")
            if err.get("type") == "extra_forbidden":
                allowed = sorted(_model_at(model, loc[:-1]).model_fields)
                msg = f"unknown key (allowed keys: {', '.join(allowed)})"
            problems.append((_key_path(loc), value, msg))
        raise ConfigError(source, problems) from None



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


# ---------------------------------------------------------------------------------------------- docs

_TYPE_OF_VALIDATOR = {_number: "number", _integer: "integer", _boolean: "true/false", _command: "command",
                      _host: "host name or IP", _identity: "identity", _path_chars: "path", _name_chars: "name"}
_PLAIN_TYPES = {str: "string", float: "number", int: "integer", bool: "true/false"}


def _union_args(annotation: Any) -> list[Any] | None:
    """The members of ``X | Y`` (``None`` left out), or None when ``annotation`` is no union."""
    if type(annotation).__name__ in ("UnionType", "_UnionGenericAlias") or getattr(annotation, "__origin__", None) \
            is Union:
        return [a for a in get_args(annotation) if a is not type(None)]
    return None


def _type_name(annotation: Any, metadata: Sequence[Any] = ()) -> str:
    """A reader's name of a field's type: number, integer, true/false, name, command, list of ..., one of ..."""
    for m in metadata:
        if getattr(m, "func", None) in _TYPE_OF_VALIDATOR:
            return _TYPE_OF_VALIDATOR[m.func]
    members = _union_args(annotation)
    if members is not None:
        return " or ".join(_type_name(a) for a in members)
    if hasattr(annotation, "__metadata__"):
        return _type_name(get_args(annotation)[0], annotation.__metadata__)
    origin = getattr(annotation, "__origin__", None)
    if origin is Literal:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in get_args(annotation))
    if origin in (list, tuple):
        inner = [a for a in get_args(annotation) if a is not Ellipsis]
        return f"list of {_type_name(inner[0])}" if inner else "list"
    if origin is dict:
        return "table of " + _type_name(get_args(annotation)[1]) if get_args(annotation) else "table"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"table ({annotation.__name__})"
    if annotation in _PLAIN_TYPES:
        return _PLAIN_TYPES[annotation]
    return getattr(annotation, "__name__", None) or str(annotation)


def _range_of(metadata: Sequence[Any]) -> str:
    """The tightest bounds among a field's constraints (a type's own bound and the field's may both be there)."""
    low: tuple[float, bool] | None = None  # (bound, strict)
    high: tuple[float, bool] | None = None
    min_len = max_len = pattern = None
    for m in metadata:
        for attr, strict in (("gt", True), ("ge", False)):
            b = getattr(m, attr, None)
            if b is not None and (low is None or b > low[0] or (b == low[0] and strict)):
                low = (b, strict)
        for attr, strict in (("lt", True), ("le", False)):
            b = getattr(m, attr, None)
            if b is not None and (high is None or b < high[0] or (b == high[0] and strict)):
                high = (b, strict)
        if getattr(m, "min_length", None) is not None:
            min_len = max(min_len or 0, m.min_length)
        if getattr(m, "max_length", None) is not None:
            max_len = m.max_length if max_len is None else min(max_len, m.max_length)
        pattern = getattr(m, "pattern", None) or pattern
    parts = []
    if low is not None:
        parts.append(f"{'>' if low[1] else '>='} {low[0]:g}")
    if high is not None:
        parts.append(f"{'<' if high[1] else '<='} {high[0]:g}")
    if min_len is not None or max_len is not None:
        parts.append(f"length {min_len or 0}-{max_len}" if max_len is not None else f"length >= {min_len}")
    if pattern:
        parts.append(f"matches `{pattern}`")
    return ", ".join(parts)


def keys_table(model: type[BaseModel], *, skip: Sequence[str] = ()) -> str:
    """A markdown table of ``model``'s keys: type, range and default, from the model itself (scripts/render_docs)."""
    rows = ["| key | type | range | default | meaning |", "|---|---|---|---|---|"]
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        metadata = list(field.metadata)
        members = _union_args(field.annotation)
        if members is not None and len(members) == 1 and hasattr(members[0], "__metadata__"):
            metadata = [*members[0].__metadata__, *metadata]  # X | None: X's own constraints
        metadata = [c for m in metadata for c in ([m, *m.metadata] if hasattr(m, "metadata") else [m])]
        if field.is_required():
            default = "required"
        elif field.default is None:
            default = "none"
        elif isinstance(field.default, BaseModel):
            default = "its defaults"
        else:
            default = f"`{json.dumps(field.default)}`"
        meaning = (field.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{name}` | {_type_name(field.annotation, metadata)} | {_range_of(metadata) or '-'} "
                    f"| {default} | {meaning} |")
    return "\n".join(rows)

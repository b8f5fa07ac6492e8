"""The tiny, safe expression language of ha_valet.cfg command values (no ``eval``).

The original tool ran ``eval()`` on values such as::

    "ssh %s@%s 'cd @DIR@ ; sudo python ./daemon.py start'" % (user, host)

We accept exactly this shape and nothing else:

- a string literal (any Python spelling: '...', "...", adjacent literals, escapes such as ``\\'``);
- optionally followed by ``%`` and either one name of this section's keys (``% (port)`` or
  ``% port``) or a tuple of such names (``% (user, host)``).

``parse_command_expr(text)`` returns a ``CommandTemplate`` (the format string and the names)
or raises ``ExprError`` saying what is wrong. The template is rendered later, once per host,
with ``host`` bound to the host the command is meant for (see HaValet.config).
Parsing uses the ``ast`` module only to read the syntax tree; no node is ever executed.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass


class ExprError(ValueError):
    """The value is not in the allowed language, or the template does not fit its arguments."""


@dataclass(frozen=True, slots=True)
class CommandTemplate:
    """``fmt % tuple(values[n] for n in names)``; ``names`` empty means no ``%`` at all."""

    fmt: str
    names: tuple[str, ...] = ()
    uses_percent: bool = False

    def render(self, values: Mapping[str, str]) -> str:
        if not self.uses_percent:
            return self.fmt
        try:
            args = tuple(values[n] for n in self.names)
        except KeyError as e:
            raise ExprError(f"name {e.args[0]!r} has no value") from None
        try:
            return self.fmt % args
        except (TypeError, ValueError, KeyError) as e:
            raise ExprError(f"format string does not fit its {len(args)} argument(s): {e}") from None


MAX_FORMAT_WIDTH = 4096  # a field width or precision in a command's % format: "%999999999s" would render 1 GB
_CONVERSION = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.)?", re.S)


def _check_widths(fmt: str) -> None:
    """Refuse ``*`` widths and widths or precisions over MAX_FORMAT_WIDTH (checked before anything is rendered)."""
    for m in _CONVERSION.finditer(fmt):
        for part in (m.group(1), m.group(2)):
            if part == "*":
                raise ExprError("a '*' field width or precision is not allowed in a command")
            if (part and len(part) > 5) or (part and int(part) > MAX_FORMAT_WIDTH):
                raise ExprError(f"field width or precision {part[:12]} in {m.group()[:20]!r} is too large "
                                f"(at most {MAX_FORMAT_WIDTH})")


def _describe(node: ast.AST) -> str:
    try:
        return f"{type(node).__name__} `{ast.unparse(node)}`"
    except Exception:  # unparse of odd trees; the type name is enough
        return type(node).__name__


def _names_of(node: ast.expr) -> tuple[str, ...]:
    if isinstance(node, ast.Name):
        return (node.id,)
    if isinstance(node, ast.Tuple) and all(isinstance(e, ast.Name) for e in node.elts):
        return tuple(e.id for e in node.elts)  # type: ignore[attr-defined]
    raise ExprError(f"after '%' only a key name or a tuple of key names is allowed, not {_describe(node)}")


def parse_command_expr(text: str, allowed_names: frozenset[str] | set[str] | None = None) -> CommandTemplate:
    """Parse one command value. ``allowed_names``: the keys a ``%`` tuple may name (None: any)."""
    source = text.strip()
    if not source:
        raise ExprError("empty command")
    if "\x00" in source:
        raise ExprError("NUL character in command")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as e:
        raise ExprError(f"not a string literal expression: {e.msg}") from None
    except (ValueError, MemoryError, RecursionError) as e:
        raise ExprError(f"not a string literal expression: {e}") from None
    body = tree.body
    if isinstance(body, ast.Constant) and isinstance(body.value, str):
        return CommandTemplate(body.value)
    if not (isinstance(body, ast.BinOp) and isinstance(body.op, ast.Mod)):
        raise ExprError(f"only a string literal, optionally `% (key, ...)`, is allowed, not {_describe(body)}")
    left = body.left
    if not (isinstance(left, ast.Constant) and isinstance(left.value, str)):
        raise ExprError(f"the left side of '%' must be a string literal, not {_describe(left)}")
    names = _names_of(body.right)
    if allowed_names is not None:
        unknown = [n for n in names if n not in allowed_names]
        if unknown:
            raise ExprError(f"unknown key name(s) {', '.join(unknown)} after '%' "
                            f"(allowed: {', '.join(sorted(allowed_names))})")
    _check_widths(left.value)
    template = CommandTemplate(left.value, names, uses_percent=True)
    # Check the format fits now (with dummy values), so a bad one fails at load, not at 3 a.m.
    template.render({n: "x" for n in names})
    return template

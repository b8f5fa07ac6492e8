"""Read a JSON or TOML config file into a mapping (errors become ConfigError naming the file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from failover_core.config import ConfigError, parse_config_text


def load_config_file(path: str | Path, fmt: str | None = None) -> Any:
    """``.json`` and ``.toml`` by suffix; any other suffix is sniffed (JSON if it starts with { or [)."""
    p = Path(path)
    if fmt is None and p.suffix in (".json", ".toml"):
        fmt = p.suffix[1:]
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(str(p), [("", str(p), f"cannot read the file: {e}")]) from None
    return parse_config_text(text, source=str(p), fmt=fmt)

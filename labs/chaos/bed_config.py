"""The base of every chaos driver's bed config: a pydantic model read from a JSON or TOML file (``--config``)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Self

from pydantic import BaseModel


class BedConfig(BaseModel):
    @classmethod
    def load(cls, path: Path) -> Self:
        """The config in ``path``: TOML if it ends in ``.toml``, else JSON; invalid: pydantic's ValidationError."""
        text = path.read_text()
        if path.suffix == ".toml":
            return cls.model_validate(tomllib.loads(text))
        return cls.model_validate_json(text)

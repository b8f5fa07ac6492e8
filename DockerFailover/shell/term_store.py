"""The term (epoch) on disk: read at start, written (atomically, fsynced) before acting on a new term."""

from __future__ import annotations

import json
import os
from pathlib import Path


class TermStore:
    """``STATE_DIR/NAME.term`` holding ``{"term": N}``. A missing file is term 0."""

    def __init__(self, state_dir: str | Path, name: str) -> None:
        self.path = Path(state_dir) / f"{name}.term"

    def load(self) -> int:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as e:
            raise OSError(f"cannot read the term file {self.path}: {e}") from e
        term = data.get("term") if isinstance(data, dict) else None
        if isinstance(term, bool) or not isinstance(term, int) or term < 0:
            raise OSError(f"the term file {self.path} holds {data!r}, not {{'term': N}}")
        return term

    def save(self, term: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps({"term": term}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

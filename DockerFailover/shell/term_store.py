"""The term (epoch) on disk: read at start, written (atomically, fsynced) before acting on a new term.

``TermStore`` is the agent's own record (``STATE_DIR/NAME.term``, JSON). ``write_service_term`` writes the
term the containers are started under to the operator's ``term_file`` (one line, the number): the
service reads it there (a bind-mounted directory) and can use it as a fencing token.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def _replace_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_service_term(path: str | Path, term: int) -> None:
    """``term_file``: the term as one line (readable by anyone: it is no secret)."""
    p = Path(path)
    _replace_atomically(p, f"{term}\n")
    p.chmod(0o644)


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
        _replace_atomically(self.path, json.dumps({"term": term}) + "\n")

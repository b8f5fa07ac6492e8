"""The generated parts of docs/ (behaviour tables, reason codes) match the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_generated_doc_sections_are_current() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "render_docs.py"), "--check"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, f"regenerate with: python scripts/render_docs.py\n{r.stdout}{r.stderr}"


def test_check_notices_a_stale_page(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import render_docs
    finally:
        sys.path.pop(0)
    page = "intro\n<!-- tables:begin -->\nold text\n<!-- tables:end -->\noutro\n"
    new = render_docs.rendered(page, "tables", "new text\n")
    assert new == "intro\n<!-- tables:begin -->\nnew text\n<!-- tables:end -->\noutro\n"
    assert render_docs.rendered(new, "tables", "new text") == new

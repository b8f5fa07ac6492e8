"""Regenerate the generated parts of docs/: the behaviour tables and each system's reason codes.

Each entry of SECTIONS names a doc page, a marker and a function giving the text that belongs
between ``<!-- MARKER:begin -->`` and ``<!-- MARKER:end -->`` in that page. A system's codes are
every ``failover_core.step.ReasonCode`` enum defined in its codes module, one table each.

    python scripts/render_docs.py          # rewrite the pages in place
    python scripts/render_docs.py --check  # exit 1 and name the stale pages (the tests do this)
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# this checkout's code, not whichever checkout the venv's editable install points at (a stale page was once
# rendered from another clone's codes)
sys.path[:0] = [str(ROOT), str(ROOT / "FailoverAgent")]

from failover_core.step import ReasonCode, codes_table  # noqa: E402
from failover_core.tables import render_markdown  # noqa: E402


def render_codes(module_name: str) -> Callable[[], str]:
    """The code tables of one system: every ReasonCode enum its codes module defines, in source order."""

    def render() -> str:
        module = importlib.import_module(module_name)
        enums = [obj for _, obj in inspect.getmembers(module, inspect.isclass)
                 if issubclass(obj, ReasonCode) and obj is not ReasonCode and obj.__module__ == module_name]
        enums.sort(key=lambda e: inspect.getsourcelines(e)[1])
        parts = []
        for e in enums:
            doc = (inspect.getdoc(e) or "").splitlines()[0] if inspect.getdoc(e) else ""
            parts.append(f"**{e.__name__}**{': ' + doc if doc else ''}\n\n{codes_table(e)}")
        return "\n\n".join(parts)

    return render


def render_keys(*models: tuple[str, str, tuple[str, ...]]) -> Callable[[], str]:
    """Every config key of a system, one table per model: (heading, ``module:Model``, keys left out)."""

    def render() -> str:
        from failover_core.config import keys_table

        parts = []
        for heading, target, skip in models:
            module_name, _, model_name = target.partition(":")
            model = getattr(importlib.import_module(module_name), model_name)
            parts.append(f"**{heading}** (`{model_name}`)\n\n{keys_table(model, skip=skip)}")
        return "\n\n".join(parts)

    return render


# (doc page, marker, renderer). Systems add their codes module here.
SECTIONS: list[tuple[str, str, Callable[[], str]]] = [
    ("docs/core.md", "tables", render_markdown),
    ("docs/failoveragent.md", "codes", render_codes("failover_agent.codes")),
    ("docs/valet.md", "codes", render_codes("HaValet.codes")),
    ("docs/vrrp.md", "codes", render_codes("VrrpFailover.codes")),
    ("docs/docker.md", "codes", render_codes("DockerFailover.codes")),
    ("docs/vrrp.md", "keys", render_keys(("an instance", "VrrpFailover.config:InstanceConfig", ()),
                                         ("track_script (one table or a list)", "VrrpFailover.config:TrackScript",
                                          ()),
                                         ("track_file (one table or a list)", "VrrpFailover.config:TrackFile", ()),
                                         ("track_interface (one table or a list)",
                                          "VrrpFailover.config:TrackInterface", ()),
                                         ("a sync group (sync_groups.NAME)", "VrrpFailover.config:SyncGroupConfig",
                                          ()))),
    ("docs/docker.md", "keys", render_keys(
        ("top level, or per server inside servers (endpoint and port: per server only)",
         "DockerFailover.config:NodeConfig", ("name", "peer", "preferred")),
        ("witness", "DockerFailover.config:WitnessSettings", ()))),
    ("docs/failoveragent.md", "keys", render_keys(("the failover agent", "failover_agent.config:FailoverConfig", ()),
                                                  ("the witness agent", "failover_agent.config:WitnessConfig", ()))),
    ("docs/valet.md", "keys", render_keys(
        ("[valet]: notify and status", "HaValet.config:ValetSettings", ("timing", "host_mode")),
        ("timing: in [valet] (the defaults) or in a process section", "HaValet.config:Timing", ()),
        ("[valet]: the per-host mode", "HaValet.config:HostMode", ()),
        ("a process section, per host (stand_by_list: host names, comma-separated; order: an integer)",
         "HaValet.config:InstanceSpec", ("standby_only",)))),
]


def rendered(page: str, marker: str, text: str) -> str:
    pattern = re.compile(rf"(<!-- {marker}:begin -->\n)(.*?)(<!-- {marker}:end -->)", re.S)
    if not pattern.search(page):
        raise SystemExit(f"marker <!-- {marker}:begin/end --> missing")
    return pattern.sub(lambda m: m.group(1) + text.rstrip("\n") + "\n" + m.group(3), page, count=1)


def stale_pages(write: bool) -> list[str]:
    stale = []
    for path, marker, render in SECTIONS:
        file = ROOT / path
        old = file.read_text()
        new = rendered(old, marker, render())
        if new != old:
            stale.append(f"{path} ({marker})")
            if write:
                file.write_text(new)
    return stale


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only report stale pages, exit 1 if any")
    args = p.parse_args(argv)
    stale = stale_pages(write=not args.check)
    for s in stale:
        print(("stale: " if args.check else "rewrote: ") + s)
    return 1 if (stale and args.check) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
